"""automl_kit against AutoKeras, KerasTuner and a fixed CNN, at equal budgets: `python -m benchmarks.run`.

    python -m benchmarks.run --suite quick                      # digits + MNIST, 1 minute each: ~20 min
    python -m benchmarks.run --suite full                       # four datasets, 1 to 3 minutes each: ~1 h
    python -m benchmarks.run --suite full --budget-minutes 10   # the same, every budget 10 minutes: ~5 h
    python -m benchmarks.run --suite quick --datasets digits --systems baseline,random --budget-minutes 0.2
    python -m benchmarks.run --suite recipe --systems enas,resnet --base HEAD~1   # a change, side by side
    python -m benchmarks.run --suite recipe --datasets fashion_mnist --systems enas,baseline,resnet --seeds 0,1,2
    python -m benchmarks.run --suite search --systems enas,random3,random_ws,random   # the search against random draws
    python -m benchmarks.run --suite tuners --systems enas,random_ws,random,nas,progressive   # the five tuners

Every system gets the same wall-clock budget per dataset, for its whole fit
(search and final training), and runs in its own process
(`benchmarks/systems.py` describes each system and what is measured). A
system that crashes, or runs past its budget by more than half plus three
minutes and is killed, keeps its row, with the reason. With several
`--seeds`, every system runs once per seed, the systems of one seed one
after another (so that the machine's drift over the hours falls on all of
them alike), and the table ends with each system's mean, lowest and
highest accuracy over the seeds: one run per system cannot order systems
whose runs differ by more than their gap.

AutoKeras runs in its own virtual environment, `benchmarks/.venv-autokeras`,
which the runner creates on first use with `autokeras==3.0.0`,
`keras==3.12.0` (AutoKeras 3.0's search fails with keras>=3.13: "invalid
value for units") and `tensorboard`; that needs PyPI. `--autokeras-python`
points at another interpreter. KerasTuner comes from
`pip install 'automl_kit[bench]'`.

Datasets (`--data-dir`, default `../shared/datasets/`):

| name | train | test |
|---|---|---|
| `digits` | 70% of scikit-learn's digits, stratified, seed 0 | the other 30% |
| `mnist` | the 60,000 MNIST training images | the 10,000 test images |
| `fashion_mnist` | 8,000 of the Fashion-MNIST test file, stratified, seed 0 | the other 2,000 |
| `cifar10` | CIFAR-10 `data_batch_1` (10,000 images) | the first 1,000 test images |

Writes `benchmarks/results/suite_<suite>_<date>_<commit>.md` and `.csv`
(or into `--out`), stamped with the date, machine, package versions and git
commit.
"""

import argparse
import contextlib
import csv
import datetime
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from benchmarks.search_at_budget import DEFAULT_DATA_DIR, RESULTS_DIR, git_commit, load

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
AUTOKERAS_VENV = os.path.join(HERE, ".venv-autokeras")
AUTOKERAS_REQUIREMENTS = ["autokeras==3.0.0", "keras==3.12.0", "tensorflow==2.20.0", "tensorboard"]

SYSTEMS = ["enas", "random_ws", "random", "random3", "nas", "progressive", "keras_tuner", "baseline", "resnet",
           "autokeras"]
AUTOML_KIT_SYSTEMS = ("enas", "random_ws", "random", "random3", "nas", "progressive")
SUITES = {  # dataset -> budget in minutes
    "quick": {"digits": 1, "mnist": 1},
    # About an hour on 2 CPU cores; longer budgets with --budget-minutes.
    "full": {"digits": 1, "mnist": 3, "fashion_mnist": 1, "cifar10": 3},
    # Issue 19's budgets: the default ImageClassifier against the fixed CNN and the hand-written
    # ResNet (`--systems enas,baseline,resnet`), about two hours on 2 CPU cores.
    "recipe": {"digits": 2, "fashion_mnist": 7, "mnist": 10, "cifar10": 20},
    # Issue 20's bar for the search: the default ENAS against the best of 3 uniform draws, with
    # random_ws and random beside them (`--systems enas,random3,random_ws,random`), about 2 h 10 min.
    "search": {"digits": 2, "fashion_mnist": 7, "cifar10": 20},
    # Issue 22: the five tuners at equal fit time (`--systems enas,random_ws,random,nas,progressive`), about 50 min.
    "tuners": {"digits": 2, "fashion_mnist": 7},
}
COLUMNS = ["dataset", "system", "seed", "status", "test_accuracy", "fit_seconds", "budget_seconds", "evaluated", "params",
           "peak_rss_mb", "time_to_95", "reason"]


