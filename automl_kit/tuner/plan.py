"""What a time budget buys: whether a supernet can pay for itself, judged from one child's measured speed.

A shared-weight search has costs that do not shrink with the budget: the
supernet's first trace and that of its scoring pass, and enough epochs of
shared training for its ranking to mean anything. In the full suite at one
minute, the shared-weight tuners once ended at chance on Fashion-MNIST
(0.1025 and 0.1145) while `random` reached 0.8185, and at two minutes on
digits the supernet had time for one epoch and one scored child, at chance
(0.08): the traces had eaten the budget. So before the supernet is built, the search
space's `prior` (a hand-designed child) is built and timed for a few
training steps (`measure`), and the supernet is estimated from it:
its two traces at `SUPERNET_SETUP_FACTOR` times the child's setup, and
`MIN_SUPERNET_EPOCHS` epochs of shared steps at the child's step time (a
shared step trains one child's path). When that does not fit in the
supernet's share of the budget, the search says so and confirms candidates
from scratch instead: the prior first, then uniform draws from the space.

The same measurement sizes the confirmation trials' successive halving
(`halving.py`): each trial needs `TRIAL_SETUP_FACTOR` times the child's
setup and, in rung r, `2**r` times the first rung's least training
(`MIN_RUNG_EPOCHS` epochs or `MIN_RUNG_STEPS` steps, whichever is longer).

And it keeps the final training's time: the search's shares of the budget
are fixed fractions, so on a slow machine or a large image set they could
leave the final model a few epochs (full MNIST at 10 minutes, on a day this
machine ran at half speed: 2 final epochs, 0.9955 against the hand-written
ResNet's 0.9969 trained for the whole budget). The plan prices
`FINAL_PRIOR_EPOCHS` epochs of the prior over training and validation data,
and where the search's share would leave less than that, the search ends
earlier (`Plan.search_share`); where that leaves no room for one trial, no
search runs: the prior trains as one short trial, and the final training goes
on from its weights on all the data (where that leaves the final training
less than its setup and `FINAL_EPOCHS_AFTER_TRIAL` epochs, the prior trains
toward the limit as the final model instead). On either path the one
candidate is narrowed first where its time, trial and final training
together, buys fewer than `MIN_EPOCHS` epochs (`final.narrowed`). Within the
search, the supernet ends early enough to leave the confirmation room for two
first-rung trials, its pick and the prior (`Plan.supernet_share`), so that a
pick is never returned untried against the hand-designed child for want of
seconds.
"""

import dataclasses
import math
import time

import numpy as np

from automl_kit.tuner import training
from automl_kit.tuner.base import forgetting_custom_gradients, release_memory
from automl_kit.tuner.final import MIN_EPOCHS
from automl_kit.tuner.halving import rung_sizes
from automl_kit.tuner.recipe import Recipe, training_with

