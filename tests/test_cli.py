"""The `automl-kit` command, run as a user runs it: in subprocesses."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from automl_kit import ImageClassifier
from automl_kit.cli import duration, image_size
from tests.test_files import write_image_tree

CLI = [sys.executable, "-m", "automl_kit"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def run(*args, cwd):
    return subprocess.run([*CLI, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize("command", [[], ["fit"], ["predict"], ["summary"]])
def test_help_works_for_every_command(command, tmp_path):
    result = run(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: automl-kit" in result.stdout
    if command == ["fit"]:
        assert "--time-limit" in result.stdout


def test_durations_and_sizes_parse_as_documented():
    assert duration("45") == 45 and duration("90s") == 90 and duration("10m") == 600 and duration("2h") == 7200
    assert image_size("32") == (32, 32) and image_size("24x40") == (24, 40)
    for bad in ("ten minutes", "-5m", "0"):
        with pytest.raises(Exception, match="not a duration"):
            duration(bad)


def test_fit_then_predict_gives_the_python_api_labels(tmp_path):
    paths, _ = write_image_tree(str(tmp_path / "images"))
    fit = run("fit", "images", "--time-limit", "20s", "--tuner", "random", "--max-trials", "1", "--seed", "0",
              "--output", "out/model.keras", "--quiet", cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert (tmp_path / "out" / "model.keras").exists() and (tmp_path / "out" / "model_search").is_dir()

    predict = run("predict", "out/model.keras", "images", "--csv", "predictions.csv", cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr[-3000:]
    lines = [line.split("\t") for line in predict.stdout.strip().splitlines()]
    assert [os.path.abspath(tmp_path / path) for path, _, _ in lines] == paths
    # The same search, resumed through the Python API: it is complete, so the stored model answers.
    clf = ImageClassifier(max_trials=1, tuner="random", seed=0, time_limit=20, directory=str(tmp_path / "out"),
                          project_name="model_search")
    clf.fit(str(tmp_path / "images"), verbose=0)
    assert [label for _, label, _ in lines] == clf.predict(paths).tolist()
    probabilities = clf.predict_proba(paths).max(axis=1)
    np.testing.assert_allclose([float(p) for _, _, p in lines], probabilities, atol=1e-3)
    with open(tmp_path / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(paths) and [row["label"] for row in rows] == [label for _, label, _ in lines]

    summary = run("summary", "out/model_search", cwd=tmp_path)
    assert summary.returncode == 0 and "Best architecture" in summary.stdout, summary.stderr[-3000:]


def test_bad_input_exits_2_with_a_message_naming_it(tmp_path):
    result = run("fit", "no_such_folder", "--time-limit", "1m", cwd=tmp_path)
    assert result.returncode == 2 and "no_such_folder" in result.stderr and "Traceback" not in result.stderr
    result = run("fit", "images", "--time-limit", "soon", cwd=tmp_path)
    assert result.returncode == 2 and "not a duration" in result.stderr
    result = run("summary", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2 and "holds no search" in result.stderr
