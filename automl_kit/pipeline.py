"""What `ImageClassifier.fit` runs, in its one direction: adapt -> search -> final.

`adapt` turns the user's data into a `SearchData` and a label coder;
`search_and_train` opens (or resumes) the project on disk, runs the search
strategy, then the final stage (`tuner/final.py`), and returns a
`SearchResult` for the estimator to keep. The estimator itself only checks
its parameters and delegates here.
"""

import contextlib
import dataclasses
import hashlib
import os
import shutil
import tempfile
import time

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from automl_kit.blocks.search_space import search_space_for, search_space_settings
from automl_kit.data import InputSpec, LabelCoder, sources, to_array, validation_split_indices
from automl_kit.tuner import Project, SearchData, distribute, get_strategy, training
from automl_kit.tuner.final import train_final
from automl_kit.tuner.progress import Progress


DEFAULT_EPOCHS = 10
# With a time_limit and no epochs, the supernet, the trials (with early
# stopping) and the final model train until their share of the budget ends.
EPOCHS_UNTIL_DEADLINE = 1000


def fingerprint(*arrays):
    """Shapes and a hash of a sample of each array: enough to tell datasets apart cheaply."""
    digest = hashlib.sha256()
    shapes = []
    for array in arrays:
        if array is None:
            shapes.append(None)
            continue
        step = max(1, len(array) // 256)
        digest.update(np.ascontiguousarray(array[::step]).tobytes())
        shapes.append([int(len(array)), *map(int, array.shape[1:]), str(array.dtype)])
    return {"shapes": shapes, "sha256": digest.hexdigest()}


def sample_weights(sample_weight, labels, coder, class_weight):
    """Per-sample float32 weights folding in `class_weight`, or None when neither is given."""
    n_classes = len(coder.classes_)
    weights = None
    if sample_weight is not None:
        weights = np.asarray(sample_weight, dtype=np.float64)
        if weights.shape != (len(labels),):
            raise ValueError(
                f"sample_weight must have shape ({len(labels)},), one weight per sample; got {weights.shape}."
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("sample_weight must hold finite, non-negative numbers.")
        if not np.any(weights > 0):
            raise ValueError("sample_weight is zero for every sample; give some samples a positive weight.")
    if class_weight is not None:
        if class_weight == "balanced":
            per_class = compute_class_weight("balanced", classes=np.arange(n_classes), y=labels)
        else:
            unknown = [k for k in class_weight if k not in set(coder.classes_.tolist())]
            if unknown:
                raise ValueError(f"class_weight names labels not in y: {unknown[:5]}. Classes: {coder.classes_.tolist()[:10]}.")
            per_class = np.ones(n_classes)
            for label, weight in class_weight.items():
                per_class[coder.encode([label])[0]] = weight
        weights = per_class[labels] * (1.0 if weights is None else weights)
    if weights is None:
        return None
    if np.bincount(labels, weights=weights, minlength=n_classes).astype(bool).sum() < 2:
        raise ValueError(
            "After sample_weight and class_weight, only one class has a positive total weight; "
            "a classifier needs at least two classes with weight."
        )
    return weights.astype(np.float32)


def read_like(spec, x, y=None, *, labelled, name="x"):
    """`x` (any form `fit` takes) as an array shaped for the fitted `spec`, and its labels (`y`,
    or those its folder or dataset carries).

    Files, folders, datasets and images of other sizes are resized exactly as
    the exported model resizes them (float32, not rounded), so `predict`
    agrees with the exported model on them.
    """
    if spec.is_image and (sources.is_source(x) or (spec.any_size and _other_size(x, spec))):
        images = sources.read(x, y, labelled=labelled, image_size=spec.image_shape[:2],
                              channels=spec.image_shape[2], exact=True, name=name)
        x, y = images.pixels, images.labels
    return spec.conform(x, name=name), y


def _other_size(x, spec):
    shape = np.shape(x)
    return len(shape) in (3, 4) and tuple(shape[1:3]) != tuple(spec.image_shape[:2])


def adapt(x, y, sample_weight, validation_split, validation_data, *, input_shape, image_size, skip_unreadable,
          seed, class_weight, dtype_policy, strategy, jit_compile):
    """Checks and converts the user's data; returns (SearchData, LabelCoder, data fingerprint).

    Folders, files, datasets and images of several sizes (or any images, with
    `image_size`) are read by `data.sources` into one uint8 array at one size.
    """
    any_size = sources.is_source(x) or image_size is not None
    if any_size:
        images = sources.read(x if sources.is_source(x) else list(to_array(x, name="x")), y,
                              image_size=image_size, skip_unreadable=skip_unreadable, name="x")
        x, y = images.pixels, images.labels
    x = to_array(x, name="x")
    spec = InputSpec.infer(x, input_shape)
    if any_size:
        spec = dataclasses.replace(spec, any_size=True)
    x = x.reshape((len(x),) + spec.input_shape)
    coder = LabelCoder().fit(y, name="y")
    labels = coder.encode(y, name="y")
    if len(x) != len(labels):
        raise ValueError(f"x and y have different lengths: {len(x)} samples but {len(labels)} labels.")
    weights = sample_weights(sample_weight, labels, coder, class_weight)

    if validation_data is not None:
        if isinstance(validation_data, (str, os.PathLike)) or sources.is_dataset(validation_data):
            validation_data = (validation_data, None)  # a class folder or a dataset carries its labels
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a tuple (x_val, y_val), a class folder or a tf.data.Dataset.")
        x_train, y_train, w_train = x, labels, weights
        x_val, y_val = read_like(spec, *validation_data, labelled=True, name="validation_data[0]")
        y_val = coder.encode(y_val, name="validation_data[1]")
        w_val = None
        if len(x_val) != len(y_val):
            raise ValueError(f"validation_data has {len(x_val)} samples but {len(y_val)} labels.")
    else:
        train_idx, val_idx = validation_split_indices(labels, validation_split, seed)
        x_train, y_train, x_val, y_val = x[train_idx], labels[train_idx], x[val_idx], labels[val_idx]
        w_train, w_val = (None, None) if weights is None else (weights[train_idx], weights[val_idx])

    channels = x_train.reshape((-1, spec.network_shape[-1]))
    data = SearchData(
        x_train=x_train, y_train=y_train, w_train=w_train, x_val=x_val, y_val=y_val, w_val=w_val,
        input_spec=spec, num_classes=len(coder.classes_),
        mean=tuple(channels.mean(axis=0, dtype=np.float64)), variance=tuple(channels.var(axis=0, dtype=np.float64)),
        dtype_policy=dtype_policy, strategy=strategy, jit_compile=jit_compile,
    )
    prints = {
        "data": fingerprint(x, labels, weights),
        "validation": None if validation_data is None else fingerprint(x_val, y_val),
    }
    return data, coder, prints


def project_fingerprint(data_fingerprint, data, **settings):
    """What a project must match to resume: the data, and the `settings` that shape the search."""
    spec = data.input_spec
    settings.update(input_shape=list(spec.input_shape),
                    image_shape=None if spec.image_shape is None else list(spec.image_shape))
    # Only when set, so projects from before these settings existed still resume.
    if data.dtype_policy:
        settings["dtype_policy"] = data.dtype_policy
    if spec.any_size:
        settings["any_size"] = True
    return {**data_fingerprint, "settings": settings}


@dataclasses.dataclass
class SearchResult:
    """What a search and its final training leave for the estimator."""

    model: object
    trials: list
    best: object
    supernet_history: list
    search_history: list  # Project.search_history(): supernet epochs, controller updates, or progressive steps
    architectures_derived: int
    derive_seconds: float
    search_seconds: float
    final_seconds: float
    final: dict  # how the final model was made: architecture, scaling, recipe, parameters


def _worker_copy(project, stack):
    """A private copy of the chief's project for a worker that is not the chief.

    The worker reads where the search stands from it (so it resumes where
    the chief does, when `directory` is on a filesystem both see) and
    writes only to it; the copy is deleted after `fit`.
    """
    scratch = stack.enter_context(tempfile.TemporaryDirectory(prefix="automl_kit_worker_"))
    copy = Project(os.path.join(scratch, os.path.basename(project.path)))
    if os.path.isdir(project.path):
        shutil.copytree(project.path, copy.path, ignore=shutil.ignore_patterns(os.path.basename(project.lock_path)))
    return copy


def search_for_estimator(estimator, data, data_fingerprint, *, epochs, batch_size, validation_split, callbacks, budget,
                         verbose, strategy):
    """`search_and_train` with `estimator`'s parameters: the space for the adapted `data`, the size bound
    checked before any training, and the fingerprint a resumed project must match; returns a SearchResult.

    `epochs` None: `DEFAULT_EPOCHS`, or under a `budget` training until its deadline.
    Dense networks for tabular input are few and cheap: they are always searched from scratch (`"random"`).
    """
    until_deadline = epochs is None and budget is not None
    if epochs is None:
        epochs = DEFAULT_EPOCHS if budget is None else EPOCHS_UNTIL_DEADLINE
    tuner = estimator.tuner if data.input_spec.is_image else "random"
    settings = search_space_settings(estimator.search_space, estimator.tuner)  # "auto" resolved once, for both
    space = search_space_for(data.input_spec, settings)
    check_model_size(data, space, estimator.max_model_size)
    fingerprint = project_fingerprint(
        data_fingerprint, data, tuner=tuner, search_space=settings,
        seed=estimator.seed, objective=estimator.objective, max_model_size=estimator.max_model_size,
        epochs=int(epochs), batch_size=int(batch_size),
        validation_split=None if validation_split is None else float(validation_split))
    return search_and_train(
        data, space, fingerprint, tuner=tuner, directory=estimator.directory, project_name=estimator.project_name,
        overwrite=estimator.overwrite, seed=estimator.seed, objective=estimator.objective,
        max_trials=estimator.max_trials, max_model_size=estimator.max_model_size,
        max_consecutive_failures=estimator.max_consecutive_failed_trials, keep_weights=estimator.keep_weights,
        epochs=epochs, until_deadline=until_deadline, batch_size=batch_size, callbacks=callbacks, budget=budget,
        verbose=verbose, strategy=strategy)


def search_and_train(data, space, project_fingerprint, *, tuner, directory, project_name, overwrite, seed, objective,
                     max_trials, max_model_size, max_consecutive_failures, keep_weights, epochs, until_deadline,
                     batch_size, callbacks, budget, verbose, strategy):
    """Opens the project (resuming it), searches, trains the final model; returns a SearchResult.

    `directory=None` searches in a temporary folder removed afterwards.
    With several workers, the chief alone locks and writes the project;
    the others work on a private copy of it.
    """
    workers, chief = distribute.workers(strategy)
    with contextlib.ExitStack() as stack:
        folder = directory
        if folder is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="automl_kit_"))
        project = Project(os.path.join(folder, project_name))
        if chief:
            stack.enter_context(project.locked())
            project.start(project_fingerprint, overwrite=overwrite)
        if workers > 1:
            distribute.broadcast(strategy, 0)  # a barrier: the chief's project is ready to read
        if not chief:
            project = _worker_copy(project, stack)
            stack.enter_context(project.locked())
            project.start(project_fingerprint)
        progress = Progress(verbose if chief else 0, deadline=None if budget is None else budget.end,
                            log_dir=training.tensorboard_log_dir(callbacks) if chief else None,
                            epochs_until_deadline=until_deadline)
        try:
            return _search_then_final(project, data, space, tuner=tuner, seed=seed, objective=objective,
                                      max_trials=max_trials, max_model_size=max_model_size,
                                      max_consecutive_failures=max_consecutive_failures, keep_weights=keep_weights,
                                      epochs=epochs, until_deadline=until_deadline, batch_size=batch_size,
                                      callbacks=callbacks, budget=budget, progress=progress)
        finally:
            progress.close()


