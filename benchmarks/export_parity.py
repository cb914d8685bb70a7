"""Parity of every export format with `clf.predict_proba`: `python -m benchmarks.export_parity`.

Fits on 70% of scikit-learn's digits (or, with `--mnist`, on MNIST from
`../shared/datasets/`), exports the model in each format, runs each export
on the held-out images with its own runtime, and prints the largest
probability difference, the top-1 agreement and the file size.
"""

import argparse
import importlib.util
import os
import tempfile

import numpy as np


def run_keras(path, x):
    import keras

    return keras.models.load_model(path, safe_mode=True).predict(x, verbose=0)["probabilities"]


def run_saved_model(path, x):
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    return loaded.serve(tf.constant(x, tf.float32))["probabilities"].numpy()


def run_tflite(path, x):
    import tensorflow as tf

    runner = tf.lite.Interpreter(model_path=path).get_signature_runner()
    (name,) = runner.get_input_details()
    (proba,) = runner(**{name: x.astype(np.float32)}).values()
    return proba


def run_onnx(path, x):
    import onnxruntime

    session = onnxruntime.InferenceSession(path)
    return session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)
    return os.path.getsize(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mnist", action="store_true", help="use 10k MNIST training and 10k test images")
    args = parser.parse_args(argv)

    from automl_kit import ImageClassifier

    if args.mnist:
        folder = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")
        with np.load(os.path.join(folder, "mnist_train.npz")) as d:
            x_train, y_train = d["x"][:10000], d["y"][:10000]
        with np.load(os.path.join(folder, "mnist_test.npz")) as d:
            x_test, y_test = d["x"], d["y"]
    else:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
        x_train, x_test, y_train, y_test = train_test_split(
            images, digits.target, test_size=0.3, stratify=digits.target, random_state=0)
    words = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = ImageClassifier(max_trials=2, seed=0).fit(x_train, words[y_train], epochs=5, verbose=0)
    expected = clf.predict_proba(x_test)
    print(f"test accuracy {clf.score(x_test, words[y_test]):.4f} on {len(x_test)} images; "
          f"{clf.model_.count_params():,} parameters")
    print(f"{'format':<12} {'size (kB)':>10} {'max |dp|':>10} {'top-1 agreement':>16}")
    runners = {"keras": (run_keras, "model.keras"), "saved_model": (run_saved_model, "saved"),
               "tflite": (run_tflite, "model.tflite"), "onnx": (run_onnx, "model.onnx")}
    with tempfile.TemporaryDirectory() as folder:
        for fmt, (runner, name) in runners.items():
            if fmt == "onnx" and importlib.util.find_spec("tf2onnx") is None:
                print(f"{fmt:<12} skipped: pip install -e '.[onnx]'")
                continue
            path = os.path.join(folder, name)
            clf.export_model(path, format=fmt)
            proba = runner(path, x_test)
            agreement = np.mean(proba.argmax(axis=1) == expected.argmax(axis=1))
            print(f"{fmt:<12} {size_of(path) / 1e3:>10.1f} {np.abs(proba - expected).max():>10.2e} {agreement:>16.2%}")


if __name__ == "__main__":
    main()
