"""ResNet, ResNetV2, CIFAR ResNets, ResNeXt, Wide ResNet (keras_cnns.models.resnet).

Parameter counts: reference_figures.csv, checked by the generic matrix; here keras.applications' totals
are checked against keras.applications itself. Forward
and backward passes run at 32-64 px with batch 2.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnns
from keras_cnns.blocks import StochasticDepth
from keras_cnns.models import resnet  # registers the residual families
from keras_cnns.models._builder import shapes_only
from keras_cnns.bridges import from_keras_applications, name_maps
from keras_cnns.models._stages import survival_probabilities
from test_keras_apps import _assert_same_layout, _randomize

RESNET_MODELS = [n for n in keras_cnns.list_models()
                 if keras_cnns.model_info(n).builder.__module__ == resnet.__name__]


def _x(shape, batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


def _count(model, kind):
    weights = model.trainable_weights if kind == "trainable" else model.weights
    return int(sum(np.prod(w.shape) for w in weights))


def test_the_registered_variants():
    expected = {
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "resnet50_keras", "resnet101_keras", "resnet152_keras",
        "resnet50v2", "resnet101v2", "resnet152v2",
        "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202",
        "preact_resnet164", "preact_resnet1001",
        "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
        "wide_resnet50_2", "wide_resnet101_2",
        "wrn_16_8", "wrn_28_10", "wrn_40_4", "wrn_40_1", "wrn_40_2",
    }
    assert set(RESNET_MODELS) == expected
    for name in RESNET_MODELS:
        info = keras_cnns.model_info(name)
        assert info.paper and "arXiv" in info.paper and info.reference_note
    assert keras_cnns.model_info("resnet20").default_input_shape == (32, 32, 3)
    assert keras_cnns.model_info("resnet20").default_classes == 10
    for family in ("ResNet", "ResNeXt", "WideResNet"):
        assert name_maps("torchvision")[family] is resnet.torchvision_names


# The exact counts and multiply-adds of every registered model are compared with
# reference_figures.csv by the generic matrix. Here: the file's keras.applications totals are
# keras.applications' own (both built at 224 without allocating weights).
@pytest.mark.parametrize("name, source", [
    ("resnet50_keras", "ResNet50"), ("resnet101_keras", "ResNet101"),
    ("resnet152_keras", "ResNet152"), ("resnet50v2", "ResNet50V2"),
    ("resnet101v2", "ResNet101V2"), ("resnet152v2", "ResNet152V2"),
])
def test_keras_applications_totals(name, source):
    with shapes_only():
        reference = getattr(keras.applications, source)(weights=None)
    info = keras_cnns.model_info(name)
    assert info.reference_params_kind == "total"
    assert reference.count_params() == info.reference_params


def test_stochastic_depth_branch_macs_are_counted():
    plain = keras_cnns.profile(resnet.CifarResNet(20)).total_macs
    assert keras_cnns.profile(resnet.CifarResNet(20, stochastic_depth=0.5)).total_macs == plain


@pytest.mark.parametrize("build, shape", [
    (lambda: keras_cnns.create_model("resnet18", input_shape=(32, 32, 3), classes=5), (32, 32, 3)),
    (lambda: keras_cnns.create_model("resnet50v2", input_shape=(32, 32, 3), classes=5), (32, 32, 3)),
    (lambda: keras_cnns.create_model("resnet50_keras", input_shape=(32, 32, 3), classes=5,
                                     stochastic_depth=0.5), (32, 32, 3)),
    (lambda: resnet.ResNeXt(50, 8, 4, input_shape=(32, 32, 3), classes=5), (32, 32, 3)),
    (lambda: keras_cnns.create_model("resnet20", stochastic_depth=0.5, input_shape=(32, 32, 3)), (32, 32, 3)),
    (lambda: resnet.PreActResNet(11, input_shape=(32, 32, 3)), (32, 32, 3)),
    (lambda: resnet.wrn(10, 2, dropout=0.3, input_shape=(32, 32, 3)), (32, 32, 3)),
], ids=["resnet18", "resnet50v2", "resnet50_keras_sd", "resnext50_8x4d", "resnet20_sd",
        "preact_resnet11", "wrn_10_2"])
def test_forward_backward_small(build, shape):
    model = build()
    x = tf.constant(_x(shape))
    classes = model.output_shape[-1]
    target = tf.constant(np.random.default_rng(1).normal(size=(2, classes)).astype("float32"))
    with tf.GradientTape() as tape:
        y = model(x, training=True)
        loss = tf.reduce_sum(y * target)
    assert tuple(y.shape) == (2, classes) and bool(tf.reduce_all(tf.math.is_finite(y)))
    grads = tape.gradient(loss, model.trainable_weights)
    finite = [g for g in grads if g is not None]
    assert finite and all(bool(tf.reduce_all(tf.math.is_finite(g))) for g in finite)
    if not any(isinstance(l, StochasticDepth) for l in model.layers):
        assert len(finite) == len(grads)  # without stochastic depth every weight gets one
    y_eval = model(x, training=False)
    np.testing.assert_allclose(np.asarray(model(x, training=False)), np.asarray(y_eval))


def test_stochastic_depth_survival_probabilities_in_a_model():
    model = resnet.CifarResNet(110, stochastic_depth=0.5, input_shape=(32, 32, 3))
    layers = [l for l in model.layers if isinstance(l, StochasticDepth)]
    assert len(layers) == 54
    assert [l.survival_prob for l in layers] == pytest.approx(survival_probabilities(54, 0.5))
    assert layers[0].survival_prob == pytest.approx(1 - 0.5 / 54) and layers[-1].survival_prob == 0.5
    model = resnet.ResNet(18, stochastic_depth=0.8, stochastic_depth_rule="uniform",
                          input_shape=(32, 32, 3))
    assert [l.survival_prob for l in model.layers if isinstance(l, StochasticDepth)] == [0.8] * 8


def test_stochastic_depth_inference_is_deterministic_and_training_drops_blocks():
    model = resnet.CifarResNet(20, stochastic_depth=0.5, input_shape=(32, 32, 3),
                               classifier_activation=None)
    x = _x((32, 32, 3))
    a, b = np.asarray(model(x, training=False)), np.asarray(model(x, training=False))
    np.testing.assert_array_equal(a, b)
    outs = {np.asarray(model(x, training=True)).tobytes() for _ in range(6)}
    assert len(outs) > 1  # different blocks dropped in different steps


@pytest.mark.parametrize("name, shape, expected", [
    ("resnet50", (64, 64, 3), {1: (32, 64), 2: (16, 256), 3: (8, 512), 4: (4, 1024), 5: (2, 2048)}),
    ("resnet18", (64, 64, 3), {1: (32, 64), 2: (16, 64), 3: (8, 128), 4: (4, 256), 5: (2, 512)}),
    ("resnet50v2", (64, 64, 3), {1: (32, 64), 2: (16, 256), 3: (8, 512), 4: (4, 1024), 5: (2, 2048)}),
    ("resnet20", (32, 32, 3), {0: (32, 16), 1: (16, 32), 2: (8, 64)}),
    ("wrn_16_8", (32, 32, 3), {0: (32, 128), 1: (16, 256), 2: (8, 512)}),
])
def test_features_only_strides_and_channels(name, shape, expected):
    model = keras_cnns.create_model(name, features_only=True, input_shape=shape)
    assert sorted(model.output) == sorted(f"P{k}" for k in expected)
    for k, (side, channels) in expected.items():
        assert tuple(model.output[f"P{k}"].shape[1:]) == (side, side, channels)
        assert shape[0] // side == 2 ** k
    # the deepest level is the headless model's output (after post_bn / post_relu in v2)
    headless = keras_cnns.create_model(name, include_top=False, input_shape=shape)
    headless.set_weights(model.get_weights())
    x = _x(shape)
    last = f"P{max(expected)}"
    np.testing.assert_allclose(np.asarray(model(x)[last]), np.asarray(headless(x)), rtol=1e-5, atol=1e-5)


def test_wrn_builds_cifar_and_imagenet_wide_resnets():
    cifar = resnet.wrn(16, 2, dropout=0.3)
    assert cifar.name == "wrn_16_2" and cifar.output_shape == (None, 10)
    assert any(isinstance(l, keras.layers.Dropout) for l in cifar.layers)
    imagenet = resnet.wrn(50, 2, input_shape=(32, 32, 3))
    assert imagenet.name == "wide_resnet50_2" and imagenet.output_shape == (None, 1000)
    assert imagenet.get_layer("conv2_block1_2_conv").filters == 128  # 2 x ResNet-50's 64


def test_features_only_with_unknown_sides():
    model = resnet.ResNet(18, features_only=True, input_shape=(None, None, 3))
    assert sorted(model.output) == ["P1", "P2", "P3", "P4", "P5"]
    out = model(_x((64, 64, 3)))
    assert [tuple(out[f"P{k}"].shape[1:3]) for k in range(1, 6)] == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2)]


def test_features_only_out_indices_and_stage_ends():
    model = resnet.ResNetV2(50, features_only=True, out_indices=(2, 4), input_shape=(64, 64, 3))
    assert sorted(model.output) == ["P2", "P4"]
    # keras.applications ResNetV2 strides in the last block of a stage: P2 ends before it
    assert model.output["P2"]._keras_history[0].name == "conv2_block2_out"
    model = resnet.ResNet(50, features_only=True, out_indices=[3], input_shape=(64, 64, 3))
    assert model.output["P3"]._keras_history[0].name == "conv3_block4_out"


def _keras_app_pair(source, build, shape=(64, 64, 3)):
    kw = dict(input_shape=shape, classes=11, classifier_activation=None)
    return getattr(keras.applications, source)(weights=None, **kw), build(**kw)


def _damp_residual_branches(model, version, factor=0.2):
    """Scale the last layer of every residual branch (v1: its BN's gamma and beta, v2: its
    conv's kernel and bias) by ``factor``: with random weights every block adds O(1) variance to
    the residual stream, so the logits of a 101- or 152-layer net reach 1e3-1e5 and float32
    round-off alone would exceed the tolerance; damped, they stay O(1)."""
    for layer in model.layers:
        if version == "v1" and layer.name.endswith("_3_bn"):
            layer.gamma.assign(layer.gamma * factor)
            layer.beta.assign(layer.beta * factor)
        elif version == "v2" and layer.name.endswith("_3_conv"):
            layer.kernel.assign(layer.kernel * factor)
            layer.bias.assign(layer.bias * factor)


_KERAS_APPS = [(f"ResNet{d}", d, "v1") for d in (50, 101, 152)] + \
              [(f"ResNet{d}V2", d, "v2") for d in (50, 101, 152)]


#: ResNet-101 and -152 (v1 and v2) repeat ResNet-50's bottlenecks (more per stage): their layers
#: (every weighted layer's name and weight sizes, in order) are compared with keras.applications'
#: on models built without weights, their outputs on ResNet-50 (~35 s of the suite saved).
_STRUCTURE_ONLY = [case for case in _KERAS_APPS if case[1] > 50]


@pytest.mark.parametrize("source, depth, version", _STRUCTURE_ONLY,
                         ids=[s for s, _, _ in _STRUCTURE_ONLY])
def test_deep_variants_have_keras_applications_layers(source, depth, version):
    with shapes_only():
        src, dst = _keras_app_pair(source, lambda **kw: keras_cnns.create_model(
            f"resnet{depth}" + ("_keras" if version == "v1" else "v2"), **kw), shape=(32, 32, 3))
    _assert_same_layout(dst, src)


@pytest.mark.parametrize("source, depth, version", [c for c in _KERAS_APPS if c[1] == 50],
                         ids=[s for s, d, _ in _KERAS_APPS if d == 50])
def test_outputs_match_keras_applications(source, depth, version):
    if version == "v1":
        build = lambda **kw: resnet.ResNet(depth, layout="keras", **kw)  # noqa: E731
    else:
        build = lambda **kw: resnet.ResNetV2(depth, **kw)  # noqa: E731
    side = 64 if depth == 50 else 32  # the deeper ones at keras.applications' minimum side
    src, dst = _keras_app_pair(source, build, shape=(side, side, 3))
    src_names = [l.name for l in src.layers[1:]]
    dst_names = [l.name for l in dst.layers[1:]]
    if version == "v1":
        assert dst_names == src_names  # exactly keras.applications' names, in its order
    else:  # keras.applications leaves the strided 1x1 max pools of the shortcut unnamed
        differ = [(a, b) for a, b in zip(src_names, dst_names) if a != b]
        assert len(src_names) == len(dst_names) and all(
            a.startswith("max_pooling2d") and b.endswith("_0_pool") for a, b in differ)
    _randomize(src)
    if depth > 50:
        _damp_residual_branches(src, version)
    x = _x((side, side, 3), seed=1)
    expected = np.asarray(src(x, training=False))
    assert 1e-2 < np.abs(expected).max() < 1e3
    assert not np.allclose(np.asarray(dst(x, training=False)), expected, atol=1e-3)
    from_keras_applications(src, dst)
    diff = float(np.abs(np.asarray(dst(x, training=False)) - expected).max())
    assert diff <= 1e-4, diff


def test_torchvision_names_cover_every_weighted_layer():
    model = keras_cnns.create_model("resnet18", input_shape=(32, 32, 3))
    pairs = resnet.torchvision_names(model)
    weighted = {l.name for l in model.layers if l.weights}
    assert {k for k, _ in pairs} == weighted and len(pairs) == len(weighted)
    prefixes = {t for _, t in pairs}
    expected = {"conv1", "bn1", "fc"}
    for stage in range(1, 5):
        for block in range(2):
            expected |= {f"layer{stage}.{block}.{m}{i}" for m in ("conv", "bn") for i in (1, 2)}
    expected |= {f"layer{s}.0.downsample.{i}" for s in (2, 3, 4) for i in (0, 1)}
    assert prefixes == expected
    bottleneck = resnet.ResNeXt(50, 2, 4, input_shape=(32, 32, 3), stochastic_depth=0.5)
    names = dict(resnet.torchvision_names(bottleneck))  # the branch layers inside StochasticDepth too
    assert names["conv2_block1_0_conv"] == "layer1.0.downsample.0"
    assert names["conv5_block3_3_bn"] == "layer4.2.bn3"
    assert len(names) == 1 + 1 + 16 * 6 + 4 * 2 + 1


@pytest.mark.parametrize("build", [
    lambda: resnet.ResNet(18, layout="keras", input_shape=(32, 32, 3)),
    lambda: resnet.CifarResNet(20),
    lambda: resnet.ResNetV2(50, input_shape=(32, 32, 3)),
], ids=["keras_layout", "cifar", "v2"])
def test_torchvision_names_refuse_models_without_a_torchvision_counterpart(build):
    with pytest.raises(ValueError, match="model"):
        resnet.torchvision_names(build())


_BAD = [
    ("depth", resnet.ResNet, dict(depth=20)),
    ("layout", resnet.ResNet, dict(layout="caffe")),
    ("groups", resnet.ResNet, dict(depth=18, groups=32)),
    ("base_width", resnet.ResNet, dict(depth=34, base_width=128)),
    ("shortcut", resnet.ResNet, dict(shortcut="D")),
    ("dropout", resnet.ResNet, dict(dropout=1.5)),
    ("stochastic_depth", resnet.ResNet, dict(stochastic_depth=0.0)),
    ("stochastic_depth", resnet.ResNet, dict(stochastic_depth=1.2)),
    ("stochastic_depth_rule", resnet.ResNet, dict(stochastic_depth=0.5, stochastic_depth_rule="cosine")),
    ("features_only", resnet.ResNet, dict(features_only="yes")),
    ("out_indices", resnet.ResNet, dict(depth=18, features_only=True, out_indices=(0,))),
    ("out_indices", resnet.ResNet, dict(depth=18, features_only=True, out_indices=(2, 2))),
    ("out_indices", resnet.ResNet, dict(depth=18, features_only=True, out_indices="P2")),
    ("out_indices", resnet.ResNet, dict(out_indices=(2,))),
    ("weights", resnet.ResNet, dict(features_only=True, weights=__file__)),
    ("stochastic_dept", resnet.ResNet, dict(stochastic_dept=0.5)),
    ("input_shape", resnet.ResNet, dict(input_shape=(31, 31, 3))),
    ("depth", resnet.ResNetV2, dict(depth=18)),
    ("shortcut", resnet.ResNetV2, dict(shortcut="E")),
    ("depth", resnet.ResNeXt, dict(depth=34)),
    ("cardinality", resnet.ResNeXt, dict(cardinality=0)),
    ("base_width", resnet.ResNeXt, dict(base_width=0)),
    ("layout", resnet.ResNeXt, dict(layout="keras_v2")),
    ("depth", resnet.CifarResNet, dict(depth=21)),
    ("depth", resnet.CifarResNet, dict(depth=True)),
    ("shortcut", resnet.CifarResNet, dict(shortcut="a")),
    ("out_indices", resnet.CifarResNet, dict(features_only=True, out_indices=(3,))),
    ("input_shape", resnet.CifarResNet, dict(input_shape=(7, 7, 3))),
    ("classes", resnet.CifarResNet, dict(classes=0)),
    ("depth", resnet.PreActResNet, dict(depth=100)),
    ("depth", resnet.PreActResNet, dict(depth=29, bottleneck=False)),
    ("bottleneck", resnet.PreActResNet, dict(bottleneck="no")),
    ("stride_on", resnet.PreActResNet, dict(stride_on="2x2")),
    ("depth", resnet.WideResNet, dict(depth=27)),
    ("k", resnet.WideResNet, dict(k=0)),
    ("k", resnet.WideResNet, dict(k=2.5)),
    ("dropout", resnet.WideResNet, dict(dropout=-0.1)),
    ("depth", resnet.WideResNet, dict(depth=50)),  # ImageNet depths go through wrn()
    ("pooling", resnet.WideResNet, dict(include_top=False, pooling="median")),
    ("k", resnet.wrn, dict(depth=50, k=0)),
    ("depth", resnet.wrn, dict(depth=30)),
]


@pytest.mark.parametrize("arg, builder, kwargs", _BAD,
                         ids=[f"{b.__name__}-{a}-{i}" for i, (a, b, _) in enumerate(_BAD)])
def test_invalid_arguments(arg, builder, kwargs):
    with pytest.raises(ValueError) as err:
        builder(**kwargs)
    message = str(err.value)
    assert f"`{arg}`" in message and "Received:" in message, message


def test_unknown_argument_suggests_the_close_one():
    with pytest.raises(ValueError, match="did you mean `stochastic_depth`"):
        resnet.ResNet(stochastic_dept=0.5)


def test_resnext_grouped_convolutions_use_the_custom_op():
    # benchmarks/bench_resnext_grouped.py: the custom op trains these ~75x faster on the CPU than
    # Conv2D(groups=); equality with torchvision's ResNeXt is in test_torchvision_bridge.py
    from keras_cnns.layers import GroupedDepthwiseConv2D

    model = keras_cnns.create_model("resnext50_32x4d", input_shape=(32, 32, 3), classes=3)
    grouped = [l for l in model.layers if isinstance(l, GroupedDepthwiseConv2D)]
    assert len(grouped) == 16  # one 3x3 per bottleneck: 3 + 4 + 6 + 3
    assert all(l.groups == 32 and tuple(l.kernel.shape[:3]) == (3, 3, l.kernel.shape[3] // 32)
               for l in grouped)
    plain = [l for l in model.layers if type(l) is keras.layers.Conv2D]
    assert plain and all(l.groups == 1 for l in plain)
    resnet50 = keras_cnns.create_model("resnet50", input_shape=(32, 32, 3), classes=3)
    assert not any(isinstance(l, GroupedDepthwiseConv2D) for l in resnet50.layers)
