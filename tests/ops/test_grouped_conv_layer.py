"""The Keras layer ``GroupedDepthwiseConv2D`` on top of the compiled op."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnns import ops
from keras_cnns.layers.grouped_conv import GroupedDepthwiseConv2D
from keras_cnns.ops._reference import reference_grouped_depthwise_conv2d


def _model(layer, shape=(8, 8, 12)):
    inputs = keras.Input(shape)
    x = layer(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3)(x)
    return keras.Model(inputs, outputs)


def test_layer_matches_reference(op_lib):
    layer = GroupedDepthwiseConv2D(kernel_size=3, strides=2, groups=3, depth_multiplier=2,
                                   shuffle_groups=3, bias_initializer="random_normal")
    x = np.random.default_rng(0).standard_normal((2, 9, 9, 12)).astype(np.float32)
    y = layer(x)
    assert layer.kernel.shape == (3, 3, 4, 24)
    expected = reference_grouped_depthwise_conv2d(x, layer.kernel, 2, "SAME", 1, 3, 3) + layer.bias
    np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)
    assert tuple(layer.compute_output_shape((None, 9, 9, 12))) == (None, 5, 5, 24)


def test_layer_trains_one_step(op_lib):
    model = _model(GroupedDepthwiseConv2D(kernel_size=3, shuffle_groups=3, name="gdw"))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [w.numpy().copy() for w in model.get_layer("gdw").weights]
    x = np.random.default_rng(1).standard_normal((4, 8, 8, 12)).astype(np.float32)
    y = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float32)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    after = model.get_layer("gdw").weights
    assert np.isfinite(history.history["loss"][0])
    for b, a in zip(before, after):
        assert np.all(np.isfinite(a.numpy()))
        assert not np.allclose(b, a.numpy()), f"{a.name} did not change"


def test_jit_compile_auto_resolves_to_false(op_lib):
    from keras.src.trainers.trainer import model_supports_jit

    model = _model(GroupedDepthwiseConv2D(kernel_size=3, groups=4))
    assert not model_supports_jit(model)  # the layer opts out of XLA (no XLA kernel for the op)
    model.compile(optimizer="adam", loss="mse")  # default jit_compile="auto"
    assert model.jit_compile is False
    x = np.zeros((2, 8, 8, 12), np.float32)
    model.fit(x, np.zeros((2, 3), np.float32), verbose=0)


def test_get_config_from_config_round_trip(op_lib):
    layer = GroupedDepthwiseConv2D(filters=24, kernel_size=(3, 5), strides=(2, 1), padding="valid",
                                   dilation_rate=1, groups=6, shuffle_groups=2, use_bias=False,
                                   kernel_regularizer="l2", name="g")
    config = layer.get_config()
    clone = GroupedDepthwiseConv2D.from_config(config)
    assert clone.get_config() == config
    x = np.random.default_rng(3).standard_normal((1, 9, 9, 12)).astype(np.float32)
    layer.build(x.shape)
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x).numpy(), clone(x).numpy())


def test_keras_save_load_round_trip(op_lib, tmp_path):
    model = _model(GroupedDepthwiseConv2D(kernel_size=3, groups=3, depth_multiplier=2,
                                          shuffle_groups=3, bias_initializer="random_normal"))
    x = np.random.default_rng(4).standard_normal((2, 8, 8, 12)).astype(np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[1], GroupedDepthwiseConv2D)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_stock_ops_only_gives_the_same_outputs(op_lib):
    model = _model(GroupedDepthwiseConv2D(kernel_size=3, strides=2, shuffle_groups=4))
    x = np.random.default_rng(5).standard_normal((2, 8, 8, 12)).astype(np.float32)
    compiled = model(x)
    with ops.stock_ops_only():
        stock = tf.function(model)(x)
    np.testing.assert_allclose(compiled.numpy(), stock.numpy(), rtol=1e-5, atol=1e-5)


def test_mixed_precision(op_lib):
    layer = GroupedDepthwiseConv2D(kernel_size=3, shuffle_groups=2, dtype="mixed_float16")
    x = np.random.default_rng(6).standard_normal((1, 6, 6, 8)).astype(np.float32)
    y = layer(x)
    assert y.dtype == tf.float16
    expected = reference_grouped_depthwise_conv2d(
        tf.cast(x, tf.float16), tf.cast(layer.kernel, tf.float16), 1, "SAME", 1, 8, 2)
    np.testing.assert_allclose(y.numpy().astype(np.float32),
                               expected.numpy().astype(np.float32) + layer.bias.numpy(),
                               rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(groups=5), "divisible by `groups`"),
    (dict(filters=10, groups=4), r"`filters` \(10\) must be divisible"),
    (dict(shuffle_groups=5), "divisible by `shuffle_groups`"),
])
def test_layer_build_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GroupedDepthwiseConv2D(**kwargs).build((None, 8, 8, 12))
