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
  convolution outputs and its batch normalisation's reserve spaces (batch
  normalisation runs as TensorFlow's fused kernel and its gradient kernel);
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
    """(y, saved): `op(x)` and the six tensors `backward` reads for it.

    The branches of one choice must all return tensors of the same shapes,
    so an op that needs fewer fills the rest with `x` (image-shaped) or a
    vector of zeros (channel-shaped); they cost nothing.
    """
    unused = tf.zeros([op.filters], tf.float32)
    if op.op not in CONV_OPS:
        return op(x), (x, x, x, unused, unused, unused)
    relu, conv, bn = _layers(op)
    a = relu(x)
    if op.op.startswith("sep"):
        b = tf.nn.depthwise_conv2d(a, tf.cast(conv.depthwise_kernel.value, a.dtype), _STRIDES, "SAME")
        c = tf.nn.conv2d(b, tf.cast(conv.pointwise_kernel.value, a.dtype), 1, "VALID")
    else:
        b = a
        c = tf.nn.conv2d(a, tf.cast(conv.kernel.value, a.dtype), 1, "SAME")
    if not op.pool.training:  # inference: the moving statistics, through the layer itself
        return batch_norm(c, op.pool, f"{op.prefix}_bn"), (a, b, c, unused, unused, unused)
    y, reserve = _batch_norm_training(bn, c)
    return y, (a, b, c, *reserve)


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
    a, b, c, *reserve = saved
    _, conv, bn = _layers(op)
    gamma, beta = bn.gamma.value, bn.beta.value
    dc, d_gamma, d_beta = _batch_norm_gradients(bn, gamma, c, reserve, dy)
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


def _batch_norm_training(bn, x):
    """(output, reserve spaces): `keras.layers.BatchNormalization.call` in training mode, by a fused kernel.

    Keras computes the same batch normalisation from separate ops (moments,
    then scale and shift); `FusedBatchNormV3` does it in one pass, and its
    gradient kernel, given the reserve spaces, in one more (on a CPU, about
    a third of the time of the separate ops and their gradients, measured
    at 32x32x16 and batch 32). The results agree to float32 rounding. The
    moving statistics are updated as Keras updates them: from the batch
    variance without Bessel's correction. Channels are last, as everywhere
    in the network.
    """
    inputs = tf.cast(x, backend.result_type(x.dtype, "float32"))
    y, mean, variance, *reserve = tf.raw_ops.FusedBatchNormV3(
        x=inputs, scale=tf.cast(bn.gamma.value, inputs.dtype), offset=tf.cast(bn.beta.value, inputs.dtype),
        mean=tf.zeros([0], inputs.dtype), variance=tf.zeros([0], inputs.dtype), epsilon=bn.epsilon,
        data_format="NHWC", is_training=True)
    n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], inputs.dtype)
    variance = variance * (n - 1) / n  # the kernel's batch variance is Bessel-corrected; Keras's is not
    bn.moving_mean.assign(kops.cast(bn.moving_mean, inputs.dtype) * bn.momentum + mean * (1.0 - bn.momentum))
    bn.moving_variance.assign(
        kops.cast(bn.moving_variance, inputs.dtype) * bn.momentum + variance * (1.0 - bn.momentum))
    return tf.cast(y, bn.compute_dtype), reserve


def _batch_norm_gradients(bn, gamma, x, reserve, dy):
    """(dx, dgamma, dbeta) of batch normalisation `bn` (scale `gamma`) with batch statistics, at input `x`
    and output gradient `dy`, from the reserve spaces of `_batch_norm_training`."""
    x32, dy32 = tf.cast(x, tf.float32), tf.cast(dy, tf.float32)
    dx, d_gamma, d_beta, _, _ = tf.raw_ops.FusedBatchNormGradV3(
        y_backprop=dy32, x=x32, scale=gamma, reserve_space_1=reserve[0], reserve_space_2=reserve[1],
        reserve_space_3=reserve[2], epsilon=bn.epsilon, data_format="NHWC", is_training=True)
    return tf.cast(dx, x.dtype), d_gamma, d_beta