# Measured here (2 CPU cores, micro space, digits): the supernet's first epoch
# (32 steps, mostly its trace) and its first scoring pass took 29.6 s and 13 s,
# where the prior's build and first step took about 10 s. That setup traced the
# child's step twice; traced once (training.compile_for_classification) it is
# about 30% shorter (6.1 -> 4.2 s on 8x8 images, 9.6 -> 6.7 s on 28x28), the
# supernet's unchanged: 42.6 s over about 7 s. Since the trials' AdamW traces
# one kernel per variable (`fused_adamw.py`) the prior's setup is 1.2 to 1.7 times
# shorter again (fresh processes, 2 CPU cores: 2.1 to 1.2 s on 8x8 images, 2.7 to
# 2.2 s on 28x28, 3.0 to 1.9 s on 32x32x3) and the supernet's traces are not:
# measured after it in the same process, as a fit runs them, the supernet's
# construction, first step and first scoring came to 5.1 to 7.8 times it in the
# macro space and the controller's first sample and update to 1.7 to 2.6 times
# more, 6.8 to 10.4 in all (two processes each on 8x8, 28x28 and 32x32x3 images;
# 10.2 and 11.8 in the micro space on 8x8). Six, which priced them before, now
# fell short by a third.
SUPERNET_SETUP_FACTOR = 8.0
# A uniform warm-up epoch and four of the controller learning. Chosen, not
# measured epoch by epoch: one epoch left the ranking at chance (the digits run above).
MIN_SUPERNET_EPOCHS = 5
# A first-rung confirmation trial's least epochs, doubling a rung later. It was 2
# (the equal trials that the halving replaced needed 3 each, and a halving runs
# about twice as many), and at 2 the Fashion-MNIST split at 7 minutes (6,400
# training images, an epoch 11 to 13 s here) could afford one candidate in every
# run: the supernet's pick, never compared with anything, whose final accuracy
# spanned 0.903 to 0.922. At 1 the prior is confirmed beside it.
MIN_RUNG_EPOCHS = 1
# ... and its least steps, for small image sets, where an epoch is a few dozen steps.
# Measured here on digits (1,005 training images, 32 steps an epoch): 8 children
# trained from scratch scored 0.10 to 0.44 after one epoch, 0.80 to 0.99 after
# two and 0.88 to 0.98 after three. Budgeted by epochs alone, all nine trials of
# a 2-minute search trained one epoch each and scored at chance, and the
# architecture chosen from them rested on nothing.
MIN_RUNG_STEPS = 100
# A trial's fixed cost, as a multiple of the prior's measured setup: `measure`
# builds the model and traces one training step; a trial also traces and runs
# its validation passes and its flip test, records itself and frees its graphs.
# Measured here (2 CPU cores), a trial's seconds less its epochs: on digits,
# 2.2 to 2.5 s where the plan measured a setup of 0.87 s; on Fashion-MNIST,
# 5.6 s (setup 1.6, three validation passes 1.2, flip test 1.6, the rest 1.2)
# where the plan measured 1.27 s. Priced at the setup alone, a 2-minute search
# on digits ran six trials in its 14-second share, three of them stopped after
# one epoch, at chance.
TRIAL_SETUP_FACTOR = 4.0
# A supernet share below this is not measured: the supernet's first trace
# alone took 17 to 22 s on 2 CPU cores (benchmarks/results/supernet_overhead.md;
# traced without AutoGraph since, 7 to 13 s in the macro space and its controller's
# traces 4 to 7 s more: benchmarks/results/supernet_traces_2026-12-08_d92c403.md),
# and measuring the prior costs a build and a trace of its own (9 to 18 s on
# 28x28 images there), which a budget this small needs for training: at 45 s
# the measurement and the one trial's own setup left Fashion-MNIST at chance.
# So budgets under 80 s (at the 25% supernet share) train the prior alone.
MIN_SUPERNET_SECONDS = 20
MEASURE_STEPS = 5
# The final training's least time: this many epochs of the prior over training + validation data, the
# epochs that the final stage also asks of a network before it scales it up (a searched network may
# cost more or less an epoch). Below it, the search gives way: see the module's docstring.
FINAL_PRIOR_EPOCHS = MIN_EPOCHS
# Without room for a search, the prior trains as a short trial and then as the final model on all
# the data only where that final training still gets this many of the prior's epochs over all of
# it; otherwise the trial itself trains to the limit with the final recipe. Chosen, not measured:
# a second trace and a fresh one cycle for fewer buy too little over the trial's own training.
FINAL_EPOCHS_AFTER_TRIAL = 2


def least_rung_epochs(train_images, batch_size):
    """The fewest epochs a first-rung trial trains without a time limit: `MIN_RUNG_STEPS` steps' worth.

    Without a budget the halving's epochs come from `epochs` alone, and on
    small image sets one epoch is too few steps to score anything (digits,
    1,005 training images: one 32-step epoch left the first rung at 0.21 to
    0.39). Large sets are unaffected: an MNIST epoch is over a thousand steps.

    >>> least_rung_epochs(1005, 32), least_rung_epochs(48000, 32)
    (4, 1)
    """
    return math.ceil(MIN_RUNG_STEPS / math.ceil(train_images / batch_size))


def measure(architecture, data, batch_size, recipe):
    """(setup seconds, seconds per step) of `architecture` training with `recipe` at `batch_size`.

    The setup is building, compiling and the first (tracing) step; the step
    time is the mean of the next `MEASURE_STEPS`.
    """
    started = time.monotonic()
    model = data.build(architecture)
    training.compile_for_classification(model, jit_compile=data.jit_compile, recipe=recipe)
    rows = np.arange(batch_size) % len(data.x_train)
    x, y = data.x_train[rows].astype(np.float32), data.y_train[rows]
    with forgetting_custom_gradients(), training_with(model, recipe):
        model.train_on_batch(x, y)
        setup = time.monotonic() - started
        stepped = time.monotonic()
        for _ in range(MEASURE_STEPS):
            model.train_on_batch(x, y)
        step = (time.monotonic() - stepped) / MEASURE_STEPS
    model = None
    release_memory()
    return setup, step


