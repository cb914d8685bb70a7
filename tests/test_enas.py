"""The shared-weight search: supernet, controller, ENAS and random_ws end to end."""

import re
from types import SimpleNamespace

import numpy as np
import pytest

from automl_kit import ImageClassifier
from automl_kit.blocks import MacroSearchSpace, MicroSearchSpace, build_model
from automl_kit.blocks.architecture import architecture_from_dict
from automl_kit.data import InputSpec
from automl_kit.tuner import training
from automl_kit.tuner.controller import Controller
from automl_kit.tuner.supernet import Supernet

SPEC = InputSpec((8, 8), (8, 8, 1))


def _supernet(space):
    return Supernet(space, SPEC, num_classes=10, mean=[8.0], variance=[36.0])


@pytest.fixture(scope="module", params=["micro", "macro"])
def trained_supernet(request, small_digits):
    """A supernet trained for 30 shared steps, each on a different random child."""
    space = MicroSearchSpace((8, 8), num_nodes=3) if request.param == "micro" else MacroSearchSpace((8, 8))
    supernet = _supernet(space)
    x, y = small_digits
    rng = np.random.default_rng(0)
    for step in range(30):
        batch = rng.choice(len(x), 32, replace=False)
        supernet.train_step(x[batch], y[batch], np.ones(32), space.encode(space.sample(rng)))
    return supernet


def test_one_trace_serves_twenty_architectures(trained_supernet, small_digits):
    space = trained_supernet.space
    x, y = small_digits
    rng = np.random.default_rng(1)
    architectures = {space.sample(rng) for _ in range(20)}
    assert len(architectures) == 20
    for arch in architectures:
        loss = trained_supernet.train_step(x[:16], y[:16], np.ones(16), space.encode(arch))
        assert np.isfinite(loss)
    # 30 steps in the fixture and 20 here, with batches of two sizes: one trace.
    assert trained_supernet.traces == 1


def test_weight_inheritance_is_exact(trained_supernet, small_digits):
    """The standalone child, loaded with its path's shared weights, is the child the supernet scored."""
    space = trained_supernet.space
    x, _ = small_digits
    rng = np.random.default_rng(2)
    for _ in range(5):
        arch = space.sample(rng)
        child = trained_supernet.inherit(build_model(arch, SPEC, 10, [8.0], [36.0]))
        expected = trained_supernet.predict_child(x[:64], space.encode(arch))
        np.testing.assert_allclose(child.predict(x[:64].astype("float32"), verbose=0), expected, atol=1e-5)
        # Not trivially equal: children disagree with each other.
    other = space.sample(rng)
    assert np.abs(trained_supernet.predict_child(x[:64], space.encode(other)) - expected).max() > 1e-3


def test_only_the_chosen_branch_runs(small_digits):
    """A NaN kernel in one op poisons the output only of children that use that op."""
    space = MicroSearchSpace((8, 8), num_nodes=2)
    supernet = _supernet(space)
    poisoned = supernet.pool.layers["cell0_n0_0_sep5x5_conv"]
    poisoned.set_weights([np.full_like(w, np.nan) for w in poisoned.get_weights()])
    x, y = small_digits
    arch = space.sample(np.random.default_rng(0))
    decisions = dict(zip(space.decision_keys, space.encode(arch)))
    # The poisoned op last: a training-mode pass through it puts NaN into
    # the moving statistics of every later batch normalisation.
    for op_index, expect_nan in [(0, False), (4, False), (1, True)]:  # sep3x3, identity, sep5x5
        chosen = [op_index if key == "normal/n0/op0" else value for key, value in decisions.items()]
        for is_training in (False, True):
            out = supernet.call((x[:8].astype("float32"), np.asarray(chosen, np.int32)), training=is_training)
            assert np.isnan(out.numpy()).any() == expect_nan, (op_index, is_training)
        if not expect_nan:  # the backward pass does not touch the poisoned branch either
            assert np.isfinite(supernet.train_step(x[:8], y[:8], np.ones(8), chosen))


