"""Xception: keras.applications' outputs after copying its weights, the separable convolution
on the depthwise dispatch against Keras' own layer (outputs and gradients, both kernels), the
paper's count, the levels and the knobs' errors.

The generic matrix (test_models_generic.py, test_contract.py) checks the counts and MACs against
reference_figures.csv, the levels' sides, a training step and the serialisation.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnns
from keras_cnns.bridges import from_keras_applications, weighted_layers
from keras_cnns.layers.separable_conv import SeparableConv2D
from keras_cnns.models import feature_extractor, reference_figures, shapes_only
from keras_cnns.models.xception import Xception
from keras_cnns.ops import stock_ops_only
from tests.models.test_keras_apps import _randomize  # random kernels, BN statistics and biases


def _x(shape, batch=2, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


def test_paper_count_is_keras_applications_trainable_count():
    figures = reference_figures()["xception"]
    assert figures.params_kind == "trainable" and figures.paper_params.matches(figures.params)
    with shapes_only():
        model = Xception()
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 22_855_952
    assert model.count_params() == 22_910_480  # BN moving statistics included
    assert sum(isinstance(layer, SeparableConv2D) for layer in model.layers) == 34


def test_outputs_match_keras_applications():
    # 71 (keras.applications' smallest side) x 90: non-square, odd sides (33 x 43 -> 17 x 22 ->
    # 9 x 11 -> 5 x 6 -> 3 x 3 at the end)
    shape = (71, 90, 3)
    src = keras.applications.Xception(weights=None, input_shape=shape, classes=7,
                                      classifier_activation=None)
    dst = keras_cnns.create_model("xception", input_shape=shape, classes=7,
                                  classifier_activation=None)
    _randomize(src)
    x = _x(shape)
    expected = np.asarray(src(x, training=False))
    assert np.abs(expected).max() > 1e-2
    assert from_keras_applications(src, dst) is dst
    got = np.asarray(dst(x, training=False))
    print(f"\n[xception vs keras.applications {shape}] max diff "
          f"{np.abs(got - expected).max():.3g}")
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)
    # every weight in the layer of the same name (the unnamed shortcuts aside)
    ours = {layer.name: layer for layer in weighted_layers(dst)}
    for s, t in zip(weighted_layers(src), weighted_layers(dst), strict=True):
        if not s.name.startswith(("conv2d", "batch_normalization")):
            assert t is ours[s.name]
        for a, b in zip(s.get_weights(), t.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    # the levels are keras.applications' maps
    feats = feature_extractor(dst)
    for level, name in (("P1", "block1_conv2_act"), ("P5", "block14_sepconv2_act")):
        assert feats.output[level].shape[1:] == src.get_layer(name).output.shape[1:]
    # P4: the end of the middle flow (the sum the exit flow's first ReLU reads)
    assert feats.output["P4"].shape[1:] == src.get_layer("block13_sepconv1_act").input.shape[1:]


@pytest.mark.parametrize("mode", ["custom", "stock"])
@pytest.mark.parametrize("kwargs", [
    dict(filters=6, kernel_size=3, padding="same", use_bias=False),
    dict(filters=5, kernel_size=3, strides=2, padding="valid", depth_multiplier=2,
         use_bias=True, activation="relu"),
])
def test_separable_conv_equals_keras_layer(kwargs, mode, monkeypatch):
    # both depthwise kernels of the dispatch (KERAS_CNNS_DEPTHWISE), outputs and gradients
    monkeypatch.setenv("KERAS_CNNS_DEPTHWISE", mode)
    x = tf.constant(_x((9, 11, 4)))
    ours, ref = SeparableConv2D(**kwargs), keras.layers.SeparableConv2D(**kwargs)
    ours.build(x.shape)
    ref.build(x.shape)
    _randomize_layer(ours)
    ref.set_weights(ours.get_weights())
    assert [w.path.rsplit("/", 1)[-1] for w in ours.weights] == \
        [w.path.rsplit("/", 1)[-1] for w in ref.weights]
    grads = []
    for layer in (ours, ref):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        grads.append((y, tape.gradient(loss, [x, *layer.trainable_weights])))
    (y1, g1), (y2, g2) = grads
    np.testing.assert_allclose(y1, y2, atol=1e-5, rtol=1e-5)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    with stock_ops_only():  # the export path
        np.testing.assert_allclose(ours(x), y2, atol=1e-5, rtol=1e-5)
    clone = SeparableConv2D.from_config(ours.get_config())
    assert clone.get_config() == ours.get_config()


def _randomize_layer(layer, seed=0):
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        v.assign(rng.normal(size=v.shape).astype("float32"))


def test_separable_conv_runs_the_dispatch():
    # the depthwise half goes through keras_cnns.ops.grouped_depthwise_conv2d: the custom op
    # where it is loaded, stock ops inside stock_ops_only()
    layer = SeparableConv2D(8, 3, padding="same")
    spec = tf.TensorSpec((1, 16, 16, 32), tf.float32)
    layer.build(spec.shape)
    ops = {n.op for n in tf.function(layer).get_concrete_function(spec).graph.as_graph_def().node}
    if keras_cnns.ops.custom_op_available():
        assert "KerasCnns>GroupedDepthwiseConv2D" in ops
    with stock_ops_only():
        stock = {n.op for n in tf.function(lambda t: layer(t)).get_concrete_function(spec)
                 .graph.as_graph_def().node}
    assert not any(op.startswith("KerasCnns") for op in stock)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(dropout=1.0), "dropout"),
    (dict(dropout="half"), "dropout"),
    (dict(input_shape=(31, 31, 3)), "input_shape"),
])
def test_bad_knobs(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`") as info:
        Xception(**kwargs)
    assert "Received" in str(info.value)
