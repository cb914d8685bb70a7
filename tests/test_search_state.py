import json
import os
import time

import numpy as np
import pytest

from automl_kit import ImageClassifier
from tests.conftest import QUICK
from automl_kit.blocks import MacroSearchSpace
from automl_kit.data import InputSpec
from automl_kit.tuner import Project, RandomSearch, SearchData, SearchFailed
from automl_kit.tuner.project import write_json_atomic


def _trial_records(folder):
    trials_dir = os.path.join(folder, "image_classifier", "trials")
    return {name: json.load(open(os.path.join(trials_dir, name)))
            for name in sorted(os.listdir(trials_dir)) if name.endswith(".json")}


def test_resume_does_not_rerun_finished_trials(small_digits, tmp_path):
    x, y = small_digits
    first = ImageClassifier(**QUICK, max_trials=1, seed=0, directory=str(tmp_path)).fit(x, y, epochs=1, verbose=0)
    before = _trial_records(tmp_path)
    assert list(before) == ["0000.json"] and before["0000.json"]["status"] == "completed"

    resumed = ImageClassifier(**QUICK, max_trials=2, seed=0, directory=str(tmp_path)).fit(x, y, epochs=1, verbose=0)
    after = _trial_records(tmp_path)
    assert list(after) == ["0000.json", "0001.json"]
    assert after["0000.json"] == before["0000.json"]  # same record, same timestamps: not re-run
    assert resumed.trials_[0].architecture == first.trials_[0].architecture


def test_completed_search_goes_straight_to_stored_model(small_digits, tmp_path, capsys, monkeypatch):
    x, y = small_digits
    clf = ImageClassifier(**QUICK, max_trials=1, seed=0, directory=str(tmp_path)).fit(x, y, epochs=1, verbose=0)
    expected = clf.predict_proba(x[:10])

    from automl_kit.tuner import training

    def refuse(*args, **kwargs):
        raise AssertionError("a completed search trained again")

    monkeypatch.setattr(training, "train", refuse)
    clf2 = ImageClassifier(**QUICK, max_trials=1, seed=0, directory=str(tmp_path))
    clf2.fit(x, y, epochs=1, verbose=1)
    assert "complete" in capsys.readouterr().out
    np.testing.assert_allclose(clf2.predict_proba(x[:10]), expected, atol=1e-6)


def test_resume_with_changed_data_or_settings_raises(small_digits, tmp_path):
    x, y = small_digits
    ImageClassifier(**QUICK, max_trials=1, seed=0, directory=str(tmp_path)).fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="overwrite=True"):
        ImageClassifier(**QUICK, max_trials=1, seed=0, directory=str(tmp_path)).fit(x[:300], y[:300], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="changed: settings"):
        ImageClassifier(**QUICK, max_trials=1, seed=1, directory=str(tmp_path)).fit(x, y, epochs=1, verbose=0)
    # overwrite=True starts again instead of raising.
    ImageClassifier(**QUICK, max_trials=1, seed=1, directory=str(tmp_path), overwrite=True).fit(x, y, epochs=1, verbose=0)


def test_project_holds_json_and_keras_formats_only_with_weights_of_the_best_two(small_digits, tmp_path):
    x, y = small_digits
    clf = ImageClassifier(**QUICK, max_trials=4, seed=0, directory=str(tmp_path)).fit(x, y, epochs=1, verbose=0)
    files = [os.path.join(root, f) for root, _, names in os.walk(tmp_path) for f in names]
    assert files and all(f.endswith((".json", ".keras", ".weights.h5")) for f in files), files
    assert not any("pkl" in f or "pickle" in f for f in files)
    weights = sorted(f for f in os.listdir(tmp_path / "image_classifier" / "trials") if f.endswith(".weights.h5"))
    best_two = sorted(clf.trials_, key=lambda t: (-t.score, t.params))[:2]
    assert weights == sorted(f"{t.trial_id}.weights.h5" for t in best_two)