@pytest.mark.parametrize("space, seed", [
    (MicroSearchSpace((8, 8), num_nodes=2), 5),  # sep3x3, sep5x5, avgpool, identity
    (MicroSearchSpace((8, 8), num_nodes=2), 6),  # maxpool (recomputed)
    (MacroSearchSpace((8, 8)), 1),  # conv5x5, res3x3 (recomputed), skips
], ids=["micro-5", "micro-6", "macro-1"])
def test_a_shared_step_trains_only_the_childs_path_as_the_child_alone(space, seed, small_digits):
    """A fresh supernet's step on a child equals that child's own first Adam step, and
    leaves every weight off the child's path as it was. The supernet differentiates
    each op by hand (`blocks/path.py`); the child, by TensorFlow's autodiff."""
    supernet = _supernet(space)
    x, y = small_digits
    arch = space.sample(np.random.default_rng(seed))
    child = supernet.inherit(build_model(arch, SPEC, 10, [8.0], [36.0]))
    training.compile_for_classification(child)
    before = {name: [np.array(w) for w in layer.trainable_weights] for name, layer in supernet.pool.layers.items()}
    child.train_on_batch(x[:32].astype("float32"), y[:32])
    supernet.train_step(x[:32], y[:32], np.ones(32), space.encode(arch))
    on_path = {layer.name for layer in child.layers if layer.trainable_weights}
    assert len(on_path) > 5
    for name in on_path:
        shared, alone = supernet.pool.layers[name].trainable_weights, child.get_layer(name).trainable_weights
        for s, a, b in zip(shared, alone, before[name]):
            s, a, b = np.asarray(s), np.asarray(a), np.asarray(b)
            assert np.abs(s - b).max() > 5e-4, name  # the step moved it (Adam's first step is ~lr)
            # Adam's first step is lr * g / (|g| + 1e-7): +-lr wherever the gradient is well above
            # 1e-7. Below, the gradient is float rounding, which the step scales up to as much as lr.
            full = np.abs(a - b) > 0.9 * training.LEARNING_RATE
            assert full.mean() > 0.9, name
            np.testing.assert_allclose(s[full], a[full], atol=1e-4, err_msg=name)
            assert np.abs(s - b).max() <= 1.001 * training.LEARNING_RATE, name
    moved_off_path = [name for name, layer in supernet.pool.layers.items() if name not in on_path and any(
        not np.array_equal(np.asarray(w), b) for w, b in zip(layer.trainable_weights, before[name]))]
    assert moved_off_path == []
    # A second child's step leaves the first child's own ops alone: no stale Adam moment moves them.
    other = space.sample(np.random.default_rng(seed + 1))
    # The candidate ops' layers: cellK_nI_... (micro) and sS_lP_... (macro). A calibration of a cell
    # input that the second child leaves unread still runs in the supernet, with a gradient of zero.
    own_ops = {name for name in on_path if re.search(r"_n\d+_|_l\d+_", name)} - {
        layer.name for layer in build_model(other, SPEC, 10, [8.0], [36.0]).layers}
    assert own_ops
    kept = {name: [np.asarray(w).copy() for w in supernet.pool.layers[name].trainable_weights] for name in own_ops}
    supernet.train_step(x[32:64], y[32:64], np.ones(32), space.encode(other))
    for name in own_ops:
        for w, b in zip(supernet.pool.layers[name].trainable_weights, kept[name]):
            np.testing.assert_array_equal(np.asarray(w), b)


def test_a_cell_that_no_later_cell_reads_is_left_out_as_in_the_child(small_digits):
    """A cell whose output no later cell reads is not in the standalone child (Keras keeps only
    the layers the output depends on); the supernet's step neither runs it nor moves the weights
    of its ops and input calibrations with their Adam moments."""
    space = MicroSearchSpace((8, 8), num_nodes=2)  # cells: normal, reduce, normal
    supernet = _supernet(space)
    x, y = small_digits
    arch = space.encode(space.sample(np.random.default_rng(5)))
    # The same child, except that its normal cells read their second input wherever they read
    # their first: the last cell no longer reads the reduction cell, which is then dead.
    bypass = [1 if key.startswith("normal/") and "/in" in key and value == 0 else value
              for key, value in zip(space.decision_keys, arch)]
    child = build_model(space.decode(bypass), SPEC, 10, [8.0], [36.0])
    assert not [layer.name for layer in child.layers if layer.name.startswith("cell1_")]
    supernet.train_step(x[:32], y[:32], np.ones(32), arch)  # gives the reduction cell's ops Adam moments
    dead_ops = [name for name in supernet.pool.layers if re.match(r"cell1_(n\d+|in\d)_", name)
                and name in {layer.name for layer in build_model(space.decode(arch), SPEC, 10, [8.0], [36.0]).layers}]
    assert dead_ops
    kept = {name: [np.asarray(w).copy() for w in supernet.pool.layers[name].weights] for name in dead_ops}
    supernet.train_step(x[32:64], y[32:64], np.ones(32), bypass)
    for name in dead_ops:
        for w, before in zip(supernet.pool.layers[name].weights, kept[name]):
            np.testing.assert_array_equal(np.asarray(w), before, err_msg=name)
    np.testing.assert_allclose(supernet.inherit(child).predict(x[:64].astype("float32"), verbose=0),
                               supernet.predict_child(x[:64], bypass), atol=1e-5)


