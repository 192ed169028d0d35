"""The inverted residual block and the block notation, against NumPy / TF references."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnns.blocks import StochasticDepth, inverted_residual_block
from keras_cnns.blocks.inverted_residual import keras_correct_pad
from keras_cnns.layers import DropPath
from keras_cnns.models._notation import decode_stage, decode_stages
from keras_cnns.models._stages import StageSpec


def _block_model(shape, filters, **kwargs):
    inp = keras.Input(shape)
    return keras.Model(inp, inverted_residual_block(inp, filters, name="b", **kwargs))


def _reference(model, x, stride, pads, expansion):
    """The block recomputed with TF ops from the model's weights (inference BN)."""
    w = {l.name: l.get_weights() for l in model.layers if l.weights}

    def bn(t, name, eps):
        g, b, m, v = w[name]
        return (t - m) / np.sqrt(v + eps) * g + b

    eps = model.get_layer("b_dw_bn").epsilon
    t = x
    if expansion > 1:
        t = tf.nn.conv2d(t, w["b_expand_conv"][0], 1, "SAME").numpy()
        t = np.clip(bn(t, "b_expand_bn", eps), 0, 6)
    if stride > 1:
        t = np.pad(t, ((0, 0), pads, pads, (0, 0)))
    k = w["b_dw"][0]  # [k, k, 1, C] -> depthwise [k, k, C, 1]
    k = np.transpose(k, (0, 1, 3, 2))
    t = tf.nn.depthwise_conv2d(t, k, (1, stride, stride, 1), "SAME" if stride == 1 else "VALID")
    t = np.clip(bn(t.numpy(), "b_dw_bn", eps), 0, 6)
    t = tf.nn.conv2d(t, w["b_project_conv"][0], 1, "SAME").numpy()
    t = bn(t, "b_project_bn", eps)
    return t + x if stride == 1 and x.shape[-1] == t.shape[-1] else t


def _randomise_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for l in model.layers:
        if isinstance(l, keras.layers.BatchNormalization):
            c = l.gamma.shape[0]
            l.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                           rng.normal(0, 0.1, c), rng.uniform(0.5, 1.5, c)])


@pytest.mark.parametrize("shape, filters, stride, expansion, padding, pads", [
    ((8, 8, 16), 16, 1, 6, "keras", None),          # identity skip
    ((8, 8, 16), 24, 1, 1, "keras", None),          # no expansion, no skip (channels change)
    ((8, 8, 8), 16, 2, 6, "keras", (0, 1)),         # even side: correct_pad (0, 1)
    ((9, 9, 8), 16, 2, 6, "keras", (1, 1)),         # odd side: (1, 1)
    ((8, 8, 8), 16, 2, 3, "torch", (1, 1)),         # PyTorch's symmetric padding
])
def test_block_equals_a_tf_reference(shape, filters, stride, expansion, padding, pads):
    model = _block_model(shape, filters, stride=stride, expansion=expansion, padding=padding)
    _randomise_bn(model)
    x = np.random.default_rng(1).normal(size=(2, *shape)).astype("float32")
    got = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(got, _reference(model, x, stride, pads, expansion), atol=1e-4)
    names = {l.name for l in model.layers}
    assert ("b_add" in names) == (stride == 1 and shape[-1] == filters)
    assert ("b_expand_conv" in names) == (expansion > 1)


def test_keras_correct_pad():
    assert keras_correct_pad(8, 3) == (0, 1) and keras_correct_pad(9, 3) == (1, 1)
    assert keras_correct_pad(None, 3) == (0, 1) and keras_correct_pad(10, 5) == (1, 2)


def test_stochastic_depth_wraps_only_the_skip_block():
    model = _block_model((8, 8, 16), 16, survival_prob=0.5, seed=3)
    sd = [l for l in model.layers if isinstance(l, StochasticDepth)]
    assert len(sd) == 1 and sd[0].name == "b_add" and sd[0].survival_prob == 0.5
    x = np.ones((1, 8, 8, 16), "float32")
    # inference: x + 0.5 * branch(x)
    branch = keras.ops.convert_to_numpy(sd[0].branch(x, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=False)),
                               x + 0.5 * branch, atol=1e-5)
    strided = _block_model((8, 8, 16), 16, stride=2, survival_prob=0.5)
    assert not any(isinstance(l, StochasticDepth) for l in strided.layers)


def test_layer_names_override_roles():
    inp = keras.Input((8, 8, 4))
    out = inverted_residual_block(inp, 4, name="b", layer_names={"dw": "my_dw", "add": "sum"})
    names = {l.name for l in keras.Model(inp, out).layers}
    assert {"my_dw", "sum", "b_expand_conv", "b_project_bn"} <= names


@pytest.mark.parametrize("kwargs, arg", [
    ({"stride": 0}, "stride"), ({"expansion": 0}, "expansion"), ({"kernel_size": 4}, "kernel_size"),
    ({"padding": "same"}, "padding"), ({"groups": 2}, "groups"), ({"bn_momentum": 1.0}, "bn_momentum"),
    ({"bn_epsilon": 0.0}, "bn_epsilon"), ({"survival_prob": 0.0}, "survival_prob"),
    ({"seed": "x"}, "seed"), ({"layer_names": {"conv": "c"}}, "layer_names"),
    ({"expansion": 0.5}, "expansion"), ({"se_ratio": 0.0}, "se_ratio"),
    ({"se_ratio": 2}, "se_ratio"), ({"expand_divisor": 0}, "expand_divisor"),
    ({"se_base": "output"}, "se_base"), ({"se_divisor": 0}, "se_divisor"),
    ({"se_gate": "relu"}, "se_gate"), ({"drop_rate": 1.0}, "drop_rate"),
    ({"drop_rate": 0.1, "survival_prob": 0.9}, "drop_rate"),
])
def test_block_rejects_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        inverted_residual_block(keras.Input((8, 8, 4)), 4, **kwargs)


