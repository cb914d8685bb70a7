import json

import keras
import numpy as np
import pytest

from automl_kit.blocks import (
    CELL_OP_NAMES, OP_NAMES, Architecture, CellArchitecture, LayerSpec, MacroSearchSpace, MicroSearchSpace, NodeSpec,
    architecture_from_dict, build_model,
)
from automl_kit.blocks.ops import LayerPool, apply_op
from automl_kit.data import InputSpec

GRAY28 = InputSpec((28, 28), (28, 28, 1))


@pytest.mark.parametrize("space_class", [MicroSearchSpace, MacroSearchSpace])
def test_architecture_json_round_trip_and_hashable(space_class):
    rng = np.random.default_rng(3)
    space = space_class((32, 32, 3))
    for _ in range(20):
        arch = space.sample(rng)
        text = arch.to_json()
        again = architecture_from_dict(json.loads(text))  # plain JSON
        assert again == arch and hash(again) == hash(arch)
        assert space.decode(space.encode(arch)) == arch


def test_cell_architecture_is_readable_and_checked():
    node = NodeSpec((0, 1), ("sep3x3", "identity"))
    arch = CellArchitecture(normal=(node,), reduce=(node,), filters=8, num_stages=2)
    assert str(arch) == ("normal: 2=sep3x3(0)+identity(1) | reduce: 2=sep3x3(0)+identity(1) | "
                         "8 filters, 2 stages of 1 cell | dropout 0.0")
    with pytest.raises(ValueError, match="can only read tensors 0..1"):
        CellArchitecture(normal=(NodeSpec((0, 2), ("sep3x3", "identity")),), reduce=(node,), filters=8, num_stages=2)
    with pytest.raises(ValueError, match="Unknown cell op"):
        NodeSpec((0, 1), ("conv7x7", "identity"))


def test_micro_space_has_separate_normal_and_reduction_cells():
    space = MicroSearchSpace((32, 32, 3), num_nodes=5)
    assert len(space.decision_keys) == 2 * 5 * 4  # two cell kinds, 5 nodes, 2 inputs and 2 ops each
    arch = space.sample(np.random.default_rng(0))
    assert len(arch.normal) == len(arch.reduce) == 5
    assert {op for node in arch.normal + arch.reduce for op in node.ops} <= set(CELL_OP_NAMES)


def test_architecture_is_immutable_and_readable():
    arch = Architecture(16, ((LayerSpec("conv3x3"), LayerSpec("res3x3", (0, 1))),))
    with pytest.raises(Exception):
        arch.filters = 32
    assert str(arch) == "16 filters | stage 1: conv3x3 > res3x3(+0,1) | dropout 0.0"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"filters": 16, "stages": ((LayerSpec("conv3x3", (1,)),),)}, "skip"),
        ({"filters": 16, "stages": ()}, "at least one stage"),
        ({"filters": 0, "stages": ((LayerSpec("conv3x3"),),)}, "filters"),
        ({"filters": 8, "stages": ((LayerSpec("conv3x3"),),), "dropout": 1.0}, "dropout"),
    ],
)
def test_invalid_architectures(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Architecture(**kwargs)


def test_unknown_op():
    with pytest.raises(ValueError, match="Unknown op"):
        LayerSpec("conv7x7")


@pytest.mark.parametrize("op", OP_NAMES)
def test_every_op_keeps_the_shape(op):
    inputs = keras.Input((6, 6, 8))
    outputs = apply_op(op, inputs, 8, f"t_{op}", LayerPool())
    assert tuple(outputs.shape) == (None, 6, 6, 8)


@pytest.mark.parametrize("space_class", [MicroSearchSpace, MacroSearchSpace])
@pytest.mark.parametrize(
    "image_shape, stages, final_side",
    [((8, 8), 2, 4), ((28, 28), 3, 7), ((32, 32, 3), 3, 8), ((96, 96, 3), 3, 12), ((5, 7), 1, 5)],
)
def test_space_adapts_to_image_size(space_class, image_shape, stages, final_side):
    space = space_class(image_shape)
    assert space.num_stages == stages
    arch = space.sample(np.random.default_rng(0))
    channels = image_shape[2] if len(image_shape) == 3 else 1
    model = build_model(arch, InputSpec.infer(np.zeros((1, *image_shape))), 4, [0.0] * channels, [1.0] * channels)
    pooled = model.get_layer("head_pool").input
    assert pooled.shape[1] == final_side
    out = model.predict(np.random.rand(2, *image_shape).astype("float32"), verbose=0)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("space_class", [MicroSearchSpace, MacroSearchSpace])
def test_builder_uses_only_standard_keras_layers(space_class):
    arch = space_class((28, 28)).sample(np.random.default_rng(1))
    model = build_model(arch, GRAY28, 10, [0.5], [0.1])
    for layer in model.layers:
        assert type(layer).__module__.startswith("keras."), type(layer)


def test_sampling_is_seeded():
    space = MacroSearchSpace((28, 28))
    first = [space.sample(np.random.default_rng([7, i])) for i in range(5)]
    again = [space.sample(np.random.default_rng([7, i])) for i in range(5)]
    assert first == again
    assert len(set(first)) > 1


@pytest.mark.parametrize("space_class", [MicroSearchSpace, MacroSearchSpace])
def test_smallest_is_smallest(space_class):
    space = space_class((28, 28))
    smallest = build_model(space.smallest(), GRAY28, 10, [0.0], [1.0]).count_params()
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert build_model(space.sample(rng), GRAY28, 10, [0.0], [1.0]).count_params() >= smallest


def test_dense_architecture_for_tabular_input():
    from automl_kit.blocks import DenseSearchSpace, architecture_from_dict

    arch = DenseSearchSpace().sample(np.random.default_rng(0))
    assert architecture_from_dict(json.loads(arch.to_json())) == arch
    model = build_model(arch, InputSpec((5,), None), 3, [0.0] * 5, [1.0] * 5)
    assert model.predict(np.zeros((4, 5), np.float32), verbose=0).shape == (4, 3)


def test_flat_input_is_reshaped_inside_the_model():
    arch = MacroSearchSpace((8, 8)).sample(np.random.default_rng(0))
    model = build_model(arch, InputSpec((192,), (8, 8, 3)), 2, [0.0] * 3, [1.0] * 3)
    assert model.input_shape == (None, 192)
    assert model.get_layer("to_image").output.shape[1:] == (8, 8, 3)


def test_the_default_search_space_is_macro_except_for_the_progressive_tuner():
    from automl_kit.blocks.search_space import search_space_for

    assert isinstance(search_space_for(GRAY28), MacroSearchSpace)
    assert isinstance(search_space_for(GRAY28, "auto", tuner="enas"), MacroSearchSpace)
    assert isinstance(search_space_for(GRAY28, "auto", tuner="progressive"), MicroSearchSpace)
    assert isinstance(search_space_for(GRAY28, "micro", tuner="enas"), MicroSearchSpace)
    with pytest.raises(ValueError, match="'auto'"):
        search_space_for(GRAY28, "cells")