@dataclasses.dataclass(frozen=True)
class Plan:
    """How a search spends its budget, with the measurements it was decided from (seconds)."""

    shared_weights: bool
    setup_seconds: float  # the prior's build, compile and first step (None: not measured)
    step_seconds: float  # one training step of the prior at the search's batch size
    epoch_seconds: float  # an epoch of such steps over the training images
    supernet_seconds: float  # the supernet's estimated traces and MIN_SUPERNET_EPOCHS epochs
    available_seconds: float  # what the budget leaves for them
    # The share of the budget by which the whole search ends: the search's own, or less where the
    # final training would otherwise get fewer than FINAL_PRIOR_EPOCHS of the prior's epochs
    # (0: no search, the prior is the final model). None: not measured.
    search_share: float = None
    final_seconds: float = None  # the final training's least time, as priced
    # The share of the budget by which the supernet's training ends: its own (shrunk with the search's),
    # or less where the confirmation would otherwise have no room for two candidates. None: as its own.
    supernet_share: float = None

    @property
    def measured(self):
        return self.setup_seconds is not None

    @property
    def prior_alone(self):
        """Whether the budget has no room for a search: the prior is the one candidate."""
        return not self.measured or self.search_share == 0

    @property
    def final_epoch_seconds(self):
        """An epoch of the prior's final training, over training + validation data (None: not priced)."""
        if self.final_seconds is None:
            return None
        return (self.final_seconds - self.setup_seconds) / FINAL_PRIOR_EPOCHS

    def trial_then_final(self, seconds_left):
        """Whether, with `seconds_left` of the budget, a first rung's least trial of the prior still leaves its final
        training its setup and `FINAL_EPOCHS_AFTER_TRIAL` epochs over all the data (never where nothing was
        measured). The final model is built and traced anew: without its setup priced, a trial on a loaded
        machine left the final stage less than an epoch, and the trial's model, trained on the training
        images alone, was the final model."""
        return self.final_seconds is not None and (  # priced only where measured
            seconds_left - self.halving_seconds([1])
            >= self.setup_seconds + FINAL_EPOCHS_AFTER_TRIAL * self.final_epoch_seconds)

    def trial_then_final_epochs(self, seconds_left, growth):
        """The prior's epochs over all the data (`growth` times the training images) where, with `seconds_left`,
        it trains as a first rung's least trial and then on from its weights as the final model: the trial's
        training and the final training's epochs after its setup.

        >>> plan = Plan(shared_weights=False, setup_seconds=1.0, step_seconds=0.1, epoch_seconds=1.0,
        ...             supernet_seconds=50.0, available_seconds=10.0, search_share=0, final_seconds=19.75)
        >>> # A 14 s trial (4 s fixed, 10 s of training: 8 epochs over all the data), then 1 s of setup and
        >>> # 25 s of final training at 1.25 s an epoch: 20 epochs.
        >>> plan.trial_then_final_epochs(40.0, growth=1.25)
        28.0
        """
        trial = self.rung_training_seconds(0) / (self.epoch_seconds * growth)
        return trial + (seconds_left - self.halving_seconds([1]) - self.setup_seconds) / self.final_epoch_seconds

    @property
    def trial_setup_seconds(self):
        """A confirmation trial's fixed cost: its build, traces, record and cleanup."""
        return TRIAL_SETUP_FACTOR * self.setup_seconds

    def rung_training_seconds(self, rung):
        """The least training of a trial in `rung` of a halving: the first rung's, doubled a rung."""
        first = max(MIN_RUNG_EPOCHS * self.epoch_seconds, MIN_RUNG_STEPS * self.step_seconds)
        return first * 2**rung

    def halving_seconds(self, sizes):
        """The least time a halving with rungs of `sizes` candidates needs: each trial its fixed cost and
        its rung's least training (unmeasured: more than any budget has, so that one candidate trains,
        as the final model)."""
        if not self.measured:
            return math.inf
        return sum(size * (self.trial_setup_seconds + self.rung_training_seconds(rung))
                   for rung, size in enumerate(sizes))

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        return cls(**values)

    def __str__(self):
        if not self.measured:
            return (f"The time budget is too small for a supernet: its share would be {self.available_seconds:.0f} s, "
                    f"and its traces alone take {MIN_SUPERNET_SECONDS} s or more. The search space's prior trains "
                    "as the one candidate.")
        if self.search_share == 0:
            return (f"The time budget leaves no room for a search: the final training needs about "
                    f"{self.final_seconds:.0f} s for {FINAL_PRIOR_EPOCHS} epochs of the search space's prior "
                    f"({self.epoch_seconds:.1f} s an epoch of the training images). The prior trains as the "
                    "one candidate, then as the final model.")
        if self.shared_weights:
            return (f"The supernet's traces and {MIN_SUPERNET_EPOCHS} epochs should take about "
                    f"{self.supernet_seconds:.0f} s of the {self.available_seconds:.0f} s it has.")
        return (f"The time budget cannot pay for a supernet: its traces and {MIN_SUPERNET_EPOCHS} epochs would take "
                f"about {self.supernet_seconds:.0f} s of the {self.available_seconds:.0f} s it would have. "
                f"Candidates are trained from scratch instead, starting from the search space's prior.")

    def describe(self, nominal_share):
        """`str(self)`, and where the search ends before `nominal_share` of the budget, when and why."""
        if self.search_share is None or self.search_share == 0 or self.search_share >= nominal_share:
            return str(self)
        return (f"{self} To leave the final training about {self.final_seconds:.0f} s, {FINAL_PRIOR_EPOCHS} epochs "
                f"of the search space's prior, the search ends at {self.search_share:.0%} of the budget "
                f"instead of {nominal_share:.0%}.")


