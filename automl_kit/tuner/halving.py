"""Successive halving of the confirmation trials (Jamieson and Talwalkar 2016; Hyperband's inner loop).

The shared-weight searches confirm their candidates by training them from
scratch. Short equal trainings rank them poorly: on the digits demo, three
trials of a few epochs each came out in the opposite order of their
shared-weight scores, and a few epochs decide little between good children.
So the candidates train in rungs: all of them for a few epochs, then the
better half again from scratch for twice as long, and so on while a rung
keeps two or more; the best of the last rung is the final model's
architecture. Each rung trains about as many epochs as the one before, so
the longest trainings go to the most promising children, in the spirit of
PNAS's "simple to complex" and of Hyperband.

A rung's members are chosen from the recorded trials of the rung before,
so a search killed in any rung resumes where it stopped, without training a
finished trial again.

>>> rung_sizes(10)
[10, 5, 3, 2]
>>> rung_epochs(10, 3)
[1, 2, 4, 8]
"""

import math


def rung_sizes(count):
    """How many candidates each rung trains: `count`, then the better half (rounded up) while two or more are left.

    >>> rung_sizes(1), rung_sizes(2), rung_sizes(3), rung_sizes(5)
    ([1], [2], [3, 2], [5, 3, 2])
    """
    sizes = [count]
    while sizes[-1] > 2:
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes


def rung_epochs(count, epochs_each, most=None, least=1):
    """Epochs of each rung's trainings, doubling from rung to rung.

    The first rung's epochs are chosen so that the whole schedule trains
    about as many epochs as `count` trials of `epochs_each`, and at least
    `least`; no rung trains more than `most`.

    >>> rung_epochs(3, 3), rung_epochs(2, 2), rung_epochs(10, 3, most=5)
    ([1, 2], [2], [1, 2, 4, 5])
    >>> rung_epochs(10, 3, most=10, least=4)
    [4, 8, 10, 10]
    """
    sizes = rung_sizes(count)
    units = sum(size * 2**rung for rung, size in enumerate(sizes))
    first = max(least, round(count * epochs_each / units))
    return [first * 2**rung if most is None else min(first * 2**rung, most) for rung in range(len(sizes))]


def pending(candidates, trials, sizes, best_first):
    """Yields (rung, candidate) for each confirmation trial of the schedule not yet in `trials`.

    `candidates` are the first rung's members in order (dicts with
    "architecture" and "shared_score"); `trials` are the recorded trials in
    the order they ran, and the caller appends each new one before asking
    for the next; `best_first(trials)` orders completed trials best first
    (failed ones left out). A rung promotes the best of the rung before, at
    most `sizes[rung]` of them, best first.

    >>> from types import SimpleNamespace as Done
    >>> trials = []
    >>> schedule = pending(["a", "b", "c"], trials, [3, 2], lambda ts: sorted(ts, key=lambda t: -t.score))
    >>> for rung, candidate in schedule:
    ...     trials.append(Done(name=candidate, score={"a": 0.1, "b": 0.3, "c": 0.2}[candidate] + rung))
    >>> [(t.name, t.score) for t in trials]
    [('a', 0.1), ('b', 0.3), ('c', 0.2), ('b', 1.3), ('c', 1.2)]
    """
    members, start = list(candidates[:sizes[0]]), 0
    for rung, size in enumerate(sizes):
        if rung:
            previous = trials[start:start + len(members)]
            start += len(members)
            trained = {id(trial): member for trial, member in zip(previous, members)}
            members = [trained[id(trial)] for trial in best_first(previous)[:size]]
        for offset, candidate in enumerate(members):
            if start + offset >= len(trials):
                yield rung, candidate
