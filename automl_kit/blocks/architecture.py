"""The Architecture: the one value that passes from search to build.

An Architecture is immutable, hashable and serialises to JSON and back, so a
trial record on disk holds everything needed to rebuild its network.

Example:

>>> arch = Architecture(
...     filters=16,
...     stages=((LayerSpec("conv3x3"), LayerSpec("sep5x5", skips=(0,))),
...             (LayerSpec("maxpool3x3"),)),
... )
>>> Architecture.from_json(arch.to_json()) == arch
True
>>> print(arch)
16 filters | stage 1: conv3x3 > sep5x5(+0) | stage 2: maxpool3x3 | dropout 0.0

A cell architecture (the micro space) names, for each node of its normal and
reduction cells, two inputs (0 and 1 are the cell's inputs, k >= 2 the
output of node k) and an op for each:

>>> cell = CellArchitecture(
...     normal=(NodeSpec((0, 1), ("sep3x3", "identity")), NodeSpec((2, 0), ("avgpool3x3", "sep5x5"))),
...     reduce=(NodeSpec((0, 0), ("maxpool3x3", "sep3x3")), NodeSpec((1, 2), ("identity", "sep3x3"))),
...     filters=16, num_stages=2,
... )
>>> CellArchitecture.from_json(cell.to_json()) == cell
True
>>> print(cell)
normal: 2=sep3x3(0)+identity(1) 3=avgpool3x3(2)+sep5x5(0) | reduce: 2=maxpool3x3(0)+sep3x3(0) 3=identity(1)+sep3x3(2) | 16 filters, 2 stages of 1 cell | dropout 0.0
"""

import dataclasses
import json

from automl_kit.blocks.ops import CELL_OP_NAMES, OP_NAMES


