import keras
import numpy as np
import pytest

from keras_cnns.layers import HardSigmoid, squeeze_excite


def _model(shape=(5, 5, 16), **kwargs):
    inp = keras.Input(shape)
    return keras.Model(inp, squeeze_excite(inp, **kwargs))


def test_names_and_default_reduction():
    m = _model(name="se")
    assert [l.name for l in m.layers[1:]] == ["se_squeeze", "se_reduce", "se_reduce_act", "se_expand",
                                              "se_gate", "se_excite"]
    assert m.get_layer("se_reduce").filters == 4  # 0.25 * 16
    assert m.get_layer("se_expand").filters == 16
    assert m.output.shape == (None, 5, 5, 16)
    assert m.count_params() == (16 * 4 + 4) + (4 * 16 + 16)


@pytest.mark.parametrize("kwargs,filters", [
    ({"se_filters": 3}, 3),
    ({"se_ratio": 0.3}, 5),                      # round(4.8)
    ({"se_ratio": 0.25, "divisor": 8}, 8),       # MobileNetV3: _make_divisible(4, 8) = 8
    ({"se_ratio": 1 / 16}, 1),
])
def test_reduced_channels(kwargs, filters):
    assert _model(name="se", **kwargs).get_layer("se_reduce").filters == filters


@pytest.mark.parametrize("gate", ["sigmoid", "hard_sigmoid"])
def test_output_is_x_times_gate_in_unit_interval(gate, rng):
    m = _model(name="se", gate=gate)
    if gate == "hard_sigmoid":
        assert isinstance(m.get_layer("se_gate"), HardSigmoid)
    for lname in ("se_reduce", "se_expand"):
        layer = m.get_layer(lname)
        layer.set_weights([w * 5 for w in layer.get_weights()[:1]] + [rng.normal(size=layer.filters)])
    x = rng.normal(size=(3, 5, 5, 16)).astype("float32")
    gate_model = keras.Model(m.input, m.get_layer("se_gate").output)
    g = np.asarray(gate_model(x))
    assert g.shape == (3, 1, 1, 16)
    assert g.min() >= 0.0 and g.max() <= 1.0
    y = np.asarray(m(x))
    np.testing.assert_allclose(y, x * g, rtol=1e-6, atol=1e-6)
    # independent reference: mean -> dense -> relu -> dense -> gate
    k1, b1 = m.get_layer("se_reduce").get_weights()
    k2, b2 = m.get_layer("se_expand").get_weights()
    z = np.maximum(x.mean(axis=(1, 2)) @ k1[0, 0] + b1, 0) @ k2[0, 0] + b2
    ref_g = 1 / (1 + np.exp(-z)) if gate == "sigmoid" else np.clip(z + 3, 0, 6) / 6
    np.testing.assert_allclose(g[:, 0, 0], ref_g, rtol=1e-4, atol=1e-5)


def test_save_load(save_load, rng):
    m = _model(name="se", gate="hard_sigmoid", activation="relu6", divisor=4)
    save_load(m, rng.normal(size=(2, 5, 5, 16)).astype("float32"))


@pytest.mark.parametrize("kwargs,arg", [
    ({"se_filters": 0}, "se_filters"),
    ({"se_ratio": 0.0}, "se_ratio"),
    ({"se_ratio": 1.5}, "se_ratio"),
    ({"gate": "relu"}, "gate"),
    ({"divisor": 0}, "divisor"),
    ({"activation": "xx"}, "activation"),
])
def test_invalid_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=rf"{arg}.*Received: .*{arg}="):
        squeeze_excite(keras.Input((5, 5, 16)), **kwargs)
