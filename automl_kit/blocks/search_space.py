"""The macro search space over the block templates in `ops.py`.

The space adapts to the image size: large images get a strided stem, and the
number of stages (each after the first halves the resolution and doubles the
channels) is chosen so the last stage works on maps of about 4x4 to 7x7.
Widths (`filters`), depths (layers per stage), ops, skip connections and
dropout are the choices.

Example:

>>> import numpy as np
>>> space = MacroSearchSpace((28, 28))
>>> space.num_stages, space.stem_strides
(3, 1)
>>> arch = space.sample(np.random.default_rng(0))
>>> len(arch.stages)
3
"""

import math

from automl_kit.blocks.architecture import Architecture, DenseArchitecture, LayerSpec
from automl_kit.blocks.ops import OP_NAMES


class MacroSearchSpace:
    filter_choices = (16, 32, 48)
    depth_choices = (1, 2, 3)
    dropout_choices = (0.0, 0.25, 0.5)
    skip_probability = 0.3
    max_stages = 4

    def __init__(self, image_shape):
        height, width = int(image_shape[0]), int(image_shape[1])
        side = min(height, width)
        if side < 2:
            raise ValueError(f"Images must be at least 2x2 pixels; got {height}x{width}.")
        self.stem_strides = 1
        while side // self.stem_strides > 64:
            self.stem_strides *= 2
        side = math.ceil(side / self.stem_strides)
        reductions = int(math.floor(math.log2(side / 4))) if side >= 8 else 0
        self.num_stages = max(1, min(self.max_stages, reductions + 1))

    def sample(self, rng):
        """Returns an Architecture drawn uniformly from the space with `rng`."""
        stages = []
        for _ in range(self.num_stages):
            depth = int(rng.choice(self.depth_choices))
            stage = []
            for position in range(depth):
                op = str(rng.choice(OP_NAMES))
                skips = tuple(j for j in range(position + 1) if rng.random() < self.skip_probability)
                stage.append(LayerSpec(op, skips))
            stages.append(tuple(stage))
        return Architecture(
            filters=int(rng.choice(self.filter_choices)),
            stages=tuple(stages),
            stem_strides=self.stem_strides,
            dropout=float(rng.choice(self.dropout_choices)),
        )

    def smallest(self):
        """The architecture with the fewest parameters, to check `max_model_size`."""
        return Architecture(
            filters=min(self.filter_choices),
            stages=tuple((LayerSpec("maxpool3x3"),) for _ in range(self.num_stages)),
            stem_strides=self.stem_strides,
            dropout=0.0,
        )


class DenseSearchSpace:
    """Multilayer perceptrons, the fallback for 2-D input that is not an image."""

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


def search_space_for(input_spec):
    """The search space that fits `input_spec`: convolutional for images, dense otherwise."""
    if input_spec.is_image:
        return MacroSearchSpace(input_spec.image_shape)
    return DenseSearchSpace()
