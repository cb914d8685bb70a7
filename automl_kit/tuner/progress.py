"""What a search shows while it runs: progress bars, one line per result, TensorBoard scalars.

Example:

>>> progress = Progress(verbose=0)
>>> with progress.bar("Trials", total=3, unit="trial") as bar:
...     bar.update(1)
>>> progress.line("not printed: verbose=0 is silent")
"""

import contextlib
import os
import time
import warnings

import keras


class _SilentBar:
    """Takes a tqdm bar's calls and shows nothing."""

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def set_postfix_str(self, *args, **kwargs):
        pass


def _bar_class():
    """tqdm's notebook widget in Jupyter when ipywidgets is installed, else the console bar.

    Without ipywidgets, tqdm.auto warns and falls back to the console bar,
    which Jupyter also updates in place; the warning is only noise here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm
    return tqdm


class Progress:
    """Reports a search as it runs.

    With `verbose` >= 1, each phase (supernet epochs, derivation, trials,
    final training) is one tqdm bar with its elapsed and estimated
    remaining time, and results are written as lines above it. `verbose=0`
    prints nothing. With `log_dir`, scalars (loss, reward, entropy, best
    score) also go to TensorBoard event files in `log_dir`.

    Args:
        verbose: 0 silent, 1 bars and lines, 2 also Keras's epoch lines.
        deadline: `time.monotonic()` value the whole fit must end by, or None;
            bars then show the time left before it.
        log_dir: folder for TensorBoard scalars, or None.
        epochs_until_deadline: True when epochs run until the deadline rather
            than to a count the user chose; epoch bars then count up without
            a total, and the time left tells how long they go on.
    """

    def __init__(self, verbose=1, deadline=None, log_dir=None, epochs_until_deadline=False):
        self.verbose = int(verbose)
        self.deadline = deadline
        self.log_dir = log_dir
        self.epochs_until_deadline = epochs_until_deadline
        self._writer = None

    @contextlib.contextmanager
    def bar(self, description, total, unit, initial=0):
        """A tqdm bar for one phase, closed when the block ends."""
        if not self.verbose:
            yield _SilentBar()
            return
        if unit == "epoch" and self.epochs_until_deadline:
            total = None
        bar = _bar_class()(total=total, initial=initial, desc=description, unit=unit, mininterval=0.5,
                           dynamic_ncols=True, leave=True)
        try:
            yield bar
        finally:
            bar.close()

    def status(self, bar, **fields):
        """Sets the bar's postfix to `fields` (floats to 4 digits), plus the time left under a deadline."""
        shown = {key: (f"{value:.4f}" if isinstance(value, float) else value)
                 for key, value in fields.items() if value is not None}
        if self.deadline is not None:
            left = max(0, int(self.deadline - time.monotonic()))
            shown["time left"] = f"{left // 60}:{left % 60:02d}"
        bar.set_postfix(shown, refresh=False)

    def line(self, text):
        """Prints `text` above any open bar."""
        if self.verbose:
            _bar_class().write(text)

    def scalars(self, tag, step, **values):
        """Writes `values` as TensorBoard scalars `tag/name` at `step` when there is a `log_dir`."""
        if self.log_dir is None:
            return
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "search"))
        with self._writer.as_default():
            for name, value in values.items():
                if value is not None:
                    tf.summary.scalar(f"{tag}/{name}", float(value), step=int(step))
        self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class EpochProgress(keras.callbacks.Callback):
    """Advances a progress bar by one per epoch and shows the epoch's metrics."""

    def __init__(self, progress, bar):
        super().__init__()
        self.progress = progress
        self.bar = bar

    def on_epoch_end(self, epoch, logs=None):
        self.bar.update(1)
        logs = logs or {}
        self.progress.status(self.bar, **{key: float(logs[key]) for key in ("loss", "accuracy") if key in logs})
