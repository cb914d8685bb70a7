"""The checks on `ImageClassifier`'s parameters and `fit`'s arguments, raised before any data is read.

Each error names the parameter, what it got, and what it takes, as
scikit-learn's estimators do; `fit` calls these first, so a bad setting
never costs a search.
"""

import importlib.util
import warnings

import numpy as np

from automl_kit.blocks.search_space import search_space_settings
from automl_kit.data import sources
from automl_kit.tuner import distribute, get_strategy, training

OBJECTIVES = ("val_accuracy", "val_loss")
MIXED_PRECISION_SETTINGS = (False, True, "mixed_float16", "mixed_bfloat16")
JIT_COMPILE_SETTINGS = ("auto", True, False)


def is_positive_int(value):
    """Whether `value` is an int (Python's or numpy's) of at least 1."""
    return isinstance(value, (int, np.integer)) and value >= 1


def check_params(estimator):
    """Raises on the first of `estimator`'s parameters that `fit` cannot use."""
    get_strategy(estimator.tuner)
    if estimator.distribution_strategy is not None:
        import tensorflow as tf

        if not isinstance(estimator.distribution_strategy, tf.distribute.Strategy):
            raise TypeError("distribution_strategy must be a tf.distribute.Strategy, such as "
                            f"tf.distribute.MirroredStrategy(), or None; got {estimator.distribution_strategy!r}.")
    if not (estimator.jit_compile is True or estimator.jit_compile is False or estimator.jit_compile == "auto"):
        raise ValueError(f"jit_compile must be one of {JIT_COMPILE_SETTINGS}; got {estimator.jit_compile!r}.")
    if estimator.mixed_precision not in MIXED_PRECISION_SETTINGS:
        raise ValueError(f"mixed_precision must be one of {MIXED_PRECISION_SETTINGS}; "
                         f"got {estimator.mixed_precision!r}.")
    space = search_space_settings(estimator.search_space, estimator.tuner)
    if estimator.tuner == "progressive" and space["name"] != "micro":
        raise ValueError(f"tuner='progressive' grows the cells of the micro search space one node at a time; got "
                         f"search_space={estimator.search_space!r}. Pass search_space='micro', or another tuner.")
    if not is_positive_int(estimator.max_trials):
        raise ValueError(f"max_trials must be a positive int; got {estimator.max_trials!r}.")
    if estimator.objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}; got {estimator.objective!r}.")
    if estimator.seed is not None and not isinstance(estimator.seed, (int, np.integer)):
        raise ValueError(f"seed must be an int or None; got {estimator.seed!r}.")
    if estimator.max_model_size is not None and not is_positive_int(estimator.max_model_size):
        raise ValueError(f"max_model_size must be a positive int or None; got {estimator.max_model_size!r}.")
    limit = estimator.time_limit
    if limit is not None and not (isinstance(limit, (int, float, np.number)) and limit > 0):
        raise ValueError(f"time_limit must be a positive number of seconds or None; got {limit!r}.")
    if not is_positive_int(estimator.max_consecutive_failed_trials):
        raise ValueError("max_consecutive_failed_trials must be a positive int; "
                         f"got {estimator.max_consecutive_failed_trials!r}.")
    if not is_positive_int(estimator.keep_weights) or isinstance(estimator.keep_weights, bool):
        raise ValueError(f"keep_weights must be a positive int (the best trial's weights are always kept); "
                         f"got {estimator.keep_weights!r}.")
    if estimator.image_size is not None:
        sources.check_image_size(estimator.image_size)
    if not isinstance(estimator.skip_unreadable, (bool, np.bool_)):
        raise ValueError(f"skip_unreadable must be True or False; got {estimator.skip_unreadable!r}.")
    weights = estimator.class_weight
    if weights is not None and weights != "balanced" and not isinstance(weights, dict):
        raise ValueError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}; got {weights!r}.")


def strategy(distribution_strategy):
    """The `tf.distribute.Strategy` to run on: the one given, or TensorFlow's default."""
    import tensorflow as tf

    return distribution_strategy or tf.distribute.get_strategy()


def dtype_policy(mixed_precision):
    """The Keras dtype policy `mixed_precision` asks for, or None for float32."""
    if mixed_precision is True:
        import tensorflow as tf

        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
    return mixed_precision or None


def check_fit_arguments(epochs, batch_size, callbacks, strategy, time_limit):
    """Raises on `fit` arguments that cannot run together under `strategy` (a tf.distribute.Strategy)."""
    workers, _ = distribute.workers(strategy)
    if epochs is not None and not is_positive_int(epochs):
        raise ValueError(f"epochs must be a positive int or None; got {epochs!r}.")
    if not is_positive_int(batch_size):
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    if batch_size < strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size={batch_size} is smaller than the {strategy.num_replicas_in_sync} replicas of "
                         "distribution_strategy: every replica needs a share of each batch. Raise batch_size.")
    if workers > 1 and time_limit is not None:
        raise ValueError(
            f"time_limit is not supported with {workers} workers: each worker's own clock would end training "
            "at a different step, and the workers must take the same steps. Pass time_limit=None and bound "
            "the search with max_trials and epochs.")
    if workers > 1 and callbacks:
        raise ValueError(f"callbacks are not supported with {workers} workers: Keras's Model.fit, which calls them, "
                         "does not run under MultiWorkerMirroredStrategy, so the search trains in a loop of its "
                         "own there. Pass callbacks=None.")
    if training.tensorboard_log_dir(callbacks) is not None and importlib.util.find_spec("tensorboard") is None:
        raise ImportError("A keras.callbacks.TensorBoard callback needs the tensorboard package: "
                          "pip install tensorboard (or 'automl_kit[tensorboard]').")


def warn_if_over_time(fit_seconds, time_limit):
    """Warns when a `fit` took more than 10% over its `time_limit`, and says why it can."""
    if time_limit is not None and fit_seconds > 1.1 * time_limit:
        warnings.warn(
            f"fit took {fit_seconds:.0f} s, more than 10% over time_limit={time_limit:g} s: each model's "
            "first step (building and tracing it, longest for a shared-weight supernet) cannot be cut short, "
            "and these fixed costs did not fit in the limit. Raise time_limit, or use tuner='random' "
            "for a budget this small.", UserWarning, stacklevel=3)
