"""Images that are not one array yet: folders, files, `tf.data`, lists of mixed sizes.

`is_source(x)` tells whether `x` is one of these; `read` turns it into one
NHWC array at one size, with its labels where the source carries them:

- a folder with one subfolder per class (`y` omitted: the labels are the
  subfolder names), or, to predict, a folder or file of images;
- a list of image file paths (labels in `y`);
- a `tf.data.Dataset` of `(image, label)` pairs or batches (or of images
  alone, to predict);
- a list of arrays or PIL images of different sizes.

The size is chosen from the data (`choose_size`) unless given, and every
image is resized with `resize`, the same computation as the Keras
`Resizing` layer at the front of the exported model, so a model predicts
from a decoded file exactly as `predict` does.

Example:

>>> import numpy as np
>>> images = [np.zeros((30, 40), np.uint8), np.zeros((34, 40, 4), np.uint8), np.zeros((30, 44, 3), np.uint8)]
>>> is_source(images)
True
>>> read(images, [0, 1, 0]).pixels.shape     # median size, RGB since some images are in colour
(3, 30, 40, 3)
"""

import dataclasses
import os
import warnings

import numpy as np

from automl_kit.data import files

# A size chosen from the data keeps its longer side at or below this many
# pixels, so that a CPU can train on photos in minutes; `image_size=` overrides it.
MAX_CHOSEN_SIDE = 64


@dataclasses.dataclass
class Images:
    """Images read from a source: `pixels` (N, H, W, C), their labels (or None), the files (or None)."""

    pixels: np.ndarray
    labels: object = None
    paths: list = None


def is_dataset(x):
    import tensorflow as tf

    return isinstance(x, tf.data.Dataset)


def _is_pil(x):
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        return False
    return isinstance(x, Image.Image)


def is_source(x):
    """Whether `x` is a folder, file path(s), a tf.data.Dataset, PIL images, or images of several sizes."""
    if isinstance(x, (str, os.PathLike)):
        return True
    if is_dataset(x):
        return True
    if isinstance(x, (list, tuple)) and len(x) > 0:
        if isinstance(x[0], (str, os.PathLike)) or _is_pil(x[0]):
            return True
        try:
            return len({np.shape(item) for item in x}) > 1
        except (TypeError, ValueError):
            return False
    return False


def choose_size(sizes):
    """The (height, width) for the network: the median of `sizes`, shrunk to MAX_CHOSEN_SIDE.

    >>> choose_size([(28, 28), (32, 40), (30, 30)])
    (30, 30)
    >>> choose_size([(480, 640)])
    (48, 64)
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    height, width = np.median(sizes[:, 0]), np.median(sizes[:, 1])
    scale = min(1.0, MAX_CHOSEN_SIDE / max(height, width))
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def check_image_size(image_size):
    """`image_size` as (height, width) ints; raises naming the accepted forms."""
    size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else image_size
    try:
        height, width = (int(side) for side in size)
    except (TypeError, ValueError):
        height = width = 0
    if height < 1 or width < 1 or isinstance(image_size, bool):
        raise ValueError(f"image_size must be a positive int or (height, width); got {image_size!r}.")
    return height, width


def resize(image, size):
    """`image` (H, W, C) resized to `size` as float32, as `keras.layers.Resizing(*size, antialias=True)` does."""
    import tensorflow as tf

    if tuple(image.shape[:2]) == tuple(size):
        return np.asarray(image, np.float32)
    return tf.image.resize(image, size, method="bilinear", antialias=True).numpy()


def _as_channels(image, channels):
    """`image` (H, W) or (H, W, C) with `channels` (1 or 3): grey repeated, alpha dropped, colour by luma."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.shape[-1] in (2, 4):  # grey + alpha, RGB + alpha
        image = image[..., :-1]
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    # ITU-R BT.601 luma, as tf.image.rgb_to_grayscale.
    grey = image.astype(np.float32) @ np.array([0.2989, 0.5870, 0.1140], np.float32)
    return grey[..., None].astype(image.dtype) if image.dtype == np.uint8 else grey[..., None]


