"""Family tests of the classic stacks: LeNet-5, AlexNet (torchvision / two-tower), ZFNet, VGG, NiN.

The generic matrix (test_models_generic.py) already builds every registered name at its default
size and compares the parameter count with reference_figures.csv. These tests pin what is
specific to the families against independent references: the papers' layer tables (ZFNet's Fig. 3, AlexNet's 55-27-13-6 maps), the CS231n notes' VGG-16
table, keras.applications.VGG16, and NumPy / ``tf.nn.conv2d`` re-computations of the grouped
convolutions and the pools.
Big networks are built (cheap) but run only at small inputs.
"""

import numpy as np
import pytest
import keras
import tensorflow as tf

import keras_cnns
from keras_cnns.layers import GroupedDepthwiseConv2D, LocalResponseNormalization
from keras_cnns.models import alexnet as alexnet_mod
from keras_cnns.models import lenet as lenet_mod
from keras_cnns.models import vgg as vgg_mod

def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _layer_params(model, name):
    return int(sum(np.prod(w.shape) for w in model.get_layer(name).trainable_weights))


def _side(model, name):
    return model.get_layer(name).output.shape[1]


# ----------------------------------------------------------------------------------------------
# Registry


def test_registered_names():
    # (the reference figures are in reference_figures.csv, checked by the generic matrix)
    assert {"lenet5", "alexnet", "alexnet_v1", "zfnet", "nin"} <= set(keras_cnns.list_models())
    assert keras_cnns.model_info("lenet5").default_classes == 10
    assert keras_cnns.model_info("nin").default_classes == 10
    assert keras_cnns.model_info("alexnet_v1").default_input_shape == (227, 227, 3)
    assert keras_cnns.model_info("lenet5").default_input_shape == (32, 32, 1)
    vgg_names = keras_cnns.list_models("vgg*")
    assert len(vgg_names) == 8
    assert all(keras_cnns.model_info(n).min_input_size == 32 for n in vgg_names)


@pytest.mark.parametrize(
    "name, module, attr",
    [
        ("lenet5", lenet_mod, "MIN_INPUT_SIZE"),
        ("alexnet", alexnet_mod, "ALEXNET_MIN_SIZE"),
        ("alexnet_v1", alexnet_mod, "ALEXNET_V1_MIN_SIZE"),
        ("zfnet", alexnet_mod, "ZFNET_MIN_SIZE"),
        ("vgg16", vgg_mod, "MIN_INPUT_SIZE"),
    ],
)
def test_min_input_size_is_tight(name, module, attr, monkeypatch):
    """The registered minimum builds; one pixel less cannot (with the size check switched off)."""
    info = keras_cnns.model_info(name)
    m, c = info.min_input_size, info.default_input_shape[-1]
    assert getattr(module, attr) == m
    monkeypatch.setattr(module, attr, 1)
    model = keras_cnns.create_model(name, include_top=False, input_shape=(m, m, c))
    assert model.output_shape[1:3] == (1, 1)
    with pytest.raises(ValueError, match="negative|zero"):
        keras_cnns.create_model(name, include_top=False, input_shape=(m - 1, m - 1, c))


def test_nin_builds_at_any_side():
    assert keras_cnns.model_info("nin").min_input_size == 1
    model = keras_cnns.create_model("nin", input_shape=(1, 1, 3))
    assert model.predict(np.ones((1, 1, 1, 3), "float32"), verbose=0).shape == (1, 10)


