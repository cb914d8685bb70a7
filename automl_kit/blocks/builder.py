"""Build an Architecture into a standalone functional Keras model.

The model holds its own preprocessing (channel axis, standardisation), so it
takes raw images, uint8 or float, in the same form as `fit` did, and outputs
class probabilities. It uses standard Keras layers only: the saved `.keras`
file loads with plain `keras.models.load_model`, no `custom_objects`.

Example:

>>> from automl_kit.blocks.search_space import MacroSearchSpace
>>> from automl_kit.data import InputSpec
>>> import numpy as np
>>> arch = MacroSearchSpace((8, 8)).sample(np.random.default_rng(0))
>>> spec = InputSpec(input_shape=(8, 8), image_shape=(8, 8, 1))
>>> model = build_model(arch, spec, num_classes=10, mean=[0.0], variance=[1.0])
>>> model.output_shape
(None, 10)
"""

import keras
import numpy as np
from keras import layers

from automl_kit.blocks.architecture import DenseArchitecture
from automl_kit.blocks.ops import apply_op, reduction, stem


MODEL_NAME = "automl_kit_model"


def build_model(architecture, input_spec, num_classes, mean, variance, name=MODEL_NAME):
    """Returns an uncompiled `keras.Model` for `architecture`.

    Args:
        architecture: an `Architecture`, or a `DenseArchitecture` for tabular input.
        input_spec: an `InputSpec`: the shape one sample has as the user
            passes it, and the image shape the network sees.
        num_classes: number of output probabilities.
        mean, variance: per-channel (per-feature for tabular input)
            statistics of the training data, baked into the model.
    """
    input_shape = tuple(int(d) for d in input_spec.input_shape)
    inputs = keras.Input(shape=input_shape, name="image" if input_spec.is_image else "features")
    x = inputs
    if input_spec.is_image and input_shape != tuple(input_spec.image_shape):
        x = layers.Reshape(tuple(input_spec.image_shape), name="to_image")(x)
    # Standardisation as a Rescaling layer: its scale and offset are plain
    # numbers in the config, so every export format (ONNX included) keeps them
    # as constants. A channel with no variance is only centred.
    std = [float(np.sqrt(v)) if v > 1e-12 else 1.0 for v in variance]
    x = layers.Rescaling(
        scale=[1.0 / s for s in std], offset=[-m / s for m, s in zip(mean, std)], name="normalize"
    )(x)
    if isinstance(architecture, DenseArchitecture):
        x = _dense_body(architecture, x)
    else:
        x = _convolutional_body(architecture, x)
    if architecture.dropout > 0:
        x = layers.Dropout(architecture.dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)


def _dense_body(architecture, x):
    # No batch normalisation here: tabular sets are often tiny, and moving
    # statistics from a handful of steps would be far from the data.
    for i, units in enumerate(architecture.units):
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    return x


def _convolutional_body(architecture, x):
    filters = architecture.filters
    x = stem(x, filters, architecture.stem_strides)
    for s, stage in enumerate(architecture.stages):
        if s > 0:
            filters *= 2
            x = reduction(x, filters, name=f"reduce{s}")
        tensors = [x]
        for p, layer in enumerate(stage):
            prefix = f"s{s}_l{p}_{layer.op}"
            y = apply_op(layer.op, tensors[p], filters, name=prefix)
            if layer.skips:
                y = layers.Add(name=f"{prefix}_skips")([y] + [tensors[j] for j in layer.skips])
            tensors.append(y)
        x = tensors[-1]
    x = layers.ReLU(name="head_relu")(x)
    return layers.GlobalAveragePooling2D(name="head_pool")(x)
