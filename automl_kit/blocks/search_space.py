"""The micro (cells) and macro (layers) search spaces over the block templates in `ops.py`.

A space is a fixed list of decisions, each an index into a few choices; an
architecture is one index per decision. The controller, random sampling and
the supernet all work on that list (`decision_keys`, `decision_sizes`,
`encode`, `decode`), and the builder on the Architecture it decodes to.

Both spaces adapt to the image size: large images get a strided stem, and
the number of stages (each after the first halves the resolution and doubles
the channels) is chosen so the last stage works on maps of about 4x4 to 7x7.

Example:

>>> import numpy as np
>>> space = MicroSearchSpace((28, 28))
>>> space.num_stages, space.stem_strides, len(space.decision_keys)
(3, 1, 32)
>>> arch = space.sample(np.random.default_rng(0))
>>> space.decode(space.encode(arch)) == arch
True
"""

import math


from automl_kit.blocks.architecture import (
    Architecture, CellArchitecture, DenseArchitecture, LayerSpec, NodeSpec,
)
from automl_kit.blocks.ops import CELL_OP_NAMES, OP_NAMES

SEARCH_SPACES = ("micro", "macro")


def image_layout(image_shape, max_stages=4):
    """(stem stride, number of stages) for images of `image_shape`.

    Each stage after the first halves the resolution; there are as many as
    keep the last stage at 7x7 or more, as in the CIFAR networks of ENAS
    (32 -> 16 -> 8), and at least two for images of 8x8 or more.

    >>> image_layout((8, 8)), image_layout((28, 28)), image_layout((32, 32, 3)), image_layout((224, 224, 3))
    ((1, 2), (1, 3), (1, 3), (4, 4))
    """
    side = min(int(image_shape[0]), int(image_shape[1]))
    if side < 2:
        raise ValueError(f"Images must be at least 2x2 pixels; got {image_shape[0]}x{image_shape[1]}.")
    stem_strides = 1
    while side // stem_strides > 64:
        stem_strides *= 2
    side = math.ceil(side / stem_strides)
    stages = 2 if side >= 8 else 1
    while stages < max_stages and side / 2 ** stages >= 7:
        stages += 1
    return stem_strides, stages


class _DecisionSpace:
    """What the two spaces share: sampling, encoding and decoding over `decision_keys`."""

    decision_keys = ()
    decision_sizes = ()
    skip_keys = ()  # binary decisions that add a skip connection (penalised by ENAS's controller)

    def sample(self, rng):
        """Returns an architecture drawn uniformly from the space with the numpy Generator `rng`."""
        return self.decode([int(rng.integers(size)) for size in self.decision_sizes])

    def encode(self, architecture):
        """The architecture's decisions as a list of ints ordered like `decision_keys`."""
        values = architecture.decisions()
        return [int(values[key]) for key in self.decision_keys]

    def decode(self, values):
        raise NotImplementedError


class MicroSearchSpace(_DecisionSpace):
    """Cells of ENAS's micro space: each node sums two ops on two earlier tensors.

    Args:
        image_shape: (H, W) or (H, W, C) of the images.
        num_nodes: nodes per cell. ENAS uses 5; 4 keeps the supernet's first
            trace under 20 s on two CPU cores.
        filters: channels of the first stage.
        cells_per_stage: normal cells per stage.
        dropout: dropout rate before the classifier of every child.
    """

    name = "micro"

    def __init__(self, image_shape, num_nodes=4, filters=16, cells_per_stage=1, dropout=0.0):
        self.stem_strides, self.num_stages = image_layout(image_shape)
        self.num_nodes = int(num_nodes)
        if self.num_nodes < 1:
            raise ValueError(f"num_nodes must be positive; got {num_nodes}.")
        self.filters, self.cells_per_stage, self.dropout = int(filters), int(cells_per_stage), float(dropout)
        keys, sizes = [], []
        for kind in ("normal", "reduce"):
            for i in range(self.num_nodes):
                for slot in (0, 1):
                    keys += [f"{kind}/n{i}/in{slot}", f"{kind}/n{i}/op{slot}"]
                    sizes += [i + 2, len(CELL_OP_NAMES)]
        self.decision_keys, self.decision_sizes = tuple(keys), tuple(sizes)

    def decode(self, values):
        chosen = dict(zip(self.decision_keys, (int(v) for v in values)))
        cells = {
            kind: tuple(
                NodeSpec(
                    inputs=(chosen[f"{kind}/n{i}/in0"], chosen[f"{kind}/n{i}/in1"]),
                    ops=(CELL_OP_NAMES[chosen[f"{kind}/n{i}/op0"]], CELL_OP_NAMES[chosen[f"{kind}/n{i}/op1"]]),
                )
                for i in range(self.num_nodes)
            )
            for kind in ("normal", "reduce")
        }
        return CellArchitecture(
            normal=cells["normal"], reduce=cells["reduce"], filters=self.filters, num_stages=self.num_stages,
            cells_per_stage=self.cells_per_stage, stem_strides=self.stem_strides, dropout=self.dropout,
        )

    def smallest(self):
        """The architecture with the fewest parameters: identities only."""
        return self.decode([CELL_OP_NAMES.index("identity") if "/op" in key else 0 for key in self.decision_keys])

    def prior(self):
        """A hand-designed cell to start from: each node adds a separable 3x3 convolution of the node
        before it to that node (a residual chain, as in Xception), in normal and reduction cells alike.

        Like AutoKeras's ResNet and Xception starting points, it is a candidate
        that is known to train well, so that a search too short to find
        better still returns a sound network. It is the first candidate when
        the budget cannot pay for a supernet (`tuner/plan.py`) and is
        confirmed beside the supernet's picks otherwise.
        """
        values = {}
        for kind in ("normal", "reduce"):
            for i in range(self.num_nodes):
                source = 0 if i == 0 else i + 1  # the cell's first input, then the node before
                values.update({f"{kind}/n{i}/in0": source, f"{kind}/n{i}/in1": source,
                               f"{kind}/n{i}/op0": CELL_OP_NAMES.index("sep3x3"),
                               f"{kind}/n{i}/op1": CELL_OP_NAMES.index("identity")})
        return self.decode([values[key] for key in self.decision_keys])


