"""Search strategies behind one interface, with trial records and search state on disk."""

from automl_kit.tuner.base import SearchData, SearchFailed, SearchStrategy
from automl_kit.tuner.project import Project, ProjectLocked
from automl_kit.tuner.random_search import RandomSearch
from automl_kit.tuner.trial import Trial

STRATEGIES = {RandomSearch.name: RandomSearch}


def get_strategy(name):
    """Returns the SearchStrategy class registered as `name`."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown tuner {name!r}; available tuners: {sorted(STRATEGIES)}.")
    return STRATEGIES[name]


__all__ = ["Project", "ProjectLocked", "RandomSearch", "SearchData", "SearchFailed", "SearchStrategy", "Trial", "get_strategy"]
