"""StageSpec / Stage / build_stages (keras_cnns.models._stages): block lookup, strides, pyramid
features, stochastic-depth rules, transitions, split-and-merge stages, several specs per stage."""

import dataclasses

import keras
import pytest

from keras_cnns.blocks import StochasticDepth, basic_block
from keras_cnns.models._stages import (SplitMerge, Stage, StageSpec, Transition, build_stages,
                                      plain_block, stage_levels, survival_probabilities)


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
    ("stages", dict(stages=[Stage(StageSpec("unknown", 1, 4))])),
    ("stages", dict(stages=Stage(StageSpec("basic", 1, 4)))),
    ("block_kwargs_fn", dict(block_kwargs_fn=5)),
    ("block_kwargs_fn", dict(block_kwargs_fn=lambda s, b: {"stride": 2})),
    ("block_kwargs_fn", dict(block_kwargs_fn=lambda s, b: None)),
])
def test_invalid_build_stages_arguments(arg, kwargs):
    inp = keras.Input((8, 8, 4))
    call = dict(stages=[StageSpec("basic", 1, 4)])
    call.update(kwargs)
    with pytest.raises(ValueError) as err:
        build_stages(inp, **call)
    assert f"`{arg}`" in str(err.value) and "Received:" in str(err.value)


# --- Stage: transitions, split and merge, several specs per stage ------------------------------

def _recording_dense_layer(calls, growth=4):
    """A DenseNet layer (BN-ReLU-3x3 conv, concatenated to its input) that records its calls."""

    def dense_layer(x, filters, *, stride, survival_prob, name, **kwargs):
        calls.append(dict(name=name, stride=stride, survival_prob=survival_prob,
                          channels=x.shape[-1], side=x.shape[1]))
        y = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        y = keras.layers.ReLU(name=f"{name}_relu")(y)
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv")(y)
        return keras.layers.Concatenate(name=f"{name}_concat")([x, y])

    return dense_layer


def _dense_transition(k, filters):
    def fn(x):
        x = keras.layers.BatchNormalization(name=f"pool{k}_bn")(x)
        x = keras.layers.ReLU(name=f"pool{k}_relu")(x)
        x = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"pool{k}_conv")(x)
        return keras.layers.AveragePooling2D(2, 2, name=f"pool{k}_pool")(x)

    return Transition(fn, stride=2)


def test_transition_stages_shapes_levels_and_survival():
    calls = []
    stages = [Stage(StageSpec("dense", 2, 4), post=_dense_transition(2, 6)),
              Stage(StageSpec("dense", 3, 4), post=_dense_transition(3, 10))]
    inp = keras.Input((16, 16, 8))
    x, features = build_stages(inp, stages, block_fns={"dense": _recording_dense_layer(calls)},
                               stochastic_depth=0.5, level=2,
                               name_fn=lambda s, b: f"conv{s + 2}_block{b + 1}")
    model = keras.Model(inp, x)
    # The blocks: 8 + 2 * 4 = 16 channels, compressed to 6 and pooled; 6 + 3 * 4 = 18 -> 10.
    assert [(c["name"], c["channels"], c["side"]) for c in calls] == [
        ("conv2_block1", 8, 16), ("conv2_block2", 12, 16),
        ("conv3_block1", 6, 8), ("conv3_block2", 10, 8), ("conv3_block3", 14, 8)]
    assert tuple(x.shape[1:]) == (4, 4, 10)
    # The last map of each level: the dense outputs before each pool, the last pooled map.
    assert stage_levels(stages, 2) == [2, 3, 4] and sorted(features) == ["P2", "P3", "P4"]
    assert [tuple(features[k].shape[1:]) for k in ("P2", "P3", "P4")] == [
        (16, 16, 16), (8, 8, 18), (4, 4, 10)]
    assert features["P3"] is model.get_layer("conv3_block3_concat").output
    assert features["P4"] is model.get_layer("pool3_pool").output
    # The linear rule over the 5 blocks; the transitions are no blocks (no rate, not counted).
    assert all(c["stride"] == 1 for c in calls)
    assert [c["survival_prob"] for c in calls] == pytest.approx(survival_probabilities(5, 0.5))
    assert [l.name for l in model.layers if l.name.startswith("pool")] == [
        f"pool{k}_{s}" for k in (2, 3) for s in ("bn", "relu", "conv", "pool")]


def test_pre_transition_and_striding_parts_share_the_level_walk():
    # SqueezeNext v5-like: a striding 1x1 transition before the stage's identity blocks.
    stages = [StageSpec("basic", 1, 8),
              Stage(StageSpec("basic", 2, 16), pre=Transition(
                  lambda t: keras.layers.Conv2D(16, 1, strides=2, name="t2")(t), stride=2))]
    inp = keras.Input((16, 16, 8))
    x, features = build_stages(inp, stages, level=1)
    assert sorted(features) == ["P1", "P2"] == [f"P{k}" for k in stage_levels(stages, 1)]
    assert features["P1"].shape[1] == 16 and features["P2"] is x and x.shape[1] == 8
    # A transition that does not keep to its declared stride is reported.
    wrong = [Stage(StageSpec("basic", 1, 8), post=Transition(
        lambda t: keras.layers.MaxPooling2D(2, name="p")(t)))]
    with pytest.raises(ValueError, match="`stages`.*declared stride 1"):
        build_stages(inp, wrong)


