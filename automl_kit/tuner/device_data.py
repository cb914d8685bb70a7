"""Training data held on the device: copied there once, read by row index at every step.

Keras's `fit` on numpy arrays, like a loop that slices them, copies each
batch from the host to the device, so every epoch copies the whole training
set again. When one device computes and the data fits in
`MAX_RESIDENT_BYTES` (and in the device's free memory), the images are
copied to it once per training instead. Each step is then fed only the row indices of its batch (with the
labels and weights, a few bytes a sample) and gathers its images where they
already are. On a CPU the device is the host, and the gather does what
slicing the arrays did.

Under any other `tf.distribute.Strategy` (several replicas, or a device the
user chose) the data stays on the host: Keras's distributed input pipeline,
or `distribute.split_batch`, gives each replica its share.

Example:

>>> import numpy as np, tensorflow as tf
>>> rows, = on_device(tf.distribute.get_strategy(), np.arange(12.0).reshape(6, 2))
>>> take(rows, [4, 1]).numpy().tolist()
[[8.0, 9.0], [2.0, 3.0]]
"""

import contextlib

import keras
import numpy as np
import tensorflow as tf

# Above this, the images stay on the host: on a GPU they would take memory
# the models need (a laptop's may have 4 GiB), and on a CPU they would be a
# second copy of the data. Full MNIST takes 188 MB, CIFAR-10's training set 614 MB.
MAX_RESIDENT_BYTES = 1024**3


def compute_device(strategy):
    """The one device TensorFlow's default strategy computes on (its first GPU, else the CPU).

    None under any other strategy, which places the computation itself.
    """
    if tf.distribute.has_strategy() or strategy is not tf.distribute.get_strategy():
        return None
    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name


def on_device(strategy, *images):
    """The arrays `images`, all as float32 tensors on the computing device, or all as float32
    arrays where they stay on the host: together they are held by one limit."""
    images = [np.asarray(a, np.float32) for a in images]
    device = compute_device(strategy)
    if device is None or sum(a.nbytes for a in images) > MAX_RESIDENT_BYTES:
        return images
    try:
        with tf.device(device):
            return [tf.identity(tf.convert_to_tensor(a)) for a in images]
    except tf.errors.ResourceExhaustedError:  # the device has no room left for them
        return images


def take(rows, indices):
    """The rows `indices` of `rows`, a tensor from `on_device` or a numpy array."""
    if tf.is_tensor(rows):
        return tf.gather(rows, np.asarray(indices))
    return rows[indices]


@contextlib.contextmanager
def fitting_by_index(model, train_rows, validation_rows=None):
    """While open, `model.fit` takes row indices into `train_rows` where it took images, and
    its validation data row indices into `validation_rows`.

    The model itself is unchanged (its callbacks, predictions and saved
    files see the plain model); only its train and test steps gather their
    images first. The steps it had (Keras's own, or a recipe's that
    augments: see `recipe.training_with`) then run as they would on the images.
    """
    own = {name: model.__dict__[name] for name in ("train_step", "test_step") if name in model.__dict__}

    def gathering(step, rows):
        def run(data):
            indices, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            return step(keras.utils.pack_x_y_sample_weight(tf.gather(rows, indices), y, sample_weight))
        return run

    train_step, test_step = model.train_step, model.test_step
    model.train_step = gathering(train_step, train_rows)
    model.test_step = gathering(test_step, train_rows if validation_rows is None else validation_rows)
    model.train_function = model.test_function = None
    try:
        yield
    finally:
        del model.train_step, model.test_step
        for name, step in own.items():
            setattr(model, name, step)
        # Their traced functions gather from these rows; the next fit traces its own.
        model.train_function = model.test_function = None
