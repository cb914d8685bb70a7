"""Block templates, the search space, the Architecture value and the model builder."""

from automl_kit.blocks.architecture import Architecture, DenseArchitecture, LayerSpec, architecture_from_dict
from automl_kit.blocks.builder import build_model
from automl_kit.blocks.ops import OP_NAMES
from automl_kit.blocks.search_space import DenseSearchSpace, MacroSearchSpace, search_space_for

__all__ = [
    "Architecture", "DenseArchitecture", "DenseSearchSpace", "LayerSpec", "MacroSearchSpace", "OP_NAMES",
    "architecture_from_dict", "build_model", "search_space_for",
]
