"""Training one Keras model: used by every trial and by the final model alike."""

import contextlib
import copy
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from automl_kit.tuner import device_data, recipe as recipes
from automl_kit.tuner.across_workers import fit_across_workers
from automl_kit.tuner.distribute import workers

LEARNING_RATE = 1e-3
EARLY_STOPPING_PATIENCE = 3
# A tiny training set is repeated within an epoch up to this many steps, so an
# "epoch" moves the weights enough on 50 samples as on 50,000.
MIN_STEPS_PER_EPOCH = 20


def grow_gpu_memory():
    """Lets TensorFlow take GPU memory as it needs it, not all at once, so other processes keep theirs.

    Only possible before TensorFlow first uses the GPU; after that (another
    model already ran in this process) the setting stays as it was.
    """
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # the GPU is already initialised
            pass


class TrainingFailed(RuntimeError):
    """A model could not be trained to a usable state (e.g. its loss diverged)."""


# Until a validation pass has run, each of its steps (a forward pass at the training's batch size,
# without augmentation or update) is priced at this share of a training step. Measured here (2 CPU
# cores, the prior, batch 32, `benchmarks/validation_cost.py`): 0.25 on CIFAR-10, 0.30 on 28x28
# images, 0.50 on 8x8 digits, where a step's fixed overhead is most of it; the first pass also
# traces the test step (0.3 to 1.4 s more).
VALIDATION_STEP_COST = 0.35
# The fewest validation images a pass under a deadline evaluates (all of them, where there are fewer):
# an accuracy near 0.9 to about +-0.01. Training stops in time for a pass of this many.
LEAST_VALIDATION_IMAGES = 1024


