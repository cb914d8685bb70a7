"""Export: the deployable model, with the class labels inside, in four formats.

The deployable model wraps the trained network. It takes raw samples in the
form `fit` got (uint8 or float, `(N, H, W)` or `(N, H, W, C)`, or flat rows)
and returns a dict of two outputs:

- `"probabilities"`: `(N, K)` float32, column k for class k;
- `"label"`: `(N,)` the predicted label itself, through a standard
  `IntegerLookup(invert=True)` layer for integer labels and
  `StringLookup(invert=True)` (bytes; `.astype(str)` decodes) for anything else.

Both are standard Keras layers and ops, so the `.keras` file loads with plain
`keras.models.load_model(path)`, in safe mode, without automl_kit.
"""

import importlib.util
import os
import tempfile

import keras
import numpy as np
from keras import layers

from automl_kit.blocks.builder import MODEL_NAME

FORMATS = ("keras", "saved_model", "tflite", "onnx")


def label_lookup(classes):
    """The standard Keras layer that maps class indices to the labels in `classes`."""
    classes = np.asarray(classes)
    if np.issubdtype(classes.dtype, np.integer):
        return layers.IntegerLookup(
            vocabulary=classes.astype(np.int64), invert=True, num_oov_indices=0,
            oov_token=int(classes.min()) - 1, name="label",
        )
    return layers.StringLookup(vocabulary=[str(c) for c in classes], invert=True, num_oov_indices=0, name="label")


def with_labels(model, classes, one_hot=False, any_size=False):
    """Returns a model with outputs {"probabilities", "label"} around the trained `model`.

    For one-hot targets the label is the class index, the position of the 1.
    With `any_size`, it takes (N, H, W, C) images of any height and width and
    resizes them to the network's size with a standard `Resizing` layer, the
    computation `automl_kit.data.sources.resize` makes when it reads files.
    """
    shape = model.input_shape[1:]
    inputs = keras.Input(shape=(None, None, shape[-1]) if any_size else shape, name=model.inputs[0].name)
    images = inputs
    if any_size:
        images = layers.Resizing(shape[0], shape[1], interpolation="bilinear", antialias=True, name="resize")(inputs)
    # training=False fixed in the graph: after a Resizing layer, Keras 3 would otherwise run the
    # network's batch norm in training mode when the model is called without `training`.
    probabilities = model(images, training=False)
    index = keras.ops.argmax(probabilities, axis=-1)
    lookup = label_lookup(np.arange(len(classes)) if one_hot else classes)
    return keras.Model(inputs, {"probabilities": probabilities, "label": lookup(index)}, name="automl_kit_classifier")


def save(model, path, format="keras"):
    """Writes the labelled `model` (from `with_labels`) to `path` in `format`, one of FORMATS.

    TFLite's built-in ops and ONNX have no string lookup tables, so those
    files hold the probabilities alone; the labels go beside them, one per
    line in column order, in `<path>.labels.txt`.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}; got {format!r}.")
    path = os.fspath(path)
    if format == "keras":
        if not path.endswith(".keras"):
            raise ValueError(f"A Keras model file must end in .keras; got {path!r}.")
        model.save(path)
        return
    if format == "saved_model":
        _save_saved_model(model, path)
        return
    network = model.get_layer(MODEL_NAME)
    if format == "tflite":
        _save_tflite(network, path)
    else:
        if importlib.util.find_spec("tf2onnx") is None or importlib.util.find_spec("onnxruntime") is None:
            raise ImportError("ONNX export needs tf2onnx and onnxruntime: pip install 'automl_kit[onnx]'.")
        network.export(path, format="onnx", verbose=False)
    labels = model.get_layer("label").get_vocabulary()
    with open(path + ".labels.txt", "w") as f:
        f.write("".join(f"{label}\n" for label in labels))


def _save_saved_model(model, path):
    """A SavedModel with `serve` (image tensors, as `model` takes them) and, for image models,
    `serve_bytes`: a batch of encoded JPEG, PNG, GIF or BMP files, each decoded to the model's
    channel count and resized to its size inside the graph, as TensorFlow Serving users send them."""
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    shape = model.input_shape[1:]
    archive.track_and_add_endpoint("serve", model, [tf.TensorSpec((None, *shape), tf.float32)])
    # (H, W) grey images, (H, W, C) images, or any size resized to the network's (H, W, C).
    image_shape = model.get_layer(MODEL_NAME).input_shape[1:] if shape[0] is None else shape
    if len(image_shape) in (2, 3):
        height, width, channels = (*image_shape, 1)[:3]

        def decode(encoded):
            image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
            image = tf.cast(tf.ensure_shape(image, (None, None, channels)), tf.float32)
            # The same resize as keras.layers.Resizing(antialias=True); an identity at the same size.
            return tf.image.resize(image, (height, width), method="bilinear", antialias=True)

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string)])
        def serve_bytes(encoded):
            images = tf.map_fn(decode, encoded, fn_output_signature=tf.TensorSpec((height, width, channels)))
            if len(shape) != 3:  # the model takes (H, W) grey images
                images = tf.reshape(images, (-1, *shape))
            return model(images)

        archive.add_endpoint("serve_bytes", serve_bytes)
    archive.write_out(path, verbose=False)


def _save_tflite(network, path):
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="automl_kit_") as folder:
        network.export(folder, format="tf_saved_model", verbose=False)
        flatbuffer = tf.lite.TFLiteConverter.from_saved_model(folder).convert()
    with open(path, "wb") as f:
        f.write(flatbuffer)


def to_bytes(model):
    """The bytes of `model`'s .keras file (how a pickled ImageClassifier carries its model)."""
    with tempfile.TemporaryDirectory(prefix="automl_kit_") as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def from_bytes(data):
    """The model whose .keras file `to_bytes` returned."""
    with tempfile.TemporaryDirectory(prefix="automl_kit_") as folder:
        path = os.path.join(folder, "model.keras")
        with open(path, "wb") as f:
            f.write(data)
        return keras.models.load_model(path)
