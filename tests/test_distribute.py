"""Distribution strategies, XLA and out-of-memory retries (issue 9), on CPU.

The strategies need processes of their own (a strategy must exist before
TensorFlow touches its devices): `tests/distributed_fit.py` runs the fit.
"""

import json
import os
import socket
import subprocess
import sys
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from automl_kit import ImageClassifier
from automl_kit.blocks.builder import network_of
from automl_kit.tuner import distribute, training
from tests.conftest import QUICK

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_fit(kind, out, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.distributed_fit", kind, str(out)], cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _finish(process, timeout=600):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-4000:]
    return output


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reloaded_probabilities(path, x):
    return keras.models.load_model(path).predict(x.astype("float32"), verbose=0)["probabilities"]


@pytest.mark.slow
def test_mirrored_strategy_over_two_cpus_searches_trains_and_exports(tmp_path):
    from sklearn.datasets import load_digits

    _finish(_run_fit("mirrored", tmp_path))
    result = json.loads((tmp_path / "result_0.json").read_text())
    assert result["replicas"] == 2
    assert result["supernet_replicas"] and set(result["supernet_replicas"]) == {2}  # every supernet epoch
    assert result["final_model_replicas"] == 2  # the final model's weights are mirrored on both devices
    assert result["accuracy"] > 0.3  # it learned: chance is 0.1
    x = load_digits().images[1000:1200]
    np.testing.assert_allclose(_reloaded_probabilities(tmp_path / "model_0.keras", x),
                               np.load(tmp_path / "proba_0.npy"), atol=1e-5)


@pytest.mark.slow
def test_multi_worker_strategy_two_processes_one_project_one_export(tmp_path):
    from sklearn.datasets import load_digits

    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = [
        _run_fit("worker", tmp_path, {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in range(2)
    ]
    for process in processes:
        _finish(process)
    results = [json.loads((tmp_path / f"result_{i}.json").read_text()) for i in range(2)]
    assert all(r["replicas"] == 2 and set(r["supernet_replicas"]) == {2} for r in results)
    assert results[0]["trials"] == results[1]["trials"] == ["0000"]
    # The workers trained the same model in step: their predictions agree.
    np.testing.assert_allclose(np.load(tmp_path / "proba_0.npy"), np.load(tmp_path / "proba_1.npy"), atol=1e-6)
    # Only the chief exported and wrote the project.
    assert sorted(p.name for p in tmp_path.glob("*.keras")) == ["model_0.keras"]
    assert sorted(os.listdir(tmp_path / "search")) == ["digits"]
    project = tmp_path / "search" / "digits"
    assert sorted(os.listdir(project)) == ["best_model.keras", "project.json", "supernet", "trials"]
    state = json.loads((project / "project.json").read_text())
    assert state["status"] == "completed" and state["best_trial"] == "0000"
    assert len(state["shared_weights"]["history"]) == 3
    assert sorted(os.listdir(project / "trials")) == ["0000.json", "0000.weights.h5"]
    x = load_digits().images[1000:1200]
    np.testing.assert_allclose(_reloaded_probabilities(tmp_path / "model_0.keras", x),
                               np.load(tmp_path / "proba_0.npy"), atol=1e-5)


def test_the_chief_is_the_chief_task_or_worker_zero():
    def strategy(spec, task_type, task_id):
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(spec), task_type=task_type, task_id=task_id)
        return types.SimpleNamespace(cluster_resolver=resolver)

    two_workers = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    assert distribute.workers(strategy(two_workers, "worker", 0)) == (2, True)
    assert distribute.workers(strategy(two_workers, "worker", 1)) == (2, False)
    with_chief = {"chief": ["127.0.0.1:3"], **two_workers}
    assert distribute.workers(strategy(with_chief, "chief", 0)) == (3, True)
    assert distribute.workers(strategy(with_chief, "worker", 0)) == (3, False)
    assert distribute.workers(tf.distribute.get_strategy()) == (1, True)


def test_a_batch_smaller_than_the_replicas_is_refused():
    strategy = types.SimpleNamespace(num_replicas_in_sync=4)
    with pytest.raises(ValueError, match="at least 4"):
        distribute.split_batch(strategy, np.zeros(3))


@pytest.mark.parametrize("settings, message", [
    (dict(distribution_strategy="mirrored"), "must be a tf.distribute.Strategy"),
    (dict(jit_compile="xla"), "jit_compile must be one of"),
])
def test_bad_distribution_settings_are_refused_before_training(small_digits, no_training, settings, message):
    x, y = small_digits
    with pytest.raises((TypeError, ValueError), match=message):
        ImageClassifier(**settings).fit(x, y)


@pytest.mark.parametrize("settings, fit_kwargs, message", [
    (dict(time_limit=60), {}, "time_limit is not supported with 2 workers"),
    ({}, dict(callbacks=[keras.callbacks.History()]), "callbacks are not supported with 2 workers"),
])
def test_what_several_workers_cannot_keep_in_step_is_refused_before_training(
        small_digits, no_training, monkeypatch, settings, fit_kwargs, message):
    import automl_kit.image_classifier as facade

    monkeypatch.setattr(facade.distribute, "workers", lambda strategy: (2, True))
    x, y = small_digits
    clf = ImageClassifier(distribution_strategy=tf.distribute.get_strategy(), **settings)
    with pytest.raises(ValueError, match=message):
        clf.fit(x, y, **fit_kwargs)


def test_out_of_memory_halves_the_batch_and_records_it(small_digits, monkeypatch, capsys):
    x, y = small_digits
    real_train, batch_sizes = training.train, []

    def train(model, x, y, *, batch_size, **kwargs):
        batch_sizes.append(batch_size)
        fits = 8 if kwargs.get("validation_data") is not None else 4  # the final training has no validation data
        if batch_size > fits:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return real_train(model, x, y, batch_size=batch_size, **kwargs)

    monkeypatch.setattr(training, "train", train)
    clf = ImageClassifier(max_trials=1, seed=0, **QUICK).fit(x, y, epochs=1, batch_size=32, verbose=1)
    trial = clf.trials_[0]
    assert trial.status == "completed" and trial.batch_size == 8
    # The trial halved twice; the final training started at the trial's batch size and halved once more.
    assert batch_sizes == [32, 16, 8, 8, 4]
    assert "the final training starts again at batch size 4" in capsys.readouterr().out
    assert np.mean(clf.predict(x) == y) > 0.2


def test_jit_compile_reaches_the_trained_models(small_digits):
    x, y = small_digits
    clf = ImageClassifier(max_trials=1, seed=0, jit_compile=True, **QUICK).fit(x, y, epochs=3, verbose=0)
    assert network_of(clf.model_).jit_compile is True  # the trained network, inside its test-time views
    assert np.mean(clf.predict(x) == y) > 0.5
