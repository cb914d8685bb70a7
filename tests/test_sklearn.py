"""ImageClassifier as a drop-in scikit-learn estimator."""

import os
import pickle
import tempfile

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from automl_kit import ImageClassifier
from tests.conftest import QUICK

# One short trial per fit keeps the ~50 checks quick: they fit again and again,
# on blobs that two epochs already separate (check_classifiers_train asks for
# 0.83), and the other tests here check what reaches the estimator (the one
# accuracy check on digits asks for 0.5).
# Random search from scratch: the supernet's tracing would dominate them.
# test_enas.py covers the default.
FAST = dict(max_trials=1, epochs=2, seed=0, **QUICK)

EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data":
        "stochastic minibatch training: integer weights and repeated rows give different batches",
    "check_methods_sample_order_invariance":
        "batched float32 inference: a row's place in the batch picks the matrix kernel's tail or body, which sum "
        "in another order (differences of about 1e-6 relative, against the check's rtol of 1e-7)",
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS


# A few epochs: enough to show the pull of sample and class weights.
SHORT = dict(FAST, epochs=4)


@parametrize_with_checks([ImageClassifier(**FAST)], expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    monkeypatch.setattr(ImageClassifier.fit, "__defaults__", _quiet_fit_defaults())
    check(estimator)


def _quiet_fit_defaults():
    defaults = list(ImageClassifier.fit.__defaults__)
    defaults[5] = 0  # verbose
    return tuple(defaults)


@pytest.fixture(scope="module")
def flat_digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)  # (1797, 64): flattened 8x8 images
    return x[:600], y[:600]


def test_flattened_images_are_searched_as_images(flat_digits):
    x, y = flat_digits
    clf = ImageClassifier(**FAST).fit(x, y, verbose=0)
    assert clf.input_spec_.image_shape == (8, 8, 1)
    assert "filters" in str(clf.best_architecture_)  # a convolutional network, not a dense one
    assert clf.predict(x[:5]).shape == (5,)
    assert clf.predict(x[:5].reshape(5, 8, 8)).shape == (5,)  # images work as well as rows
    with pytest.raises(ValueError, match="X has 63 features"):
        clf.predict(x[:5, :63])


def test_explicit_input_shape_for_non_square_images():
    rng = np.random.default_rng(0)
    x = rng.random((120, 6 * 10 * 3))
    y = (x[:, 0] > 0.5).astype(int)
    clf = ImageClassifier(input_shape=(6, 10, 3), **FAST).fit(x, y, verbose=0)
    assert clf.input_spec_.image_shape == (6, 10, 3)
    assert clf.export_model().input_shape == (None, 180)


def test_tabular_input_falls_back_to_dense_networks():
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    clf = ImageClassifier(**FAST).fit(x, y, epochs=30, verbose=0)
    assert str(clf.best_architecture_).startswith("dense")
    assert clf.score(x, y) > 0.8


def test_dataframe_sets_feature_names(flat_digits):
    x, y = flat_digits
    frame = pd.DataFrame(x, columns=[f"px{i}" for i in range(64)])
    clf = ImageClassifier(**FAST).fit(frame, y, verbose=0)
    assert list(clf.feature_names_in_) == list(frame.columns)
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(pd.DataFrame(x[:3], columns=[f"c{i}" for i in range(64)]))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        clf.predict(x[:3])


def test_pipeline(flat_digits):
    x, y = flat_digits
    pipe = Pipeline([("scale", FunctionTransformer(lambda v: v / 16.0)), ("clf", ImageClassifier(**FAST))])
    pipe.fit(x, y, clf__verbose=0)
    assert pipe.predict(x[:10]).shape == (10,)
    assert pipe.score(x, y) > 0.5


def test_grid_search(flat_digits):
    x, y = flat_digits
    grid = GridSearchCV(ImageClassifier(max_trials=1, seed=0, **QUICK), {"epochs": [1, 2]}, cv=2)
    grid.fit(x[:300], y[:300], verbose=0)
    assert grid.best_params_["epochs"] in (1, 2)
    assert len(grid.cv_results_["mean_test_score"]) == 2


