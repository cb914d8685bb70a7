"""The wall-clock budget of a whole `fit`, shared between search and final training."""

import math
import time


def seconds_per_epoch(trial):
    """A trial's measured seconds per training epoch; if not measured, its time after its setup per epoch.

    Not measured: a trial cut by its deadline at its first step, which holds
    the trace. Its setup is counted apart wherever this is used (setup plus
    epochs): on digits at 2 minutes on busy cores, a trial of one step, 20 s
    of setup in its 23.8 s, was priced at 23.8 s an epoch, and a final
    training with 76 s left judged that no epoch fit and returned the
    trial's untrained model.

    >>> from automl_kit.tuner.trial import Trial
    >>> cut = Trial("0", None, "completed", epochs_run=1, seconds=23.8,
    ...             history={"epoch_seconds": [None], "setup_seconds": [20.0]})
    >>> round(seconds_per_epoch(cut), 2)
    3.8
    """
    measured = [v for v in trial.history.get("epoch_seconds", []) if v is not None and math.isfinite(v)]
    if measured:
        return float(sorted(measured)[len(measured) // 2])
    return max(trial.seconds - setup_seconds(trial), 0.0) / max(trial.epochs_run, 1)


def setup_seconds(trial):
    """A trial's seconds from its start to the end of its first step (build, compile, trace); 0 if not measured."""
    measured = trial.history.get("setup_seconds") or [0.0]
    return float(measured[0] or 0.0)


def shortest_trial_seconds(trials):
    """The least time any completed trial of `trials` needed for its setup and one epoch, or 0 without one."""
    costs = [setup_seconds(t) + seconds_per_epoch(t) for t in trials if t.epochs_run]
    return min(costs, default=0.0)


class TimeBudget:
    """Splits `seconds` between the search and the final training.

    The final model retrains the best trial's architecture on training plus
    validation data for the trial's best epoch count, so the time it needs is
    estimated from that trial: its setup (building and tracing), plus its
    seconds per epoch times the epochs times the growth of the data. The
    fixed setup matters most at small budgets, where it can exceed the
    epochs themselves. The search stops early enough to leave that much,
    but never less than `min_final_share` nor more than `max_final_share` of
    the budget.

    Example:

    >>> budget = TimeBudget(100)
    >>> round(budget.search_deadline(None) - budget.start)
    75
    """

    min_final_share = 0.25
    max_final_share = 0.5

    def __init__(self, seconds):
        self.seconds = float(seconds)
        self.start = time.monotonic()
        self.end = self.start + self.seconds

    def final_training_estimate(self, best_trial, data_growth=1.0, epochs=None):
        """Seconds the final training of `best_trial` for `epochs` (default: its best epoch) should take."""
        if best_trial is None or not best_trial.epochs_run:
            return 0.0
        epochs = best_trial.best_epoch if epochs is None else epochs
        return setup_seconds(best_trial) + epochs * seconds_per_epoch(best_trial) * data_growth

    def search_deadline(self, best_trial, data_growth=1.0):
        """The time (`time.monotonic`) after which the search must stop."""
        reserve = min(
            max(self.final_training_estimate(best_trial, data_growth), self.min_final_share * self.seconds),
            self.max_final_share * self.seconds,
        )
        return self.end - reserve

    def remaining(self):
        return self.end - time.monotonic()
