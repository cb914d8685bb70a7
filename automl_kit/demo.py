"""A short real search from a folder of images: `python -m automl_kit.demo`.

Writes scikit-learn's handwritten digits (8x8 images, 10 classes) as PNG
files, 70% of them in a class folder (`digits/train/<digit>/*.png`) and the
rest as test files, then runs what a user would type:

    automl-kit fit automl_kit_demo/digits/train --time-limit 2m --output automl_kit_demo/model.keras
    automl-kit predict automl_kit_demo/model.keras automl_kit_demo/digits/test

and reports the test accuracy of the saved model on the test files.
"""

import argparse
import os
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def write_digits(root, seed=0):
    """The digits as PNG files: a class folder of 70% under `root/train`, the rest under `root/test`.

    Returns the test files and their labels.
    """
    from PIL import Image

    digits = load_digits()
    pixels = (digits.images * 255 / 16).round().astype(np.uint8)
    train, test = train_test_split(np.arange(len(pixels)), test_size=0.3, stratify=digits.target,
                                   random_state=seed)
    test_files = []
    for part, indices in (("train", train), ("test", test)):
        for index in indices:
            folder = os.path.join(root, part, str(digits.target[index])) if part == "train" else os.path.join(root, part)
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"{index:04d}.png")
            Image.fromarray(pixels[index]).save(path)
            if part == "test":
                test_files.append(path)
    return test_files, [str(digits.target[i]) for i in test]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-limit", default="2m", help="budget of the fit (default 2m)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join("automl_kit_demo", "model.keras"),
                        help="where to save the exported model")
    args = parser.parse_args(argv)

    import keras

    from automl_kit import cli

    root = os.path.join(os.path.dirname(os.path.abspath(args.output)), "digits")
    test_files, test_labels = write_digits(root, args.seed)
    train = os.path.join(root, "train")
    print(f"Digits as PNG files: a class folder {train} and {len(test_files)} test files.")
    started = time.monotonic()
    command = ["fit", train, "--time-limit", args.time_limit, "--output", args.output, "--seed", str(args.seed),
               "--overwrite"]
    print("automl-kit " + " ".join(command))
    status = cli.main(command)
    if status:
        raise SystemExit(status)
    seconds = time.monotonic() - started

    model = keras.models.load_model(args.output)
    predicted = [label for label, _ in cli.predictions(model, test_files)]
    accuracy = float(np.mean(np.asarray(predicted) == np.asarray(test_labels)))
    print(f"Test accuracy: {accuracy:.4f} ({len(test_files)} held-out files), fit took {seconds:.0f} s.")
    print(f"Predict other files with: automl-kit predict {args.output} FILE_OR_DIR ...")
    return accuracy


if __name__ == "__main__":
    main()
