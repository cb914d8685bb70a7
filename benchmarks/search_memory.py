"""Memory and disk of a 10-trial search on MNIST: `python -m benchmarks.search_memory`.

    python -m benchmarks.search_memory --trials 10 --train-images 6000 --epochs 2

Runs random search from scratch (a new model per trial, the case where
memory could pile up) on the first `--train-images` MNIST training images,
in a fresh project directory. Prints, per trial, the resident memory of the
process when the trial ended (`Trial.rss_mb`), the peak resident memory of
the whole run, and the disk the project directory takes at the end.
Appends the summary to `benchmarks/results/search_memory.md`.
"""

import argparse
import datetime
import os
import resource
import tempfile
import time

from benchmarks.search_at_budget import DEFAULT_DATA_DIR, RESULTS_DIR, append_row, git_commit, load


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--train-images", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--tuner", default="random")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    args = parser.parse_args()

    from automl_kit import ImageClassifier

    x, y = load(args.data_dir, "mnist_train")
    x, y = x[:args.train_images], y[:args.train_images]
    with tempfile.TemporaryDirectory(prefix="automl_kit_memory_") as folder:
        started = time.monotonic()
        clf = ImageClassifier(max_trials=args.trials, tuner=args.tuner, seed=0, directory=folder)
        clf.fit(x, y, epochs=args.epochs, verbose=1)
        seconds = time.monotonic() - started
        disk_mb = folder_bytes(folder) / 1e6
    rss = [t.rss_mb for t in clf.trials_]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # KB on Linux
    print("\nresident memory after each trial (MB):", " ".join(f"{v:.0f}" for v in rss))
    growth = (rss[-1] - rss[0]) / max(len(rss) - 1, 1)
    print(f"first trial {rss[0]:.0f} MB, last trial {rss[-1]:.0f} MB, {growth:+.1f} MB per trial; "
          f"peak {peak_mb:.0f} MB; project directory {disk_mb:.1f} MB; fit {seconds:.0f} s")
    append_row(
        os.path.join(RESULTS_DIR, "search_memory.md"),
        ["date", "commit", "tuner", "trials", "train images", "epochs", "RSS first trial (MB)",
         "RSS last trial (MB)", "MB per trial", "peak RSS (MB)", "disk (MB)", "fit (s)"],
        [datetime.date.today().isoformat(), git_commit(), args.tuner, len(rss), args.train_images, args.epochs,
         f"{rss[0]:.0f}", f"{rss[-1]:.0f}", f"{growth:+.1f}", f"{peak_mb:.0f}", f"{disk_mb:.1f}", f"{seconds:.0f}"],
    )


if __name__ == "__main__":
    main()