def test_keep_weights_bounds_the_trials_with_weights_on_disk(small_digits, tmp_path):
    x, y = small_digits
    clf = ImageClassifier(**QUICK, max_trials=3, seed=0, keep_weights=1, directory=str(tmp_path)).fit(
        x, y, epochs=1, verbose=0)
    weights = [f for f in os.listdir(tmp_path / "image_classifier" / "trials") if f.endswith(".weights.h5")]
    assert weights == [f"{clf.best_trial_.trial_id}.weights.h5"]
    with pytest.raises(ValueError, match="keep_weights must be a positive int"):
        ImageClassifier(keep_weights=0).fit(x, y)


def test_default_directory_leaves_nothing_behind(small_digits, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    x, y = small_digits
    ImageClassifier(**QUICK, max_trials=1, seed=0).fit(x, y, epochs=1, verbose=0)
    assert os.listdir(tmp_path) == []


def test_seeded_runs_propose_the_same_trials(small_digits):
    x, y = small_digits
    runs = [ImageClassifier(**QUICK, max_trials=3, seed=5).fit(x, y, epochs=1, verbose=0) for _ in range(2)]
    assert [t.architecture for t in runs[0].trials_] == [t.architecture for t in runs[1].trials_]
    assert len({t.architecture for t in runs[0].trials_}) == 3
    assert [t.score for t in runs[0].trials_] == [t.score for t in runs[1].trials_]
    np.testing.assert_array_equal(runs[0].predict_proba(x), runs[1].predict_proba(x))


def test_seeded_enas_runs_are_identical(small_digits):
    """Same controller samples, supernet losses, rewards, candidates and final model."""
    x, y = small_digits
    settings = dict(max_trials=2, seed=3)  # the default search: ENAS over the macro space
    runs = [ImageClassifier(**settings).fit(x[:200], y[:200], epochs=2, verbose=0) for _ in range(2)]
    assert runs[0].supernet_history_[-1]["mean_reward"] > 0  # the controller did learn from rewards
    strip = [[{k: v for k, v in record.items() if k != "seconds"} for record in run.supernet_history_] for run in runs]
    assert strip[0] == strip[1]
    assert [t.architecture for t in runs[0].trials_] == [t.architecture for t in runs[1].trials_]
    assert [(t.shared_score, t.score) for t in runs[0].trials_] == [(t.shared_score, t.score) for t in runs[1].trials_]
    np.testing.assert_array_equal(runs[0].predict_proba(x), runs[1].predict_proba(x))


def test_time_limit_is_respected(small_digits):
    x, y = small_digits
    started = time.monotonic()
    clf = ImageClassifier(**QUICK, max_trials=100, seed=0, time_limit=15).fit(x, y, epochs=50, verbose=0)
    elapsed = time.monotonic() - started
    assert elapsed < 15 * 1.5, elapsed  # generous: the deadline is checked after every step
    assert len(clf.trials_) < 100


def test_max_model_size_is_honoured(small_digits):
    x, y = small_digits
    clf = ImageClassifier(**QUICK, max_trials=3, seed=0, max_model_size=20_000).fit(x, y, epochs=1, verbose=0)
    assert all(t.params <= 20_000 for t in clf.trials_)
    assert clf.export_model().count_params() <= 20_000


def test_a_later_rungs_trial_keeps_its_weights_for_the_final_training(small_search_data, tmp_path):
    """The halving ranks a later rung's trials first: a trial of rung 2 is among the best two even below the
    scores of rung 1, so its weights stay on disk for the final training to go on from. Before its rung was
    set inside `train_trial`, it counted as rung 0 there and its weights were deleted at once."""
    from automl_kit.tuner.enas import SharedWeightSearch
    from automl_kit.tuner.trial import COMPLETED, Trial

    space = MacroSearchSpace((8, 8))
    architecture = space.prior()
    project = Project(str(tmp_path / "p")).start(fingerprint={"test": 1})
    search = SharedWeightSearch(project=project, search_space=space, objective="val_accuracy", seed=0)
    earlier = [Trial(f"000{i}", architecture, COMPLETED, score=1.0, rung=1, epochs_run=1) for i in range(2)]
    trial = search.train_trial("0002", architecture, small_search_data, epochs=1, batch_size=32,
                               callbacks=(), deadline=None, seed=0, previous_trials=earlier, rung=2)
    assert trial.status == COMPLETED and trial.score < 1.0
    assert os.path.exists(project.weights_path("0002"))
    assert trial.rung == 2


def test_nan_trial_is_recorded_as_failed_and_search_goes_on(small_search_data, tmp_path):
    good = small_search_data

    class FlakyData(SearchData):
        calls = 0

        def build(self, architecture):
            FlakyData.calls += 1
            model = super().build(architecture)
            if FlakyData.calls == 1:  # the first trial's weights are poisoned: its loss is NaN
                model.get_layer("probabilities").kernel.assign(
                    np.full(model.get_layer("probabilities").kernel.shape, np.nan, np.float32))
            return model

    data = FlakyData(**{f: getattr(good, f) for f in good.__dataclass_fields__})
    project = Project(str(tmp_path / "p")).start(fingerprint={"test": 1})
    search = RandomSearch(project=project, search_space=MacroSearchSpace((8, 8)), objective="val_accuracy", seed=0)
    trials = search.search(data, max_trials=2, epochs=1, batch_size=32)
    assert [t.status for t in trials] == ["failed", "completed"]
    assert "NaN" in trials[0].failure_reason
    stored = json.load(open(tmp_path / "p" / "trials" / "0000.json"))
    assert stored["status"] == "failed" and "NaN" in stored["failure_reason"]


def test_consecutive_failures_stop_the_search_with_reasons(small_search_data, tmp_path):
    good = small_search_data

    class BrokenData(SearchData):
        def build(self, architecture):
            raise RuntimeError("cannot build this one")

    data = BrokenData(**{f: getattr(good, f) for f in good.__dataclass_fields__})
    project = Project(str(tmp_path / "p")).start(fingerprint={"test": 1})
    search = RandomSearch(project=project, search_space=MacroSearchSpace((8, 8)), objective="val_accuracy", seed=0)
    with pytest.raises(SearchFailed, match="cannot build this one"):
        search.search(data, max_trials=10, epochs=1, batch_size=32)
    assert len(project.load_trials()) == 3


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(str(path), {"a": 1})
    write_json_atomic(str(path), {"a": 2})
    assert json.load(open(path)) == {"a": 2}
    assert os.listdir(tmp_path) == ["state.json"]


def test_short_budget_fine_tunes_the_best_trial_instead_of_retraining(small_digits, tmp_path, monkeypatch, capsys):
    from automl_kit.tuner import budget as budget_module

    # Pretend the final training would need far more time than is left.
    monkeypatch.setattr(budget_module.TimeBudget, "final_training_estimate", lambda self, trial, growth=1.0, epochs=None: 1e6)
    x, y = small_digits
    clf = ImageClassifier(**QUICK, max_trials=1, seed=0, directory=str(tmp_path), time_limit=120)
    clf.fit(x, y, epochs=2, verbose=1)
    assert "Less than an epoch is left: the final model is trial" in capsys.readouterr().out
    # No whole epoch fits in the time left, so the final network is the trial's best-epoch model itself
    # (predicting with the test-time shifts of the trial's translation).
    import keras

    from automl_kit.blocks.builder import network_of
    from automl_kit.tuner import Project

    assert clf.final_["test_time_augmentation"] == {"flip": False, "shift": 1}
    trial_id = clf.best_trial_.trial_id
    trial_network = keras.models.clone_model(network_of(clf.model_))
    trial_network.load_weights(Project(str(tmp_path / "image_classifier")).weights_path(trial_id))
    images = x[:50].astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(network_of(clf.model_)(images, training=False)),
                               trial_network.predict(images, verbose=0), atol=1e-6)
    # ... and scores on the validation images exactly what its trial recorded for its best epoch.
    from automl_kit.data import validation_split_indices

    _, val = validation_split_indices(y, 0.2, seed=0)
    predicted = network_of(clf.model_).predict(x[val].astype("float32"), verbose=0).argmax(axis=1)
    assert np.mean(predicted == y[val]) == pytest.approx(clf.best_score_)


