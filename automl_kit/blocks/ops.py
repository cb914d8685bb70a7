"""The candidate operations: Keras block templates made of standard layers only.

Every op maps a tensor with `filters` channels to one with the same shape, so
any op can stand at any position of a cell or stage. Convolutions follow the
ReLU-Conv-BatchNorm order of ENAS.

Layers come from a `LayerPool`, which creates each named layer once. The
standalone builder and the supernet both draw the layers of an op from a
pool under the same names, so the weights of a path through the supernet
are exactly the weights of the standalone child: that is what makes weight
inheritance exact.

Example:

>>> import keras
>>> pool = LayerPool()
>>> x = keras.Input((6, 6, 8))
>>> apply_op("sep3x3", x, 8, "n0", pool).shape
(None, 6, 6, 8)
>>> sorted(pool.layers)
['n0_bn', 'n0_conv', 'n0_relu']
"""

from keras import layers

# ENAS's batch-norm decay. Keras's default of 0.99 leaves the moving statistics
# far from the data after the few hundred steps of a short trial, and the
# validation score of an otherwise good model then sits at chance.
BN_MOMENTUM = 0.9

# The ops of the macro space (one op per layer, skips between layers).
OP_NAMES = (
    "conv3x3",
    "conv5x5",
    "sep3x3",
    "sep5x5",
    "maxpool3x3",
    "avgpool3x3",
    "res3x3",
)

# The ops of the micro space (two ops per node), as in ENAS.
CELL_OP_NAMES = (
    "sep3x3",
    "sep5x5",
    "avgpool3x3",
    "maxpool3x3",
    "identity",
)


# The ops made of ReLU, convolution and batch normalisation (`relu_conv_bn`).
CONV_OPS = ("conv3x3", "conv5x5", "sep3x3", "sep5x5")


class Op:
    """The op called `op` at one place in a network: `Op(...)(x)` is `apply_op(op, x, filters, prefix, pool)`.

    The network code hands these to its `Choices`, so that the supernet
    can run a convolution op in its own way (see `path.py`) on the same
    layers.
    """

    def __init__(self, op, filters, prefix, pool):
        self.op, self.filters, self.prefix, self.pool = op, filters, prefix, pool

    def __call__(self, x):
        return apply_op(self.op, x, self.filters, self.prefix, self.pool)


class LayerPool:
    """Creates each named layer once; later requests for the name get the same layer.

    `training`, when not None, is passed to batch normalisation explicitly:
    the supernet recomputes ops in its backward pass, outside the Keras call
    that would otherwise tell the layers they are training.
    `dtype_policy` (e.g. `"mixed_bfloat16"`) is every layer's dtype unless
    the request names its own.
    """

    def __init__(self, dtype_policy=None):
        self.layers = {}
        self.training = None
        self.dtype_policy = dtype_policy

    def __call__(self, layer_class, name, **kwargs):
        if name not in self.layers:
            if self.dtype_policy is not None:
                kwargs.setdefault("dtype", self.dtype_policy)
            self.layers[name] = layer_class(name=name, **kwargs)
        return self.layers[name]


def batch_norm(x, pool, name):
    layer = pool(layers.BatchNormalization, name, momentum=BN_MOMENTUM, epsilon=1e-5)
    return layer(x) if pool.training is None else layer(x, training=pool.training)


def relu_conv_bn(x, filters, kernel_size, name, pool, strides=1, separable=False):
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    x = pool(layers.ReLU, f"{name}_relu")(x)
    x = pool(conv, f"{name}_conv", filters=filters, kernel_size=kernel_size, strides=strides,
             padding="same", use_bias=False)(x)
    return batch_norm(x, pool, f"{name}_bn")


def apply_op(op, x, filters, name, pool):
    """Applies the op called `op` to tensor `x`; the output keeps x's shape."""
    if op in CONV_OPS:
        return relu_conv_bn(x, filters, int(op[-1]), name, pool, separable=op.startswith("sep"))
    if op == "maxpool3x3":
        return pool(layers.MaxPooling2D, f"{name}_maxpool", pool_size=3, strides=1, padding="same")(x)
    if op == "avgpool3x3":
        return pool(layers.AveragePooling2D, f"{name}_avgpool", pool_size=3, strides=1, padding="same")(x)
    if op == "res3x3":
        y = relu_conv_bn(x, filters, 3, f"{name}_a", pool)
        y = relu_conv_bn(y, filters, 3, f"{name}_b", pool)
        return pool(layers.Add, f"{name}_add")([x, y])
    if op == "identity":
        return x
    raise ValueError(f"Unknown op {op!r}; expected one of {OP_NAMES + CELL_OP_NAMES[-1:]}.")


def stem(x, filters, strides, pool, name="stem"):
    """The first convolution, from the image's channels to `filters`."""
    x = pool(layers.Conv2D, f"{name}_conv", filters=filters, kernel_size=3, strides=strides,
             padding="same", use_bias=False)(x)
    return batch_norm(x, pool, f"{name}_bn")


def reduction(x, filters, name, pool):
    """Halves the resolution and sets the channels to `filters`."""
    x = pool(layers.MaxPooling2D, f"{name}_pool", pool_size=2, padding="same")(x)
    return relu_conv_bn(x, filters, 1, name, pool)


def calibrate(x, filters, name, pool, halve=False):
    """Brings a cell input to `filters` channels (and half the resolution with `halve`)."""
    x = pool(layers.ReLU, f"{name}_relu")(x)
    if halve:
        x = pool(layers.AveragePooling2D, f"{name}_pool", pool_size=2, padding="same")(x)
    x = pool(layers.Conv2D, f"{name}_conv", filters=filters, kernel_size=1, use_bias=False)(x)
    return batch_norm(x, pool, f"{name}_bn")