@pytest.mark.parametrize(
    "name, kwargs, arg",
    [
        ("lenet5", {"classes": 0}, "classes"),
        ("lenet5", {"activation": "no_such_activation"}, "activation"),
        ("lenet5", {"activation": None}, "activation"),
        ("lenet5", {"input_shape": (None, None, 1)}, "input_shape"),
        ("alexnet", {"input_shape": (None, None, 3)}, "input_shape"),
        ("alexnet", {"dropout": "0.5"}, "dropout"),
        ("alexnet_v1", {"input_shape": (None, None, 3)}, "input_shape"),
        ("alexnet_v1", {"groups": 3}, "groups"),
        ("alexnet_v1", {"lrn": 1}, "lrn"),
        ("zfnet", {"input_shape": (46, 46, 3)}, "input_shape"),
        ("zfnet", {"dropout": 1.0}, "dropout"),
        ("vgg16", {"input_shape": (16, 16, 3)}, "input_shape"),
        ("vgg16", {"classes": 0}, "classes"),
        ("vgg16", {"depth": 17}, "depth"),
        ("vgg16", {"batch_norm": "yes"}, "batch_norm"),
        ("vgg16", {"dropout": -0.1}, "dropout"),
        ("nin", {"dropout": 1.5}, "dropout"),
        ("nin", {"classes": 0}, "classes"),
    ],
)
def test_invalid_family_arguments(name, kwargs, arg):
    with pytest.raises(ValueError) as err:
        keras_cnns.create_model(name, **kwargs)
    message = str(err.value)
    assert f"`{arg}`" in message and f"Received: {arg}=" in message, message


def test_variable_size_features_without_top():
    """Flatten heads need static sides; the convolutional bodies do not."""
    for name in ("alexnet", "alexnet_v1", "zfnet", "vgg11", "lenet5"):
        info = keras_cnns.model_info(name)
        shape = (None, None, info.default_input_shape[-1])
        model = keras_cnns.create_model(name, include_top=False, input_shape=shape)
        assert model.output_shape == (None, None, None, model.output_shape[-1])
        s = info.min_input_size
        for side in (s, s + 5):
            y = model.predict(np.zeros((1, side, side, shape[-1]), "float32"), verbose=0)
            assert y.ndim == 4
        keras.backend.clear_session()


# ----------------------------------------------------------------------------------------------
# LeNet-5


def test_lenet5_layer_table():
    model = keras_cnns.create_model("lenet5")
    assert model.output_shape == (None, 10)
    assert _trainable(model) == keras_cnns.model_info("lenet5").reference_params
    # Modern LeNet-5, by hand: C1 156, C3 2,416 (full 6->16), F5 48,120, F6 10,164, out 850
    assert [_layer_params(model, n) for n in ("conv1", "conv2", "fc1", "fc2", "predictions")] == [
        156, 2_416, 48_120, 10_164, 850]
    assert [_side(model, n) for n in ("conv1", "pool1", "conv2", "pool2")] == [28, 14, 10, 5]
    assert isinstance(model.get_layer("pool1"), keras.layers.AveragePooling2D)
    assert model.get_layer("conv1_act").get_config()["activation"] == "tanh"
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 1)).astype("float32")
    y = model.predict(x, verbose=0)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)


def test_lenet5_relu_variant_same_params():
    model = keras_cnns.create_model("lenet5", activation="relu", classifier_activation=None)
    assert _trainable(model) == keras_cnns.model_info("lenet5").reference_params
    assert isinstance(model.get_layer("fc1_act"), keras.layers.ReLU)


# ----------------------------------------------------------------------------------------------
# AlexNet, two towers (2012 paper)


@pytest.fixture(scope="module")
def alexnet_v1_227():
    return keras_cnns.create_model("alexnet_v1")


def test_alexnet_v1_layer_table(alexnet_v1_227):
    model = alexnet_v1_227
    assert _trainable(model) == keras_cnns.model_info("alexnet_v1").reference_params
    # The paper's maps: 55x55x96 -> 27x27x256 -> 13x13x384/384/256 -> 6x6x256 -> 9216.
    sides = [_side(model, n) for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4",
                                       "conv5", "pool5")]
    assert sides == [55, 27, 27, 13, 13, 13, 13, 6]
    assert model.get_layer("flatten").output.shape[-1] == 9216
    # Parameters per layer: grouped layers have half the input channels per filter.
    expected = {
        "conv1": 11 * 11 * 3 * 96 + 96,
        "conv2": 5 * 5 * 48 * 256 + 256,
        "conv3": 3 * 3 * 256 * 384 + 384,
        "conv4": 3 * 3 * 192 * 384 + 384,
        "conv5": 3 * 3 * 192 * 256 + 256,
        "fc1": 9216 * 4096 + 4096,
        "fc2": 4096 * 4096 + 4096,
        "predictions": 4096 * 1000 + 1000,
    }
    assert {n: _layer_params(model, n) for n in expected} == expected


