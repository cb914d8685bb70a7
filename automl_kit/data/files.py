"""Image files on disk: finding them, reading their headers, decoding them.

A *class folder* is the layout of `keras.utils.image_dataset_from_directory`:
one subfolder per class, the images inside it (at any depth). Files whose
extension is not an image format are ignored, as Keras does.

Headers (size and colour mode) are read with Pillow, which opens a file
without decoding its pixels; the pixels are decoded with TensorFlow's
`tf.io.decode_image`, the decoder a user of the exported model will call.

Example:

>>> import os, tempfile
>>> import numpy as np
>>> from PIL import Image
>>> root = tempfile.mkdtemp()
>>> for label in ("cat", "dog"):
...     os.makedirs(os.path.join(root, label))
...     Image.fromarray(np.zeros((5, 7), np.uint8)).save(os.path.join(root, label, "a.png"))
>>> paths, labels = class_folder(root)
>>> labels
['cat', 'dog']
>>> header(paths[0])
(5, 7, 1)
>>> decode(paths[0], channels=3).shape
(5, 7, 3)
"""

import os

import numpy as np

# The formats both Pillow and tf.io.decode_image read (Keras's own allowlist).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
# Pillow modes that hold one grey channel (with or without alpha); any other
# mode (RGB, RGBA, P, CMYK, YCbCr, ...) is read as colour.
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


class UnreadableImageError(ValueError):
    """A file that is not an image automl_kit can decode; the message names it and why."""

    def __init__(self, path, reason):
        self.path, self.reason = os.fspath(path), reason
        super().__init__(f"Cannot read the image file {self.path!r}: {reason}")


def is_image_file(path):
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def _images_under(folder):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found.extend(os.path.join(root, name) for name in sorted(files) if is_image_file(name))
    return found


def _must_exist(path, name):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"`{name}` names {path!r}, which does not exist. Pass the path of an image folder.")
    return path


def class_folder(path, name="x"):
    """Returns (image paths, class labels) of a folder with one subfolder per class.

    Raises with the folder named when it does not exist, holds no class
    subfolders, has an empty class, or has a single class.
    """
    path = _must_exist(path, name)
    if not os.path.isdir(path):
        raise NotADirectoryError(
            f"`{name}` is the file {path!r}; to fit, pass a folder with one subfolder of images per class, "
            "or a list of image files with their labels as y.")
    classes = sorted(entry.name for entry in os.scandir(path) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        loose = len(_images_under(path))
        raise ValueError(
            f"The folder {path!r} has no class subfolders{f' ({loose} images lie in it directly)' if loose else ''}. "
            "Put the images of each class in a subfolder named after the class, e.g. "
            f"{os.path.join(path, 'cat', '001.jpg')!r}.")
    paths, labels = [], []
    for label in classes:
        images = _images_under(os.path.join(path, label))
        if not images:
            raise ValueError(
                f"The class folder {os.path.join(path, label)!r} holds no images (looked for "
                f"{', '.join(IMAGE_EXTENSIONS)}). Add images to it or remove it.")
        paths.extend(images)
        labels.extend([label] * len(images))
    if len(classes) < 2:
        raise ValueError(
            f"The folder {path!r} has only one class subfolder ({classes[0]!r}); a classifier needs at least "
            "two classes. Add a subfolder of images for each other class.")
    return paths, labels


def image_files(paths, name="x"):
    """The image files that `paths` (one path or several, files or folders) name, in order.

    A folder stands for every image under it, sorted by path.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found = []
    for path in paths:
        path = _must_exist(path, name)
        if os.path.isdir(path):
            images = _images_under(path)
            if not images:
                raise ValueError(f"The folder {path!r} holds no images (looked for {', '.join(IMAGE_EXTENSIONS)}).")
            found.extend(images)
        else:
            found.append(path)
    return found


def header(path):
    """(height, width, channels) of an image file from its header, channels 1 (grey) or 3 (colour)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
    except FileNotFoundError:
        raise UnreadableImageError(path, "the file does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UnreadableImageError(path, f"not a JPEG, PNG, GIF or BMP image ({error})") from None
    if width < 1 or height < 1:
        raise UnreadableImageError(path, f"the image has no pixels ({width} x {height})")
    return height, width, 1 if mode in GREY_MODES else 3


def decode(path, channels):
    """The pixels of an image file as uint8 (H, W, channels), decoded by `tf.io.decode_image`.

    Grey files become RGB by repeating the grey value, RGBA files lose their
    alpha channel, and colour files become grey by their luma: exactly what
    `tf.io.decode_image(data, channels=channels, expand_animations=False)` does.
    """
    import tensorflow as tf

    try:
        with open(path, "rb") as f:
            data = f.read()
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    except (OSError, tf.errors.OpError) as error:
        message = getattr(error, "message", None) or str(error)
        raise UnreadableImageError(path, message.strip().splitlines()[0]) from None
    return np.asarray(image)
