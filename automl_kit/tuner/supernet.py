"""The supernet: one Keras model holding the weights of every child of a search space.

The architecture is a tensor input (`space.encode(arch)` as int32), and each
choice routes through `tf.switch_case`, so the train step is traced once and
serves every architecture, and a step computes only the sampled child's
path. The layers are those the standalone builder makes for a child, under
the same names (see `blocks/network.py`), so `inherit` copies a child's
weights out one to one.

Example:

>>> import numpy as np
>>> from automl_kit.blocks import MicroSearchSpace
>>> from automl_kit.data import InputSpec
>>> space = MicroSearchSpace((8, 8), num_nodes=2)
>>> net = Supernet(space, InputSpec((8, 8), (8, 8, 1)), num_classes=3, mean=[0.0], variance=[1.0])
>>> x, y = np.random.rand(16, 8, 8).astype("float32"), np.arange(16) % 3
>>> for seed in range(3):
...     arch = space.encode(space.sample(np.random.default_rng(seed)))
...     loss = net.train_step(x, y, np.ones(16, "float32"), arch)
>>> net.traces
1
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from automl_kit.blocks.builder import body, classifier, preprocess
from automl_kit.blocks.network import AllChoices, TensorChoices
from automl_kit.blocks.ops import LayerPool
from automl_kit.tuner.training import LEARNING_RATE


class Supernet(keras.Model):
    """Every candidate op of `space`, with one train step for any sampled architecture.

    Args:
        space: a `MicroSearchSpace` or `MacroSearchSpace`.
        input_spec, num_classes, mean, variance: as for `build_model`.
        learning_rate: of the Adam optimizer of the shared weights.
        dtype_policy: `"mixed_bfloat16"` computes in bfloat16. Under
            `"mixed_float16"` the supernet stays float32: float16 gradients
            need loss scaling, which its in-backward update does not do.
    """

    def __init__(self, space, input_spec, num_classes, mean, variance, learning_rate=LEARNING_RATE,
                 dtype_policy=None):
        super().__init__(name="supernet")
        self.space = space
        self.sample_spec = input_spec
        self._template = space.smallest()  # the body reads only its shape: stages, cells, filters
        self._normalisation = (list(mean), list(variance))
        self._num_classes = num_classes
        self.pool = LayerPool(dtype_policy if dtype_policy == "mixed_bfloat16" else None)
        # One eager pass through every branch creates all the layers, so no
        # variable is ever created inside a traced switch_case.
        sample = np.zeros((2, *input_spec.input_shape), np.float32)
        self._forward(tf.constant(sample), AllChoices())
        self.candidate_layers = list(self.pool.layers.values())
        self.built = True
        self.shared_optimizer = FusedAdam(self.trainable_variables, learning_rate)
        self.traces = 0
        image = tf.TensorSpec((None, *input_spec.input_shape), tf.float32)
        labels = tf.TensorSpec((None,), tf.int32)
        arch = tf.TensorSpec((len(space.decision_keys),), tf.int32)
        self._train_step = tf.function(
            self._train_step_fn, input_signature=[image, labels, tf.TensorSpec((None,), tf.float32), arch])
        self._accuracy = tf.function(self._accuracy_fn, input_signature=[image, labels, arch])

    def _forward(self, images, choices):
        mean, variance = self._normalisation
        x = preprocess(images, self.sample_spec, mean, variance, self.pool)
        x = body(self._template, x, choices, self.pool)
        x = self.pool(layers.ReLU, "head_relu")(x)
        x = self.pool(layers.GlobalAveragePooling2D, "head_pool")(x)
        return classifier(x, self._num_classes, self.pool)

    def call(self, inputs, training=False):
        # Called directly, never through Keras's __call__: under it, the
        # recomputing gradients of `TensorChoices.pick_op` come out wrong.
        images, arch = inputs
        return self._run(images, arch, bool(training))

    def _run(self, images, arch, training, update_path=None):
        arch = tf.convert_to_tensor(arch, tf.int32)
        outer, self.pool.training = self.pool.training, training
        try:
            choices = TensorChoices(arch, self.space.decision_keys, self.pool, training, update_path)
            return self._forward(images, choices)
        finally:
            self.pool.training = outer

    def _train_step_fn(self, x, y, weights, arch):
        self.traces += 1  # runs only while tracing
        optimizer = self.shared_optimizer
        step = optimizer.next_step()

        def update_path(variables, gradients):
            optimizer.update(variables, gradients, step)

        with tf.GradientTape() as tape:
            probabilities = self._run(x, arch, True, update_path)
            losses = keras.losses.sparse_categorical_crossentropy(y, probabilities)
            loss = tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1e-12)
        # The chosen ops' variables were updated during the backward pass; their
        # gradients here are None. The rest (stem, cell inputs, head) update now.
        gradients = tape.gradient(loss, self.trainable_variables)
        pairs = [(v.value, g) for v, g in zip(self.trainable_variables, gradients) if g is not None]
        optimizer.update([v for v, _ in pairs], [g for _, g in pairs], step)
        optimizer.finish_step()
        return loss

    def _accuracy_fn(self, x, y, arch):
        # Batch statistics in the normalisation, as ENAS's rewards: the moving
        # averages of a path that was trained for few steps are not yet useful.
        probabilities = self.call((x, arch), training=True)
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(probabilities, axis=1, output_type=tf.int32), y), tf.float32))

    def train_step(self, x, y, weights, arch):
        """One shared-weight step of the child `arch` (encoded) on a batch; returns the loss."""
        return float(self._train_step(_images(x), np.asarray(y, np.int32), np.asarray(weights, np.float32),
                                      np.asarray(arch, np.int32)))

    def accuracy(self, x, y, arch):
        """The accuracy of child `arch` (encoded) on a batch, with batch statistics."""
        return float(self._accuracy(_images(x), np.asarray(y, np.int32), np.asarray(arch, np.int32)))

    def predict_child(self, x, arch):
        """Probabilities of child `arch` in inference mode (moving statistics)."""
        return keras.ops.convert_to_numpy(self.call((_images(x), tf.constant(arch, tf.int32)), training=False))

    def inherit(self, model):
        """Loads the shared weights of `model`'s path into `model`, a child built by `build_model`."""
        for layer in model.layers:
            if layer.weights:
                layer.set_weights(self.pool.layers[layer.name].get_weights())
        return model


