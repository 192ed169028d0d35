"""StageSpec / build_stages (keras_cnns.models._stages): block lookup, strides, pyramid features,
stochastic-depth rules."""

import dataclasses

import keras
import pytest

from keras_cnns.blocks import StochasticDepth, basic_block
from keras_cnns.models._stages import StageSpec, build_stages, stage_levels, survival_probabilities


def test_linear_and_uniform_survival_rules():
    probs = survival_probabilities(54, 0.5)  # ResNet-110: 54 blocks, the paper's p_L = 0.5
    assert probs[0] == pytest.approx(1 - 0.5 / 54) and probs[-1] == pytest.approx(0.5)
    assert probs[26] == pytest.approx(1 - 27 / 54 * 0.5)
    assert all(a > b for a, b in zip(probs, probs[1:]))
    assert survival_probabilities(3, 0.8, "uniform") == [0.8, 0.8, 0.8]
    assert survival_probabilities(4, 1.0) == [1.0] * 4


def test_stage_spec_is_frozen_hashable_and_checked():
    spec = StageSpec("basic", 2, 16, stride=2, options={"shortcut": "A"})
    assert spec.kwargs == {"shortcut": "A"} and hash(spec) == hash(StageSpec("basic", 2, 16, 2, options={"shortcut": "A"}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.blocks = 3
    assert [spec.block_stride(i) for i in range(2)] == [2, 1]
    last = StageSpec("basic", 3, 16, stride=2, stride_block="last")
    assert [last.block_stride(i) for i in range(3)] == [1, 1, 2]


@pytest.mark.parametrize("arg, kwargs", [
    ("blocks", dict(blocks=0)),
    ("filters", dict(filters=-1)),
    ("stride", dict(stride=3)),
    ("stride_block", dict(stride_block="middle")),
    ("options", dict(options={"stride": 2})),
    ("options", dict(options=5)),
    ("block", dict(block="")),
])
def test_invalid_stage_spec(arg, kwargs):
    fields = dict(block="basic", blocks=1, filters=8)
    fields.update(kwargs)
    with pytest.raises(ValueError) as err:
        StageSpec(**fields)
    assert f"`{arg}`" in str(err.value) and "Received:" in str(err.value)


def test_build_stages_names_features_and_stochastic_depth():
    stages = [StageSpec("basic", 2, 8), StageSpec("basic", 2, 16, stride=2),
              StageSpec("basic", 1, 32, stride=2, stride_block="last")]
    inp = keras.Input((16, 16, 8))
    x, features = build_stages(inp, stages, stochastic_depth=0.5, level=1,
                               name_fn=lambda s, b: f"s{s}b{b}", features={"P0": inp})
    model = keras.Model(inp, x)
    assert sorted(features) == ["P0", "P1", "P2", "P3"] == [f"P{k}" for k in [0] + stage_levels(stages, 1)]
    assert [tuple(features[k].shape[1:]) for k in ("P1", "P2", "P3")] == [(16, 16, 8), (8, 8, 16), (4, 4, 32)]
    sd = [l for l in model.layers if isinstance(l, StochasticDepth)]
    assert [l.name for l in sd] == ["s0b0_add", "s0b1_add", "s1b0_add", "s1b1_add", "s2b0_add"]
    assert [l.survival_prob for l in sd] == pytest.approx(survival_probabilities(5, 0.5))


def test_pluggable_block_kinds_and_per_stage_options():
    calls = []

    def my_block(x, filters, **kwargs):
        calls.append((filters, kwargs["stride"], kwargs.get("shortcut"), kwargs["survival_prob"]))
        return basic_block(x, filters, **kwargs)

    inp = keras.Input((8, 8, 4))
    build_stages(inp, [StageSpec("mine", 1, 8, stride=2, options={"shortcut": "A"})],
                 block_fns={"mine": my_block}, block_kwargs={"shortcut": "B"})
    assert calls == [(8, 2, "A", None)]
    with pytest.raises(ValueError, match="stages"):
        build_stages(inp, [StageSpec("unknown", 1, 8)])


@pytest.mark.parametrize("arg, kwargs", [
    ("stochastic_depth", dict(stochastic_depth=0.0)),
    ("stochastic_depth_rule", dict(stochastic_depth=0.5, stochastic_depth_rule="cosine")),
    ("stages", dict(stages=[])),
    ("level", dict(level=-1)),
    ("block_fns", dict(block_fns=[basic_block])),
])
def test_invalid_build_stages_arguments(arg, kwargs):
    inp = keras.Input((8, 8, 4))
    call = dict(stages=[StageSpec("basic", 1, 4)])
    call.update(kwargs)
    with pytest.raises(ValueError) as err:
        build_stages(inp, **call)
    assert f"`{arg}`" in str(err.value) and "Received:" in str(err.value)