def test_controller_update_raises_the_log_probability_of_a_rewarded_architecture():
    space = MicroSearchSpace((28, 28))
    controller = Controller(space.decision_sizes, seed=0)
    rng = np.random.default_rng(0)
    rewarded, _, _ = controller.sample(rng)
    before = controller.log_prob(rewarded)
    controller.update(rewarded, reward=0.5)  # sets the baseline
    for _ in range(3):
        controller.update(rewarded, reward=1.0)
    assert controller.log_prob(rewarded) > before + 0.1
    # and an architecture punished below the baseline becomes less likely
    punished, _, _ = controller.sample(rng)
    before = controller.log_prob(punished)
    controller.update(punished, reward=0.0)
    assert controller.log_prob(punished) < before


def test_skip_penalty_pulls_skip_probability_towards_its_target():
    space = MacroSearchSpace((8, 8))
    skips = [space.decision_keys.index(k) for k in space.skip_keys]
    controller = Controller(space.decision_sizes, skip_positions=skips, skip_target=0.1, skip_weight=5.0, seed=0)
    rng = np.random.default_rng(0)

    def skip_rate():
        return np.mean([[d[i] for i in skips] for d, _, _ in (controller.sample(rng) for _ in range(200))])

    before = skip_rate()
    for _ in range(30):
        decisions, _, _ = controller.sample(rng)
        controller.update(decisions, reward=controller.baseline or 0.0)  # no advantage: only the penalty acts
    assert skip_rate() < before - 0.1


def test_enas_is_the_default_and_records_its_search(fitted_digits):
    """fitted_digits is a default ImageClassifier: ENAS over the macro space."""
    assert fitted_digits.tuner == "enas"
    trials = fitted_digits.trials_
    assert len(trials) == 2 and all(t.shared_score is not None for t in trials)
    assert all(t.architecture.to_dict()["type"] == "cnn" for t in trials)
    # The supernet's own best pick is confirmed first, the space's prior second.
    assert trials[1].architecture == MacroSearchSpace((8, 8)).prior() != trials[0].architecture


# The default fit (fitted_digits) runs ENAS over the macro space; these cover the other pairs.
@pytest.mark.parametrize("tuner, search_space", [("random_ws", "macro"), ("enas", "micro")])
def test_shared_weight_tuners_end_to_end(tuner, search_space, digits_split, tmp_path):
    x_train, x_test, y_train, y_test = digits_split
    clf = ImageClassifier(max_trials=1, tuner=tuner, search_space=search_space, seed=0, directory=str(tmp_path))
    clf.fit(x_train, y_train, epochs=4, verbose=0)
    assert clf.score(x_test, y_test) > 0.8
    import json
    state = json.load(open(tmp_path / "image_classifier" / "project.json"))["shared_weights"]
    assert len(state["history"]) == 4 and state["derived"] > 10
    assert ("mean_reward" in state["history"][-1]) == (tuner == "enas")


def test_the_shared_fit_runs_on_one_worker_only(request, fitted_digits):
    """Under pytest-xdist's --dist loadgroup (setup.cfg), every test that uses the
    shared fit carries its group in its id, so one worker fits it once. pytest 9.2
    broke that silently (pytest-xdist#1386): each worker fitted again."""
    if getattr(request.config.option, "loadgroup", False):
        assert request.node.nodeid.endswith("@fitted_digits"), request.node.nodeid


class _Killed(Exception):
    pass


