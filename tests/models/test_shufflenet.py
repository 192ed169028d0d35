"""ShuffleNet v1 / v2: the tables recounted in plain Python, the v1 unit against a NumPy
reference in the megvii release's order, the fused custom op against stock TF, TFLite exports
(float32 and int8, XNNPACK) and the GPU delegate's compatibility check, errors.

The generic matrix checks every registered model against ``reference_figures.csv`` (counts,
MACs, features); here the counts are recomputed from the architecture tables with arithmetic
only, so a wrong layer in the builder, or a wrong figure in the file, fails. torchvision
equality for v2 is in ``test_torchvision_bridge.py``.
"""

import contextlib
import io
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnns
from keras_cnns.blocks import shufflenet_unit, shufflenet_v2_unit
from keras_cnns.export import run_tflite
from keras_cnns.layers import ChannelShuffle, ChannelSplit, GroupedDepthwiseConv2D
from keras_cnns.models import shapes_only
from keras_cnns.models.shufflenet import ShuffleNet, ShuffleNetV2
from keras_cnns.ops import stock_ops_only

# Paper Table 1 (stage-2 widths per g) and the stems per scale (megvii release; 0.25x: 6).
TABLE1 = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
STEMS = {0.25: 6, 0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}
V1 = {  # registered name: (groups, scale, stem, classifier bias)
    "shufflenet_g1": (1, 1.0, 24, True), "shufflenet_g2": (2, 1.0, 24, True),
    "shufflenet": (3, 1.0, 24, True), "shufflenet_g4": (4, 1.0, 24, True),
    "shufflenet_g8": (8, 1.0, 24, True), "shufflenet_0_25_g1": (1, 0.25, 6, True),
    "shufflenet_0_25_g3": (3, 0.25, 6, True), "shufflenet_0_50_g3": (3, 0.5, 12, True),
    "shufflenet_0_50_g8": (8, 0.5, 16, False), "shufflenet_1_50_g3": (3, 1.5, 24, False),
    "shufflenet_2_00_g3": (3, 2.0, 48, False),
}
# The reference parameter counts (hand counts of Zhang et al. 2018, Table 1, equal to
# osmr/imgclsmob's and the megvii-model/ShuffleNet-Series release's; v2: torchvision's weight
# metadata; all with their sources in keras_cnns/models/reference_figures.csv) and the papers'
# multiply-adds, typed here from the papers, not from the code.
V1_PARAMS = {"shufflenet_g1": 1_531_936, "shufflenet_g2": 1_733_848, "shufflenet": 1_865_728,
             "shufflenet_g4": 1_968_344, "shufflenet_g8": 2_434_768,
             "shufflenet_0_50_g3": 718_324, "shufflenet_2_00_g3": 5_449_776}
V1_MACS = {"shufflenet": 137.5e6, "shufflenet_g8": 138.4e6, "shufflenet_0_50_g3": 37.6e6,
           "shufflenet_2_00_g3": 524.0e6}
V2 = {"shufflenetv2_0_50": (48, 96, 192, 1024), "shufflenetv2": (116, 232, 464, 1024),
      "shufflenetv2_1_50": (176, 352, 704, 1024), "shufflenetv2_2_00": (244, 488, 976, 2048)}
V2_PARAMS = {"shufflenetv2_0_50": 1_366_792, "shufflenetv2": 2_278_604,
             "shufflenetv2_1_50": 3_503_624, "shufflenetv2_2_00": 7_393_996}


class _Count:
    def __init__(self):
        self.params = self.macs = 0

    def conv(self, cin, cout, k, side, groups=1, bn=True):
        w = k * k * cin // groups * cout
        self.params += w + (2 * cout if bn else 0)
        self.macs += w * side * side


def _v1_count(groups, scale, stem, bias, side=224, classes=1000):
    c = _Count()
    side = math.ceil(side / 2)
    c.conv(3, stem, 3, side)
    side = math.ceil(side / 2)  # max-pool
    cin = stem
    for stage, units in enumerate((4, 8, 4)):
        width = int(TABLE1[groups] * 2 ** stage * scale)
        for unit in range(units):
            stride = 2 if unit == 0 else 1
            mid, out = width // 4, width - cin if stride == 2 else width
            c.conv(cin, mid, 1, side, groups=1 if stage == unit == 0 else groups)
            side = math.ceil(side / stride)
            c.conv(mid, mid, 3, side, groups=mid)
            c.conv(mid, out, 1, side, groups=groups)
            cin = width
    c.params += cin * classes + (classes if bias else 0)
    c.macs += cin * classes
    return c.params, c.macs


