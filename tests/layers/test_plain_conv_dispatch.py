"""Plain ``keras.layers.Conv2D`` layers on the custom op where the measured rule says so
(:func:`keras_cnns.layers.dispatch_plain_convolutions`): same class, config, weights and exports;
outputs and gradients equal TensorFlow's own convolution."""

import contextlib

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_cnns
from keras_cnns.layers import dispatch_plain_convolutions
from keras_cnns.layers.conv import _op_convolution
from keras_cnns.ops import custom_op_available, stock_ops_only
from keras_cnns.ops.depthwise_dispatch import (PLAIN_ENV_VAR, measured_plain_rule,
                                               prefer_custom_plain)

needs_op = pytest.mark.skipif(not custom_op_available(), reason="custom op not built here")


def _on_op(model):
    return [layer.name for layer in model._flatten_layers(include_self=False)
            if getattr(getattr(layer, "convolution_op", None), "__func__", None) is _op_convolution]


def _build(monkeypatch, mode, name="resnet20", **kw):
    monkeypatch.setenv(PLAIN_ENV_VAR, mode)
    keras.utils.set_random_seed(0)
    model = keras_cnns.create_model(name, input_shape=(32, 32, 3), classes=7, **kw)
    monkeypatch.delenv(PLAIN_ENV_VAR)
    return model


def _op_types(model, x, stock=False):
    # a training step's graph: the forward and the gradients (most 3x3 layers run only their
    # gradients on the op, see plain_forward_on_op)
    def step(t):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(t, training=True))
        return tape.gradient(loss, model.trainable_weights)

    fn = tf.function(step)
    with stock_ops_only() if stock else contextlib.nullcontext():
        graph = fn.get_concrete_function(x).graph
    return {op.type for op in graph.get_operations()}


@needs_op
def test_chosen_convolutions_run_on_the_op_and_equal_tensorflows(monkeypatch):
    on = _build(monkeypatch, "custom")
    off = _build(monkeypatch, "stock")
    off.set_weights(on.get_weights())
    convs = [layer for layer in on._flatten_layers(include_self=False)
             if type(layer) is keras.layers.Conv2D]
    # every Conv2D of CIFAR ResNet-20 is plain (3x3 and 1x1, strides 1 and 2, one group)
    assert sorted(_on_op(on)) == sorted(layer.name for layer in convs) and len(convs) >= 19
    assert _on_op(off) == []
    assert all(not layer.supports_jit for layer in convs)  # custom ops have no XLA kernel
    assert not all(layer.supports_jit for layer in on._flatten_layers())
    # the same class, config and weights: nothing a saved model or a user can see changes
    assert on.get_config() == off.get_config()
    assert [type(layer) for layer in on.layers] == [type(layer) for layer in off.layers]
    x = tf.constant(np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype("float32"))
    assert any(t.startswith("KerasCnns>") for t in _op_types(on, x))
    assert not any(t.startswith("KerasCnns>") for t in _op_types(off, x))
    # inside stock_ops_only (every export) the chosen layers run TensorFlow's convolution
    assert not any(t.startswith("KerasCnns>") for t in _op_types(on, x, stock=True))
    target = tf.constant(np.random.default_rng(1).normal(size=(4, 7)).astype("float32"))

    def grads(model):
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            loss = tf.reduce_sum(y * target)
        return y, tape.gradient(loss, model.trainable_weights)

    y_on, g_on = grads(on)
    y_off, g_off = grads(off)
    np.testing.assert_allclose(y_on.numpy(), y_off.numpy(), rtol=1e-4, atol=1e-5)
    for w, a, b in zip(on.trainable_weights, g_on, g_off):
        scale = float(tf.reduce_max(tf.abs(b))) or 1.0
        assert float(tf.reduce_max(tf.abs(a - b))) <= 1e-4 * scale, w.path


@needs_op
def test_a_saved_model_of_a_dispatched_model_has_stock_ops_only(monkeypatch, tmp_path):
    from keras_cnns.export import export_saved_model

    model = _build(monkeypatch, "custom")
    assert _on_op(model)
    path = export_saved_model(model, base_dir=str(tmp_path), model_name="r20")
    loaded = tf.saved_model.load(path)
    types = {op.type for f in loaded.serve.concrete_functions
             for op in f.graph.get_operations()}
    types |= {node.op for f in loaded.serve.concrete_functions
              for fn in f.graph.as_graph_def().library.function for node in fn.node_def}
    assert "Conv2D" in types and not any(t.startswith("KerasCnns>") for t in types)
    x = np.random.default_rng(2).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded.serve(tf.constant(x)).numpy(),
                               model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