def plan_search(space, data, batch_size, budget, supernet_share, search_share, max_shared_steps, *,
                derive_share=None, confirmed=1):
    """The Plan for a shared-weight search of `space` on `data` under `budget` (a TimeBudget).

    `supernet_share` is the part of the budget the supernet may train until,
    `derive_share` the part by which its derivation ends (None: no time of
    its own), and `search_share` the part by which the whole search
    (supernet, derivation, confirmation) ends; all shrink in proportion where
    the final training needs more than the rest (`Plan.search_share`). The
    supernet ends earlier still where the confirmation could not train
    `confirmed` candidates (`Plan.supernet_share`). An epoch of the supernet
    has at most `max_shared_steps` steps.
    """
    available = budget.start + supernet_share * budget.seconds - time.monotonic()
    if available < MIN_SUPERNET_SECONDS:
        return Plan(shared_weights=False, setup_seconds=None, step_seconds=None, epoch_seconds=None,
                    supernet_seconds=None, available_seconds=round(available, 1))
    steps = math.ceil(len(data.x_train) / batch_size)
    setup, step = measure(space.prior(), data, batch_size, Recipe.for_trial(data.image_shape, data.mean))
    supernet = SUPERNET_SETUP_FACTOR * setup + MIN_SUPERNET_EPOCHS * min(steps, max_shared_steps) * step
    final = setup + FINAL_PRIOR_EPOCHS * math.ceil((len(data.x_train) + len(data.x_val)) / batch_size) * step
    # The search ends at its share of the budget, or earlier where the final training needs more than the rest.
    share = min(search_share, max(budget.seconds - final, 0.0) / budget.seconds)
    scale = share / search_share
    plan = Plan(shared_weights=False, setup_seconds=round(setup, 2), step_seconds=round(step, 4),
                epoch_seconds=round(steps * step, 2), supernet_seconds=round(supernet, 1), available_seconds=None,
                search_share=round(share, 4), final_seconds=round(final, 1))
    # The confirmation keeps room for `confirmed` first-rung trials: the supernet's pick and the prior. Without
    # it, on a day this machine ran 15% slower, the Fashion-MNIST split at 7 minutes (the search shortened to
    # 35% of the budget) left the confirmation 0.2 s short of two trials, and the supernet's pick was returned
    # untried against the prior: 0.9065, where the hand-written ResNet reached 0.9160.
    derive = scale * ((supernet_share if derive_share is None else derive_share) - supernet_share)
    confirm = plan.halving_seconds(rung_sizes(confirmed)) / budget.seconds
    supernet_end = max(min(scale * supernet_share, share - derive - confirm), 0.0)
    now = time.monotonic()
    available = budget.start + supernet_end * budget.seconds - now
    plan = dataclasses.replace(plan, shared_weights=supernet <= available, available_seconds=round(available, 1),
                               supernet_share=round(supernet_end, 4))
    if budget.start + share * budget.seconds - now < plan.halving_seconds([1]):
        # Not even one candidate trained from scratch fits before the search must end.
        plan = dataclasses.replace(plan, shared_weights=False, search_share=0.0)
    return plan