def _v2_count(widths, side=224, classes=1000):
    c = _Count()
    side = math.ceil(side / 4)
    c.conv(3, 24, 3, side * 2)
    cin = 24
    for width, units in zip(widths[:3], (4, 8, 4)):
        half = width // 2
        for unit in range(units):
            if unit == 0:
                side = math.ceil(side / 2)
                c.conv(cin, cin, 3, side, groups=cin)      # branch1
                c.conv(cin, half, 1, side)
                c.conv(cin, half, 1, side * 2)             # branch2 (before its stride)
            else:
                c.conv(half, half, 1, side)
            c.conv(half, half, 3, side, groups=half)
            c.conv(half, half, 1, side)
        cin = width
    c.conv(cin, widths[3], 1, side)
    c.params += widths[3] * classes + classes
    c.macs += widths[3] * classes
    return c.params, c.macs


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name", list(V1))
def test_v1_counts_equal_the_hand_count_of_the_table(name):
    groups, scale, stem, bias = V1[name]
    assert STEMS[scale] == stem or (scale, groups) == (0.5, 8)
    params, macs = _v1_count(groups, scale, stem, bias)
    info = keras_cnns.model_info(name)
    assert info.reference_params == params          # the figure file holds the hand count
    if name in V1_PARAMS:
        assert params == V1_PARAMS[name]
    if name in V1_MACS:
        assert abs(macs - V1_MACS[name]) <= 0.05e6
    with shapes_only():
        built = keras_cnns.create_model(name)
    assert _trainable(built) == params
    assert keras_cnns.profile(built).total_macs == macs


def test_megvii_variants_differ_by_the_classifier_bias_only():
    with shapes_only():
        with_bias = ShuffleNet(groups=3, scale=2.0)
    assert _trainable(with_bias) == V1_PARAMS["shufflenet_2_00_g3"] + 1000


@pytest.mark.parametrize("name", list(V2))
def test_v2_counts_equal_the_hand_count_and_torchvision(name):
    params, macs = _v2_count(V2[name])
    assert params == V2_PARAMS[name] == keras_cnns.model_info(name).reference_params
    with shapes_only():
        built = keras_cnns.create_model(name)
    assert _trainable(built) == params
    assert keras_cnns.profile(built).total_macs == macs


def test_create_model_takes_the_groups_of_the_paper():
    with shapes_only():
        model = keras_cnns.create_model("shufflenet", groups=8)
    assert _trainable(model) == V1_PARAMS["shufflenet_g8"]


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if "variance" in w.path or "gamma" in w.path:
            w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
        else:
            w.assign(rng.normal(0, 0.3, w.shape).astype("float32"))


def _bn(model, name, t):
    g, b, m, v = model.get_layer(name).get_weights()
    return (t - m) / np.sqrt(v + 1e-5) * g + b


def _group_1x1(t, kernel, groups):
    """A grouped 1x1 convolution in NumPy: kernel [1, 1, C / g, O]."""
    cin, out = t.shape[-1] // groups, kernel.shape[-1] // groups
    return np.concatenate([t[..., i * cin:(i + 1) * cin] @ kernel[0, 0, :, i * out:(i + 1) * out]
                           for i in range(groups)], -1)


