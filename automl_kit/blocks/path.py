"""The candidate ops as the supernet trains them: a forward pass that keeps what the backward pass needs.

The supernet differentiates each chosen op in a branch of its own (see
`TensorChoices.pick_op`), which cannot see the tensors inside the forward
branch. So `forward` returns, beside the op's output, the tensors its
gradient needs, and `backward` applies to them the gradient kernels that
TensorFlow's automatic differentiation emits for the same ops
(`Conv2DBackpropInput`, `DepthwiseConv2dNativeBackpropFilter`, `ReluGrad`,
`AvgPoolGrad`, ...), so most ops compute nothing twice:

- a convolution op (`ops.relu_conv_bn`: ReLU, a plain or separable
  convolution, batch normalisation) keeps its ReLU, depthwise and
  convolution outputs and its batch mean and variance; the batch
  normalisation's gradient is written out (the textbook formula for batch
  statistics);
- an average pool and the identity need nothing.

The other ops are recomputed in the backward pass under a tape
(`differentiates(op)` is False for them): the residual block of the macro
space, which is rare, and the max-pool: with its gradient kernel applied to
a saved output, the step of an all-max-pool child took five times as long
on a CPU (oneDNN pairs that kernel only with its own forward pool).

The forward pass reads the same Keras layers, by the same names, as
`ops.apply_op` (see `Op`), and computes what their `call` computes, moving
statistics included, so a standalone child with the path's weights is the
child the supernet trains.
"""

import tensorflow as tf
from keras import ops as kops
from keras.src import backend

from automl_kit.blocks.ops import CONV_OPS, batch_norm

_STRIDES = [1, 1, 1, 1]
_DILATIONS = [1, 1, 1, 1]


class Skipped:
    """The op at a place whose result nothing reads, in a cell no later cell reads.

    The standalone child has no such cell (Keras keeps only the layers its
    output depends on), so in the supernet it computes nothing either, and
    its ops' weights and Adam moments stay as they are.
    """

    op = "skipped"

    def __init__(self, filters):
        self.filters = filters

    def __call__(self, x):
        return tf.zeros_like(x)


def differentiates(op):
    """Whether `backward` differentiates `op` (an `ops.Op`); if not, the op is recomputed under a tape."""
    return op.op in CONV_OPS or op.op in ("avgpool3x3", "identity", Skipped.op)


def forward(op, x):
    """(y, saved): `op(x)` and the five tensors `backward` reads for it.

    The branches of one choice must all return tensors of the same shapes,
    so an op that needs fewer fills the rest with `x` (image-shaped) or a
    vector of zeros (channel-shaped); they cost nothing.
    """
    unused = tf.zeros([op.filters], tf.float32)
    if op.op not in CONV_OPS:
        return op(x), (x, x, x, unused, unused)
    relu, conv, bn = _layers(op)
    a = relu(x)
    if op.op.startswith("sep"):
        b = tf.nn.depthwise_conv2d(a, tf.cast(conv.depthwise_kernel.value, a.dtype), _STRIDES, "SAME")
        c = tf.nn.conv2d(b, tf.cast(conv.pointwise_kernel.value, a.dtype), 1, "VALID")
    else:
        b = a
        c = tf.nn.conv2d(a, tf.cast(conv.kernel.value, a.dtype), 1, "SAME")
    if not op.pool.training:  # inference: the moving statistics, through the layer itself
        return batch_norm(c, op.pool, f"{op.prefix}_bn"), (a, b, c, unused, unused)
    y, mean, variance = _batch_norm_training(bn, c)
    return y, (a, b, c, mean, variance)


