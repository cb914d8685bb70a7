"""A tiny ENAS fit under a tf.distribute strategy, run as its own process by test_distribute.py.

    python -m tests.distributed_fit mirrored OUT     # MirroredStrategy over two logical CPUs
    python -m tests.distributed_fit worker OUT       # MultiWorkerMirroredStrategy; TF_CONFIG names the cluster

The strategy must exist before TensorFlow first touches its devices, hence
a process of its own. Writes OUT/result_<task>.json (what the test checks)
and OUT/proba_<task>.npy; the classifier exports to OUT/model_<task>.keras.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402


def make_strategy(kind):
    if kind == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), "0"
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    return tf.distribute.MultiWorkerMirroredStrategy(), str(task["index"])


def main(kind, out):
    strategy, task = make_strategy(kind)
    import numpy as np
    from sklearn.datasets import load_digits

    from automl_kit import ImageClassifier

    digits = load_digits()
    x, y = digits.images, digits.target
    clf = ImageClassifier(max_trials=1, seed=0, directory=os.path.join(out, "search"), project_name="digits",
                          distribution_strategy=strategy)
    clf.fit(x[:600], y[:600], epochs=3, batch_size=32, verbose=1)
    clf.export_model(os.path.join(out, f"model_{task}.keras"))
    proba = clf.predict_proba(x[1000:1200])
    np.save(os.path.join(out, f"proba_{task}.npy"), proba)
    weights = clf.model_.trainable_weights
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "supernet_replicas": [record["replicas"] for record in clf.supernet_history_],
        "final_model_replicas": len(getattr(weights[0].value, "values", [weights[0].value])),
        "accuracy": float(np.mean(clf.predict(x[1000:1200]) == y[1000:1200])),
        "trials": [t.trial_id for t in clf.trials_],
    }
    with open(os.path.join(out, f"result_{task}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])
