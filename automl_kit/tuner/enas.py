"""Search with shared weights: ENAS (a learned controller) and random sampling (random_ws).

Both train one `Supernet` for up to `epochs` epochs. Each shared-weight
step trains the path of one sampled child on one batch. ENAS samples from
its `Controller` and, after every epoch of shared steps, trains the
controller by REINFORCE on the children's validation accuracy (its first
epoch is a warm-up with uniform sampling). `random_ws` samples uniformly
throughout (Li and Talwalkar, 2019).

Then both derive: they sample many architectures (from the controller, or
uniformly), score each with the shared weights on the same validation
images, and confirm the `max_trials` best by training them from scratch,
in rungs of successive halving (`halving.py`): all of them for an epoch or
two, then the better half for twice as long, and so on; the search space's
`prior` (a hand-designed child) is always a candidate, second. Those are
the trials; the final stage retrains the last rung's best fully.

Under a time budget, a plan (`plan.py`) first measures the prior's speed
and decides whether the supernet can pay for itself; where it cannot, no
supernet is built, and the prior and uniform draws are confirmed from
scratch instead. The plan also keeps the final training's time: where the
shares below would leave it too few epochs, the search ends earlier (its
shares shrink in proportion; the from-scratch candidates keep their own
share within the plan's), and where no search fits the prior alone trains:
a short trial, then the final training from its weights.

Every epoch ends with a checkpoint in the project (supernet and controller
weights, optimizer states, the baseline), so a resumed search loses at most
the epoch in progress. The random draws of epoch e come from a generator
seeded with (seed, e), so they need no saving.
"""

import math
import os
import time

import keras
import numpy as np

from automl_kit.blocks.architecture import DenseArchitecture, architecture_from_dict
from automl_kit.tuner.base import SearchStrategy, forgetting_custom_gradients, release_memory
from automl_kit.tuner.controller import Controller
from automl_kit.tuner.device_data import on_device, take
from automl_kit.tuner.final import MIN_EPOCHS, narrowed
from automl_kit.tuner.halving import pending, rung_epochs, rung_sizes
from automl_kit.tuner.plan import Plan, least_rung_epochs, plan_search
from automl_kit.tuner.progress import Progress
from automl_kit.tuner.supernet import Supernet

# An epoch of the supernet is a pass over the training data, capped so the
# controller learns several times even in a short search on a large dataset.
MAX_SHARED_STEPS_PER_EPOCH = 300
CONTROLLER_STEPS_PER_EPOCH = 50
WARMUP_EPOCHS = 1
DERIVE_SAMPLES = 100
REWARD_BATCH_SIZE = 128
SCORING_SAMPLES = 512
# The candidates that go on to be confirmed are scored again on up to this many
# validation images, and ranked by that. On 512 images an accuracy's standard
# error (about 0.011 at 0.93) is as large as the gaps between children's shared
# scores; four times the images halve it. In the ranking benchmark
# (benchmarks/ranking.py, 20 children, 16 supernet epochs) scores on all 2,000
# validation images agreed better with training from scratch than the 512 did in
# five runs of six: Kendall tau 0.553, 0.529 against 0.439, 0.360 on MNIST,
# 0.322, 0.286, 0.332 against 0.265, 0.194, 0.218 on CIFAR-10, and 0.245
# against 0.439 on MNIST once (one run's tau is good to about +-0.25). Only the
# few candidates are scored again: a few seconds, reserved before the scoring
# deadline, where scoring every architecture on 2,000 would cost four times as long.
RESCORING_SAMPLES = 2048
# Under a time budget without a plan, each confirmation trial gets at least this long.
MIN_CONFIRM_SECONDS = 60
# Shares of a time budget: the supernet trains until 25%, derivation ends by
# 28%, confirmation trials by 40%; the final training gets the rest (or more:
# the plan shrinks these where the rest would buy it too few epochs). The
# final model's training decides the accuracy a user gets, and at budgets of
# minutes on a CPU more of it buys more than more shared-weight epochs
# (the CIFAR-10 subset at 20 minutes: enas 0.683 against random_ws 0.669
# and random from scratch 0.680, README).
SUPERNET_SHARE, DERIVE_SHARE, CONFIRM_SHARE = 0.25, 0.28, 0.40
# After a supernet, at least this many candidates are confirmed: its pick and the prior
# (the plan keeps their time, plan.py; `_confirm` confirms both even when the search ran late).
CONFIRMED_AFTER_SUPERNET = 2
# Where the budget cannot pay for a supernet (plan.py), the candidates trained
# from scratch have until 25%: that budget is small, and the final training's
# epochs are what it buys most with.
FROM_SCRATCH_CONFIRM_SHARE = 0.25
# Where the budget leaves room for one candidate alone, its validation score chooses nothing: it is
# reported, and picks the best of its epochs. So it validates on at most this many of the validation
# images, which give an accuracy of 0.95 to about +-0.005, in 2 to 3 s on full MNIST here (2 CPU
# cores), where all 12,000 took 15 to 17 s after a 30 s fit's deadline.
ONE_CANDIDATE_VALIDATION_IMAGES = 2048
# Kept free at the end of a budget too small for a final training (under 80 s): what follows
# the deadline. Timed at 45 s on Fashion-MNIST (8,000 images, 2 CPU cores): the epoch's
# validation pass 1.9 s, the trial's record 0.7 s, loading it as the final model 1.2 s and
# saving it 0.3 s; with 5% kept (2.25 s), fits ended at 48 to 53 s.
FINAL_SAVE_SHARE = 0.10
# ... and at most this long: at 10 minutes, 10% would be a minute of training thrown away.
FINAL_SAVE_SECONDS = 15


