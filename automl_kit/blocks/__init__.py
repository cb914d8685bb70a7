"""Block templates, the search spaces, the Architecture values and the model builder."""

from automl_kit.blocks.architecture import (
    Architecture, CellArchitecture, DenseArchitecture, LayerSpec, NodeSpec, architecture_from_dict,
)
from automl_kit.blocks.builder import build_model
from automl_kit.blocks.ops import CELL_OP_NAMES, OP_NAMES
from automl_kit.blocks.search_space import (
    SEARCH_SPACES, DenseSearchSpace, MacroSearchSpace, MicroSearchSpace, search_space_for,
)

__all__ = [
    "Architecture", "CELL_OP_NAMES", "CellArchitecture", "DenseArchitecture", "DenseSearchSpace", "LayerSpec",
    "MacroSearchSpace", "MicroSearchSpace", "NodeSpec", "OP_NAMES", "SEARCH_SPACES", "architecture_from_dict",
    "build_model", "search_space_for",
]
