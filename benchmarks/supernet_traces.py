"""The seconds a shared-weight search spends tracing before it trains: `python -m benchmarks.supernet_traces`.

    python -m benchmarks.supernet_traces                  # this tree
    python -m benchmarks.supernet_traces --base HEAD~1    # and a commit, side by side

Each measurement runs in a fresh process (a trace is paid once per process):
the supernet's construction, its first train step (the trace of the step
every child shares), its first scoring pass (the trace of the reward), and
the ENAS controller's first sample and first update, for the macro space
(the default) on 8x8, 28x28 and 32x32x3 images and the micro space on 8x8.
With `--base`, the commit's code runs from a git worktree right after this
tree's, configuration by configuration, so both see the same machine load.
Prints and writes `benchmarks/results/supernet_traces_<date>_<commit>.md`
with the median of `--repeats` processes per configuration.
"""

import argparse
import contextlib
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGURATIONS = [("macro", (8, 8)), ("macro", (28, 28)), ("macro", (32, 32, 3)), ("micro", (8, 8))]
COLUMNS = ["construction", "first train step", "first scoring", "controller sample", "controller update"]


def measure_once(space_name, shape):
    """The seconds of each of COLUMNS, in this process, for `space_name` on images of `shape`, and the
    folder of the automl_kit measured."""
    import automl_kit
    from automl_kit.blocks.search_space import MacroSearchSpace, MicroSearchSpace
    from automl_kit.data import InputSpec
    from automl_kit.tuner.controller import Controller
    from automl_kit.tuner.supernet import Supernet

    image_shape = shape if len(shape) == 3 else (*shape, 1)
    space = (MacroSearchSpace if space_name == "macro" else MicroSearchSpace)(image_shape)
    rng = np.random.default_rng(0)
    x = rng.random((32, *shape)).astype(np.float32) * 255
    y = np.arange(32) % 10
    arch = space.encode(space.sample(rng))
    seconds = {}

    def timed(name, work):
        started = time.perf_counter()
        result = work()
        seconds[name] = time.perf_counter() - started
        return result

    channels = image_shape[-1]
    net = timed("construction", lambda: Supernet(space, InputSpec(shape, image_shape), 10, [127.0] * channels,
                                                 [5000.0] * channels))
    timed("first train step", lambda: float(net.train_step(x, y, np.ones(32), arch)))
    timed("first scoring", lambda: net.accuracy(x, y, arch))
    skips = [i for i, key in enumerate(space.decision_keys) if key in space.skip_keys]
    controller = Controller(space.decision_sizes, skip_positions=skips)
    actions, _, _ = timed("controller sample", lambda: controller.sample(rng))
    timed("controller update", lambda: controller.update(actions, 0.5))
    return dict(seconds, code=os.path.dirname(os.path.dirname(os.path.abspath(automl_kit.__file__))))


def measure_in_process(root, space_name, shape):
    """`measure_once` in a fresh Python process running the code under `root` (this file runs as a script
    there, so that a commit from before it can be measured)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=root)
    command = [sys.executable, os.path.abspath(__file__), "--one", space_name, "x".join(map(str, shape))]
    output = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=True).stdout
    seconds = json.loads(output.strip().splitlines()[-1])
    code = seconds.pop("code")
    if os.path.realpath(code) != os.path.realpath(root):
        raise RuntimeError(f"measured the automl_kit of {code}, not of {root}")
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=None, metavar="COMMIT", help="also measure COMMIT's code, side by side")
    parser.add_argument("--repeats", type=int, default=2, help="processes per configuration and tree")
    parser.add_argument("--one", nargs=2, metavar=("SPACE", "SHAPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # the child process: one measurement, printed as JSON
        print(json.dumps(measure_once(args.one[0], tuple(int(s) for s in args.one[1].split("x")))))
        return None

    from benchmarks.run import machine, worktree_of
    from benchmarks.search_at_budget import RESULTS_DIR, git_commit

    commit = git_commit()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="automl_kit_traces_") as scratch, contextlib.ExitStack() as stack:
        trees = [(commit, ROOT)]
        if args.base:
            trees.append(stack.enter_context(worktree_of(args.base, scratch)))
        for _ in range(args.repeats):
            for space_name, shape in CONFIGURATIONS:
                for label, root in trees:
                    seconds = measure_in_process(root, space_name, shape)
                    runs.setdefault((space_name, shape, label), []).append(seconds)
                    print(space_name, "x".join(map(str, shape)), label,
                          ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items()), flush=True)

    date = datetime.date.today().isoformat()
    lines = [f"# Seconds before a shared-weight search trains, {date}", "",
             f"`python -m benchmarks.supernet_traces {' '.join(argv if argv is not None else sys.argv[1:])}` "
             f"at commit {commit}, {machine()}. Median of {args.repeats} fresh process(es) per row; a row's "
             "trees ran one after the other, configuration by configuration.", "",
             "| space | images | code | " + " | ".join(COLUMNS) + " | all |",
             "|---" * (len(COLUMNS) + 4) + "|"]
    for (space_name, shape, label), measured in runs.items():
        medians = [float(np.median([m[column] for m in measured])) for column in COLUMNS]
        lines.append(f"| {space_name} | {'x'.join(map(str, shape))} | {label} | "
                     + " | ".join(f"{v:.2f}" for v in medians) + f" | **{sum(medians):.1f}** |")
    path = os.path.join(RESULTS_DIR, f"supernet_traces_{date}_{commit}.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {path}")
    return runs


if __name__ == "__main__":
    main()
