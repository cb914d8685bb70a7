"""One system, one dataset, one wall-clock budget: the worker behind `benchmarks.run`.

    python -m benchmarks.systems --system baseline --data split.npz --budget-seconds 60 --out result.json

The runner starts one worker process per (system, dataset), so each system
gets a fresh process, its own peak resident memory, and, for AutoKeras, its
own virtual environment. This module therefore imports nothing at the top
but the standard library: the AutoKeras environment has neither automl_kit
nor scikit-learn. The data arrive as one `.npz` holding `x_train`,
`y_train`, `x_test`, `y_test` (integer labels), written by the runner.

Every system gets the same budget, the whole `fit` wall time:

- `enas`, `random_ws`, `random`, `nas`, `progressive`: `automl_kit.ImageClassifier(tuner=..., time_limit=budget)`,
  everything else default.
- `keras_tuner`: KerasTuner's `RandomSearch` over the hand-written CNN space of
  `cnn_hypermodel`, 20 epochs per trial with early stopping (patience 3),
  searching until the budget ends; the result is `tuner.get_best_models()[0]`,
  as KerasTuner's guide does.
- `baseline`: the fixed CNN of `baseline_cnn`, trained on all the training
  data with Adam until the budget ends. No search.
- `resnet`: the strong hand-written model a practitioner would write,
  `resnet_cnn`: a 3-stage residual CNN with batch normalisation, random
  translation (and horizontal flips for colour images, the practitioner's
  rule for photographs), label smoothing 0.1 and AdamW on a one-cycle
  schedule that ends exactly at the budget (`OneCycleToBudget`). No search.
- `autokeras`: `autokeras.ImageClassifier()` with its defaults (100 trials,
  up to 1000 epochs each with early stopping). AutoKeras has no time budget,
  so a callback closes its search at 60% of the budget (the trial then
  running ends, and no new one starts) and stops any training at 100%; its
  own final fit on training plus validation data runs in between.

The result JSON holds the test accuracy, the fit wall time, the number of
architectures evaluated, the final model's parameters, the process's peak
resident memory, and the time at which the system's own progress signal
first reached 95% of its final test accuracy: the best validation accuracy
seen so far for the searches, the test accuracy after each epoch for the
baseline (measured with the budget clock paused).
"""

import argparse
import contextlib
import datetime
import json
import os
import resource
import sys
import time
import traceback

# Shared between the callbacks and the system functions. Module state rather
# than callback attributes, because KerasTuner and AutoKeras deep-copy the
# callbacks for every trial.
_clock = {"start": None, "paused": 0.0, "trace": [], "oracle": None}


def elapsed():
    return time.monotonic() - _clock["start"] - _clock["paused"]


@contextlib.contextmanager
def clock_paused():
    """Measuring, not fitting: the time spent inside is left out of the fit's seconds."""
    paused = time.monotonic()
    try:
        yield
    finally:
        _clock["paused"] += time.monotonic() - paused


def record_progress(accuracy):
    """Appends (seconds since fit began, accuracy) to the progress trace."""
    if accuracy is not None:
        _clock["trace"].append((round(elapsed(), 2), float(accuracy)))


def time_to_fraction(trace, final_accuracy, fraction=0.95):
    """First time at which the progress trace reached `fraction` of the final accuracy, or None."""
    for seconds, accuracy in trace:
        if accuracy >= fraction * final_accuracy:
            return seconds
    return None


