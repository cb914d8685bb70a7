"""The stratified, shuffled validation split.

AutoKeras holds out the *last* 20% of the data, which on data sorted by class
gives a validation set of one class. This split shuffles with the seed and
keeps the class proportions whenever every class has at least two samples.
"""

import warnings

import numpy as np
from sklearn.model_selection import train_test_split


def validation_split_indices(labels, validation_split, seed):
    """Returns (train_indices, validation_indices) for integer class `labels`.

    Example:

    >>> labels = np.array([0] * 50 + [1] * 50)
    >>> train, val = validation_split_indices(labels, 0.2, seed=0)
    >>> len(train), len(val), int(labels[val].sum())
    (80, 20, 10)
    """
    if not 0.0 < validation_split < 1.0:
        raise ValueError(
            f"validation_split must be between 0 and 1 (exclusive); got {validation_split!r}. "
            "Pass e.g. 0.2, or give validation_data=(x_val, y_val)."
        )
    labels = np.asarray(labels)
    n = len(labels)
    n_val = int(round(n * validation_split))
    if n_val < 1 or n - n_val < 1:
        raise ValueError(
            f"validation_split={validation_split} leaves an empty training or validation "
            f"set for {n} samples. Pass more samples or give validation_data."
        )
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    stratify = labels if (counts.min() >= 2 and n_val >= len(counts) and n - n_val >= len(counts)) else None
    if stratify is None:
        warnings.warn(
            "Some classes have too few samples for a stratified validation split; "
            "using a shuffled, unstratified split instead.",
            stacklevel=3,
        )
    indices = np.arange(n)
    train, val = train_test_split(indices, test_size=n_val, random_state=seed, shuffle=True, stratify=stratify)
    return np.sort(train), np.sort(val)
