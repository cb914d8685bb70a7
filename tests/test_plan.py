"""The budget plan: a supernet only where the budget can pay for it, and the space's prior to start from."""

import json

import numpy as np
import pytest

from automl_kit import ImageClassifier
from automl_kit.blocks import MacroSearchSpace, MicroSearchSpace
from automl_kit.blocks.builder import build_model
from automl_kit.data import InputSpec
from automl_kit.tuner.budget import TimeBudget
from automl_kit.tuner import plan
from automl_kit.tuner.enas import SharedWeightSearch
from automl_kit.tuner.plan import Plan, plan_search


@pytest.mark.parametrize("space_class", [MicroSearchSpace, MacroSearchSpace])
@pytest.mark.parametrize("shape", [(8, 8), (28, 28), (32, 32, 3)])
def test_the_prior_is_an_architecture_of_its_space(space_class, shape):
    space = space_class(shape)
    prior = space.prior()
    assert space.decode(space.encode(prior)) == prior
    assert prior != space.smallest()
    spec = InputSpec.infer(np.zeros((2, *shape), np.uint8), None)
    assert build_model(prior, spec, 10, [0.0] * spec.network_shape[-1], [1.0] * spec.network_shape[-1]).count_params() > 0
    text = str(prior)
    assert ("identity" in text) if space_class is MicroSearchSpace else ("conv3x3" in text and "(+0)" in text)


def test_the_plan_weighs_the_supernet_against_the_budget(small_search_data, monkeypatch):
    data = small_search_data
    space = MicroSearchSpace((8, 8))
    # A supernet share above MIN_SUPERNET_SECONDS is measured; traces priced beyond it do not fit.
    monkeypatch.setattr(plan, "SUPERNET_SETUP_FACTOR", 1000.0)
    tight = plan_search(space, data, 32, TimeBudget(200), 0.25, 0.4, 300)
    assert tight.measured and not tight.shared_weights and tight.setup_seconds > 0 and tight.step_seconds > 0
    assert tight.supernet_seconds > tight.available_seconds
    assert "cannot pay for a supernet" in str(tight)
    monkeypatch.setattr(plan, "SUPERNET_SETUP_FACTOR", 4.0)
    roomy = plan_search(space, data, 32, TimeBudget(10_000), 0.25, 0.4, 300)
    assert roomy.shared_weights and roomy.supernet_seconds <= roomy.available_seconds
    assert roomy.search_share == 0.4 and not roomy.prior_alone and roomy.describe(0.4) == str(roomy)
    assert Plan.from_dict(json.loads(json.dumps(roomy.to_dict()))) == roomy
    # 300 images are 10 steps an epoch: a first-rung trial's least training is MIN_RUNG_STEPS steps, not 2 epochs
    first = plan.MIN_RUNG_STEPS * roomy.step_seconds
    assert first > plan.MIN_RUNG_EPOCHS * roomy.epoch_seconds
    assert roomy.rung_training_seconds(0) == pytest.approx(first)
    # rungs of 3 and 2 candidates: each trial its fixed cost (a multiple of the setup), 3 trained `first`, 2 twice it
    assert roomy.trial_setup_seconds == pytest.approx(plan.TRIAL_SETUP_FACTOR * roomy.setup_seconds)
    assert roomy.halving_seconds([3, 2]) == pytest.approx(5 * roomy.trial_setup_seconds + 7 * first)


