"""Prediction throughput of the exported model against the bare Keras network: `python -m benchmarks.predict_throughput`.

    python -m benchmarks.predict_throughput --children 3 --images 4096

For several architectures sampled from the default micro space on 28x28
grayscale images (MNIST's shape), builds the child as a plain functional
Keras model, wraps it as `export_model` does (label lookup beside the
probabilities), saves that as `.keras` and loads it back with plain
`keras.models.load_model`, then times `predict` of both on the same uint8
images at the same batch size. The target ratio, exported over bare, is 1.0:
the export adds no work beyond an argmax and a table lookup. Appends to
`benchmarks/results/predict_throughput.md`.
"""

import argparse
import datetime
import os
import tempfile
import time

import numpy as np

from benchmarks.search_at_budget import RESULTS_DIR, append_row, git_commit


def images_per_second(predict, x, repeats):
    predict(x[:256])  # warm: the first call traces
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        predict(x)
        best = min(best, time.perf_counter() - started)
    return len(x) / best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=3)
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import keras

    from automl_kit import export
    from automl_kit.blocks import MicroSearchSpace
    from automl_kit.blocks.builder import build_model
    from automl_kit.data import InputSpec

    x = np.random.default_rng(0).integers(0, 256, (args.images, 28, 28), dtype=np.uint8)
    spec = InputSpec((28, 28), (28, 28, 1))
    space = MicroSearchSpace((28, 28))
    print(f"{'child':>5} {'params':>9} {'bare (img/s)':>13} {'exported (img/s)':>17} {'ratio':>6}")
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        for child in range(args.children):
            bare = build_model(space.sample(np.random.default_rng(child)), spec, 10, [127.0], [80.0 ** 2])
            path = os.path.join(folder, f"child{child}.keras")
            export.save(export.with_labels(bare, np.arange(10)), path)
            exported = keras.models.load_model(path)
            x_float = x.astype("float32")  # the bare network takes floats; the exported one takes the raw images
            bare_rate = images_per_second(lambda d: bare.predict(d, batch_size=args.batch_size, verbose=0),
                                          x_float, args.repeats)
            exported_rate = images_per_second(lambda d: exported.predict(d, batch_size=args.batch_size, verbose=0),
                                              x, args.repeats)
            ratios.append(exported_rate / bare_rate)
            print(f"{child:>5} {bare.count_params():>9,} {bare_rate:>13,.0f} {exported_rate:>17,.0f} {ratios[-1]:>6.2f}")
            keras.backend.clear_session()
    print(f"median ratio, exported over bare: {np.median(ratios):.2f}")
    append_row(
        os.path.join(RESULTS_DIR, "predict_throughput.md"),
        ["date", "commit", "CPUs", "children", "images", "batch size", "ratios (exported / bare)", "median"],
        [datetime.date.today().isoformat(), git_commit(), os.cpu_count(), args.children, args.images,
         args.batch_size, " ".join(f"{r:.2f}" for r in ratios), f"{np.median(ratios):.2f}"],
    )


if __name__ == "__main__":
    main()
