"""Search strategies behind one interface, with trial records and search state on disk."""

from automl_kit.tuner.base import SearchData, SearchFailed, SearchStrategy
from automl_kit.tuner.enas import ENAS, SharedWeightSearch
from automl_kit.tuner.nas import NASSearch
from automl_kit.tuner.progressive import ProgressiveSearch
from automl_kit.tuner.project import Project, ProjectLocked
from automl_kit.tuner.random_search import RandomSearch
from automl_kit.tuner.trial import Trial

STRATEGIES = {cls.name: cls for cls in (ENAS, SharedWeightSearch, RandomSearch, NASSearch, ProgressiveSearch)}


def get_strategy(name):
    """Returns the SearchStrategy class registered as `name`."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown tuner {name!r}; available tuners: {sorted(STRATEGIES)}.")
    return STRATEGIES[name]


__all__ = ["ENAS", "NASSearch", "ProgressiveSearch", "Project", "ProjectLocked", "RandomSearch", "SearchData", "SearchFailed", "SearchStrategy", "SharedWeightSearch", "Trial", "get_strategy"]
