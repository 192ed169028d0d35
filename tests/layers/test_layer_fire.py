import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnns.layers import fire_module


def _model(shape=(6, 6, 8), **kwargs):
    inp = keras.Input(shape)
    return keras.Model(inp, fire_module(inp, **kwargs))


def test_names_shape_params():
    m = _model(squeeze_filters=3, expand1x1_filters=5, expand3x3_filters=7, name="fire2")
    assert {l.name for l in m.layers[1:]} == {
        "fire2_squeeze1x1", "fire2_squeeze1x1_relu", "fire2_expand1x1", "fire2_expand1x1_relu",
        "fire2_expand3x3", "fire2_expand3x3_relu", "fire2_concat"}
    assert m.output.shape == (None, 6, 6, 12)
    assert m.count_params() == (8 * 3 + 3) + (3 * 5 + 5) + (9 * 3 * 7 + 7)
    assert m.get_layer("fire2_expand3x3").padding == "same"


def test_numerics_and_concat_order(rng):
    m = _model(squeeze_filters=3, expand1x1_filters=2, expand3x3_filters=4, name="f")
    x = rng.normal(size=(2, 6, 6, 8)).astype("float32")
    ws = {}
    for lname, shape in [("f_squeeze1x1", (1, 1, 8, 3)), ("f_expand1x1", (1, 1, 3, 2)), ("f_expand3x3", (3, 3, 3, 4))]:
        ws[lname] = (rng.normal(size=shape).astype("float32"), rng.normal(size=shape[-1]).astype("float32"))
        m.get_layer(lname).set_weights(list(ws[lname]))

    def conv(t, lname):
        k, b = ws[lname]
        return np.maximum(tf.nn.conv2d(t, k, 1, "SAME").numpy() + b, 0)

    s = conv(x, "f_squeeze1x1")
    ref = np.concatenate([conv(s, "f_expand1x1"), conv(s, "f_expand3x3")], axis=-1)
    np.testing.assert_allclose(np.asarray(m(x)), ref, rtol=1e-5, atol=1e-5)


def test_default_init_is_torchvision_kaiming_uniform():
    m = _model(shape=(4, 4, 64), squeeze_filters=16, expand1x1_filters=64, expand3x3_filters=64, name="f")
    for lname, fan_in in [("f_squeeze1x1", 64), ("f_expand1x1", 16), ("f_expand3x3", 9 * 16)]:
        k, b = m.get_layer(lname).get_weights()
        bound = np.sqrt(6.0 / fan_in)  # kaiming_uniform_(a=0): gain sqrt(2) * sqrt(3 / fan_in)
        assert np.abs(k).max() <= bound
        assert np.abs(k).max() > 0.9 * bound  # not glorot's smaller bound
        assert np.all(b == 0)


def test_initializer_overrides_and_bn():
    m = _model(squeeze_filters=2, expand1x1_filters=2, expand3x3_filters=2, name="f", use_bn=True,
               squeeze_kernel_initializer="zeros", expand_kernel_initializer="ones")
    assert np.all(m.get_layer("f_squeeze1x1").get_weights()[0] == 0)
    assert np.all(m.get_layer("f_expand3x3").get_weights()[0] == 1)
    assert isinstance(m.get_layer("f_expand1x1_bn"), keras.layers.BatchNormalization)


def test_save_load(save_load, rng):
    m = _model(squeeze_filters=3, expand1x1_filters=4, expand3x3_filters=4, name="f")
    save_load(m, rng.normal(size=(2, 6, 6, 8)).astype("float32"))


@pytest.mark.parametrize("kwargs,arg", [
    ({"squeeze_filters": 0}, "squeeze_filters"),
    ({"expand1x1_filters": -2}, "expand1x1_filters"),
    ({"expand3x3_filters": 1.5}, "expand3x3_filters"),
    ({"activation": "reluu"}, "activation"),
])
def test_invalid_arguments(kwargs, arg):
    args = {"squeeze_filters": 2, "expand1x1_filters": 2, "expand3x3_filters": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"{arg}.*Received: .*{arg}="):
        fire_module(keras.Input((6, 6, 8)), **args)
