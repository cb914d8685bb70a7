"""The final stage: the found architecture, scaled to the time left, trained with the recipe on all the data.

ENAS, NASNet and DARTS search a small proxy network and then train a larger
one built from the cells they found (ENAS: searched with 16 filters, trained
with 36). Here the best trial's architecture is scaled the same way, wider
(more filters) and deeper (more cells per stage, or each macro stage's
layers repeated), as far as the time left allows: each candidate scaling
(`SCALINGS`, in order of cost) is priced at the best trial's measured
seconds per epoch times the ratio of their step costs
(`builder.step_cost`: activations plus multiply-adds), and the largest
whose predicted epochs still reach `MIN_EPOCHS` trains. Pricing by building
and timing each candidate cost a trace of 8 s or more apiece on a CPU: at 2
minutes on digits it stopped after the first candidate (x1.5 wide, 134
epochs predicted), and a 32k-parameter network trained 119 epochs, at 100%
training accuracy from the 21st. Pricing by multiply-adds alone chose x2
wide x2 deep there, predicted at 22 epochs, and 62 ran: on small images a
step's time grows with the activations more than with the arithmetic.
Estimating stops at the first candidate that falls short, at
`max_model_size`, or when it has used `ESTIMATE_SHARE` of the time left.
On a slow machine the found size itself may fall short of `MIN_EPOCHS`
(counting the epochs of the trial whose weights it would go on from): it is
then narrowed the same way (`NARROWINGS`), so that a smaller network trains
more epochs from scratch. Not where the search already chose the width of its
one candidate for the whole budget (`SearchStrategy.sized_to_the_budget`):
the ratio of step costs leaves the per-step overhead out and so prices a
narrower network optimistically (on the Fashion-MNIST split, x0.5625 of the
prior priced at 13.7, 14.0 and 16.5 epochs ran 10, 11 and 11), and narrowing
it again would throw its trial's epochs away. Side by side it changed
nothing measurable (0.9060 and 0.9025 against 0.9040 and 0.9045, two seeds):
it is kept for the one decision and the trial's epochs.
Without a time budget there is nothing to size against, and the
architecture trains as found. The scaled network is still an
Architecture value (`scaled` changes its `filters` and depth fields), built
by the one builder, so export holds for it as for any child.

Then it trains on training plus validation data with the final recipe
(`recipe.py`): flips only where the best trial showed they keep the labels,
and a one-cycle rate that ends at the time limit. The trained network
predicts with the views it trained on (`builder.augmented_at_test_time`):
its probabilities are averaged over each image and its copies shifted by
`Recipe.test_time_shift` pixels, and over their mirror images where it
trained with flips, as airbench evaluates. A scaled network starts
from scratch; the trial's own architecture starts from the trial's weights
(kept on disk), so that the trial's epochs are not thrown away.
"""

import math
import os
import time

import keras
import numpy as np

from automl_kit.blocks.architecture import DenseArchitecture
from automl_kit.blocks.builder import augmented_at_test_time
from automl_kit.tuner import training
from automl_kit.tuner.base import forgetting_custom_gradients, release_memory
from automl_kit.tuner.budget import seconds_per_epoch, setup_seconds
from automl_kit.tuner.progress import EpochProgress
from automl_kit.tuner.recipe import Recipe, flip_preserves_labels

# (width, depth) multipliers, cheapest first.
SCALINGS = ((1.5, 1), (2, 1), (2, 2), (3, 2), (4, 3))
# Width multipliers for a found size with too little time, widest first. On a slow machine the budget
# can leave the found size fewer than MIN_EPOCHS epochs (the Fashion-MNIST split at 7 minutes, on a day
# this machine ran at half speed: 8.6 predicted, 6 ran). At equal predicted time (step cost x0.61 and
# x0.32), on held-out images (`benchmarks/scaling_ab.py`), the macro prior for 4 epochs against x0.5
# wide for 12 scored 0.8940/0.9030 and 0.8875/0.9065 on Fashion-MNIST (seeds 0, 1) and 0.6765/0.7165 on
# CIFAR-10; for 8 epochs against x0.75 for 13 and x0.5 for 24, 0.9040/0.9095/0.9030 and
# 0.8970/0.9130/0.9120 on Fashion-MNIST and 0.7535/0.7735/0.7710 on CIFAR-10: the size nearest
# MIN_EPOCHS won or tied each time.
NARROWINGS = (0.75, 0.5)
# A scaled network must still train for this many epochs: on a few thousand
# images with augmentation, too few epochs of a larger net lose to more of a
# smaller one. Fifteen are enough: at equal time, the macro prior x1.5 wide for
# 15 epochs scored 0.8175 and 0.8200 on CIFAR-10 held-out images where the
# prior for 30 scored 0.8095 and 0.8165, and tied on Fashion-MNIST (0.9155 and
# 0.9180 against 0.9175 and 0.9170), two seeds each (`benchmarks/scaling_ab.py`).
MIN_EPOCHS = 15
ESTIMATE_SHARE = 0.1


