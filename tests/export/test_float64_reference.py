"""The float64 evaluation `verify_exports(float64_reference=True)` and the export sweep compare
float32 Keras and TFLite against: it must really compute in float64, with the same weights,
also through the library's own layers (custom op lowered to stock ops)."""

import numpy as np
import pytest

import keras

from keras_cnns.export._verify import _float64_outputs
from keras_cnns.layers.grouped_conv import GroupedDepthwiseConv2D


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6, 6, 3))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(64, activation="relu", name="fc1")(x)
    out = keras.layers.Dense(10, name="fc2")(x)
    return keras.Model(inp, out)


def _numpy_mlp(model, x):
    w1, b1, w2, b2 = (np.asarray(w, np.float64) for w in model.get_weights())
    h = np.maximum(x.reshape(len(x), -1).astype(np.float64) @ w1 + b1, 0.0)
    return h @ w2 + b2


def test_float64_outputs_equal_a_numpy_float64_forward():
    model = _mlp()
    x = np.random.default_rng(0).random((4, 6, 6, 3), dtype=np.float32)
    want = _numpy_mlp(model, x)
    got = _float64_outputs(model, x)
    assert got.dtype == np.float64
    assert np.max(np.abs(got - want)) < 1e-12
    # the check can tell float32 from float64: Keras' float32 result is much farther off
    f32 = np.asarray(model(x), np.float64)
    assert np.max(np.abs(f32 - want)) > 1e-9


def test_float64_outputs_leave_the_model_and_the_policy_alone():
    model = _mlp()
    before = [np.array(w) for w in model.get_weights()]
    x = np.random.default_rng(1).random((2, 6, 6, 3), dtype=np.float32)
    _float64_outputs(model, x)
    assert keras.config.dtype_policy().name == "float32"
    assert all(v.dtype == "float32" for v in model.weights)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("groups,shuffle", [(None, 1), (2, 2)])
def test_float64_outputs_through_the_grouped_custom_layer(groups, shuffle):
    """The library's grouped/depthwise layer (custom op, lowered to stock ops) in float64 equals
    a NumPy float64 grouped convolution (1x1 kernels: a per-group matrix product)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((5, 5, 4))
    filters = 4
    layer = GroupedDepthwiseConv2D(filters=filters, kernel_size=1, groups=groups,
                                   shuffle_groups=shuffle, name="gdw")
    model = keras.Model(inp, layer(inp))
    layer.bias.assign(np.random.default_rng(2).normal(size=(filters,)).astype("float32"))
    x = np.random.default_rng(3).random((2, 5, 5, 4), dtype=np.float32)

    kernel, bias = (np.asarray(w, np.float64) for w in model.get_weights())
    xs = x.astype(np.float64)
    if shuffle > 1:  # ShuffleNet's channel shuffle: reshape (g, C/g), transpose, flatten
        n, h, w, c = xs.shape
        xs = xs.reshape(n, h, w, shuffle, c // shuffle).transpose(0, 1, 2, 4, 3).reshape(
            n, h, w, c)
    g = groups or 4
    cin, cout = 4 // g, filters // g
    want = np.concatenate([xs[..., i * cin:(i + 1) * cin] @ kernel[0, 0, :, i * cout:(i + 1) * cout]
                           for i in range(g)], axis=-1) + bias
    got = _float64_outputs(model, x)
    assert np.max(np.abs(got - want)) < 1e-12


def test_float64_outputs_keep_integer_variables():
    """EfficientNet's input Normalization has an integer ``count``: it stays an integer, the
    float statistics become float64, and the result equals NumPy's ``(x - mean) / std``."""
    from keras_cnns.layers import InputNormalization

    inp = keras.Input((3, 3, 3))
    norm = InputNormalization(initial_mean=[0.4, 0.5, 0.6], initial_variance=[0.04, 0.09, 0.01])
    model = keras.Model(inp, norm(inp))
    x = np.random.default_rng(4).random((2, 3, 3, 3), dtype=np.float32)
    want = (x.astype(np.float64) - [0.4, 0.5, 0.6]) / np.sqrt([0.04, 0.09, 0.01])
    got = _float64_outputs(model, x)
    assert np.max(np.abs(got - want)) < 1e-6  # the stored statistics are float32 values