@needs_op
def test_keras_file_round_trip_gives_the_plain_keras_model(monkeypatch, tmp_path):
    model = _build(monkeypatch, "custom")
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert _on_op(loaded) == []
    x = np.random.default_rng(3).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)


def test_only_plain_float32_convolutions_are_considered(monkeypatch):
    monkeypatch.setenv(PLAIN_ENV_VAR, "custom")
    inp = keras.Input((16, 16, 8))
    plain = keras.layers.Conv2D(8, 3, padding="same", name="plain")
    grouped = keras.layers.Conv2D(8, 3, padding="same", groups=2, name="grouped")
    dilated = keras.layers.Conv2D(8, 3, padding="same", dilation_rate=2, name="dilated")
    rect = keras.layers.Conv2D(8, (1, 3), padding="same", name="rect")
    uneven = keras.layers.Conv2D(8, 3, strides=(2, 1), padding="same", name="uneven")
    half = keras.layers.Conv2D(8, 3, padding="same", dtype="mixed_float16", name="half")
    shared = keras.layers.Conv2D(8, 3, padding="same", name="shared")
    y = plain(inp)
    y = shared(shared(grouped(dilated(rect(y)))))
    y = uneven(y)
    y = half(y)
    model = keras.Model(inp, y)
    assert dispatch_plain_convolutions(model) == ["plain"]
    monkeypatch.setenv(PLAIN_ENV_VAR, "stock")
    assert dispatch_plain_convolutions(keras.Model(inp, plain(inp))) == []


def test_plain_rule_override_and_bad_value(monkeypatch):
    monkeypatch.setenv(PLAIN_ENV_VAR, "custom")
    assert prefer_custom_plain(8, 8, 512, 512, 3, 1, onednn=True)
    monkeypatch.setenv(PLAIN_ENV_VAR, "stock")
    assert not prefer_custom_plain(32, 32, 16, 16, 3, 1, onednn=False)
    monkeypatch.setenv(PLAIN_ENV_VAR, "auto")
    for args in [(32, 32, 16, 16, 3, 1), (8, 8, 512, 512, 3, 1), (None, None, 16, 16, 3, 1)]:
        for onednn in (False, True):
            assert prefer_custom_plain(*args, onednn=onednn) == measured_plain_rule(*args, onednn)
    monkeypatch.setenv(PLAIN_ENV_VAR, "fastest")
    with pytest.raises(ValueError, match=f"{PLAIN_ENV_VAR}.*auto.*custom.*stock.*'fastest'"):
        prefer_custom_plain(32, 32, 16, 16, 3, 1)


def test_measured_plain_rule():
    # oneDNN on: its convolution wins at every measured shape
    for args in [(32, 32, 16, 16, 3, 1), (16, 16, 32, 12, 3, 1), (32, 32, 160, 160, 1, 1)]:
        assert not measured_plain_rule(*args, onednn=True)
    # oneDNN off: 3x3 / 1x1 convolutions of >= 8 channels, stride 1 on maps up to 32 px, stride 2
    # up to 34 px
    assert measured_plain_rule(32, 32, 16, 16, 3, 1, onednn=False)     # 1.49x
    assert measured_plain_rule(16, 16, 32, 32, 3, 1, onednn=False)     # 1.52x
    assert measured_plain_rule(32, 32, 64, 12, 3, 1, onednn=False)     # DenseNet growth, 2.39x
    assert measured_plain_rule(32, 32, 16, 128, 1, 1, onednn=False)    # 1x1, 1.28x
    assert measured_plain_rule(34, 34, 16, 32, 3, 2, onednn=False)      # strided: 1.13x
    assert measured_plain_rule(18, 18, 256, 512, 3, 2, onednn=False)    # 1.43x
    assert measured_plain_rule(32, 32, 128, 256, 1, 2, onednn=False)    # 1x1 strided: 1.22x
    assert not measured_plain_rule(36, 36, 16, 32, 3, 2, onednn=False)  # not measured
    assert not measured_plain_rule(33, 33, 16, 16, 3, 1, onednn=False)
    assert not measured_plain_rule(32, 32, 16, 32, 3, 3, onednn=False)  # stride 3
    assert not measured_plain_rule(32, 32, 3, 16, 3, 1, onednn=False)  # the stem: 0.89x
    # outside the measured domain: TensorFlow's kernels
    assert not measured_plain_rule(56, 56, 64, 64, 3, 1, onednn=False)
    assert not measured_plain_rule(None, None, 64, 64, 3, 1, onednn=False)
    assert not measured_plain_rule(32, 32, 64, 64, 5, 1, onednn=False)


