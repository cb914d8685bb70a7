import contextlib
import gc
import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from automl_kit import ImageClassifier


def _one_core_per_worker():
    """Under pytest-xdist each worker computes on its share of the cores, not all of them.

    TensorFlow sizes each op's thread pool to every core of the machine, so the
    workers (`-n auto`: one per core) oversubscribe the cores. Side by side on 2
    cores (tests/test_image_classifier.py and tests/test_export.py, `-n 2`,
    alternating): 99.3 and 94.1 s with TensorFlow's pools, 91.7 and 92.9 s with
    one thread within each op and one between ops, 90.1 s with one within each op
    alone (what this sets). About 5%, each pair within the machine's noise, but no
    run lost. Processes the tests start keep TensorFlow's defaults.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(max(1, (os.cpu_count() or 1) // workers))


_one_core_per_worker()


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (`-n`, `--dist loadgroup`), the tests that share the one
    expensive fit run on one worker, so that no other worker repeats it."""
    for item in items:
        if {"fitted_digits", "fitted_digits_run"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("fitted_digits"))


def pytest_collection_finish(session):
    """Moves every object alive after collection (TensorFlow's, Keras's, the test modules') out of
    the garbage collector's reach: they live as long as the process.

    The package frees each finished model with a full collection (`tuner.base.release_memory`),
    which walks every tracked object: 0.21 s a collection with TensorFlow loaded, twice a fit.
    Frozen, the same collection walks only what the tests made since, and five fits on sklearn's
    blobs took 2.32 to 2.62 s each instead of 2.79 to 2.96 (the estimator checks alone fit over and over).
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def digits_split():
    """sklearn digits, 70% / 30%, stratified: (x_train, x_test, y_train, y_test)."""
    digits = load_digits()
    return train_test_split(digits.images, digits.target, test_size=0.3, stratify=digits.target, random_state=0)


@pytest.fixture(scope="session")
def small_digits():
    """400 digit images (8x8 floats 0..16) and int labels, for quick fits."""
    digits = load_digits()
    return digits.images[:400], digits.target[:400]


@pytest.fixture
def small_search_data(small_digits):
    """The search's view of `small_digits`: a SearchData of 300 images to train on (10 steps of 32) and 100
    to validate on, standardised by their own mean and variance."""
    from automl_kit.data import InputSpec
    from automl_kit.tuner import SearchData

    x, y = small_digits
    x = np.asarray(x, np.float32)
    return SearchData(x_train=x[:300], y_train=y[:300], x_val=x[300:], y_val=y[300:],
                      input_spec=InputSpec((8, 8), (8, 8, 1)), num_classes=10, mean=(float(x.mean()),),
                      variance=(float(x.var()),))


@pytest.fixture(scope="session")
def fitted_digits_run(digits_split):
    """(classifier, stdout, stderr): a default ImageClassifier (ENAS) fitted with
    verbose=0 on 70% of digits with a small budget, and what the fit printed."""
    x_train, _, y_train, _ = digits_split
    clf = ImageClassifier(max_trials=2, seed=0)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        clf.fit(x_train, y_train, epochs=8, verbose=0)
    return clf, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def fitted_digits(fitted_digits_run):
    """A classifier searched and trained on 70% of digits with a small budget."""
    return fitted_digits_run[0]


# The search settings of tests that are not about the search itself.
QUICK = dict(tuner="random", search_space="macro")


def quick_fit(x, y, **fit_kwargs):
    """One trial of one epoch from scratch: enough to exercise the data path, not to be accurate.

    Random search from scratch over the macro space skips the supernet's
    tracing and trains small plain networks, so the many tests of input
    forms and label types stay quick; test_enas.py covers the defaults.
    """
    fit_kwargs.setdefault("epochs", 1)
    fit_kwargs.setdefault("verbose", 0)
    return ImageClassifier(max_trials=1, seed=0, **QUICK).fit(x, y, **fit_kwargs)


@pytest.fixture
def no_training(monkeypatch):
    """Makes any attempt to train a model fail the test: bad input must be caught before."""
    from automl_kit.tuner import training
    from automl_kit.tuner.supernet import Supernet

    def refuse(*args, **kwargs):
        raise AssertionError("training started before the bad input was rejected")

    monkeypatch.setattr(training, "train", refuse)
    monkeypatch.setattr(Supernet, "train_step", refuse)
    return refuse


def sorted_by_class(x, y):
    order = np.argsort(y, kind="stable")
    return x[order], y[order]