def _channels_of(image):
    image = np.asarray(image)
    return 1 if image.ndim == 2 or image.shape[-1] <= 2 else 3


def _check_item(image, index, name):
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4)) or 0 in image.shape:
        raise ValueError(
            f"`{name}[{index}]` has shape {image.shape}; each image must be (H, W) or (H, W, C) with 1, 3 or "
            "4 channels.")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise TypeError(f"`{name}[{index}]` holds {image.dtype} values; images must hold numbers.")
    if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(image)):
        raise ValueError(f"`{name}[{index}]` holds NaN or infinite values.")
    return image


def _check_memory(count, size, channels, itemsize, name):
    needed = count * size[0] * size[1] * channels * itemsize
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every system reports it
        return
    if needed > available:
        raise MemoryError(
            f"Holding the {count:,} images of `{name}` at {size[0]} x {size[1]} x {channels} needs "
            f"{needed / 2**30:.1f} GiB, and {available / 2**30:.1f} GiB of memory is free. Pass a smaller "
            "image_size, or fewer images.")


def _stack(images, size, channels, exact, name):
    """One array of `images` at `size` with `channels`: uint8 where all are uint8 and not `exact`, else float32."""
    keep_uint8 = not exact and all(np.asarray(image).dtype == np.uint8 for image in images)
    dtype = np.uint8 if keep_uint8 else np.float32
    _check_memory(len(images), size, channels, np.dtype(dtype).itemsize, name)
    out = np.empty((len(images), *size, channels), dtype)
    for i, image in enumerate(images):
        resized = resize(_as_channels(image, channels), size)
        out[i] = np.clip(np.round(resized), 0, 255) if keep_uint8 else resized
    return out


def _read_files(paths, size, channels, exact, skip_unreadable, name):
    """Decodes image files to one array and a mask of the files kept.

    Every header is read first (cheap), so that the size and channel count are
    known before any pixels are held; unreadable files raise, naming each one,
    or with `skip_unreadable` are left out with a warning.
    """
    headers, bad = {}, []
    for i, path in enumerate(paths):
        try:
            headers[i] = files.header(path)
        except files.UnreadableImageError as error:
            bad.append(error)
    if bad and not skip_unreadable:
        raise _unreadable(bad)
    if not headers:
        raise ValueError(f"None of the {len(paths)} files of `{name}` is a readable image.")
    if channels is None:
        channels = 3 if any(c == 3 for _, _, c in headers.values()) else 1
    if size is None:
        size = choose_size([(h, w) for h, w, _ in headers.values()])
    _check_memory(len(headers), size, channels, 4 if exact else 1, name)
    out = np.empty((len(paths), *size, channels), np.float32 if exact else np.uint8)
    kept = np.zeros(len(paths), bool)
    for i in headers:
        try:
            resized = resize(files.decode(paths[i], channels), size)
        except files.UnreadableImageError as error:
            bad.append(error)
            continue
        out[i] = resized if exact else np.clip(np.round(resized), 0, 255)
        kept[i] = True
    if bad and not skip_unreadable:
        raise _unreadable(bad)
    if bad:
        warnings.warn(f"Skipped {len(bad)} unreadable image file(s): "
                      + "; ".join(f"{e.path} ({e.reason})" for e in bad[:10]), UserWarning, stacklevel=4)
    return out[kept] if not kept.all() else out, kept


def _unreadable(errors):
    if len(errors) == 1:
        return ValueError(f"{errors[0]}. Remove or replace the file, or pass skip_unreadable=True to leave it out.")
    listed = "; ".join(f"{e.path} ({e.reason})" for e in errors[:10])
    return ValueError(f"{len(errors)} image files cannot be read: {listed}. Remove or replace them, or pass "
                      "skip_unreadable=True to leave them out.")