def _search_then_final(project, data, space, *, tuner, seed, objective, max_trials, max_model_size,
                       max_consecutive_failures, keep_weights, epochs, until_deadline, batch_size, callbacks, budget,
                       progress):
    state = project.state
    seed = seed if seed is not None else state.get("seed")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
        project.update_state(seed=seed)
    strategy = get_strategy(tuner)(
        project=project, search_space=space, objective=objective, seed=int(seed), max_model_size=max_model_size,
        max_consecutive_failures=max_consecutive_failures, keep_weights=int(keep_weights),
    )
    trials = project.load_trials()
    # A search asked for at most as many trials as before is complete, even
    # if a time budget or the shared-weight derivation ended it with fewer.
    if (state.get("status") == "completed" and state.get("max_trials", len(trials)) >= max_trials
            and os.path.exists(project.best_model_path)):
        best = strategy.best_trial(trials)
        model = keras.models.load_model(project.best_model_path)
        progress.line(f"The search in {project.path} is complete; using its stored final model "
                      f"(trial {best.trial_id}).")
    else:
        started = time.monotonic()
        trials = strategy.search(data, max_trials=max_trials, epochs=epochs, batch_size=batch_size,
                                 callbacks=callbacks, budget=budget, progress=progress)
        # A search resumed after it ended (the final training was cut short) keeps its seconds.
        search_seconds = state.get("search_seconds", 0.0) + time.monotonic() - started
        best = strategy.best_trial(trials)
        if best is None:
            reasons = "; ".join(f"{t.trial_id}: {t.failure_reason}" for t in trials) or "no trial ran"
            raise RuntimeError(f"No trial completed, so there is no model to train ({reasons}).")
        project.update_state(search_seconds=search_seconds)
        started = time.monotonic()
        model, final = train_final(best, epochs if until_deadline else strategy.final_epochs(best, epochs), data,
                                   batch_size, callbacks, budget, seed, project, progress,
                                   max_model_size=max_model_size, until_deadline=until_deadline,
                                   narrow=not strategy.sized_to_the_budget())
        model.save(project.best_model_path)
        project.update_state(status="completed", best_trial=best.trial_id, max_trials=int(max_trials),
                             final_seconds=time.monotonic() - started, final=final)
        progress.line(f"Final model: {model.count_params():,} parameters, "
                      f"{os.path.getsize(project.best_model_path) / 1e6:.2f} MB as .keras.")
    state = project.state
    shared = state.get("shared_weights", {})
    return SearchResult(model=model, trials=trials, best=best, supernet_history=shared.get("history", []),
                        search_history=project.search_history(),
                        architectures_derived=shared.get("derived", 0), derive_seconds=shared.get("derive_seconds", 0.0),
                        search_seconds=state.get("search_seconds"), final_seconds=state.get("final_seconds"),
                        final=state.get("final") or {})


def check_model_size(data, space, max_model_size):
    """Raises when even the smallest model of `space` for `data` is above `max_model_size` (None: no bound)."""
    if max_model_size is None:
        return
    smallest = data.count_params(space.smallest())
    if smallest > max_model_size:
        raise ValueError(
            f"max_model_size={max_model_size} is below the smallest model in the search space for samples "
            f"of shape {data.input_spec.input_shape} ({smallest:,} parameters). Raise max_model_size or pass None.")