class _JsonValue:
    """`to_json` and `from_json` over a class's `to_dict` and `from_dict`."""

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One layer of a stage: an operation and the skip connections summed into it.

    A stage keeps a list of tensors: index 0 is the stage's input and index
    p + 1 the output of its layer p. Layer p reads tensor p, and `skips` names
    the tensors (from 0 to p) added to its output: a skip to p itself makes
    the layer residual.
    """

    op: str
    skips: tuple = ()

    def __post_init__(self):
        if self.op not in OP_NAMES:
            raise ValueError(f"Unknown op {self.op!r}; expected one of {OP_NAMES}.")
        object.__setattr__(self, "skips", tuple(sorted(set(int(s) for s in self.skips))))


@dataclasses.dataclass(frozen=True)
class Architecture(_JsonValue):
    """A network: a stem, stages of layers separated by downsampling, and a head.

    Attributes:
        filters: channels of the first stage; each later stage doubles them.
        stages: one tuple of `LayerSpec` per resolution.
        stem_strides: stride of the stem convolution (2 or 4 for large images).
        dropout: dropout rate before the classifier.
    """

    filters: int
    stages: tuple
    stem_strides: int = 1
    dropout: float = 0.0

    def __post_init__(self):
        stages = tuple(
            tuple(layer if isinstance(layer, LayerSpec) else LayerSpec(**layer) for layer in stage)
            for stage in self.stages
        )
        object.__setattr__(self, "stages", stages)
        if int(self.filters) < 1:
            raise ValueError(f"filters must be positive; got {self.filters}.")
        if not stages or any(len(stage) == 0 for stage in stages):
            raise ValueError("An architecture needs at least one stage, each with at least one layer.")
        for stage in stages:
            for position, layer in enumerate(stage):
                if any(s < 0 or s > position for s in layer.skips):
                    raise ValueError(
                        f"Layer {position} of a stage can only skip from tensors 0..{position}; "
                        f"got skips {layer.skips}."
                    )
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}.")

    def to_dict(self):
        return {
            "type": "cnn",
            "filters": int(self.filters),
            "stages": [[{"op": l.op, "skips": list(l.skips)} for l in stage] for stage in self.stages],
            "stem_strides": int(self.stem_strides),
            "dropout": float(self.dropout),
        }

    @classmethod
    def from_dict(cls, config):
        return cls(
            filters=config["filters"],
            stages=tuple(tuple(LayerSpec(l["op"], tuple(l["skips"])) for l in s) for s in config["stages"]),
            stem_strides=config.get("stem_strides", 1),
            dropout=config.get("dropout", 0.0),
        )

    def scaled(self, width=1.0, depth=1):
        """This network made `width` times wider and `depth` times deeper: each stage's layers, skips
        included, repeated `depth` times.

        >>> arch = Architecture(16, ((LayerSpec("conv3x3"), LayerSpec("sep3x3", skips=(0, 1))),))
        >>> print(arch.scaled(width=2, depth=2))
        32 filters | stage 1: conv3x3 > sep3x3(+0,1) > conv3x3 > sep3x3(+2,3) | dropout 0.0
        """
        stages = tuple(
            tuple(LayerSpec(layer.op, tuple(s + copy * len(stage) for s in layer.skips))
                  for copy in range(int(depth)) for layer in stage)
            for stage in self.stages
        )
        return dataclasses.replace(self, filters=max(1, round(self.filters * width)), stages=stages)

    def decisions(self):
        """The choices that make this architecture, as {decision key: index}; see `MacroSearchSpace`."""
        values = {}
        for s, stage in enumerate(self.stages):
            for p, layer in enumerate(stage):
                values[f"s{s}/l{p}/op"] = OP_NAMES.index(layer.op)
                for j in range(p + 1):
                    values[f"s{s}/l{p}/skip{j}"] = int(j in layer.skips)
        return values

    def __str__(self):
        def layer_text(layer):
            return layer.op + (f"(+{','.join(map(str, layer.skips))})" if layer.skips else "")

        stages = " | ".join(
            f"stage {i + 1}: " + " > ".join(layer_text(l) for l in stage)
            for i, stage in enumerate(self.stages)
        )
        stem = f" | stem stride {self.stem_strides}" if self.stem_strides != 1 else ""
        return f"{self.filters} filters{stem} | {stages} | dropout {self.dropout}"


@dataclasses.dataclass(frozen=True)
class DenseArchitecture:
    """A multilayer perceptron, for 2-D input that is not an image.

    Example:

    >>> print(DenseArchitecture(units=(128, 64), dropout=0.25))
    dense 128 > 64 | dropout 0.25
    """

    units: tuple
    dropout: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))
        if not self.units or min(self.units) < 1:
            raise ValueError(f"units must be a non-empty tuple of positive ints; got {self.units}.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}.")

    def to_dict(self):
        return {"type": "dense", "units": list(self.units), "dropout": float(self.dropout)}

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    def __str__(self):
        return f"dense {' > '.join(map(str, self.units))} | dropout {self.dropout}"


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node of a cell: the sum of two ops, each applied to a chosen earlier tensor.

    A cell keeps a list of tensors: 0 and 1 are its two inputs (the outputs
    of the two previous cells) and k >= 2 the output of node k - 2, so node
    i may read tensors 0 to i + 1.
    """

    inputs: tuple
    ops: tuple

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "ops", tuple(str(o) for o in self.ops))
        if len(self.inputs) != 2 or len(self.ops) != 2:
            raise ValueError(f"A node has two inputs and two ops; got {self.inputs} and {self.ops}.")
        for op in self.ops:
            if op not in CELL_OP_NAMES:
                raise ValueError(f"Unknown cell op {op!r}; expected one of {CELL_OP_NAMES}.")


