"""Mixed precision and device settings (issue 9): what a CPU-only machine can check."""

import keras
import numpy as np
import pytest

from automl_kit import ImageClassifier
from automl_kit.blocks import MicroSearchSpace
from automl_kit.blocks.builder import network_of
from automl_kit.data import InputSpec
from automl_kit.tuner.supernet import Supernet
from tests.conftest import QUICK


def test_mixed_precision_trains_in_16_bits_and_exports_float32_probabilities(small_digits, tmp_path):
    x, y = small_digits
    clf = ImageClassifier(**QUICK, max_trials=1, seed=0, mixed_precision=True).fit(x, y, epochs=2, verbose=0)
    # No GPU here, so True means bfloat16, the CPU's fast 16-bit type.
    compute = {layer.dtype_policy.compute_dtype for layer in network_of(clf.model_).layers if layer.weights}
    assert "bfloat16" in compute
    assert all(w.dtype == "float32" for w in clf.model_.weights)
    path = str(tmp_path / "mixed.keras")
    clf.export_model(path)
    reloaded = keras.models.load_model(path)
    outputs = reloaded.predict(x[:20].astype("float32"), verbose=0)
    probabilities = outputs["probabilities"]
    assert clf.model_.outputs[0].dtype == "float32" and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    assert np.mean(clf.predict(x) == y) > 0.3  # it learned: chance is 0.1


def test_float16_models_scale_their_loss():
    from automl_kit.blocks.builder import build_model
    from automl_kit.tuner import training

    arch = MicroSearchSpace((8, 8), num_nodes=2).sample(np.random.default_rng(0))
    model = build_model(arch, InputSpec((8, 8), (8, 8, 1)), 10, [0.0], [1.0], dtype_policy="mixed_float16")
    training.compile_for_classification(model)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.layers[-1].dtype_policy.compute_dtype == "float32"


def test_supernet_computes_in_bfloat16_and_keeps_float32_weights():
    space = MicroSearchSpace((8, 8), num_nodes=2)
    net = Supernet(space, InputSpec((8, 8), (8, 8, 1)), 3, [0.0], [1.0], dtype_policy="mixed_bfloat16")
    x, y = np.random.default_rng(0).random((16, 8, 8)).astype("float32"), np.arange(16) % 3
    arch = space.encode(space.sample(np.random.default_rng(1)))
    before = [w.numpy().copy() for w in net.trainable_variables]
    losses = [net.train_step(x, y, np.ones(16, "float32"), arch) for _ in range(3)]
    assert all(np.isfinite(losses))
    assert all(w.dtype == "float32" for w in net.trainable_variables)
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, net.trainable_variables))


@pytest.mark.parametrize("value", ["float16", 16, "bf16"])
def test_bad_mixed_precision_is_refused_before_training(small_digits, value):
    x, y = small_digits
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        ImageClassifier(mixed_precision=value).fit(x, y)


def _fit_inputs(monkeypatch):
    """Records the `x` of every `keras.Model.fit` call."""
    seen, real_fit = [], keras.Model.fit

    def fit(model, x=None, *args, **kwargs):
        seen.append(np.asarray(x))
        return real_fit(model, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit)
    return seen


def test_training_reads_images_on_the_device_by_index_and_learns_as_from_the_host(small_digits, monkeypatch):
    from automl_kit.blocks.builder import build_model
    from automl_kit.tuner import device_data, training

    x, y = small_digits
    x = x[..., None].astype("float32")
    arch = MicroSearchSpace((8, 8), num_nodes=2).sample(np.random.default_rng(0))
    seen = _fit_inputs(monkeypatch)

    def trained(limit):
        monkeypatch.setattr(device_data, "MAX_RESIDENT_BYTES", limit)
        keras.utils.set_random_seed(0)
        model = build_model(arch, InputSpec((8, 8), (8, 8, 1)), 10, [0.0], [1.0])
        history = training.train(model, x[:300], y[:300], epochs=2, batch_size=32,
                                 validation_data=(x[300:], y[300:]), objective="val_accuracy")
        return model, history

    streamed, streamed_history = trained(0)  # too large to hold: fit streams the images
    assert seen[0].shape[1:] == (8, 8, 1)
    model, history = trained(2**31)
    # fit got the row indices only, repeated to fill MIN_STEPS_PER_EPOCH batches
    assert seen[1].ndim == 1 and np.issubdtype(seen[1].dtype, np.integer)
    assert sorted(set(seen[1].tolist())) == list(range(300))
    # The same seed, the same batches: the same weights as streaming the images gives.
    assert history["val_accuracy"] == streamed_history["val_accuracy"]
    for a, b in zip(model.get_weights(), streamed.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Afterwards the model is plain again: it predicts from images and trains on them.
    assert "train_step" not in vars(model) and model.predict(x[:5], verbose=0).shape == (5, 10)
    model.fit(x[:64], y[:64], epochs=1, verbose=0)


def test_the_supernet_phase_copies_its_images_to_the_device_once(small_digits, monkeypatch):
    import tensorflow as tf

    from automl_kit.tuner import enas

    copies, fed, real_on_device, real_step = [], [], enas.on_device, Supernet.train_step

    def on_device(strategy, *images):
        copies.extend(len(a) for a in images)
        return real_on_device(strategy, *images)

    def train_step(self, x, *args):
        fed.append(tf.is_tensor(x))
        return real_step(self, x, *args)

    monkeypatch.setattr(enas, "on_device", on_device)
    monkeypatch.setattr(Supernet, "train_step", train_step)
    x, y = small_digits
    clf = ImageClassifier(tuner="enas", search_space="macro", max_trials=1, seed=0).fit(x, y, epochs=2, verbose=0)
    assert [r["epoch"] for r in clf.supernet_history_] == [1, 2]
    assert len(copies) == 2 and sum(copies) == len(x)  # the training and validation images, once each
    assert len(fed) >= 2 and all(fed)  # every step got a batch gathered on the device, no numpy copy


def test_images_stay_on_the_host_under_another_strategy_or_when_the_device_is_full(monkeypatch):
    import tensorflow as tf

    from automl_kit.tuner import device_data

    images = np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8, 1)
    default = tf.distribute.get_strategy()
    assert tf.is_tensor(device_data.on_device(default, images)[0])
    on_host, = device_data.on_device(tf.distribute.OneDeviceStrategy("/cpu:0"), images)
    assert isinstance(on_host, np.ndarray)
    np.testing.assert_array_equal(device_data.take(on_host, [1, 3]), images[[1, 3]])
    monkeypatch.setattr(device_data, "MAX_RESIDENT_BYTES", images.nbytes)  # one fits, two together do not
    assert tf.is_tensor(device_data.on_device(default, images)[0])
    assert all(isinstance(a, np.ndarray) for a in device_data.on_device(default, images, images))

    def out_of_memory(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(tf, "identity", out_of_memory)
    assert isinstance(device_data.on_device(default, images)[0], np.ndarray)
