"""Turn what a user passes as images into one NHWC-ready numpy array.

Example:

>>> import numpy as np
>>> x = to_image_array([np.zeros((8, 8)), np.ones((8, 8))])
>>> x.shape
(2, 8, 8)
"""

import numpy as np

_FLAT_HINT = (
    "Pass images as (N, H, W) or (N, H, W, C); for flattened images, reshape "
    "them first, e.g. x.reshape(len(x), 28, 28) for 784 pixels per row."
)


def to_image_array(x, name="x"):
    """Returns `x` as a numeric numpy array of shape (N, H, W) or (N, H, W, C).

    Accepts a numpy array, anything `np.asarray` understands (pandas objects,
    tensors) or a list/tuple of equally shaped images. Raises `TypeError` or
    `ValueError` naming the problem and the expected form.
    """
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise ValueError(f"`{name}` is empty: pass at least one image.")
        shapes = {np.shape(image) for image in x}
        if len(shapes) > 1:
            raise ValueError(
                f"All images in `{name}` must have the same shape; got shapes "
                f"{sorted(shapes)[:3]}. Resize them to one shape first."
            )
        x = np.stack([np.asarray(image) for image in x])
    else:
        x = np.asarray(x)

    if x.dtype == bool:
        x = x.astype(np.uint8)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise TypeError(
            f"`{name}` must hold numbers (uint8 0-255 or floats); got dtype "
            f"{x.dtype}. Convert the images with np.asarray(x, dtype='float32')."
        )
    if x.ndim == 2:
        raise ValueError(
            f"`{name}` has 2 dimensions {x.shape}, which looks like flattened "
            f"or tabular data. {_FLAT_HINT}"
        )
    if x.ndim not in (3, 4):
        raise ValueError(
            f"`{name}` has {x.ndim} dimensions {x.shape}; expected images as "
            "(N, H, W) for grayscale or (N, H, W, C) with channels last."
        )
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` is empty (shape {x.shape}): pass at least one image.")
    if min(x.shape[1:3]) < 1 or (x.ndim == 4 and x.shape[3] < 1):
        raise ValueError(f"`{name}` has an empty image axis: shape {x.shape}.")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(
            f"`{name}` contains {bad} NaN or infinite values. Replace or drop "
            "those images before fitting, e.g. with np.nan_to_num(x)."
        )
    return x


def match_image_shape(x, image_shape, name="x"):
    """Checks `x` against the image shape seen in `fit` and returns it in that form.

    `(N, H, W)` and `(N, H, W, 1)` are the same grayscale images, so either is
    accepted for a model fitted on the other.
    """
    x = to_image_array(x, name=name)
    image_shape = tuple(image_shape)
    if x.shape[1:] == image_shape:
        return x
    if x.ndim == 4 and x.shape[3] == 1 and x.shape[1:3] == image_shape:
        return x[..., 0]
    if x.ndim == 3 and len(image_shape) == 3 and image_shape[2] == 1 and x.shape[1:] == image_shape[:2]:
        return x[..., np.newaxis]
    raise ValueError(
        f"`{name}` has images of shape {x.shape[1:]}, but the model was fitted "
        f"on images of shape {image_shape}. Resize or reshape the images to "
        f"{image_shape} first."
    )