def test_the_plan_keeps_the_final_trainings_epochs(small_search_data, monkeypatch):
    data = small_search_data
    space = MicroSearchSpace((8, 8))
    # The prior measured at a 1 s setup and 10 ms a step; a supernet priced at nothing.
    monkeypatch.setattr(plan, "measure", lambda *args: (1.0, 0.01))
    monkeypatch.setattr(plan, "SUPERNET_SETUP_FACTOR", 0.0)

    def planned(final_seconds):  # a plan whose final training, 13 steps an epoch of all 400 images, takes this long
        monkeypatch.setattr(plan, "FINAL_PRIOR_EPOCHS", (final_seconds - 1.0) / 0.13)
        return plan_search(space, data, 32, TimeBudget(10_000), 0.25, 0.4, 300)

    roomy = planned(5_000)
    assert roomy.final_seconds == pytest.approx(5_000) and roomy.search_share == 0.4
    assert roomy.describe(0.4) == str(roomy)
    # A final training that needs 80% of the budget ends the search at 20%, and the supernet's share shrinks alike.
    shrunk = planned(8_000)
    assert shrunk.search_share == pytest.approx(0.2) and shrunk.shared_weights and not shrunk.prior_alone
    assert shrunk.available_seconds == pytest.approx(0.25 * 0.5 * 10_000, abs=5)
    assert "ends at 20% of the budget instead of 40%" in shrunk.describe(0.4)
    # A search that could not train even one candidate from scratch (4 s of fixed cost and 100 steps) does not
    # run, nor where the final training needs all the budget: the prior is the final model.
    assert not planned(10_000 - 10).prior_alone
    for final in (10_000 - 3, 20_000):
        alone = planned(final)
        assert alone.search_share == 0 and alone.prior_alone and not alone.shared_weights
        assert "no room for a search" in alone.describe(0.4)
    assert Plan.from_dict(json.loads(json.dumps(alone.to_dict()))) == alone
    # Then the prior trains as a short trial (4 s of fixed cost and 100 steps: 5 s) and the final training goes on
    # from it, where that leaves its setup (1 s) and 2 epochs of all the data (0.13 s each); with less, the trial
    # trains to the limit.
    assert alone.final_epoch_seconds == pytest.approx(0.13)
    assert alone.trial_then_final(5.0 + 1.0 + 0.27) and not alone.trial_then_final(5.0 + 1.0 + 0.25)


def test_the_supernet_ends_early_enough_to_confirm_its_pick_against_the_prior(small_search_data, monkeypatch):
    data = small_search_data
    space = MicroSearchSpace((8, 8))
    # A 1 s setup and 10 ms a step: a first-rung trial costs 4 s fixed and 100 steps, 5 s; two of them 10 s.
    monkeypatch.setattr(plan, "measure", lambda *args: (1.0, 0.01))
    monkeypatch.setattr(plan, "SUPERNET_SETUP_FACTOR", 0.0)
    monkeypatch.setattr(plan, "MIN_SUPERNET_SECONDS", 0)

    def planned(seconds, confirmed):
        budget = TimeBudget(seconds)
        return budget, plan_search(space, data, 32, budget, 0.25, 0.4, 300, derive_share=0.28, confirmed=confirmed)

    # At 60 s the confirmation's own share, 40% - 28% (7.2 s), holds one trial but not two: to confirm two, the
    # supernet ends 2.8 s early (at 40% - 3% - 10 s), and its derivation with it, still 3% of the budget long.
    budget, tight = planned(60, 2)
    assert tight.supernet_share == pytest.approx(0.4 - 0.03 - 10 / 60, abs=1e-4)
    assert tight.available_seconds == pytest.approx(tight.supernet_share * 60, abs=1)
    supernet_end, derive_end = SharedWeightSearch._phase_ends(budget, tight)
    assert supernet_end - budget.start == pytest.approx(tight.supernet_share * 60)
    assert derive_end - supernet_end == pytest.approx(0.03 * 60) and budget.start + 0.4 * 60 - derive_end >= 10 - 1e-3
    # One candidate to confirm, or a budget whose confirmation holds two: the supernet keeps its whole share.
    assert planned(60, 1)[1].supernet_share == 0.25 and planned(1_000, 2)[1].supernet_share == 0.25
    assert Plan.from_dict(json.loads(json.dumps(tight.to_dict()))) == tight
    # A plan stored before supernet_share existed keeps the nominal shares.
    older = {key: value for key, value in tight.to_dict().items() if key != "supernet_share"}
    assert SharedWeightSearch._phase_ends(budget, Plan.from_dict(older))[0] == pytest.approx(budget.start + 0.25 * 60)


