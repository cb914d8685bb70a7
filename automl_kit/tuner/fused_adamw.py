"""Keras's AdamW, with each variable's update in one TensorFlow kernel: the same steps, traced in half the time.

Every trial and every final model trains with AdamW (`recipe.py`), and
each compiles and traces its own train step. Keras writes Adam's update
as a dozen small ops per variable, and AdamW's weight decay reads the
learning rate again for every variable (a schedule's rate is itself a
dozen ops). Tracing those took a third to a half of a training's setup
(`benchmarks/optimizer_trace.py`, each search space's prior, 2 CPU
cores, `benchmarks/results/optimizer_trace_2026-12-08_86db805.md`: from
`fit` to the end of the first step, 3.0 s with Keras's AdamW and 2.0 s
with this one on 8x8 images, 3.7 against 2.5 s on 28x28, 3.8 against
2.1 s on 32x32x3, 8.4 against 4.4 s in the micro space), and the steps
after it take the same time. A one-trial search traces twice (its
trial, its final model); on a CPU budget of a minute that is two to
eight more seconds of training.

`ResourceApplyAdam` does Adam's update of one variable in one op, with
the same formula (bias-corrected step size, epsilon outside the square
root), as the supernet's `FusedAdam` does; the decay reads the rate once
per step. Results agree with Keras's AdamW to float32 rounding (a step's
weights within about 2e-7), not bit for bit. The optimizer is still
Keras's `AdamW`, with two methods replaced on the instance: its saved
config is plain AdamW, so a model saved while compiled loads without
automl_kit.

>>> import numpy as np, keras
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> model.compile(fused_adamw(1e-3, 0.01), "mse")
>>> _ = model.train_on_batch(np.ones((8, 4)), np.zeros((8, 2)))
>>> type(model.optimizer).__name__, int(model.optimizer.iterations)
('AdamW', 1)
"""

import types

import keras
import tensorflow as tf


def fused_adamw(learning_rate, weight_decay, exclude_from_weight_decay=()):
    """A `keras.optimizers.AdamW` whose update and weight decay trace as one kernel per variable.

    `exclude_from_weight_decay` lists variable names to leave undecayed, as
    `AdamW.exclude_from_weight_decay(var_names=...)` takes them.
    """
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    if exclude_from_weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(exclude_from_weight_decay))
    if keras.backend.backend() == "tensorflow":
        optimizer.update_step = types.MethodType(_update_step, optimizer)
        optimizer._apply_weight_decay = types.MethodType(_apply_weight_decay, optimizer)
    return optimizer


def adam_step(iterations, learning_rate, beta_1, beta_2, epsilon, dtype=tf.float32):
    """The arguments `ResourceApplyAdam` takes besides the variable, its two slots and the gradient, for the
    step after `iterations` steps: Keras's Adam's bias correction, as the kernel applies it."""
    step = tf.cast(iterations + 1, dtype)
    beta_1, beta_2 = tf.constant(beta_1, dtype), tf.constant(beta_2, dtype)
    return dict(beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step),
                lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2, epsilon=tf.constant(epsilon, dtype))


def _update_step(self, gradient, variable, learning_rate):
    """Adam's update of `variable` (a tf.Variable, or a replica's component of one) in one kernel."""
    dtype = variable.dtype
    index = self._get_variable_index(variable)
    momentum, velocity = self._momentums[index].value, self._velocities[index].value
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=momentum.handle, v=velocity.handle, grad=tf.cast(tf.convert_to_tensor(gradient), dtype),
        **adam_step(self.iterations.value, learning_rate, self.beta_1, self.beta_2, self.epsilon, dtype))


def _apply_weight_decay(self, variables):
    """AdamW's decoupled decay, `variable -= variable * weight_decay * learning_rate`, the rate read once."""
    if self.weight_decay is None:
        return

    def decay_all(distribution, variables):
        decay = tf.cast(self.learning_rate, tf.float32) * self.weight_decay
        for variable in variables:
            if self._use_weight_decay(variable):
                variable = variable.value if isinstance(variable, keras.Variable) else variable
                distribution.extended.update(
                    variable, lambda v: v.assign_sub(v * tf.cast(decay, v.dtype)), group=False)

    tf.__internal__.distribute.interim.maybe_merge_call(decay_all, self._distribution_strategy, variables)
