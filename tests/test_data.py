import numpy as np
import pandas as pd
import pytest

from automl_kit.data import InputSpec, LabelCoder, to_array, validation_split_indices


class TestToArray:
    def test_accepts_3d_4d_2d_and_lists(self):
        assert to_array(np.zeros((5, 8, 8))).shape == (5, 8, 8)
        assert to_array(np.zeros((5, 8, 8, 3), np.uint8)).shape == (5, 8, 8, 3)
        assert to_array([np.ones((6, 7))] * 4).shape == (4, 6, 7)
        assert to_array(np.zeros((2, 4, 4), bool)).dtype == np.uint8
        assert to_array(pd.DataFrame(np.ones((3, 5)))).shape == (3, 5)
        assert to_array(np.ones((3, 5), dtype=object)).dtype == np.float64

    @pytest.mark.parametrize("shape", [(10,), (1, 2, 3, 4, 5)])
    def test_wrong_dimensions(self, shape):
        with pytest.raises(ValueError, match=r"dimensions.*\(N, H, W\)"):
            to_array(np.zeros(shape))

    def test_empty(self):
        with pytest.raises(ValueError, match="empty"):
            to_array(np.zeros((0, 8, 8)))
        with pytest.raises(ValueError, match="empty"):
            to_array([])

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_non_finite(self, bad):
        x = np.zeros((3, 4, 4))
        x[1, 2, 3] = bad
        with pytest.raises(ValueError, match="NaN or infinite"):
            to_array(x)

    def test_ragged_list(self):
        with pytest.raises(ValueError, match="same shape"):
            to_array([np.zeros((8, 8)), np.zeros((9, 9))])

    def test_not_numbers(self):
        with pytest.raises(TypeError, match="numbers"):
            to_array(np.full((2, 3, 3), "a"))
        x = np.ones((2, 3), dtype=object)
        x[0, 0] = {"a": 1}
        with pytest.raises(TypeError, match="argument must be a string.* number"):
            to_array(x)
        with pytest.raises(ValueError, match="Complex"):
            to_array(np.ones((2, 3, 3), dtype=complex))

    def test_sparse(self):
        import scipy.sparse

        with pytest.raises(TypeError, match="Sparse"):
            to_array(scipy.sparse.csr_matrix(np.eye(4)))


class TestInputSpec:
    def test_images(self):
        assert InputSpec.infer(np.zeros((2, 8, 8))) == InputSpec((8, 8), (8, 8, 1))
        assert InputSpec.infer(np.zeros((2, 32, 30, 3))) == InputSpec((32, 30, 3), (32, 30, 3))

    def test_two_d(self):
        assert InputSpec.infer(np.zeros((2, 784))) == InputSpec((784,), (28, 28, 1))
        assert InputSpec.infer(np.zeros((2, 3072)), input_shape=(32, 32, 3)) == InputSpec((3072,), (32, 32, 3))
        assert InputSpec.infer(np.zeros((2, 10))) == InputSpec((10,), None)  # tabular
        assert InputSpec.infer(np.zeros((2, 16))).image_shape is None  # 4x4 is too small to guess
        with pytest.raises(ValueError, match="input_shape"):
            InputSpec.infer(np.zeros((2, 100)), input_shape=(8, 8))

    def test_conform_grayscale_and_flat_equivalence(self):
        spec = InputSpec.infer(np.zeros((2, 8, 8)))
        assert spec.conform(np.zeros((2, 8, 8, 1))).shape == (2, 8, 8)
        assert spec.conform(np.zeros((2, 64))).shape == (2, 8, 8)
        spec = InputSpec.infer(np.zeros((2, 8, 8, 1)))
        assert spec.conform(np.zeros((2, 8, 8))).shape == (2, 8, 8, 1)
        with pytest.raises(ValueError, match=r"fitted on images of shape \(8, 8, 1\)"):
            spec.conform(np.zeros((2, 9, 9)))
        with pytest.raises(ValueError, match="fitted on images"):
            spec.conform(np.zeros((2, 8, 8, 3)))
        with pytest.raises(ValueError, match="X has 63 features, but ImageClassifier is expecting 64"):
            spec.conform(np.zeros((2, 63)))


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
        with pytest.raises(ValueError, match="only one class"):
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