def test_time_budget_keeps_time_for_the_final_training():
    from automl_kit.tuner.budget import TimeBudget, shortest_trial_seconds
    from automl_kit.tuner.trial import Trial

    budget = TimeBudget(1000)
    slow = Trial("0000", None, "completed", score=0.9, best_epoch=4, epochs_run=5, seconds=500.0)
    quick = Trial("0001", None, "completed", score=0.9, best_epoch=2, epochs_run=2, seconds=100.0)
    # 4 epochs at 100 s, on 25% more data: 500 s, capped at half the budget.
    assert budget.search_deadline(slow, data_growth=1.25) - budget.start == pytest.approx(500)
    assert budget.search_deadline(quick, data_growth=1.25) - budget.start == pytest.approx(750)
    assert budget.final_training_estimate(quick, 1.25) == pytest.approx(125)
    # Building and tracing are paid once per model, before any epoch: the estimate includes them.
    traced = Trial("0002", None, "completed", score=0.9, best_epoch=2, epochs_run=2, seconds=140.0,
                   history={"setup_seconds": [40.0], "epoch_seconds": [50.0, 50.0]})
    assert budget.final_training_estimate(traced, 1.25) == pytest.approx(40 + 2 * 50 * 1.25)
    assert budget.final_training_estimate(traced, 1.25, epochs=1) == pytest.approx(40 + 50 * 1.25)
    # A new trial is worth starting only with room for the cheapest setup and epoch seen so far.
    assert shortest_trial_seconds([slow, quick, traced]) == pytest.approx(50)
    assert shortest_trial_seconds([Trial("0003", None, "failed")]) == 0.0