class SharedWeightSearch(SearchStrategy):
    """Random sampling with shared weights (`tuner="random_ws"`)."""

    name = "random_ws"
    learns_policy = False

    def final_epochs(self, best, epochs):
        """The confirmation trials are short, so the final model trains the full `epochs`."""
        return epochs

    def confirm_epochs(self, epochs):
        return max(1, math.ceil(epochs / 4))

    # ---------------------------------------------------------------- search --
    def search(self, data, *, max_trials, epochs, batch_size, callbacks=(), budget=None, progress=None):
        progress = progress or Progress(verbose=0)
        trials = self.project.load_trials()
        state = self.project.state.get("shared_weights", {})
        if "candidates" not in state:
            plan, state = self._plan(state, data, max_trials, batch_size, budget, progress)
            if plan is None or plan.shared_weights:
                with forgetting_custom_gradients():
                    state = self._shared_weight_phase(state, data, max_trials, epochs, batch_size, budget, plan,
                                                      progress)
                release_memory()
            else:
                state = self._from_scratch_candidates(state, data, 1 if plan.prior_alone else max_trials, progress)
        elif trials:
            progress.line(f"Resuming: {len(trials)} confirmation trial(s) already recorded in {self.project.path}.")
        return self._confirm(state, trials, data, max_trials, epochs, batch_size, callbacks, budget, progress)

    def _plan(self, state, data, max_trials, batch_size, budget, progress):
        """(plan, state): the Plan (see plan.py) under a time budget, measured once and kept in the
        project's state; None without a budget, or for a supernet begun before plans existed."""
        if budget is None or ("plan" not in state and state.get("epochs_done")):
            return None, state
        if "plan" not in state:
            plan = plan_search(self.search_space, data, batch_size, budget, SUPERNET_SHARE, CONFIRM_SHARE,
                               MAX_SHARED_STEPS_PER_EPOCH, derive_share=DERIVE_SHARE,
                               confirmed=min(CONFIRMED_AFTER_SUPERNET, max_trials))
            release_memory()
            state = dict(state, plan=plan.to_dict())
            self.project.update_state(shared_weights=state)
            progress.line(plan.describe(CONFIRM_SHARE))
        return Plan.from_dict(state["plan"]), state

    @staticmethod
    def _share(share, plan):
        """`share` of the budget, shrunk in proportion where the plan ends the search early (plan.py)."""
        if plan is None or plan.search_share is None:
            return share
        return share * plan.search_share / CONFIRM_SHARE

    def _from_scratch_candidates(self, state, data, max_trials, progress):
        """The candidates without a supernet: the space's prior, then distinct uniform draws."""
        rng = np.random.default_rng([self.seed, 2_000_000])
        proposals = [self.search_space.prior()] + [self.search_space.sample(rng) for _ in range(10 * max_trials)]
        candidates, seen = [], set()
        for architecture in proposals:
            key = tuple(self.search_space.encode(architecture))
            if key in seen or not self.within_size(architecture, data):
                continue
            seen.add(key)
            candidates.append({"architecture": architecture.to_dict(), "shared_score": None})
            if len(candidates) == max_trials:
                break
        state = dict(state, candidates=candidates, derived=0, derive_seconds=0.0)
        self.project.update_state(shared_weights=state)
        if len(candidates) > 1:
            progress.line(f"{len(candidates)} candidates to train from scratch: the search space's prior and "
                          f"{len(candidates) - 1} drawn uniformly.")
        return state

    def _shared_weight_phase(self, state, data, max_trials, epochs, batch_size, budget, plan, progress):
        """Trains the supernet (and controller), derives the candidates; returns the state that holds them."""
        keras.utils.set_random_seed(self.seed)
        supernet = Supernet(self.search_space, data.input_spec, data.num_classes, data.mean, data.variance,
                            dtype_policy=data.dtype_policy, strategy=data.strategy)
        controller = self._make_controller() if self.learns_policy else None
        state = self._restore(state, supernet, controller, progress)
        # Copied to the device once for the whole phase, where they fit (see device_data).
        images = on_device(supernet.strategy, data.x_train, data.x_val)
        supernet_end, derive_end = self._phase_ends(budget, plan)
        state = self._train_supernet(state, supernet, controller, data, images, epochs, batch_size, supernet_end,
                                     progress)
        return self._derive(state, supernet, controller, data, images[1], max_trials, derive_end, progress)

    @classmethod
    def _phase_ends(cls, budget, plan):
        """(supernet, derivation) deadlines: their shares of `budget`, shrunk with the plan's search, and both
        earlier by as much where the plan ends the supernet sooner to leave the confirmation its two trials."""
        if budget is None:
            return None, None
        supernet, derive = cls._share(SUPERNET_SHARE, plan), cls._share(DERIVE_SHARE, plan)
        if plan is not None and plan.supernet_share is not None:
            supernet, derive = plan.supernet_share, derive - (supernet - plan.supernet_share)
        return budget.start + supernet * budget.seconds, budget.start + derive * budget.seconds

    def _make_controller(self):
        space = self.search_space
        skip_positions = [space.decision_keys.index(key) for key in space.skip_keys]
        return Controller(space.decision_sizes, skip_positions=skip_positions, seed=self.seed)

    def _sample(self, controller, rng):
        """(decisions, entropy): from the controller, or uniformly without one."""
        if controller is None:
            return [int(rng.integers(n)) for n in self.search_space.decision_sizes], None
        decisions, _, entropy = controller.sample(rng)
        return decisions, entropy

    def _train_supernet(self, state, supernet, controller, data, images, epochs, batch_size, deadline, progress):
        """Trains the shared weights (and the controller) by epochs; `images` are (train, validation)."""
        n_train = len(data.x_train)
        steps = min(math.ceil(n_train / batch_size), MAX_SHARED_STEPS_PER_EPOCH)
        weights = data.w_train if data.w_train is not None else np.ones(n_train, np.float32)
        done = state.get("epochs_done", 0)
        with progress.bar("Supernet epochs", total=epochs, unit="epoch", initial=done) as bar:
            for epoch in range(done, epochs):
                if deadline is not None and time.monotonic() >= deadline:
                    progress.line(f"Time budget for the supernet reached after {epoch} epoch(s).")
                    break
                started = time.monotonic()
                rng = np.random.default_rng([self.seed, epoch])
                warmup = controller is None or epoch < WARMUP_EPOCHS
                order = rng.permutation(n_train)
                losses = []
                for step in range(steps):
                    # Always a full batch, wrapping around: every replica gets its share.
                    batch = order[np.arange(step * batch_size, (step + 1) * batch_size) % n_train]
                    # Uniform draws: FairNAS's fair sampling ranked MNIST worse (Kendall tau 0.022
                    # against 0.359, benchmarks/results/ranking_mnist_2026-12-04_8a121e2.md).
                    decisions, _ = self._sample(None if warmup else controller, rng)
                    losses.append(supernet.train_step(take(images[0], batch), data.y_train[batch], weights[batch],
                                                      decisions))
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                losses = [float(loss) for loss in losses]  # read back once per epoch, not per step
                if not np.isfinite(np.mean(losses)):
                    raise FloatingPointError("the supernet's training loss became NaN or infinite.")
                record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "shared_steps": len(losses),
                          "replicas": supernet.strategy.num_replicas_in_sync}
                record.update(self._controller_epoch(supernet, controller, data, images[1], rng, warmup))
                record["seconds"] = time.monotonic() - started
                state = dict(state, epochs_done=epoch + 1, history=[*state.get("history", []), record])
                self._checkpoint(state, supernet, controller)
                bar.update(1)
                progress.status(bar, loss=record["loss"], reward=record.get("mean_reward"),
                                entropy=record.get("mean_entropy"))
                progress.scalars("supernet", epoch + 1, loss=record["loss"], reward=record.get("mean_reward"),
                                 entropy=record.get("mean_entropy"))
        return state

    def _controller_epoch(self, supernet, controller, data, x_val, rng, warmup):
        """ENAS's controller phase: sample, reward with validation accuracy, REINFORCE."""
        if controller is None or warmup:
            return {}
        rewards, entropies = [], []
        for _ in range(CONTROLLER_STEPS_PER_EPOCH):
            decisions, entropy = self._sample(controller, rng)
            batch = rng.choice(len(data.x_val), min(REWARD_BATCH_SIZE, len(data.x_val)), replace=False)
            accuracy = supernet.accuracy(take(x_val, batch), data.y_val[batch], decisions)
            controller.update(decisions, accuracy + controller.entropy_weight * entropy)
            rewards.append(accuracy)
            entropies.append(entropy)
        return {"mean_reward": float(np.mean(rewards)), "mean_entropy": float(np.mean(entropies)),
                "controller_steps": CONTROLLER_STEPS_PER_EPOCH, "baseline": float(controller.baseline)}

    def _derive(self, state, supernet, controller, data, x_val, max_trials, deadline, progress):
        """Scores sampled architectures with the shared weights; keeps the `max_trials` best."""
        rng = np.random.default_rng([self.seed, 1_000_000])
        # Every architecture is scored on the first `count` of these images, the candidates on all of them.
        images = rng.choice(len(data.x_val), min(RESCORING_SAMPLES, len(data.x_val)), replace=False)
        count = min(SCORING_SAMPLES, len(images))

        def score(decisions, scoring):
            # Batches of at most 256, of near-equal sizes, so none is too small to split over replicas.
            batches = np.array_split(scoring, math.ceil(len(scoring) / 256))
            accuracies = [supernet.accuracy(take(x_val, b), data.y_val[b], decisions) for b in batches]
            return float(np.average(accuracies, weights=[len(b) for b in batches]))

        started = time.monotonic()
        prior = tuple(self.search_space.encode(self.search_space.prior()))
        scored = {prior: score(list(prior), images[:count])}
        traced = time.monotonic()  # the first scoring also traced the supernet's scoring step
        with progress.bar("Scoring architectures", total=DERIVE_SAMPLES, unit="arch") as bar:
            for _ in range(DERIVE_SAMPLES):
                # The candidates' second scoring, at the pace of the first, must fit before the deadline too.
                pace = (time.monotonic() - traced) / max(len(scored) - 1, 1)
                rescoring = pace * len(images) / count * min(max_trials, len(scored) + 1)
                # At least one drawn architecture besides the prior, whatever the clock says.
                if deadline is not None and time.monotonic() + rescoring >= deadline and len(scored) > 1:
                    break
                bar.update(1)
                decisions, _ = self._sample(controller, rng)
                key = tuple(decisions)
                if key in scored:
                    continue
                scored[key] = score(decisions, images[:count])
                progress.status(bar, best=max(scored.values()))
        best = max(scored.values())

        def pick_then_prior(keys):  # the prior is confirmed second, after the supernet's own best pick
            ranked = sorted((key for key in keys if key != prior), key=lambda key: -scored[key])
            return ranked[:1] + [prior] * (prior in keys) + ranked[1:]

        chosen = []
        for key in pick_then_prior(scored):  # sizes checked only until enough are found: a check may build a model
            if len(chosen) == max_trials:
                break
            if self.within_size(self.search_space.decode(key), data):
                chosen.append(key)
        rescored = ""
        if len(images) > count:  # the candidates scored again, on all the images, and ranked by that
            scored.update({key: score(list(key), images) for key in chosen})
            chosen = pick_then_prior(chosen)
            rescored = f"; the candidates scored again on {len(images)}"
        candidates = [{"architecture": self.search_space.decode(key).to_dict(), "shared_score": scored[key]}
                      for key in chosen]
        state = dict(state, candidates=candidates, derived=len(scored), scoring_images=[count, len(images)],
                     derive_seconds=time.monotonic() - started)
        self.project.update_state(shared_weights=state)
        progress.line(f"Derived {len(candidates)} candidate(s) from {len(scored)} scored architectures (best "
                      f"shared-weight score {best:.4f} on {count} validation images{rescored}).")
        return state

    def best_trials(self, trials, count):
        """The `count` best completed trials, best first: a later rung of the halving before an earlier one
        (its trainings were longer, and its members the earlier rung's best), then by score."""
        ranked = super().best_trials(trials, len(trials))
        return sorted(ranked, key=lambda t: -(t.rung or 0))[:count]  # stable: keeps the score order in a rung

    def _confirm(self, state, trials, data, max_trials, epochs, batch_size, callbacks, budget, progress):
        """Trains the candidates from scratch by successive halving (halving.py); these are the search's trials."""
        candidates = state["candidates"]
        count = min(max_trials, len(candidates))
        end, plan, last_only, validation_images = None, None, False, None
        if budget is not None:
            plan = Plan.from_dict(state["plan"]) if "plan" in state else None
            if plan is None or plan.shared_weights:
                share = self._share(CONFIRM_SHARE, plan)
            else:  # from scratch, the candidates' own share, within the plan's
                share = min(FROM_SCRATCH_CONFIRM_SHARE, self._share(CONFIRM_SHARE, plan))
            end = budget.start + share * budget.seconds
            if plan is not None and plan.prior_alone:
                count = 1
                validation_images = ONE_CANDIDATE_VALIDATION_IMAGES
                trial_seconds = plan.halving_seconds([1])
                if plan.trial_then_final(budget.end - time.monotonic()):
                    # No room for a search, but for a second trace: the prior trains as a first rung's
                    # least trial would, which tells the final stage its speed and whether flips keep
                    # the labels, and the final training goes on from its weights on all the data.
                    # Trained to the limit as the trial, it would never see the validation images
                    # (a fifth of MNIST's 60,000). Narrowed first where trial and final training
                    # together are short of MIN_EPOCHS: otherwise the final stage narrows it after the
                    # trial, from scratch, and the trial's epochs are lost (the Fashion-MNIST split at 7
                    # minutes on a slow day: 2 epochs of the prior, then x0.5 wide for 15 from scratch).
                    # The width chosen here holds for the final training too (`sized_to_the_budget`).
                    predicted = plan.trial_then_final_epochs(budget.end - time.monotonic(), data.growth)
                    state = self._narrow_one_candidate(state, data, predicted, progress)
                    candidates = state["candidates"]
                    end = time.monotonic() + trial_seconds
                    progress.line(f"The one candidate trains for about {trial_seconds:.0f} s, then the final "
                                  "training goes on from its weights on training + validation data.")
                else:
                    # Too little time to measure the prior, or for a final training after a trial: the
                    # one candidate trains until near the limit and, with no time left for a
                    # retraining, it is the final model, trained as the final model would be.
                    last_only = True
                    end = budget.end - min(FINAL_SAVE_SHARE * budget.seconds, FINAL_SAVE_SECONDS)
                    progress.line("The one candidate trains with the final recipe toward the time limit, and "
                                  "any time it leaves goes to the final training.")
                    if plan.measured:
                        # Its epochs over the training images, after a trial's fixed cost.
                        predicted = (end - time.monotonic() - plan.trial_setup_seconds) / plan.epoch_seconds
                        state = self._narrow_one_candidate(state, data, predicted, progress)
                        candidates = state["candidates"]
            elif "rungs" not in state:  # decided once: a resumed search keeps its schedule
                affordable = self._affordable(count, plan, end - time.monotonic())
                # After a supernet, its pick and the prior are both confirmed: the plan kept their time
                # (plan.py), and what the supernet and its derivation ran past their deadlines comes out of
                # the final training, as a rung's overrun does. On digits at 2 minutes, with a window priced
                # at exactly two trials, that overrun left room for one: the pick, untried against anything.
                least = min(CONFIRMED_AFTER_SUPERNET, count) if plan is not None and plan.shared_weights else 1
                if least == 1 and affordable < 1:
                    progress.line("The time budget leaves room to confirm one candidate: it trains until "
                                  f"{share:.0%} of the budget, and the final training goes on from its weights.")
                elif affordable < count:
                    progress.line(f"The time budget leaves room to confirm {max(affordable, least)} of {count} "
                                  "candidate(s).")
                count = max(least, min(count, affordable))
        if "rungs" in state:
            sizes = state["rungs"]
        else:
            sizes = rung_sizes(count)
            state = dict(state, rungs=sizes)
            self.project.update_state(shared_weights=state)
        # The user's `epochs` caps every trial; within it, a first rung trains MIN_RUNG_STEPS steps or more.
        epochs_by_rung = rung_epochs(sizes[0], self.confirm_epochs(epochs), most=epochs,
                                     least=least_rung_epochs(len(data.x_train), batch_size))
        if len(sizes) > 1:
            progress.line(f"Confirming by successive halving: rungs of {', '.join(map(str, sizes))} candidates, "
                          f"{', '.join(map(str, epochs_by_rung))} epochs each; each rung keeps the better half.")
        # Each trial's (fixed, training) cost, as the plan measured them. When a rung starts, its length
        # is fixed for all its trials: their fixed cost and a share of the training time left, in
        # proportion to the rung's training, so that a rung compares its members at equal training.
        # Shared out anew before each trial, the time that a trial ran past its deadline (its flip test,
        # record and cleanup come after it) was taken from the next one, and on the Fashion-MNIST split
        # the prior trained one epoch in its rung where the pick it lost to had trained two. A rung
        # never trains its members less than the least training the plan priced for it, and what a
        # rung runs over comes out of the later rungs and the final training.
        measured = plan is not None and plan.measured
        costs = [(plan.trial_setup_seconds, plan.rung_training_seconds(rung)) if measured
                 else (0.0, epochs_by_rung[rung]) for rung, size in enumerate(sizes) for _ in range(size)]
        rung_seconds = {}
        schedule = pending(candidates, trials, sizes, lambda done: self.best_trials(done, len(done)))
        with progress.bar("Confirmation trials", total=sum(sizes), unit="trial", initial=len(trials)) as bar:
            for rung, candidate in schedule:
                deadline = None
                if end is not None:
                    now = time.monotonic()
                    # A rung begun finishes (its members compare only at equal training) unless a whole
                    # trial's length has already gone past the confirmation's end.
                    late = now >= end + rung_seconds.get(rung, 0.0)
                    if late and trials:
                        progress.line(f"Time budget for confirmation reached after {len(trials)} trial(s).")
                        break
                    if rung not in rung_seconds:
                        fixed, training = zip(*costs[min(len(trials), len(costs) - 1):])
                        spare = max(end - now - sum(fixed), 0.0) * training[0] / sum(training)
                        rung_seconds[rung] = fixed[0] + (max(spare, training[0]) if measured else spare)
                    deadline = now + rung_seconds[rung]
                index = len(trials)
                trial = self.train_trial(
                    f"{index:04d}", architecture_from_dict(candidate["architecture"]), data,
                    epochs=epochs_by_rung[rung], batch_size=batch_size, callbacks=callbacks, deadline=deadline,
                    seed=self.seed + index, verbose=progress.verbose, previous_trials=trials,
                    as_final=last_only, anneal=deadline is not None, rung=rung, validation_images=validation_images,
                )
                trial.shared_score = candidate["shared_score"]
                self.record(trial, trials, progress, bar)
        return trials

    def sized_to_the_budget(self):
        return "narrowed" in self.project.state.get("shared_weights", {})

    def _narrow_one_candidate(self, state, data, predicted, progress):
        """The state with its one candidate narrowed where it would train `predicted` epochs, fewer than
        `MIN_EPOCHS` (`final.narrowed`, a narrowing's epochs priced by the ratio of their step costs): the
        final stage's trade, made before the one candidate trains. Full MNIST at 10 minutes, on a day
        this machine ran at a third of its speed, where the one candidate is the final model: the prior
        trained 2 epochs and scored 0.9957, x0.5 wide 5 and 0.9969 (benchmarks/README.md). Decided once:
        where the state already records a narrowing (a resumed search), it is returned as it is."""
        if "narrowed" in state or not state["candidates"]:
            return state
        found = architecture_from_dict(state["candidates"][0]["architecture"])
        if isinstance(found, DenseArchitecture):  # a network for tabular features: nothing to narrow
            return state
        chosen, width, epochs = found, 1.0, predicted
        if predicted < MIN_EPOCHS:
            found_cost = data.size_and_cost(found)[1]

            def epochs_at(width):
                return predicted * found_cost / max(data.size_and_cost(found.scaled(width, 1))[1], 1)

            chosen, width, epochs = narrowed(found, predicted, epochs_at)
        if width != 1.0:
            progress.line(f"At {predicted:.1f} epoch(s) predicted as it is, it trains x{width:g} wide instead: "
                          f"{epochs:.1f} epoch(s) predicted, {chosen}.")
        candidates = [dict(state["candidates"][0], architecture=chosen.to_dict())] + state["candidates"][1:]
        state = dict(state, candidates=candidates, narrowed={"width": width, "as_found_epochs": round(predicted, 1),
                                                             "predicted_epochs": round(epochs, 1)})
        self.project.update_state(shared_weights=state)
        return state

    @staticmethod
    def _affordable(count, plan, seconds):
        """The most candidates (up to `count`) whose halving schedule fits in `seconds` (Plan.halving_seconds;
        MIN_CONFIRM_SECONDS a trial without a plan); 0 when not even one fits."""
        for candidates in range(count, 0, -1):
            sizes = rung_sizes(candidates)
            needed = MIN_CONFIRM_SECONDS * sum(sizes) if plan is None else plan.halving_seconds(sizes)
            if needed <= seconds:
                return candidates
        return 0

    # ------------------------------------------------------------ checkpoint --
    def _paths(self):
        folder = os.path.join(self.project.path, "supernet")
        return {name: os.path.join(folder, name) for name in
                ("supernet.weights.h5", "controller.weights.h5", "optimizers.npz")}

    def _checkpoint(self, state, supernet, controller):
        """Saves the epoch's weights and optimizer states, then the state that points to them."""
        paths = self._paths()
        os.makedirs(os.path.dirname(paths["supernet.weights.h5"]), exist_ok=True)
        models = {"supernet.weights.h5": supernet}
        if controller is not None:
            models["controller.weights.h5"] = controller
        for name, model in models.items():
            tmp = paths[name].replace(name, f".tmp-{name}")
            model.save_weights(tmp)
            os.replace(tmp, paths[name])
        arrays = {f"supernet_{i}": v.numpy() for i, v in enumerate(supernet.shared_optimizer.variables)}
        if controller is not None:
            arrays.update({f"controller_{i}": v.numpy() for i, v in enumerate(controller.optimizer.variables)})
            state = dict(state, baseline=controller.baseline)
        tmp = paths["optimizers.npz"].replace("optimizers.npz", ".tmp-optimizers.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, paths["optimizers.npz"])
        self.project.update_state(shared_weights=state)

    def _restore(self, state, supernet, controller, progress):
        if not state.get("epochs_done"):
            return state
        paths = self._paths()
        supernet.load_weights(paths["supernet.weights.h5"])
        with np.load(paths["optimizers.npz"], allow_pickle=False) as arrays:
            for i, v in enumerate(supernet.shared_optimizer.variables):
                v.assign(arrays[f"supernet_{i}"])
            if controller is not None:
                controller.load_weights(paths["controller.weights.h5"])
                for i, v in enumerate(controller.optimizer.variables):
                    v.assign(arrays[f"controller_{i}"])
                controller.baseline = state.get("baseline")
        progress.line(f"Resuming the supernet after epoch {state['epochs_done']} "
                      f"from {os.path.dirname(paths['optimizers.npz'])}.")
        return state


class ENAS(SharedWeightSearch):
    """Efficient Neural Architecture Search (Pham et al. 2018): a controller learns where to look."""

    name = "enas"
    learns_policy = True
