"""A whole `fit` at a wall-clock budget on a real dataset: `python -m benchmarks.search_at_budget`.

    python -m benchmarks.search_at_budget --dataset mnist --budget-minutes 10
    python -m benchmarks.search_at_budget --dataset cifar10 --budget-minutes 20 --tuner random_ws

MNIST trains on the 60,000 training images and tests on the 10,000 test
images; CIFAR-10 trains on `data_batch_1` (10,000 images) and tests on the
first 1,000 test images. The budget is `ImageClassifier(time_limit=...)`: the
whole `fit`, search and final training together. Everything else is the
default `ImageClassifier()` unless a flag says otherwise.

Prints test accuracy, fit time, the search's throughput (architectures
scored per minute with shared weights, trials per minute from scratch) and,
for ENAS, the controller's learning curve (mean reward and policy entropy
per supernet epoch). Appends a row to `benchmarks/results/<dataset>_search.md`
and the curve to `benchmarks/results/<dataset>_<tuner>_curve.md`.

Needs the `.npz` files of `../shared/datasets/` (or `--data-dir`).
"""

import argparse
import datetime
import os
import platform
import subprocess
import tempfile
import time

import numpy as np

DEFAULT_DATA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")
RESULTS_DIR = os.path.join(os.path.dirname(__file__), "results")
DATASETS = {
    "mnist": ("mnist_train", "mnist_test"),
    "cifar10": ("cifar10_train_batch1", "cifar10_test_first1000"),
}


def load(data_dir, name):
    """(x, y) from the shared `<name>.npz`."""
    path = os.path.join(data_dir, f"{name}.npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: pass --data-dir, the folder of the shared .npz files")
    with np.load(path) as data:
        return data["x"], data["y"]


def git_commit():
    """The short hash of HEAD, with "+changes" when the code differs from it (results aside)."""
    here = os.path.dirname(__file__)
    try:
        commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True, cwd=here).strip()
        changed = subprocess.check_output(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                           ":(exclude)benchmarks/results"], text=True, cwd=os.path.dirname(here))
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if changed.strip() else "")


def append_row(path, header, row):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
    with open(path, "a") as f:
        f.write("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist")
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--tuner", default="enas")
    parser.add_argument("--search-space", default="micro")
    parser.add_argument("--max-trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=None, help="default: the ImageClassifier default")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)

    from automl_kit import ImageClassifier

    train_name, test_name = DATASETS[args.dataset]
    x_train, y_train = load(args.data_dir, train_name)
    x_test, y_test = load(args.data_dir, test_name)
    with tempfile.TemporaryDirectory(prefix="automl_kit_bench_") as folder:
        clf = ImageClassifier(max_trials=args.max_trials, tuner=args.tuner, search_space=args.search_space,
                              seed=args.seed, time_limit=args.budget_minutes * 60, epochs=args.epochs,
                              directory=folder)
        started = time.monotonic()
        clf.fit(x_train, y_train, batch_size=args.batch_size, verbose=1)
        fit_seconds = time.monotonic() - started
        disk_mb = sum(os.path.getsize(os.path.join(root, name))
                      for root, _, names in os.walk(folder) for name in names) / 1e6
    accuracy = clf.score(x_test, y_test)
    completed = [t for t in clf.trials_ if t.status == "completed"]
    trial_seconds = sum(t.seconds for t in clf.trials_)
    history = clf.supernet_history_
    shared_seconds = sum(r["seconds"] for r in history) + clf.derive_seconds_
    scored = sum(r.get("controller_steps", 0) for r in history) + clf.architectures_derived_
    params = clf.export_model().count_params()

    print(f"test accuracy        {accuracy:.4f} on {len(x_test):,} test images")
    print(f"fit wall time        {fit_seconds:.0f} s (budget {args.budget_minutes * 60:.0f} s)")
    if history:
        print(f"supernet             {len(history)} epochs, {shared_seconds:.0f} s with derivation; "
              f"{scored} architectures scored = {scored / (shared_seconds / 60):.1f} per minute")
    print(f"trials from scratch  {len(clf.trials_)} ({len(completed)} completed) in {trial_seconds:.0f} s = "
          f"{len(clf.trials_) / max(trial_seconds / 60, 1e-9):.2f} per minute")
    rss = [t.rss_mb for t in clf.trials_ if t.rss_mb is not None]
    if rss:
        print(f"resident memory      after trial 1: {rss[0]:.0f} MB, after trial {len(rss)}: {rss[-1]:.0f} MB")
    print(f"project on disk      {disk_mb:.1f} MB")
    print(f"best trial           {clf.best_trial_.trial_id}: {clf.objective} {clf.best_score_:.4f}")
    print(f"best architecture    {clf.best_architecture_}")
    print(f"final parameters     {params:,}")

    append_row(
        os.path.join(RESULTS_DIR, f"{args.dataset}_search.md"),
        ["date", "commit", "machine", "tuner", "space", "budget (min)", "test acc", "fit s", "supernet epochs",
         "scored / min", "trials", "trials / min", "params", "best architecture"],
        [datetime.date.today(), git_commit(), f"{platform.machine()}, {os.cpu_count()} CPUs, no GPU", args.tuner,
         args.search_space, f"{args.budget_minutes:g}", f"{accuracy:.4f}", f"{fit_seconds:.0f}", len(history),
         f"{scored / (shared_seconds / 60):.1f}" if history else "-", len(clf.trials_),
         f"{len(clf.trials_) / max(trial_seconds / 60, 1e-9):.2f}", f"{params:,}", clf.best_architecture_],
    )
    if history:
        curve = os.path.join(RESULTS_DIR, f"{args.dataset}_{args.tuner}_curve.md")
        with open(curve, "w") as f:
            f.write(f"Supernet epochs of `{args.tuner}` on {args.dataset} ({args.budget_minutes:g}-minute budget, "
                    f"commit {git_commit()}, {datetime.date.today()}). Reward: validation accuracy of the "
                    "sampled children with shared weights; entropy: of the controller's policy, summed over "
                    "its decisions.\n\n| epoch | shared steps | loss | mean reward | mean entropy | seconds |\n"
                    "|---|---|---|---|---|---|\n")
            for r in history:
                f.write(f"| {r['epoch']} | {r['shared_steps']} | {r['loss']:.3f} | "
                        f"{r.get('mean_reward', float('nan')):.3f} | {r.get('mean_entropy', float('nan')):.2f} | "
                        f"{r['seconds']:.1f} |\n")
        print(f"curve written to {os.path.abspath(curve)}")


if __name__ == "__main__":
    main()