def budget_callback(budget_seconds, search_fraction=None):
    """A Keras callback that keeps a search and its training inside the budget.

    It records each epoch's `val_accuracy` in the progress trace. Past
    `search_fraction` of the budget it ends the current trial and closes the
    KerasTuner oracle in `_clock["oracle"]` (no new trial starts); past the
    whole budget it stops any training after the current batch.
    """
    import keras

    class Budget(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if elapsed() >= budget_seconds:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            record_progress((logs or {}).get("val_accuracy"))
            oracle = _clock["oracle"]
            searching = oracle is not None and oracle.ongoing_trials
            if searching and search_fraction is not None and elapsed() >= search_fraction * budget_seconds:
                oracle.max_trials = len(oracle.trials)
                self.model.stop_training = True

    return Budget()


def channel_statistics(x_train):
    """Per-channel mean and variance of the training images, for a `keras.layers.Normalization`."""
    pixels = x_train.astype("float32").reshape(-1, x_train.shape[-1])
    return pixels.mean(axis=0), pixels.var(axis=0)


def baseline_cnn(input_shape, num_classes, x_train):
    """The fixed, hand-designed CNN: two or three VGG-style stages with batch normalisation."""
    import keras

    mean, variance = channel_statistics(x_train)
    inputs = keras.Input(input_shape)
    x = keras.layers.Normalization(mean=mean, variance=variance)(inputs)
    stages = [32, 64, 128] if min(input_shape[:2]) >= 16 else [32, 64]
    for filters in stages:
        for _ in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def resnet_cnn(input_shape, num_classes, x_train, flip, learning_rate=1e-3):
    """The strong hand-written baseline: a small ResNet with augmentation, about 0.3M parameters.

    Translation by 1/16 of the side (2 pixels at 28 and 32) and, with `flip`,
    horizontal flips: Keras preprocessing layers, active in training only. `learning_rate` is
    AdamW's starting rate or a schedule (the suite sets the rate per batch from the budget clock).
    """
    import keras
    from keras import layers

    mean, variance = channel_statistics(x_train)
    inputs = keras.Input(input_shape)
    x = layers.Normalization(mean=mean, variance=variance)(inputs)
    shift = max(1, round(input_shape[0] / 16)) / input_shape[0]
    x = layers.RandomTranslation(shift, shift, fill_mode="reflect", interpolation="nearest")(x)
    if flip:
        x = layers.RandomFlip("horizontal")(x)
    x = layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    stages = [32, 64, 128] if min(input_shape[:2]) >= 16 else [32, 64]
    for index, filters in enumerate(stages):
        strides = 1 if index == 0 else 2
        shortcut = x
        y = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        if strides != 1 or shortcut.shape[-1] != filters:
            shortcut = layers.BatchNormalization()(
                layers.Conv2D(filters, 1, strides=strides, use_bias=False)(shortcut))
        x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=5e-4)
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                  metrics=["accuracy"])
    return model