def test_a_limit_below_the_fixed_costs_warns_after_fit(small_digits):
    x, y = small_digits
    # No model's first step (build, trace) fits in a second, and a step cannot be cut short.
    with pytest.warns(UserWarning, match=r"more than 10% over time_limit=1 s.*Raise time_limit"):
        clf = ImageClassifier(**QUICK, max_trials=3, seed=0, time_limit=1).fit(x, y, epochs=5, verbose=0)
    assert clf.fit_seconds_ > 1.1
    assert len(clf.trials_) == 1


def test_a_second_process_gets_the_lock_error_at_once(small_digits, tmp_path, no_training):
    import subprocess
    import sys

    from automl_kit.tuner import ProjectLocked

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        project = tmp_path / "image_classifier"
        project.mkdir()
        (project / "lock.json").write_text(json.dumps({"pid": holder.pid, "host": __import__("socket").gethostname()}))
        x, y = small_digits
        started = time.monotonic()
        with pytest.raises(ProjectLocked, match=f"in use by process {holder.pid}"):
            ImageClassifier(**QUICK, max_trials=1, directory=str(tmp_path)).fit(x, y, verbose=0)
        assert time.monotonic() - started < 30
        with pytest.raises(ProjectLocked):  # overwrite=True must not wipe a project in use either
            ImageClassifier(**QUICK, max_trials=1, directory=str(tmp_path), overwrite=True).fit(x, y, verbose=0)
        assert (project / "lock.json").exists()
    finally:
        holder.kill()
        holder.wait()


_SEARCH_SCRIPT = """
import sys
from sklearn.datasets import load_digits
from automl_kit import ImageClassifier
from tests.conftest import QUICK
d = load_digits()
ImageClassifier(**QUICK, max_trials=int(sys.argv[2]), seed=0, directory=sys.argv[1]).fit(
    d.images[:400], d.target[:400], epochs=int(sys.argv[3]), verbose=0)
"""


def test_search_killed_mid_way_resumes_without_rerunning_trials(tmp_path):
    import signal
    import subprocess
    import sys

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-c", _SEARCH_SCRIPT, str(tmp_path), "3", "4"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = tmp_path / "image_classifier" / "trials" / "0000.json"
    deadline = time.monotonic() + 600  # generous: under pytest-xdist the CPU is shared
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first.exists(), "the first trial never finished"
    before = _trial_records(tmp_path)
    assert len(before) < 3, "the search finished before it could be killed"
    assert (tmp_path / "image_classifier" / "lock.json").exists()  # left behind by the killed process

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    after = _trial_records(tmp_path)
    assert list(after) == ["0000.json", "0001.json", "0002.json"]
    for name, record in before.items():
        assert after[name] == record  # same timestamps and scores: not re-run
    state = json.load(open(tmp_path / "image_classifier" / "project.json"))
    assert state["status"] == "completed"
    assert not (tmp_path / "image_classifier" / "lock.json").exists()