class Deadline(keras.callbacks.Callback):
    """Ends a training, and the validation of its last epoch, by `deadline` (time.monotonic).

    Under a deadline the validation is this callback's, not `fit`'s: at the
    end of each epoch it evaluates the model on as many of `validation_data`'s
    samples as the time left pays for (all of them where they fit, never
    fewer than `LEAST_VALIDATION_IMAGES`; the split is shuffled, so the first
    are a random sample of it) and writes the `val_` results into the epoch's
    logs, for the callbacks after it (early stopping, TensorBoard, the
    history). Training stops after the step at which the time left would
    no longer pay for the least pass. A sample's validation costs what it
    did in the last pass; before the first, a validation step is priced at
    `VALIDATION_STEP_COST` of the training steps' mean time.

    With `fit`'s own validation, the pass after a cut epoch was unpriced until it
    had run once, and all of it: on full MNIST at a 30 s limit (2 CPU cores) the
    12,000 validation images took 15 to 17 s after the deadline; priced in full
    before it, the pass left `tuner="random"` 38 training steps, and a model at 0.17.
    """

    def __init__(self, deadline, validation_data=None, batch_size=32):
        super().__init__()
        self.deadline = deadline
        self.validation_data = validation_data
        self.batch_size = batch_size
        self.reached = False
        self.validated = []  # the samples each epoch's validation evaluated
        self._sample_seconds = None  # a validation sample's cost in the last pass
        self._step_ends, self._step_seconds, self._steps = None, 0.0, 0

    def _least(self):
        return 0 if self.validation_data is None else min(len(self.validation_data[0]), LEAST_VALIDATION_IMAGES)

    def sample_seconds(self):
        """What validating a sample is expected to cost, in seconds (0 before any training step)."""
        if self._sample_seconds is not None:
            return self._sample_seconds
        if not self._steps:
            return 0.0
        return VALIDATION_STEP_COST * self._step_seconds / self._steps / self.batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self._step_ends = None  # the time from an epoch's last step to the next epoch's first holds its validation

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if self._step_ends is not None:  # an epoch's first step is not timed: the training's first holds its trace
            self._step_seconds, self._steps = self._step_seconds + now - self._step_ends, self._steps + 1
        self._step_ends = now
        if now >= self.deadline - self._least() * self.sample_seconds():
            self.reached = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.validation_data is None:
            return
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(self.validation_data)
        cost, left = self.sample_seconds(), self.deadline - time.monotonic()
        count = len(x)
        if cost > 0 and left < count * cost:
            # Whole batches: a last batch of a new size each epoch would be traced (or compiled) anew.
            count = max(self._least(), int(left / cost) // self.batch_size * self.batch_size)
        started = time.monotonic()
        arrays = (x[:count], y[:count]) if sample_weight is None else (x[:count], y[:count], sample_weight[:count])
        # Batched here, not prefetched: `evaluate` on arrays prefetches, and inside `fit` that iterator's
        # thread, freed by a later garbage collection, held it 17 s (in 2 fits of 3 on CIFAR-10 at 30 s).
        batches = tf.data.Dataset.from_tensor_slices(arrays).batch(self.batch_size)
        results = self.model.evaluate(batches, verbose=0, return_dict=True)
        self._sample_seconds = (time.monotonic() - started) / count
        self.validated.append(count)
        if logs is not None:
            logs.update({f"val_{name}": value for name, value in results.items()})


class EpochTimer(keras.callbacks.Callback):
    """Records the seconds a whole training epoch takes, extrapolated from its timed steps.

    The first step of each epoch is left out (it holds the tracing), and an
    epoch cut short by a deadline still yields a full-epoch figure.
    """

    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.seconds = []
        self.first_step_end = None  # time.monotonic() when the first step of the run ended

    def on_epoch_begin(self, epoch, logs=None):
        self._first_end, self._last_end, self._steps = None, None, 0

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if self.first_step_end is None:
            self.first_step_end = now
        if self._first_end is None:
            self._first_end = now
        else:
            self._last_end, self._steps = now, self._steps + 1

    def on_epoch_end(self, epoch, logs=None):
        if self._steps:
            self.seconds.append((self._last_end - self._first_end) / self._steps * self.steps_per_epoch)
        else:
            self.seconds.append(float("nan"))


def for_run(callbacks, run):
    """`callbacks`, with each TensorBoard callback copied to write under `log_dir/run`.

    Each trial and the final training then show as their own run in
    TensorBoard, as in KerasTuner, instead of overwriting one another.
    """
    placed = []
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.TensorBoard):
            callback = copy.copy(callback)  # its writers are re-created by set_model
            callback.log_dir = os.path.join(callback.log_dir, run)
        placed.append(callback)
    return placed


def tensorboard_log_dir(callbacks):
    """The log_dir of the first TensorBoard callback in `callbacks`, or None."""
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.TensorBoard):
            return callback.log_dir
    return None


def compile_for_classification(model, decay_steps=None, jit_compile="auto", recipe=None):
    """Compiles `model` for sparse labels, loss-scaled under float16.

    Without a `recipe`: Adam at LEARNING_RATE, as the supernet trains (the
    tests compare a child's step with the supernet's); with `decay_steps`,
    the rate follows a cosine down to 1% of it. With a `recipe`: its AdamW
    at its rate, over `decay_steps` its one cycle. Compiled in the scope of
    the distribution strategy the model was built in, and with XLA as
    `jit_compile` says (Keras's "auto": on a GPU, without a distribution strategy).
    """
    peak = LEARNING_RATE if recipe is None else recipe.learning_rate
    learning_rate = peak
    if decay_steps:
        warmup = recipes.WARMUP if recipe is not None and recipe.one_cycle else 0.0
        learning_rate = recipes.step_schedule(peak, int(decay_steps), warmup)
    with model.distribute_strategy.scope():
        optimizer = keras.optimizers.Adam(learning_rate) if recipe is None else recipes.adamw(
            learning_rate, recipe.weight_decay)
        if any(layer.dtype_policy.name == "mixed_float16" for layer in model.layers):
            # float16 gradients underflow without a (dynamic) loss scale.
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model.compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=jit_compile,
        )
        # Built here, eagerly: slots created on the first traced step register one
        # tf.cond branch function per variable in TensorFlow's global function
        # library, which outlives the model (measured: about 400 per trial).
        model.optimizer.build(model.trainable_variables)
        if not tf.distribute.has_strategy():  # under a strategy Keras builds them before its first trace
            # The metrics' variables too: Keras (3.15) otherwise creates them in the first
            # trace of the train step, and TensorFlow then traces the whole step a second
            # time, one that may not create variables. Measured here (2 CPU cores, the micro
            # prior, batch 32): a training's setup fell from 9.6 to 6.7 s on 28x28 images, 6.1 to 4.2 s on 8x8.
            classes = model.output_shape[-1]
            model.compute_metrics(None, np.zeros((1,), "int32"), np.full((1, classes), 1.0 / classes, "float32"))
            model.reset_metrics()
    return model


