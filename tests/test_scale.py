"""Mixed precision and device settings (issue 9): what a CPU-only machine can check."""

import keras
import numpy as np
import pytest

from automl_kit import ImageClassifier
from automl_kit.blocks import MicroSearchSpace
from automl_kit.data import InputSpec
from automl_kit.tuner.supernet import Supernet
from tests.conftest import QUICK


def test_mixed_precision_trains_in_16_bits_and_exports_float32_probabilities(small_digits, tmp_path):
    x, y = small_digits
    clf = ImageClassifier(**QUICK, max_trials=1, seed=0, mixed_precision=True).fit(x, y, epochs=2, verbose=0)
    # No GPU here, so True means bfloat16, the CPU's fast 16-bit type.
    compute = {layer.dtype_policy.compute_dtype for layer in clf.model_.layers if layer.weights}
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
