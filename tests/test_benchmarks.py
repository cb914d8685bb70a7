"""The benchmark runner's smallest configuration completes and writes well-formed tables.

Speed is never asserted here: the figures belong to `python -m benchmarks.run`.
"""

import csv
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_runner_smallest_configuration_writes_well_formed_tables(tmp_path):
    pytest.importorskip("keras_tuner")
    systems = ["baseline", "keras_tuner", "random", "autokeras"]
    command = [sys.executable, "-m", "benchmarks.run", "--suite", "quick", "--datasets", "digits",
               "--systems", ",".join(systems), "--budget-minutes", "0.2", "--out", str(tmp_path),
               # An interpreter that does not exist: AutoKeras's row must still appear, as crashed, with the reason.
               "--autokeras-python", str(tmp_path / "no-such-python")]
    subprocess.run(command, cwd=ROOT, check=True, timeout=900)

    (csv_path,) = tmp_path.glob("suite_quick_*.csv")
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert [row["system"] for row in rows] == systems
    assert {row["seed"] for row in rows} == {"0"}
    assert {row["dataset"] for row in rows} == {"digits"}
    assert all(row["date"] and row["commit"] and "CPUs" in row["machine"] for row in rows)
    by_system = {row["system"]: row for row in rows}
    # Twelve seconds is below what a search needs to stop cleanly (KerasTuner reloads its best model,
    # automl_kit trains a final model), and on a loaded machine even the fixed CNN's first epoch, which
    # holds its trace, can outlast it: any system may overrun. Its row is kept either way.
    for name in ("baseline", "keras_tuner", "random"):
        row = by_system[name]
        assert row["status"] in ("ok", "overran"), row
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0
        assert int(row["params"]) > 0 and int(row["evaluated"]) >= 1 and float(row["peak_rss_mb"]) > 0
    assert by_system["autokeras"]["status"] == "crashed"
    assert "no-such-python" in by_system["autokeras"]["reason"]

    (md_path,) = tmp_path.glob("suite_quick_*.md")
    lines = open(md_path).read().splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert len(table) == 2 + len(systems)
    # Every row, separator included, has the header's number of cells (a "|" in a reason is escaped).
    assert len({len(re.findall(r"(?<!\\)\|", line)) for line in table}) == 1
    assert any(line.startswith("Package versions:") and "tensorflow" in line for line in lines)


def test_several_seeds_end_the_table_with_each_systems_mean_lowest_and_highest(tmp_path):
    from benchmarks.run import write_tables

    rows = [{"dataset": "digits", "system": system, "seed": seed, "status": status, "test_accuracy": accuracy,
             "fit_seconds": 100.0 + seed} for seed, system, status, accuracy in (
        (0, "enas", "ok", 0.90), (0, "resnet", "ok", 0.80), (1, "enas", "ok", 0.94), (1, "resnet", "crashed", None))]
    stamp = {"suite": "quick", "date": "2026-12-05", "commit": "abc1234", "machine": "x86_64, 2 CPUs, no GPU",
             "command": "python -m benchmarks.run --seeds 0,1", "versions": "keras 3"}
    write_tables(rows, stamp, str(tmp_path / "suite"))
    text = (tmp_path / "suite.md").read_text()
    assert "## Over the seeds" in text
    assert "| digits | enas | 2 | 0.9200 | 0.9000 | 0.9400 | 100 |" in text
    assert "| digits | resnet | 1 | 0.8000 | 0.8000 | 0.8000 | 100 |" in text  # the crash has no accuracy
    write_tables(rows[:2], stamp, str(tmp_path / "one_seed"))
    assert "Over the seeds" not in (tmp_path / "one_seed.md").read_text()


def test_benchmark_splits_keep_images_and_labels_aligned():
    # Accuracy after twelve seconds of training depends on the machine's load, so alignment is checked here
    # instead: a linear model fitted on the training split scores far above chance (0.1) on the test split.
    from sklearn.linear_model import LogisticRegression

    from benchmarks.run import load_dataset

    x_train, y_train, x_test, y_test = load_dataset("digits", data_dir="unused: digits ships with scikit-learn")
    assert len(x_train) + len(x_test) == 1797 and y_train.dtype == y_test.dtype == "int64"
    assert set(y_train) == set(y_test) == set(range(10))
    model = LogisticRegression(max_iter=2000).fit(x_train.reshape(len(x_train), -1), y_train)
    assert model.score(x_test.reshape(len(x_test), -1), y_test) > 0.9


def test_fair_sampling_trains_each_op_equally_often_over_a_step_group():
    """benchmarks.ranking's `fair` supernet (FairNAS): over a group of lcm(decision sizes) steps,
    every choice of every decision of the micro space is drawn equally often; over any first
    k steps, within one of k/n."""
    import math

    from automl_kit.blocks import MicroSearchSpace
    import numpy as np

    from benchmarks.ranking import FairSampler

    sizes = MicroSearchSpace((8, 8)).decision_sizes
    steps = math.lcm(*sizes)
    sampler = FairSampler(np.random.default_rng(0), sizes)
    drawn = np.array([sampler.sample() for _ in range(2 * steps)])
    for column, size in enumerate(sizes):
        for group in (drawn[:steps], drawn[steps:]):
            assert np.bincount(group[:, column], minlength=size).tolist() == [steps // size] * size
        counts = np.bincount(drawn[:7, column], minlength=size)
        assert counts.max() - counts.min() <= 1
    assert len({tuple(row) for row in drawn}) > steps  # not one child over and over