def load_dataset(name, data_dir):
    """(x_train, y_train, x_test, y_test) with integer labels."""
    from sklearn.model_selection import train_test_split

    def npz(file):
        x, y = load(data_dir, file)
        return x, y.astype("int64").reshape(-1)

    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x_train, x_test, y_train, y_test = train_test_split(
            digits.images, digits.target, test_size=0.3, stratify=digits.target, random_state=0)
        return x_train, y_train, x_test, y_test
    if name == "fashion_mnist":
        x, y = npz("fashion_mnist_test")
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=2000, stratify=y, random_state=0)
        return x_train, y_train, x_test, y_test
    train, test = {"mnist": ("mnist_train", "mnist_test"), "cifar10": ("cifar10_train_batch1",
                                                                       "cifar10_test_first1000")}[name]
    return (*npz(train), *npz(test))


def held_out_split(name, data_dir, held_out=2000, most=8000):
    """(images with a channel axis, labels, training rows, held-out rows) of a dataset's training part, for
    the one-thread A/B scripts (`flip_ab`, `scaling_ab`, `views_ab`); the test images are not touched.

    The held-out rows are `held_out` (a quarter for smaller sets) of one fixed shuffle; at most `most` of
    the rest train. TensorFlow runs on one thread, so that two runs can share two cores.
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    x, y, _, _ = load_dataset(name, data_dir)
    x = x[..., None] if x.ndim == 3 else x
    order = np.random.default_rng(123).permutation(len(x))
    held_out = min(held_out, len(x) // 4)
    return x, y, order[held_out:held_out + most], order[:held_out]


def prior_trained_on_held_out_split(dataset, data_dir, epochs, seed, width=1.0):
    """(model, recipe, input spec, x, y, held-out rows, seconds): the macro search space's prior, `width`
    times as wide, trained with the final recipe (flips for colour images) for `epochs` on one cycle on the
    training rows of `held_out_split`, for `scaling_ab` and `views_ab` to score on the held-out rows."""
    import time

    import keras

    from automl_kit.blocks.builder import build_model
    from automl_kit.blocks.search_space import search_space_for
    from automl_kit.data import InputSpec
    from automl_kit.tuner import training
    from automl_kit.tuner.recipe import Recipe
    from benchmarks.systems import channel_statistics

    x, y, train, val = held_out_split(dataset, data_dir)
    keras.utils.set_random_seed(seed)
    started = time.monotonic()
    spec = InputSpec.infer(x[:2], None)
    mean, variance = channel_statistics(x[train])
    model = build_model(search_space_for(spec).prior().scaled(width, 1), spec, 10, mean, variance)
    recipe = Recipe.for_final(spec.image_shape, mean, flip=spec.image_shape[-1] == 3, epochs=epochs)
    training.train(model, x[train], y[train], epochs=epochs, batch_size=32, decay="epochs", recipe=recipe)
    return model, recipe, spec, x, y, val, time.monotonic() - started


def ensure_autokeras_python(python):
    """The AutoKeras interpreter: `python` if given, else the runner's own venv, created on first use."""
    if python:
        return python
    venv_python = os.path.join(AUTOKERAS_VENV, "bin", "python")
    if not os.path.exists(venv_python):
        print(f"creating {AUTOKERAS_VENV} with {' '.join(AUTOKERAS_REQUIREMENTS)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", AUTOKERAS_VENV], check=True)
        subprocess.run([venv_python, "-m", "pip", "install", "-q", *AUTOKERAS_REQUIREMENTS], check=True)
    return venv_python


def machine():
    gpu = "no GPU"
    if shutil.which("nvidia-smi"):
        query = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True)
        if query.returncode == 0 and query.stdout.strip():
            gpu = ", ".join(query.stdout.split("\n")[:8]).strip(", ")
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {gpu}"