def _scripted_confirmation(tmp_path, quality, kill_after=None, train_images=3200, budget=None, plan=None,
                           each_trial=None):
    """Runs random_ws's confirmation of the `quality` list's candidates (5 at most) on a project in
    tmp_path (`train_images` images in batches of 32, no time limit unless `budget` and `plan` are
    given, `epochs=10`), with each trial's
    "training" replaced by a score: the `quality` of its architecture, a little lower the longer it
    trained (so that a later rung's best is not simply the highest score), after calling
    `each_trial(deadline)` if given; raises _Killed once
    `kill_after` trials have run. Returns the trials, what this call trained (architecture,
    epochs), the candidates' architectures and the search."""
    from automl_kit.tuner import Project
    from automl_kit.tuner.enas import SharedWeightSearch
    from automl_kit.tuner.trial import COMPLETED, Trial

    space = MacroSearchSpace((8, 8))
    rng = np.random.default_rng(0)
    architectures = list(dict.fromkeys(space.sample(rng) for _ in range(20)))[:len(quality)]
    project = Project(str(tmp_path / "p")).start(fingerprint={"test": 1})
    search = SharedWeightSearch(project=project, search_space=space, objective="val_accuracy", seed=0)
    trained = []

    def train_trial(trial_id, architecture, data, *, epochs, **kwargs):
        if kill_after is not None and len(trained) == kill_after:
            raise _Killed()
        trained.append((architecture, epochs))
        if each_trial is not None:
            each_trial(kwargs["deadline"])
        score = quality[architectures.index(architecture)] - 0.01 * epochs
        return Trial(trial_id, architecture, COMPLETED, score=score, best_epoch=epochs, epochs_run=epochs, params=1,
                     rung=kwargs["rung"])

    search.train_trial = train_trial
    state = project.state.get("shared_weights") or {
        "candidates": [{"architecture": a.to_dict(), "shared_score": 0.5} for a in architectures]}
    if plan is not None:
        state = dict(state, plan=plan.to_dict())
    try:
        data = SimpleNamespace(x_train=np.zeros((train_images, 1)))
        trials = search._confirm(state, project.load_trials(), data, max_trials=5, epochs=10, batch_size=32,
                                 callbacks=(), budget=budget, progress=_silent())
    except _Killed:
        trials = None
    return trials, trained, architectures, search


def _silent():
    from automl_kit.tuner.progress import Progress

    return Progress(verbose=0)


def test_successive_halving_keeps_the_better_half_and_resumes_without_rerunning(tmp_path):
    quality = [0.50, 0.90, 0.70, 0.80, 0.60]
    # Killed in the second rung, after its first trial.
    trials, trained, architectures, _ = _scripted_confirmation(tmp_path, quality, kill_after=6)
    assert trials is None and len(trained) == 6
    # Resumed on the same project: the finished trials are not trained again.
    trials, trained, architectures, search = _scripted_confirmation(tmp_path, quality)
    rungs = [t.rung for t in trials]
    assert rungs == [0] * 5 + [1] * 3 + [2] * 2  # rungs of 5, 3 and 2 candidates
    # Each rung trains the best of the rung before, best first, for twice as many epochs.
    assert [architectures.index(t.architecture) for t in trials] == [0, 1, 2, 3, 4, 1, 3, 2, 1, 3]
    assert [t.best_epoch for t in trials] == [1] * 5 + [2] * 3 + [4] * 2
    assert len(trained) == 4 and trained[0][0] == architectures[3]  # from the kill on, nothing twice
    # The best trial is the last rung's best, not the higher score of an earlier, shorter training.
    assert search.best_trial(trials).rung == 2


def test_every_trial_of_a_rung_gets_the_same_time_when_one_runs_past_its_deadline(tmp_path, monkeypatch):
    """Two candidates share one rung under a time budget; the first runs 10 s past its deadline (its
    flip test, record and cleanup come after it). The second still gets as long as the first: had the
    time been shared out anew, it would have lost those 10 s."""
    from automl_kit.tuner import enas
    from automl_kit.tuner.plan import Plan

    clock = SimpleNamespace(now=280.0)  # the search began at 0; its derivation ended at 28% of 1,000 s
    monkeypatch.setattr(enas, "time", SimpleNamespace(monotonic=lambda: clock.now))
    plan = Plan(shared_weights=True, setup_seconds=1.0, step_seconds=0.01, epoch_seconds=10.0,
                supernet_seconds=100.0, available_seconds=250.0, search_share=enas.CONFIRM_SHARE,
                final_seconds=160.0)
    lengths = []

    def each_trial(deadline):
        lengths.append(deadline - clock.now)
        clock.now = deadline + (10.0 if len(lengths) == 1 else 0.0)

    budget = SimpleNamespace(start=0.0, seconds=1000.0, end=1000.0)
    trials, _, _, _ = _scripted_confirmation(tmp_path, [0.9, 0.8], budget=budget, plan=plan,
                                             each_trial=each_trial)
    assert [t.rung for t in trials] == [0, 0]
    # Confirmation ends at 400 s: 120 s for two trials of a 4 s fixed cost each, 56 s of training apiece.
    assert lengths == pytest.approx([60.0, 60.0])


