import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from automl_kit import ImageClassifier
from tests.conftest import quick_fit, sorted_by_class


def test_end_to_end_digits_accuracy(fitted_digits, digits_split):
    _, x_test, _, y_test = digits_split
    accuracy = fitted_digits.score(x_test, y_test)
    assert accuracy >= 0.93, accuracy
    assert len(fitted_digits.trials_) == 2
    assert fitted_digits.best_trial_.status == "completed"
    np.testing.assert_array_equal(fitted_digits.classes_, np.arange(10))
    assert fitted_digits.n_features_in_ == 64 and fitted_digits.input_spec_.input_shape == (8, 8)


def test_predict_proba_and_evaluate(fitted_digits, digits_split):
    _, x_test, _, y_test = digits_split
    proba = fitted_digits.predict_proba(x_test)
    assert proba.shape == (len(x_test), 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(fitted_digits.classes_[proba.argmax(axis=1)], fitted_digits.predict(x_test))
    result = fitted_digits.evaluate(x_test, y_test)
    assert set(result) >= {"loss", "accuracy"}
    assert result["accuracy"] == pytest.approx(fitted_digits.score(x_test, y_test), abs=1e-6)


def test_predict_accepts_channel_axis_and_uint8(fitted_digits, digits_split):
    _, x_test, _, _ = digits_split
    p = fitted_digits.predict_proba(x_test)
    np.testing.assert_allclose(fitted_digits.predict_proba(x_test[..., None]), p, atol=1e-6)
    np.testing.assert_allclose(fitted_digits.predict_proba(list(x_test)), p, atol=1e-6)


def test_export_reloads_in_fresh_process_without_automl_kit(fitted_digits, digits_split, tmp_path):
    _, x_test, _, _ = digits_split
    model_path = tmp_path / "best.keras"
    fitted_digits.export_model().save(model_path)
    np.save(tmp_path / "x.npy", x_test)
    script = textwrap.dedent(
        f"""
        import sys, numpy as np, keras
        model = keras.models.load_model({str(model_path)!r})  # default safe_mode, no custom_objects
        proba = model.predict(np.load({str(tmp_path / 'x.npy')!r}).astype("float32"), verbose=0)["probabilities"]
        np.save({str(tmp_path / 'proba.npy')!r}, proba)
        assert "automl_kit" not in sys.modules, "the exported model pulled in automl_kit"
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # Run outside the repository so `automl_kit` is not importable by accident.
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "proba.npy"), fitted_digits.predict_proba(x_test), atol=1e-6)


def test_export_is_the_final_model(fitted_digits):
    model = fitted_digits.export_model()
    assert model.get_layer("automl_kit_model") is fitted_digits.model_
    # The final model was trained on training + validation data for the best trial's best epoch count.
    assert fitted_digits.best_trial_.best_epoch >= 1


@pytest.mark.parametrize(
    "make_labels",
    [
        lambda y: np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])[y],
        lambda y: y % 2 == 0,
        lambda y: pd.Series(y + 100),
        lambda y: pd.Categorical(np.array(list("abcdefghij"))[y]),
        lambda y: np.eye(10, dtype=np.float32)[y],
        lambda y: (y * 1.0).tolist(),
    ],
    ids=["strings", "bools", "series", "categorical", "one-hot", "float-list"],
)
def test_label_types_round_trip(small_digits, make_labels):
    x, y = small_digits
    labels = make_labels(y)
    clf = quick_fit(x, labels)
    predicted = clf.predict(x[:20])
    expected_values = np.asarray(labels)
    if expected_values.ndim == 2:  # one-hot in, one-hot out
        assert predicted.shape == (20, 10) and predicted.dtype == expected_values.dtype
        assert np.all(predicted.sum(axis=1) == 1)
    else:
        assert set(np.asarray(predicted).tolist()) <= set(expected_values.tolist())
        assert type(predicted[0]) is type(expected_values[0])
    assert clf.predict_proba(x[:20]).shape == (20, len(clf.classes_))
    assert 0.0 <= clf.score(x[:50], labels[:50] if not isinstance(labels, list) else labels[:50]) <= 1.0


@pytest.mark.parametrize(
    "make_images",
    [
        lambda x: (x * 16).clip(0, 255).astype(np.uint8),
        lambda x: x[..., None].astype(np.float32),
        lambda x: np.repeat(x[..., None], 3, axis=-1),
        lambda x: list(x),
    ],
    ids=["uint8", "nhwc-1", "nhwc-3", "list"],
)
def test_image_forms(small_digits, make_images):
    x, y = small_digits
    images = make_images(x)
    clf = quick_fit(images, y)
    assert clf.predict(images[:10]).shape == (10,)


def test_binary_problem_has_two_probability_columns(small_digits):
    x, y = small_digits
    clf = quick_fit(x, np.where(y < 5, "low", "high"))
    assert clf.predict_proba(x[:5]).shape == (5, 2)
    assert clf.classes_.tolist() == ["high", "low"]


def test_validation_data(small_digits):
    x, y = small_digits
    clf = quick_fit(x[:300], y[:300], validation_data=(x[300:], y[300:]))
    assert len(clf.best_trial_.history["val_accuracy"]) == 1
    with pytest.raises(ValueError, match="not seen in fit"):
        xs, ys = sorted_by_class(x, y)
        ImageClassifier().fit(xs[ys < 8], ys[ys < 8], validation_data=(xs[ys >= 8], ys[ys >= 8]))


def test_sorted_input_is_split_stratified(small_digits, monkeypatch):
    from automl_kit.data import split

    seen = {}
    original = split.validation_split_indices

    def spy(labels, validation_split, seed):
        train, val = original(labels, validation_split, seed)
        seen["val_labels"] = labels[val]
        return train, val

    monkeypatch.setattr("automl_kit.pipeline.validation_split_indices", spy)
    x, y = sorted_by_class(*small_digits)
    quick_fit(x, y)
    # AutoKeras would hold out the last 20%: only 8s and 9s. Ours holds out every class.
    assert set(seen["val_labels"].tolist()) == set(range(10))


class TestBadInput:
    @pytest.mark.parametrize(
        "x, message",
        [
            (np.zeros(30), "dimensions"),
            (np.zeros((30, 2, 8, 8, 1)), "dimensions"),
            (np.zeros((0, 8, 8)), "empty"),
        ],
        ids=["1d", "5d", "empty"],
    )
    def test_bad_x(self, x, message, no_training):
        with pytest.raises(ValueError, match=message):
            ImageClassifier(max_trials=1).fit(x, np.arange(30) % 2)

    def test_nan_and_inf(self, small_digits, no_training):
        x, y = small_digits
        for bad in (np.nan, np.inf):
            x_bad = x.copy()
            x_bad[3, 1, 1] = bad
            with pytest.raises(ValueError, match="NaN or infinite"):
                ImageClassifier(max_trials=1).fit(x_bad, y)

    def test_length_mismatch(self, small_digits, no_training):
        x, y = small_digits
        with pytest.raises(ValueError, match="different lengths"):
            ImageClassifier(max_trials=1).fit(x, y[:-1])

    def test_single_class(self, small_digits, no_training):
        x, _ = small_digits
        with pytest.raises(ValueError, match="only one class"):
            ImageClassifier(max_trials=1).fit(x, np.zeros(len(x)))

    def test_continuous_targets(self, small_digits, no_training):
        x, _ = small_digits
        with pytest.raises(ValueError, match="continuous"):
            ImageClassifier(max_trials=1).fit(x, np.random.default_rng(0).random(len(x)))

    @pytest.mark.parametrize(
        "params, message",
        [
            ({"tuner": "bayesian"}, "Unknown tuner"),
            ({"max_trials": 0}, "max_trials"),
            ({"objective": "accuracy"}, "objective"),
            ({"max_model_size": 10}, "max_model_size"),
            ({"time_limit": -5}, "time_limit"),
        ],
    )
    def test_bad_parameters(self, small_digits, params, message, no_training):
        x, y = small_digits
        with pytest.raises(ValueError, match=message):
            ImageClassifier(**params).fit(x, y)

    def test_bad_fit_arguments(self, small_digits, no_training):
        x, y = small_digits
        with pytest.raises(ValueError, match="epochs"):
            ImageClassifier().fit(x, y, epochs=0)
        with pytest.raises(ValueError, match="validation_split"):
            ImageClassifier().fit(x, y, validation_split=1.0)
        with pytest.raises(ValueError, match="fitted on images|validation_data"):
            ImageClassifier().fit(x, y, validation_data=(np.zeros((5, 9, 9)), y[:5]))

    def test_predict_before_fit(self, small_digits):
        x, _ = small_digits
        for method in ("predict", "predict_proba", "export_model"):
            with pytest.raises(NotFittedError):
                getattr(ImageClassifier(), method)(*([] if method == "export_model" else [x]))

    def test_predict_with_other_image_shape(self, fitted_digits):
        with pytest.raises(ValueError, match=r"fitted on images of shape \(8, 8\)"):
            fitted_digits.predict(np.zeros((3, 28, 28)))
        with pytest.raises(ValueError, match="fitted on images"):
            fitted_digits.predict(np.zeros((3, 8, 8, 3)))
        with pytest.raises(ValueError, match="not seen in fit"):
            fitted_digits.evaluate(np.zeros((2, 8, 8)), [1, 99])
