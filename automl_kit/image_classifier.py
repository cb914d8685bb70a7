"""`ImageClassifier`: the estimator facade over adapt -> search -> build -> train -> export."""

import hashlib
import os
import tempfile
import time

import keras
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from automl_kit.blocks.search_space import MacroSearchSpace
from automl_kit.data import LabelCoder, match_image_shape, to_image_array, validation_split_indices
from automl_kit.tuner import Project, SearchData, get_strategy
from automl_kit.tuner import training
from automl_kit.tuner.budget import TimeBudget

DEFAULT_EPOCHS = 10
OBJECTIVES = ("val_accuracy", "val_loss")


def _data_fingerprint(x, y):
    digest = hashlib.sha256()
    step = max(1, len(x) // 256)
    digest.update(np.ascontiguousarray(x[::step]).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return {"n": int(len(x)), "shape": list(x.shape[1:]), "dtype": str(x.dtype), "sha256": digest.hexdigest()}


class ImageClassifier(ClassifierMixin, BaseEstimator):
    """Searches for a convolutional network for image classification.

    Parameter names follow AutoKeras where it has them.

    Args:
        max_trials: number of architectures to try.
        tuner: search strategy; `"random"` trains each trial from scratch.
        directory: where the search state lives. `None` searches in a
            temporary folder that `fit` removes; with a folder, a later `fit`
            with the same data and settings resumes the search.
        project_name: subfolder of `directory` for this search.
        overwrite: start the project again instead of resuming it.
        seed: makes the search reproducible.
        objective: `"val_accuracy"` (maximised) or `"val_loss"` (minimised).
        max_model_size: upper bound on the parameters of any candidate model.
        time_limit: seconds for the whole `fit`, search and final training
            together. The search stops early enough to leave the final
            training the time the best trial suggests it needs, between a
            quarter and a half of the limit; the final training stops at the
            limit.

    Example:

    >>> from sklearn.datasets import load_digits
    >>> digits = load_digits()
    >>> clf = ImageClassifier(max_trials=1, seed=0)
    >>> clf = clf.fit(digits.images, digits.target, epochs=1, verbose=0)
    >>> clf.predict(digits.images[:3]).shape
    (3,)
    """

    def __init__(self, max_trials=10, tuner="random", directory=None, project_name="image_classifier",
                 overwrite=False, seed=None, objective="val_accuracy", max_model_size=None, time_limit=None):
        self.max_trials = max_trials
        self.tuner = tuner
        self.directory = directory
        self.project_name = project_name
        self.overwrite = overwrite
        self.seed = seed
        self.objective = objective
        self.max_model_size = max_model_size
        self.time_limit = time_limit

    # ----------------------------------------------------------------- fit --
    def fit(self, x, y, epochs=None, batch_size=32, validation_split=0.2, validation_data=None,
            callbacks=None, verbose=1):
        """Searches for the best architecture, then trains it on all the data.

        Args:
            x: images, (N, H, W) or (N, H, W, C), uint8 or float, or a list of
                equally shaped images.
            y: class labels (ints, strings, bools, pandas Series or
                Categorical), or one-hot rows (N, K).
            epochs: most epochs per trial (early stopping ends most sooner);
                default 10. The final model trains for the best trial's best
                epoch count.
            validation_split: share of (x, y) held out, stratified and
                shuffled with `seed`, to score trials. Ignored with
                `validation_data`.
            validation_data: `(x_val, y_val)` to score trials instead.
            callbacks: Keras callbacks for every trial and the final training.
            verbose: 0 silent, 1 one line per trial, 2 also Keras's epoch lines.

        Returns:
            self.
        """
        started = time.monotonic()
        self._check_params()
        budget = None if self.time_limit is None else TimeBudget(self.time_limit)
        epochs = DEFAULT_EPOCHS if epochs is None else epochs
        if not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"epochs must be a positive int or None; got {epochs!r}.")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
        callbacks = list(callbacks or [])

        x = to_image_array(x, name="x")
        coder = LabelCoder().fit(y, name="y")
        labels = coder.encode(y, name="y")
        if len(x) != len(labels):
            raise ValueError(f"x and y have different lengths: {len(x)} images but {len(labels)} labels.")
        image_shape = x.shape[1:]
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (x_val, y_val).")
            x_train, y_train = x, labels
            x_val = match_image_shape(validation_data[0], image_shape, name="validation_data[0]")
            y_val = coder.encode(validation_data[1], name="validation_data[1]")
            if len(x_val) != len(y_val):
                raise ValueError(
                    f"validation_data has {len(x_val)} images but {len(y_val)} labels."
                )
        else:
            train_idx, val_idx = validation_split_indices(labels, validation_split, self.seed)
            x_train, y_train, x_val, y_val = x[train_idx], labels[train_idx], x[val_idx], labels[val_idx]

        channels = x_train.reshape(-1, 1 if x.ndim == 3 else x.shape[-1]).astype(np.float64)
        data = SearchData(
            x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, image_shape=image_shape,
            num_classes=len(coder.classes_), mean=tuple(channels.mean(axis=0)), variance=tuple(channels.var(axis=0)),
        )
        del channels
        space = MacroSearchSpace(image_shape)
        if self.max_model_size is not None:
            smallest = data.build(space.smallest()).count_params()
            keras.backend.clear_session()
            if smallest > self.max_model_size:
                raise ValueError(
                    f"max_model_size={self.max_model_size} is below the smallest model in the "
                    f"search space for {image_shape} images ({smallest:,} parameters). "
                    "Raise max_model_size or pass None."
                )

        fingerprint = {
            "data": _data_fingerprint(x, labels),
            "validation": None if validation_data is None else _data_fingerprint(x_val, y_val),
            "settings": {
                "tuner": self.tuner, "seed": self.seed, "objective": self.objective,
                "max_model_size": self.max_model_size, "epochs": int(epochs), "batch_size": int(batch_size),
                "validation_split": None if validation_data is not None else float(validation_split),
            },
        }
        if self.directory is None:
            with tempfile.TemporaryDirectory(prefix="automl_kit_") as folder:
                self._search_and_train(Project.open(os.path.join(folder, self.project_name), fingerprint),
                                       data, space, epochs, batch_size, callbacks, budget, verbose)
        else:
            project = Project.open(os.path.join(self.directory, self.project_name), fingerprint, self.overwrite)
            self._search_and_train(project, data, space, epochs, batch_size, callbacks, budget, verbose)

        self.label_coder_ = coder
        self.classes_ = coder.classes_
        self.image_shape_ = tuple(int(d) for d in image_shape)
        self.n_features_in_ = int(np.prod(image_shape))
        self.fit_seconds_ = time.monotonic() - started
        return self

    def _check_params(self):
        get_strategy(self.tuner)
        if not isinstance(self.max_trials, (int, np.integer)) or self.max_trials < 1:
            raise ValueError(f"max_trials must be a positive int; got {self.max_trials!r}.")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}; got {self.objective!r}.")
        if self.seed is not None and not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"seed must be an int or None; got {self.seed!r}.")
        if self.max_model_size is not None and (
            not isinstance(self.max_model_size, (int, np.integer)) or self.max_model_size < 1
        ):
            raise ValueError(f"max_model_size must be a positive int or None; got {self.max_model_size!r}.")
        if self.time_limit is not None and not (
            isinstance(self.time_limit, (int, float, np.number)) and self.time_limit > 0
        ):
            raise ValueError(f"time_limit must be a positive number of seconds or None; got {self.time_limit!r}.")

    def _search_and_train(self, project, data, space, epochs, batch_size, callbacks, budget, verbose):
        state = project.state
        seed = self.seed if self.seed is not None else state.get("seed")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31))
            project.update_state(seed=seed)
        strategy = get_strategy(self.tuner)(
            project=project, search_space=space, objective=self.objective, seed=int(seed),
            max_model_size=self.max_model_size,
        )
        trials = project.load_trials()
        if (state.get("status") == "completed" and len(trials) >= self.max_trials
                and os.path.exists(project.best_model_path)):
            best = strategy.best_trial(trials)
            model = keras.models.load_model(project.best_model_path)
            training.compile_for_classification(model)
            if verbose:
                print(f"The search in {project.path} is complete; using its stored final model "
                      f"(trial {best.trial_id}).")
        else:
            trials = strategy.search(
                data, max_trials=self.max_trials, epochs=epochs, batch_size=batch_size,
                callbacks=callbacks, budget=budget, verbose=verbose,
            )
            best = strategy.best_trial(trials)
            if best is None:
                reasons = "; ".join(f"{t.trial_id}: {t.failure_reason}" for t in trials) or "no trial ran"
                raise RuntimeError(f"No trial completed, so there is no model to train ({reasons}).")
            model = self._train_final(best, data, batch_size, callbacks, budget, seed, verbose)
            model.save(project.best_model_path)
            project.update_state(status="completed", best_trial=best.trial_id)
        self.model_ = model
        self.trials_ = trials
        self.best_trial_ = best
        self.best_architecture_ = best.architecture
        self.best_score_ = best.score

    def _train_final(self, best, data, batch_size, callbacks, budget, seed, verbose):
        epochs, deadline = best.best_epoch, None
        if budget is not None:
            # Fewer whole epochs that fit beat more epochs cut off in the middle.
            seconds_per_epoch = budget.final_training_estimate(best, data.growth) / best.best_epoch
            epochs = max(1, min(epochs, int(budget.remaining() // max(seconds_per_epoch, 1e-9))))
            deadline = budget.end
        if verbose:
            print(f"Training the best architecture (trial {best.trial_id}, {self.objective}="
                  f"{best.score:.4f}) on training + validation data for {epochs} epoch(s).",
                  flush=True)
        keras.utils.set_random_seed(int(seed))
        model = data.build(best.architecture)
        training.train(
            model, np.concatenate([data.x_train, data.x_val]), np.concatenate([data.y_train, data.y_val]),
            epochs=epochs, batch_size=batch_size, callbacks=callbacks, deadline=deadline,
            verbose=2 if verbose >= 2 else 0,
        )
        return model

    # ------------------------------------------------------------- predict --
    def predict_proba(self, x, batch_size=256):
        """Returns (N, K) class probabilities; column k is class `classes_[k]`."""
        check_is_fitted(self, "model_")
        x = match_image_shape(x, self.image_shape_, name="x")
        return np.asarray(self.model_.predict(x.astype(np.float32), batch_size=batch_size, verbose=0))

    def predict(self, x, batch_size=256):
        """Returns predicted labels, in the type and form of the `y` given to fit."""
        proba = self.predict_proba(x, batch_size)
        return self.label_coder_.decode(np.argmax(proba, axis=1))

    def evaluate(self, x, y, batch_size=256):
        """Returns {"loss": ..., "accuracy": ...} of the final model on (x, y)."""
        check_is_fitted(self, "model_")
        x = match_image_shape(x, self.image_shape_, name="x")
        labels = self.label_coder_.encode(y, name="y")
        if len(x) != len(labels):
            raise ValueError(f"x and y have different lengths: {len(x)} images but {len(labels)} labels.")
        return self.model_.evaluate(x.astype(np.float32), labels, batch_size=batch_size, verbose=0,
                                    return_dict=True)

    def export_model(self):
        """Returns the final model (trained on training + validation data) as a plain `keras.Model`.

        It takes raw images as `fit` did and outputs probabilities over
        `classes_`. Saved with `.save("best.keras")`, it loads with plain
        `keras.models.load_model`, without automl_kit or `custom_objects`.
        """
        check_is_fitted(self, "model_")
        return self.model_