def run_system(system, data_path, budget_seconds, python, seed, log_path, root=ROOT):
    """Runs one worker on the code under `root` (this tree, or a worktree of an earlier commit);
    returns its result dict, with a status and reason whatever happened."""
    timeout = 1.5 * budget_seconds + 180
    with tempfile.TemporaryDirectory(prefix=f"bench_{system}_") as workdir:
        out = os.path.join(workdir, "result.json")
        command = [python, "-m", "benchmarks.systems", "--system", system, "--data", data_path,
                   "--budget-seconds", str(budget_seconds), "--workdir", workdir, "--out", out, "--seed", str(seed)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=root)
        with open(log_path, "w") as log:
            try:
                process = subprocess.run(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         timeout=timeout)
            except subprocess.TimeoutExpired:
                return {"status": "overrun", "reason": f"killed after {timeout:.0f} s (budget {budget_seconds:.0f} s)"}
            except OSError as error:
                return {"status": "crashed", "reason": f"could not start {python}: {error}"}
        if not os.path.exists(out):
            return {"status": "crashed", "reason": f"exit code {process.returncode}: {last_line(log_path)}"}
        with open(out) as f:
            result = json.load(f)
    if result["status"] == "ok" and result["fit_seconds"] > 1.1 * budget_seconds:
        result["status"] = "overran"
        result["reason"] = f"fit took {result['fit_seconds']:.0f} s, over 110% of the budget"
    return result


def last_line(path):
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1][:300] if lines else "no output"


def format_cell(column, value):
    if value is None or value == "":
        return "-"
    if column == "test_accuracy":
        return f"{value:.4f}"
    if column in ("fit_seconds", "budget_seconds", "time_to_95", "peak_rss_mb"):
        return f"{value:.0f}"
    if column in ("params", "evaluated"):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def write_tables(rows, stamp, path_stem):
    """Writes `<stem>.csv` (one row per run, stamped) and `<stem>.md` (stamp, then the table)."""
    with open(path_stem + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, "date", "commit", "machine", "versions"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**{c: row.get(c) for c in COLUMNS}, "date": stamp["date"], "commit": stamp["commit"],
                             "machine": stamp["machine"], "versions": json.dumps(row.get("versions", {}))})
    headers = ["dataset", "system", "seed", "status", "test acc", "fit (s)", "budget (s)", "architectures evaluated",
               "final params", "peak RSS (MB)", "time to 95% (s)", "reason"]
    with open(path_stem + ".md", "w") as f:
        f.write(f"# Benchmark suite `{stamp['suite']}`\n\n"
                f"`{stamp['command']}` on {stamp['date']}, commit {stamp['commit']}, {stamp['machine']}.\n\n"
                f"Package versions: {stamp['versions']}.\n\n")
        f.write("| " + " | ".join(headers) + " |\n|" + "---|" * len(headers) + "\n")
        for row in rows:
            f.write("| " + " | ".join(format_cell(c, row.get(c)) for c in COLUMNS) + " |\n")
        if len({row["seed"] for row in rows}) > 1:
            f.write("\n## Over the seeds\n\n| dataset | system | runs | mean test acc | lowest | highest | "
                    "mean fit (s) |\n|---|---|---|---|---|---|---|\n")
            for (dataset, system), accuracies, seconds in over_seeds(rows):
                f.write(f"| {dataset} | {system} | {len(accuracies)} | {np.mean(accuracies):.4f} | "
                        f"{min(accuracies):.4f} | {max(accuracies):.4f} | {np.mean(seconds):.0f} |\n")


def over_seeds(rows):
    """((dataset, system), accuracies, fit seconds) per system that ran, in the order of the rows: its runs
    that finished (ok or overran; a crash has no accuracy).

    >>> rows = [{"dataset": "d", "system": "a", "seed": s, "test_accuracy": acc, "fit_seconds": 10.0}
    ...         for s, acc in ((0, 0.5), (1, 0.7))]
    >>> [(key, accuracies) for key, accuracies, _ in over_seeds(rows)]
    [(('d', 'a'), [0.5, 0.7])]
    """
    groups = {}
    for row in rows:
        if row.get("test_accuracy") is not None:
            accuracies, seconds = groups.setdefault((row["dataset"], row["system"]), ([], []))
            accuracies.append(row["test_accuracy"])
            seconds.append(row["fit_seconds"])
    return [(key, accuracies, seconds) for key, (accuracies, seconds) in groups.items()]


