import keras
import numpy as np
import pytest

from keras_cnns.layers import HardSigmoid, HardSwish, activation_layer, hard_sigmoid, hard_swish


def np_hard_sigmoid(x):
    return np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0


X = np.linspace(-6, 6, 97).astype("float32")


def test_hard_sigmoid_formula():
    y = np.asarray(hard_sigmoid(X))
    np.testing.assert_allclose(y, np_hard_sigmoid(X), rtol=0, atol=1e-7)
    # MobileNetV3 slope is 1/6, not Keras 2's 0.2: at x=1, 4/6 not 0.7
    np.testing.assert_allclose(np.asarray(hard_sigmoid(np.float32(1.0))), 4.0 / 6.0, atol=1e-7)
    assert y.min() == 0.0 and y.max() == 1.0


def test_hard_swish_formula():
    np.testing.assert_allclose(np.asarray(hard_swish(X)), X * np_hard_sigmoid(X), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls,ref", [(HardSigmoid, np_hard_sigmoid), (HardSwish, lambda x: x * np_hard_sigmoid(x))])
def test_layers_match_formula_and_serialize(cls, ref, config_roundtrip, save_load):
    layer = cls(name="hx")
    x = X.reshape(1, 97, 1, 1)
    np.testing.assert_allclose(np.asarray(layer(x)), ref(x), rtol=1e-6, atol=1e-7)
    assert layer.compute_output_shape((None, 3, 3, 2)) == (None, 3, 3, 2)
    config_roundtrip(layer)
    inp = keras.Input((4, 4, 2))
    model = keras.Model(inp, cls()(keras.layers.Conv2D(3, 1)(inp)), name=f"m_{cls.__name__}")
    save_load(model, np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype("float32") * 4)


@pytest.mark.parametrize(
    "act,cls,check",
    [
        ("relu", keras.layers.ReLU, lambda l: l.max_value is None),
        ("relu6", keras.layers.ReLU, lambda l: float(l.max_value) == 6.0),
        ("hard_swish", HardSwish, None),
        ("hard_sigmoid", HardSigmoid, None),
        ("swish", keras.layers.Activation, None),
        ("sigmoid", keras.layers.Activation, None),
        ("linear", keras.layers.Activation, None),
        (None, keras.layers.Activation, None),
    ],
)
def test_activation_layer_types(act, cls, check):
    layer = activation_layer(act, name="a")
    assert isinstance(layer, cls)
    assert layer.name == "a"
    if check is not None:
        assert check(layer)


def test_activation_layer_values():
    x = np.array([[-8.0, -1.0, 0.5, 7.0]], "float32")
    np.testing.assert_allclose(np.asarray(activation_layer("relu6")(x)), [[0, 0, 0.5, 6.0]])
    np.testing.assert_allclose(np.asarray(activation_layer(None)(x)), x)
    np.testing.assert_allclose(np.asarray(activation_layer("swish")(x)), x / (1 + np.exp(-x)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(activation_layer(lambda t: 2 * t)(x)), 2 * x)
    relu = keras.layers.ReLU()
    assert activation_layer(relu) is relu
    assert isinstance(activation_layer(HardSwish, name="hs"), HardSwish)


@pytest.mark.parametrize("bad", ["relu7", "not_an_activation", 3])
def test_activation_layer_rejects(bad):
    with pytest.raises(ValueError, match=r"activation.*Received: activation="):
        activation_layer(bad)
