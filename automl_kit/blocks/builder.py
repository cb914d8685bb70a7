"""Build an Architecture into a standalone functional Keras model.

The child is made by the same network code as the supernet (`network.py`),
with its choices fixed, so its layers carry the names of the supernet's
layers on its path and take their weights one to one.

The model holds its own preprocessing (channel axis, standardisation), so it
takes raw images, uint8 or float, in the same form as `fit` did, and outputs
class probabilities. It uses standard Keras layers only: the saved `.keras`
file loads with plain `keras.models.load_model`, no `custom_objects`.

Example:

>>> from automl_kit.blocks.search_space import MicroSearchSpace
>>> from automl_kit.data import InputSpec
>>> import numpy as np
>>> arch = MicroSearchSpace((8, 8)).sample(np.random.default_rng(0))
>>> spec = InputSpec(input_shape=(8, 8), image_shape=(8, 8, 1))
>>> model = build_model(arch, spec, num_classes=10, mean=[0.0], variance=[1.0])
>>> model.output_shape
(None, 10)
"""

import keras
import numpy as np
from keras import layers

from automl_kit.blocks.architecture import CellArchitecture, DenseArchitecture
from automl_kit.blocks.network import FixedChoices, cell_body, macro_body
from automl_kit.blocks.ops import LayerPool


MODEL_NAME = "automl_kit_model"


def build_model(architecture, input_spec, num_classes, mean, variance, name=MODEL_NAME, dtype_policy=None):
    """Returns an uncompiled `keras.Model` for `architecture`.

    Args:
        architecture: a `CellArchitecture` or an `Architecture`, or a
            `DenseArchitecture` for tabular input.
        input_spec: an `InputSpec`: the shape one sample has as the user
            passes it, and the image shape the network sees.
        num_classes: number of output probabilities.
        mean, variance: per-channel (per-feature for tabular input)
            statistics of the training data, baked into the model.
        dtype_policy: None (float32) or a Keras mixed policy such as
            `"mixed_float16"`; the output layer stays float32 either way.
    """
    pool = LayerPool(dtype_policy)
    inputs = keras.Input(shape=tuple(int(d) for d in input_spec.input_shape),
                         name="image" if input_spec.is_image else "features")
    x = preprocess(inputs, input_spec, mean, variance, pool)
    if isinstance(architecture, DenseArchitecture):
        x = _dense_body(architecture, x, dtype_policy)
    else:
        x = body(architecture, x, FixedChoices(architecture.decisions(), pool), pool)
        x = pool(layers.ReLU, "head_relu")(x)
        x = pool(layers.GlobalAveragePooling2D, "head_pool")(x)
    if architecture.dropout > 0:
        x = layers.Dropout(architecture.dropout, name="head_dropout", dtype=dtype_policy)(x)
    outputs = classifier(x, num_classes, pool)
    return keras.Model(inputs, outputs, name=name)


def augmented_at_test_time(network, input_spec, flip=False, shift=0):
    """`network` with its probabilities averaged over several views of each image (test-time augmentation).

    The views are airbench's (`infer_mirror_translate`): the image itself
    with half the weight, and its copies shifted `shift` pixels down-right
    and up-left (reflect-padded, as training translates) with a quarter
    each; with `flip`, each view shares its weight with its mirror image.
    The views' errors are partly independent, so their average is right
    more often than any one of them. Padding, cropping and mirroring are
    standard ops and layers in the functional graph, so the model still
    loads with plain `keras.models.load_model`.

    >>> from automl_kit.blocks.search_space import MacroSearchSpace
    >>> from automl_kit.data import InputSpec
    >>> spec = InputSpec(input_shape=(8, 8), image_shape=(8, 8, 1))
    >>> net = build_model(MacroSearchSpace((8, 8)).prior(), spec, num_classes=3, mean=[0.0], variance=[1.0])
    >>> x = np.random.default_rng(0).random((2, 8, 8)).astype("float32")
    >>> both = (net(x) + net(x[:, :, ::-1])) / 2
    >>> bool(np.allclose(augmented_at_test_time(net, spec, flip=True)(x), both, atol=1e-6))
    True
    >>> padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    >>> views = (2 * net(x) + net(padded[:, :8, :8]) + net(padded[:, 2:, 2:])) / 4
    >>> bool(np.allclose(augmented_at_test_time(net, spec, shift=1)(x), views, atol=1e-6))
    True
    >>> augmented_at_test_time(net, spec, shift=8)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: A test-time shift of 8 px needs images wider and taller than that ...
    """
    input_shape = tuple(int(d) for d in input_spec.input_shape)
    image_shape = tuple(int(d) for d in input_spec.image_shape)
    inputs = keras.Input(shape=input_shape, name=network.inputs[0].name)
    images = inputs if input_shape == image_shape else keras.ops.reshape(inputs, (-1, *image_shape))
    if shift >= min(image_shape[0], image_shape[1]):  # the one cap lives in Recipe.test_time_shift
        raise ValueError(f"A test-time shift of {shift} px needs images wider and taller than that (reflect "
                         f"padding), and these are {image_shape[0]}x{image_shape[1]}: pass a smaller shift.")
    views = [images]
    if shift:
        padded = keras.ops.pad(images, [[0, 0], [shift, shift], [shift, shift], [0, 0]], mode="reflect")
        views.append(layers.Cropping2D(((0, 2 * shift), (0, 2 * shift)), name="shift_down_right")(padded))
        views.append(layers.Cropping2D(((2 * shift, 0), (2 * shift, 0)), name="shift_up_left")(padded))
    if flip:
        views += [keras.ops.flip(view, axis=2) for view in views]  # (N, H, W, C): axis 2 is the width
    if input_shape != image_shape:
        views = [keras.ops.reshape(view, (-1, *input_shape)) for view in views]
    probabilities = [network(view) for view in views]
    if shift:  # the unshifted views (the image, and its mirror) count twice: half the weight
        probabilities += probabilities[::3]
    outputs = layers.Average(name="test_time_average", dtype="float32")(probabilities)
    return keras.Model(inputs, outputs, name=MODEL_NAME)