@dataclasses.dataclass(frozen=True)
class CellArchitecture(_JsonValue):
    """A network of cells (the micro space of ENAS).

    A stem, then `num_stages` stages of `cells_per_stage` normal cells; a
    reduction cell between stages halves the resolution and doubles the
    channels. All normal cells share one wiring, all reduction cells another.
    A cell's output is the mean of its nodes that no other node reads.

    Attributes:
        normal, reduce: one `NodeSpec` per node, for the two kinds of cell.
        filters: channels of the first stage.
        num_stages, cells_per_stage: the size of the stack.
        stem_strides: stride of the stem convolution (2 or more for large images).
        dropout: dropout rate before the classifier.
    """

    normal: tuple
    reduce: tuple
    filters: int
    num_stages: int
    cells_per_stage: int = 1
    stem_strides: int = 1
    dropout: float = 0.0

    def __post_init__(self):
        for kind in ("normal", "reduce"):
            nodes = tuple(n if isinstance(n, NodeSpec) else NodeSpec(**n) for n in getattr(self, kind))
            object.__setattr__(self, kind, nodes)
            if not nodes:
                raise ValueError(f"The {kind} cell needs at least one node.")
            for i, node in enumerate(nodes):
                if any(not 0 <= j <= i + 1 for j in node.inputs):
                    raise ValueError(f"Node {i} of the {kind} cell can only read tensors 0..{i + 1}; got {node.inputs}.")
        if len(self.normal) != len(self.reduce):
            raise ValueError("The normal and reduction cells must have the same number of nodes.")
        for field in ("filters", "num_stages", "cells_per_stage", "stem_strides"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"{field} must be positive; got {getattr(self, field)}.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}.")

    def to_dict(self):
        return {
            "type": "cell",
            **{kind: [{"inputs": list(n.inputs), "ops": list(n.ops)} for n in getattr(self, kind)]
               for kind in ("normal", "reduce")},
            "filters": int(self.filters),
            "num_stages": int(self.num_stages),
            "cells_per_stage": int(self.cells_per_stage),
            "stem_strides": int(self.stem_strides),
            "dropout": float(self.dropout),
        }

    @classmethod
    def from_dict(cls, config):
        config = {k: v for k, v in config.items() if k != "type"}
        for kind in ("normal", "reduce"):
            config[kind] = tuple(NodeSpec(tuple(n["inputs"]), tuple(n["ops"])) for n in config[kind])
        return cls(**config)

    def scaled(self, width=1.0, depth=1):
        """This network with the same cells, `width` times the filters and `depth` times the cells per stage.

        >>> cell = CellArchitecture(normal=(NodeSpec((0, 1), ("sep3x3", "identity")),),
        ...                         reduce=(NodeSpec((0, 1), ("maxpool3x3", "sep5x5")),), filters=16, num_stages=2)
        >>> print(cell.scaled(width=1.5, depth=2))
        normal: 2=sep3x3(0)+identity(1) | reduce: 2=maxpool3x3(0)+sep5x5(1) | 24 filters, 2 stages of 2 cells | dropout 0.0
        """
        return dataclasses.replace(self, filters=max(1, round(self.filters * width)),
                                   cells_per_stage=self.cells_per_stage * int(depth))

    def decisions(self):
        """The choices that make this architecture, as {decision key: index}; see `MicroSearchSpace`."""
        values = {}
        for kind in ("normal", "reduce"):
            for i, node in enumerate(getattr(self, kind)):
                for slot in (0, 1):
                    values[f"{kind}/n{i}/in{slot}"] = node.inputs[slot]
                    values[f"{kind}/n{i}/op{slot}"] = CELL_OP_NAMES.index(node.ops[slot])
        return values

    def __str__(self):
        def cell_text(nodes):
            return " ".join(
                f"{i + 2}={n.ops[0]}({n.inputs[0]})+{n.ops[1]}({n.inputs[1]})" for i, n in enumerate(nodes)
            )

        cells = "cell" if self.cells_per_stage == 1 else "cells"
        stem = f", stem stride {self.stem_strides}" if self.stem_strides != 1 else ""
        return (f"normal: {cell_text(self.normal)} | reduce: {cell_text(self.reduce)} | "
                f"{self.filters} filters, {self.num_stages} stages of {self.cells_per_stage} {cells}{stem} | "
                f"dropout {self.dropout}")


def architecture_from_dict(config):
    """Rebuilds an Architecture, CellArchitecture or DenseArchitecture from its `to_dict()`."""
    kind = config.get("type", "cnn")
    if kind == "dense":
        return DenseArchitecture(units=tuple(config["units"]), dropout=config.get("dropout", 0.0))
    if kind == "cell":
        return CellArchitecture.from_dict(config)
    return Architecture.from_dict(config)
