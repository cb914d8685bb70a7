"""PNAS (Liu et al. 2018): progressive search over cells, one node at a time, ranked by a learned surrogate.

PNAS searches the micro space from simple cells to complex ones. Step 1
trains cells of one node; every later step expands each of the K best cells
of the step before by one node in every possible way, ranks all the
expansions with a surrogate fitted on every score so far, and trains only
the surrogate's top K. So each step costs K trainings, however many cells
it could have tried. As in PNAS, one cell serves as normal and as reduction
cell (a reduction cell's ops on its inputs run at stride 2).

Decisions where the paper is silent or too large for these budgets:
- Step 1 trains a seeded uniform draw of the 55 one-node cells, not all of
  them: `max_trials` trials are spread over min(`num_nodes`, `max_trials`)
  steps, K = `max_trials` // steps each, and step 1 takes the remainder too
  (it has no surrogate to choose with).
- Children are scored from scratch, as PNAS did, not with shared weights:
  the ranking benchmark (`benchmarks/ranking.py`) found shared-weight scores
  a weak guide to training from scratch (Kendall tau 0.36 on MNIST, -0.32 on
  the CIFAR-10 subset), and a surrogate fitted on them would learn that noise.
- The surrogate is a ridge regression on counts that mean the same in a cell
  of any size (`cell_features`): ops, the inputs they read, nodes and loose
  ends. PNAS's MLP and LSTM ensembles need hundreds of scores; a handful
  fits a linear model, and counts let what it learned on small cells carry
  over to the larger ones it ranks next.

The project's state ("progressive") holds each step as it was decided: its
node count, how many expansions the surrogate ranked, the candidates it
chose with their predicted scores, the surrogate's own fit (its training
scores and its predictions of them), and, once the step's children are
trained, the Kendall tau between predicted and trained scores. A resumed
search reads the steps from there and trains only what is missing.

>>> from automl_kit.tuner.progressive import expansions, one_node_cells
>>> len(one_node_cells()), len(expansions(one_node_cells()[0]))
(55, 120)
"""

import itertools

import numpy as np
from scipy import stats
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from automl_kit.blocks.architecture import CellArchitecture, NodeSpec, architecture_from_dict
from automl_kit.blocks.ops import CELL_OP_NAMES
from automl_kit.blocks.search_space import MicroSearchSpace
from automl_kit.tuner.base import SearchStrategy
from automl_kit.tuner.progress import Progress
from automl_kit.tuner.trial import COMPLETED


def _new_nodes(position):
    """Every distinct node at `position` (0-based): two (input, op) pairs, unordered, inputs 0..position + 1."""
    slots = [(source, op) for source in range(position + 2) for op in CELL_OP_NAMES]
    return [NodeSpec((a[0], b[0]), (a[1], b[1])) for a, b in itertools.combinations_with_replacement(slots, 2)]


def one_node_cells():
    """The distinct cells of one node, as tuples of NodeSpec."""
    return [(node,) for node in _new_nodes(0)]


def expansions(cell):
    """Every cell made of `cell` (a tuple of NodeSpec) and one more node after it."""
    return [(*cell, node) for node in _new_nodes(len(cell))]


def cell_features(cell):
    """A fixed-length encoding of a cell of any size, for the surrogate.

    For each op: how often it reads a cell input (0 or 1) and how often an
    earlier node; then the nodes, and the loose ends (nodes no other node
    reads, whose mean is the cell's output).

    >>> cell_features((NodeSpec((0, 1), ("sep3x3", "identity")), NodeSpec((2, 0), ("sep3x3", "sep3x3"))))[:4]
    [2.0, 1.0, 0.0, 0.0]
    """
    reads = {op: [0.0, 0.0] for op in CELL_OP_NAMES}
    read_nodes = set()
    for node in cell:
        for source, op in zip(node.inputs, node.ops):
            reads[op][source >= 2] += 1
            if source >= 2:
                read_nodes.add(source)
    loose = sum(1 for i in range(len(cell)) if i + 2 not in read_nodes)
    return [count for op in CELL_OP_NAMES for count in reads[op]] + [float(len(cell)), float(loose)]


class Surrogate:
    """Predicts a cell's score from `cell_features`: a standardised ridge regression.

    >>> cells = one_node_cells()[:6]
    >>> scores = [0.1 * cell_features(c)[0] for c in cells]  # rewards sep3x3 reading a cell input
    >>> surrogate = Surrogate().fit(cells, scores)
    >>> bool(stats.kendalltau(surrogate.predict(cells), scores).statistic > 0.5)
    True
    """

    def __init__(self):
        self.model = make_pipeline(StandardScaler(), Ridge(alpha=1.0))

    def fit(self, cells, scores):
        self.model.fit(np.array([cell_features(c) for c in cells]), np.asarray(scores, float))
        return self

    def predict(self, cells):
        return self.model.predict(np.array([cell_features(c) for c in cells]))


def kendall_tau(predicted, actual):
    """Kendall tau rounded to 3 places; None under two pairs or when either side is constant."""
    if len(predicted) < 2:
        return None
    tau = stats.kendalltau(predicted, actual).statistic
    return round(float(tau), 3) if np.isfinite(tau) else None