def test_alexnet_v1_grouped_layers_and_lrn(alexnet_v1_227):
    model = alexnet_v1_227
    for name in ("conv2", "conv4", "conv5"):
        layer = model.get_layer(name)
        assert isinstance(layer, GroupedDepthwiseConv2D), name
        assert layer.groups == 2
    for name in ("conv1", "conv3"):
        assert type(model.get_layer(name)) is keras.layers.Conv2D
    lrns = [layer for layer in model.layers if isinstance(layer, LocalResponseNormalization)]
    assert [layer.name for layer in lrns] == ["conv1_lrn", "conv2_lrn"]
    for layer in lrns:
        # Krizhevsky et al. 2012, Sec. 3.3: k = 2, n = 5, alpha = 1e-4, beta = 0.75
        assert (layer.depth_radius, layer.bias, layer.alpha, layer.beta) == (2, 2.0, 1e-4, 0.75)
    # Order in the paper: ReLU, then LRN, then the overlapping max-pool.
    names = [layer.name for layer in model.layers]
    assert names.index("conv1_relu") < names.index("conv1_lrn") < names.index("pool1")
    dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert [(d.name, d.rate) for d in dropouts] == [("fc1_drop", 0.5), ("fc2_drop", 0.5)]


@pytest.mark.parametrize("name", ["conv2", "conv4", "conv5"])
def test_alexnet_v1_grouped_conv_is_two_independent_towers(alexnet_v1_227, name):
    """Each half of the outputs is a plain convolution of its own half of the inputs."""
    layer = alexnet_v1_227.get_layer(name)
    rng = np.random.default_rng(3)
    kernel = rng.normal(size=tuple(layer.kernel.shape)).astype("float32")
    bias = rng.normal(size=tuple(layer.bias.shape)).astype("float32")
    original = layer.get_weights()
    layer.set_weights([kernel, bias])
    channels = kernel.shape[2] * 2
    half_in, half_out = channels // 2, kernel.shape[3] // 2
    x = rng.normal(size=(2, 9, 8, channels)).astype("float32")  # any side: weights only
    x_other = x.copy()
    x_other[..., half_in:] = rng.normal(size=x_other[..., half_in:].shape)
    try:
        got = np.asarray(layer(x))
        got_other = np.asarray(layer(x_other))
    finally:
        layer.set_weights(original)
    towers = [
        tf.nn.conv2d(x[..., :half_in], kernel[..., :half_out], 1, "SAME"),
        tf.nn.conv2d(x[..., half_in:], kernel[..., half_out:], 1, "SAME"),
    ]
    expected = np.concatenate([t.numpy() for t in towers], axis=-1) + bias
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # Changing the second GPU's inputs leaves the first GPU's outputs alone, and only those.
    np.testing.assert_allclose(got_other[..., :half_out], got[..., :half_out], rtol=1e-5, atol=1e-5)
    assert np.abs(got_other[..., half_out:] - got[..., half_out:]).max() > 1e-2


def test_alexnet_v1_single_tower_option():
    # Single tower: 62,378,344 = imgclsmob alexnet (gluon/gluoncv2/models/alexnet.py)
    model = keras_cnns.create_model("alexnet_v1", groups=1)
    assert _trainable(model) == 62_378_344
    assert not any(isinstance(layer, GroupedDepthwiseConv2D) for layer in model.layers)
    no_lrn = keras_cnns.create_model("alexnet_v1", lrn=False, include_top=False)
    assert not any(isinstance(layer, LocalResponseNormalization) for layer in no_lrn.layers)


# ----------------------------------------------------------------------------------------------
# AlexNet, torchvision