@needs_op
def test_models_follow_the_rule_of_their_process():
    from keras_cnns.environment import onednn_enabled

    model = keras_cnns.create_model("resnet20", input_shape=(32, 32, 3), classes=7)
    expected = []
    for layer in model._flatten_layers(include_self=False):
        if type(layer) is keras.layers.Conv2D:
            _, h, w, c = layer.input.shape
            if measured_plain_rule(h, w, c, layer.filters, layer.kernel_size[0],
                                   layer.strides[0], bool(onednn_enabled())):
                expected.append(layer.name)
    assert sorted(_on_op(model)) == sorted(expected)
    assert bool(expected) is not bool(onednn_enabled())  # CIFAR ResNet: all or nothing


def test_plain_forward_split_by_filter_size(monkeypatch):
    from keras_cnns.ops.depthwise_dispatch import PLAIN_FORWARD_FILTER_BYTES, plain_forward_on_op

    monkeypatch.setenv(PLAIN_ENV_VAR, "auto")
    assert PLAIN_FORWARD_FILTER_BYTES == 256 * 1024
    assert plain_forward_on_op(3, 436, 12)         # 184 KiB: DenseNet-40's widest growth conv
    assert plain_forward_on_op(3, 16, 15)          # 3x3 with fewer than 16 output channels
    assert plain_forward_on_op(1, 256, 256)        # 1x1, exactly 256 KiB
    assert not plain_forward_on_op(1, 520, 130)    # 1x1, 264 KiB
    assert not plain_forward_on_op(3, 16, 16)      # ResNet-110's 3x3s: Eigen's forward
    assert not plain_forward_on_op(3, 64, 64)
    assert not plain_forward_on_op(3, 128, 128)    # 576 KiB: WRN-16-8
    assert not plain_forward_on_op(1, 1024, 1024)  # 4 MiB: MobileNet's last pointwise
    monkeypatch.setenv(PLAIN_ENV_VAR, "custom")
    assert plain_forward_on_op(1, 1024, 1024)


@needs_op
@pytest.mark.parametrize("kernel,cin,cout,stride", [(1, 512, 160, 1), (3, 128, 72, 1),
                                                    (3, 32, 24, 1), (3, 40, 12, 1),
                                                    (1, 64, 48, 1)])
def test_big_filters_run_tensorflows_forward_and_the_ops_gradients(monkeypatch, kernel, cin,
                                                                   cout, stride):
    from keras_cnns.ops import plain_conv2d_on_op
    from keras_cnns.ops.depthwise_dispatch import plain_forward_on_op

    monkeypatch.setenv(PLAIN_ENV_VAR, "auto")
    rng = np.random.default_rng(kernel + cin)
    x = tf.constant(rng.normal(size=(2, 6, 7, cin)).astype("float32"))
    w = tf.Variable(rng.normal(size=(kernel, kernel, cin, cout)).astype("float32") * 0.05)
    target = tf.constant(rng.normal(size=(2, 6, 7, cout)).astype("float32"))

    def run(conv):
        # value, both gradients and a second-order gradient (of |dx|^2 with respect to x)
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = conv(x, w)
                loss = tf.reduce_sum(y * y * target)
            dx, dw = inner.gradient(loss, [x, w])
            dx2 = tf.reduce_sum(dx * dx)
        return conv(x, w), dx, dw, outer.gradient(dx2, x)

    ours = tf.function(lambda: run(lambda a, b: plain_conv2d_on_op(a, b, stride, "same")))
    theirs = tf.function(lambda: run(lambda a, b: tf.nn.conv2d(a, b, stride, "SAME")))
    for a, b in zip(ours(), theirs()):
        scale = float(tf.reduce_max(tf.abs(b))) or 1.0
        assert float(tf.reduce_max(tf.abs(a - b))) <= 1e-5 * scale
    types = {op.type for op in ours.get_concrete_function().graph.get_operations()}
    assert "KerasCnns>GroupedDepthwiseConv2DBackpropFilter" in types
    assert "KerasCnns>GroupedDepthwiseConv2DBackpropInput" in types
    assert "Conv2DBackpropFilter" not in types and "Conv2DBackpropInput" not in types
    # the forward: TensorFlow's, or the op's for 1x1 and narrow 3x3 convolutions of small filters
    assert ("Conv2D" in types) is not plain_forward_on_op(kernel, cin, cout)