def halving_batch_on_oom(train_at, batch_size):
    """Returns (train_at(size), size), halving `size` from `batch_size` while the device runs out of memory.

    `train_at` must build its model afresh: a model that ran out of memory
    mid-step is not reused. Below a batch of 1 the error is raised.
    """
    while True:
        try:
            return train_at(batch_size), batch_size
        except tf.errors.ResourceExhaustedError:
            if batch_size == 1:
                raise
            batch_size //= 2


def objective_direction(objective):
    """Returns 'min' for losses and 'max' for everything else (accuracies)."""
    return "min" if objective.endswith("loss") else "max"


def best_epoch(history, objective):
    """Returns (best value, 1-based epoch) of `objective` in a Keras history dict.

    >>> best_epoch({"val_accuracy": [0.5, 0.9, 0.8, 0.9]}, "val_accuracy")
    (0.9, 4)
    >>> best_epoch({"val_loss": [0.5, 0.2, 0.3]}, "val_loss")
    (0.2, 2)
    """
    values = np.asarray(history[objective], dtype=float)
    if not np.any(np.isfinite(values)):
        raise TrainingFailed(f"{objective} was never finite.")
    if objective_direction(objective) == "min":
        values = -values
    values = np.where(np.isfinite(values), values, -np.inf)
    # The last epoch that reaches the best value: on a tie, the final model
    # (trained on more data) is better served by the longer schedule.
    index = len(values) - 1 - int(np.argmax(values[::-1]))
    best = values[index]
    return float(-best if objective_direction(objective) == "min" else best), index + 1


def train(model, x, y, *, epochs, batch_size, sample_weight=None, validation_data=None, objective=None,
          callbacks=(), deadline=None, verbose=0, decay=None, started=None, jit_compile="auto", recipe=None):
    """Compiles and fits `model`; returns its history as a dict of lists.

    With a `recipe` (see `recipe.py`), it trains with the recipe's
    augmentation, label smoothing, optimizer and rate; without one, with
    plain Adam.

    With `validation_data` and `objective`, training stops early after
    `EARLY_STOPPING_PATIENCE` epochs without improvement (not under a
    recipe's one cycle), and the model ends with the weights of its best epoch. With `decay="epochs"`, the learning
    rate follows a cosine over the `epochs`; with `decay="deadline"`, over
    the wall time until `deadline`, or the `epochs` where those end first. A diverging loss raises
    `TrainingFailed`. The history's "epoch_seconds" holds the time each
    epoch's training took (or would have taken, when cut by `deadline`), and
    its "setup_seconds" (one value) the time from `started` (default: the
    call) to the end of the first step: building, compiling and tracing,
    which a time budget must leave room for before any epoch.
    """
    started = time.monotonic() if started is None else started
    repeats = math.ceil(MIN_STEPS_PER_EPOCH * batch_size / len(x))
    steps_per_epoch = math.ceil(repeats * len(x) / batch_size)
    compile_for_classification(model, decay_steps=steps_per_epoch * epochs if decay == "epochs" else None,
                               jit_compile=jit_compile, recipe=recipe)
    if workers(model.distribute_strategy)[0] > 1:
        # Keras's Model.fit does not run under MultiWorkerMirroredStrategy (see across_workers.py).
        # The fit refuses a time_limit there, so there is no deadline to keep.
        x, y, sample_weight = _repeated(repeats, x, y, sample_weight)
        history = fit_across_workers(
            model, x, y, epochs=epochs, batch_size=batch_size, sample_weight=sample_weight,
            validation_data=validation_data, monitor=objective if validation_data is not None else None,
            mode=objective_direction(objective or "val_accuracy"), patience=_patience(recipe, epochs),
            callbacks=list(callbacks), seed=int(np.random.randint(2**31 - 1)), started=started,
            recipe=recipe,
        )
    else:
        history = _fit(model, x, y, repeats, steps_per_epoch, epochs=epochs, batch_size=batch_size,
                       sample_weight=sample_weight, validation_data=validation_data, objective=objective,
                       callbacks=callbacks, deadline=deadline, verbose=verbose, decay=decay, started=started,
                       recipe=recipe)
    losses = history.get("loss", [])
    if not losses or not all(math.isfinite(v) for v in losses):
        raise TrainingFailed("the training loss became NaN or infinite (diverged).")
    return {key: [float(v) for v in values] for key, values in history.items()}


