"""What a validation sample costs against a training sample: `python -m benchmarks.validation_cost`.

A training under a deadline (`training.Deadline`) must stop in time for the
validation pass that ends its last epoch, and before any pass has run it
prices one from the training steps: a validation step at
`training.VALIDATION_STEP_COST` of a training step. This trains each search
space's prior with the final recipe on 1,000 images of each dataset for two
epochs (batch 32, `training.train` with Keras's own validation) and prints
the seconds per training image (the faster epoch), per validation image
(the second pass) and their ratio, and the first pass's ratio, which also
traces the test step. Needs `../shared/datasets` for MNIST and CIFAR-10
(`--data-dir`); digits come with scikit-learn.
"""

import argparse
import os
import time

import numpy as np

DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared",
                                "datasets")
CONFIGURATIONS = [("digits", "macro"), ("mnist_test", "macro"), ("cifar10_train_batch1", "macro"),
                  ("digits", "micro"), ("mnist_test", "micro")]


def images(name, data_dir, count=2000):
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images[:count].astype("float32"), digits.target[:count]
    with np.load(os.path.join(data_dir, name + ".npz")) as data:
        return data["x"][:count], data["y"][:count]


def measure(name, space_name, data_dir, train_images=1000):
    """(seconds per training image, per validation image, first pass per validation image)."""
    import keras

    from automl_kit.blocks.builder import build_model
    from automl_kit.blocks.search_space import MicroSearchSpace, search_space_for
    from automl_kit.data import InputSpec
    from automl_kit.tuner import training
    from automl_kit.tuner.recipe import Recipe

    x, y = images(name, data_dir)
    spec = InputSpec.infer(x[:2], None)
    space = search_space_for(spec) if space_name == "macro" else MicroSearchSpace(spec.image_shape[:2])
    scale = 16.0 if name == "digits" else 255.0
    flat = x.reshape(len(x), -1) / scale
    channels = spec.image_shape[-1]
    keras.utils.set_random_seed(0)
    model = build_model(space.prior(), spec, 10, np.full(channels, flat.mean()), np.full(channels, flat.var()))
    passes = []

    class Passes(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            self.started = time.monotonic()

        def on_test_end(self, logs=None):
            passes.append(time.monotonic() - self.started)

    history = training.train(model, x[:train_images], y[:train_images], epochs=2, batch_size=32, decay="epochs",
                             recipe=Recipe.for_final(spec.image_shape, np.full(channels, flat.mean()), epochs=2),
                             validation_data=(x[train_images:], y[train_images:]), objective="val_accuracy",
                             callbacks=[Passes()])
    validation_images = len(x) - train_images
    return (min(history["epoch_seconds"]) / train_images, passes[1] / validation_images,
            passes[0] / validation_images)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    args = parser.parse_args()
    print("| images | space | training ms/image | validation ms/image | ratio | first pass ratio |")
    print("|---|---|---|---|---|---|")
    for name, space_name in CONFIGURATIONS:
        train, validation, first = measure(name, space_name, args.data_dir)
        print(f"| {name} | {space_name} | {train * 1e3:.2f} | {validation * 1e3:.2f} | {validation / train:.2f} | "
              f"{first / train:.2f} |", flush=True)


if __name__ == "__main__":
    main()
