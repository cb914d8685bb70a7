"""The training recipe and the final stage: augmentation in training only, flips by the data, scaling."""

import os
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from automl_kit import ImageClassifier
from automl_kit.blocks.architecture import Architecture, CellArchitecture, LayerSpec, architecture_from_dict
from automl_kit.blocks.builder import build_model, network_of
from automl_kit.blocks.search_space import MacroSearchSpace, MicroSearchSpace
from automl_kit.data import InputSpec
from automl_kit.tuner import final, plan, training
from automl_kit.tuner.recipe import Recipe, augment, flip_preserves_labels, one_cycle_factor, training_with
from automl_kit.tuner.trial import Trial


def _images(n=16, side=12, seed=0):
    """Asymmetric random images, so any shift or mirror shows."""
    return np.random.default_rng(seed).uniform(0, 255, (n, side, side, 1)).astype(np.float32)


def test_augmentation_changes_training_batches_and_each_image_differently():
    images = _images()
    shifted = augment(images, Recipe(translate=2)).numpy()
    assert shifted.shape == images.shape
    changed = [not np.array_equal(a, b) for a, b in zip(shifted, images)]
    assert sum(changed) >= 8  # 1 in 25 draws is the identity shift
    # Each image is its own draw: the shifts of two images are not all the same.
    offsets = {next((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                    if np.array_equal(np.roll(images[i], (dy, dx), (0, 1))[2:-2, 2:-2], s[2:-2, 2:-2]))
               for i, s in enumerate(shifted)}
    assert len(offsets) > 1
    cut = augment(images, Recipe(cutout=4, fill=(7.0,))).numpy()
    assert all(np.sum(c == 7.0) >= 4 for c in cut)  # a square of at least 2x2 is blanked to the fill in each


def test_no_flip_is_applied_where_the_recipe_decided_against_it():
    images = _images(n=64)
    mirrored = images[:, :, ::-1]
    unflipped = augment(images, Recipe(flip=False, translate=0)).numpy()
    np.testing.assert_array_equal(unflipped, images)
    flipped = augment(images, Recipe(flip=True, translate=0)).numpy()
    is_mirror = [np.array_equal(f, m) for f, m in zip(flipped, mirrored)]
    assert 10 <= sum(is_mirror) <= 54  # about half
    # The final training flips only where the best trial's flip test says mirroring keeps the labels.
    digit_like = Trial("0000", None, "completed", history={"flip_test": [0.97, 0.41]})
    photo_like = Trial("0001", None, "completed", history={"flip_test": [0.80, 0.78]})
    assert not final.flips_for(digit_like, 10) and final.flips_for(photo_like, 10)
    assert not final.flips_for(Trial("0002", None, "completed"), 10)  # no test: no flips
    assert not flip_preserves_labels(0.1, 0.1, 10)


def test_training_with_a_recipe_augments_what_the_step_sees_and_leaves_the_model_plain(monkeypatch):
    spec = InputSpec(input_shape=(16, 16), image_shape=(16, 16, 1))
    architecture = MicroSearchSpace((16, 16)).sample(np.random.default_rng(0))
    model = build_model(architecture, spec, 3, [100.0], [900.0])
    layers_before = [layer.name for layer in model.layers]
    x, y = _images(32, side=16)[..., 0], np.arange(32) % 3
    seen = []
    step = type(model).train_step

    def recording(self, data):
        seen.append(keras.ops.convert_to_numpy(data[0]))
        return step(self, data)

    monkeypatch.setattr(type(model), "train_step", recording)
    recipe = Recipe.for_final((16, 16, 1), fill=[100.0], flip=True, epochs=40)
    assert recipe.translate == 1 and recipe.flip and recipe.cutout == 4
    training.compile_for_classification(model, recipe=recipe)
    model.run_eagerly = True  # the recorder reads the batch as numbers
    with training_with(model, recipe):
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    assert len(seen) == 1 and seen[0].shape == x.shape and not np.array_equal(seen[0], x)
    # Nothing of the recipe stays: the same layers, no step of its own, the same output twice.
    assert [layer.name for layer in model.layers] == layers_before
    assert "train_step" not in model.__dict__ and "compute_loss" not in model.__dict__
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(model(x)))


