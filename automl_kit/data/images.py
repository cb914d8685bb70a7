"""Turn what a user passes as images (or features) into numeric numpy arrays.

`to_array` checks and converts the raw input. `InputSpec.infer` decides, at
fit time, what one sample is: an image `(H, W)` / `(H, W, C)`, a flattened
image `(H*W*C,)`, or a row of tabular features. `InputSpec.conform` brings
later input (predict, evaluate) into that same form, or says why it cannot.

Example:

>>> import numpy as np
>>> spec = InputSpec.infer(np.zeros((10, 64)))     # 64 = 8 x 8: flattened grayscale images
>>> spec.input_shape, spec.image_shape
((64,), (8, 8, 1))
>>> spec.conform(np.zeros((2, 8, 8))).shape        # images predict as well as rows
(2, 64)
"""

import dataclasses
import math

import numpy as np
import scipy.sparse

# A 2-D input whose width is a square number of at least this side is taken as
# flattened square grayscale images; narrower inputs are tabular features.
MIN_INFERRED_IMAGE_SIDE = 8


def to_array(x, name="x"):
    """Returns `x` as a numeric numpy array with 2 to 4 dimensions and at least one sample.

    Accepts numpy arrays, pandas objects, nested lists, and lists/tuples of
    equally shaped images. Raises `TypeError` or `ValueError` naming the
    problem and the expected form.
    """
    if scipy.sparse.issparse(x):
        raise TypeError(f"Sparse input is not supported for `{name}`; pass a dense array, e.g. {name}.toarray().")
    if x is None:
        raise ValueError(f"`{name}` is None; pass images as (N, H, W) or (N, H, W, C).")
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise ValueError(f"`{name}` is empty: pass at least one image.")
        shapes = {np.shape(item) for item in x}
        if len(shapes) > 1:
            raise ValueError(
                f"All images in `{name}` must have the same shape; got shapes "
                f"{sorted(shapes)[:3]}. Resize them to one shape first."
            )
        x = np.stack([np.asarray(item) for item in x])
    else:
        x = np.asarray(x)

    if np.iscomplexobj(x):
        raise ValueError(f"Complex data not supported in `{name}`; pass real numbers.")
    if x.dtype == bool:
        x = x.astype(np.uint8)
    elif x.dtype == object:
        try:
            x = x.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(f"`{name}` must hold numbers; converting it failed: {error}") from None
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise TypeError(
            f"`{name}` must hold numbers (uint8 0-255 or floats); got dtype "
            f"{x.dtype}. Convert it with np.asarray({name}, dtype='float32')."
        )
    if x.ndim not in (2, 3, 4):
        hint = " Reshape your data: one sample per row." if x.ndim < 2 else ""
        raise ValueError(
            f"`{name}` has {x.ndim} dimensions {x.shape}; expected images as "
            "(N, H, W) for grayscale or (N, H, W, C) with channels last, or "
            f"flattened images / features as (N, F).{hint}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` is empty (shape {x.shape}): pass at least one sample.")
    if 0 in x.shape[1:]:
        raise ValueError(
            f"`{name}` has 0 feature(s) (shape={x.shape}) while a minimum of 1 is required: "
            "each sample needs at least one value."
        )
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(
            f"`{name}` contains {bad} NaN or infinite values. Replace or drop "
            "those samples before fitting, e.g. with np.nan_to_num(x)."
        )
    return x


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What one sample looks like to the model.

    Attributes:
        input_shape: one sample as the user passes it and the exported model
            takes it: (H, W), (H, W, C), or (F,) for flattened images and
            tabular features.
        image_shape: (H, W, C) that the convolutional network sees, or None
            for tabular features.
        any_size: the images were read from files, a dataset or a list of
            several sizes (or `image_size` was given): the exported model
            resizes images of any height and width to `image_shape` itself.
    """

    input_shape: tuple
    image_shape: tuple = None
    any_size: bool = False

    @property
    def is_image(self):
        return self.image_shape is not None

    @property
    def n_features(self):
        return int(np.prod(self.input_shape))

    @property
    def network_shape(self):
        """One sample as the first layer after preprocessing sees it."""
        return self.image_shape if self.is_image else self.input_shape

    @classmethod
    def infer(cls, x, input_shape=None):
        """Decides the spec from fit's `x` (an array from `to_array`) and the `input_shape` parameter."""
        if input_shape is not None:
            image_shape = tuple(int(d) for d in input_shape)
            if len(image_shape) == 2:
                image_shape += (1,)
            if len(image_shape) != 3 or min(image_shape) < 1:
                raise ValueError(f"input_shape must be (H, W) or (H, W, C) with positive sizes; got {input_shape!r}.")
            if int(np.prod(x.shape[1:])) != int(np.prod(image_shape)):
                raise ValueError(
                    f"input_shape={tuple(input_shape)} holds {int(np.prod(image_shape))} values per image, "
                    f"but x has {int(np.prod(x.shape[1:]))} per sample (shape {x.shape}). Fix input_shape "
                    "or pass input_shape=None."
                )
            if x.ndim == 2:
                return cls(input_shape=(x.shape[1],), image_shape=image_shape)
            if x.shape[1:3] != image_shape[:2]:
                raise ValueError(f"x has images of shape {x.shape[1:]}, but input_shape={tuple(input_shape)}.")
            return cls(input_shape=x.shape[1:], image_shape=image_shape)
        if x.ndim == 2:
            side = math.isqrt(x.shape[1])
            if side * side == x.shape[1] and side >= MIN_INFERRED_IMAGE_SIDE:
                return cls(input_shape=(x.shape[1],), image_shape=(side, side, 1))
            return cls(input_shape=(x.shape[1],), image_shape=None)
        channels = x.shape[3] if x.ndim == 4 else 1
        return cls(input_shape=x.shape[1:], image_shape=x.shape[1:3] + (channels,))

    def conform(self, x, name="x"):
        """Checks later input against this spec; returns it shaped as `input_shape`."""
        x = to_array(x, name=name)
        if x.shape[1:] == self.input_shape:
            return x
        if x.ndim == 2:
            if x.shape[1] == self.n_features:
                return x.reshape((len(x),) + self.input_shape)
            raise ValueError(
                f"X has {x.shape[1]} features, but ImageClassifier is expecting {self.n_features} "
                f"features as input (images of shape {self.input_shape})."
            )
        if self.is_image:
            channels = x.shape[3] if x.ndim == 4 else 1
            if x.shape[1:3] == self.image_shape[:2] and channels == self.image_shape[2]:
                return x.reshape((len(x),) + self.input_shape)
        expected = self.image_shape if self.is_image and len(self.input_shape) == 1 else self.input_shape
        raise ValueError(
            f"`{name}` has samples of shape {x.shape[1:]}, but the model was fitted on "
            f"{'images' if self.is_image else 'feature rows'} of shape {expected}. "
            f"Resize or reshape them to {expected} first."
        )
