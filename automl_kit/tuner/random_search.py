"""Random search: each trial samples an architecture and trains it from scratch."""

import numpy as np

from automl_kit.tuner.base import SearchStrategy
from automl_kit.tuner.progress import Progress
from automl_kit.tuner.trial import FAILED, Trial

_MAX_SAMPLING_ATTEMPTS = 100


class RandomSearch(SearchStrategy):
    """Samples architectures uniformly and trains each from scratch.

    Trial i draws its architecture from a generator seeded with (seed, i), so a
    resumed search proposes exactly what the interrupted one would have.
    Duplicates and models over `max_model_size` are re-drawn. `NASSearch`
    (nas.py) is this loop with a learned `draw` and a `learn` step.
    """

    name = "random"

    def draw(self, rng):
        """One architecture drawn with the numpy Generator `rng`: uniformly from the space."""
        return self.search_space.sample(rng)

    def resume(self, trials, progress):
        """Picks up from the recorded `trials` before the first new one."""
        if trials:
            progress.line(f"Resuming: {len(trials)} trial(s) already recorded in {self.project.path}.")

    def learn(self, trial, progress):
        """Learns from a finished trial: random search does not."""

    def _propose(self, index, data, seen):
        rng = np.random.default_rng([self.seed, index])
        for _ in range(_MAX_SAMPLING_ATTEMPTS):
            architecture = self.draw(rng)
            if architecture in seen or not self.within_size(architecture, data):
                continue
            return architecture
        return None

    def search(self, data, *, max_trials, epochs, batch_size, callbacks=(), budget=None, progress=None):
        progress = progress or Progress(verbose=0)
        trials = self.project.load_trials()
        self.resume(trials, progress)
        seen = {t.architecture for t in trials}
        with progress.bar("Trials", total=max_trials, unit="trial", initial=len(trials)) as bar:
            for index in range(len(trials), max_trials):
                deadline, stop = self.next_deadline(trials, data, budget, progress)
                if stop:
                    break
                trial_id = f"{index:04d}"
                architecture = self._propose(index, data, seen)
                if architecture is None:
                    trial = Trial(trial_id, self.search_space.smallest(), FAILED,
                                  failure_reason="no new architecture within max_model_size was found")
                else:
                    seen.add(architecture)
                    trial = self.train_trial(
                        trial_id, architecture, data, epochs=epochs, batch_size=batch_size,
                        callbacks=callbacks, deadline=deadline, seed=self.seed + index, verbose=progress.verbose,
                        previous_trials=trials,
                    )
                self.record(trial, trials, progress, bar)
                self.learn(trial, progress)
        return trials
