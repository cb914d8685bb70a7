import numpy as np
import pandas as pd
import pytest

from automl_kit.data import LabelCoder, match_image_shape, to_image_array, validation_split_indices


class TestToImageArray:
    def test_accepts_3d_4d_and_lists(self):
        assert to_image_array(np.zeros((5, 8, 8))).shape == (5, 8, 8)
        assert to_image_array(np.zeros((5, 8, 8, 3), np.uint8)).shape == (5, 8, 8, 3)
        assert to_image_array([np.ones((6, 7))] * 4).shape == (4, 6, 7)
        assert to_image_array(np.zeros((2, 4, 4), bool)).dtype == np.uint8

    @pytest.mark.parametrize("shape", [(10,), (1, 2, 3, 4, 5)])
    def test_wrong_dimensions(self, shape):
        with pytest.raises(ValueError, match=r"dimensions.*\(N, H, W\)"):
            to_image_array(np.zeros(shape))

    def test_two_dimensions_hint_at_reshape(self):
        with pytest.raises(ValueError, match="flattened.*reshape"):
            to_image_array(np.zeros((10, 64)))

    def test_empty(self):
        with pytest.raises(ValueError, match="empty"):
            to_image_array(np.zeros((0, 8, 8)))
        with pytest.raises(ValueError, match="empty"):
            to_image_array([])

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_non_finite(self, bad):
        x = np.zeros((3, 4, 4))
        x[1, 2, 3] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            to_image_array(x)

    def test_ragged_list(self):
        with pytest.raises(ValueError, match="same shape"):
            to_image_array([np.zeros((8, 8)), np.zeros((9, 9))])

    def test_strings(self):
        with pytest.raises(TypeError, match="numbers"):
            to_image_array(np.full((2, 3, 3), "a"))

    def test_match_image_shape_grayscale_equivalence(self):
        assert match_image_shape(np.zeros((2, 8, 8, 1)), (8, 8)).shape == (2, 8, 8)
        assert match_image_shape(np.zeros((2, 8, 8)), (8, 8, 1)).shape == (2, 8, 8, 1)
        with pytest.raises(ValueError, match=r"fitted on images of shape \(8, 8\)"):
            match_image_shape(np.zeros((2, 9, 9)), (8, 8))
        with pytest.raises(ValueError, match="fitted on images"):
            match_image_shape(np.zeros((2, 8, 8, 3)), (8, 8, 1))


class TestLabelCoder:
    @pytest.mark.parametrize(
        "y",
        [
            np.array([3, 1, 3, 2]),
            np.array(["cat", "dog", "cat", "emu"]),
            np.array([True, False, True, True]),
            pd.Series(["b", "a", "b", "a"]),
            pd.Categorical(["lo", "hi", "lo", "hi"]),
            [0.0, 1.0, 2.0, 1.0],
        ],
        ids=["int", "str", "bool", "series", "categorical", "integral-float"],
    )
    def test_round_trip_keeps_type_and_values(self, y):
        coder = LabelCoder().fit(y)
        codes = coder.encode(y)
        assert codes.dtype == np.int32 and codes.min() == 0
        decoded = coder.decode(codes)
        assert list(decoded) == list(np.asarray(y))
        assert type(decoded[0]) is type(np.asarray(y)[0])

    def test_one_hot(self):
        y = np.eye(3, dtype=np.float32)[[0, 2, 1, 2]]
        coder = LabelCoder().fit(y)
        assert coder.one_hot_
        np.testing.assert_array_equal(coder.encode(y), [0, 2, 1, 2])
        np.testing.assert_array_equal(coder.decode([2, 0]), np.eye(3, dtype=np.float32)[[2, 0]])

    def test_single_class(self):
        with pytest.raises(ValueError, match="single class"):
            LabelCoder().fit([4, 4, 4])

    def test_continuous(self):
        with pytest.raises(ValueError, match="continuous"):
            LabelCoder().fit(np.linspace(0, 1, 20))

    def test_missing_labels(self):
        with pytest.raises(ValueError, match="missing"):
            LabelCoder().fit(np.array(["a", None, "b"], dtype=object))
        with pytest.raises(ValueError, match="missing"):
            LabelCoder().fit(np.array([0.0, np.nan, 1.0]))

    def test_multilabel_rejected(self):
        with pytest.raises(ValueError, match="not one-hot"):
            LabelCoder().fit(np.array([[1, 1, 0], [0, 1, 0]]))

    def test_unknown_label_at_encode(self):
        coder = LabelCoder().fit(["a", "b"])
        with pytest.raises(ValueError, match="not seen in fit"):
            coder.encode(["a", "z"])
        with pytest.raises(ValueError, match=r"Known classes: \[1, 2\]|cannot match"):
            LabelCoder().fit([1, 2]).encode(["a", "b"])


class TestValidationSplit:
    def test_stratified_and_shuffled_on_sorted_labels(self):
        labels = np.repeat(np.arange(5), 40)  # sorted by class, as in many datasets
        train, val = validation_split_indices(labels, 0.2, seed=0)
        assert len(val) == 40 and len(set(train) | set(val)) == 200 and not set(train) & set(val)
        np.testing.assert_array_equal(np.bincount(labels[val]), [8] * 5)

    def test_seed_controls_the_split(self):
        labels = np.repeat(np.arange(3), 30)
        a = validation_split_indices(labels, 0.3, seed=1)[1]
        b = validation_split_indices(labels, 0.3, seed=1)[1]
        c = validation_split_indices(labels, 0.3, seed=2)[1]
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)

    def test_rare_class_falls_back_to_unstratified(self):
        labels = np.array([0] * 20 + [1])
        with pytest.warns(UserWarning, match="unstratified"):
            train, val = validation_split_indices(labels, 0.2, seed=0)
        assert len(train) + len(val) == 21

    @pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
    def test_bad_fraction(self, fraction):
        with pytest.raises(ValueError, match="validation_split"):
            validation_split_indices(np.array([0, 1] * 10), fraction, seed=0)
