import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnns.layers import HardSwish, conv_bn_act


def _model(fn, shape=(8, 8, 4), name="m"):
    inp = keras.Input(shape)
    return keras.Model(inp, fn(inp), name=name)


def test_names_types_and_shape():
    m = _model(lambda t: conv_bn_act(t, 6, 3, strides=2, name="stem"))
    names = [l.name for l in m.layers[1:]]
    assert names == ["stem_conv", "stem_bn", "stem_act"]
    conv, bn, act = m.layers[1:]
    assert isinstance(conv, keras.layers.Conv2D) and not conv.use_bias and conv.padding == "same"
    assert bn.axis in (-1, 3) and bn.momentum == 0.99 and bn.epsilon == 1e-3
    assert isinstance(act, keras.layers.ReLU)
    assert m.output.shape == (None, 4, 4, 6)


def test_optional_parts_and_activation_kinds():
    m = _model(lambda t: conv_bn_act(t, 6, 1, use_bn=False, use_bias=True, activation=None, name="c"))
    assert [l.name for l in m.layers[1:]] == ["c_conv"]
    assert m.layers[1].use_bias
    m = _model(lambda t: conv_bn_act(t, 6, 1, activation="hard_swish", name="c"))
    assert isinstance(m.get_layer("c_act"), HardSwish)
    m = _model(lambda t: conv_bn_act(t, 6, 1, activation="relu6", name="c"))
    assert float(m.get_layer("c_act").max_value) == 6.0


def test_unnamed_blocks_do_not_collide():
    inp = keras.Input((8, 8, 3))
    y = conv_bn_act(conv_bn_act(inp, 4, 3), 4, 3)
    m = keras.Model(inp, y)
    assert len({l.name for l in m.layers}) == len(m.layers) == 7


def test_numerics_match_tf_conv_bn_relu(rng):
    m = _model(lambda t: conv_bn_act(t, 5, 3, strides=2, dilation_rate=1, name="c", bn_epsilon=1e-3))
    k = rng.normal(size=(3, 3, 4, 5)).astype("float32")
    gamma, beta = rng.uniform(0.5, 2, 5).astype("float32"), rng.normal(size=5).astype("float32")
    mean, var = rng.normal(size=5).astype("float32"), rng.uniform(0.5, 2, 5).astype("float32")
    m.get_layer("c_conv").set_weights([k])
    m.get_layer("c_bn").set_weights([gamma, beta, mean, var])
    x = rng.normal(size=(2, 8, 8, 4)).astype("float32")
    ref = tf.nn.conv2d(x, k, 2, "SAME").numpy()
    ref = np.maximum((ref - mean) / np.sqrt(var + 1e-3) * gamma + beta, 0)
    np.testing.assert_allclose(np.asarray(m(x, training=False)), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding,tf_pad", [(1, [[1, 1], [1, 1]]), ((2, 1), [[2, 2], [1, 1]]),
                                            (((0, 1), (1, 0)), [[0, 1], [1, 0]])])
def test_explicit_padding_is_zeropad_then_valid(padding, tf_pad, rng):
    m = _model(lambda t: conv_bn_act(t, 3, 3, strides=2, padding=padding, use_bn=False, activation=None,
                                     name="c"))
    assert isinstance(m.get_layer("c_pad"), keras.layers.ZeroPadding2D)
    assert m.get_layer("c_conv").padding == "valid"
    k = m.get_layer("c_conv").get_weights()[0]
    x = rng.normal(size=(1, 8, 8, 4)).astype("float32")
    ref = tf.nn.conv2d(tf.pad(x, [[0, 0], *tf_pad, [0, 0]]), k, 2, "VALID").numpy()
    np.testing.assert_allclose(np.asarray(m(x)), ref, rtol=1e-5, atol=1e-5)


def test_grouped_conv_matches_per_group_convs(rng):
    m = _model(lambda t: conv_bn_act(t, 6, 3, groups=2, use_bn=False, activation=None, name="g"))
    k = m.get_layer("g_conv").get_weights()[0]
    assert k.shape == (3, 3, 2, 6)
    x = rng.normal(size=(1, 8, 8, 4)).astype("float32")
    ref = np.concatenate([tf.nn.conv2d(x[..., 2 * i:2 * i + 2], k[..., 3 * i:3 * i + 3], 1, "SAME").numpy()
                          for i in range(2)], axis=-1)
    np.testing.assert_allclose(np.asarray(m(x)), ref, rtol=1e-5, atol=1e-5)


def test_save_load(save_load, rng):
    m = _model(lambda t: conv_bn_act(conv_bn_act(t, 6, 3, padding=1, activation="hard_swish", name="a"),
                                     4, 1, activation="swish", name="b"))
    save_load(m, rng.normal(size=(2, 8, 8, 4)).astype("float32"))


@pytest.mark.parametrize("kwargs,arg", [
    ({"filters": 0}, "filters"),
    ({"filters": 2.5}, "filters"),
    ({"kernel_size": 0}, "kernel_size"),
    ({"kernel_size": (3, 3, 3)}, "kernel_size"),
    ({"strides": -1}, "strides"),
    ({"padding": "full"}, "padding"),
    ({"padding": -1}, "padding"),
    ({"groups": 0}, "groups"),
    ({"groups": 3}, "groups"),
    ({"bn_momentum": 1.5}, "bn_momentum"),
    ({"bn_epsilon": 0.0}, "bn_epsilon"),
    ({"dilation_rate": 0}, "dilation_rate"),
    ({"activation": "nope"}, "activation"),
])
def test_invalid_arguments(kwargs, arg):
    args = {"filters": 6, "kernel_size": 3}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"{arg}.*Received: .*{arg}="):
        conv_bn_act(keras.Input((8, 8, 4)), **args)


def test_layer_names_option_gives_free_names_and_keeps_the_defaults():
    m = _model(lambda t: conv_bn_act(t, 6, 3, strides=2, padding=1, name="conv1",
                                     layer_names={"act": "conv1_relu"}))
    assert [l.name for l in m.layers[1:]] == ["conv1_pad", "conv1_conv", "conv1_bn", "conv1_relu"]
    m = _model(lambda t: conv_bn_act(t, 6, 1, layer_names={"conv": "free", "bn": None}))
    conv, bn, act = m.layers[1:]
    assert conv.name == "free" and bn.name.startswith("batch_normalization") and act.name
    # without the option (or with an empty mapping) the names are those of existing callers
    m = _model(lambda t: conv_bn_act(t, 6, 3, padding=1, name="s", layer_names={}))
    assert [l.name for l in m.layers[1:]] == ["s_pad", "s_conv", "s_bn", "s_act"]


@pytest.mark.parametrize("layer_names", [["act"], {"relu": "x"}, {"act": ""}, {"act": 3}])
def test_layer_names_option_rejects_bad_values(layer_names):
    inp = keras.Input((8, 8, 4))
    with pytest.raises(ValueError, match="layer_names"):
        conv_bn_act(inp, 6, 1, name="c", layer_names=layer_names)