def test_alexnet_torchvision_layout():
    model = keras_cnns.create_model("alexnet")
    assert _trainable(model) == keras_cnns.model_info("alexnet").reference_params
    widths = [model.get_layer(f"conv{i}").output.shape[-1] for i in range(1, 6)]
    assert widths == [64, 192, 384, 256, 256]
    sides = [_side(model, n) for n in ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5",
                                       "avgpool")]
    assert sides == [55, 27, 27, 13, 13, 6, 6]
    assert not any(isinstance(layer, (LocalResponseNormalization, GroupedDepthwiseConv2D))
                   for layer in model.layers)
    names = [layer.name for layer in model.layers]
    # torchvision: Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear
    assert names[names.index("flatten"):] == [
        "flatten", "fc1_drop", "fc1", "fc1_relu", "fc2_drop", "fc2", "fc2_relu", "predictions"]


@pytest.mark.parametrize("side", [63, 100])
def test_alexnet_adaptive_pool_keeps_the_head(side):
    """torchvision's AdaptiveAvgPool2d((6, 6)): same head (and params) at any input size."""
    model = keras_cnns.create_model("alexnet", input_shape=(side, side, 3))
    assert _trainable(model) == keras_cnns.model_info("alexnet").reference_params
    assert model.get_layer("avgpool").output.shape[1:] == (6, 6, 256)
    x = np.random.default_rng(0).normal(size=(1, side, side, 3)).astype("float32")
    probe = keras.Model(model.inputs, [model.get_layer("pool5").output,
                                       model.get_layer("avgpool").output])
    fmap, pooled = probe.predict(x, verbose=0)
    n = fmap.shape[1]
    # PyTorch's adaptive bins: [floor(i n / 6), ceil((i + 1) n / 6))
    expected = np.zeros((1, 6, 6, 256), "float32")
    for i in range(6):
        r0, r1 = (i * n) // 6, -(-((i + 1) * n) // 6)
        for j in range(6):
            c0, c1 = (j * n) // 6, -(-((j + 1) * n) // 6)
            expected[:, i, j] = fmap[:, r0:r1, c0:c1].mean(axis=(1, 2))
    np.testing.assert_allclose(pooled, expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# ZFNet


def test_zfnet_maps_of_the_paper():
    model = keras_cnns.create_model("zfnet", include_top=False)
    # Zeiler & Fergus, Fig. 3: 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 6
    sides = [_side(model, n) for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4",
                                       "conv5", "pool5")]
    assert sides == [110, 55, 26, 13, 13, 13, 13, 6]
    assert model.output_shape == (None, 6, 6, 256)
    kernels = [tuple(model.get_layer(f"conv{i}").kernel.shape) for i in range(1, 6)]
    assert kernels == [(7, 7, 3, 96), (5, 5, 96, 256), (3, 3, 256, 384), (3, 3, 384, 384),
                       (3, 3, 384, 256)]
    assert [layer.name for layer in model.layers
            if isinstance(layer, LocalResponseNormalization)] == ["conv1_lrn", "conv2_lrn"]