def test_a_training_traces_its_train_step_once(monkeypatch):
    # Keras creates the metrics' variables in the first trace unless they exist, and TensorFlow
    # then traces the step again: a second setup's worth of time in every training.
    from automl_kit.tuner import recipe as recipe_module

    traced = []
    original = recipe_module.augment
    monkeypatch.setattr(recipe_module, "augment", lambda x, recipe: traced.append(1) or original(x, recipe))
    spec = InputSpec(input_shape=(8, 8), image_shape=(8, 8, 1))
    model = build_model(Architecture(8, ((LayerSpec("conv3x3"),),)), spec, 3, [100.0], [900.0])
    x, y = _images(40, side=8)[..., 0], np.arange(40) % 3
    history = training.train(model, x, y, epochs=2, batch_size=16, validation_data=(x[:10], y[:10]),
                             objective="val_accuracy", recipe=Recipe.for_trial((8, 8, 1)))
    assert len(history["loss"]) == 2 and len(traced) == 1


def test_an_annealed_trial_ends_its_one_cycle_with_its_epochs_when_they_end_before_its_deadline():
    # A halving trial anneals to its planned end; where its epochs end first, the cycle ends with them.
    spec = InputSpec(input_shape=(8, 8), image_shape=(8, 8, 1))
    model = build_model(Architecture(8, ((LayerSpec("conv3x3"),),)), spec, 3, [100.0], [900.0])
    x, y = _images(40, side=8)[..., 0], np.arange(40) % 3
    recipe = Recipe.for_trial((8, 8, 1), annealed=True)
    assert recipe.one_cycle and recipe.learning_rate > Recipe.for_trial((8, 8, 1)).learning_rate
    training.train(model, x, y, epochs=2, batch_size=16, deadline=time.monotonic() + 3600, decay="deadline",
                   recipe=recipe)
    steps = 2 * training.MIN_STEPS_PER_EPOCH  # 40 images repeated to the least steps an epoch
    last = recipe.learning_rate * one_cycle_factor((steps - 1) / steps)  # the rate of the last step
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(last, rel=1e-4)
    assert last < 0.02 * recipe.learning_rate  # the cycle's floor (1%), a step short of it


