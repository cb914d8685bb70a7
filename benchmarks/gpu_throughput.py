"""Training throughput of a short MNIST search: `python -m benchmarks.gpu_throughput [--mixed-precision]`.

    python -m benchmarks.gpu_throughput --train-images 20000 --epochs 3
    python -m benchmarks.gpu_throughput --train-images 20000 --epochs 3 --mixed-precision

Runs `ImageClassifier(tuner="random_ws", max_trials=1)` (the supernet steps
without the controller's, so the figure is the supernet's alone) on the
first `--train-images` MNIST training images, and prints images per second
of supernet training (its epochs after the first, which holds the trace) and
of the final training (its steps after the first), and the test accuracy.
Made for `benchmarks/gpu_check.sh`; it runs on a CPU too.
"""

import argparse
import time

from benchmarks.search_at_budget import DEFAULT_DATA_DIR, load


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=20000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)

    import keras

    from automl_kit import ImageClassifier

    class StepClock(keras.callbacks.Callback):
        """Times the steps of the latest training run: after `fit`, the final training's."""

        def on_train_begin(self, logs=None):
            self.ends = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    x, y = load(args.data_dir, "mnist_train")
    x_test, y_test = load(args.data_dir, "mnist_test")
    x, y = x[:args.train_images], y[:args.train_images]
    clock = StepClock()
    clf = ImageClassifier(tuner="random_ws", max_trials=1, seed=0, mixed_precision=args.mixed_precision)
    started = time.monotonic()
    clf.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, callbacks=[clock], verbose=0)
    fit_seconds = time.monotonic() - started
    later = clf.supernet_history_[1:] or clf.supernet_history_
    supernet_rate = sum(r["shared_steps"] for r in later) * args.batch_size / sum(r["seconds"] for r in later)
    final_rate = (len(clock.ends) - 1) * args.batch_size / max(clock.ends[-1] - clock.ends[0], 1e-9)
    compute = sorted({layer.dtype_policy.compute_dtype for layer in clf.model_.layers if layer.weights})
    print(f"compute dtypes {'/'.join(compute)}: supernet {supernet_rate:,.0f} images/s, final training {final_rate:,.0f} images/s, "
          f"test accuracy {clf.score(x_test, y_test):.4f}, fit {fit_seconds:.0f} s")


if __name__ == "__main__":
    main()
