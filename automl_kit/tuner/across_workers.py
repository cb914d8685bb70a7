"""Training one compiled Keras model on several workers, without `Model.fit`.

Keras 3's `Model.fit` fails under `tf.distribute.MultiWorkerMirroredStrategy`
(keras-team/keras#20585; measured here with Keras 3.15 and TensorFlow 2.21:
its symbolic build and its metric reduction both call `strategy.reduce` in
ways the collective strategy rejects). So with several workers, trials and
the final model train in this loop instead. It keeps `training.train`'s
contract: the model's own compiled optimizer (which all-reduces the
gradients across replicas), early stopping on the objective with the best
epoch's weights restored, and the same history keys. Every worker passes the
same global batches, drawn from the same seed, and every figure that decides
what happens next (losses, validation scores) is all-reduced, so all
workers take the same steps and stop at the same epoch.
"""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from automl_kit.tuner.distribute import split_batch
from automl_kit.tuner.recipe import augment, smoothed_loss

VALIDATION_BATCH_SIZE = 256


class _Steps:
    """The traced train and evaluation steps of one model under its strategy."""

    def __init__(self, model, recipe=None):
        self.model = model
        self.recipe = recipe
        self.strategy = model.distribute_strategy
        # Without AutoGraph (see `Supernet`): these steps have no control flow of their own to convert.
        self.train = tf.function(self._global(self._train_replica), reduce_retracing=True, autograph=False)
        self.evaluate = tf.function(self._global(self._evaluate_replica), reduce_retracing=True, autograph=False)
        self._average = tf.function(lambda: self.strategy.run(self._average_statistics), autograph=False)

    def average_statistics(self):
        """Sets every replica's moving statistics (batch normalisation) to their mean over the replicas.

        Each replica updates them from its own share of the batches; without
        this, each worker's model would predict a little differently.
        """
        if self.model.non_trainable_variables:
            self._average()

    def _average_statistics(self):
        variables = self.model.non_trainable_variables
        means = tf.distribute.get_replica_context().all_reduce("mean", [tf.identity(v.value) for v in variables])
        for variable, mean in zip(variables, means):
            variable.assign(mean)

    def _global(self, replica_fn):
        def run(*args):
            per_replica = self.strategy.run(replica_fn, args=args)
            return [self.strategy.reduce("sum", value, axis=None) for value in per_replica]
        return run

    def _sums(self, x, y, weights, training):
        """(weighted loss sum, weighted correct count) of one replica's shard; in training, with the recipe's
        augmentation and label smoothing."""
        recipe = self.recipe if training else None
        if recipe is not None and recipe.augments:
            x = augment(x, recipe)
        probabilities = self.model(x, training=training)
        if recipe is not None and recipe.label_smoothing:
            losses = smoothed_loss(y, probabilities, recipe.label_smoothing)
        else:
            losses = keras.losses.sparse_categorical_crossentropy(y, probabilities)
        correct = tf.cast(tf.equal(tf.argmax(probabilities, axis=1, output_type=tf.int32), y), tf.float32)
        return tf.reduce_sum(losses * weights), tf.reduce_sum(correct * weights)

    def _train_replica(self, x, y, weights):
        # `weights` sum to 1 over the global batch: the replicas' losses add up to its weighted mean.
        optimizer = self.model.optimizer
        with tf.GradientTape() as tape:
            loss, correct = self._sums(x, y, weights, training=True)
            scaled = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.model.trainable_variables)
        optimizer.apply(gradients, self.model.trainable_variables)
        return loss, correct

    def _evaluate_replica(self, x, y, weights):
        return self._sums(x, y, weights, training=False)


def fit_across_workers(model, x, y, *, epochs, batch_size, sample_weight=None, validation_data=None,
                       monitor=None, mode="max", patience=None, callbacks=(), seed=0, started=None, recipe=None):
    """Trains the compiled `model` on (x, y); returns its history as a dict of lists.

    With `validation_data` and `monitor` ("val_accuracy" or "val_loss"),
    training stops after `patience` epochs without improvement and the model
    ends with its best epoch's weights. `callbacks` get `on_epoch_end` with
    the epoch's figures. The history holds "loss", "accuracy", their "val_"
    counterparts, "epoch_seconds" and "setup_seconds", as `training.train`'s.
    A `recipe` augments the training batches and smooths their labels.
    """
    started = time.monotonic() if started is None else started
    steps = _Steps(model, recipe)
    weights = np.ones(len(x), np.float32) if sample_weight is None else np.asarray(sample_weight, np.float32)
    steps_per_epoch = math.ceil(len(x) / batch_size)
    history = {"loss": [], "accuracy": [], "epoch_seconds": []}
    setup_seconds = None
    best, best_weights, waited = None, None, 0
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    for epoch in range(epochs):
        epoch_started = time.monotonic()
        order = np.random.default_rng([seed, epoch]).permutation(len(x))
        loss = correct = 0.0
        for step in range(steps_per_epoch):
            # Full batches, wrapping around, so every replica always has its share.
            batch = order[np.arange(step * batch_size, (step + 1) * batch_size) % len(x)]
            w = weights[batch] / max(float(weights[batch].sum()), 1e-12)
            step_loss, step_correct = steps.train(*split_batch(steps.strategy, x[batch], y[batch].astype(np.int32), w))
            loss, correct = loss + float(step_loss), correct + float(step_correct)
            if setup_seconds is None:
                setup_seconds = time.monotonic() - started
        steps.average_statistics()
        logs = {"loss": loss / steps_per_epoch, "accuracy": correct / steps_per_epoch}
        history["epoch_seconds"].append(time.monotonic() - epoch_started)
        if validation_data is not None:
            logs.update(_validation_logs(steps, *validation_data))
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        if not math.isfinite(logs["loss"]):
            break
        if monitor in logs:
            value = logs[monitor] if mode == "max" else -logs[monitor]
            if best is None or value > best:
                best, best_weights, waited = value, model.get_weights(), 0
            else:
                waited += 1
                if patience is not None and waited >= patience:
                    break
    if best_weights is not None:
        model.set_weights(best_weights)
    for callback in callbacks:
        callback.on_train_end()
    history["setup_seconds"] = [float(setup_seconds or 0.0)]
    return history


def _validation_logs(steps, x, y, weights=None):
    weights = np.ones(len(x), np.float32) if weights is None else np.asarray(weights, np.float32)
    total = max(float(weights.sum()), 1e-12)
    loss = correct = 0.0
    # Near-equal batches of at most VALIDATION_BATCH_SIZE: none too small to split over the replicas.
    for batch in np.array_split(np.arange(len(x)), math.ceil(len(x) / VALIDATION_BATCH_SIZE)):
        batch_loss, batch_correct = steps.evaluate(
            *split_batch(steps.strategy, x[batch], np.asarray(y)[batch].astype(np.int32), weights[batch] / total))
        loss, correct = loss + float(batch_loss), correct + float(batch_correct)
    return {"val_loss": loss, "val_accuracy": correct}
