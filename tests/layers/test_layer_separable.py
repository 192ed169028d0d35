import keras
import numpy as np
import pytest
from keras.src.applications.mobilenet import _depthwise_conv_block as keras_apps_block

from keras_cnns.layers import GroupedDepthwiseConv2D, depthwise_separable_block


def _model(shape=(8, 8, 6), **kwargs):
    inp = keras.Input(shape)
    return keras.Model(inp, depthwise_separable_block(inp, **kwargs))


@pytest.mark.parametrize("custom", [True, False])
@pytest.mark.parametrize("strides,out_hw", [(1, 8), (2, 4)])
def test_names_shape_and_param_count(custom, strides, out_hw):
    c, n = 6, 10
    m = _model(pointwise_filters=n, strides=strides, depthwise_use_custom_op=custom, name="b")
    names = [l.name for l in m.layers[1:]]
    expected = ["b_dw", "b_dw_bn", "b_dw_act", "b_pw", "b_pw_bn", "b_pw_act"]
    assert names == (["b_pad"] + expected if strides == 2 else expected)
    dw = m.get_layer("b_dw")
    assert isinstance(dw, GroupedDepthwiseConv2D if custom else keras.layers.DepthwiseConv2D)
    assert dw.padding == ("valid" if strides == 2 else "same")
    assert float(m.get_layer("b_pw_act").max_value) == 6.0
    assert m.output.shape == (None, out_hw, out_hw, n)
    # 9C depthwise + 4C BN + C*N pointwise + 4N BN (no biases anywhere)
    assert m.count_params() == 9 * c + 4 * c + c * n + 4 * n


def _copy_from_keras_apps(ours, ref, custom, c):
    for suffix_ours, suffix_ref in [("dw", "conv_dw_1"), ("dw_bn", "conv_dw_1_bn"),
                                    ("pw", "conv_pw_1"), ("pw_bn", "conv_pw_1_bn")]:
        w = ref.get_layer(suffix_ref).get_weights()
        if suffix_ours == "dw" and custom:  # [3,3,C,1] -> [3,3,1,C]
            w = [w[0].reshape(3, 3, 1, c)]
        ours.get_layer(f"b_{suffix_ours}").set_weights(w)


@pytest.mark.parametrize("custom", [True, False])
@pytest.mark.parametrize("strides", [1, 2])
def test_weight_for_weight_equal_to_keras_applications(custom, strides, rng):
    c, n = 6, 8
    inp = keras.Input((9, 9, c))
    ref = keras.Model(inp, keras_apps_block(inp, n, 1.0, strides=(strides, strides), block_id=1))
    for layer in ref.layers:  # random BN statistics so the check is not trivial
        if isinstance(layer, keras.layers.BatchNormalization):
            k = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, k), rng.normal(size=k), rng.normal(size=k),
                               rng.uniform(0.5, 2, k)])
    ours = _model((9, 9, c), pointwise_filters=n, strides=strides, depthwise_use_custom_op=custom, name="b")
    assert ours.count_params() == ref.count_params()
    _copy_from_keras_apps(ours, ref, custom, c)
    x = rng.normal(size=(2, 9, 9, c)).astype("float32")
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), rtol=1e-5, atol=1e-5)


def test_no_bn_variant_has_biases_and_custom_activation():
    m = _model(pointwise_filters=4, use_bn=False, activation="relu", name="b")
    assert [l.name for l in m.layers[1:]] == ["b_dw", "b_dw_act", "b_pw", "b_pw_act"]
    assert m.count_params() == 9 * 6 + 6 + 6 * 4 + 4
    assert m.get_layer("b_pw_act").max_value is None


@pytest.mark.parametrize("custom", [True, False])
def test_save_load(custom, save_load, rng):
    m = _model(pointwise_filters=4, strides=2, depthwise_use_custom_op=custom, name="b")
    loaded = save_load(m, rng.normal(size=(2, 8, 8, 6)).astype("float32"))
    assert type(loaded.get_layer("b_dw")) is type(m.get_layer("b_dw"))


@pytest.mark.parametrize("kwargs,arg", [
    ({"pointwise_filters": 0}, "pointwise_filters"),
    ({"strides": 0}, "strides"),
    ({"kernel_size": "3"}, "kernel_size"),
    ({"bn_momentum": -0.1}, "bn_momentum"),
    ({"bn_epsilon": -1.0}, "bn_epsilon"),
    ({"depth_multiplier": 0}, "depth_multiplier"),
    ({"activation": "bogus"}, "activation"),
])
def test_invalid_arguments(kwargs, arg):
    args = {"pointwise_filters": 4}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"{arg}.*Received: .*{arg}="):
        depthwise_separable_block(keras.Input((8, 8, 6)), **args)