def test_split_merge_stage_channels_and_parts():
    calls = []

    def split(t):
        return (keras.layers.Conv2D(6, 1, name="s2_part1")(t),
                keras.layers.Conv2D(5, 1, name="s2_part2")(t))

    def merge(y, other):
        y = keras.layers.Conv2D(7, 1, name="s2_transition")(y)
        y = keras.layers.Concatenate(name="s2_concat")([y, other])
        assert y.shape[-1] == 12
        return keras.layers.Conv2D(20, 1, name="s2_merge")(y)

    down = Transition(lambda t: keras.layers.Conv2D(16, 3, strides=2, padding="same",
                                                    name="s2_down")(t), stride=2)
    stage = Stage(StageSpec("dense", 2, 3), pre=down, split_merge=SplitMerge(split, merge))
    inp = keras.Input((16, 16, 8))
    x, features = build_stages(inp, [stage], block_fns={"dense": _recording_dense_layer(calls)},
                               stochastic_depth=0.8)
    model = keras.Model(inp, x)
    assert tuple(x.shape[1:]) == (8, 8, 20) and sorted(features) == ["P0", "P1"]
    assert features["P0"] is inp and features["P1"] is x
    # The blocks run on part 1 (6 channels) alone, at the new resolution.
    assert [(c["channels"], c["side"]) for c in calls] == [(6, 8), (9, 8)]
    assert [c["survival_prob"] for c in calls] == pytest.approx(survival_probabilities(2, 0.8))
    assert model.get_layer("stage1_block1_bn").input is model.get_layer("s2_part1").output
    with pytest.raises(ValueError, match="split_merge"):
        Stage(StageSpec("dense", 1, 3, stride=2), split_merge=SplitMerge(split, merge))
    bad = Stage(StageSpec("dense", 1, 3), split_merge=SplitMerge(lambda t: t, merge))
    with pytest.raises(ValueError, match="`stages`.*two tensors"):
        build_stages(inp, [bad], block_fns={"dense": _recording_dense_layer([])})


def test_two_specs_in_one_stage_name_per_stage():
    calls = []

    def unit(kind):
        def fn(x, filters, *, stride, name, **kwargs):
            calls.append((kind, name, stride, kwargs["survival_prob"], kwargs.get("first")))
            return keras.layers.Conv2D(filters, 3, strides=stride, padding="same", name=name)(x)
        return fn

    stages = [Stage([StageSpec("down", 1, 8, stride=2, options={"first": True}),
                     StageSpec("basic", 2, 8)]),
              Stage([StageSpec("down", 1, 16, stride=2), StageSpec("basic", 1, 16)])]
    inp = keras.Input((16, 16, 4))
    x, features = build_stages(inp, stages, block_fns={"down": unit("down"), "basic": unit("basic")},
                               stochastic_depth=0.5, stochastic_depth_rule="uniform", level=2,
                               name_fn=lambda s, b: f"stage{s + 2}_{b}")
    assert calls == [("down", "stage2_0", 2, 0.5, True), ("basic", "stage2_1", 1, 0.5, None),
                     ("basic", "stage2_2", 1, 0.5, None), ("down", "stage3_0", 2, 0.5, None),
                     ("basic", "stage3_1", 1, 0.5, None)]
    assert sorted(features) == ["P2", "P3", "P4"] and tuple(x.shape[1:]) == (4, 4, 16)
    assert tuple(features["P3"].shape[1:]) == (8, 8, 8)  # stage 2's output, before stage3_0


def test_block_kwargs_fn_and_plain_block():
    seen = []

    def block(x, filters, *, strides, name, order):
        seen.append((name, strides, order))
        return keras.layers.Conv2D(filters, 1, strides=strides, name=name)(x)

    inp = keras.Input((8, 8, 4))
    build_stages(inp, [StageSpec("b", 3, 4, stride=2)],
                 block_fns={"b": plain_block(block, stride_arg="strides")},
                 block_kwargs_fn=lambda s, b: {"order": b % 2})
    assert seen == [("stage1_block1", 2, 0), ("stage1_block2", 1, 1), ("stage1_block3", 1, 0)]
    with pytest.raises(ValueError, match="`stochastic_depth`"):
        build_stages(inp, [StageSpec("b", 1, 4)], block_fns={"b": plain_block(block)},
                     stochastic_depth=0.5)
    with pytest.raises(ValueError, match="`groups`"):
        build_stages(inp, [StageSpec("b", 1, 4, groups=2)], block_fns={"b": plain_block(block)})


@pytest.mark.parametrize("arg, make", [
    ("parts", lambda: Stage([])),
    ("parts", lambda: Stage(["basic"])),
    ("pre", lambda: Stage(StageSpec("basic", 1, 4), pre=3)),
    ("post", lambda: Stage(StageSpec("basic", 1, 4), post="pool")),
    ("split_merge", lambda: Stage(StageSpec("basic", 1, 4), split_merge=(len, len))),
    ("fn", lambda: Transition(None)),
    ("stride", lambda: Transition(len, stride=3)),
    ("split", lambda: SplitMerge(None, len)),
    ("merge", lambda: SplitMerge(len, 0)),
])
def test_invalid_stage_parts(arg, make):
    with pytest.raises(ValueError) as err:
        make()
    assert f"`{arg}`" in str(err.value) and "Received:" in str(err.value)