@pytest.mark.parametrize("stride", [1, 2])
def test_v1_unit_equals_the_megvii_order_in_numpy(stride):
    # megvii's ShuffleV1Block order: gconv -> BN -> ReLU -> depthwise -> BN -> shuffle -> gconv
    # -> BN (with the paper's shuffle). Ours shuffles before the depthwise convolution (paper
    # Fig. 2), fused into it: the same function once the depthwise kernel and its BN are read
    # through the permutation. mid = 6, g = 3: two channels per group, a non-trivial shuffle.
    g, cin, filters = 3, 24 if stride == 1 else 6, 24
    inp = keras.Input((6, 6, cin))
    model = keras.Model(inp, shufflenet_unit(inp, filters, stride=stride, groups=g, name="u"))
    _randomize(model)
    x = np.random.default_rng(1).uniform(0, 1, (2, 6, 6, cin)).astype("float32")
    mid = filters // 4
    perm = np.arange(mid).reshape(g, mid // g).T.reshape(-1)   # shuffled[j] = t[perm[j]]
    inv = np.argsort(perm)
    t = np.maximum(_bn(model, "u_bn1", _group_1x1(x, model.get_layer("u_gconv1").kernel.numpy(),
                                                  g)), 0)
    dw = model.get_layer("u_dw").kernel.numpy()[:, :, 0, :]         # [3, 3, mid], shuffled order
    pad = np.pad(t, ((0, 0), (1, 1), (1, 1), (0, 0)))
    n = (6 + 2 - 3) // stride + 1
    y = np.zeros((2, n, n, mid), "float32")
    for i in range(3):
        for j in range(3):
            y += pad[:, i:i + stride * n:stride, j:j + stride * n:stride, :] * dw[i, j, inv]
    g_, b_, m_, v_ = model.get_layer("u_bn2").get_weights()
    y = (y - m_[inv]) / np.sqrt(v_[inv] + 1e-5) * g_[inv] + b_[inv]
    y = y.reshape(2, n, n, g, mid // g).transpose(0, 1, 2, 4, 3).reshape(2, n, n, mid)  # 5-D
    y = _bn(model, "u_bn3", _group_1x1(y, model.get_layer("u_gconv3").kernel.numpy(), g))
    if stride == 1:
        expected = np.maximum(x + y, 0)
    else:
        padx = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        pool = sum(padx[:, i:i + 2 * n:2, j:j + 2 * n:2, :] for i in range(3) for j in range(3)) / 9
        expected = np.concatenate([pool, np.maximum(y, 0)], -1)
    got = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_v1_unit_runs_shuffle_and_group_convolutions_on_the_custom_op():
    model = ShuffleNet(groups=8, input_shape=(64, 64, 3), include_top=False)
    dws = [l for l in model.layers if l.name.endswith("_dw")]
    assert len(dws) == 16 and all(isinstance(l, GroupedDepthwiseConv2D) and l.shuffle_groups == 8
                                  for l in dws)
    gconvs = [l for l in model.layers if "_gconv" in l.name]
    assert all(isinstance(l, GroupedDepthwiseConv2D) and l.groups == 8
               for l in gconvs if l.name != "stage2_unit1_gconv1")
    assert isinstance(model.get_layer("stage2_unit1_gconv1"), keras.layers.Conv2D)  # not grouped
    assert not any(isinstance(l, ChannelShuffle) for l in model.layers)  # fused, no copy


def test_v2_unit_split_branch_concat_shuffle_in_numpy():
    inp = keras.Input((5, 5, 8))
    model = keras.Model(inp, shufflenet_v2_unit(inp, 8, name="u"))
    _randomize(model)
    x = np.random.default_rng(2).normal(size=(2, 5, 5, 8)).astype("float32")
    get = lambda n: model.get_layer(n).get_weights()[0]  # noqa: E731
    t = np.maximum(_bn(model, "u_branch2_1", x[..., 4:] @ get("u_branch2_0")[0, 0]), 0)
    dw = get("u_branch2_3")[:, :, 0, :]
    pad = np.pad(t, ((0, 0), (1, 1), (1, 1), (0, 0)))
    t = sum(pad[:, i:i + 5, j:j + 5, :] * dw[i, j] for i in range(3) for j in range(3))
    t = _bn(model, "u_branch2_4", t)
    t = np.maximum(_bn(model, "u_branch2_6", t @ get("u_branch2_5")[0, 0]), 0)
    y = np.concatenate([x[..., :4], t], -1)
    expected = y.reshape(2, 5, 5, 2, 4).transpose(0, 1, 2, 4, 3).reshape(2, 5, 5, 8)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=False)), expected,
                               atol=1e-4)
    assert isinstance(model.get_layer("u_split"), ChannelSplit)


@pytest.mark.parametrize("builder", [lambda: ShuffleNet(groups=3, input_shape=(48, 48, 3),
                                                        classes=7, classifier_activation=None),
                                     lambda: ShuffleNetV2(input_shape=(48, 48, 3), classes=7,
                                                          scale=0.5,
                                                          classifier_activation=None)],
                         ids=["v1_g3", "v2_0_5"])
def test_custom_op_model_equals_stock_ops_forward_and_backward(builder):
    model = builder()
    x = tf.constant(np.random.default_rng(3).uniform(0, 1, (2, 48, 48, 3)).astype("float32"))

    def step():
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            loss = tf.reduce_sum(y ** 2)
        return y.numpy(), [g.numpy() for g in tape.gradient(loss, model.trainable_weights)]

    y_op, g_op = step()
    with stock_ops_only():
        y_stock, g_stock = step()
    np.testing.assert_allclose(y_op, y_stock, rtol=1e-4, atol=1e-4)
    assert all(np.isfinite(g).all() for g in g_op)
    for a, b in zip(g_op, g_stock):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(b).max()))


