"""The training recipe: how every network trained from scratch learns, in one place.

The confirmation trials, random search's trials and the final model all
train with it; the ENAS supernet does not (its step is its own, and
shared-weight scores compare children on plain images). Each choice and
why, in the spirit of airbench's single training file:

- **Translation** of every training image by up to 1/16 of its side
  (2 pixels at 28 and 32, as airbench and hlb-CIFAR10 use on CIFAR-10; 1 at
  8x8), reflect-padded. Small shifts keep any label, and on a few thousand
  images they are the cheapest regulariser there is.
- **Horizontal flips only where they keep the labels.** Mirrored digits or
  letters are other characters (or none), mirrored photographs are the
  same scene. The data decide: a trial trained without flips classifies
  the validation images flipped; where it scores at least
  `FLIP_AGREEMENT` of its plain accuracy above chance, flipping preserves
  the classes and the final training flips (`flip_preserves_labels`).
  Fashion-MNIST's trials keep 70 to 80% and do not flip, which is right
  for training this short: the benchmarks' ResNet trained 20 epochs with
  flips scored 0.9095 and 0.9045 on validation against 0.9160 and 0.9145
  without (`benchmarks/flip_ab.py`, two seeds).
- **Test-time views**: the final model predicts with the views it
  trained on (`builder.augmented_at_test_time`), as airbench evaluates.
  Its probabilities are averaged over each image (half the weight) and
  its copies shifted `test_time_shift` pixels down-right and up-left (a
  quarter each), and over their mirror images where the final training
  flips. On held-out training images (`benchmarks/views_ab.py`, the macro
  prior, two seeds each) the views scored 0.9145 and 0.9150 on
  Fashion-MNIST where the plain network scored 0.9075 and 0.9095, 0.8240
  and 0.8270 on CIFAR-10 where flips alone scored 0.8170 twice, and 0.9965
  and 0.9955 on MNIST against 0.9950 and 0.9940, and 1.0000 twice on
  digits against 0.9968 and 1.0000.
  Where flips stay out of training they stay out of the views too: the
  flip test also records the trial's accuracy with averaged probabilities,
  and on the Fashion-MNIST split, where the test kept flips out of
  training, averaging five final models with their mirror images (of four
  tuners) moved them +0.35, -0.60, +0.20, -0.25 and +0.05 points, a mean
  of -0.05.
- **Cutout** (DeVries and Taylor 2017) for the final training only, and
  only for a schedule of at least `CUTOUT_MIN_EPOCHS` epochs: it pays on
  long schedules (airbench uses it only for its longer 96% run) and slows
  the short ones of a CPU budget.
- **Label smoothing 0.1** (Szegedy et al. 2016): models trained on few
  images otherwise grow over-confident, and it costs nothing.
- **AdamW** (Loshchilov and Hutter 2019) with weight decay 0.01, batch
  normalisation's scales and offsets and the biases exempt: Adam is robust
  to the unknown scale of a searched network, where SGD's rate would need
  tuning per architecture.
- **One cycle** for the final training: a linear warm-up over the first
  `WARMUP` of training to `FINAL_LEARNING_RATE`, then a cosine down to 1%
  of it exactly when training ends, by steps or, under a time budget, by
  the wall clock (`OneCycleToDeadline`), so the rate is low when the
  deadline stops training, whatever the step time turned out to be.
  The halving's trials under a time budget have a planned length too (their
  share of the confirmation's time) and anneal over it on the same cycle,
  so that a rung compares what each network reaches in its time, as the
  final training does, rather than iterates of a constant rate: at a
  constant rate the prior's score after about 1.6 epochs on the
  Fashion-MNIST split ranged 0.744 to 0.810 between runs of one seed, and
  the supernet's picks that won those rungs by 0.03 to 0.07 ended 0.35
  point below the prior on average after their final training. The
  ranking benchmark's truth made the same change for the same reason: on
  CIFAR-10 two seeds of a one cycle over 3 epochs agreed at Kendall tau
  0.762, where 2 constant-rate epochs were too noisy to rank against.
  Side by side at 7 minutes on the Fashion-MNIST split, three seeds
  (`benchmarks/results/suite_recipe_2026-12-06_f870ad0_fashion_annealed_trials_ab.md`),
  the default scored 0.9160, 0.9105, 0.9150 with annealed trials against
  0.9085, 0.9120, 0.9110 at a constant rate: the prior, no longer losing
  its rung by a few thousandths to constant-rate noise, won two of three.
  Other trials stop early on their validation score at an unknown epoch,
  so they keep a constant `TRIAL_LEARNING_RATE`.

Augmentation runs inside the train step, on the batch already on the
device, and never in the model: `training_with` wraps the model's train
step only while `fit` runs, so predictions, exports and saved files are
those of the plain network.

Example:

>>> import numpy as np
>>> recipe = Recipe.for_final((28, 28, 1), fill=[33.3], flip=False, epochs=10)
>>> print(recipe)
translate 2 px, no flips, no cutout, label smoothing 0.1, AdamW (weight decay 0.01), one cycle to 0.002
>>> images = np.zeros((4, 28, 28), np.float32)  # samples without a channel axis keep their shape
>>> augment(images, recipe).shape
TensorShape([4, 28, 28])
"""