def test_after_a_supernet_its_pick_and_the_prior_are_confirmed_when_the_search_runs_late(tmp_path, monkeypatch):
    """The derivation ended 8 s late: the 20 s left before the confirmation's end hold one trial of the
    plan's least (a 4 s fixed cost and a 10 s epoch), not two. Both still train, each its least, and the
    8 s come out of the final training."""
    from automl_kit.tuner import enas
    from automl_kit.tuner.plan import Plan

    clock = SimpleNamespace(now=380.0)
    monkeypatch.setattr(enas, "time", SimpleNamespace(monotonic=lambda: clock.now))
    lengths = []

    def each_trial(deadline):
        lengths.append(deadline - clock.now)
        clock.now = deadline

    budget = SimpleNamespace(start=0.0, seconds=1000.0, end=1000.0)
    # Without a supernet (candidates from scratch, until 25% of the budget), one trial in the same 20 s.
    for shared_weights, start, confirmed in ((True, 380.0, [14.0, 14.0]), (False, 230.0, [20.0])):
        plan = Plan(shared_weights=shared_weights, setup_seconds=1.0, step_seconds=0.01, epoch_seconds=10.0,
                    supernet_seconds=100.0, available_seconds=250.0, search_share=enas.CONFIRM_SHARE,
                    final_seconds=160.0)
        clock.now = start
        lengths.clear()
        trials, _, _, _ = _scripted_confirmation(tmp_path / str(shared_weights), [0.9, 0.8], budget=budget,
                                                 plan=plan, each_trial=each_trial)
        assert len(trials) == len(confirmed) and lengths == pytest.approx(confirmed)


def test_without_a_time_limit_a_first_rung_trains_at_least_min_rung_steps(tmp_path):
    """On 640 images (20 steps an epoch) one epoch is too few steps to score anything: the first rung
    trains 100 steps' worth, 5 epochs, and no rung more than `epochs=10`."""
    trials, _, _, _ = _scripted_confirmation(tmp_path, [0.50, 0.90, 0.70, 0.80, 0.60], train_images=640)
    assert [t.best_epoch for t in trials] == [5] * 5 + [10] * 3 + [10] * 2


def test_the_candidates_are_ranked_by_their_score_on_all_the_scoring_images(tmp_path):
    """Every architecture is scored on the first 512 images; the candidates again on all of them
    (up to RESCORING_SAMPLES), and the supernet's pick is the best of that second scoring."""
    from automl_kit.tuner import Project
    from automl_kit.tuner.enas import SCORING_SAMPLES, SharedWeightSearch

    space = MacroSearchSpace((8, 8))
    project = Project(str(tmp_path / "p")).start(fingerprint={"test": 1})
    search = SharedWeightSearch(project=project, search_space=space, objective="val_accuracy", seed=0)
    prior = tuple(space.encode(space.prior()))
    lucky, better, other = list(dict.fromkeys(
        k for k in (tuple(space.encode(space.sample(np.random.default_rng(i)))) for i in range(9)) if k != prior))[:3]
    draws = iter([lucky, better, other])
    search._sample = lambda controller, rng: (list(next(draws, lucky)), None)
    x_val = np.arange(2000)  # each "image" is its index, so the fake supernet knows which it scores
    first, calls = set(), []

    class FakeSupernet:  # `lucky` is right on the images of the first scoring only, `better` on 90% of all
        def accuracy(self, x, y, decisions):
            key = tuple(decisions)
            calls.append(key)
            if set(calls) == {prior}:  # the first scoring, the prior's, sees the images every one sees
                first.update(x.tolist())
            right = {lucky: np.isin(x, list(first)), better: x % 10 != 0, other: x % 2 == 0}
            return float(np.mean(right.get(key, x % 5 != 0)))  # the prior: 80% right

    data = SimpleNamespace(x_val=x_val, y_val=np.zeros(2000, int))
    state = search._derive({}, FakeSupernet(), None, data, x_val, max_trials=3, deadline=None, progress=_silent())
    assert len(first) == SCORING_SAMPLES and state["scoring_images"] == [SCORING_SAMPLES, 2000]
    ranked = [tuple(space.encode(architecture_from_dict(c["architecture"]))) for c in state["candidates"]]
    # On the 512 images `lucky` scored 1.0 and led; on all 2,000 `better` leads, and the prior stays second.
    assert ranked == [better, prior, lucky]
    assert [c["shared_score"] for c in state["candidates"]] == pytest.approx([0.9, 0.8, 0.256])
