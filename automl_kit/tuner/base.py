"""The interface every search strategy implements, and what they share."""

import abc
import contextlib
import ctypes
import dataclasses
import datetime
import gc
import inspect
import os
import time

import keras
import numpy as np
import tensorflow as tf

from automl_kit.blocks.builder import build_model, step_cost
from automl_kit.tuner import training
from automl_kit.tuner.budget import shortest_trial_seconds
from automl_kit.tuner.recipe import Recipe, flip_test
from automl_kit.tuner.project import KEEP_WEIGHTS
from automl_kit.tuner.trial import COMPLETED, FAILED, Trial


@dataclasses.dataclass(frozen=True)
class SearchData:
    """The adapted data a search works on.

    Samples are shaped as `input_spec.input_shape`, labels are 0..K-1, and the
    weights (None when neither sample_weight nor class_weight was given) fold in `class_weight`.
    Models are built in `strategy`'s scope and compiled with `jit_compile`.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    input_spec: object
    num_classes: int
    mean: tuple
    variance: tuple
    w_train: np.ndarray = None
    w_val: np.ndarray = None
    dtype_policy: str = None  # None (float32), "mixed_float16" or "mixed_bfloat16"
    strategy: object = None  # a tf.distribute.Strategy; None is TensorFlow's default
    jit_compile: object = "auto"  # as Keras's Model.compile takes it

    def build(self, architecture):
        with (self.strategy or tf.distribute.get_strategy()).scope():
            return self._build_model(architecture)

    def _build_model(self, architecture):
        return build_model(architecture, self.input_spec, self.num_classes, self.mean, self.variance,
                           dtype_policy=self.dtype_policy)

    def count_params(self, architecture):
        """Parameters of `architecture`'s model, built and released again."""
        return self.size_and_cost(architecture)[0]

    def size_and_cost(self, architecture):
        """(parameters, what one sample costs a training step) of `architecture`'s model, built and released
        again (see `builder.step_cost`)."""
        model = self._build_model(architecture)
        params, cost = int(model.count_params()), step_cost(model)
        model = None
        # Not release_memory, nor a full garbage collection: this runs for every re-drawn proposal and
        # every candidate scaling, and the model it drops holds no traced function.
        clear_keras_session(collect=False)
        return params, cost

    @property
    def validation_data(self):
        if self.w_val is None:
            return (self.x_val, self.y_val)
        return (self.x_val, self.y_val, self.w_val)

    @property
    def image_shape(self):
        """(H, W, C) of the images the network sees; None for tabular features."""
        return None if self.input_spec.image_shape is None else tuple(self.input_spec.image_shape)

    @property
    def growth(self):
        """How much larger training + validation data is than the training data alone."""
        return (len(self.x_train) + len(self.x_val)) / len(self.x_train)


class SearchFailed(RuntimeError):
    """Too many trials in a row failed; the message lists their reasons."""


def resident_memory_mb():
    """The process's resident memory in MB (None where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return None


# Keras 3's later releases end clear_session with a full garbage collection (`free_memory`, on by
# default), the first ones do not. One collection is enough: each walks every object Python tracks,
# 0.21 s with TensorFlow loaded (2 CPU cores), and a fit frees two models.
_CLEAR_SESSION_COLLECTS = "free_memory" in inspect.signature(keras.backend.clear_session).parameters


def clear_keras_session(collect):
    """Resets Keras's global state, then runs one full garbage collection if `collect`."""
    if _CLEAR_SESSION_COLLECTS:
        keras.backend.clear_session(free_memory=collect)
    else:
        keras.backend.clear_session()
        if collect:
            gc.collect()


def release_memory():
    """Frees what a finished model held: Keras's graph state, Python's reference cycles, and
    the heap pages glibc would otherwise keep mapped (where glibc's `malloc_trim` exists).

    Measured (benchmarks/results/search_memory.md): memory grew about 93 MB
    per trial with or without the trim, and 58 MB once the optimizers were
    built eagerly (see `training.compile_for_classification`). The rest was
    each traced train step, kept alive by TensorFlow's gradient registry;
    `forgetting_custom_gradients` lets it go. The trim only lowers the
    level a little.
    """
    clear_keras_session(collect=True)  # models and traced functions sit in reference cycles
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