def test_label_smoothing_raises_the_training_loss_of_a_confident_model():
    spec = InputSpec(input_shape=(4,), image_shape=None)
    from automl_kit.blocks.architecture import DenseArchitecture

    keras.utils.set_random_seed(0)
    model = build_model(DenseArchitecture(units=(8,)), spec, 3, [0.0] * 4, [1.0] * 4)
    # Confident: near-uniform outputs (an untrained head) have the same loss smoothed or not.
    head = [layer for layer in model.layers if getattr(layer, "kernel", None) is not None][-1]
    head.kernel.assign(head.kernel * 20.0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = np.arange(64) % 3
    losses = {}
    for smoothing in (0.0, 0.3):
        recipe = Recipe(label_smoothing=smoothing)
        training.compile_for_classification(model, recipe=recipe)
        with training_with(model, recipe):
            losses[smoothing] = model.compute_loss(x, y, model(x), None, training=True)
    assert float(losses[0.3]) != pytest.approx(float(losses[0.0]), abs=1e-4)
    # Evaluation keeps the plain loss.
    recipe = Recipe(label_smoothing=0.3)
    with training_with(model, recipe):
        plain = model.compute_loss(x, y, model(x), None, training=False)
    assert float(plain) == pytest.approx(float(losses[0.0]), rel=1e-5)


@pytest.mark.parametrize("space", [MicroSearchSpace((8, 8)), MacroSearchSpace((8, 8))])
def test_a_scaled_architecture_round_trips_through_json_and_builds(space):
    base = space.sample(np.random.default_rng(3))
    scaled = base.scaled(width=2, depth=2)
    assert scaled.filters == 2 * base.filters
    if isinstance(base, CellArchitecture):
        assert scaled.cells_per_stage == 2 * base.cells_per_stage and scaled.normal == base.normal
    else:
        assert isinstance(base, Architecture)
        assert all(len(s) == 2 * len(b) for s, b in zip(scaled.stages, base.stages))
    assert architecture_from_dict(scaled.to_dict()) == scaled
    assert type(scaled).from_json(scaled.to_json()) == scaled
    spec = InputSpec(input_shape=(8, 8), image_shape=(8, 8, 1))
    small, large = (build_model(a, spec, 10, [0.0], [1.0]) for a in (base, scaled))
    assert large.count_params() > 2 * small.count_params()
    assert large.output_shape == (None, 10)


class _PricedData:
    """What `final.scale` reads of SearchData: a step cost that grows with the width squared and with the depth."""

    growth = 1.25

    def __init__(self, base):
        self.base = base

    def size_and_cost(self, architecture):
        width = architecture.filters / self.base.filters
        depth = architecture.cells_per_stage / self.base.cells_per_stage
        return architecture.filters * 1000, 1e6 * width**2 * depth


def _trial_of(base):
    """A completed trial of `base`: 2 epochs of 1 s each after 1 s of setup."""
    return Trial("0000", base, "completed", epochs_run=2, history={"epoch_seconds": [1.0, 1.0],
                                                                   "setup_seconds": [1.0]})


def test_scaling_picks_the_largest_candidate_whose_estimated_epochs_fit():
    from automl_kit.tuner.progress import Progress

    base = MicroSearchSpace((8, 8)).sample(np.random.default_rng(0))
    trial = _trial_of(base)

    assert final.MIN_EPOCHS == 15
    deadline = time.monotonic() + 100.0
    chosen, record = final.scale(trial, _PricedData(base), deadline, None, Progress(0))
    # An epoch of all the data takes 1.25 s as found: x2 wide (4x, ~20 epochs) fits, x2 wide and deep (8x, ~10
    # less the doubled setup) does not.
    assert chosen == base.scaled(2, 1) and (record["width"], record["depth"]) == (2, 1)
    assert [(e["width"], e["depth"]) for e in record["estimated"]] == [(1.5, 1), (2, 1), (2, 2)]
    assert [e["cost_ratio"] for e in record["estimated"]] == [2.25, 4.0, 8.0]
    # max_model_size stops the candidates before they are priced.
    chosen, record = final.scale(trial, _PricedData(base), deadline, 30 * 1000, Progress(0))
    assert chosen == base.scaled(1.5, 1) and len(record["estimated"]) == 1
    # Without a time budget the architecture trains as found.
    assert final.scale(trial, _PricedData(base), None, None, Progress(0))[0] == base


def test_a_found_size_short_of_the_least_epochs_is_narrowed_to_the_size_nearest_them():
    from automl_kit.tuner.progress import Progress

    base = MicroSearchSpace((8, 8)).sample(np.random.default_rng(0))
    trial = _trial_of(base)

    def scaled(seconds, trial_epochs):
        return final.scale(trial, _PricedData(base), time.monotonic() + seconds, None, Progress(0), trial_epochs)

    # 1.25 s an epoch of all the data: in 10 s the found size has about 7 epochs, x0.75 wide about 13 and x0.5 wide
    # about 29; x0.75 comes nearest MIN_EPOCHS.
    chosen, record = scaled(10.0, 0.0)
    assert chosen == base.scaled(0.75, 1) and record["width"] == 0.75 and 12 < record["predicted_epochs"] < 14
    assert [e["width"] for e in record["estimated"]] == [0.75, 0.5]
    # In 6 s: about 4, 7 and 16 epochs.
    assert scaled(6.0, 0.0)[0] == base.scaled(0.5, 1)
    # Ten epochs of the trial that the found size goes on from bring it to MIN_EPOCHS: nothing is narrowed, and
    # nothing is widened or priced (a wider network starts from scratch: x1.5 wide would train about 3).
    chosen, record = scaled(10.0, 10.0)
    assert chosen == base and record["width"] == 1.0 and record["estimated"] == []
    # In 3 s none reaches MIN_EPOCHS: the nearest, the found size counted with its trial's epochs.
    assert scaled(3.0, 0.0)[0] == base.scaled(0.5, 1)
    assert scaled(3.0, 8.0)[0] == base
    # A one candidate whose width the search chose for the whole budget is not narrowed again: it goes on.
    chosen, record = final.scale(trial, _PricedData(base), time.monotonic() + 6.0, None, Progress(0), 0.0,
                                 narrow=False)
    assert chosen == base and record["width"] == 1.0 and record["estimated"] == []


def test_exported_scaled_model_with_test_time_views_matches_predict_proba_in_a_fresh_process(monkeypatch,
                                                                                            small_digits, tmp_path,
                                                                                            capsys):
    x, y = small_digits
    monkeypatch.setattr(final, "scale", lambda best, *args: (best.architecture.scaled(2, 2),
                                                             {"width": 2, "depth": 2, "estimated": []}))
    monkeypatch.setattr(final, "flips_for", lambda trial, num_classes: True)  # as for photographs
    clf = ImageClassifier(max_trials=1, seed=0, tuner="random", search_space="micro").fit(x, y, epochs=1, verbose=0)
    assert clf.final_["scaling"]["width"] == 2 and clf.final_["how"].startswith("from scratch")
    # Trained with flips and 1-pixel shifts, it predicts with them: airbench's views, the image and its mirror
    # image with half the weight, their copies shifted a pixel down-right and up-left a quarter.
    assert clf.final_["recipe"]["flip"] and clf.final_["test_time_augmentation"] == {"flip": True, "shift": 1}
    network = network_of(clf.model_)

    def mean_over(views):  # the network's probabilities averaged over views of x[:50], (N, 8, 8) images
        return np.mean([keras.ops.convert_to_numpy(network(v.astype("float32"), training=False)) for v in views],
                       axis=0)

    images = x[:50].astype("float32")
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    views = [images, images, padded[:, :8, :8], padded[:, 2:, 2:]]
    expected = mean_over(views + [v[:, :, ::-1] for v in views])  # axis 2 is the width
    np.testing.assert_allclose(clf.predict_proba(x[:50]), expected, atol=1e-6)
    assert not np.allclose(expected, mean_over([images]), atol=1e-4)
    clf.summary()
    assert "test-time augmentation" in capsys.readouterr().out
    assert architecture_from_dict(clf.final_["architecture"]) == clf.best_architecture_.scaled(2, 2)
    assert clf.search_results_.attrs["final"]["recipe"]["label_smoothing"] == 0.1
    path = tmp_path / "scaled.keras"
    clf.export_model(path)
    np.save(tmp_path / "x.npy", x[:50])
    np.save(tmp_path / "expected.npy", clf.predict_proba(x[:50]))
    script = textwrap.dedent(f"""
        import sys, numpy as np, keras
        model = keras.models.load_model({str(path)!r})
        got = model.predict(np.load({str(tmp_path / 'x.npy')!r}).astype("float32"), verbose=0)["probabilities"]
        assert "automl_kit" not in sys.modules
        np.testing.assert_allclose(got, np.load({str(tmp_path / 'expected.npy')!r}), atol=1e-6)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_measure_times_real_training_steps_of_a_candidate(small_search_data):
    data = small_search_data
    architecture = MicroSearchSpace((8, 8)).sample(np.random.default_rng(0))
    setup, step = plan.measure(architecture, data, 32, Recipe.for_final((8, 8, 1), fill=data.mean))
    assert 0 < step < setup  # the first step holds the trace


def test_an_unscaled_final_model_starts_from_the_best_trials_weights(monkeypatch, small_digits, tmp_path):
    x, y = small_digits
    starts, train = [], training.train

    def recording(model, *args, **kwargs):
        starts.append([w.copy() for w in model.get_weights()])
        return train(model, *args, **kwargs)

    monkeypatch.setattr(training, "train", recording)
    clf = ImageClassifier(max_trials=1, seed=0, tuner="random", search_space="macro", directory=str(tmp_path))
    clf.fit(x, y, epochs=2, verbose=0)
    assert len(starts) == 2  # the trial, then the final training
    assert clf.final_["how"] == "from the best trial's weights" and clf.final_["scaling"]["width"] == 1.0
    from automl_kit.tuner.project import Project

    network = network_of(clf.model_)  # inside the test-time views
    trial_model = keras.models.clone_model(network)
    trial_model.load_weights(Project(str(tmp_path / "image_classifier")).weights_path(clf.trials_[0].trial_id))
    for started, trained in zip(starts[1], trial_model.get_weights()):
        np.testing.assert_array_equal(started, trained)
    # and it trained on from there
    assert any(not np.array_equal(a, b) for a, b in zip(starts[1], network.get_weights()))


def test_flip_test_scores_plain_and_mirrored_images_in_batches_of_any_size():
    from automl_kit.tuner.recipe import flip_test

    # A "classifier" of which half is brighter: mirroring swaps every answer.
    inputs = keras.Input((4, 6, 1))
    halves = [keras.layers.GlobalAveragePooling2D()(keras.layers.Cropping2D(crop)(inputs))
              for crop in (((0, 0), (0, 3)), ((0, 0), (3, 0)))]
    model = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Concatenate()(halves)))
    y = np.arange(7) % 2
    x = np.zeros((7, 4, 6, 1), np.float32)
    for i, label in enumerate(y):
        x[i, :, 3 * label:3 * label + 3] = 1.0
    assert flip_test(model, x, y, (4, 6, 1), batch_size=3)[:2] == (1.0, 0.0)
    x[:3] = x[:3, :, ::-1]  # three now face the other way
    assert flip_test(model, x, y, (4, 6, 1), batch_size=500)[:2] == pytest.approx((4 / 7, 3 / 7))
    # Averaging: two-pixel images whose class-1 evidence is four times as strong as class 0's. Each
    # image is right one way round only, and the averaged probabilities are right both times.
    inputs = keras.Input((1, 2, 1))
    dense = keras.layers.Dense(2, activation="softmax", use_bias=False)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    dense.set_weights([np.array([[1.0, 0.0], [0.0, 4.0]])])
    x = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32).reshape(2, 1, 2, 1)
    assert flip_test(model, x, np.array([1, 1]), (1, 2, 1)) == (0.5, 0.5, 1.0)


def test_a_deadline_stops_in_time_for_the_validation_it_can_afford(monkeypatch):
    """Under a deadline the validation is the Deadline callback's: training stops once the time left
    would not pay for a pass over LEAST_VALIDATION_IMAGES samples (priced from the training steps before
    any pass, from the last pass after), and each epoch validates on as many samples as the time left
    pays for, all of them where they fit, writing the results into the epoch's logs."""
    import types

    clock = types.SimpleNamespace(now=100.0)
    monkeypatch.setattr(training.time, "monotonic", lambda: clock.now)
    evaluated = []

    def evaluate(batches, verbose, return_dict):
        sizes = np.sum([[len(part) for part in batch] for batch in batches], axis=0)  # images, labels, weights
        evaluated.append(tuple(int(size) for size in sizes))
        clock.now += 0.001 * sizes[0]  # a sample costs 1 ms to validate
        return {"loss": 0.5, "accuracy": 0.75}

    n = 5000
    data = (np.arange(n), np.zeros(n), np.ones(n))
    deadline = training.Deadline(140.0, data, batch_size=10)
    deadline.set_model(types.SimpleNamespace(stop_training=False, evaluate=evaluate))
    deadline.on_epoch_begin(0)
    for step in range(5):  # training steps of 0.2 s: a validation step is priced at VALIDATION_STEP_COST of one
        deadline.on_train_batch_end(step)
        clock.now += 0.2
    expected = training.VALIDATION_STEP_COST * 0.2 / 10  # seconds a sample, before any pass
    assert deadline.sample_seconds() == pytest.approx(expected)
    logs = {"loss": 1.0}
    deadline.on_epoch_end(0, logs)  # at 101 s, 5,000 priced at 35 s fit in the 39 s left: all of them
    assert evaluated[-1] == (n, n, n) and logs == {"loss": 1.0, "val_loss": 0.5, "val_accuracy": 0.75}
    assert deadline.sample_seconds() == pytest.approx(0.001)  # measured by the pass: 5 s
    deadline.on_epoch_begin(1)
    clock.now = 137.0
    deadline.on_train_batch_end(0)
    clock.now = 137.5  # 2.5 s left: more than the least pass's 1,024 ms
    deadline.on_train_batch_end(1)
    assert not deadline.model.stop_training
    deadline.on_epoch_end(1, {})  # 2.5 s pay for 2,500 of the 5,000
    assert evaluated[-1][0] == 2500 and deadline.validated == [n, 2500]
    deadline.on_epoch_begin(2)
    clock.now = 139.0  # 1 s left: under the least pass's 1.024 s, so the step that ends now is the last
    deadline.on_train_batch_end(0)
    assert deadline.model.stop_training and deadline.reached
    deadline.on_epoch_end(2, {})
    assert evaluated[-1][0] == training.LEAST_VALIDATION_IMAGES  # never fewer, even past the deadline


def test_a_training_under_a_deadline_records_its_validation_as_fit_would(small_digits):
    """The Deadline's own validation reaches the history, early stopping's choice of epoch and
    best_epoch as fit's did."""
    x, y = small_digits
    x = np.asarray(x, np.float32)
    spec = InputSpec((8, 8), (8, 8, 1))
    model = build_model(MacroSearchSpace((8, 8)).prior(), spec, 10, [float(x.mean())], [float(x.var())])
    history = training.train(model, x[:300], y[:300], epochs=3, batch_size=32, validation_data=(x[300:], y[300:]),
                             objective="val_accuracy", deadline=time.monotonic() + 600,
                             recipe=Recipe.for_trial((8, 8, 1)), decay="deadline")
    assert len(history["val_accuracy"]) == len(history["loss"]) == 3
    assert history["validation_samples"] == [100, 100, 100]  # all of them: the deadline is far
    best, epoch = training.best_epoch(history, "val_accuracy")
    # The model ends with its best epoch's weights, whose validation accuracy is the one recorded.
    assert model.evaluate(x[300:], y[300:], verbose=0, return_dict=True)["accuracy"] == pytest.approx(best)


def test_the_final_model_predicts_with_the_views_its_recipe_trained_on():
    spec = InputSpec((8, 8), (8, 8, 1))
    net = build_model(MacroSearchSpace((8, 8)).prior(), spec, 3, [0.0], [1.0])
    assert final.with_views(net, Recipe(), spec) == (net, None)  # trained without translation or flips: as it is
    model, views = final.with_views(net, Recipe.for_trial((8, 8, 1)), spec)  # a trial's: shifts, no flips
    assert views == {"flip": False, "shift": 1} and network_of(model) is net
    x = np.random.default_rng(0).random((4, 8, 8)).astype("float32")
    assert not np.allclose(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(net(x)), atol=1e-5)


def test_fused_adamw_takes_keras_adamw_steps_and_saves_as_adamw(tmp_path):
    from automl_kit.tuner.fused_adamw import fused_adamw
    from automl_kit.tuner.recipe import step_schedule

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype("float32"), rng.integers(0, 3, 64)

    def trained(optimizer):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.BatchNormalization(), keras.layers.Dense(3, activation="softmax")])
        model.compile(optimizer, "sparse_categorical_crossentropy")
        for _ in range(4):
            model.train_on_batch(x, y)
        return model

    def schedule():  # the weight decay reads the rate as the schedule has it at each step
        return step_schedule(0.05, 4)

    plain = keras.optimizers.AdamW(learning_rate=schedule(), weight_decay=0.1)
    plain.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    expected = trained(plain)
    fused = trained(fused_adamw(schedule(), 0.1, exclude_from_weight_decay=("gamma", "beta", "bias")))
    for a, b in zip(expected.get_weights(), fused.get_weights()):
        np.testing.assert_allclose(b, a, atol=1e-6)
    # Without the exclusions the biases decay: the exclusion was honoured, not ignored.
    undecayed_bias = fused.layers[0].bias.numpy()
    decayed = trained(fused_adamw(schedule(), 0.1)).layers[0].bias.numpy()
    assert np.max(np.abs(decayed - undecayed_bias)) > 1e-4
    path = str(tmp_path / "compiled.keras")
    fused.save(path)  # a compiled model's optimizer is saved as plain AdamW, loadable without automl_kit
    code = f"import keras; m = keras.models.load_model({path!r}); print(type(m.optimizer).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "AdamW", out.stderr[-2000:]
