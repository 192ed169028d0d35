"""DenseNet: the paper's parameter counts by hand, keras.applications' outputs after copying its
weights, the memory-efficient implementation against the plain one, and the knobs' errors.

The torchvision comparisons (DenseNet-121/161/169/201) are in test_torchvision_bridge.py, which
runs torch in its own process; the generic matrix (test_models_generic.py, test_contract.py)
checks every registered DenseNet's figures, fingerprint, levels and a training step.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnns
from keras_cnns.bridges import from_keras_applications, weighted_layers
from keras_cnns.layers import DenseLayer
from keras_cnns.models import reference_figures
from keras_cnns.models.densenet import CifarDenseNet, DenseNet
from keras_cnns.models._builder import shapes_only
from tests.models.test_keras_apps import (  # random kernels, BN statistics and biases
    _assert_same_layout, _randomize)


# ------------------------------------------------------------------------------------------------
# Parameter counts by hand (Huang et al. 2017, Table 1 and Sec. 4.2), against the csv figures
# ------------------------------------------------------------------------------------------------

def _bn(c):  # gamma and beta
    return 2 * c


def _hand_count(stem, stem_maps, blocks, k, bottleneck, theta, classes):
    """Trainable parameters of a DenseNet written out from the paper: bias-free convolutions,
    BN affine parameters, the classifier with its bias."""
    total, c = stem, stem_maps
    for i, n in enumerate(blocks):
        for _ in range(n):
            if bottleneck:  # BN(c), 1x1 c -> 4k, BN(4k), 3x3 4k -> k
                total += _bn(c) + c * 4 * k + _bn(4 * k) + 9 * 4 * k * k
            else:           # BN(c), 3x3 c -> k
                total += _bn(c) + 9 * c * k
            c += k
        if i < len(blocks) - 1:  # transition: BN(c), 1x1 c -> floor(theta c)
            out = int(c * theta)
            total += _bn(c) + c * out
            c = out
    return total + _bn(c) + c * classes + classes  # final BN, classifier


IMAGENET = {  # name: (blocks, k); stem 7x7 conv 3 -> 2k and its BN
    "densenet121": ((6, 12, 24, 16), 32), "densenet161": ((6, 12, 36, 24), 48),
    "densenet169": ((6, 12, 32, 32), 32), "densenet201": ((6, 12, 48, 32), 32),
    "densenet264": ((6, 12, 64, 48), 32),
}
CIFAR = {  # name: (L, k, bottleneck, theta); stem 3x3 conv 3 -> 16 (2k for BC), no BN
    "densenet40_k12": (40, 12, False, 1.0), "densenet100_k12": (100, 12, False, 1.0),
    "densenet100_k24": (100, 24, False, 1.0), "densenet_bc100_k12": (100, 12, True, 0.5),
    "densenet_bc250_k24": (250, 24, True, 0.5), "densenet_bc190_k40": (190, 40, True, 0.5),
}


@pytest.mark.parametrize("name", sorted(IMAGENET))
def test_imagenet_counts_by_hand(name):
    blocks, k = IMAGENET[name]
    count = _hand_count(7 * 7 * 3 * 2 * k + _bn(2 * k), 2 * k, blocks, k, True, 0.5, 1000)
    assert reference_figures()[name].params == count


@pytest.mark.parametrize("name", sorted(CIFAR))
def test_cifar_counts_by_hand_round_to_table_2(name):
    depth, k, bottleneck, theta = CIFAR[name]
    n = (depth - 4) // (6 if bottleneck else 3)
    stem_maps = 2 * k if bottleneck else 16
    count = _hand_count(3 * 3 * 3 * stem_maps, stem_maps, (n, n, n), k, bottleneck, theta, 10)
    figures = reference_figures()[name]
    assert figures.params == count
    assert figures.paper_params.matches(count)  # the paper's 1.0 M ... 25.6 M


# ------------------------------------------------------------------------------------------------
# keras.applications: the same outputs after copying randomised weights
# ------------------------------------------------------------------------------------------------

def _x(shape, batch=2, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


def _out(model, x, training=False):
    return keras.ops.convert_to_numpy(model(x, training=training))


APPS = {"densenet121": keras.applications.DenseNet121,
        "densenet169": keras.applications.DenseNet169,
        "densenet201": keras.applications.DenseNet201}


#: DenseNet-169 and -201 repeat DenseNet-121's layers (more per block): their layers (every
#: weighted layer's name and weight sizes, in order) are compared with keras.applications' on
#: models built without weights, their outputs on DenseNet-121 (~25 s of the suite saved).
STRUCTURE_ONLY = ("densenet169", "densenet201")


@pytest.mark.parametrize("name", STRUCTURE_ONLY)
def test_deep_variants_have_keras_applications_layers(name):
    shape = (64, 64, 3)
    with shapes_only():
        src = APPS[name](weights=None, input_shape=shape, classes=7, classifier_activation=None)
        dst = keras_cnns.create_model(name, input_shape=shape, classes=7,
                                      classifier_activation=None)
    _assert_same_layout(dst, src)


@pytest.mark.parametrize("name, memory_efficient", [("densenet121", False), ("densenet121", True)])
def test_outputs_match_keras_applications(name, memory_efficient):
    # 64 px: 32 (conv1) -> 16 (pool1) -> 8, 4, 2 after the transitions; 2x2 at the end.
    shape = (64, 64, 3)
    src = APPS[name](weights=None, input_shape=shape, classes=7, classifier_activation=None)
    dst = keras_cnns.create_model(name, input_shape=shape, classes=7, classifier_activation=None,
                                  memory_efficient=memory_efficient)
    _randomize(src)
    x = _x(shape)
    expected = _out(src, x)
    assert np.abs(expected).max() > 1e-2
    assert from_keras_applications(src, dst) is dst
    np.testing.assert_allclose(_out(dst, x), expected, atol=1e-4, rtol=1e-4)
    # every weight landed in the layer of the same name (the memory-efficient bottleneck's
    # BatchNormalization and Conv2D included)
    got = {l.name: l for l in weighted_layers(dst)}
    for layer in weighted_layers(src):
        for a, b in zip(layer.get_weights(), got[layer.name].get_weights()):
            np.testing.assert_array_equal(a, b)


def test_headless_levels_match_keras_applications_layers():
    # The declared P2..P4 are keras.applications' dense-block outputs (conv{s}_block{n}_concat),
    # P5 its final "relu"; P1 its "conv1_relu".
    shape = (64, 64, 3)
    src = keras.applications.DenseNet121(weights=None, include_top=False, input_shape=shape)
    _randomize(src, seed=2)
    dst = keras_cnns.create_model("densenet121", features_only=True, input_shape=shape)
    from_keras_applications(src, dst)
    names = {"P1": "conv1_relu", "P2": "conv2_block6_concat", "P3": "conv3_block12_concat",
             "P4": "conv4_block24_concat", "P5": "relu"}
    probe = keras.Model(src.input, {k: src.get_layer(v).output for k, v in names.items()})
    x = _x(shape)
    expected = {k: keras.ops.convert_to_numpy(v) for k, v in probe(x).items()}
    got = dst(x)
    for k in names:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got[k]), expected[k],
                                   atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# Memory-efficient (Pleiss et al. 2017) == plain: outputs, gradients, BN statistics
# ------------------------------------------------------------------------------------------------

def _pair(**kwargs):
    kw = dict(depth=16, growth_rate=6, input_shape=(16, 16, 3), classes=5, **kwargs)
    plain = CifarDenseNet(**kw)
    efficient = CifarDenseNet(memory_efficient=True, **kw)
    _randomize(plain, seed=4)
    efficient.set_weights(plain.get_weights())
    return plain, efficient


def _by_name(model):
    return {"/".join(v.path.split("/")[-2:]): v for v in model.weights}


def test_memory_efficient_has_the_plain_weights_under_the_same_names():
    plain, efficient = _pair()
    assert any(isinstance(l, DenseLayer) for l in efficient.layers)
    assert not any(isinstance(l, DenseLayer) for l in plain.layers)
    p, e = _by_name(plain), _by_name(efficient)
    assert sorted(p) == sorted(e)
    for k in p:  # set_weights (model order) put each array under its own name
        np.testing.assert_array_equal(np.asarray(p[k]), np.asarray(e[k]))


def _train_grads(model, x, y):
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, out))
    grads = tape.gradient(loss, model.trainable_weights)
    return out, {"/".join(v.path.split("/")[-2:]): g for v, g in zip(model.trainable_weights, grads)}


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf_function"])
def test_memory_efficient_outputs_gradients_and_statistics_equal_plain(graph):
    plain, efficient = _pair(drop_rate=0.0)
    x = _x((16, 16, 3), batch=4)
    y = np.array([0, 1, 2, 3])
    np.testing.assert_allclose(_out(efficient, x), _out(plain, x), atol=1e-5)
    step = tf.function(_train_grads, reduce_retracing=True) if graph else _train_grads
    out_p, g_p = step(plain, x, y)
    out_e, g_e = step(efficient, x, y)
    np.testing.assert_allclose(out_e.numpy(), out_p.numpy(), atol=1e-5)
    assert sorted(g_p) == sorted(g_e)
    for k in g_p:
        assert g_e[k] is not None, k
        scale = max(float(np.abs(g_p[k]).max()), 1e-3)
        np.testing.assert_allclose(g_e[k].numpy(), g_p[k].numpy(), atol=1e-4 * scale, err_msg=k)
    # one training call moved every BN's moving statistics once, as the plain model's
    p, e = _by_name(plain), _by_name(efficient)
    moved = 0
    for k in p:
        if k.endswith(("moving_mean", "moving_variance")):
            np.testing.assert_allclose(np.asarray(e[k]), np.asarray(p[k]), atol=1e-6, err_msg=k)
            moved += k.endswith("moving_mean") and float(np.abs(np.asarray(p[k])).max()) > 0
    assert moved > 0


def test_memory_efficient_recomputes_in_the_backward_pass():
    # The gradient function runs the normalisations again (count the fused BN calls) but no
    # convolution (count Conv2D forward ops in the traced gradient graph).
    layer = DenseLayer(4, 4, name="b")  # reads 12 maps > 2 * 4: the 1x1 conv is kept
    parts = [tf.constant(_x((6, 6, 4), seed=s)) for s in range(3)]
    layer(parts)
    calls = []
    for norm in (layer.norm1, layer.norm2):
        def counting(inputs, original=norm.fused_training):
            calls.append(1)
            return original(inputs)
        norm.fused_training = counting
    with tf.GradientTape() as tape:
        tape.watch(parts)
        out = layer(parts, training=True)
        assert len(calls) == 2
        loss = tf.reduce_sum(out * out)
    grads = tape.gradient(loss, parts + layer.trainable_weights)
    assert len(calls) == 4  # forward + the recomputation, per BatchNormalization
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)

    @tf.function
    def step(parts):
        with tf.GradientTape() as tape:
            tape.watch(parts)
            loss = tf.reduce_sum(layer(parts, training=True) ** 2)
        return tape.gradient(loss, parts + layer.trainable_weights)

    graph = step.get_concrete_function([tf.TensorSpec(p.shape) for p in parts]).graph
    convs = [op for op in graph.get_operations() if op.type == "Conv2D"]
    assert len(convs) == 2  # the forward pass's two; the backward uses backprop ops only
    # a layer reading at most 2 x its bottleneck's maps recomputes its 1x1 conv instead of
    # keeping its output (and recompute="all" does everywhere)
    for cheap in (DenseLayer(4, 8, name="c"), DenseLayer(4, 4, recompute="all", name="d")):
        cheap(parts)

        @tf.function
        def step2(parts, cheap=cheap):
            with tf.GradientTape() as tape:
                tape.watch(parts)
                loss = tf.reduce_sum(cheap(parts, training=True) ** 2)
            return tape.gradient(loss, parts + cheap.trainable_weights)

        graph = step2.get_concrete_function([tf.TensorSpec(p.shape) for p in parts]).graph
        assert sum(op.type == "Conv2D" for op in graph.get_operations()) == 3
        cheap.recompute = False
        plain = step2.python_function(parts)
        cheap.recompute = True if cheap.name == "c" else "all"
        for a, b in zip(step2(parts), plain):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)
    # and the gradients equal those of the plain composition (TF's own ops and gradients)
    layer.recompute = False
    with tf.GradientTape() as tape:
        tape.watch(parts)
        loss = tf.reduce_sum(layer(parts, training=True) ** 2)
    for a, b in zip(grads, tape.gradient(loss, parts + layer.trainable_weights)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_memory_efficient_trains_with_fit_and_round_trips(tmp_path):
    plain, efficient = _pair()
    efficient.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                      jit_compile=False)
    x, y = _x((16, 16, 3), batch=8), np.arange(8) % 5
    history = efficient.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    path = tmp_path / "efficient.keras"
    efficient.save(path)
    loaded = keras.saving.load_model(path)
    assert any(isinstance(l, DenseLayer) for l in loaded.layers)
    np.testing.assert_allclose(_out(loaded, x), _out(efficient, x), atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Knobs
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("builder, kwargs, arg", [
    (CifarDenseNet, dict(growth_rate=0), "growth_rate"),
    (CifarDenseNet, dict(growth_rate=2.5), "growth_rate"),
    (DenseNet, dict(growth_rate=-1), "growth_rate"),
    (CifarDenseNet, dict(compression=0.0), "compression"),
    (CifarDenseNet, dict(compression=1.5), "compression"),
    (DenseNet, dict(compression=-0.5), "compression"),
    (CifarDenseNet, dict(depth=101), "depth"),             # 6n + 4 with bottleneck
    (CifarDenseNet, dict(depth=41, bottleneck=False), "depth"),  # 3n + 4 without
    (CifarDenseNet, dict(depth=4), "depth"),
    (DenseNet, dict(depth=122), "depth"),
    (DenseNet, dict(blocks=(6, 12, 0, 16)), "blocks"),
    (DenseNet, dict(blocks=(6, 12)), "blocks"),
    (CifarDenseNet, dict(drop_rate=1.0), "drop_rate"),
    (CifarDenseNet, dict(memory_efficient=True, bottleneck=False, depth=40), "memory_efficient"),
    (CifarDenseNet, dict(memory_efficient=True, drop_rate=0.2), "memory_efficient"),
    (CifarDenseNet, dict(layout="caffe"), "layout"),
    (DenseNet, dict(bottleneck="yes"), "bottleneck"),
])
def test_bad_knobs_are_value_errors_naming_them(builder, kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        builder(**kwargs)


def test_custom_blocks_and_growth():
    with keras_cnns.models.shapes_only():
        model = DenseNet(blocks=(2, 2, 2, 2), growth_rate=8, input_shape=(64, 64, 3), classes=3)
    assert model.name == "densenet"
    count = _hand_count(7 * 7 * 3 * 16 + _bn(16), 16, (2, 2, 2, 2), 8, True, 0.5, 3)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == count