class ProgressiveSearch(SearchStrategy):
    """Progressive neural architecture search (`tuner="progressive"`) over the micro space's cells."""

    name = "progressive"

    def search(self, data, *, max_trials, epochs, batch_size, callbacks=(), budget=None, progress=None):
        if not isinstance(self.search_space, MicroSearchSpace):
            raise ValueError("tuner='progressive' grows the cells of the micro search space; pass "
                             "search_space='micro', or use another tuner for the macro space.")
        progress = progress or Progress(verbose=0)
        trials = self.project.load_trials()
        steps = list(self.project.state.get("progressive", {}).get("steps", []))
        if trials:
            progress.line(f"Resuming: {len(trials)} trial(s) already recorded in {self.project.path}.")
        step_count = min(self.search_space.num_nodes, max_trials)
        beam = max_trials // step_count
        done = 0  # trials of the steps before this one
        step_trials = []  # the trials of the step before
        with progress.bar("Trials", total=max_trials, unit="trial", initial=len(trials)) as bar:
            for step in range(step_count):
                if step == len(steps):
                    size = beam + (max_trials % step_count if step == 0 else 0)
                    decided = self._decide(step, size, beam, step_trials, trials, data)
                    if decided is None:
                        progress.line(f"No cell of step {step} completed, so there is none to expand.")
                        break
                    steps.append(decided)
                    self.project.update_state(progressive={"steps": steps, "beam": beam})
                    progress.line(self._describe_step(decided))
                candidates = steps[step]["candidates"]
                for offset, candidate in enumerate(candidates):
                    index = done + offset
                    if index < len(trials):
                        continue
                    deadline, stop = self.next_deadline(trials, data, budget, progress)
                    if stop:
                        return trials
                    trial = self.train_trial(
                        f"{index:04d}", architecture_from_dict(candidate["architecture"]), data, epochs=epochs,
                        batch_size=batch_size, callbacks=callbacks, deadline=deadline, seed=self.seed + index,
                        verbose=progress.verbose, previous_trials=trials)
                    trial.predicted_score = candidate["predicted"]
                    self.record(trial, trials, progress, bar)
                step_trials = trials[done:done + len(candidates)]
                done += len(candidates)
                if "rank_tau" not in steps[step] and len(step_trials) == len(candidates):
                    scored = [(c["predicted"], t.score) for c, t in zip(candidates, step_trials)
                              if t.status == COMPLETED and c["predicted"] is not None]
                    steps[step] = dict(steps[step], rank_tau=kendall_tau(*zip(*scored)) if scored else None)
                    self.project.update_state(progressive={"steps": steps, "beam": beam})
        return trials

    def _cell_architecture(self, cell):
        space = self.search_space
        return CellArchitecture(normal=cell, reduce=cell, filters=space.filters, num_stages=space.num_stages,
                                cells_per_stage=space.cells_per_stage, stem_strides=space.stem_strides,
                                dropout=space.dropout)

    def _decide(self, step, size, beam, previous, trials, data):
        """Step `step`'s record: its `size` candidates, chosen uniformly (step 0) or by the surrogate from the
        expansions of the best of `previous` (the step before's trials); None when none of them completed."""
        if step == 0:
            pool = one_node_cells()
            rng = np.random.default_rng([self.seed, 3_000_000])
            ranked = [(pool[i], None) for i in rng.permutation(len(pool))]
            record = {"nodes": 1, "expansions": len(pool)}
        else:
            kept_trials = self.best_trials(previous, beam)
            if not kept_trials:
                return None
            kept = [t.architecture.normal for t in kept_trials]
            completed = [t for t in trials if t.status == COMPLETED]
            cells, targets = [t.architecture.normal for t in completed], [float(self.reward(t)) for t in completed]
            surrogate = Surrogate().fit(cells, targets)
            fitted = surrogate.predict(cells)
            seen = {t.architecture.normal for t in trials}
            pool = list(dict.fromkeys(c for cell in kept for c in expansions(cell) if c not in seen))
            predicted = surrogate.predict(pool)
            ranked = [(pool[i], float(predicted[i])) for i in np.argsort(-predicted, kind="stable")]
            record = {"nodes": step + 1, "expansions": len(pool), "kept": [t.trial_id for t in kept_trials],
                      "fit": {"trial_ids": [t.trial_id for t in completed],
                              "targets": targets,
                              "predictions": [float(v) for v in fitted]}}
        candidates = []
        for cell, prediction in ranked:
            architecture = self._cell_architecture(cell)
            if self.within_size(architecture, data):
                candidates.append({"architecture": architecture.to_dict(), "predicted": prediction})
            if len(candidates) == size:
                break
        return dict(record, candidates=candidates)

    @staticmethod
    def _describe_step(step):
        if step["nodes"] == 1:
            return (f"Step 1: training {len(step['candidates'])} of the {step['expansions']} cells of one node, "
                    "drawn uniformly.")
        return (f"Step {step['nodes']}: the surrogate ranked {step['expansions']} expansions of the best "
                f"{len(step['kept'])} cell(s) of {step['nodes'] - 1} node(s); training its top "
                f"{len(step['candidates'])}.")
