"""SqueezeNext: the five released variants recounted in plain Python, Caffe's map sizes, the
block against a NumPy / tf.nn reference, the 3x1/1x3 alternation, G-SqNxt's groups, errors.

The generic matrix checks the built models against ``reference_figures.csv``; here the figures
themselves are recomputed from the table below with arithmetic only (no Keras layer is
involved), so a wrong layer in the builder, or a wrong figure in the file, fails.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnns
from keras_cnns.layers import GroupedDepthwiseConv2D
from keras_cnns.models import shapes_only
from keras_cnns.models.squeezenext import SqueezeNext, squeezenext_block

#: The released prototxts (amirgholami/SqueezeNext ``<dir>/train_val.prototxt``): stage widths,
#: blocks per stage, conv1 kernel, v5 (a 1x1 transition per stage instead of a 1x1-conv shortcut
#: on the first block), groups of the first 1x1, 3x1 and 1x3.
TABLE = {
    "sqnxt23_1_0": ("1.0-SqNxt-23", (32, 64, 128, 256), (6, 6, 8, 1), 7, False, 1),
    "sqnxt23v5_1_0": ("1.0-SqNxt-23v5", (32, 64, 128, 256), (2, 4, 14, 1), 5, True, 1),
    "g_sqnxt23_1_0": ("1.0-G-SqNxt-23", (32, 64, 128, 256), (6, 6, 8, 1), 7, False, 2),
    "sqnxt23_2_0": ("2.0-SqNxt-23", (64, 128, 256, 512), (6, 6, 8, 1), 7, False, 1),
    "sqnxt23v5_2_0": ("2.0-SqNxt-23v5", (64, 128, 256, 512), (2, 4, 14, 1), 5, True, 1),
}
NAMES = list(TABLE)


def _hand_count(name, side=227, classes=1000):
    """(trainable params, BatchNorm channels, BatchNorm layers, MACs, map sides after conv1,
    pool1 and each stage) with Caffe's size rules: conv floor, pooling ceil."""
    _, widths, depths, k1, v5, g = TABLE[name]
    params = macs = bn_channels = bn_layers = 0

    def conv(cin, cout, kh, kw, h, groups=1):  # bias-free conv + BatchNorm + Scale (gamma, beta)
        nonlocal params, macs, bn_channels, bn_layers
        w = kh * kw * cin // groups * cout
        params += w + 2 * cout
        macs += w * h * h
        bn_channels += cout
        bn_layers += 1

    h = (side - k1) // 2 + 1
    conv(3, 64, k1, k1, h)
    sides = [h]
    h = math.ceil((h - 3) / 2) + 1
    sides.append(h)
    cin = 64
    for c, n, s in zip(widths, depths, (1, 2, 2, 2)):
        h = (h - 1) // s + 1
        if v5:
            conv(cin, c, 1, 1, h)
            cin = c
        for b in range(n):
            if not v5 and b == 0:
                conv(cin, c, 1, 1, h)                     # the 1x1 shortcut
            conv(cin, c // 2, 1, 1, h, g)
            conv(c // 2, c // 4, 1, 1, h)
            conv(c // 4, c // 2, 3, 1, h, g)              # (the order does not change counts)
            conv(c // 2, c // 2, 1, 3, h, g)
            conv(c // 2, c, 1, 1, h)
            cin = c
        sides.append(h)
    conv(cin, 128, 1, 1, h)
    params += 128 * classes                              # fc1000, bias_term: false
    macs += 128 * classes
    return params, bn_channels, bn_layers, macs, sides


@pytest.fixture(scope="module")
def native():
    """Every variant built at 227 without weights (shapes only), once."""
    with shapes_only():
        return {name: keras_cnns.create_model(name) for name in NAMES}


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


@pytest.mark.parametrize("name", NAMES)
def test_counts_equal_the_hand_count_of_the_table(name, native):
    params, bn_channels, _, macs, _ = _hand_count(name)
    info = keras_cnns.model_info(name)
    assert info.reference_params == params and info.reference_params_kind == "trainable"
    assert info.reference_macs == macs                   # the figure file holds the hand count
    assert TABLE[name][0] in info.reference_note
    model = native[name]
    assert _count(model.trainable_weights) == params
    assert _count(model.weights) == params + 2 * bn_channels   # + moving mean and variance
    assert keras_cnns.profile(model).total_macs == macs


def test_figures_agree_with_independent_counts():
    # independent counts of the prototxts: learnable parameters / MACs at 227, and Caffe's
    # BatchNorm blobs (mean, variance, scale factor: 2C + 1 per layer) for 1.0-SqNxt-23
    expected = {"sqnxt23_1_0": (717_280, 277_999_808), "sqnxt23v5_1_0": (930_016, 224_916_480),
                "g_sqnxt23_1_0": (543_072, 224_191_552), "sqnxt23_2_0": (2_361_728, 742_070_464),
                "sqnxt23v5_2_0": (3_222_912, 702_592_000)}
    for name, (params, macs) in expected.items():
        assert _hand_count(name)[0] == params and _hand_count(name)[3] == macs
    _, bn_channels, bn_layers, _, _ = _hand_count("sqnxt23_1_0")
    assert bn_layers == 111 and 2 * bn_channels + bn_layers == 11_663


@pytest.mark.parametrize("name", NAMES)
def test_caffe_map_sizes_and_layout(name, native):
    model = native[name]
    _, widths, depths, _, v5, groups = TABLE[name]
    sides = _hand_count(name)[4]
    assert sides == ([112, 56, 56, 28, 14, 7] if v5 else [111, 55, 55, 28, 14, 7])
    side = lambda layer: model.get_layer(layer).output.shape[1:3]  # noqa: E731
    assert side("conv1_act") == (sides[0],) * 2 and side("pool1") == (sides[1],) * 2
    for stage, (c, n) in enumerate(zip(widths, depths), start=1):
        assert model.get_layer(f"stage{stage}_block{n}_relu").output.shape[1:] == \
            (sides[stage + 1], sides[stage + 1], c)
        names = [l.name for l in model.layers]
        assert f"stage{stage}_block{n + 1}_relu" not in names
        assert (f"stage{stage}_transition_conv" in names) == v5
        assert (f"stage{stage}_block1_shortcut_conv" in names) == (not v5)
    assert model.get_layer("final_conv").filters == 128
    dense = model.get_layer("predictions")
    assert not dense.use_bias and dense.kernel.shape == (128, 1000)
    assert isinstance(model.get_layer("pool1"), keras_cnns.models.squeezenet.CeilModeMaxPooling2D)


@pytest.mark.parametrize("name", NAMES)
def test_separable_pair_alternates_and_g_groups(name, native):
    model = native[name]
    _, _, depths, _, _, groups = TABLE[name]
    for stage, n in enumerate(depths, start=1):
        for b in range(1, n + 1):
            block = f"stage{stage}_block{b}"
            first = "3x1" if b % 2 == 1 else "1x3"  # block index from 0 even: 3x1 first
            feeds = model.get_layer(f"{block}_conv{first}_conv").input
            assert feeds is model.get_layer(f"{block}_squeeze2_act").output, block
    grouped = {l.name for l in model.layers if isinstance(l, GroupedDepthwiseConv2D)}
    convs = [l for l in model.layers
             if isinstance(l, (keras.layers.Conv2D, GroupedDepthwiseConv2D))]
    assert len(convs) == 111
    if groups == 1:
        assert not grouped and all(l.groups == 1 for l in convs)
    else:
        want = {l.name for l in convs
                if l.name.split("_")[-2] in ("squeeze1", "conv3x1", "conv1x3")}
        assert grouped == want and len(want) == 3 * sum(depths)
        assert all(model.get_layer(n).groups == 2 for n in grouped)
        assert all(l.groups == 1 for l in convs if l.name not in grouped)


def _reference_block(x, get, filters, strides, shortcut_conv, groups, order):
    """The block in NumPy (1x1 convolutions) and tf.nn.conv2d per group (3x1, 1x3), BatchNorm
    in inference mode from the layers' weights."""
    def bn_relu(t, name):
        g, b, m, v = get(f"{name}_bn")
        return np.maximum((t - m) / np.sqrt(v + 1e-5) * g + b, 0)

    def conv(t, name, stride=1, g=1):
        (k,) = get(f"{name}_conv")
        t = t[:, ::stride, ::stride]
        cin, cout = t.shape[-1] // g, k.shape[-1] // g
        outs = []
        for i in range(g):
            part = t[..., i * cin:(i + 1) * cin]
            kk = k[..., i * cout:(i + 1) * cout]
            if k.shape[:2] == (1, 1):
                outs.append(part @ kk[0, 0])
            else:
                outs.append(tf.nn.conv2d(part, kk, 1, "SAME").numpy())
        return bn_relu(np.concatenate(outs, -1), name)

    short = conv(x, "b_shortcut", strides) if shortcut_conv else x
    y = conv(x, "b_squeeze1", strides, groups)
    y = conv(y, "b_squeeze2")
    for kernel in order:
        y = conv(y, f"b_conv{kernel}", 1, groups)
    y = conv(y, "b_expand")
    return np.maximum(short + y, 0)


@pytest.mark.parametrize("cin, strides, shortcut_conv, groups, order", [
    (8, 2, True, 2, ("3x1", "1x3")),     # a G-SqNxt first block: stride 2 on an odd side
    (16, 1, False, 1, ("1x3", "3x1")),   # an identity block, 1x3 first
])
def test_block_matches_a_numpy_reference(cin, strides, shortcut_conv, groups, order):
    inp = keras.Input((7, 7, cin))
    out = squeezenext_block(inp, 16, strides=strides, shortcut_conv=shortcut_conv, groups=groups,
                            order=order, name="b")
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in w.path
                 else rng.normal(0, 0.4, w.shape).astype("float32"))
    x = rng.normal(size=(2, 7, 7, cin)).astype("float32")
    get = lambda n: model.get_layer(n).get_weights()  # noqa: E731
    expected = _reference_block(x, get, 16, strides, shortcut_conv, groups, order)
    got = keras.ops.convert_to_numpy(model(x, training=False))
    assert got.shape == ((2, 4, 4, 16) if strides == 2 else (2, 7, 7, 16))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert (expected > 0).mean() > 0.2                   # the comparison is not all zeros


def test_forward_backward_small_input_gives_finite_gradients():
    model = keras_cnns.create_model("g_sqnxt23_1_0", input_shape=(64, 64, 3), classes=10)
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        y = model(x, training=True)
        loss = -tf.reduce_sum(tf.math.log(y[:, :2]))
    assert tuple(y.shape) == (2, 10)
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in grads) > 0


def test_feature_levels_at_227():
    with shapes_only():
        model = keras_cnns.create_model("sqnxt23_1_0", features_only=True)
    sides = {k: tuple(v.shape[1:]) for k, v in model.output.items()}
    assert sides == {"P1": (111, 111, 64), "P2": (55, 55, 32), "P3": (28, 28, 64),
                     "P4": (14, 14, 128), "P5": (7, 7, 128)}


@pytest.mark.parametrize("kwargs, arg", [
    ({"width": 1.5}, "width"), ({"width": True}, "width"), ({"width": "1.0"}, "width"),
    ({"version": "23v6"}, "version"), ({"version": 23}, "version"),
    ({"groups": 3}, "groups"), ({"groups": True}, "groups"),
    ({"dropout": 1.0}, "dropout"),
])
def test_invalid_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`.*Received: {arg}="):
        SqueezeNext(input_shape=(32, 32, 3), **kwargs)


def test_identity_shortcut_must_keep_the_shape():
    with pytest.raises(ValueError, match="`shortcut_conv`"):
        squeezenext_block(keras.Input((8, 8, 16)), 16, strides=2, name="b")
    with pytest.raises(ValueError, match="`shortcut_conv`"):
        squeezenext_block(keras.Input((8, 8, 8)), 16, name="b")
    with pytest.raises(ValueError, match="`order`"):
        squeezenext_block(keras.Input((8, 8, 16)), 16, order=("3x1", "3x1"), name="b")
