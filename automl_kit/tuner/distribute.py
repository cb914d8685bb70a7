"""Searching under a `tf.distribute.Strategy`: who writes, and keeping the workers in step.

Under `MultiWorkerMirroredStrategy` every worker process runs the same
`fit`, and the collective ops of a step only complete when every worker
issues them in the same order. So every decision that shapes the steps
(which architecture, how many steps, which candidates) must be the same
on every worker: they all draw from the same seeds, their metrics are
all-reduced, and what only the chief knows (the project on disk, the
architecture of a step) is broadcast from it. Only the chief writes the
project and exports; see `ImageClassifier.fit`.

Example:

>>> import tensorflow as tf
>>> workers(tf.distribute.get_strategy())
(1, True)
>>> split_batch(tf.distribute.get_strategy(), [1, 2, 3])
([1, 2, 3],)
"""

import numpy as np
import tensorflow as tf


def workers(strategy):
    """(number of worker processes, whether this process is the chief) of `strategy`'s cluster.

    The chief is the task of type "chief", or worker 0 of a cluster without
    one, as in TensorFlow's multi-worker training.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1, True
    spec = resolver.cluster_spec().as_dict()
    count = len(spec.get("chief", [])) + len(spec.get("worker", []))
    if count <= 1:
        return 1, True
    if "chief" in spec:
        return count, resolver.task_type == "chief"
    return count, resolver.task_type == "worker" and int(resolver.task_id) == 0


def split_batch(strategy, *arrays):
    """Each array of one global batch, as the shards of this process's replicas.

    Replica r of n (counted over all workers) takes rows r, r + n, r + 2n, ...
    of the global batch, so every worker passes the same global batch and
    the replicas together see each row once. With one replica the arrays
    come back as they are.
    """
    n = strategy.num_replicas_in_sync
    if n == 1:
        return arrays
    if len(arrays[0]) < n:
        raise ValueError(f"A batch of {len(arrays[0])} samples cannot be split over {n} replicas: "
                         f"use a batch_size of at least {n}.")
    return tuple(
        strategy.experimental_distribute_values_from_function(
            lambda context, a=np.asarray(a): a[context.replica_id_in_sync_group::n])
        for a in arrays
    )


def from_first_replica(values):
    """In a replica context: `values` (a numeric tensor) as replica 0 holds it, on every replica."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    dtype = values.dtype
    first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), tf.float32)
    # float32 sums are exact for the small integers this carries (architecture decisions).
    return tf.cast(context.all_reduce("sum", tf.cast(values, tf.float32) * first), dtype)


def broadcast(strategy, values):
    """`values` (a numpy array of numbers) as the chief holds it, returned on every worker.

    It is also a barrier: no worker returns before every worker has called it.
    """
    values = np.asarray(values)
    if strategy.num_replicas_in_sync == 1:
        return values
    result = strategy.run(lambda: from_first_replica(tf.constant(values)))
    return strategy.experimental_local_results(result)[0].numpy()