def _patience(recipe, epochs):
    """Epochs without improvement before early stopping: none under a one-cycle schedule, which
    plans its low rates, and the best scores, for the end of training."""
    return epochs if recipe is not None and recipe.one_cycle else EARLY_STOPPING_PATIENCE


def _repeated(repeats, *arrays):
    """Each array (or None) repeated `repeats` times along its first axis."""
    if repeats == 1:
        return arrays
    return tuple(None if a is None else np.tile(a, (repeats,) + (1,) * (np.ndim(a) - 1)) for a in arrays)


def _fit(model, x, y, repeats, steps_per_epoch, *, epochs, batch_size, sample_weight, validation_data, objective,
         callbacks, deadline, verbose, decay, started, recipe):
    """`model.fit` with the callbacks `train` promises, on data held on the device where it fits
    (see `device_data`); the history with its timings."""
    timer = EpochTimer(steps_per_epoch)
    all_callbacks = [keras.callbacks.TerminateOnNaN(), timer, *callbacks]
    if decay == "deadline":
        peak = LEARNING_RATE if recipe is None else recipe.learning_rate
        warmup = recipes.WARMUP if recipe is not None and recipe.one_cycle else 0.0
        all_callbacks.append(recipes.OneCycleToDeadline(deadline, peak, warmup,
                                                        total_steps=steps_per_epoch * epochs))
    if validation_data is not None and objective is not None:
        all_callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=objective, mode=objective_direction(objective), patience=_patience(recipe, epochs),
                restore_best_weights=True,
            )
        )
    images = [x] if validation_data is None else [x, validation_data[0]]
    train_rows, *validation_rows = device_data.on_device(model.distribute_strategy, *images)
    validation_rows = validation_rows[0] if validation_rows else None
    by_index = tf.is_tensor(train_rows)
    if by_index:
        x = np.arange(len(x))
        if validation_data is not None:
            validation_data = (np.arange(len(validation_rows)), *validation_data[1:])
    x, y, sample_weight = _repeated(repeats, x, y, sample_weight)
    timed = None
    if deadline is not None:  # first: the callbacks after it read the validation it writes into the logs
        timed = Deadline(deadline, validation_data, batch_size)
        all_callbacks.insert(0, timed)
        validation_data = None
    with contextlib.ExitStack() as stack:
        stack.enter_context(recipes.training_with(model, recipe))  # augments the gathered images
        if by_index:
            stack.enter_context(device_data.fitting_by_index(model, train_rows, validation_rows))
        history = model.fit(
            x, y, sample_weight=sample_weight, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
            callbacks=all_callbacks, verbose=verbose, shuffle=True,
        ).history
    history = dict(history)
    history["epoch_seconds"] = [float(v) for v in timer.seconds]
    history["setup_seconds"] = [float(timer.first_step_end - started)]
    if timed is not None and timed.validated:
        history["validation_samples"] = timed.validated
    return history