def network_of(model):
    """The network inside `model` when it averages test-time views (`augmented_at_test_time`), else `model`."""
    inside = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return inside[0] if inside else model


def body(architecture, x, choices, pool):
    """The convolutional body of `architecture`'s shape, with its choices read from `choices`."""
    if isinstance(architecture, CellArchitecture):
        return cell_body(x, architecture.filters, architecture.num_stages, architecture.cells_per_stage,
                         len(architecture.normal), architecture.stem_strides, choices, pool)
    return macro_body(x, architecture.filters, [len(stage) for stage in architecture.stages],
                      architecture.stem_strides, choices, pool)


def preprocess(x, input_spec, mean, variance, pool):
    """Reshapes flat samples to images and standardises them with the training statistics."""
    input_shape = tuple(int(d) for d in input_spec.input_shape)
    if input_spec.is_image and input_shape != tuple(input_spec.image_shape):
        x = pool(layers.Reshape, "to_image", target_shape=tuple(input_spec.image_shape))(x)
    # Standardisation as a Rescaling layer: its scale and offset are plain
    # numbers in the config, so every export format (ONNX included) keeps them
    # as constants. A channel with no variance is only centred.
    std = [float(np.sqrt(v)) if v > 1e-12 else 1.0 for v in variance]
    return pool(layers.Rescaling, "normalize", scale=[1.0 / s for s in std],
                offset=[-m / s for m, s in zip(mean, std)])(x)


def classifier(x, num_classes, pool):
    return pool(layers.Dense, "probabilities", units=num_classes, activation="softmax", dtype="float32")(x)


# What a multiply-add costs in a training step, in activation elements (one
# layer output value written and read back). Fitted on this 2-core CPU over
# eleven networks on 28x28 images (the micro space's prior and a random cell,
# and the macro prior, each at up to x3 wide and x2 deep, batch 32): the step
# took 95 ms per million activation elements plus 2.5 ms per million
# multiply-adds plus 50 ms, within 20% of each measured step but one.
MULTIPLY_ADD_PRICE = 0.027


def step_cost(model):
    """What one sample costs a training step of `model`, in activation elements: `activations` plus
    `multiply_adds` at `MULTIPLY_ADD_PRICE`.

    The final stage prices a wider or deeper network from the measured speed
    of the one it scales, times the ratio of their step costs, instead of
    building and timing each candidate (a trace of 8 s or more on a CPU).
    Multiply-adds alone overstate the cost of a larger network two to three
    times on small images: at these sizes the memory-bound layers
    (depthwise convolutions, batch normalisation, ReLU) weigh more than the
    convolutions' arithmetic. The step's fixed overhead is left out, so a
    ratio still errs towards fewer epochs (by 1.2 to 1.7 times, measured).

    >>> from automl_kit.blocks.architecture import Architecture, LayerSpec
    >>> from automl_kit.data import InputSpec
    >>> spec = InputSpec(input_shape=(8, 8), image_shape=(8, 8, 1))
    >>> arch = Architecture(16, ((LayerSpec("conv3x3"),),))
    >>> small, wide = (build_model(a, spec, 10, [0.0], [1.0]) for a in (arch, arch.scaled(2)))
    >>> # multiply-adds: stem 8*8*9*1*16 + conv 8*8*9*16*16 + dense 16*10; then twice the filters
    >>> multiply_adds(small), round(multiply_adds(wide) / multiply_adds(small), 2)
    (156832, 3.88)
    >>> round(step_cost(wide) / step_cost(small), 2)  # less: the activations only double
    2.74
    """
    return activations(model) + MULTIPLY_ADD_PRICE * multiply_adds(model)


def activations(model):
    """Output values of one sample's forward pass, summed over `model`'s layers (the input excluded)."""
    return int(sum(np.prod(layer.output.shape[1:]) for layer in model.layers
                   if not isinstance(layer, layers.InputLayer)))


def multiply_adds(model):
    """Multiply-adds of one sample's forward pass through `model`'s convolutions and dense layers."""
    total = 0
    for layer in model.layers:
        if not isinstance(layer, (layers.Conv2D, layers.SeparableConv2D, layers.DepthwiseConv2D, layers.Dense)):
            continue
        inputs, outputs = layer.input.shape[-1], layer.output.shape[-1]
        positions = int(np.prod(layer.output.shape[1:-1]))  # output pixels; 1 for a dense layer
        if isinstance(layer, layers.Dense):
            total += inputs * outputs
            continue
        kernel = int(np.prod(layer.kernel_size))
        if isinstance(layer, layers.Conv2D):
            total += positions * kernel * inputs * outputs // layer.groups
        elif isinstance(layer, layers.DepthwiseConv2D):
            total += positions * kernel * outputs
        else:  # separable: a depthwise pass, then a pointwise one
            depthwise = inputs * layer.depth_multiplier
            total += positions * (kernel * depthwise + depthwise * outputs)
    return int(total)


def _dense_body(architecture, x, dtype_policy=None):
    # No batch normalisation here: tabular sets are often tiny, and moving
    # statistics from a handful of steps would be far from the data.
    for i, units in enumerate(architecture.units):
        x = layers.Dense(units, activation="relu", name=f"dense{i}", dtype=dtype_policy)(x)
    return x