import contextlib
import dataclasses
import math
import time

import keras
import numpy as np
import tensorflow as tf

from automl_kit.tuner.fused_adamw import fused_adamw

TRIAL_LEARNING_RATE = 1e-3
FINAL_LEARNING_RATE = 2e-3
WARMUP = 0.1  # share of the final training spent warming the learning rate up
WEIGHT_DECAY = 0.01
LABEL_SMOOTHING = 0.1
# Batch normalisation's scales and offsets and the biases: exempt from weight decay.
NO_WEIGHT_DECAY = ("gamma", "beta", "bias")
# A flipped validation set must keep this share of the plain accuracy above chance.
FLIP_AGREEMENT = 0.9
# The flip test tells only once the model has learned this share of the way from chance to
# perfect: a trial cut at one epoch on digits (0.1036, chance 0.1) once passed it with a
# mirrored 0.1000, and the final model trained on mirrored digits.
FLIP_LEARNED_SHARE = 0.25
CUTOUT_MIN_EPOCHS = 30


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one network trains: its augmentation, loss and optimizer.

    Attributes:
        translate: largest shift in pixels, each axis (0: none).
        flip: whether images are mirrored left-right at random.
        cutout: side in pixels of the square blanked at a random place (0: none).
        label_smoothing: share of each target spread evenly over the classes.
        learning_rate: the constant rate, or the peak of the one cycle.
        one_cycle: whether the rate warms up and then decays to the end of training.
        weight_decay: AdamW's decoupled weight decay.
        image_shape: (H, W, C) of the images the network sees (None for
            tabular features); samples of another shape (flat rows, or no
            channel axis) are augmented as images of this shape.
        fill: the value cutout writes, one per channel: the training images' mean.
    """

    translate: int = 0
    flip: bool = False
    cutout: int = 0
    label_smoothing: float = LABEL_SMOOTHING
    learning_rate: float = TRIAL_LEARNING_RATE
    one_cycle: bool = False
    weight_decay: float = WEIGHT_DECAY
    image_shape: tuple = None
    fill: tuple = (0.0,)

    def __post_init__(self):
        if self.image_shape is not None:
            object.__setattr__(self, "image_shape", tuple(int(d) for d in self.image_shape))
        object.__setattr__(self, "fill", tuple(float(v) for v in np.ravel(self.fill)))

    @staticmethod
    def shift_for(image_shape):
        """Pixels of translation for images of `image_shape`: 1/16 of the shorter side, at least 1."""
        return max(1, round(min(int(image_shape[0]), int(image_shape[1])) / 16))

    @classmethod
    def for_trial(cls, image_shape, fill=(0.0,), annealed=False):
        """A search trial's recipe: translation, label smoothing, AdamW; no flips. At a constant rate, or
        `annealed` on the final training's one cycle over the trial's planned length."""
        rate = dict(learning_rate=FINAL_LEARNING_RATE, one_cycle=True) if annealed else {}
        if image_shape is None:  # tabular features: nothing to translate
            return cls(**rate)
        return cls(translate=cls.shift_for(image_shape), image_shape=image_shape, fill=fill, **rate)

    @classmethod
    def for_final(cls, image_shape, fill=(0.0,), flip=False, epochs=None):
        """The final training's recipe, for about `epochs` epochs (None: unknown)."""
        if image_shape is None:  # tabular features: nothing to translate, flip or cut out
            return cls(learning_rate=FINAL_LEARNING_RATE, one_cycle=True)
        side = min(int(image_shape[0]), int(image_shape[1]))
        long_schedule = epochs is not None and epochs >= CUTOUT_MIN_EPOCHS
        return cls(translate=cls.shift_for(image_shape), flip=bool(flip),
                   cutout=max(1, side // 4) if long_schedule and side >= 16 else 0,
                   learning_rate=FINAL_LEARNING_RATE, one_cycle=True, image_shape=image_shape, fill=fill)

    @property
    def test_time_shift(self):
        """Pixels the shifted test-time views move: half the training translation, at least 1 (0: none), and
        less than the image's side (reflect padding needs a wider image), so that the record says what the
        model does.

        >>> Recipe(translate=2).test_time_shift, Recipe(translate=1).test_time_shift, Recipe().test_time_shift
        (1, 1, 0)
        >>> Recipe(translate=1, image_shape=(1, 1, 1)).test_time_shift
        0
        """
        shift = max(1, self.translate // 2) if self.translate else 0
        if self.image_shape is not None:
            shift = min(shift, self.image_shape[0] - 1, self.image_shape[1] - 1)
        return shift

    @property
    def augments(self):
        return bool(self.translate or self.flip or self.cutout)

    def to_dict(self):
        record = dataclasses.asdict(self)
        record["image_shape"] = None if self.image_shape is None else list(self.image_shape)
        record["fill"] = list(self.fill)
        return record

    def __str__(self):
        parts = [f"translate {self.translate} px" if self.translate else "no translation",
                 "flips" if self.flip else "no flips",
                 f"cutout {self.cutout} px" if self.cutout else "no cutout",
                 f"label smoothing {self.label_smoothing:g}",
                 f"AdamW (weight decay {self.weight_decay:g})",
                 f"one cycle to {self.learning_rate:g}" if self.one_cycle else f"constant rate {self.learning_rate:g}"]
        return ", ".join(parts)


def augment(images, recipe):
    """A randomly augmented copy of the batch `images`: every image its own draw.

    The batch is read as images of `recipe.image_shape` (when given) and
    returned in its own shape. Cutout writes `recipe.fill`, the training
    images' mean, so that a blanked square carries no signal once the model
    standardises its input.
    """
    images = tf.convert_to_tensor(images)
    given_shape = tf.shape(images)
    if recipe.image_shape is not None:
        images = tf.reshape(images, [-1, *recipe.image_shape])
    if images.shape.rank != 4:
        return images  # features, not images: nothing spatial to augment
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    if recipe.translate:
        pad = min(recipe.translate, height - 1, width - 1)
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        rows = tf.random.uniform([batch, 1], 0, 2 * pad + 1, dtype=tf.int32) + tf.range(height)
        cols = tf.random.uniform([batch, 1], 0, 2 * pad + 1, dtype=tf.int32) + tf.range(width)
        images = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    if recipe.flip:
        mirrored = tf.random.uniform([batch, 1, 1, 1]) < 0.5
        images = tf.where(mirrored, tf.reverse(images, axis=[2]), images)
    if recipe.cutout:
        size = recipe.cutout
        top = tf.random.uniform([batch, 1, 1, 1], -(size // 2), height - size // 2, dtype=tf.int32)
        left = tf.random.uniform([batch, 1, 1, 1], -(size // 2), width - size // 2, dtype=tf.int32)
        row = tf.reshape(tf.range(height), [1, height, 1, 1])
        col = tf.reshape(tf.range(width), [1, 1, width, 1])
        inside = (row >= top) & (row < top + size) & (col >= left) & (col < left + size)
        fill = tf.cast(tf.broadcast_to(tf.constant(recipe.fill), [images.shape[-1]]), images.dtype)
        images = tf.where(inside, fill, images)
    return tf.reshape(images, given_shape)


def smoothed_loss(y, probabilities, smoothing):
    """Per-sample cross-entropy against targets smoothed by `smoothing`, from integer labels `y`.

    (1 - s) * -log p_y + s * mean_k(-log p_k): the loss of the target that
    puts 1 - s + s/K on the label and s/K on every class.
    """
    log_p = tf.math.log(tf.clip_by_value(tf.cast(probabilities, tf.float32), 1e-7, 1.0))
    y = tf.cast(tf.reshape(y, [-1]), tf.int32)
    picked = tf.gather(log_p, y, axis=1, batch_dims=1)
    return -(1.0 - smoothing) * picked - smoothing * tf.reduce_mean(log_p, axis=1)


@contextlib.contextmanager
def training_with(model, recipe):
    """While open, `model.fit` trains with `recipe`'s augmentation and label smoothing.

    The train step augments each batch before Keras's own step runs on it,
    and the training loss smooths the labels; evaluation (validation
    scores, early stopping) sees plain images and the plain loss. Nothing
    is added to the model: on exit it is exactly the network it was.
    """
    if recipe is None or not (recipe.augments or recipe.label_smoothing):
        yield
        return
    model_class = type(model)

    def train_step(data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if recipe.augments:
            x = augment(x, recipe)
        return model_class.train_step(model, keras.utils.pack_x_y_sample_weight(x, y, sample_weight))

    def compute_loss(x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not training or not recipe.label_smoothing:
            return model_class.compute_loss(model, x, y, y_pred, sample_weight, training)
        # Keras's own loss with its reduction and replica scaling, on targets of the smoothed loss:
        # (1 - s) * CE(y) + s * CE(uniform), as two weighted terms of the sparse cross-entropy.
        plain = model_class.compute_loss(model, x, y, y_pred, sample_weight, training)
        per_sample = smoothed_loss(y, y_pred, recipe.label_smoothing) - keras.losses.sparse_categorical_crossentropy(
            tf.reshape(y, [-1]), y_pred)
        weights = tf.ones_like(per_sample) if sample_weight is None else tf.cast(
            tf.reshape(sample_weight, [-1]), per_sample.dtype)
        extra = tf.reduce_sum(per_sample * weights) / tf.cast(tf.size(per_sample), per_sample.dtype)
        # Scaled as Keras scales its own loss: each replica's share of the global batch's mean.
        return plain + extra / tf.distribute.get_strategy().num_replicas_in_sync

    model.train_step, model.compute_loss = train_step, compute_loss
    model.train_function = None
    try:
        yield
    finally:
        del model.train_step, model.compute_loss
        model.train_function = None


def flip_preserves_labels(accuracy, flipped_accuracy, num_classes):
    """Whether mirroring keeps the classes: a model that never saw a flip still recognises flipped images.

    >>> flip_preserves_labels(0.90, 0.86, 10)  # photographs: nearly as good mirrored
    True
    >>> flip_preserves_labels(0.98, 0.45, 10)  # digits: mirrored, most are no digit at all
    False
    >>> flip_preserves_labels(0.1036, 0.1000, 10)  # a model that learned next to nothing cannot tell
    False
    """
    chance = 1.0 / num_classes
    if accuracy < chance + FLIP_LEARNED_SHARE * (1.0 - chance):
        return False
    return (flipped_accuracy - chance) >= FLIP_AGREEMENT * (accuracy - chance)


def flip_test(model, x, y, image_shape, batch_size=500):
    """(accuracy, accuracy on the images mirrored left-right, accuracy of the two's averaged
    probabilities) of `model` on (x, y).

    `x` holds samples in the model's input shape, read as images of `image_shape` to mirror them.
    """
    x = np.asarray(x, np.float32)
    correct = np.zeros(3)
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        mirrored = batch.reshape((-1, *image_shape))[:, :, ::-1].reshape(batch.shape)
        # Plain and mirrored in one call, through Keras's traced predict step: the first eager call
        # of a model that has only run traced steps took 3.4 to 6.6 s here (2 CPU cores, a 400k-
        # parameter network, 28x28 images), predict's trace and pass 0.7 s; on Fashion-MNIST the
        # flip test was 6.9 s of a confirmation trial's 10 s beyond its epochs, 1.6 s of 5.6 s after.
        plain, flipped = np.split(model.predict(np.concatenate([batch, mirrored]), batch_size=2 * batch_size,
                                                verbose=0), 2)
        predicted = np.argmax(np.stack([plain, flipped, plain + flipped]), axis=2)
        correct += np.sum(predicted == y[start:start + batch_size], axis=1)
    return tuple(float(c / max(len(x), 1)) for c in correct)


class OneCycleToDeadline(keras.callbacks.Callback):
    """The one cycle over wall time: warm-up over `WARMUP` of the time to `deadline`, then a cosine to
    1% of `peak` at it, or at `total_steps` training steps where those end first.

    For a training that runs until a time budget ends: a step-based
    schedule would need the number of steps that fit, and a wrong guess
    leaves the rate high when the deadline cuts training off. With
    `warmup=0` it is a plain cosine.
    """

    def __init__(self, deadline, peak, warmup=WARMUP, alpha=0.01, total_steps=None):
        super().__init__()
        self.deadline, self.peak, self.warmup, self.alpha = deadline, peak, warmup, alpha
        self.total_steps = total_steps

    def on_train_begin(self, logs=None):
        self.start, self.steps = time.monotonic(), 0

    def on_train_batch_begin(self, batch, logs=None):
        done = (time.monotonic() - self.start) / max(self.deadline - self.start, 1e-9)
        if self.total_steps:
            done = max(done, self.steps / self.total_steps)
        done = min(max(done, 0.0), 1.0)
        self.model.optimizer.learning_rate.assign(self.peak * one_cycle_factor(done, self.warmup, self.alpha))

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


def one_cycle_factor(done, warmup=WARMUP, alpha=0.01):
    """The rate's share of its peak after `done` (0 to 1) of training.

    >>> [round(one_cycle_factor(d, 0.1), 3) for d in (0.0, 0.05, 0.1, 0.55, 1.0)]
    [0.1, 0.55, 1.0, 0.505, 0.01]
    """
    if done < warmup:
        return 0.1 + 0.9 * done / warmup
    progress = (done - warmup) / max(1.0 - warmup, 1e-9)
    return alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * progress))


def step_schedule(peak, total_steps, warmup=WARMUP):
    """The one cycle over `total_steps` as Keras's own schedule (so saved optimizers need no automl_kit)."""
    warmup_steps = int(warmup * total_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak * 0.1, decay_steps=max(1, total_steps - warmup_steps), alpha=0.01,
        warmup_target=peak, warmup_steps=warmup_steps)


def adamw(learning_rate, weight_decay=WEIGHT_DECAY):
    """AdamW, with batch normalisation's parameters and the biases exempt from weight decay (its kernels
    fused: `fused_adamw.py`)."""
    return fused_adamw(learning_rate, weight_decay, exclude_from_weight_decay=NO_WEIGHT_DECAY)
