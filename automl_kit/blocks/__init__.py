"""Block templates, the search space, the Architecture value and the model builder."""

from automl_kit.blocks.architecture import Architecture, LayerSpec
from automl_kit.blocks.builder import build_model
from automl_kit.blocks.ops import OP_NAMES
from automl_kit.blocks.search_space import MacroSearchSpace

__all__ = ["Architecture", "LayerSpec", "MacroSearchSpace", "OP_NAMES", "build_model"]
