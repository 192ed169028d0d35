import keras
import numpy as np
import pytest

from keras_cnns.layers import ConvFC, dense_to_conv_kernel, fc_as_conv

H, W, C, U = 3, 4, 5, 6


def _dense_model(rng):
    inp = keras.Input((H, W, C))
    m = keras.Model(inp, keras.layers.Dense(U, name="fc")(keras.layers.Flatten()(inp)))
    k = rng.normal(size=(H * W * C, U)).astype("float32")
    b = rng.normal(size=U).astype("float32")
    m.get_layer("fc").set_weights([k, b])
    return m, k, b


def test_dense_equals_fc_as_conv_and_slides(rng):
    dense, k, b = _dense_model(rng)
    inp = keras.Input((None, None, C))
    with pytest.raises(ValueError, match="kernel_size"):
        fc_as_conv(inp, U)  # unknown spatial size needs an explicit kernel_size
    conv = keras.Model(inp, fc_as_conv(inp, U, kernel_size=(H, W), name="fc_conv"))
    conv.get_layer("fc_conv").set_weights([dense_to_conv_kernel(k, (H, W, C)), b])
    x = rng.normal(size=(2, H, W, C)).astype("float32")
    y = np.asarray(conv(x))
    assert y.shape == (2, 1, 1, U)
    np.testing.assert_allclose(y[:, 0, 0], np.asarray(dense(x)), rtol=1e-5, atol=1e-5)
    big = rng.normal(size=(2, H + 3, W + 2, C)).astype("float32")
    y = np.asarray(conv(big))
    assert y.shape == (2, 4, 3, U)
    np.testing.assert_allclose(y[:, 0, 0], np.asarray(dense(big[:, :H, :W])), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[:, 3, 2], np.asarray(dense(big[:, 3:, 2:])), rtol=1e-5, atol=1e-5)


def test_default_kernel_is_incoming_map_and_activation(rng):
    inp = keras.Input((H, W, C))
    m = keras.Model(inp, fc_as_conv(inp, U, activation="relu", name="fc"))
    assert m.get_layer("fc").kernel_size == (H, W) and m.get_layer("fc").padding == "valid"
    assert m.output.shape == (None, 1, 1, U)
    assert isinstance(m.get_layer("fc_act"), keras.layers.ReLU)
    assert np.asarray(m(rng.normal(size=(4, H, W, C)).astype("float32"))).min() >= 0


def test_chw_flatten_order(rng):
    k = rng.normal(size=(H * W * C, U)).astype("float32")
    x = rng.normal(size=(H, W, C)).astype("float32")
    ref = x.transpose(2, 0, 1).reshape(-1) @ k          # Caffe / PyTorch NCHW flatten
    ck = dense_to_conv_kernel(k, (H, W, C), flatten_order="chw")
    np.testing.assert_allclose(np.einsum("hwc,hwcu->u", x, ck), ref, rtol=1e-5, atol=1e-5)
    ck = dense_to_conv_kernel(k, (H, W, C))
    np.testing.assert_allclose(np.einsum("hwc,hwcu->u", x, ck), x.reshape(-1) @ k, rtol=1e-5, atol=1e-5)


def test_convfc_layer_infers_kernel_and_serializes(rng, save_load, config_roundtrip):
    dense, k, b = _dense_model(rng)
    m = keras.Sequential([keras.Input((H, W, C)), ConvFC(U, name="cfc")], name="seq")
    layer = m.get_layer("cfc")
    assert layer.kernel_size == (H, W)
    layer.set_weights([dense_to_conv_kernel(k, (H, W, C)), b])
    x = rng.normal(size=(2, H, W, C)).astype("float32")
    np.testing.assert_allclose(np.asarray(m(x))[:, 0, 0], np.asarray(dense(x)), rtol=1e-5, atol=1e-5)
    clone = config_roundtrip(layer)
    assert clone.units == U and clone.kernel_size == (H, W)
    assert config_roundtrip(ConvFC(3, activation="relu")).get_config()["kernel_size"] is None
    save_load(m, x)


@pytest.mark.parametrize("call,arg", [
    (lambda: fc_as_conv(keras.Input((3, 3, 2)), 0), "units"),
    (lambda: fc_as_conv(keras.Input((3, 3, 2)), 4, kernel_size=0), "kernel_size"),
    (lambda: fc_as_conv(keras.Input((3, 3, 2)), 4, activation="no"), "activation"),
    (lambda: ConvFC(-1), "units"),
    (lambda: ConvFC(2, kernel_size=(1, 2, 3)), "kernel_size"),
    (lambda: ConvFC(2)(keras.Input((None, 3, 2))), "kernel_size"),
    (lambda: dense_to_conv_kernel(np.zeros((10, 2)), (2, 2, 2)), "dense_kernel"),
    (lambda: dense_to_conv_kernel(np.zeros((8, 2)), (2, 2)), "feature_shape"),
    (lambda: dense_to_conv_kernel(np.zeros((8, 2)), (2, 2, 2), flatten_order="whc"), "flatten_order"),
])
def test_invalid_arguments(call, arg):
    with pytest.raises(ValueError, match=rf"{arg}.*Received: .*{arg}"):
        call()