def test_a_supernet_share_under_its_traces_is_not_measured(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a budget this small must not spend a build and a trace on measuring")

    monkeypatch.setattr(plan, "measure", refuse)
    small = plan_search(MicroSearchSpace((8, 8)), None, 32, TimeBudget(60), 0.25, 0.4, 300)
    assert not small.measured and not small.shared_weights and small.prior_alone
    assert not small.trial_then_final(10_000)  # nothing measured: the one candidate is the final model
    assert small.available_seconds < plan.MIN_SUPERNET_SECONDS and small.halving_seconds([1]) == float("inf")
    assert "too small for a supernet" in str(small)
    assert Plan.from_dict(json.loads(json.dumps(small.to_dict()))) == small


def test_a_budget_too_small_for_a_supernet_trains_the_prior_from_scratch(small_digits, tmp_path, capsys,
                                                                        monkeypatch):
    from automl_kit.tuner import enas

    # The one candidate's score chooses nothing: it validates on a sample of the validation images.
    monkeypatch.setattr(enas, "ONE_CANDIDATE_VALIDATION_IMAGES", 40)
    x, y = small_digits
    clf = ImageClassifier(max_trials=3, search_space="macro", seed=0, time_limit=25, directory=str(tmp_path))
    clf.fit(x, y, verbose=1)
    assert "too small for a supernet" in capsys.readouterr().out
    state = json.load(open(tmp_path / "image_classifier" / "project.json"))["shared_weights"]
    assert state["plan"]["shared_weights"] is False and state["plan"]["setup_seconds"] is None
    assert "epochs_done" not in state
    assert state["candidates"][0]["architecture"] == MacroSearchSpace((8, 8)).prior().to_dict()
    assert clf.trials_[0].architecture == MacroSearchSpace((8, 8)).prior()
    assert clf.trials_[0].shared_score is None
    assert set(clf.trials_[0].history["validation_samples"]) == {40}  # of the 80 held out
    assert not (tmp_path / "image_classifier" / "supernet").exists()
    assert clf.score(x, y) > 0.5  # well above chance (0.1) even at 25 s, with other tests on the same cores


def test_without_room_for_a_search_the_prior_trains_briefly_then_on_all_the_data(small_digits, tmp_path, capsys,
                                                                                   monkeypatch):
    # Measured, but a final training priced beyond the budget: no search, the prior alone.
    monkeypatch.setattr(plan, "MIN_SUPERNET_SECONDS", 0)
    monkeypatch.setattr(plan, "FINAL_PRIOR_EPOCHS", 10_000)
    x, y = small_digits
    # 40 s, not 25: the trial (4 setups and 100 steps, 11 s alone here) and the plan's measurement run 2 to 3 times
    # slower beside another test on CI's two cores, and at 25 s they once left the final stage less than an epoch.
    clf = ImageClassifier(max_trials=3, search_space="macro", seed=0, time_limit=40, directory=str(tmp_path))
    clf.fit(x, y, verbose=1)
    out = capsys.readouterr().out
    assert "no room for a search" in out and "then the final training goes on from its weights" in out
    state = json.load(open(tmp_path / "image_classifier" / "project.json"))["shared_weights"]
    assert state["plan"]["setup_seconds"] is not None and state["plan"]["search_share"] == 0
    [trial] = clf.trials_
    assert trial.architecture == MacroSearchSpace((8, 8)).prior()
    assert trial.history.get("flip_test")  # the trial told the final stage whether to flip
    # The final stage trained (on training + validation images): the trial was not the final model.
    assert clf.final_["how"].endswith("until the time limit") and clf.final_["epochs"] >= 1
    assert clf.score(x, y) > 0.5


def test_a_one_candidate_short_of_the_least_epochs_trains_narrowed(small_search_data, tmp_path):
    # The one candidate is narrowed as the final stage would narrow it (final.narrowed), a narrowing's epochs
    # priced at the found size's times the ratio of their step costs.
    from automl_kit.blocks.architecture import architecture_from_dict
    from automl_kit.tuner.progress import Progress
    from automl_kit.tuner.project import Project

    space = MacroSearchSpace((8, 8))
    project = Project(str(tmp_path / "p")).start(fingerprint={"test": 1})
    search = SharedWeightSearch(project=project, search_space=space, objective="val_accuracy", seed=0)
    state = search._from_scratch_candidates({}, small_search_data, 1, Progress(0))

    def one_candidate(epochs):
        narrowed = search._narrow_one_candidate(state, small_search_data, epochs, Progress(0))
        assert project.state["shared_weights"] == narrowed  # kept for a resumed search
        return architecture_from_dict(narrowed["candidates"][0]["architecture"]), narrowed["narrowed"]

    # 2 epochs predicted for the prior: x0.75 wide trains about 3, x0.5 about 6.
    architecture, record = one_candidate(2.0)
    assert architecture == space.prior().scaled(0.5, 1)
    assert record["width"] == 0.5 and record["as_found_epochs"] == 2.0 and 4 < record["predicted_epochs"] < 8
    # 26 epochs: the prior trains as it is.
    architecture, record = one_candidate(26.0)
    assert architecture == space.prior()
    assert record == {"width": 1.0, "as_found_epochs": 26.0, "predicted_epochs": 26.0}
    # Decided once: a resumed search, its state recording the narrowing, keeps it whatever is predicted now.
    decided = search._narrow_one_candidate(state, small_search_data, 2.0, Progress(0))
    resumed = search._narrow_one_candidate(decided, small_search_data, 26.0, Progress(0))
    assert resumed == decided and resumed["narrowed"]["width"] == 0.5


@pytest.mark.parametrize("final_epoch_seconds", [20.0, 0.5])
def test_a_short_trial_then_final_training_of_the_one_candidate_trains_it_narrowed_first(
        small_search_data, tmp_path, final_epoch_seconds):
    # Where the prior trains as a short trial and then on from its weights, the trial trains the narrowed network
    # where trial and final training together are short of the least epochs: narrowed after the trial (by the
    # final stage, from scratch), the trial's epochs were lost.
    from automl_kit.blocks.architecture import architecture_from_dict
    from automl_kit.tuner.final import MIN_EPOCHS, NARROWINGS
    from automl_kit.tuner.halving import rung_epochs
    from automl_kit.tuner.plan import least_rung_epochs
    from automl_kit.tuner.progress import Progress
    from automl_kit.tuner.project import Project

    class Trained(Exception):
        pass

    def train_trial(trial_id, architecture, data, **settings):
        raise Trained(architecture, settings["deadline"], settings["epochs"])

    space = MacroSearchSpace((8, 8))
    project = Project(str(tmp_path / "p")).start(fingerprint={"test": 1})
    search = SharedWeightSearch(project=project, search_space=space, objective="val_accuracy", seed=0)
    search.train_trial = train_trial
    assert not search.sized_to_the_budget()
    alone = Plan(shared_weights=False, setup_seconds=1.0, step_seconds=0.1, epoch_seconds=1.0, supernet_seconds=50.0,
                 available_seconds=10.0, search_share=0, final_seconds=1.0 + plan.FINAL_PRIOR_EPOCHS * final_epoch_seconds)
    state = search._from_scratch_candidates({"plan": alone.to_dict()}, small_search_data, 1, Progress(0))
    budget = TimeBudget(100)
    assert alone.trial_then_final(budget.remaining())
    # 7.5 epochs of the trial's 10 s over all the data, then 85 s after the final setup: 4.25 or 170 epochs.
    epochs = alone.trial_then_final_epochs(budget.remaining(), small_search_data.growth)
    with pytest.raises(Trained) as trained:
        search._confirm(state, [], small_search_data, 3, 1000, 32, [], budget, Progress(0))
    architecture, deadline, trial_epochs = trained.value.args
    record = project.state["shared_weights"]["narrowed"]
    assert record["as_found_epochs"] == pytest.approx(epochs, abs=0.2)
    if epochs < MIN_EPOCHS:
        assert architecture in [space.prior().scaled(width, 1) for width in NARROWINGS]
        assert record["width"] in NARROWINGS and record["predicted_epochs"] > epochs
    else:
        assert architecture == space.prior() and record["width"] == 1.0
    # The trial keeps its length: a first rung's least training and fixed cost; and its epochs are capped by the
    # fit's 1,000, not by the epochs predicted for the narrowing.
    assert deadline - budget.start == pytest.approx(alone.halving_seconds([1]), abs=2.0)
    assert trial_epochs == rung_epochs(1, search.confirm_epochs(1000), most=1000, least=least_rung_epochs(300, 32))[0]
    assert trial_epochs > 100
    assert architecture_from_dict(project.state["shared_weights"]["candidates"][0]["architecture"]) == architecture
    assert search.sized_to_the_budget()  # the final stage keeps the width chosen here
