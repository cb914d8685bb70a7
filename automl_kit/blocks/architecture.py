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
"""

import dataclasses
import json

from automl_kit.blocks.ops import OP_NAMES


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
class Architecture:
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

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

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


def architecture_from_dict(config):
    """Rebuilds an Architecture or DenseArchitecture from its `to_dict()`."""
    if config.get("type", "cnn") == "dense":
        return DenseArchitecture(units=tuple(config["units"]), dropout=config.get("dropout", 0.0))
    return Architecture.from_dict(config)
