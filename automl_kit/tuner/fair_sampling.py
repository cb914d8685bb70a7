"""Fair sampling of the supernet's children (FairNAS, Chu et al. 2021).

Drawn uniformly and independently at every step, some choices of a decision
are trained more often than others early on, and the cheap parameter-free
ops (pooling, identity), which need no training to be useful, win the early
race: the supernet then over-rates them, as every weight-sharing search is
known to (the DARTS "collapse"). So the uniform phases of the supernet's
training (`random_ws` throughout, ENAS's warm-up) draw their children in
groups of steps in which every choice of every decision is trained equally
often: each decision's column of the group is a run of shuffled
permutations of its choices, so any first k steps of a group train each
choice k/n times, give or take one.

>>> import numpy as np
>>> group = fair_group(np.random.default_rng(0), [2, 3])
>>> group.shape, np.bincount(group[:, 0]).tolist(), np.bincount(group[:, 1]).tolist()
((6, 2), [3, 3], [2, 2, 2])
"""

import math

import numpy as np


def fair_group(rng, sizes):
    """One group of lcm(`sizes`) steps (rows) of decisions (columns), each decision's choices equally often."""
    steps = math.lcm(*sizes)
    return np.stack([np.concatenate([rng.permutation(n) for _ in range(steps // n)]) for n in sizes], axis=1)


class FairSampler:
    """Draws decisions a step at a time from successive fair groups.

    >>> sampler = FairSampler(np.random.default_rng(0), [2, 5])
    >>> draws = np.array([sampler.sample() for _ in range(10)])
    >>> np.bincount(draws[:, 0]).tolist(), np.bincount(draws[:, 1]).tolist()
    ([5, 5], [2, 2, 2, 2, 2])
    """

    def __init__(self, rng, sizes):
        self.rng, self.sizes, self.group = rng, list(sizes), []

    def sample(self):
        if not len(self.group):
            self.group = list(fair_group(self.rng, self.sizes))[::-1]
        return [int(choice) for choice in self.group.pop()]
