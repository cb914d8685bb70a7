"""A short real search: `python -m automl_kit.demo`.

Fits an ImageClassifier on scikit-learn's handwritten digits (8x8 images, 10
classes), reports the test accuracy on a held-out 30%, and saves the exported
model as a `.keras` file.
"""

import argparse
import os
import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from automl_kit import ImageClassifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-trials", type=int, default=3, help="architectures to try (default 3)")
    parser.add_argument("--epochs", type=int, default=10, help="most epochs per trial (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join("automl_kit_demo", "best_model.keras"),
                        help="where to save the exported model")
    args = parser.parse_args(argv)

    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.images, digits.target, test_size=0.3, stratify=digits.target, random_state=args.seed
    )
    print(f"Digits: {len(x_train)} training and {len(x_test)} test images of shape {x_train.shape[1:]}.")
    started = time.monotonic()
    clf = ImageClassifier(max_trials=args.max_trials, seed=args.seed)
    clf.fit(x_train, y_train, epochs=args.epochs)
    seconds = time.monotonic() - started

    accuracy = clf.score(x_test, y_test)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    clf.export_model().save(args.output)
    print(f"Best architecture: {clf.best_architecture_}")
    print(f"Test accuracy: {accuracy:.4f} ({len(x_test)} held-out images), fit took {seconds:.0f} s.")
    print(f"Model saved to {os.path.abspath(args.output)}; load it with keras.models.load_model().")
    return accuracy


if __name__ == "__main__":
    main()
