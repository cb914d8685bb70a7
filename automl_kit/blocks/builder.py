"""Build an Architecture into a standalone functional Keras model.

The model holds its own preprocessing (channel axis, normalisation), so it
takes raw images, uint8 or float, in the same form as `fit` did, and outputs
class probabilities. It uses standard Keras layers only: the saved `.keras`
file loads with plain `keras.models.load_model`, no `custom_objects`.

Example:

>>> from automl_kit.blocks.search_space import MacroSearchSpace
>>> import numpy as np
>>> arch = MacroSearchSpace((8, 8)).sample(np.random.default_rng(0))
>>> model = build_model(arch, (8, 8), num_classes=10, mean=[0.0], variance=[1.0])
>>> model.output_shape
(None, 10)
"""

import keras
from keras import layers

from automl_kit.blocks.ops import apply_op, reduction, stem


def build_model(architecture, image_shape, num_classes, mean, variance, name="automl_kit_model"):
    """Returns an uncompiled `keras.Model` for `architecture`.

    Args:
        architecture: an `Architecture`.
        image_shape: one image's shape as the user passes it, (H, W) or (H, W, C).
        num_classes: number of output probabilities.
        mean, variance: per-channel statistics of the training images, baked
            into a `Normalization` layer.
    """
    image_shape = tuple(int(d) for d in image_shape)
    inputs = keras.Input(shape=image_shape, name="image")
    x = inputs
    if len(image_shape) == 2:
        x = layers.Reshape(image_shape + (1,), name="add_channel_axis")(x)
    x = layers.Normalization(axis=-1, mean=list(mean), variance=list(variance), name="normalize")(x)
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
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    if architecture.dropout > 0:
        x = layers.Dropout(architecture.dropout, name="head_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
