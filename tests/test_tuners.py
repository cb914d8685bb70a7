"""The searches that train every child from scratch with a learned guide: NAS's controller, PNAS's surrogate."""

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from automl_kit import ImageClassifier
from automl_kit.blocks import MicroSearchSpace
from automl_kit.tuner import NASSearch, Project, ProgressiveSearch
from automl_kit.tuner.progressive import cell_features
from automl_kit.tuner.trial import COMPLETED, Trial


def test_nas_and_progressive_run_end_to_end_and_export_models_that_load_without_automl_kit(small_digits, tmp_path):
    x, y = small_digits
    np.save(tmp_path / "x.npy", x[:50])
    classifiers = {}
    for tuner in ("nas", "progressive"):
        clf = ImageClassifier(tuner=tuner, max_trials=2, seed=0, search_space={"name": "micro", "num_nodes": 2})
        clf.fit(x, y, epochs=1, verbose=0)
        assert len(clf.trials_) == 2 and all(t.status == COMPLETED for t in clf.trials_)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            clf.summary()
        expected = "Controller: 2 update(s)" if tuner == "nas" else "Progressive: cells grown to 2 node(s)"
        assert expected in printed.getvalue()
        assert len(clf.plot_search().axes) == (3 if tuner == "nas" else 1)  # the controller's panel has a twin axis
        clf.export_model().save(tmp_path / f"{tuner}.keras")
        classifiers[tuner] = clf
    predicted = classifiers["progressive"].search_results_["predicted_score"]
    assert [len(t.architecture.normal) for t in classifiers["progressive"].trials_] == [1, 2]
    assert np.isnan(predicted[0]) and np.isfinite(predicted[1])

    script = textwrap.dedent(f"""
        import sys, numpy as np, keras
        x = np.load({str(tmp_path / 'x.npy')!r}).astype("float32")
        for tuner in ("nas", "progressive"):
            model = keras.models.load_model(f"{{tuner}}.keras")
            np.save(f"{{tuner}}.npy", model.predict(x, verbose=0)["probabilities"])
        assert "automl_kit" not in sys.modules
        """)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    for tuner, clf in classifiers.items():
        np.testing.assert_allclose(np.load(tmp_path / f"{tuner}.npy"), clf.predict_proba(x[:50]), atol=1e-6)


def _scripted(strategy_class, calls, kill_at=None):
    """`strategy_class` with a training that scores each cell by its ops (no network is trained). It
    records the architectures it trains in `calls`; with `kill_at=(k, where)`, the process "dies" in
    the k-th call (1-based) of `where`, "train_trial" or "_checkpoint", before that call does anything."""

    class Scripted(strategy_class):
        counts = {"train_trial": 0, "_checkpoint": 0}

        def _die_at(self, where):
            self.counts[where] += 1
            if kill_at == (self.counts[where], where):
                raise KeyboardInterrupt

        def train_trial(self, trial_id, architecture, data, **kwargs):
            self._die_at("train_trial")
            calls.append(architecture)
            ops = [op for node in architecture.normal for op in node.ops]
            score = (ops.count("sep3x3") + 0.5 * ops.count("sep5x5")) / len(ops) + 0.01 * len(ops)
            return Trial(trial_id, architecture, COMPLETED, score=score, best_epoch=1, epochs_run=1)

        def _checkpoint(self):
            self._die_at("_checkpoint")
            return super()._checkpoint()

    return Scripted


def _search(strategy_class, folder, max_trials, num_nodes=2):
    project = Project(str(folder)).start({})
    space = MicroSearchSpace((8, 8), num_nodes=num_nodes)
    search = strategy_class(project=project, search_space=space, objective="val_accuracy", seed=0)
    return project, search.search(None, max_trials=max_trials, epochs=1, batch_size=32)


def test_nas_search_killed_after_its_second_child_resumes_without_retraining_them(tmp_path):
    whole = []
    _search(_scripted(NASSearch, whole), tmp_path / "whole", 5)

    first = []
    with pytest.raises(KeyboardInterrupt):
        # Killed after the second child's record, before the controller's checkpoint of its
        # update: the resumed search replays that update from the record.
        _search(_scripted(NASSearch, first, kill_at=(2, "_checkpoint")), tmp_path / "killed", 5)
    assert len(first) == 2
    records = {name: (tmp_path / "killed" / "trials" / name).read_text() for name in ("0000.json", "0001.json")}
    state = json.loads((tmp_path / "killed" / "project.json").read_text())
    assert state["nas"]["children"] == 1

    resumed = []
    project, trials = _search(_scripted(NASSearch, resumed), tmp_path / "killed", 5)
    assert len(resumed) == 3  # only children 3 to 5 trained
    for name, text in records.items():
        assert (tmp_path / "killed" / "trials" / name).read_text() == text
    assert project.state["nas"]["children"] == 5
    assert [t.architecture for t in trials] == whole  # what the uninterrupted search proposed
    assert trials[2].architecture != trials[0].architecture  # and the draws do differ


def test_progressive_grows_one_node_per_step_trains_at_most_k_and_resumes(tmp_path):
    whole = []
    project, trials = _search(_scripted(ProgressiveSearch, whole), tmp_path / "whole", 10, num_nodes=4)
    steps = project.state["progressive"]["steps"]
    beam = project.state["progressive"]["beam"]
    assert beam == 2 and [step["nodes"] for step in steps] == [1, 2, 3, 4]
    # 10 trials over 4 steps: K = 2 a step, and the first step (no surrogate yet) takes the 2 left over.
    assert [len(step["candidates"]) for step in steps] == [4, 2, 2, 2]
    assert [len(t.architecture.normal) for t in trials] == [1] * 4 + [2] * 2 + [3] * 2 + [4] * 2
    for before, step in zip(steps, steps[1:]):
        kept = {t.architecture.normal for t in trials if t.trial_id in step["kept"]}
        assert len(kept) <= beam
        for candidate in step["candidates"]:
            cell = Trial.from_dict({"trial_id": "", "status": "", "architecture": candidate["architecture"]})
            assert cell.architecture.normal[:-1] in kept  # one node added to a kept cell
            assert candidate["predicted"] is not None
    assert [t.predicted_score for t in trials[4:]] == [c["predicted"] for s in steps[1:] for c in s["candidates"]]
    # The surrogate's fit is stored: its predictions on its own training scores follow them.
    fit = steps[-1]["fit"]
    assert len(fit["targets"]) == 8
    assert stats.spearmanr(fit["predictions"], fit["targets"]).statistic > 0.5
    assert all("rank_tau" in step for step in steps[1:])
    # The scripted score rewards separable 3x3 convolutions, and the surrogate finds them.
    assert max(cell_features(t.architecture.normal)[0] for t in trials[4:]) >= 2

    killed = []
    with pytest.raises(KeyboardInterrupt):
        _search(_scripted(ProgressiveSearch, killed, kill_at=(6, "train_trial")), tmp_path / "killed", 10, 4)
    resumed = []
    _, again = _search(_scripted(ProgressiveSearch, resumed), tmp_path / "killed", 10, num_nodes=4)
    assert len(killed) == 5 and len(resumed) == 5
    assert [t.architecture for t in again] == whole


def test_progressive_refuses_the_macro_space_before_training(small_digits, no_training):
    x, y = small_digits
    with pytest.raises(ValueError, match="tuner='progressive' grows the cells of the micro search space"):
        ImageClassifier(tuner="progressive", search_space="macro").fit(x, y)