def one_cycle_to_budget(budget_seconds, peak=3e-3, warmup=0.15):
    """A callback setting the learning rate from the budget clock: linear warm-up to `peak` over the
    first `warmup` of the budget, then linear decay to 0 exactly at its end."""
    import keras

    class OneCycleToBudget(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            done = min(elapsed() / budget_seconds, 1.0)
            rate = peak * (done / warmup if done < warmup else (1 - done) / (1 - warmup))
            self.model.optimizer.learning_rate.assign(max(rate, peak * 1e-3))

    return OneCycleToBudget()


def cnn_hypermodel(input_shape, num_classes, x_train):
    """KerasTuner's search space: a CNN comparable to automl_kit's macro space."""
    import keras

    # Computed once, so trials do not re-adapt.
    mean, variance = channel_statistics(x_train)

    def build(hp):
        inputs = keras.Input(input_shape)
        x = keras.layers.Normalization(mean=mean, variance=variance)(inputs)
        conv = {"conv": keras.layers.Conv2D, "separable": keras.layers.SeparableConv2D}[
            hp.Choice("conv", ["conv", "separable"])]
        kernel = hp.Choice("kernel_size", [3, 5])
        filters = hp.Choice("filters", [16, 32, 64])
        pool = {"max": keras.layers.MaxPooling2D, "avg": keras.layers.AveragePooling2D}[
            hp.Choice("pooling", ["max", "avg"])]
        for stage in range(hp.Int("stages", 1, 3)):
            for _ in range(hp.Int("layers_per_stage", 1, 3)):
                x = conv(filters * 2 ** stage, kernel, padding="same", use_bias=False)(x)
                x = keras.layers.BatchNormalization()(x)
                x = keras.layers.ReLU()(x)
            x = pool(pool_size=2, padding="same")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        units = hp.Choice("dense_units", [0, 64, 128])
        if units:
            x = keras.layers.Dense(units, activation="relu")(x)
        x = keras.layers.Dropout(hp.Choice("dropout", [0.0, 0.25, 0.5]))(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", [1e-3, 3e-4])),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    return build


def with_channel_axis(data):
    """(N, H, W) images as (N, H, W, 1), which Keras's convolutions need; automl_kit and AutoKeras do this themselves."""
    return {key: value[..., None] if key.startswith("x_") and value.ndim == 3 else value
            for key, value in data.items()}


def test_time_views(clf, x_test, y_test):
    """After the timed fit, in the log only: the final network's test accuracy on plain images, averaged with
    their mirror images (scored by the flip test the trials use) and as the final model predicts (with its
    test-time augmentation, if any); the views it averages, whether its final training flipped, and the best
    trial's flip test on validation images (accuracy plain, mirrored and averaged)."""
    import numpy as np

    from automl_kit.blocks.builder import network_of
    from automl_kit.tuner.recipe import flip_test

    network = network_of(clf.model_)
    x = clf._read(x_test)[0].astype(np.float32)
    y = clf.label_coder_.encode(np.asarray(y_test), name="y")
    plain, _, flip_averaged = flip_test(network, x, y, clf.input_spec_.image_shape, batch_size=256)
    return {"trained_with_flips": bool((clf.final_.get("recipe") or {}).get("flip")),
            "test_time_augmentation": clf.final_.get("test_time_augmentation"),
            "trial_flip_test": (clf.best_trial_.history or {}).get("flip_test"),
            "plain": plain, "flip_averaged": flip_averaged,
            "as_predicted": float(np.mean(np.argmax(clf.predict_proba(x), axis=1) == y))}  # read once, as evaluate


def log_search(clf, started_wall, data):
    """The trials' scores in the progress trace, and in the system's log what the table has no room for."""
    for trial in clf.trials_:
        if trial.status == "completed" and trial.finished_at:
            finished = datetime.datetime.fromisoformat(trial.finished_at).timestamp()
            _clock["trace"].append((round(finished - started_wall, 2), trial.score))
    _clock["trace"].sort()
    # How the final stage scaled and trained.
    print("final stage:", json.dumps({key: clf.final_.get(key) for key in ("how", "scaling", "params", "epochs",
                                                                         "batch_size")}), file=sys.stderr)
    # The plan a time budget got (tuner/plan.py): its measurements and the search's share of the budget.
    from automl_kit.tuner import Project

    state = Project(os.path.join(clf.directory, clf.project_name)).state
    print("plan:", json.dumps(state.get("shared_weights", {}).get("plan")), file=sys.stderr)
    # The controller's learning curve (ENAS), and how well the shared weights ranked the confirmed candidates.
    print("supernet epochs:", json.dumps([{key: record.get(key) for key in ("epoch", "loss", "mean_reward",
                                                                            "mean_entropy")}
                                          for record in clf.supernet_history_]), file=sys.stderr)
    print("ranking:", json.dumps(clf.search_results_.attrs.get("ranking")), file=sys.stderr)
    # Every trial's rung, epochs and score, and which was best: the flip test below is the best trial's.
    print("trials:", json.dumps({"best": clf.best_trial_.trial_id, "trials": [
        {"id": t.trial_id, "status": t.status, "rung": t.rung, "epochs": t.epochs_run, "score": t.score,
         "plain_in_flip_test": ((t.history or {}).get("flip_test") or [None])[0]} for t in clf.trials_]}),
        file=sys.stderr)
    print("test-time views:", json.dumps(test_time_views(clf, data["x_test"], data["y_test"])), file=sys.stderr)


def run_automl_kit(tuner, data, budget, folder, seed, max_trials=10):
    from automl_kit import ImageClassifier

    clf = ImageClassifier(tuner=tuner, time_limit=budget, seed=seed, directory=folder, max_trials=max_trials)
    started_wall = time.time()
    clf.fit(data["x_train"], data["y_train"], verbose=0)
    with clock_paused():  # the log scores the test images five times over: 34 s on MNIST, not fitting
        log_search(clf, started_wall, data)
    scored = sum(r.get("controller_steps", 0) for r in clf.supernet_history_) + clf.architectures_derived_
    return {
        "predict": lambda x: clf.predict(x),
        "evaluated": scored + len(clf.trials_),
        "params": lambda: clf.export_model().count_params(),
    }


def run_baseline(data, budget, folder, seed):
    import keras

    keras.utils.set_random_seed(seed)
    data = with_channel_axis(data)
    x_train, y_train = data["x_train"], data["y_train"]
    model = baseline_cnn(x_train.shape[1:], int(y_train.max()) + 1, x_train)

    class TestAccuracy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            with clock_paused():
                record_progress(model.evaluate(data["x_test"], data["y_test"], verbose=0)[1])

    model.fit(x_train, y_train, batch_size=32, epochs=100_000, verbose=0,
              callbacks=[budget_callback(budget), TestAccuracy()])
    return {"predict": lambda x: model.predict(x, verbose=0).argmax(-1), "x_test": data["x_test"], "evaluated": 1,
            "params": model.count_params()}


def run_resnet(data, budget, folder, seed):
    import keras

    keras.utils.set_random_seed(seed)
    data = with_channel_axis(data)
    x_train, y_train = data["x_train"], data["y_train"]
    num_classes = int(y_train.max()) + 1
    model = resnet_cnn(x_train.shape[1:], num_classes, x_train, flip=x_train.shape[-1] == 3)

    class TestAccuracy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            with clock_paused():
                record_progress(model.evaluate(data["x_test"], keras.utils.to_categorical(data["y_test"], num_classes),
                                               verbose=0)[1])

    model.fit(x_train, keras.utils.to_categorical(y_train, num_classes), batch_size=64, epochs=100_000, verbose=0,
              callbacks=[one_cycle_to_budget(budget), budget_callback(budget), TestAccuracy()])
    return {"predict": lambda x: model.predict(x, verbose=0).argmax(-1), "x_test": data["x_test"], "evaluated": 1,
            "params": model.count_params()}


def run_keras_tuner(data, budget, folder, seed):
    import keras
    import keras_tuner

    data = with_channel_axis(data)
    x_train, y_train = data["x_train"], data["y_train"]
    tuner = keras_tuner.RandomSearch(
        cnn_hypermodel(x_train.shape[1:], int(y_train.max()) + 1, x_train), objective="val_accuracy",
        max_trials=10_000, seed=seed, directory=folder, project_name="keras_tuner", overwrite=True)
    _clock["oracle"] = tuner.oracle
    tuner.search(x_train, y_train, epochs=20, validation_split=0.2, batch_size=32, verbose=0,
                 callbacks=[keras.callbacks.EarlyStopping(patience=3, restore_best_weights=True),
                            budget_callback(budget, search_fraction=1.0)])
    model = tuner.get_best_models(1)[0]
    return {"predict": lambda x: model.predict(x, verbose=0).argmax(-1), "x_test": data["x_test"],
            "evaluated": len(tuner.oracle.trials),
            "params": model.count_params()}


def run_autokeras(data, budget, folder, seed):
    import autokeras

    clf = autokeras.ImageClassifier(directory=folder, overwrite=True, seed=seed)
    _clock["oracle"] = clf.tuner.oracle
    clf.fit(data["x_train"], data["y_train"], verbose=0, callbacks=[budget_callback(budget, search_fraction=0.6)])
    model = clf.export_model()
    return {"predict": lambda x: clf.predict(x, verbose=0).reshape(-1).astype(float).astype(int),
            "evaluated": len(clf.tuner.oracle.trials), "params": model.count_params()}


SYSTEMS = {
    "enas": lambda *args: run_automl_kit("enas", *args),
    "random_ws": lambda *args: run_automl_kit("random_ws", *args),
    "random": lambda *args: run_automl_kit("random", *args),
    "nas": lambda *args: run_automl_kit("nas", *args),
    "progressive": lambda *args: run_automl_kit("progressive", *args),
    # Issue 20's bar for the search: the best of 3 architectures drawn uniformly from the same
    # space, each trained from scratch, then the same final training.
    "random3": lambda *args: run_automl_kit("random", *args, max_trials=3),
    "keras_tuner": run_keras_tuner,
    "baseline": run_baseline,
    "resnet": run_resnet,
    "autokeras": run_autokeras,
}

VERSION_PACKAGES = ["automl_kit", "autokeras", "keras_tuner", "keras", "tensorflow"]


def package_versions():
    from importlib import metadata

    versions = {}
    for name in VERSION_PACKAGES:
        try:  # distribution names are normalised, so "keras_tuner" finds "keras-tuner"
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def run(system, data_path, budget, folder, seed):
    import numpy as np

    with np.load(data_path) as archive:
        data = {key: archive[key] for key in archive.files}
    import keras  # noqa: F401  before the clock: no system's budget pays for importing TensorFlow

    _clock["start"] = time.monotonic()
    outcome = SYSTEMS[system](data, budget, folder, seed)
    fit_seconds = elapsed()
    if callable(outcome["params"]):  # counted after the clock: exporting a model is not fitting it
        outcome["params"] = outcome["params"]()
    predicted = np.asarray(outcome["predict"](outcome.get("x_test", data["x_test"]))).reshape(-1)
    accuracy = float(np.mean(predicted == data["y_test"].reshape(-1)))
    return {
        "test_accuracy": accuracy,
        "fit_seconds": round(fit_seconds, 1),
        "evaluated": int(outcome["evaluated"]),
        "params": int(outcome["params"]),
        "time_to_95": time_to_fraction(_clock["trace"], accuracy),
        "trace": _clock["trace"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=sorted(SYSTEMS), required=True)
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--budget-seconds", type=float, required=True)
    parser.add_argument("--workdir", required=True, help="an empty folder for the system's files")
    parser.add_argument("--out", required=True, help="where to write the result JSON")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = {"system": args.system, "versions": package_versions()}
    try:
        result.update(run(args.system, args.data, args.budget_seconds, args.workdir, args.seed))
        result["status"] = "ok"
    except Exception as error:  # recorded, never dropped: the runner reports the reason
        traceback.print_exc()
        result["status"] = "crashed"
        result["reason"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, args.out)
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