def _dataset_items(dataset, name):
    """(images, labels or None) from a dataset of images, (image, label) pairs, or batches of either."""
    spec = dataset.element_spec
    if isinstance(spec, dict):
        raise TypeError(f"`{name}` is a tf.data.Dataset of dicts; it must yield (image, label) pairs or images.")
    paired = isinstance(spec, tuple)
    if paired and len(spec) != 2:
        raise TypeError(f"`{name}` yields tuples of {len(spec)}; it must yield (image, label) pairs or images.")
    image_spec = spec[0] if paired else spec
    rank = image_spec.shape.rank
    label_shape = spec[1].shape if paired else None
    # (B, H, W, C) is a batch; (H, W, C) with a label of the same leading length is a batch of grey images.
    batched = rank == 4 or (rank == 3 and paired and label_shape.rank >= 1
                            and image_spec.shape[0] == label_shape[0])
    images, labels = [], []
    for element in dataset.as_numpy_iterator():
        image, label = element if paired else (element, None)
        if batched:
            images.extend(image)
            labels.extend([] if label is None else list(label))
        else:
            images.append(image)
            labels.append(label)
    if not images:
        raise ValueError(f"The tf.data.Dataset `{name}` yielded no images.")
    return images, (np.asarray(labels) if paired else None)


def read(x, y=None, *, labelled=True, image_size=None, channels=None, exact=False, skip_unreadable=False, name="x"):
    """The images (and labels) of source `x` as `Images`, at `image_size` with `channels`.

    Args:
        x: a source (see the module docstring), or an array of images.
        y: labels for a list of files or images; must be None for a class
            folder or a dataset, which carry their own.
        labelled: a folder is a class folder (to fit or score); without
            it, a folder stands for all the images in it, sorted by path,
            and a dataset may yield images alone (to predict).
        image_size: (height, width), or None to choose it from the data.
        channels: 1 or 3, or None for 3 where any image is in colour.
        exact: float32 pixels as the exported model's resize computes them
            (to predict), instead of uint8 rounded to hold once in memory.
        skip_unreadable: leave unreadable files out with a warning instead
            of raising.
    """
    size = None if image_size is None else check_image_size(image_size)
    if isinstance(x, (str, os.PathLike)):
        if y is None and labelled:
            paths, y = files.class_folder(x, name)
        elif y is None:
            paths = files.image_files(x, name)
        else:
            raise ValueError(
                f"`{name}` is the path {os.fspath(x)!r} and y was given. A folder carries its labels in its class "
                "subfolders: omit y, or pass a list of image files with their labels.")
        return _from_files(paths, y, size, channels, exact, skip_unreadable, name)
    if isinstance(x, (list, tuple)) and len(x) and isinstance(x[0], (str, os.PathLike)):
        if not all(isinstance(p, (str, os.PathLike)) for p in x):
            raise TypeError(f"`{name}` mixes file paths with other items; pass paths only.")
        paths = [os.fspath(p) for p in x] if labelled else files.image_files(x, name)
        return _from_files(paths, y, size, channels, exact, skip_unreadable, name)
    if is_dataset(x):
        if y is not None:
            raise ValueError(f"`{name}` is a tf.data.Dataset, which carries its labels; omit y.")
        items, y = _dataset_items(x, name)
    else:
        items = [np.asarray(item.convert("RGB" if item.mode not in files.GREY_MODES else "L")) if _is_pil(item)
                 else item for item in x]
    items = [_check_item(item, i, name) for i, item in enumerate(items)]
    if y is not None and len(np.asarray(y)) != len(items):
        raise ValueError(f"`{name}` has {len(items)} images but y has {len(np.asarray(y))} labels.")
    if channels is None:
        channels = max(_channels_of(item) for item in items)
    if size is None:
        size = choose_size([np.shape(item)[:2] for item in items])
    return Images(_stack(items, size, channels, exact, name), y)


def _from_files(paths, y, size, channels, exact, skip_unreadable, name):
    if y is not None and len(np.asarray(y)) != len(paths):
        raise ValueError(f"`{name}` has {len(paths)} image files but y has {len(np.asarray(y))} labels.")
    pixels, kept = _read_files(paths, size, channels, exact, skip_unreadable, name)
    labels = None if y is None else np.asarray(y)[kept]
    return Images(pixels, labels, [os.fspath(p) for p, k in zip(paths, kept) if k])
