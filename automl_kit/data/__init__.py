"""Adapting user input: images to arrays, labels to integers, the validation split."""

from automl_kit.data.images import InputSpec, to_array
from automl_kit.data.labels import LabelCoder
from automl_kit.data.split import validation_split_indices

__all__ = ["InputSpec", "LabelCoder", "to_array", "validation_split_indices"]