def test_cross_val_score_uses_separate_directories_and_leaves_none(flat_digits, monkeypatch, tmp_path):
    from automl_kit.tuner import project as project_module

    opened = []
    original = project_module.Project.start

    def spy(project, fingerprint, overwrite=False):
        opened.append(project.path)
        original(project, fingerprint, overwrite)
        assert project.load_trials() == [], "a fold resumed another fold's search"
        return project

    monkeypatch.setattr(project_module.Project, "start", spy)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    x, y = flat_digits
    scores = cross_val_score(ImageClassifier(**FAST), x, y, cv=3, params={"verbose": 0})
    assert len(scores) == 3 and np.all((scores >= 0) & (scores <= 1))
    assert len(set(opened)) == 3
    assert os.listdir(tmp_path) == []  # no search directory left behind, none in the working directory


def test_pickle_and_joblib_round_trip(flat_digits, tmp_path):
    x, y = flat_digits
    clf = ImageClassifier(**FAST).fit(x, y, verbose=0)
    expected = clf.predict_proba(x)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(x), expected)
    np.testing.assert_array_equal(again.predict(x), clf.predict(x))
    joblib.dump(clf, tmp_path / "clf.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "clf.joblib").predict_proba(x), expected)

    pipe = Pipeline([("clf", ImageClassifier(**FAST))]).fit(x, y, clf__verbose=0)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(pipe)).predict_proba(x), pipe.predict_proba(x))


def test_clone_of_fitted_estimator_is_unfitted(flat_digits):
    x, y = flat_digits
    clf = ImageClassifier(**FAST).fit(x, y, verbose=0)
    copy = clone(clf)
    assert copy.get_params() == clf.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(x)
    assert not any(name.endswith("_") and not name.startswith("_") for name in vars(copy))


def test_get_and_set_params():
    clf = ImageClassifier(max_trials=3)
    params = clf.get_params(deep=True)
    assert params["max_trials"] == 3 and "class_weight" in params
    assert ImageClassifier(**params).get_params() == params
    clf.set_params(max_trials=5, seed=1)
    assert clf.max_trials == 5 and clf.seed == 1
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(no_such_parameter=1)


def test_weights_reach_training(flat_digits, monkeypatch):
    from automl_kit.tuner import training

    seen = []
    original = training.train

    def spy(model, x, y, **kwargs):
        seen.append((y, kwargs.get("sample_weight")))
        return original(model, x, y, **kwargs)

    monkeypatch.setattr(training, "train", spy)
    x, y = flat_digits
    binary = np.where(y == 0, "zero", "other")
    ImageClassifier(class_weight={"zero": 5.0}, **FAST).fit(x, binary, sample_weight=np.full(len(y), 2.0), verbose=0)
    assert len(seen) == 2  # one trial, then the final model
    for codes, weights in seen:
        zero_code = 1  # classes_ is ["other", "zero"]
        np.testing.assert_allclose(weights, np.where(codes == zero_code, 10.0, 2.0))


def test_sample_weight_and_class_weight(flat_digits):
    x, y = flat_digits
    binary = np.where(y == 0, "zero", "other")
    # Weighting the rare class heavily makes the model predict it more often.
    plain = ImageClassifier(**SHORT).fit(x, binary, verbose=0)
    weighted = ImageClassifier(class_weight={"zero": 50.0}, **SHORT).fit(x, binary, verbose=0)
    assert (weighted.predict(x) == "zero").sum() >= (plain.predict(x) == "zero").sum()
    by_sample = ImageClassifier(**SHORT).fit(x, binary, sample_weight=np.where(binary == "zero", 50.0, 1.0), verbose=0)
    assert (by_sample.predict(x) == "zero").sum() >= (plain.predict(x) == "zero").sum()
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        ImageClassifier(**SHORT).fit(x, binary, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="class_weight names labels not in y"):
        ImageClassifier(class_weight={"seven": 2.0}, **SHORT).fit(x, binary)
    ImageClassifier(class_weight="balanced", **SHORT).fit(x, binary, verbose=0)