@pytest.fixture(scope="module")
def tflite_exports(tmp_path_factory):
    """ShuffleNet v1 (g=3) and v2 (0.5x) at 64x64 with random BN statistics (decisive logits),
    each exported once as float32 and once as int8: ``{key: (model, f32 path, int8 path)}``
    (a SavedModel + conversion is ~10-25 s per export, so the tests share them)."""
    from keras_cnns.export._tflite import export_tflite_variants

    out = {}
    rng = np.random.default_rng(4)
    calibration = rng.uniform(0, 1, (32, 64, 64, 3)).astype("float32")
    for key, model in (("v1", ShuffleNet(groups=3, input_shape=(64, 64, 3), classes=10)),
                       ("v2", ShuffleNetV2(scale=0.5, input_shape=(64, 64, 3), classes=10))):
        for w in model.weights:
            if "moving_variance" in w.path:
                w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
            elif "moving_mean" in w.path:
                w.assign(rng.uniform(-0.2, 0.2, w.shape).astype("float32"))
        d = tmp_path_factory.mktemp(f"tflite_{key}")
        f32, int8 = str(d / "f32.tflite"), str(d / "int8.tflite")
        export_tflite_variants(model, {f32: "float32", int8: "int8"},  # one trace for both
                               representative_dataset=calibration)
        out[key] = (model, f32, int8)
    return out


@pytest.mark.parametrize("key", ["v1", "v2"])
def test_tflite_float32_and_int8_run_with_xnnpack_and_match(tflite_exports, key):
    model, f32, int8 = tflite_exports[key]
    x = np.random.default_rng(5).uniform(0, 1, (8, 64, 64, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    assert float(np.abs(run_tflite(f32, x) - expected).max()) <= 1e-4
    interpreter = tf.lite.Interpreter(model_path=int8)   # default delegate: XNNPACK
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    y = run_tflite(int8, x)
    assert y.shape == expected.shape and np.all(np.isfinite(y))
    assert np.mean(y.argmax(1) == expected.argmax(1)) >= 0.6


@pytest.mark.parametrize("key", ["v1", "v2"])
def test_tflite_graph_is_gpu_delegate_compatible_and_4d(tflite_exports, key):
    path = tflite_exports[key][1]
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        tf.lite.experimental.Analyzer.analyze(model_path=path, gpu_compatibility=True)
    text = report.getvalue()
    assert "CONV_2D" in text and "DEPTHWISE_CONV_2D" in text
    assert "GPU COMPATIBILITY WARNING" not in text, text[-3000:]
    assert "looks compatible with GPU delegate" in text
    # The analyzer (TF 2.21) also passes a 5-D reshape / transpose shuffle, which the GPU
    # delegate and NNAPI reject at run time: the rank of every tensor is checked here.
    interpreter = tf.lite.Interpreter(model_path=path)
    assert max(len(t["shape_signature"]) for t in interpreter.get_tensor_details()) <= 4


@pytest.mark.parametrize("kwargs, arg", [
    ({"groups": 5}, "groups"), ({"scale": 0.3}, "scale"), ({"scale": True}, "scale"),
    ({"groups": 8, "scale": 0.25}, "groups"), ({"classifier_bias": "yes"}, "classifier_bias"),
    ({"stem_width": 0}, "stem_width"), ({"dropout": 1.0}, "dropout"),
])
def test_v1_invalid_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        ShuffleNet(input_shape=(32, 32, 3), **kwargs)


@pytest.mark.parametrize("kwargs, arg", [({"scale": 0.75}, "scale"), ({"dropout": -0.1}, "dropout")])
def test_v2_invalid_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        ShuffleNetV2(input_shape=(32, 32, 3), **kwargs)


@pytest.mark.parametrize("fn, kwargs, arg", [
    (shufflenet_unit, {"filters": 12, "stride": 3}, "stride"),
    (shufflenet_unit, {"filters": 10, "stride": 1}, "filters"),
    (shufflenet_unit, {"filters": 4, "stride": 2}, "filters"),
    (shufflenet_unit, {"filters": 12, "groups": 5}, "groups"),
    (shufflenet_v2_unit, {"filters": 11, "stride": 2}, "filters"),
    (shufflenet_v2_unit, {"filters": 16, "stride": 1}, "filters"),
])
def test_unit_invalid_arguments(fn, kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        fn(keras.Input((6, 6, 12)), **kwargs)
