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
than `max_model_size`, are drawn again; a child that failed teaches
nothing. Every child is a trial on disk, and after each update the
controller's weights, optimizer state and baseline are checkpointed in the
project (`nas/`), with the count of children they have learned from. A search killed between a trial's record and that
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

from automl_kit.tuner.controller import Controller
from automl_kit.tuner.random_search import RandomSearch
from automl_kit.tuner.trial import COMPLETED


class NASSearch(RandomSearch):
    """A controller that learns by REINFORCE from children trained from scratch (`tuner="nas"`).

    Random search's loop (`RandomSearch.search`), with the controller's
    draws in place of uniform ones and an update after every child.
    """

    name = "nas"

    def resume(self, trials, progress):
        """Builds the controller as it was after its last checkpoint, then updates it on any trial recorded after."""
        space = self.search_space
        self.controller = Controller(space.decision_sizes, seed=self.seed,
                                     skip_positions=[space.decision_keys.index(key) for key in space.skip_keys])
        self.state = self.project.state.get("nas") or {"children": 0, "baseline": None, "history": []}
        if self.state["children"]:
            weights, optimizer = self._paths()
            self.controller.load_weights(weights)
            with np.load(optimizer, allow_pickle=False) as arrays:
                for i, v in enumerate(self.controller.optimizer.variables):
                    v.assign(arrays[f"v{i}"])
            self.controller.baseline = self.state["baseline"]
        missed = trials[self.state["children"]:]
        for trial in missed:
            self._update(trial)
        if missed:
            self._checkpoint()
        if trials:
            progress.line(f"Resuming: {len(trials)} child(ren) already trained in {self.project.path}; the controller "
                          f"has learned from {self.state['children']}"
                          + (f" ({len(missed)} replayed)." if missed else "."))

    def draw(self, rng):
        decisions, _, _ = self.controller.sample(rng)
        return self.search_space.decode(decisions)

    def learn(self, trial, progress):
        """One REINFORCE update on `trial`'s reward, then the controller's checkpoint."""
        self._update(trial)
        self._checkpoint()
        record = self.state["history"][-1]
        if "reward" in record:
            progress.scalars("controller", record["child"], reward=record["reward"], entropy=record["entropy"])

    def _update(self, trial):
        """Updates the controller on a completed `trial`'s reward (a failed one teaches nothing), and the state."""
        record = {"child": self.state["children"] + 1, "trial_id": trial.trial_id}
        if trial.status == COMPLETED:
            decisions = self.search_space.encode(trial.architecture)
            entropy = self.controller.entropy(decisions)
            reward = self.reward(trial)
            advantage = self.controller.update(decisions, reward + self.controller.entropy_weight * entropy)
            record.update(reward=float(reward), entropy=float(entropy), advantage=float(advantage),
                          baseline=float(self.controller.baseline))
        self.state = dict(self.state, children=self.state["children"] + 1, baseline=self.controller.baseline,
                          history=[*self.state["history"], record])

    # ------------------------------------------------------------ checkpoint --
    def _paths(self):
        folder = os.path.join(self.project.path, "nas")
        return os.path.join(folder, "controller.weights.h5"), os.path.join(folder, "controller_optimizer.npz")

    def _checkpoint(self):
        """Saves the controller's weights and optimizer state, then the state that counts the children learned from."""
        weights, optimizer = self._paths()
        os.makedirs(os.path.dirname(weights), exist_ok=True)
        tmp = os.path.join(os.path.dirname(weights), ".tmp-controller.weights.h5")
        self.controller.save_weights(tmp)
        os.replace(tmp, weights)
        tmp = os.path.join(os.path.dirname(optimizer), ".tmp-controller_optimizer.npz")
        np.savez(tmp, **{f"v{i}": v.numpy() for i, v in enumerate(self.controller.optimizer.variables)})
        os.replace(tmp, optimizer)
        self.project.update_state(nas=self.state)