_ENAS_SCRIPT = """
import sys
from sklearn.datasets import load_digits
from automl_kit import ImageClassifier
d = load_digits()
ImageClassifier(max_trials=1, seed=0, directory=sys.argv[1]).fit(
    d.images[:400], d.target[:400], epochs=int(sys.argv[2]), verbose=1)
"""


def test_enas_search_killed_between_epochs_resumes_from_its_checkpoint(tmp_path):
    import signal
    import subprocess
    import sys

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    epochs = 6  # killed after its third, the supernet has three more to resume
    command = [sys.executable, "-c", _ENAS_SCRIPT, str(tmp_path), str(epochs)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_path = tmp_path / "image_classifier" / "project.json"

    def epochs_done():
        try:
            return json.load(open(state_path)).get("shared_weights", {}).get("epochs_done", 0)
        except (OSError, ValueError):
            return 0

    deadline = time.monotonic() + 300
    while epochs_done() < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = json.load(open(state_path))["shared_weights"]
    assert 3 <= before["epochs_done"] < epochs, "the supernet finished before it could be killed"
    for name in ("supernet.weights.h5", "controller.weights.h5", "optimizers.npz"):
        assert (tmp_path / "image_classifier" / "supernet" / name).exists()

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming the supernet after epoch {before['epochs_done']}" in result.stdout
    after = json.load(open(state_path))
    assert after["status"] == "completed"
    # Finished epochs are not re-run: their records, wall seconds included, are untouched.
    assert after["shared_weights"]["history"][:before["epochs_done"]] == before["history"]
    assert len(after["shared_weights"]["history"]) == epochs


def test_a_freed_model_costs_one_full_garbage_collection_and_a_sized_one_none(small_search_data):
    """Each full collection walks every object Python tracks (0.21 s with TensorFlow loaded): Keras's
    clear_session runs one, and release_memory once ran a second after it."""
    import gc

    from automl_kit.tuner.base import release_memory

    full = []

    def count(phase, info):
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(count)
    try:
        release_memory()
        assert len(full) == 1
        small_search_data.count_params(MacroSearchSpace((8, 8)).prior())
        assert len(full) == 1
    finally:
        gc.callbacks.remove(count)


def test_trials_leave_no_traced_functions_behind(small_digits):
    # Memory per trial grows with what TensorFlow keeps after a model is gone; the
    # optimizer's slots, if created while tracing, leave one function per variable.
    from tensorflow.python.eager import context

    from automl_kit.blocks.builder import build_model
    from automl_kit.tuner import training
    from automl_kit.tuner.base import release_memory

    x, y = small_digits
    spec = InputSpec(input_shape=(8, 8), image_shape=(8, 8, 1))
    space = MacroSearchSpace((8, 8))
    counts = []
    for seed in range(3):
        model = build_model(space.sample(np.random.default_rng(seed)), spec, 10, [0.0], [1.0])
        training.train(model, x, y, epochs=1, batch_size=64)
        del model
        release_memory()
        counts.append(len(context.context().list_function_names()))
    # A macro model has over 20 trainable variables: one function each would show.
    assert counts[2] - counts[1] < 10, counts


def test_searches_leave_no_traced_graphs_behind(small_digits):
    """Each trace of a tf.custom_gradient (Keras's optimizer has one, the supernet dozens) would keep
    its whole graph alive in TensorFlow's gradient registry: memory grew by about 60 MB a trial."""
    import gc

    from tensorflow.python.framework import ops as tf_ops

    def live_operations():
        gc.collect()
        return sum(isinstance(o, tf_ops.Operation) for o in gc.get_objects())

    x, y = small_digits
    ImageClassifier(max_trials=1, seed=0, **QUICK).fit(x, y, epochs=1, verbose=0)  # what a first fit sets up once
    before = live_operations()
    ImageClassifier(max_trials=2, seed=0, **QUICK).fit(x, y, epochs=1, verbose=0)
    after_trials = live_operations()
    ImageClassifier(max_trials=1, seed=0).fit(x, y, epochs=1, verbose=0)  # the default: ENAS, a supernet
    after_enas = live_operations()
    # Kept alive, a trial's train step holds thousands of operations, and a supernet's tens of thousands.
    assert after_trials - before < 500, (before, after_trials)
    assert after_enas - after_trials < 500, (after_trials, after_enas)
