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
from automl_kit.tuner.distribute import from_first_replica, split_batch
from automl_kit.tuner.fused_adamw import adam_step
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
        strategy: a `tf.distribute.Strategy` (default: the current one).
            Its replicas each take a share of every batch; the architecture
            of a step is the first replica's, and the gradients are
            all-reduced before the chosen path is updated.
    """

    def __init__(self, space, input_spec, num_classes, mean, variance, learning_rate=LEARNING_RATE,
                 dtype_policy=None, strategy=None):
        super().__init__(name="supernet")
        self.space = space
        self.sample_spec = input_spec
        self._template = space.smallest()  # the body reads only its shape: stages, cells, filters
        self._normalisation = (list(mean), list(variance))
        self._num_classes = num_classes
        self.strategy = strategy or tf.distribute.get_strategy()
        self.pool = LayerPool(dtype_policy if dtype_policy == "mixed_bfloat16" else None)
        with self.strategy.scope():
            # One eager pass through every branch creates all the layers, so no
            # variable is ever created inside a traced switch_case.
            sample = np.zeros((2, *input_spec.input_shape), np.float32)
            self._forward(tf.constant(sample), AllChoices())
            self.candidate_layers = list(self.pool.layers.values())  # Keras tracks their weights through it
            self.built = True
            self.shared_optimizer = FusedAdam(self.trainable_variables, learning_rate)
        self.traces = 0
        image = tf.TensorSpec((None, *input_spec.input_shape), tf.float32)
        labels = tf.TensorSpec((None,), tf.int32)
        arch = tf.TensorSpec((len(space.decision_keys),), tf.int32)
        replicated = self.strategy.num_replicas_in_sync > 1
        # Without AutoGraph: every branch is already a tf.switch_case or tf.cond, so converting the Python
        # that builds them changes nothing in the graph (the same ops, the same losses) and only costs
        # time. Side by side on 2 CPU cores (benchmarks/supernet_traces.py), the first step, its trace
        # included, took 7.3 s instead of 13.4 s on 8x8 images and 12.5 s instead of 19.7 s on 28x28
        # (the macro space), 24.3 s instead of 34.4 s in the micro space: seconds that a short budget
        # otherwise spends before the supernet trains. AutoGraph caches its conversion, so that was the
        # first supernet of a process (a user's first fit, the CLI's); a later one traced as fast both ways.
        if replicated:  # the signature of a replica's shard is not known before it is split
            self._train_step = tf.function(self._distributed(self._train_step_fn, "sum"), reduce_retracing=True,
                                           autograph=False)
            self._accuracy = tf.function(self._distributed(self._correct_fn, "sum"), reduce_retracing=True,
                                         autograph=False)
        else:
            self._train_step = tf.function(
                self._train_step_fn, input_signature=[image, labels, tf.TensorSpec((None,), tf.float32), arch],
                autograph=False)
            self._accuracy = tf.function(self._correct_fn, input_signature=[image, labels, arch], autograph=False)

    def _distributed(self, replica_fn, reduction):
        def run(*args):
            return self.strategy.reduce(reduction, self.strategy.run(replica_fn, args=args), axis=None)
        return run

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

    def _run(self, images, arch, training, update_path=None, sites=None):
        arch = tf.convert_to_tensor(arch, tf.int32)
        outer, self.pool.training = self.pool.training, training
        try:
            choices = TensorChoices(arch, self.space.decision_keys, self.pool, training, update_path)
            output = self._forward(images, choices)
        finally:
            self.pool.training = outer
        if sites is not None:
            sites.extend(choices.sites)
        return output

    def _train_step_fn(self, x, y, weights, arch):
        """One replica's share of a step; `weights` are normalised over the global batch."""
        self.traces += 1  # runs only while tracing (once per replica under a strategy)
        optimizer = self.shared_optimizer
        step = optimizer.next_step()
        context = tf.distribute.get_replica_context()
        replicated = context is not None and context.num_replicas_in_sync > 1
        arch = from_first_replica(arch)

        def update_path(variables, gradients):
            optimizer.update(variables, gradients, step)

        sites = []
        with tf.GradientTape() as tape:
            probabilities = self._run(x, arch, True, None if replicated else update_path, sites)
            losses = keras.losses.sparse_categorical_crossentropy(y, probabilities)
            loss = tf.reduce_sum(losses * weights)
        variables = [v.value for v in self.trainable_variables]
        gradients = tape.gradient(loss, variables)
        if replicated:
            present = [i for i, g in enumerate(gradients) if g is not None]
            reduced = context.all_reduce("sum", [gradients[i] for i in present])
            gradients = list(gradients)
            for i, g in zip(present, reduced):
                gradients[i] = g
        gradient_of = {v.ref(): g for v, g in zip(variables, gradients)}
        # Alone, the chosen ops' variables were updated in the backward pass, so
        # their gradients here are None. Replicated, they come out of it, all-reduced
        # above, and the chosen op's variables of each site are updated now, as are
        # the input calibrations of each live cell (see `TensorChoices.if_live`).
        on_sites = {v.ref() for _, site in sites for own in site for v in own}
        always = [v for v in variables if v.ref() not in on_sites and gradient_of[v.ref()] is not None]
        optimizer.update(always, [gradient_of[v.ref()] for v in always], step)
        for index, site in sites:
            if any(gradient_of[v.ref()] is not None for own in site for v in own):
                tf.switch_case(index, [self._path_update(own, gradient_of, step) for own in site])
        optimizer.finish_step()
        return loss

    def _path_update(self, variables, gradient_of, step):
        def update():
            self.shared_optimizer.update(variables, [gradient_of[v.ref()] for v in variables], step)
            return tf.constant(0)
        return update

    def _correct_fn(self, x, y, arch):
        # Batch statistics in the normalisation, as ENAS's rewards: the moving
        # averages of a path that was trained for few steps are not yet useful.
        probabilities = self.call((x, from_first_replica(arch)), training=True)
        return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probabilities, axis=1, output_type=tf.int32), y), tf.float32))

    def train_step(self, x, y, weights, arch):
        """One shared-weight step of the child `arch` (encoded) on a batch; returns the loss, a scalar tensor.

        The loss is not read back here, so a GPU computes this step while the
        host prepares the next one.
        """
        weights = np.asarray(weights, np.float32)
        weights = weights / max(float(weights.sum()), 1e-12)
        batch = split_batch(self.strategy, _images(x), np.asarray(y, np.int32), weights)
        return self._train_step(*batch, np.asarray(arch, np.int32))

    def accuracy(self, x, y, arch):
        """The accuracy of child `arch` (encoded) on a batch, with batch statistics."""
        batch = split_batch(self.strategy, _images(x), np.asarray(y, np.int32))
        return float(self._accuracy(*batch, np.asarray(arch, np.int32))) / len(y)

    def predict_child(self, x, arch):
        """Probabilities of child `arch` in inference mode (moving statistics)."""
        images = tf.convert_to_tensor(_images(x))
        return keras.ops.convert_to_numpy(self.call((images, tf.constant(arch, tf.int32)), training=False))

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
    The step count is shared, as in Adam: `next_step()` starts the step
    being taken and returns what each of its updates reads, and
    `finish_step()` ends it.
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
        """The step's constants, made once where the step is traced.

        The updates of the chosen ops run in many branches; each branch
        reads these tensors instead of holding its own copies, so a branch
        not taken has fewer nodes for the executor to pass over.
        """
        return adam_step(self.iterations, self.learning_rate, self.beta_1, self.beta_2, self.epsilon)

    def update(self, variables, gradients, step):
        """One Adam update of `variables` (backing tf.Variables) in `step`, from `next_step()`."""
        for variable, gradient in zip(variables, gradients):
            m, v = self._slots[variable.ref()]
            tf.raw_ops.ResourceApplyAdam(var=variable.handle, m=m.handle, v=v.handle, grad=gradient, **step)

    def finish_step(self):
        self.iterations.assign_add(1)


def _images(x):
    """A batch of images as float32: a tensor stays where it is (see `device_data`)."""
    return tf.cast(x, tf.float32) if tf.is_tensor(x) else np.asarray(x, np.float32)
