"""Full-MNIST search at a wall-clock budget: `python -m benchmarks.mnist_search`.

Trains on the 60,000 MNIST training images and reports test accuracy on the
10,000 test images, with the search time, the number of trials and the best
architecture. The budget is `ImageClassifier(time_limit=...)`: the whole `fit`,
search and final training together. Results are appended as a Markdown row to
`benchmarks/results/mnist_search.md`.

Needs `../shared/datasets/mnist_train.npz` and `mnist_test.npz` (or
`--data-dir`).
"""

import argparse
import datetime
import os
import platform
import subprocess
import time

import numpy as np

DEFAULT_DATA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets")
RESULTS = os.path.join(os.path.dirname(__file__), "results", "mnist_search.md")


def load(data_dir, name):
    with np.load(os.path.join(data_dir, f"{name}.npz")) as data:
        return data["x"], data["y"]


def git_commit():
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                       cwd=os.path.dirname(__file__)).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--tuner", default="random")
    parser.add_argument("--max-trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=5, help="most epochs per trial")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)

    from automl_kit import ImageClassifier

    x_train, y_train = load(args.data_dir, "mnist_train")
    x_test, y_test = load(args.data_dir, "mnist_test")
    clf = ImageClassifier(max_trials=args.max_trials, tuner=args.tuner, seed=args.seed,
                          time_limit=args.budget_minutes * 60)
    started = time.monotonic()
    clf.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=1)
    fit_seconds = time.monotonic() - started
    accuracy = clf.score(x_test, y_test)
    search_seconds = sum(t.seconds for t in clf.trials_)
    completed = [t for t in clf.trials_ if t.status == "completed"]

    print(f"test accuracy      {accuracy:.4f}")
    print(f"fit wall time      {fit_seconds:.0f} s (budget {args.budget_minutes * 60:.0f} s)")
    print(f"search time        {search_seconds:.0f} s in {len(clf.trials_)} trials ({len(completed)} completed)")
    print(f"best val accuracy  {clf.best_score_:.4f} (trial {clf.best_trial_.trial_id}, "
          f"{clf.best_trial_.best_epoch} epochs)")
    print(f"best architecture  {clf.best_architecture_}")
    print(f"final parameters   {clf.export_model().count_params():,}")

    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    if not os.path.exists(RESULTS):
        with open(RESULTS, "w") as f:
            f.write("| date | commit | machine | tuner | budget (min) | test acc | fit s | search s | trials "
                    "| params | best architecture |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    with open(RESULTS, "a") as f:
        f.write(
            f"| {datetime.date.today()} | {git_commit()} | {platform.machine()}, {os.cpu_count()} CPUs, no GPU "
            f"| {args.tuner} | {args.budget_minutes:g} | {accuracy:.4f} | {fit_seconds:.0f} | {search_seconds:.0f} "
            f"| {len(clf.trials_)} | {clf.export_model().count_params():,} "
            f"| {str(clf.best_architecture_).replace('|', chr(92) + '|')} |\n"
        )
    print(f"appended to {os.path.abspath(RESULTS)}")


if __name__ == "__main__":
    main()