def flips_for(trial, num_classes):
    """Whether the final training flips: from `trial`'s flip test (see `SearchStrategy.train_trial`)."""
    test = (trial.history or {}).get("flip_test")
    return bool(test) and flip_preserves_labels(test[0], test[1], num_classes)


def scale(best, data, deadline, max_model_size, progress, trial_epochs=0.0, narrow=True):
    """(architecture, record): the largest scaling of `best`'s architecture whose estimated epochs still reach
    `MIN_EPOCHS` before `deadline`; the record lists the candidates estimated.

    A candidate's epoch is the trial's (on training + validation data) times
    the ratio of their step costs, and its setup the trial's times its
    depth (the trace grows with the layers). Where the found size itself
    falls short of `MIN_EPOCHS`, counting the `trial_epochs` (over all the
    data) that it goes on from, it is narrowed instead (`NARROWINGS`) where
    `narrow` allows it; `narrow=False` is for a one candidate whose width the
    search chose for the whole budget, trial and final training together: it
    goes on from its trial.
    """
    base = best.architecture
    record = {"width": 1.0, "depth": 1, "estimated": []}
    if deadline is None or isinstance(base, DenseArchitecture) or not best.epochs_run:
        return base, record
    epoch, setup = seconds_per_epoch(best) * data.growth, setup_seconds(best)

    def epochs_left(ratio, depth):  # at `ratio` times the trial's epoch over all the data, `depth` times its setup
        return float((deadline - time.monotonic() - setup * depth) / max(epoch * ratio, 1e-9))

    record["predicted_epochs"] = epochs_left(1.0, 1)
    estimating_ends = time.monotonic() + ESTIMATE_SHARE * (deadline - time.monotonic())
    base_cost = data.size_and_cost(base)[1]

    def estimate(width, depth):  # (candidate, predicted epochs), or None past max_model_size
        candidate = base.scaled(width, depth)
        params, cost = data.size_and_cost(candidate)
        if max_model_size is not None and params > max_model_size:
            return None
        ratio = cost / max(base_cost, 1)
        epochs = epochs_left(ratio, depth)
        record["estimated"].append({"width": width, "depth": depth, "params": params, "cost_ratio": round(ratio, 2),
                                    "predicted_epochs": round(epochs, 1)})
        progress.line(f"Scaling x{width:g} wide, x{depth} deep: {params:,} parameters, {ratio:.1f}x the "
                      f"step cost, {epochs:.0f} epoch(s) predicted.")
        return candidate, epochs

    if record["predicted_epochs"] + trial_epochs < MIN_EPOCHS and narrow:
        # The found size has no time to spare: a narrower network trains more epochs from scratch (the
        # found size's epochs counted with the trial's that it keeps).
        def epochs_at(width):
            estimated = None if time.monotonic() > estimating_ends else estimate(width, 1)
            return None if estimated is None else estimated[1]

        chosen, width, epochs = narrowed(base, record["predicted_epochs"] + trial_epochs, epochs_at)
        if width != 1.0:
            record.update(width=width, predicted_epochs=epochs)
        return chosen, record
    if record["predicted_epochs"] < MIN_EPOCHS:
        return base, record  # its trial's epochs make up for it; a scaled network, from scratch, could not
    chosen = base
    for width, depth in SCALINGS:
        if time.monotonic() > estimating_ends:
            break
        estimated = estimate(width, depth)
        if estimated is None or estimated[1] < MIN_EPOCHS:
            break
        chosen = estimated[0]
        record.update(width=width, depth=depth, predicted_epochs=estimated[1])
    return chosen, record


def narrowed(base, epochs, epochs_at):
    """(architecture, width, epochs): `base`, which trains `epochs`, or the narrowing of it (`NARROWINGS`)
    whose epochs come nearest `MIN_EPOCHS` by their ratio; `epochs_at(width)` predicts a narrowing's epochs
    (None: not a candidate). Narrower than the first to reach `MIN_EPOCHS` is only further from it.

    >>> from automl_kit.blocks.architecture import Architecture, LayerSpec
    >>> arch = Architecture(32, ((LayerSpec("conv3x3"),),))
    >>> chosen, width, epochs = narrowed(arch, 4.0, lambda width: 4.0 / (width * width))
    >>> print(chosen, width, epochs)
    16 filters | stage 1: conv3x3 | dropout 0.0 0.5 16.0
    """
    def distance(epochs):
        return abs(math.log(max(epochs, 1e-9) / MIN_EPOCHS))

    chosen = (base, 1.0, epochs)
    for width in NARROWINGS:
        predicted = epochs_at(width)
        if predicted is None:
            continue
        if distance(predicted) < distance(chosen[2]):
            chosen = (base.scaled(width, 1), width, predicted)
        if predicted >= MIN_EPOCHS:
            break
    return chosen


