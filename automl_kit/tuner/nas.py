"""NAS (Zoph and Le 2017; NASNet, Zoph et al. 2018): a learned controller over children trained from scratch.

The controller is ENAS's LSTM policy (`controller.py`) over the search
space's decisions. Each child it samples is built and trained from scratch
with the trials' recipe, like a `"random"` trial, and its validation score
is the reward of one REINFORCE update (plus the entropy bonus, against a
moving-average baseline). Where ENAS scores thousands of children with
shared weights, NAS pays a whole training per reward: on these budgets the
controller makes a handful of updates, so it explores much as random search
does, and only a long search (hundreds of children) lets it learn.

Child i is drawn with a generator seeded with (seed, i) from the controller
as the i children before it left it. Children already trained, or larger
than `max_model_size`, are drawn again. Every child is a trial on disk,
and after each update the controller's weights, optimizer state and baseline
are checkpointed in the project (`nas/`), with the count of children they
have learned from. A search killed between a trial's record and that
checkpoint replays the missing updates from the recorded trials on resume,
so a resumed search proposes exactly what the uninterrupted one would have.

Example (a scripted "training" that rewards separable 5x5 convolutions):

>>> import tempfile
>>> from automl_kit.blocks import MicroSearchSpace
>>> from automl_kit.tuner import Project
>>> from automl_kit.tuner.trial import COMPLETED, Trial
>>> class Scripted(NASSearch):
...     def train_trial(self, trial_id, architecture, data, **kwargs):
...         ops = [op for node in architecture.normal for op in node.ops]
...         return Trial(trial_id, architecture, COMPLETED, score=ops.count("sep5x5") / len(ops), best_epoch=1)
>>> with tempfile.TemporaryDirectory() as folder:
...     project = Project(folder).start({})
...     search = Scripted(project=project, search_space=MicroSearchSpace((8, 8), num_nodes=2),
...                       objective="val_accuracy", seed=0)
...     trials = search.search(None, max_trials=4, epochs=1, batch_size=32)
...     [len(trials), project.state["nas"]["children"]]
[4, 4]
"""

import os

import numpy as np

from automl_kit.tuner.base import SearchStrategy
from automl_kit.tuner.controller import Controller
from automl_kit.tuner.progress import Progress
from automl_kit.tuner.trial import COMPLETED, FAILED, Trial

_MAX_SAMPLING_ATTEMPTS = 100


class NASSearch(SearchStrategy):
    """A controller that learns by REINFORCE from children trained from scratch (`tuner="nas"`)."""

    name = "nas"

    def search(self, data, *, max_trials, epochs, batch_size, callbacks=(), budget=None, progress=None):
        progress = progress or Progress(verbose=0)
        trials = self.project.load_trials()
        space = self.search_space
        controller = Controller(space.decision_sizes, seed=self.seed,
                                skip_positions=[space.decision_keys.index(key) for key in space.skip_keys])
        state = self._restore(controller, trials, progress)
        seen = {t.architecture for t in trials}
        with progress.bar("Children", total=max_trials, unit="child", initial=len(trials)) as bar:
            for index in range(len(trials), max_trials):
                deadline, stop = self.next_deadline(trials, data, budget, progress)
                if stop:
                    break
                trial_id = f"{index:04d}"
                architecture = self._propose(controller, index, data, seen)
                if architecture is None:
                    trial = Trial(trial_id, space.smallest(), FAILED,
                                  failure_reason="the controller proposed no new architecture within max_model_size")
                else:
                    seen.add(architecture)
                    trial = self.train_trial(
                        trial_id, architecture, data, epochs=epochs, batch_size=batch_size, callbacks=callbacks,
                        deadline=deadline, seed=self.seed + index, verbose=progress.verbose, previous_trials=trials,
                    )
                self.record(trial, trials, progress, bar)
                state = self._learn(state, controller, trial)
                self._checkpoint(state, controller)
                if "reward" in state["history"][-1]:
                    record = state["history"][-1]
                    progress.scalars("controller", record["child"], reward=record["reward"],
                                     entropy=record["entropy"])
        return trials

    def _propose(self, controller, index, data, seen):
        """Child `index`'s architecture, drawn from the controller; None when every draw was seen or too large."""
        rng = np.random.default_rng([self.seed, index])
        for _ in range(_MAX_SAMPLING_ATTEMPTS):
            decisions, _, _ = controller.sample(rng)
            architecture = self.search_space.decode(decisions)
            if architecture not in seen and self.within_size(architecture, data):
                return architecture
        return None

    def _learn(self, state, controller, trial):
        """One REINFORCE update on `trial`'s reward (none for a failed child); returns the new state."""
        record = {"child": state["children"] + 1, "trial_id": trial.trial_id}
        if trial.status == COMPLETED:
            decisions = self.search_space.encode(trial.architecture)
            entropy = controller.entropy(decisions)
            reward = self.reward(trial)
            advantage = controller.update(decisions, reward + controller.entropy_weight * entropy)
            record.update(reward=float(reward), entropy=float(entropy), advantage=float(advantage),
                          baseline=float(controller.baseline))
        return dict(state, children=state["children"] + 1, baseline=controller.baseline,
                    history=[*state["history"], record])

    # ------------------------------------------------------------ checkpoint --
    def _paths(self):
        folder = os.path.join(self.project.path, "nas")
        return os.path.join(folder, "controller.weights.h5"), os.path.join(folder, "controller_optimizer.npz")

    def _checkpoint(self, state, controller):
        """Saves the controller's weights and optimizer state, then the state that counts the children learned from."""
        weights, optimizer = self._paths()
        os.makedirs(os.path.dirname(weights), exist_ok=True)
        tmp = os.path.join(os.path.dirname(weights), ".tmp-controller.weights.h5")
        controller.save_weights(tmp)
        os.replace(tmp, weights)
        tmp = os.path.join(os.path.dirname(optimizer), ".tmp-controller_optimizer.npz")
        np.savez(tmp, **{f"v{i}": v.numpy() for i, v in enumerate(controller.optimizer.variables)})
        os.replace(tmp, optimizer)
        self.project.update_state(nas=state)

    def _restore(self, controller, trials, progress):
        """The controller as it was after its last checkpoint, then updated on any trial recorded after it."""
        state = self.project.state.get("nas") or {"children": 0, "baseline": None, "history": []}
        if state["children"]:
            weights, optimizer = self._paths()
            controller.load_weights(weights)
            with np.load(optimizer, allow_pickle=False) as arrays:
                for i, v in enumerate(controller.optimizer.variables):
                    v.assign(arrays[f"v{i}"])
            controller.baseline = state["baseline"]
        missed = trials[state["children"]:]
        for trial in missed:
            state = self._learn(state, controller, trial)
        if missed:
            self._checkpoint(state, controller)
        if trials:
            progress.line(f"Resuming: {len(trials)} child(ren) already trained in {self.project.path}; the controller "
                          f"has learned from {state['children']}" + (f" ({len(missed)} replayed)." if missed else "."))
        return state