def _ceil_mode_max_pool(x, k=3, s=2):
    """NumPy reference of PyTorch's MaxPool2d(k, s, padding=0, ceil_mode=True)."""
    n, h, w, c = x.shape

    def out(size):
        o = -(-(size - k) // s) + 1
        if (o - 1) * s >= size:  # the last window must start inside the input
            o -= 1
        return o

    oh, ow = out(h), out(w)
    y = np.empty((n, oh, ow, c), x.dtype)
    for i in range(oh):
        for j in range(ow):
            y[:, i, j] = x[:, i * s:i * s + k, j * s:j * s + k].max(axis=(1, 2))
    return y


@pytest.mark.parametrize("size", [(2, 2), (10, 11), (26, 13), (55, 110)])
def test_zfnet_pool_is_ceil_mode(size):
    model = keras_cnns.create_model("zfnet", include_top=False, input_shape=(None, None, 3))
    pad, pool = model.get_layer("pool1_pad"), model.get_layer("pool1")
    # pool inputs are LRN(ReLU(.)) outputs: non-negative
    x = np.abs(np.random.default_rng(1).normal(size=(2, *size, 5))).astype("float32")
    np.testing.assert_allclose(np.asarray(pool(pad(x))), _ceil_mode_max_pool(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# VGG


@pytest.fixture(scope="module")
def vgg16_224_pair():
    ours = keras_cnns.create_model("vgg16")
    ref = keras.applications.VGG16(weights=None, include_top=True)
    return ours, ref


def _weighted(model):
    return [layer for layer in model.layers if layer.weights]


def test_vgg16_matches_cs231n_table(vgg16_224_pair):
    model, _ = vgg16_224_pair
    # CS231n notes, "VGGNet in detail" (https://cs231n.github.io/convolutional-networks/):
    # output of each layer and its weights (biases not counted).
    table = [
        ("block1_conv1", (224, 224, 64), 3 * 3 * 3 * 64),        # 1,728
        ("block1_conv2", (224, 224, 64), 36_864),
        ("block1_pool", (112, 112, 64), 0),
        ("block2_conv1", (112, 112, 128), 73_728),
        ("block2_conv2", (112, 112, 128), 147_456),
        ("block2_pool", (56, 56, 128), 0),
        ("block3_conv1", (56, 56, 256), 294_912),
        ("block3_conv2", (56, 56, 256), 589_824),
        ("block3_conv3", (56, 56, 256), 589_824),
        ("block3_pool", (28, 28, 256), 0),
        ("block4_conv1", (28, 28, 512), 1_179_648),
        ("block4_conv2", (28, 28, 512), 2_359_296),
        ("block4_conv3", (28, 28, 512), 2_359_296),
        ("block4_pool", (14, 14, 512), 0),
        ("block5_conv1", (14, 14, 512), 2_359_296),
        ("block5_conv2", (14, 14, 512), 2_359_296),
        ("block5_conv3", (14, 14, 512), 2_359_296),
        ("block5_pool", (7, 7, 512), 0),
        ("fc1", (4096,), 7 * 7 * 512 * 4096),                  # 102,760,448
        ("fc2", (4096,), 16_777_216),
        ("predictions", (1000,), 4_096_000),
    ]
    for name, shape, weights in table:
        layer = model.get_layer(name)
        assert tuple(layer.output.shape[1:]) == shape, name
        kernel = int(np.prod(layer.kernel.shape)) if weights else 0
        assert kernel == weights, name
    assert _trainable(model) == keras_cnns.model_info("vgg16").reference_params  # "TOTAL params: 138M"


def test_vgg16_224_same_weights_as_keras_applications(vgg16_224_pair):
    ours, ref = vgg16_224_pair
    assert ours.count_params() == ref.count_params() == keras_cnns.model_info("vgg16").reference_params
    pairs = list(zip(_weighted(ours), _weighted(ref)))
    assert len(pairs) == len(_weighted(ref)) == 16
    for a, b in pairs:
        assert a.name == b.name
        assert [tuple(w.shape) for w in a.weights] == [tuple(w.shape) for w in b.weights]


@pytest.mark.parametrize("include_top", [False, True])
def test_vgg16_equals_keras_applications(include_top):
    """Copy keras.applications.VGG16's random weights layer by layer: identical outputs."""
    kwargs = dict(include_top=include_top, input_shape=(32, 32, 3))
    if include_top:
        kwargs["classes"] = 10
    ref = keras.applications.VGG16(weights=None, **kwargs)
    ours = keras_cnns.create_model("vgg16", **kwargs)
    ref_layers, our_layers = _weighted(ref), _weighted(ours)
    assert [layer.name for layer in our_layers] == [layer.name for layer in ref_layers]
    for mine, theirs in zip(our_layers, ref_layers):
        mine.set_weights(theirs.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    expected = ref.predict(x, verbose=0)
    got = ours.predict(x, verbose=0)  # dropout is inactive at inference
    assert got.shape == expected.shape == ((2, 1, 1, 512) if not include_top else (2, 10))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))


@pytest.mark.parametrize("depth, convs", [(11, 8), (13, 10), (16, 13), (19, 16)])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_configurations(depth, convs, batch_norm):
    """depth = convolutions + 3 FC layers (configs A, B, D, E); BN after every convolution."""
    model = vgg_mod.VGG(depth, batch_norm=batch_norm, input_shape=(32, 32, 3), classes=10)
    conv_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    dense_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(conv_layers) == convs and len(dense_layers) == 3
    assert all(layer.kernel_size == (3, 3) and layer.padding == "same" for layer in conv_layers)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if batch_norm:
        assert [layer.name for layer in bns] == [f"{c.name}_bn" for c in conv_layers]
        assert all(c.activation is keras.activations.linear for c in conv_layers)
        assert all(abs(b.epsilon - 1e-5) < 1e-12 for b in bns)
    else:
        assert not bns
        assert all(c.activation is keras.activations.relu for c in conv_layers)
    expected_name = f"vgg{depth}_bn" if batch_norm else f"vgg{depth}"
    assert model.name == expected_name
    pools = [layer.name for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert pools == [f"block{b}_pool" for b in range(1, 6)]


def test_vgg_wrappers_and_dropout_knob():
    a = vgg_mod.VGG19(input_shape=(32, 32, 3), classes=5)
    b = keras_cnns.create_model("vgg19", input_shape=(32, 32, 3), classes=5)
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    assert [layer.name for layer in a.layers if isinstance(layer, keras.layers.Dropout)] == [
        "fc1_drop", "fc2_drop"]
    c = keras_cnns.create_model("vgg19", input_shape=(32, 32, 3), classes=5, dropout=0.0)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in c.layers)
    assert _trainable(a) == _trainable(c)


# ----------------------------------------------------------------------------------------------
# NiN


def test_nin_layer_table():
    model = keras_cnns.create_model("nin")
    assert model.output_shape == (None, 10)
    assert _trainable(model) == keras_cnns.model_info("nin").reference_params
    assert not any(isinstance(layer, keras.layers.Dense) for layer in model.layers)
    expected = {
        "block1_conv1": 5 * 5 * 3 * 192 + 192,
        "block1_conv2": 192 * 160 + 160,
        "block1_conv3": 160 * 96 + 96,
        "block2_conv1": 5 * 5 * 96 * 192 + 192,
        "block2_conv2": 192 * 192 + 192,
        "block2_conv3": 192 * 192 + 192,
        "block3_conv1": 3 * 3 * 192 * 192 + 192,
        "block3_conv2": 192 * 192 + 192,
        "predictions_conv": 192 * 10 + 10,
    }
    assert {n: _layer_params(model, n) for n in expected} == expected
    assert [_side(model, n) for n in ("block1_conv3", "block1_pool", "block2_pool",
                                      "predictions_conv")] == [32, 16, 8, 8]
    assert isinstance(model.get_layer("block1_pool"), keras.layers.MaxPooling2D)
    assert isinstance(model.get_layer("block2_pool"), keras.layers.AveragePooling2D)
    assert isinstance(model.get_layer("predictions_pool"), keras.layers.GlobalAveragePooling2D)
    dropouts = [(layer.name, layer.rate) for layer in model.layers
                if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == [("block1_drop", 0.5), ("block2_drop", 0.5)]


def test_nin_avg_pool_counts_padding_like_pytorch():
    model = keras_cnns.create_model("nin", include_top=False)
    pad, pool = model.get_layer("block2_pad"), model.get_layer("block2_pool")
    x = np.abs(np.random.default_rng(2).normal(size=(1, 16, 16, 4))).astype("float32")
    got = np.asarray(pool(pad(x)))
    # AvgPool2d(3, 2, padding=1), count_include_pad=True: zero-padded sum / 9
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    expected = np.stack([np.stack([xp[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].sum(axis=(1, 2)) / 9
                                   for j in range(8)], axis=1) for i in range(8)], axis=1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_nin_is_fully_convolutional():
    model = keras_cnns.create_model("nin", input_shape=(None, None, 3), classes=4)
    for side in (32, 45):
        x = np.random.default_rng(side).normal(size=(2, side, side, 3)).astype("float32")
        y = model.predict(x, verbose=0)
        assert y.shape == (2, 4)
        np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)
