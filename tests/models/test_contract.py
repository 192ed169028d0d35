"""The builder contract in one place (``keras_cnns.models._builder``): one signature of the common
arguments, one docstring for them, unknown keywords refused with a close match, and multi-scale
feature outputs (``features_only`` / ``out_indices``) for every registered model."""

import inspect
import math

import keras
import numpy as np
import pytest

import keras_cnns
from keras_cnns.models._builder import COMMON_ARGS, feature_extractor, pyramid_levels, shapes_only
from tests.models._family_knobs import REPEATS

ALL_MODELS = keras_cnns.list_models()
#: Models that take about a minute to build (ResNet-1202, ...) are built once, in the generic
#: matrix's test_heavy_model_figures.
LIGHT_MODELS = [n for n in ALL_MODELS if not keras_cnns.model_info(n).heavy]
COMMON = [name for name, _ in COMMON_ARGS]


def _builder(name):
    return keras_cnns.model_info(name).builder


def _test_side(name):
    """The input side of the forward pass: 128, or the architecture's minimum where larger
    (capped at the native size)."""
    info = keras_cnns.model_info(name)
    return min(max(128, info.min_input_size), info.default_input_shape[0])


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_builder_has_the_common_signature_and_docs(name):
    builder = _builder(name)
    params = list(inspect.signature(builder).parameters)
    assert params[-len(COMMON):] == COMMON
    doc = inspect.getdoc(builder)
    assert "{common_args}" not in doc
    for arg in COMMON:
        assert f"{arg}:" in doc, arg


def test_unknown_keyword_names_it_with_a_close_match():
    with pytest.raises(ValueError) as err:
        keras_cnns.create_model("squeezenet1_1", bypas="simple")
    message = str(err.value)
    assert "`bypas` (did you mean `bypass`?)" in message
    assert "Allowed: version, bypass, dropout, include_top" in message
    with pytest.raises(ValueError, match=r"`widht` \(did you mean `width`\?\)|`widht`"):
        keras_cnns.MobileNet(widht=2)
    with pytest.raises(ValueError, match="multiple values|got multiple"):
        keras_cnns.MobileNet(0.5, alpha=0.5)


def _expected_side(side, level):
    # The padding arithmetic of the layers before a level: floor((H - extent) / stride) + 1 (a
    # chain of "same" convolutions has extent 1, i.e. ceil(H / stride)).
    return (side - level["extent"]) // level["stride"] + 1


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_declared_levels_have_their_sides_and_channels(name):
    """Every registered model declares its feature levels; each level's map has exactly the
    declared channels and the side its stride and padding give, at the default size and at the
    test size (no "within one level" tolerance; a deeper or wider variant of a sibling,
    ``REPEATS``, at the default size: its strides and paddings are the sibling's)."""
    info = keras_cnns.model_info(name)
    levels = info.feature_levels()
    assert levels, f"{name} declares no feature level"
    strides = [lv["stride"] for lv in levels]
    assert strides == sorted(set(strides)) and all(s & (s - 1) == 0 for s in strides)
    assert [lv["level"] for lv in levels] == [f"P{s.bit_length() - 1}" for s in strides]
    default = info.default_input_shape
    for lv in levels:  # at the default size (feature_levels() built the model there)
        assert lv["side"] == _expected_side(default[0], lv), (default, lv)
    side = _test_side(name)
    if side != default[0] and name not in REPEATS:  # REPEATS: their sibling's sides
        shape = (side, side, default[-1])
        with shapes_only():  # the levels are read off the built graph; the models run elsewhere
            model = keras_cnns.create_model(name, features_only=True, input_shape=shape)
        assert sorted(model.output) == sorted(lv["level"] for lv in levels)
        for lv in levels:
            fmap = model.output[lv["level"]]
            expected = _expected_side(side, lv)
            assert tuple(fmap.shape[1:]) == (expected, expected, lv["channels"]), (side, lv)


def test_out_indices_select_levels_and_unknown_sides_work():
    model = keras_cnns.create_model("mobilenet_0_25", features_only=True, out_indices=(3, 5),
                                    input_shape=(None, None, 3))
    assert sorted(model.output) == ["P3", "P5"]
    out = model(np.zeros((1, 96, 128, 3), "float32"))
    assert out["P3"].shape == (1, 12, 16, 64) and out["P5"].shape == (1, 3, 4, 256)
    # The level is the ReLU after the last pointwise convolution of stride 8, not the padded
    # copy of it that the next stride-2 depthwise convolution reads.
    levels = pyramid_levels(keras_cnns.create_model("mobilenet_0_25", include_top=False))
    assert levels == {1: "conv_1_pw_act", 2: "conv_3_pw_act", 3: "conv_5_pw_act",
                      4: "conv_11_pw_act", 5: "conv_13_pw_act"}


def test_feature_extractor_of_a_built_model_shares_its_weights():
    full = keras_cnns.create_model("vgg11", input_shape=(64, 64, 3), classes=3)
    features = feature_extractor(full, out_indices=[2, 5])
    assert sorted(features.output) == ["P2", "P5"]
    assert pyramid_levels(full)[5] == "block5_pool" and pyramid_levels(full)[2] == "block3_conv2"
    x = np.random.default_rng(1).normal(size=(1, 64, 64, 3)).astype("float32")
    probe = keras.Model(full.inputs, full.get_layer("block5_pool").output)
    np.testing.assert_allclose(np.asarray(features(x)["P5"]), np.asarray(probe(x)), atol=1e-6)


@pytest.mark.parametrize("out_indices", [[], [7], "P2", [2, 2], [True], 3])
def test_bad_out_indices(out_indices):
    with pytest.raises(ValueError, match=r"`out_indices`.*Received: out_indices="):
        keras_cnns.create_model("squeezenet1_1", features_only=True, out_indices=out_indices)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(out_indices=[2]), "out_indices"),                      # without features_only
    (dict(features_only="yes"), "features_only"),
    (dict(features_only=True, weights=__file__), "weights"),
])
def test_bad_feature_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=rf"`{arg}`.*Received: {arg}="):
        keras_cnns.create_model("lenet5", **kwargs)


def test_shapes_only_builds_without_allocating_and_leaves_no_trace():
    from keras.src.backend.common import global_state

    with shapes_only():
        light = keras_cnns.create_model("resnet20")
    real = keras_cnns.create_model("resnet20")
    assert [tuple(w.shape) for w in light.weights] == [tuple(w.shape) for w in real.weights]
    assert light.count_params() == real.count_params()
    assert keras_cnns.profile(light).total_macs == keras_cnns.profile(real).total_macs
    assert all(w._value is None for w in light.weights)  # never allocated
    assert not global_state.get_global_attribute("uninitialized_variables", [])
    # the real model, built after, runs as usual
    assert np.all(np.isfinite(np.asarray(real(np.zeros((1, 32, 32, 3), "float32")))))
