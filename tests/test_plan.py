"""The budget plan: a supernet only where the budget can pay for it, and the space's prior to start from."""

import json

import numpy as np
import pytest

from automl_kit import ImageClassifier
from automl_kit.blocks import MacroSearchSpace, MicroSearchSpace
from automl_kit.blocks.builder import build_model
from automl_kit.data import InputSpec
from automl_kit.tuner import SearchData
from automl_kit.tuner.budget import TimeBudget
from automl_kit.tuner import plan
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


def test_the_plan_weighs_the_supernet_against_the_budget(small_digits, monkeypatch):
    x, y = small_digits
    x = x[..., None]
    spec = InputSpec.infer(x, None)
    data = SearchData(x_train=x[:300], y_train=y[:300], x_val=x[300:], y_val=y[300:], input_spec=spec,
                      num_classes=10, mean=(float(x.mean()),), variance=(float(x.var()),))
    space = MicroSearchSpace((8, 8))
    # A supernet share above MIN_SUPERNET_SECONDS is measured; traces priced beyond it do not fit.
    monkeypatch.setattr(plan, "SUPERNET_SETUP_FACTOR", 1000.0)
    tight = plan_search(space, data, 32, TimeBudget(200), 0.25, 300)
    assert tight.measured and not tight.shared_weights and tight.setup_seconds > 0 and tight.step_seconds > 0
    assert tight.supernet_seconds > tight.available_seconds
    assert "cannot pay for a supernet" in str(tight)
    monkeypatch.setattr(plan, "SUPERNET_SETUP_FACTOR", 4.0)
    roomy = plan_search(space, data, 32, TimeBudget(10_000), 0.25, 300)
    assert roomy.shared_weights and roomy.supernet_seconds <= roomy.available_seconds
    assert Plan.from_dict(json.loads(json.dumps(roomy.to_dict()))) == roomy
    # 300 images are 10 steps an epoch: a first-rung trial's least training is MIN_RUNG_STEPS steps, not 2 epochs
    first = plan.MIN_RUNG_STEPS * roomy.step_seconds
    assert first > plan.MIN_RUNG_EPOCHS * roomy.epoch_seconds
    assert roomy.rung_training_seconds(0) == pytest.approx(first)
    # rungs of 3 and 2 candidates: each trial its fixed cost (a multiple of the setup), 3 trained `first`, 2 twice it
    assert roomy.trial_setup_seconds == pytest.approx(plan.TRIAL_SETUP_FACTOR * roomy.setup_seconds)
    assert roomy.halving_seconds([3, 2]) == pytest.approx(5 * roomy.trial_setup_seconds + 7 * first)


def test_a_supernet_share_under_its_traces_is_not_measured(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a budget this small must not spend a build and a trace on measuring")

    monkeypatch.setattr(plan, "measure", refuse)
    small = plan_search(MicroSearchSpace((8, 8)), None, 32, TimeBudget(60), 0.25, 300)
    assert not small.measured and not small.shared_weights
    assert small.available_seconds < plan.MIN_SUPERNET_SECONDS and small.halving_seconds([1]) == float("inf")
    assert "too small for a supernet" in str(small)
    assert Plan.from_dict(json.loads(json.dumps(small.to_dict()))) == small


def test_a_budget_too_small_for_a_supernet_trains_the_prior_from_scratch(small_digits, tmp_path, capsys):
    x, y = small_digits
    clf = ImageClassifier(max_trials=3, search_space="macro", seed=0, time_limit=35, directory=str(tmp_path))
    clf.fit(x, y, verbose=1)
    assert "too small for a supernet" in capsys.readouterr().out
    state = json.load(open(tmp_path / "image_classifier" / "project.json"))["shared_weights"]
    assert state["plan"]["shared_weights"] is False and state["plan"]["setup_seconds"] is None
    assert "epochs_done" not in state
    assert state["candidates"][0]["architecture"] == MacroSearchSpace((8, 8)).prior().to_dict()
    assert clf.trials_[0].architecture == MacroSearchSpace((8, 8)).prior()
    assert clf.trials_[0].shared_score is None
    assert not (tmp_path / "image_classifier" / "supernet").exists()
    assert clf.score(x, y) > 0.5  # well above chance (0.1) even at 35 s, with other tests on the same cores