@contextlib.contextmanager
def forgetting_custom_gradients():
    """Drops, at the end of the block, the gradient functions `tf.custom_gradient` registered in it.

    Each trace of a `tf.custom_gradient` registers its gradient function
    under a new name in TensorFlow's global gradient registry, for the rest
    of the process, and the function's closure keeps the traced graph, and
    through it the model, alive (tensorflow/tensorflow#97697). Keras's
    optimizer traces one into every train step (its all-reduce of the
    gradients, even over one replica), and the supernet dozens. Measured
    here: resident memory grew by about 60 MB a trial and 290 MB a supernet
    (micro space, 28x28 images); with this, by under 10 MB a trial. The graphs
    traced in the block were differentiated while they were traced, so
    nothing looks these functions up once the block is over. The registry is
    TensorFlow's private `ops._gradient_registry`: where it is missing, the
    block only runs.
    """
    from tensorflow.python.framework import ops as tf_ops

    registry = getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", None)
    before = set(registry) if isinstance(registry, dict) else None
    try:
        yield
    finally:
        if before is not None:
            for name in set(registry) - before:
                if name.startswith("CustomGradient-"):
                    registry.pop(name, None)


# Validation images a trial classifies plain and mirrored (a forward pass of each).
FLIP_TEST_SAMPLES = 1000


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class SearchStrategy(abc.ABC):
    """Searches a space of Architectures and records one Trial per evaluation.

    Subclasses implement `search`. The project (see `project.py`) holds the
    trials, so a strategy that is re-created on the same project resumes.
    """

    name = None

    def __init__(self, *, project, search_space, objective, seed, max_model_size=None,
                 max_consecutive_failures=3, keep_weights=KEEP_WEIGHTS):
        self.project = project
        self.search_space = search_space
        self.objective = objective
        self.seed = seed
        self.max_model_size = max_model_size
        self.max_consecutive_failures = max_consecutive_failures
        self.keep_weights = keep_weights

    @abc.abstractmethod
    def search(self, data, *, max_trials, epochs, batch_size, callbacks=(), budget=None, progress=None):
        """Runs the search and returns every Trial, resumed ones included.

        With a `TimeBudget`, no trial runs past `budget.search_deadline`.
        `progress` (a `Progress`; silent when None) shows how it goes.
        """

    def final_epochs(self, best, epochs):
        """Epochs for the final model: by default the best trial's best epoch count."""
        return best.best_epoch

    def sized_to_the_budget(self):
        """Whether the search chose its one candidate's width for the whole time budget, trial and final training
        together, so that the final stage does not narrow it again (by default it did not)."""
        return False

    def within_size(self, architecture, data):
        """Whether `architecture`'s model for `data` has at most `max_model_size` parameters (always, without a bound)."""
        return self.max_model_size is None or data.count_params(architecture) <= self.max_model_size

    def best_trials(self, trials, count):
        """The `count` best completed trials, best first; among equal scores the smaller model wins."""
        sign = -1.0 if training.objective_direction(self.objective) == "min" else 1.0
        completed = [t for t in trials if t.status == COMPLETED]
        return sorted(completed, key=lambda t: (sign * t.score, -(t.params or 0)), reverse=True)[:count]

    def best_trial(self, trials):
        best = self.best_trials(trials, 1)
        return best[0] if best else None

    def next_deadline(self, trials, data, budget, progress):
        """(deadline, stop) for the next trial trained from scratch under `budget` ((None, False) without one).

        `stop` is True when less time is left than any trial has needed for
        its setup and one epoch: such a trial would be cut before it learns
        anything, so its time goes to the final model instead. The first
        trial always runs: without one there is no model at all.
        """
        if budget is None:
            return None, False
        deadline = budget.search_deadline(self.best_trial(trials), data.growth)
        if trials and time.monotonic() + shortest_trial_seconds(trials) >= deadline:
            progress.line(f"Time budget for the search reached after {len(trials)} trial(s).")
            return deadline, True
        return deadline, False

    def reward(self, trial):
        """A completed trial's objective as a reward to maximise (negated for a loss)."""
        return trial.score if training.objective_direction(self.objective) == "max" else -trial.score

    def check_failures(self, trials):
        """Raises SearchFailed once the last `max_consecutive_failures` trials all failed."""
        tail = trials[-self.max_consecutive_failures:]
        if len(tail) == self.max_consecutive_failures and all(t.status == FAILED for t in tail):
            reasons = "\n".join(f"  trial {t.trial_id}: {t.failure_reason}" for t in tail)
            raise SearchFailed(f"The last {len(tail)} trials failed:\n{reasons}")

    def record(self, trial, trials, progress, bar):
        """Saves `trial`, appends it to `trials`, reports it, and stops the search after too many failures."""
        self.project.save_trial(trial)
        trials.append(trial)
        best = self.best_trial(trials)
        progress.line(self.describe(trial, best))
        bar.update(1)
        progress.status(bar, best=None if best is None else best.score)
        progress.scalars("trials", len(trials), score=trial.score, best_score=None if best is None else best.score)
        self.check_failures(trials)

    def describe(self, trial, best):
        """One line on `trial`: its score against the best so far, size, time, architecture."""
        if trial.status == COMPLETED:
            result = f"{self.objective}={trial.score:.4f} (best {best.score:.4f})"
        else:
            result = f"FAILED: {trial.failure_reason}"
        if trial.shared_score is not None:
            result = f"shared-weight score {trial.shared_score:.4f}, from scratch {result}"
        params = f"{trial.params:,} params" if trial.params else "? params"
        return f"Trial {trial.trial_id}: {result} | {params} | {trial.seconds:.1f} s | {trial.architecture}"

    def train_trial(self, trial_id, architecture, data, *, epochs, batch_size, callbacks, deadline,
                    seed, verbose=0, previous_trials=(), as_final=False, anneal=False, rung=None,
                    validation_images=None):
        """Builds `architecture` from scratch, trains it (with early stopping unless annealed), returns its Trial.

        When the device runs out of memory, the trial starts again at half
        the batch size, down to 1; the batch size it trained at is recorded.
        The weights of its best epoch are kept on disk while it is among the
        `keep_weights` best of `previous_trials` and itself. It trains with
        the trials' recipe (`Recipe.for_trial`: no flips), and its history's
        "flip_test" holds its accuracy on up to `FLIP_TEST_SAMPLES`
        validation images, plain, mirrored and the two averaged, from which
        the final training decides whether flips keep the labels. With
        `anneal`, its `deadline` is the trial's planned length, and its rate
        anneals over it on the final's one cycle (`Recipe.for_trial`). A trial
        that will be the final model itself (`as_final`) trains with the final
        recipe to its deadline and skips the flip test. `rung` is the halving's rung
        the trial trains in, set before its weights are kept or not: the
        shared-weight searches rank a later rung's trials first. With
        `validation_images`, it validates on that many of the validation
        images (the split is shuffled: a random sample of them).
        """
        started = time.monotonic()
        trial = Trial(trial_id=trial_id, architecture=architecture, status=FAILED, started_at=_now(), rung=rung)
        recipe = (Recipe.for_final(data.image_shape, data.mean) if as_final
                  else Recipe.for_trial(data.image_shape, data.mean, annealed=anneal))
        model = None
        validation_data = data.validation_data
        if validation_images is not None:
            validation_data = tuple(a[:validation_images] for a in validation_data)

        def train_at(size):
            nonlocal model
            model = None
            release_memory()
            keras.utils.set_random_seed(seed)
            model = data.build(architecture)
            trial.params = int(model.count_params())
            return training.train(
                model, data.x_train, data.y_train, sample_weight=data.w_train,
                validation_data=validation_data, objective=self.objective,
                epochs=epochs, batch_size=size, callbacks=training.for_run(callbacks, f"trial_{trial_id}"),
                deadline=deadline, verbose=2 if verbose >= 2 else 0, started=started, jit_compile=data.jit_compile,
                recipe=recipe, decay="deadline" if as_final or anneal else None,
            )

        try:
            with forgetting_custom_gradients():
                history, trial.batch_size = training.halving_batch_on_oom(train_at, batch_size)
            trial.history = history
            trial.epochs_run = len(history["loss"])
            trial.score, trial.best_epoch = training.best_epoch(history, self.objective)
            # A trial trained as the final model itself (decay to a deadline) has no later training to
            # decide flips for: the test's forward passes (seconds on a CPU) would overrun its budget.
            if data.image_shape is not None and not as_final:
                rows = np.random.default_rng(seed).permutation(len(data.x_val))[:FLIP_TEST_SAMPLES]
                history["flip_test"] = list(flip_test(model, data.x_val[rows], data.y_val[rows], data.image_shape))
            trial.status = COMPLETED
            keep = {t.trial_id for t in self.best_trials([*previous_trials, trial], self.keep_weights)}
            if trial_id in keep:
                self.project.save_weights(trial_id, model, keep)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # a failed trial is recorded, and the search goes on
            trial.failure_reason = f"{type(error).__name__}: {error}"
        finally:
            model = None
            # A trial trained as the final model has no training after it to free memory for, and
            # freeing its traced graphs took up to 6 s on 2 CPU cores at a 45 s limit, after the limit.
            if not as_final:
                release_memory()
        trial.rss_mb = resident_memory_mb()
        trial.seconds = time.monotonic() - started
        trial.finished_at = _now()
        return trial