def backward(op, x, saved, dy):
    """(dx, variables, their gradients) of `op` at input `x`, from what `forward` saved."""
    if op.op == "identity":
        return dy, [], []
    if op.op == Skipped.op:
        return tf.zeros_like(dy), [], []
    if op.op == "avgpool3x3":
        layer = op.pool.layers[f"{op.prefix}_avgpool"]
        dx = tf.raw_ops.AvgPoolGrad(orig_input_shape=tf.shape(x), grad=dy, ksize=[1, *layer.pool_size, 1],
                                    strides=[1, *layer.strides, 1], padding=layer.padding.upper())
        return dx, [], []
    a, b, c, mean, variance = saved
    _, conv, bn = _layers(op)
    gamma, beta = bn.gamma.value, bn.beta.value
    dc, d_gamma, d_beta = _batch_norm_gradients(bn, gamma, c, mean, variance, dy)
    if op.op.startswith("sep"):
        depthwise, pointwise = conv.depthwise_kernel.value, conv.pointwise_kernel.value
        db, d_pointwise = _conv_gradients(b, tf.cast(pointwise, b.dtype), dc, "VALID")
        da, d_depthwise = _conv_gradients(a, tf.cast(depthwise, a.dtype), db, "SAME", depthwise=True)
        variables, grads = [depthwise, pointwise], [d_depthwise, d_pointwise]
    else:
        kernel = conv.kernel.value
        da, d_kernel = _conv_gradients(a, tf.cast(kernel, a.dtype), dc, "SAME")
        variables, grads = [kernel], [d_kernel]
    grads = [tf.cast(g, v.dtype) for g, v in zip(grads, variables)]
    dx = tf.raw_ops.ReluGrad(gradients=da, features=a)
    return dx, [*variables, gamma, beta], [*grads, d_gamma, d_beta]


def _conv_gradients(x, kernel, dy, padding, depthwise=False):
    """(dx, dkernel) of a stride-1 convolution of `x`, as TensorFlow's own gradient of the op computes them."""
    if depthwise:
        backprop_input = tf.raw_ops.DepthwiseConv2dNativeBackpropInput
        backprop_filter = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter
    else:
        backprop_input, backprop_filter = tf.raw_ops.Conv2DBackpropInput, tf.raw_ops.Conv2DBackpropFilter
    settings = dict(strides=_STRIDES, padding=padding, dilations=_DILATIONS)
    return (backprop_input(input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, **settings),
            backprop_filter(input=x, filter_sizes=tf.shape(kernel), out_backprop=dy, **settings))


def _layers(op):
    layers = op.pool.layers
    return layers[f"{op.prefix}_relu"], layers[f"{op.prefix}_conv"], layers[f"{op.prefix}_bn"]


def _channel_axes(bn, x):
    """The axes batch normalisation reduces over: all but the channels'."""
    return [i for i in range(len(x.shape)) if i != bn.axis % len(x.shape)]


def _batch_norm_training(bn, x):
    """(output, batch mean, batch variance): `keras.layers.BatchNormalization.call` in training mode.

    The same ops in the same order, the moving statistics' update included.
    """
    inputs = kops.cast(x, backend.result_type(x.dtype, "float32"))
    mean, variance = kops.moments(inputs, axes=_channel_axes(bn, x), synchronized=bn.synchronized)
    bn.moving_mean.assign(kops.cast(bn.moving_mean, inputs.dtype) * bn.momentum + mean * (1.0 - bn.momentum))
    bn.moving_variance.assign(
        kops.cast(bn.moving_variance, inputs.dtype) * bn.momentum + variance * (1.0 - bn.momentum))
    outputs = kops.batch_normalization(
        x=inputs, mean=mean, variance=variance, axis=bn.axis, offset=kops.cast(bn.beta, inputs.dtype),
        scale=kops.cast(bn.gamma, inputs.dtype), epsilon=bn.epsilon)
    return kops.cast(outputs, bn.compute_dtype), mean, variance


def _batch_norm_gradients(bn, gamma, x, mean, variance, dy):
    """(dx, dgamma, dbeta) of batch normalisation `bn` (scale `gamma`) with batch statistics, at input `x`
    and output gradient `dy`.

    With x_hat = (x - mean) / sqrt(variance + epsilon) over the n values of
    each channel: dbeta = sum(dy), dgamma = sum(dy * x_hat), and
    dx = gamma / sqrt(variance + epsilon) * (dy - (dbeta + x_hat * dgamma) / n),
    which also carries the gradient through the batch mean and variance.
    """
    x32, dy32 = tf.cast(x, tf.float32), tf.cast(dy, tf.float32)
    axes = _channel_axes(bn, x)
    inverse_std = tf.math.rsqrt(variance + bn.epsilon)
    x_hat = (x32 - mean) * inverse_std
    d_beta = tf.reduce_sum(dy32, axes)
    d_gamma = tf.reduce_sum(dy32 * x_hat, axes)
    n = tf.cast(tf.size(x32) // tf.shape(x32)[-1], tf.float32)
    dx = (gamma * inverse_std) * (dy32 - d_beta / n - x_hat * (d_gamma / n))
    return tf.cast(dx, x.dtype), d_gamma, d_beta