class MacroSearchSpace(_DecisionSpace):
    """Layers of ENAS's macro space: each layer picks an op and skip connections.

    Every stage has `layers_per_stage` layers. Layer p of a stage reads the
    output of layer p - 1 (the stage's input for p = 0) and adds any of the
    stage's earlier tensors (a skip to itself makes it residual).
    """

    name = "macro"

    def __init__(self, image_shape, filters=32, layers_per_stage=2, dropout=0.0):
        self.stem_strides, self.num_stages = image_layout(image_shape)
        self.filters, self.layers_per_stage, self.dropout = int(filters), int(layers_per_stage), float(dropout)
        keys, sizes, skips = [], [], []
        for s in range(self.num_stages):
            for p in range(self.layers_per_stage):
                keys.append(f"s{s}/l{p}/op")
                sizes.append(len(OP_NAMES))
                for j in range(p + 1):
                    keys.append(f"s{s}/l{p}/skip{j}")
                    sizes.append(2)
                    skips.append(keys[-1])
        self.decision_keys, self.decision_sizes, self.skip_keys = tuple(keys), tuple(sizes), tuple(skips)

    def decode(self, values):
        chosen = dict(zip(self.decision_keys, (int(v) for v in values)))
        stages = tuple(
            tuple(
                LayerSpec(OP_NAMES[chosen[f"s{s}/l{p}/op"]],
                          tuple(j for j in range(p + 1) if chosen[f"s{s}/l{p}/skip{j}"]))
                for p in range(self.layers_per_stage)
            )
            for s in range(self.num_stages)
        )
        return Architecture(filters=self.filters, stages=stages, stem_strides=self.stem_strides, dropout=self.dropout)

    def smallest(self):
        return self.decode([OP_NAMES.index("maxpool3x3") if key.endswith("/op") else 0 for key in self.decision_keys])

    def prior(self):
        """A hand-designed start (see `MicroSearchSpace.prior`): 3x3 convolutions, the last layer of
        each stage adding the stage's input, one ResNet basic block per stage."""
        last = self.layers_per_stage - 1
        return self.decode([OP_NAMES.index("conv3x3") if key.endswith("/op") else
                            int(key.endswith(f"l{last}/skip0") and last > 0) for key in self.decision_keys])


class DenseSearchSpace:
    """Multilayer perceptrons, the fallback for 2-D input that is not an image."""

    name = "dense"
    units_choices = (32, 64, 128, 256)
    depth_choices = (1, 2, 3)
    dropout_choices = (0.0, 0.25, 0.5)

    def sample(self, rng):
        depth = int(rng.choice(self.depth_choices))
        return DenseArchitecture(
            units=tuple(int(rng.choice(self.units_choices)) for _ in range(depth)),
            dropout=float(rng.choice(self.dropout_choices)),
        )

    def smallest(self):
        return DenseArchitecture(units=(min(self.units_choices),), dropout=0.0)

    def prior(self):
        return DenseArchitecture(units=(128,), dropout=0.25)


def search_space_settings(search_space, tuner="enas"):
    """`search_space` ("auto", "micro", "macro", or a dict like {"name": "micro", "num_nodes": 5}) as a new dict.

    "auto" is the macro space, except for the `"progressive"` tuner, which
    grows micro cells. The macro space is the default because its prior
    (plain 3x3 convolutions, one ResNet basic block per stage) trains far
    better per second than the micro prior's cells of separable
    convolutions: on the CIFAR-10 subset, each trained for 300 s with the
    final recipe on 2 CPU cores, 0.700 against 0.658
    (`python -m benchmarks.priors`; 0.744 against 0.664 in an earlier run).

    >>> search_space_settings("auto"), search_space_settings("auto", tuner="progressive")
    ({'name': 'macro'}, {'name': 'micro'})
    """
    if search_space == "auto":
        search_space = "micro" if tuner == "progressive" else "macro"
    settings = {"name": search_space} if isinstance(search_space, str) else search_space
    if not isinstance(settings, dict) or settings.get("name") not in SEARCH_SPACES:
        raise ValueError(
            f"search_space must be 'auto', one of {SEARCH_SPACES} or a dict like "
            f"{{'name': 'micro', 'num_nodes': 5}}; got {search_space!r}."
        )
    return dict(settings)


def search_space_for(input_spec, search_space="auto", tuner="enas"):
    """The search space `search_space` names for `tuner` (see `search_space_settings`) for `input_spec`'s
    images; dense networks for tabular input.

    >>> import numpy as np
    >>> from automl_kit.data import InputSpec
    >>> spec = InputSpec.infer(np.zeros((2, 28, 28), np.uint8), None)
    >>> search_space_for(spec, {"name": "macro", "layers_per_stage": 3}).layers_per_stage
    3
    """
    settings = search_space_settings(search_space, tuner)
    if not input_spec.is_image:
        return DenseSearchSpace()
    space_class = MicroSearchSpace if settings.pop("name") == "micro" else MacroSearchSpace
    try:
        return space_class(input_spec.image_shape, **settings)
    except TypeError as error:
        raise ValueError(f"Bad search_space settings {search_space!r}: {error}.") from None