def test_block_rejects_unknown_channels_and_bad_filters():
    with pytest.raises(ValueError, match="filters"):
        inverted_residual_block(keras.Input((8, 8, 4)), 0)
    with pytest.raises(ValueError, match="channels"):
        inverted_residual_block(keras.Input((8, 8, None)), 4)


def test_decode_stage():
    spec = decode_stage("ir_r2_k5_s2_e6_c24")
    assert spec == StageSpec("inverted_residual", 2, 24, stride=2,
                             options={"kernel_size": 5, "expansion": 6})
    assert decode_stage("ir_r1_c16") == StageSpec("inverted_residual", 1, 16)
    assert [s.filters for s in decode_stages(["ir_r1_c16", "ir_r3_s2_c32"])] == [16, 32]
    # MobileNetV3's fields: fractional expansion, squeeze-and-excitation, activation
    spec = decode_stage("ir_r2_k5_s1_e2.3_c80_se0.25_nhs")
    assert spec.kwargs == {"kernel_size": 5, "expansion": 2.3, "se_ratio": 0.25,
                           "activation": "hard_swish"}
    assert decode_stage("ir_r1_e6_c8_nre").kwargs == {"expansion": 6, "activation": "relu"}


def test_fractional_expansion_rounds_to_the_divisor_and_se_widths():
    inp = keras.Input((8, 8, 24))
    out = inverted_residual_block(inp, 24, expansion=3.667, expand_divisor=8, se_ratio=0.25,
                                  name="b")
    model = keras.Model(inp, out)
    assert model.get_layer("b_expand_conv").filters == 88          # make_divisible(88.008, 8)
    assert model.get_layer("b_se_reduce").filters == 24            # make_divisible(22, 8)
    assert model.get_layer("b_se_expand").filters == 88
    plain = keras.Model(inp, inverted_residual_block(inp, 24, expansion=2.5, name="c"))
    assert plain.get_layer("c_expand_conv").filters == 60          # round(2.5 * 24)


def test_efficientnet_squeeze_excite_and_drop_connect():
    # EfficientNet: SE width from the block's input (max(1, int(C_in * ratio))), swish reduce,
    # sigmoid gate; drop connect only on the skip block, per sample, 1 / (1 - rate) in training
    inp = keras.Input((8, 8, 10))
    out = inverted_residual_block(inp, 10, expansion=6, se_ratio=0.25, se_base="input",
                                  se_divisor=None, se_activation="swish", se_gate="sigmoid",
                                  activation="swish", drop_rate=0.5, seed=1, name="b")
    model = keras.Model(inp, out)
    assert model.get_layer("b_se_reduce").filters == 2                # int(10 * 0.25)
    assert model.get_layer("b_se_expand").filters == 60
    assert isinstance(model.get_layer("b_se_gate"), keras.layers.Activation)
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 10)).astype("float32")
    sub = keras.Model(inp, [model.get_layer("b_project_bn").output, out])
    branch, y = (keras.ops.convert_to_numpy(t) for t in sub(x, training=False))
    np.testing.assert_allclose(y, x + branch, atol=1e-5)            # inference: no drop
    branch, y = (keras.ops.convert_to_numpy(t) for t in sub(x, training=True))
    delta = (y - x).reshape(64, -1)
    kept = np.abs(delta).max(axis=1) > 0
    assert 10 < kept.sum() < 54                                    # per-sample draws at rate 0.5
    np.testing.assert_allclose(delta[kept], 2.0 * branch.reshape(64, -1)[kept], rtol=1e-4,
                               atol=1e-4)
    inp2 = keras.Input((8, 8, 10))
    strided = keras.Model(inp2, inverted_residual_block(inp2, 10, stride=2, drop_rate=0.5,
                                                        name="s"))
    assert not any(isinstance(l, DropPath) for l in strided.layers)
    assert any(isinstance(l, DropPath) for l in model.layers)


@pytest.mark.parametrize("text, message", [
    ("xx_r1_c16", "block kind"), ("ir_r1", "'c'"), ("ir_c16", "'r'"), ("ir_r1_c16_q3", "q3"),
    ("ir_r1_c16_r2", "twice"), ("ir_r1.5_c16", "r1.5"), ("", "block string"), (3, "block string"),
    ("ir_r1_c16_s3", "stride"), ("ir_r1_c16_nxx", "nxx"), ("ir_r1_c16_nre_nhs", "twice"),
])
def test_decode_stage_rejects(text, message):
    with pytest.raises(ValueError, match=message):
        decode_stage(text)


@pytest.mark.parametrize("texts", ["ir_r1_c16", [], None])
def test_decode_stages_rejects(texts):
    with pytest.raises(ValueError, match="stages"):
        decode_stages(texts)
