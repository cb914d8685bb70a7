"""Supernet step time against the standalone child, and the supernet's first trace.

    python -m benchmarks.supernet_overhead

For the default micro space on 32x32x3 images (CIFAR-10's shape): times the
construction and first train step (the trace) of the supernet, then, for
each of several sampled children, the median time of one supernet train
step on that child against one `train_on_batch` step of the same child built
as a standalone Keras model, at the same batch size, the two steps taken in
turn. Writes
`benchmarks/results/supernet_overhead.md` (or `supernet_overhead_batchN.md`
for another `--batch-size`).
"""

import argparse
import datetime
import os
import time

import numpy as np

from benchmarks.search_at_budget import RESULTS_DIR, git_commit


def median_seconds(steps, repeats):
    """The median time of each of `steps`, run in turn `repeats` times.

    Alternating the two steps, rather than timing one and then the other,
    leaves both exposed to the same changes in the machine's load, and the
    median ignores the odd step that was interrupted.
    """
    for step in steps:  # warm: the first call may trace
        step()
    times = [[] for _ in steps]
    for _ in range(repeats):
        for step, spent in zip(steps, times):
            started = time.perf_counter()
            step()
            spent.append(time.perf_counter() - started)
    return [float(np.median(spent)) for spent in times]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    import keras

    from automl_kit.blocks import MicroSearchSpace, build_model
    from automl_kit.data import InputSpec
    from automl_kit.tuner import training
    from automl_kit.tuner.supernet import Supernet

    shape = (32, 32, 3)
    spec, space = InputSpec(shape, shape), MicroSearchSpace(shape)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.batch_size, *shape)).astype("float32")
    y = rng.integers(0, 10, args.batch_size)
    w = np.ones(args.batch_size, "float32")
    normalisation = ([127.0] * 3, [4000.0] * 3)

    started = time.perf_counter()
    supernet = Supernet(space, spec, 10, *normalisation)
    built = time.perf_counter() - started
    float(supernet.train_step(x, y, w, space.encode(space.sample(rng))))
    first_trace = time.perf_counter() - started
    print(f"supernet: {supernet.count_params():,} parameters; built in {built:.1f} s, "
          f"first train step (trace) done after {first_trace:.1f} s")

    rows = []
    for _ in range(args.children):
        arch = space.sample(rng)
        decisions = space.encode(arch)
        child = training.compile_for_classification(build_model(arch, spec, 10, *normalisation))
        # float() reads the loss back, so each timed step has finished.
        shared, alone = median_seconds(
            [lambda: float(supernet.train_step(x, y, w, decisions)), lambda: child.train_on_batch(x, y)], args.repeats)
        rows.append((child.count_params(), shared, alone))
        print(f"child {child.count_params():>8,} params: supernet step {shared * 1e3:6.1f} ms, "
              f"standalone {alone * 1e3:6.1f} ms, ratio {shared / alone:.2f}")
        keras.backend.clear_session()
    ratios = [s / a for _, s, a in rows]
    print(f"overhead ratio: mean {np.mean(ratios):.2f}, median {np.median(ratios):.2f}, max {np.max(ratios):.2f} "
          f"(total time ratio {sum(s for _, s, _ in rows) / sum(a for _, _, a in rows):.2f}); traces {supernet.traces}")

    suffix = "" if args.batch_size == 32 else f"_batch{args.batch_size}"
    path = os.path.join(RESULTS_DIR, f"supernet_overhead{suffix}.md")
    with open(path, "w") as f:
        f.write(f"Default micro supernet on 32x32x3 input, batch {args.batch_size}, {os.cpu_count()} CPUs, no GPU; "
                f"commit {git_commit()}, {datetime.date.today()}. `python -m benchmarks.supernet_overhead`.\n\n"
                f"- supernet: {supernet.count_params():,} parameters; construction {built:.1f} s; "
                f"first train step, trace included, done after **{first_trace:.1f} s**\n"
                f"- step-time ratio supernet / standalone child over {len(rows)} sampled children: "
                f"mean **{np.mean(ratios):.2f}**, median {np.median(ratios):.2f}, max {np.max(ratios):.2f}; "
                f"train-step traces: {supernet.traces}\n\n"
                "| child params | supernet step ms | standalone step ms | ratio |\n|---|---|---|---|\n")
        for params, shared, alone in rows:
            f.write(f"| {params:,} | {shared * 1e3:.1f} | {alone * 1e3:.1f} | {shared / alone:.2f} |\n")
    print(f"written to {os.path.abspath(path)}")


if __name__ == "__main__":
    main()
