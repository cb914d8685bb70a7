"""Each export format, loaded in a fresh process that never imports automl_kit."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import quick_fit

WORDS = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])

LOADERS = {
    "keras": """
        import keras
        model = keras.models.load_model(PATH, safe_mode=True)
        out = model.predict(x, verbose=0)
    """,
    "saved_model": """
        import tensorflow as tf
        loaded = tf.saved_model.load(PATH)  # keep a reference: its variables die with it
        out = loaded.serve(tf.constant(x, tf.float32))
    """,
    "tflite": """
        import tensorflow as tf
        runner = tf.lite.Interpreter(model_path=PATH).get_signature_runner()
        (name,) = runner.get_input_details()
        (proba,) = runner(**{name: x.astype("float32")}).values()
        out = {"probabilities": proba}
    """,
    "onnx": """
        import onnxruntime
        session = onnxruntime.InferenceSession(PATH)
        (proba,) = session.run(None, {session.get_inputs()[0].name: x.astype("float32")})
        out = {"probabilities": proba}
    """,
}


def run_exported(fmt, path, x, tmp_path):
    """Loads the export in a fresh process and returns (probabilities, labels or None)."""
    np.save(tmp_path / "x.npy", x)
    script = "import sys, numpy as np\nPATH = {!r}\nx = np.load({!r})\n".format(str(path), str(tmp_path / "x.npy"))
    script += textwrap.dedent(LOADERS[fmt])
    script += textwrap.dedent(f"""
        out = {{k: np.asarray(v) for k, v in dict(out).items()}}
        np.save({str(tmp_path / 'proba.npy')!r}, out["probabilities"])
        if "label" in out:
            np.save({str(tmp_path / 'label.npy')!r}, out["label"])
        assert "automl_kit" not in sys.modules, "loading the export imported automl_kit"
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    labels = np.load(tmp_path / "label.npy", allow_pickle=True) if (tmp_path / "label.npy").exists() else None
    return np.load(tmp_path / "proba.npy"), labels


@pytest.fixture(scope="module")
def string_labelled(small_digits):
    """A fit on raw uint8 (N, H, W) images with string labels, and those images."""
    x, y = small_digits
    images = np.clip(x * 16, 0, 255).astype(np.uint8)
    return quick_fit(images, WORDS[y], epochs=3), images


@pytest.mark.parametrize("fmt, path, tolerance", [
    ("keras", "model.keras", 1e-6),
    ("saved_model", "saved", 1e-4),
    ("tflite", "model.tflite", 1e-4),
    ("onnx", "model.onnx", 1e-4),
])
def test_export_parity_in_a_fresh_process(string_labelled, fmt, path, tolerance, tmp_path):
    if fmt == "onnx" and not (importlib.util.find_spec("tf2onnx") and importlib.util.find_spec("onnxruntime")):
        pytest.skip("the onnx extra (tf2onnx, onnxruntime) is not installed")
    clf, images = string_labelled
    x = images[:120]
    clf.export_model(tmp_path / path, format=fmt)
    proba, labels = run_exported(fmt, tmp_path / path, x, tmp_path)
    expected = clf.predict_proba(x)
    np.testing.assert_allclose(proba, expected, atol=tolerance)
    np.testing.assert_array_equal(proba.argmax(axis=1), expected.argmax(axis=1))  # 100% top-1 agreement
    if labels is None:  # TFLite and ONNX: the labels file beside the model, in column order
        labels = np.array(open(f"{tmp_path / path}.labels.txt").read().split())[proba.argmax(axis=1)]
    np.testing.assert_array_equal(labels.astype(str), clf.predict(x))  # the user's own string labels


@pytest.fixture(scope="module")
def flip_averaged(string_labelled):
    """A fit on the same images whose final model predicts with test-time flips (forced, as for photographs) and
    shifts."""
    from automl_kit.tuner import final

    _, images = string_labelled
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(final, "flips_for", lambda trial, num_classes: True)
        clf = quick_fit(images, WORDS[np.arange(len(images)) % 10], epochs=2)
    assert clf.final_["test_time_augmentation"] == {"flip": True, "shift": 1}
    return clf, images


@pytest.mark.parametrize("fmt, path, tolerance", [("saved_model", "saved", 1e-4), ("tflite", "model.tflite", 1e-4)])
def test_flip_averaged_export_parity_in_a_fresh_process(flip_averaged, fmt, path, tolerance, tmp_path):
    clf, images = flip_averaged
    x = images[:60]
    clf.export_model(tmp_path / path, format=fmt)
    proba, _ = run_exported(fmt, tmp_path / path, x, tmp_path)
    np.testing.assert_allclose(proba, clf.predict_proba(x), atol=tolerance)


def test_keras_export_takes_raw_uint8_images_and_gives_labels(string_labelled, tmp_path):
    clf, images_uint8 = string_labelled
    clf.export_model(tmp_path / "m.keras")
    proba, labels = run_exported("keras", tmp_path / "m.keras", images_uint8[:50], tmp_path)
    assert images_uint8.dtype == np.uint8 and images_uint8.ndim == 3
    assert proba.shape == (50, 10)
    assert set(labels.astype(str)) <= set(WORDS)


def test_integer_labels_come_back_as_integers(small_digits, tmp_path):
    x, y = small_digits
    clf = quick_fit(x, y + 100)
    out = clf.export_model().predict(x[:20].astype(np.float32), verbose=0)
    assert np.issubdtype(out["label"].dtype, np.integer)
    np.testing.assert_array_equal(out["label"], clf.predict(x[:20]))


def test_export_arguments_are_checked(string_labelled, tmp_path):
    clf, _ = string_labelled
    with pytest.raises(ValueError, match="format must be one of"):
        clf.export_model(tmp_path / "m.h5", format="h5")
    with pytest.raises(ValueError, match="needs a path"):
        clf.export_model(format="tflite")
    with pytest.raises(ValueError, match="must end in .keras"):
        clf.export_model(tmp_path / "m.h5")


@pytest.mark.skipif(importlib.util.find_spec("tf2onnx") is not None, reason="the onnx extra is installed")
def test_onnx_without_the_extra_names_it(string_labelled, tmp_path):
    clf, _ = string_labelled
    with pytest.raises(ImportError, match=r"automl_kit\[onnx\]"):
        clf.export_model(tmp_path / "m.onnx", format="onnx")
