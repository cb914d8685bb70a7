"""The candidate ops as the supernet trains them: a forward pass that keeps what the backward pass needs.

The supernet differentiates each chosen op in a branch of its own (see
`TensorChoices.pick_op`), which cannot see the tensors inside the forward
branch, so by default it recomputes the op under a tape. The convolution
ops (`ops.relu_conv_bn`: ReLU, a plain or separable convolution, batch
normalisation) hold nearly all of a cell's compute, so for them `forward`
also returns the ReLU output, the depthwise output and the convolution
output, and `backward` applies to those saved tensors the gradient kernels
TensorFlow's automatic differentiation emits for these ops
(`Conv2DBackpropInput`, `DepthwiseConv2dNativeBackpropFilter`, `ReluGrad`,
...). Only batch normalisation runs again, on the saved convolution
output, to be differentiated exactly as Keras computes it; that second run
does not update its moving statistics. Pools, identities and the residual
block are cheap or rare and are recomputed.

The forward pass reads the same Keras layers, by the same names, as
`ops.apply_op` (see `Op`), and computes what their `call` computes, so a
standalone child with the path's weights is the child the supernet trains.
"""

import tensorflow as tf
from keras import ops as kops
from keras.src import backend

from automl_kit.blocks.ops import CONV_OPS, batch_norm

_STRIDES = [1, 1, 1, 1]
_DILATIONS = [1, 1, 1, 1]


def saves(op):
    """Whether `op` (an `ops.Op`) runs with saved tensors rather than recomputed in the backward pass."""
    return op.op in CONV_OPS


def forward(op, x):
    """(y, a, b, c): `op(x)` and the ReLU, depthwise and convolution outputs of a convolution op.

    Ops that save nothing return `x` in their place: the branches of one
    choice must all return tensors of the same shapes, and `x` costs nothing.
    """
    if not saves(op):
        return op(x), x, x, x
    relu, conv, _ = _layers(op)
    a = relu(x)
    if op.op.startswith("sep"):
        b = tf.nn.depthwise_conv2d(a, tf.cast(conv.depthwise_kernel.value, a.dtype), _STRIDES, "SAME")
        c = tf.nn.conv2d(b, tf.cast(conv.pointwise_kernel.value, a.dtype), 1, "VALID")
    else:
        b = a
        c = tf.nn.conv2d(a, tf.cast(conv.kernel.value, a.dtype), 1, "SAME")
    return batch_norm(c, op.pool, f"{op.prefix}_bn"), a, b, c


def backward(op, saved, dy):
    """(dx, variables, their gradients) of a convolution op, from what `forward` saved."""
    a, b, c = saved
    _, conv, bn = _layers(op)
    gamma, beta = bn.gamma.value, bn.beta.value
    with tf.GradientTape() as tape:
        tape.watch(c)
        y = _batch_norm_training(bn, c)
    dc, d_gamma, d_beta = tape.gradient(y, [c, gamma, beta], output_gradients=dy)
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
    """What `keras.layers.BatchNormalization.call` computes in training mode, without its moving averages."""
    inputs = kops.cast(x, backend.result_type(x.dtype, "float32"))
    axis = bn.axis % len(x.shape)
    axes = [i for i in range(len(x.shape)) if i != axis]
    mean, variance = kops.moments(inputs, axes=axes, synchronized=bn.synchronized)
    outputs = kops.batch_normalization(
        x=inputs, mean=mean, variance=variance, axis=bn.axis, offset=kops.cast(bn.beta, inputs.dtype),
        scale=kops.cast(bn.gamma, inputs.dtype), epsilon=bn.epsilon)
    return kops.cast(outputs, bn.compute_dtype)