class FusedAdam:
    """Adam (Keras's defaults and update rule) with one fused kernel per variable, applied lazily.

    A supernet step updates only the variables on the sampled child's path:
    the others are untouched, moments included, so a child's step is the
    step it would take alone (ENAS trains only the sampled path). Keras's
    Adam would also spend several small ops on each of the supernet's
    hundreds of variables; `ResourceApplyAdam` does each update in one op.
    The step count is shared, as in Adam: `next_step()` is the step being
    taken and `finish_step()` ends it.
    """

    def __init__(self, variables, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        self.targets = [v.value for v in variables]  # the backing tf.Variables
        self.learning_rate, self.beta_1, self.beta_2, self.epsilon = learning_rate, beta_1, beta_2, epsilon
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.momentums = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.targets]
        self.velocities = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.targets]
        self.variables = [self.iterations, *self.momentums, *self.velocities]
        self._slots = {v.ref(): (m, s) for v, m, s in zip(self.targets, self.momentums, self.velocities)}

    def next_step(self):
        return tf.cast(self.iterations + 1, tf.float32)

    def update(self, variables, gradients, step):
        """One Adam update of `variables` (backing tf.Variables) at `step`."""
        beta_1_power, beta_2_power = tf.pow(self.beta_1, step), tf.pow(self.beta_2, step)
        for variable, gradient in zip(variables, gradients):
            m, v = self._slots[variable.ref()]
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle, m=m.handle, v=v.handle, beta1_power=beta_1_power, beta2_power=beta_2_power,
                lr=self.learning_rate, beta1=self.beta_1, beta2=self.beta_2, epsilon=self.epsilon, grad=gradient,
            )

    def finish_step(self):
        self.iterations.assign_add(1)


def _images(x):
    return tf.convert_to_tensor(np.asarray(x, np.float32))
