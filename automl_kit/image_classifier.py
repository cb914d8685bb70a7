"""`ImageClassifier`: the estimator facade over adapt -> search -> build -> train -> export."""

import time

import keras
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from automl_kit import export, params, pipeline, report
from automl_kit.tuner import distribute, training
from automl_kit.tuner.budget import TimeBudget

class ImageClassifier(ClassifierMixin, BaseEstimator):
    """Searches for a neural network that classifies images, as a scikit-learn classifier.

    Parameter names follow AutoKeras where it has them.

    Args:
        max_trials: number of architectures trained from scratch. With
            `"enas"` and `"random_ws"`, these are the best of the many
            architectures scored with shared weights, each trained for a
            quarter of `epochs` to confirm the ranking; with `"random"`,
            `"nas"` and `"progressive"`, they are the whole search.
        tuner: search strategy. `"enas"` (the default) trains a supernet
            whose weights all children share, and an LSTM controller that
            learns which children score well (Pham et al. 2018);
            `"random_ws"` samples children uniformly with the same supernet;
            `"random"` trains each sampled architecture from scratch;
            `"nas"` trains each child the controller samples from scratch
            and rewards the controller with its score (Zoph and Le 2017);
            `"progressive"` grows micro cells one node at a time and trains
            only the expansions a surrogate ranks best (PNAS, Liu et al.
            2018). Tabular (non-image) input always uses `"random"` over
            dense networks.
        search_space: `"auto"` (the default: `"macro"`, or `"micro"` for the
            `"progressive"` tuner), `"macro"` (ENAS's layers, each one op plus
            skip connections), `"micro"` (ENAS's cells, each node summing two
            ops on two earlier tensors), or a dict naming one with its settings,
            e.g. `{"name": "micro", "num_nodes": 5, "filters": 24,
            "cells_per_stage": 2}`.
        directory: where the search state lives. `None` searches in a
            temporary folder that `fit` removes, so clones and folds never
            share a search; with a folder, a later `fit` with the same data
            and settings resumes the search.
        project_name: subfolder of `directory` for this search.
        overwrite: start the project again instead of resuming it.
        seed: makes the split, the proposals and the initial weights reproducible.
        objective: `"val_accuracy"` (maximised) or `"val_loss"` (minimised).
        max_model_size: upper bound on the parameters of any candidate model.
        time_limit: seconds for the whole `fit`, search and final training
            together. With `"enas"` and `"random_ws"`, the supernet trains
            for the first 25%, the derivation ends by 28% and the
            confirmation trials by 40%; the final training has the rest. When
            less than a minute is left for confirmation, the best candidate
            instead trains until the limit and is the final model, as two
            models could not each pay their build and trace. With
            `"random"`, `"nas"` and `"progressive"`, each trial trains until
            it stops improving or the search's share ends (pass `epochs`
            for shorter trials, and more of them), and the search stops
            early enough to leave the final training the time the best
            trial suggests it needs, between a quarter and a half of the
            limit. The final training stops at the limit; when a retraining
            from scratch would not fit, it goes on from the best trial's
            weights instead.
        epochs: most epochs of the supernet, of each trial (a quarter of it
            for the confirmation trials of `"enas"` and `"random_ws"`) and of
            the final model (default 10, or as many as `time_limit` allows
            when it is set); `fit(epochs=...)` overrides it.
        image_size: `(height, width)` (or one int) the network sees. Images
            read from files, folders or a dataset, or passed in several sizes,
            are resized to it; without it, to their median size with the
            longer side capped at 64 pixels. Either way the exported model
            takes images of any size and resizes them itself.
        skip_unreadable: leave image files that cannot be decoded out of
            `fit` with a warning listing them, instead of stopping with an
            error that names them.
        input_shape: `(H, W)` or `(H, W, C)` of flattened images passed as 2-D
            `(N, H*W*C)` arrays. Without it, 2-D input of a square width of
            at least 64 is read as square grayscale images (784 -> 28x28) and
            any other 2-D input as tabular features, searched with dense networks.
        class_weight: `{label: weight}` or `"balanced"`; multiplies `sample_weight`.
        max_consecutive_failed_trials: the search stops with an error listing
            the reasons once this many trials in a row failed (a diverging
            loss, running out of memory, an error while building).
        keep_weights: how many of the best trials keep their trained weights
            on disk (at least 1: a final training short of time goes on from
            the best trial's weights); the others' are deleted, so disk use
            stays bounded.
        mixed_precision: `False` (float32), `True`, `"mixed_float16"` or
            `"mixed_bfloat16"`. Mixed precision computes in 16 bits with
            float32 weights and a float32 output layer; `True` means float16
            where a GPU is visible and bfloat16 otherwise (CPUs have no fast
            float16 kernels). Under float16 the final model and the trials
            scale their loss; the ENAS supernet computes in bfloat16 only.
        distribution_strategy: a `tf.distribute.Strategy` (e.g.
            `tf.distribute.MirroredStrategy()` for the GPUs of one machine,
            `tf.distribute.MultiWorkerMirroredStrategy()` for several
            machines configured by `TF_CONFIG`), or None for TensorFlow's
            default. The supernet, its reward evaluation, the trials and the
            final training run on it; `batch_size` is the global batch,
            split across the replicas. With several workers, every worker
            runs the same `fit` and only the chief writes the project and
            exports; a `directory` they all see lets them resume, and
            `time_limit` and `fit`'s `callbacks` are refused (each worker's
            clock would stop it at another step, and Keras's `Model.fit`,
            which runs callbacks, does not run on several workers).
        jit_compile: XLA for the trials and the final model, as Keras's
            `Model.compile` takes it: `"auto"` (the default: on a GPU,
            without a distribution strategy), True or False. The supernet
            is never compiled with XLA: on 2 CPU cores its compilation had
            not finished after 4 minutes.

    Attributes (after `fit`):
        model_: the final Keras model (probabilities out).
        classes_: the labels, in the order of `predict_proba`'s columns.
        trials_: the `Trial` records: architectures trained from scratch.
        best_trial_, best_architecture_, best_score_: the trial the final
            model was built from.
        supernet_history_: one dict per supernet epoch (loss, and for ENAS
            the mean reward and policy entropy); empty for the other tuners.
        search_history_: the search's own record: the supernet's epochs
            as above, one dict per child the `"nas"` controller learned
            from (reward, entropy, baseline), or one per `"progressive"`
            step (nodes, candidates with their predicted scores, the
            surrogate's fit and its Kendall tau on the children it chose).
        architectures_derived_, derive_seconds_: how many architectures the
            derivation scored with shared weights, and how long it took.
        search_seconds_, final_training_seconds_: where the time of the fit
            that produced the model went.
        fit_seconds_: wall time of the last `fit`.
        final_: how the final model was made (`tuner/final.py`): its
            architecture (the best one, scaled), the scaling chosen and
            the candidates estimated, the training recipe, its parameters.
        search_results_: the trials as a pandas DataFrame (see `summary()`,
            `plot_search()` and `plot_architecture()` for the rest of the report).

    Example (random search, one trial of one epoch: a quick run; the default
    `tuner="enas"` first trains a supernet):

    >>> from sklearn.datasets import load_digits
    >>> digits = load_digits()
    >>> clf = ImageClassifier(max_trials=1, tuner="random", seed=0, epochs=1)
    >>> clf = clf.fit(digits.images, digits.target, verbose=0)
    >>> clf.predict(digits.images[:3]).shape
    (3,)
    """

    def __init__(self, max_trials=10, tuner="enas", search_space="auto", directory=None,
                 project_name="image_classifier", overwrite=False, seed=None, objective="val_accuracy",
                 max_model_size=None, time_limit=None, epochs=None, image_size=None, skip_unreadable=False,
                 input_shape=None, class_weight=None,
                 max_consecutive_failed_trials=3, keep_weights=2, mixed_precision=False,
                 distribution_strategy=None, jit_compile="auto"):
        self.max_trials = max_trials
        self.tuner = tuner
        self.search_space = search_space
        self.directory = directory
        self.project_name = project_name
        self.overwrite = overwrite
        self.seed = seed
        self.objective = objective
        self.max_model_size = max_model_size
        self.time_limit = time_limit
        self.epochs = epochs
        self.image_size = image_size
        self.skip_unreadable = skip_unreadable
        self.input_shape = input_shape
        self.class_weight = class_weight
        self.max_consecutive_failed_trials = max_consecutive_failed_trials
        self.keep_weights = keep_weights
        self.mixed_precision = mixed_precision
        self.distribution_strategy = distribution_strategy
        self.jit_compile = jit_compile

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # (N, H, W) and (N, H, W, C) images
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        tags.target_tags.required = True
        tags.classifier_tags.multi_label = False
        tags.non_deterministic = self.seed is None
        return tags

    # ----------------------------------------------------------------- fit --
    def fit(self, x, y=None, epochs=None, batch_size=32, validation_split=0.2, validation_data=None,
            callbacks=None, verbose=1, sample_weight=None):
        """Searches for the best architecture, then trains it on all the data.

        Args:
            x: images, (N, H, W) or (N, H, W, C), uint8 or float; a folder
                with one subfolder of images per class (y omitted: the labels
                are the subfolder names); a list of image files, or of arrays
                or PIL images of any sizes; a `tf.data.Dataset` of (image,
                label) pairs or batches (see `image_size`). Also 2-D (N, F)
                arrays or DataFrames of flattened images (see `input_shape`)
                or tabular features.
            y: class labels (ints, strings, bools, pandas Series or
                Categorical), or one-hot rows (N, K); None for a folder or
                a dataset.
            epochs: most epochs per trial; overrides the `epochs` parameter.
                Early stopping ends most trials sooner, and the final model
                trains for the best trial's best epoch count.
            batch_size: samples per training step (the global batch, split
                across the replicas of `distribution_strategy`). A trial or
                the final training that runs out of device memory starts
                again at half the batch size.
            validation_split: share of (x, y) held out, stratified and
                shuffled with `seed`, to score trials. Ignored with
                `validation_data`.
            validation_data: `(x_val, y_val)`, a class folder or a dataset,
                to score trials instead.
            callbacks: Keras callbacks for every trial and the final training.
                A `keras.callbacks.TensorBoard(log_dir)` logs each trial
                under `log_dir/trial_<id>`, the final training under
                `log_dir/final`, and the search's scalars (supernet loss,
                controller reward and entropy, trial scores, best score)
                under `log_dir/search`.
            verbose: 0 silent; 1 a progress bar per phase (a widget in
                Jupyter with ipywidgets) and one line per finished trial;
                2 also Keras's epoch lines.
            sample_weight: one non-negative weight per sample.

        Returns:
            self.
        """
        params.check_params(self)
        training.grow_gpu_memory()  # before anything places a tensor on a GPU
        callbacks = list(callbacks or [])
        strategy = params.strategy(self.distribution_strategy)
        epochs = epochs if epochs is not None else self.epochs
        params.check_fit_arguments(epochs, batch_size, callbacks, strategy, self.time_limit)
        _, chief = distribute.workers(strategy)
        budget = None if self.time_limit is None else TimeBudget(self.time_limit)
        started = time.monotonic()

        # Feature names only; y=None (a folder, a dataset) is the label coder's to check.
        validate_data(self, X=x, y="no_validation" if y is None else y, reset=True, skip_check_array=True,
                      ensure_2d=False)
        data, coder, data_fingerprint = pipeline.adapt(
            x, y, sample_weight, validation_split, validation_data, input_shape=self.input_shape,
            image_size=self.image_size, skip_unreadable=self.skip_unreadable, seed=self.seed,
            class_weight=self.class_weight, dtype_policy=params.dtype_policy(self.mixed_precision), strategy=strategy,
            jit_compile=self.jit_compile)
        spec = data.input_spec
        result = pipeline.search_for_estimator(
            self, data, data_fingerprint, epochs=epochs, batch_size=batch_size,
            validation_split=None if validation_data is not None else validation_split, callbacks=callbacks,
            budget=budget, verbose=verbose, strategy=strategy)
        self.model_ = result.model
        self.trials_ = result.trials
        self.best_trial_ = result.best
        self.best_architecture_ = result.best.architecture
        self.best_score_ = result.best.score
        self.final_ = result.final
        self.supernet_history_ = result.supernet_history
        self.search_history_ = result.search_history
        self.architectures_derived_ = result.architectures_derived
        self.derive_seconds_ = result.derive_seconds
        self.search_seconds_ = result.search_seconds
        self.final_training_seconds_ = result.final_seconds

        self._writes_files = chief
        self.label_coder_ = coder
        self.classes_ = coder.classes_
        self.input_spec_ = spec
        self.n_features_in_ = spec.n_features
        self.fit_seconds_ = time.monotonic() - started
        params.warn_if_over_time(self.fit_seconds_, self.time_limit)
        return self

    # -------------------------------------------------------------- report --
    @property
    def search_results_(self):
        """A DataFrame with one row per trial, in order: id, status, architecture,
        params, score (the objective, from scratch), shared_score (with shared
        weights, for `"enas"` and `"random_ws"`), epochs, seconds and failure_reason.
        Its `attrs["final"]` says how the final model was made (see `final_`), and
        `attrs["ranking"]` how well the shared-weight scores ranked the trials (Kendall
        tau and Spearman, see `report.ranking`; None with fewer than 3 such trials)."""
        check_is_fitted(self, "trials_")
        frame = report.results_frame(self.trials_)
        frame.attrs["final"] = dict(getattr(self, "final_", {}))
        frame.attrs["ranking"] = report.ranking(self.trials_)
        return frame

    def summary(self):
        """Prints the best architecture, its score and size, the trials, and where the time went."""
        check_is_fitted(self, "trials_")
        print(report.summary_text(self.best_trial_, self.objective, self.model_.count_params(),
                                  self.search_seconds_, self.final_training_seconds_, self.trials_,
                                  self.search_history_, getattr(self, "final_", {})))

    def plot_search(self):
        """Returns a matplotlib Figure: each trial's score and the best so far; with a
        supernet, also the controller's mean reward and policy entropy (ENAS) or
        the shared-weight loss (random_ws) per epoch; with `"nas"`, the
        controller's reward and entropy per child."""
        check_is_fitted(self, "trials_")
        return report.plot_search(self.trials_, self.objective, self.search_history_)

    def plot_architecture(self):
        """Returns a matplotlib Figure that draws the best architecture as a graph
        (its normal and reduction cells, or its stages of layers and skips)."""
        check_is_fitted(self, "trials_")
        return report.plot_architecture(self.best_architecture_)

    # ------------------------------------------------------------- predict --
    def _read(self, x, y=None, labelled=False):
        """`x` as the network's input array, and its labels (`y`, or its folder's or dataset's)."""
        check_is_fitted(self, "model_")
        validate_data(self, X=x, reset=False, skip_check_array=True, ensure_2d=False)  # feature names
        return pipeline.read_like(self.input_spec_, x, y, labelled=labelled)

    def predict_proba(self, x, batch_size=256):
        """Returns (N, K) class probabilities; column k is class `classes_[k]`.

        `x` takes every form `fit` does; a folder stands for all the images
        in it, in the order of their sorted paths."""
        x = self._read(x)[0].astype(np.float32)
        # Direct calls, not model.predict: inputs of every new length would retrace predict's graph.
        return np.concatenate([
            keras.ops.convert_to_numpy(self.model_(x[i:i + batch_size], training=False))
            for i in range(0, len(x), batch_size)
        ])

    def predict(self, x, batch_size=256):
        """Returns predicted labels, in the type and form of the `y` given to fit."""
        proba = self.predict_proba(x, batch_size)
        return self.label_coder_.decode(np.argmax(proba, axis=1))

    def evaluate(self, x, y=None, batch_size=256):
        """Returns {"loss": cross-entropy, "accuracy": ...} of the final model on (x, y), or on
        a class folder or dataset `x` with y omitted."""
        x, y = self._read(x, y, labelled=True)
        proba = self.predict_proba(x, batch_size)
        labels = self.label_coder_.encode(y, name="y")
        if len(proba) != len(labels):
            raise ValueError(f"x and y have different lengths: {len(proba)} samples but {len(labels)} labels.")
        picked = np.clip(proba[np.arange(len(labels)), labels], 1e-7, 1.0)
        return {"loss": float(-np.mean(np.log(picked))), "accuracy": float(np.mean(proba.argmax(axis=1) == labels))}

    def score(self, x, y=None, sample_weight=None):
        """Mean accuracy on (x, y), or on a class folder or dataset `x` with y omitted."""
        x, y = self._read(x, y, labelled=True)
        return super().score(x, self.label_coder_.decode(self.label_coder_.encode(y)), sample_weight)

    def export_model(self, path=None, format="keras"):
        """Returns the deployable final model, and writes it to `path` if given.

        The model is the one trained on training + validation data, built
        from standard Keras layers only. It takes raw samples as `fit` did and
        returns `{"probabilities": (N, K), "label": (N,)}`: the labels are
        the user's own (strings come back as bytes). Saved as `.keras` it loads
        with plain `keras.models.load_model(path)`, without automl_kit or
        `custom_objects`, in safe mode. After a `fit` on several workers,
        only the chief writes `path`.

        Args:
            path: where to write the model; `None` writes nothing.
            format: `"keras"` (a `.keras` file), `"saved_model"` (a TF
                SavedModel folder with a `serve` signature), `"tflite"` (a
                TFLite flatbuffer), or `"onnx"` (probabilities only; needs
                `pip install 'automl_kit[onnx]'`).
        """
        check_is_fitted(self, "model_")
        if format not in export.FORMATS:
            raise ValueError(f"format must be one of {export.FORMATS}; got {format!r}.")
        if path is None and format != "keras":
            raise ValueError(f"Exporting as {format!r} needs a path to write to.")
        model = export.with_labels(self.model_, self.classes_, one_hot=self.label_coder_.one_hot_,
                                   any_size=self.input_spec_.any_size)
        if path is not None and getattr(self, "_writes_files", True):  # under several workers, the chief alone
            export.save(model, path, format)
        return model

    # -------------------------------------------------------------- pickle --
    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ returns the live __dict__
        # A strategy holds devices and a cluster of this process only; an unpickled
        # classifier uses TensorFlow's default strategy until given another.
        state["distribution_strategy"] = None
        if "model_" in state:
            # The model travels as the bytes of its .keras file: no Keras object is pickled.
            state["model_"] = export.to_bytes(state["model_"])
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), bytes):
            state = dict(state, model_=export.from_bytes(state["model_"]))
        super().__setstate__(state)
