"""The candidate operations: Keras block templates made of standard layers only.

Every op maps a tensor with `filters` channels to one with the same shape, so
any op can stand at any position of a stage. Convolutions follow the
ReLU-Conv-BatchNorm order of ENAS. Layer names derive from `name`, so weights
can be matched between two models built from the same Architecture.
"""

from keras import layers

# ENAS's batch-norm decay. Keras's default of 0.99 leaves the moving statistics
# far from the data after the few hundred steps of a short trial, and the
# validation score of an otherwise good model then sits at chance.
BN_MOMENTUM = 0.9


def _batch_norm(name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=1e-5, name=name)

OP_NAMES = (
    "conv3x3",
    "conv5x5",
    "sep3x3",
    "sep5x5",
    "maxpool3x3",
    "avgpool3x3",
    "res3x3",
)


def _relu_conv_bn(x, filters, kernel_size, name, separable=False):
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    x = layers.ReLU(name=f"{name}_relu")(x)
    x = conv(filters, kernel_size, padding="same", use_bias=False, name=f"{name}_conv")(x)
    return _batch_norm(f"{name}_bn")(x)


def _residual(x, filters, name):
    y = _relu_conv_bn(x, filters, 3, f"{name}_a")
    y = _relu_conv_bn(y, filters, 3, f"{name}_b")
    return layers.Add(name=f"{name}_add")([x, y])


def apply_op(op, x, filters, name):
    """Applies the op called `op` to tensor `x`; the output keeps x's shape."""
    if op == "conv3x3":
        return _relu_conv_bn(x, filters, 3, name)
    if op == "conv5x5":
        return _relu_conv_bn(x, filters, 5, name)
    if op == "sep3x3":
        return _relu_conv_bn(x, filters, 3, name, separable=True)
    if op == "sep5x5":
        return _relu_conv_bn(x, filters, 5, name, separable=True)
    if op == "maxpool3x3":
        return layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_maxpool")(x)
    if op == "avgpool3x3":
        return layers.AveragePooling2D(3, strides=1, padding="same", name=f"{name}_avgpool")(x)
    if op == "res3x3":
        return _residual(x, filters, name)
    raise ValueError(f"Unknown op {op!r}; expected one of {OP_NAMES}.")


def stem(x, filters, strides, name="stem"):
    """The first convolution, from the image's channels to `filters`."""
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    return _batch_norm(f"{name}_bn")(x)


def reduction(x, filters, name):
    """Halves the resolution and sets the channels to `filters`."""
    x = layers.MaxPooling2D(2, padding="same", name=f"{name}_pool")(x)
    return _relu_conv_bn(x, filters, 1, name)