def with_views(model, recipe, input_spec):
    """(model, views): `model` predicting with the test-time views of the augmentation `recipe` trained it
    with (its shifts, and its flips if any), and those views; `model` itself where there are none."""
    views = {"flip": bool(recipe.flip), "shift": recipe.test_time_shift}
    if not (views["flip"] or views["shift"]):
        return model, None
    return augmented_at_test_time(model, input_spec, **views), views


def train_final(best, epochs, data, batch_size, callbacks, budget, seed, project, progress, max_model_size=None,
                until_deadline=False, narrow=True):
    """(model, record): `best`'s architecture, scaled, trained on training + validation data with the final recipe.

    Without a budget it trains for `epochs`, its one cycle over them. Under
    a budget it trains until the limit, its one cycle over the wall clock,
    when `until_deadline` or when `epochs` would not fit; when less than an
    epoch is left, the trial's model is the final model. A final network
    that is the trial's own architecture (not scaled) starts from the trial's
    weights (when kept on disk) rather than from scratch: the epochs the
    trial trained are not thrown away, which at budgets of minutes on a CPU
    is a large part of all the training there is. The record (stored in the
    project's state) says how it was trained, with the recipe, the scaling
    and the parameters.
    """
    flip = data.image_shape is not None and flips_for(best, data.num_classes)
    deadline, decay = None, "epochs"
    trial_weights = project.weights_path(best.trial_id)
    trial_kept = os.path.exists(trial_weights)
    if budget is not None:
        deadline = budget.end
        if until_deadline or budget.final_training_estimate(best, data.growth, epochs) > budget.remaining():
            decay = "deadline"
            if budget.final_training_estimate(best, data.growth, 1) > budget.remaining() and trial_kept:
                progress.line(f"Less than an epoch is left: the final model is trial {best.trial_id}'s.")
                model = data.build(best.architecture)
                model.load_weights(trial_weights)
                model, views = with_views(model, Recipe.for_trial(data.image_shape, data.mean), data.input_spec)
                return model, {"how": "the best trial's model", "architecture": best.architecture.to_dict(),
                               "scaling": {"width": 1.0, "depth": 1, "estimated": []}, "recipe": None,
                               "test_time_augmentation": views, "params": int(model.count_params())}
    # The found size goes on from the trial's weights, where kept: their epochs, over all the data, count for it.
    trial_epochs = best.epochs_run / data.growth if trial_kept else 0.0
    architecture, scaling = scale(best, data, deadline if decay == "deadline" else None, max_model_size, progress,
                                  trial_epochs, narrow)
    recipe = Recipe.for_final(data.image_shape, data.mean, flip=flip,
                              epochs=scaling.get("predicted_epochs") if decay == "deadline" else epochs)
    from_trial = architecture == best.architecture and trial_kept
    how = "from the best trial's weights" if from_trial else "from scratch"
    if decay == "deadline":
        how += " until the time limit"
    keras.utils.set_random_seed(int(seed))
    model = data.build(architecture)
    if from_trial:
        model.load_weights(trial_weights)
    progress.line(f"Training the best architecture (trial {best.trial_id}, {best.score:.4f}) {how} on training + "
                  f"validation data: {model.count_params():,} parameters, {architecture}; {recipe}.")
    weights = None
    if data.w_train is not None:
        weights = np.concatenate([data.w_train, data.w_val if data.w_val is not None else np.ones(len(data.y_val))])
    x, y = np.concatenate([data.x_train, data.x_val]), np.concatenate([data.y_train, data.y_val])
    start_weights = model.get_weights()  # where a retry after running out of memory starts again
    first_size = min(batch_size, best.batch_size or batch_size)  # a trial that ran out of memory tells

    def train_at(size):
        nonlocal model
        if size != first_size:  # the device ran out of memory at twice this size
            model = None
            release_memory()
            model = data.build(architecture)
            model.set_weights(start_weights)
            progress.line(f"Out of device memory: the final training starts again at batch size {size}.")
        with progress.bar("Final training", total=epochs, unit="epoch") as bar:
            history = training.train(
                model, x, y, sample_weight=weights, epochs=epochs, batch_size=size, deadline=deadline,
                callbacks=[EpochProgress(progress, bar), *training.for_run(callbacks, "final")],
                verbose=2 if progress.verbose >= 2 else 0, decay=decay, jit_compile=data.jit_compile, recipe=recipe,
            )
        return model, history

    with forgetting_custom_gradients():
        (model, history), size = training.halving_batch_on_oom(train_at, first_size)
    model, views = with_views(model, recipe, data.input_spec)
    return model, {"how": how, "architecture": architecture.to_dict(), "scaling": scaling, "recipe": recipe.to_dict(),
                   "test_time_augmentation": views, "params": int(model.count_params()),
                   "epochs": len(history.get("loss", [])), "batch_size": size}
