"""Encode the user's class labels as integers, and decode predictions back.

Example:

>>> coder = LabelCoder().fit(["cat", "dog", "cat"])
>>> coder.classes_.tolist()
['cat', 'dog']
>>> coder.encode(["dog"]).tolist()
[1]
>>> coder.decode([0, 1]).tolist()
['cat', 'dog']
"""

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import type_of_target


def _as_label_array(y, name):
    if y is None:
        raise ValueError(
            "ImageClassifier requires y to be passed, but the target y is None. Pass one class label per image."
        )
    if isinstance(y, (pd.Series, pd.Index, pd.Categorical)):
        y = np.asarray(y)
    elif isinstance(y, pd.DataFrame):
        y = y.to_numpy()
    else:
        y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the shape "
            "of y to (n_samples,), for example using ravel().",
            DataConversionWarning,
            stacklevel=3,
        )
        y = y[:, 0]
    if y.ndim == 0 or y.ndim > 2:
        raise ValueError(
            f"`{name}` must be a 1-D array of class labels or a one-hot (N, K) "
            f"array; got shape {y.shape}."
        )
    if y.shape[0] == 0:
        raise ValueError(f"`{name}` is empty: pass one label per image.")
    missing = pd.isna(y) if y.dtype == object else (
        np.isnan(y) if np.issubdtype(y.dtype, np.floating) else np.zeros(y.shape, bool)
    )
    if np.any(missing):
        raise ValueError(
            f"`{name}` contains {int(np.sum(missing))} missing labels (NaN/None). "
            "Drop those samples or give them a class."
        )
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
        raise ValueError(f"`{name}` contains infinite labels; pass class labels.")
    return y


class LabelCoder:
    """Maps labels of any type (ints, strings, bools, one-hot rows) to 0..K-1.

    `classes_` holds the distinct labels, sorted, in the user's own dtype.
    `one_hot_` records whether `y` came as one-hot rows, so that `decode`
    returns one-hot rows again.
    """

    def fit(self, y, name="y"):
        y = _as_label_array(y, name)
        if y.ndim == 2:
            if not (np.isin(y, (0, 1)).all() and np.all(y.sum(axis=1) == 1)):
                raise ValueError(
                    f"`{name}` is 2-D with shape {y.shape} but is not one-hot "
                    "(each row must hold a single 1). Multi-label targets are "
                    "not supported; pass one class label per image."
                )
            self.one_hot_ = True
            self.one_hot_dtype_ = y.dtype
            self.classes_ = np.arange(y.shape[1])
        else:
            if y.dtype == object:
                kinds = {type(label) for label in y}
                if len(kinds) > 1:
                    raise TypeError(
                        f"`{name}` mixes label types {sorted(k.__name__ for k in kinds)}; "
                        "use one type, e.g. all strings or all ints."
                    )
            elif type_of_target(y) == "continuous":
                raise ValueError(
                    f"Unknown label type: `{name}` holds continuous float values (e.g. {y[0]!r}), "
                    "which look like regression targets. ImageClassifier needs class "
                    "labels: ints, strings, bools or one-hot rows."
                )
            self.one_hot_ = False
            self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"`{name}` has only one class {self.classes_.tolist()}; a classifier "
                "needs at least two classes."
            )
        return self

    def encode(self, y, name="y"):
        """Returns int32 class indices for `y`; unknown labels raise ValueError."""
        y = _as_label_array(y, name)
        if self.one_hot_:
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError(
                    f"`{name}` must be one-hot with {len(self.classes_)} columns, "
                    f"as in fit; got shape {y.shape}."
                )
            return np.argmax(y, axis=1).astype(np.int32)
        if y.ndim != 1:
            raise ValueError(f"`{name}` must be 1-D class labels as in fit; got shape {y.shape}.")
        try:
            indices = np.searchsorted(self.classes_, y)
            indices = np.clip(indices, 0, len(self.classes_) - 1)
            unknown = np.asarray(self.classes_[indices] != y, dtype=bool)
        except TypeError:
            raise ValueError(
                f"`{name}` has labels of type {y.dtype} that cannot match the classes "
                f"seen in fit ({self.classes_.dtype}): {self.classes_.tolist()[:10]}."
            ) from None
        if np.any(unknown):
            raise ValueError(
                f"`{name}` has labels not seen in fit: {np.unique(y[unknown])[:5].tolist()}. "
                f"Known classes: {self.classes_.tolist()[:10]}."
            )
        return indices.astype(np.int32)

    def decode(self, indices):
        """Returns labels in the form `fit` saw, for class indices."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.one_hot_:
            return np.eye(len(self.classes_), dtype=self.one_hot_dtype_)[indices]
        return self.classes_[indices]