@contextlib.contextmanager
def worktree_of(commit, scratch):
    """(short hash, folder) of a git worktree of `commit` made under `scratch`, removed on exit: a commit's code
    to run beside this tree's."""
    base = subprocess.check_output(["git", "rev-parse", "--short", commit], cwd=ROOT, text=True).strip()
    tree = os.path.join(scratch, f"base_{base}")
    subprocess.run(["git", "worktree", "add", "--detach", tree, base], cwd=ROOT, check=True, capture_output=True)
    try:
        yield base, tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=ROOT, capture_output=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument("--budget-minutes", type=float, default=None, help="one budget for every dataset")
    parser.add_argument("--datasets", default=None, help="comma-separated subset of the suite's datasets")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {SYSTEMS}")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--autokeras-python", default=None, help="an interpreter with autokeras installed")
    parser.add_argument("--out", default=RESULTS_DIR, help="folder for the tables and logs")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds: every system runs once per seed")
    parser.add_argument("--base", default=None, metavar="COMMIT",
                        help="also run each automl_kit system (enas, random_ws, random) on the code of COMMIT, "
                             "from a git worktree, right after the same system on this tree: a change measured "
                             "side by side in one run")
    args = parser.parse_args(argv)

    budgets = dict(SUITES[args.suite])
    if args.datasets:
        unknown = set(args.datasets.split(",")) - set(budgets)
        if unknown:
            parser.error(f"datasets {sorted(unknown)} are not in suite {args.suite!r}: choose from {sorted(budgets)}")
        budgets = {name: budgets[name] for name in args.datasets.split(",")}
    if args.budget_minutes is not None:
        budgets = {name: args.budget_minutes for name in budgets}
    systems = args.systems.split(",")
    try:
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        parser.error(f"--seeds takes whole numbers separated by commas, such as 0,1,2, not {args.seeds!r}")
    if set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems {sorted(set(systems) - set(SYSTEMS))}: choose from {SYSTEMS}")

    os.makedirs(args.out, exist_ok=True)
    stamp = {"suite": args.suite, "date": datetime.date.today().isoformat(), "commit": git_commit(),
             "machine": machine(), "command": "python -m benchmarks.run " + " ".join(argv or sys.argv[1:])}
    stem = os.path.join(args.out, f"suite_{args.suite}_{stamp['date']}_{stamp['commit']}")
    pythons = {system: sys.executable for system in systems}
    setup_failure = None
    if "autokeras" in systems:
        try:
            pythons["autokeras"] = ensure_autokeras_python(args.autokeras_python)
        except (OSError, subprocess.CalledProcessError) as error:
            setup_failure = f"could not create the AutoKeras environment: {error}"

    rows = []
    with tempfile.TemporaryDirectory(prefix="automl_kit_suite_") as scratch, contextlib.ExitStack() as stack:
        runs = [(system, system, ROOT) for system in systems]
        if args.base:
            base, tree = stack.enter_context(worktree_of(args.base, scratch))
            runs = [run for system in systems for run in [(system, system, ROOT)] + (
                [(system, f"{system}@{base}", tree)] if system in AUTOML_KIT_SYSTEMS else [])]
        for dataset, minutes in budgets.items():
            x_train, y_train, x_test, y_test = load_dataset(dataset, args.data_dir)
            data_path = os.path.join(scratch, f"{dataset}.npz")
            np.savez(data_path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
            for seed, (system, label, root) in itertools.product(seeds, runs):  # a seed's systems together
                print(f"{dataset}: {label}, seed {seed}, {minutes:g} min ...", flush=True)
                if system == "autokeras" and setup_failure:
                    result = {"status": "crashed", "reason": setup_failure}
                else:
                    log_path = f"{stem}_{dataset}_{label.replace('@', '_at_')}" + (
                        f"_seed{seed}.log" if len(seeds) > 1 else ".log")
                    result = run_system(system, data_path, minutes * 60, pythons[system], seed, log_path, root)
                row = {"dataset": dataset, "budget_seconds": minutes * 60, **result, "system": label, "seed": seed}
                rows.append(row)
                print("  " + ", ".join(f"{c}={format_cell(c, row.get(c))}" for c in COLUMNS[3:]), flush=True)
                stamp["versions"] = merged_versions(rows)
                write_tables(rows, stamp, stem)  # after every run, so an interrupted suite keeps its rows
    print(f"wrote {stem}.md and {stem}.csv")
    return rows


def merged_versions(rows):
    versions = {}
    for row in rows:
        for name, version in row.get("versions", {}).items():
            versions.setdefault(name, set()).add(version)
    return ", ".join(f"{name} {'/'.join(sorted(v))}" for name, v in sorted(versions.items())) or "unknown"


if __name__ == "__main__":
    main()
