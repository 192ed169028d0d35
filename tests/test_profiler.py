"""``keras_cnns.profiler``: totals against independent references.

* VGG-16 (torchvision vgg16 / keras.applications VGG16): 138,357,544 params, 15,470,264,320
  MACs, both recomputed here from the 13 conv + 3 FC layer shapes; activation memory = the sum of
  the output elements of the input and every conv / pool / FC layer (the CS231n notes' "VGGNet in
  detail" table, recomputed: 15,237,608 elements = 61.0 MB at 4 bytes, not the notes'
  "24M * 4 bytes ~= 93MB").
* MobileNet v1 (keras.applications MobileNet): 568.7 / 325.4 / 149.5 / 41.0 M MACs for alpha 1 /
  0.75 / 0.5 / 0.25, and the paper / TF-slim resolution table 569 / 418 / 291 / 186 M at alpha 1.
* MobileNet paper (Howard et al. 2017, arXiv:1704.04861), eq. (7) and Tables 3-4: one
  14x14x512 -> 512 layer, standard vs depthwise separable vs alpha=0.75 vs rho=0.714.
"""

import argparse
import csv
import io
import json

import keras
import pytest

import keras_cnns
from keras_cnns.layers import GroupedDepthwiseConv2D
from keras_cnns.profiler import conv_cost, depthwise_separable_cost, profile

# --------------------------------------------------------------------------------------------
# VGG-16
# --------------------------------------------------------------------------------------------

VGG16_CONVS = [(64, 224)] * 2 + [(128, 112)] * 2 + [(256, 56)] * 3 + [(512, 28)] * 3 + [(512, 14)] * 3
VGG16_POOLS = [(64, 112), (128, 56), (256, 28), (512, 14), (512, 7)]
VGG16_FCS = [(7 * 7 * 512, 4096), (4096, 4096), (4096, 1000)]


def _vgg16_reference():
    macs = params = 0
    c_in = 3
    for c_out, side in VGG16_CONVS:
        macs += 3 * 3 * c_in * c_out * side * side
        params += 3 * 3 * c_in * c_out + c_out
        c_in = c_out
    for n_in, n_out in VGG16_FCS:
        macs += n_in * n_out
        params += n_in * n_out + n_out
    elements = 224 * 224 * 3  # the input image
    elements += sum(side * side * c for c, side in VGG16_CONVS)
    elements += sum(side * side * c for c, side in VGG16_POOLS)
    elements += sum(n_out for _, n_out in VGG16_FCS)
    return params, macs, elements


def test_vgg16_reference_arithmetic():
    params, macs, elements = _vgg16_reference()
    assert params == 138_357_544  # torchvision vgg16 num_params = keras.applications VGG16
    assert macs == 15_470_264_320  # torchvision vgg16 meta "15.47" GFLOPS (= MACs)
    assert elements == 15_237_608  # CS231n's "24M" is wrong; 61.0 MB at 4 bytes, not ~93 MB
    assert round(elements * 4 / 1e6, 1) == 61.0


@pytest.mark.parametrize("source", ["keras_cnns", "keras.applications"])
def test_vgg16_totals(source):
    if source == "keras_cnns":
        model = keras_cnns.create_model("vgg16")
    else:
        model = keras.applications.VGG16(weights=None)
    params, macs, elements = _vgg16_reference()
    p = profile(model)
    assert p.total_params == params == model.count_params()
    assert p.total_trainable_params == params
    assert p.total_macs == macs
    assert p.total_activation_elements == elements
    assert p.total_activation_bytes == 4 * elements
    assert profile(model, bytes_per_element=2).total_activation_bytes == 2 * elements
    # per layer: every conv row is K*K*C_in*C_out*H*W, the pools cost nothing
    conv_rows = [r for r in p.rows if r.class_name == "Conv2D"]
    assert len(conv_rows) == 13
    c_in = 3
    for row, (c_out, side) in zip(conv_rows, VGG16_CONVS):
        assert row.output_shape == (1, side, side, c_out)
        assert row.macs == 9 * c_in * c_out * side * side
        c_in = c_out
    assert [r.macs for r in p.rows if r.class_name == "Dense"] == [a * b for a, b in VGG16_FCS]
    assert all(r.macs == 0 for r in p.rows if r.class_name == "MaxPooling2D")
    assert p.rows[0].class_name == "InputLayer" and p.rows[0].activation_elements == 224 * 224 * 3
    table = p.to_table()
    assert "15,470,264,320" in table and "138,357,544" in table and "15,237,608" in table
    assert "block1_conv1" in table and "224x224x64" in table


# --------------------------------------------------------------------------------------------
# MobileNet v1
# --------------------------------------------------------------------------------------------

# The totals against the paper's Table 6 (569 / 325 / 149 / 41 M): reference_figures.csv, in the
# generic matrix. Here: the rows the profiler makes of the custom-op layers.
@pytest.mark.parametrize("name", ["mobilenet", "mobilenet_0_25"])
def test_mobilenet_profile_rows(name):
    model = keras_cnns.create_model(name)
    p = profile(model)
    assert p.total_macs == sum(r.macs or 0 for r in p.rows)
    assert p.total_params == model.count_params()
    assert p.total_trainable_params == keras_cnns.model_info(name).reference_params
    # depthwise rows (the custom-op layer) are costed: K*K*C*H*W
    dw = [r for r in p.rows if r.class_name == "GroupedDepthwiseConv2D"]
    assert len(dw) == 13
    first = dw[0]
    c = first.output_shapes[0][-1]
    assert first.macs == 3 * 3 * c * 112 * 112


def test_mobilenet_resolution_table():
    # alpha = 1 at 224/192/160/128: paper and TF-slim 569 / 418 / 291 / 186 M mult-adds
    got = [round(profile(keras_cnns.models.mobilenet.MobileNet(rho=rho)).total_macs / 1e6)
           for rho in (1.0, 0.857, 0.714, 0.571)]
    assert got == [569, 418, 291, 186]


# --------------------------------------------------------------------------------------------
# MobileNet paper: eq. (7), Table 3 (one layer) and Table 4 (Conv MobileNet)
# --------------------------------------------------------------------------------------------


def _eq7(d_k, m, n, d_f, alpha=1.0, rho=1.0):
    # D_K*D_K*aM*rD_F*rD_F + aM*aN*rD_F*rD_F  (Howard et al. 2017, eq. (7))
    am, an, df = int(alpha * m), int(alpha * n), round(rho * d_f)
    return d_k * d_k * am * df * df + am * an * df * df


def _standard(d_f, c):
    inp = keras.Input((d_f, d_f, c))
    return keras.Model(inp, keras.layers.Conv2D(c, 3, padding="same", use_bias=False)(inp))


def _separable(d_f, c, custom_op):
    inp = keras.Input((d_f, d_f, c))
    if custom_op:
        x = GroupedDepthwiseConv2D(kernel_size=3, padding="same", use_bias=False)(inp)
    else:
        x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(inp)
    return keras.Model(inp, keras.layers.Conv2D(c, 1, use_bias=False)(x))


def test_table3_standard_convolution():
    p = profile(_standard(14, 512))
    assert round(p.total_macs / 1e6) == 462  # Table 3: 462 million mult-adds
    assert round(p.total_params / 1e6, 2) == 2.36  # 2.36 million parameters
    assert p.total_macs == 3 * 3 * 512 * 512 * 14 * 14 == conv_cost(3, 512, 512, 14).macs
    assert p.total_params == conv_cost(3, 512, 512, 14).params


@pytest.mark.parametrize(
    "label, d_f, channels, alpha, rho, macs_m, params_m, custom_op",
    [
        ("depthwise separable", 14, 512, 1.0, 1.0, 52.3, 0.27, True),
        ("alpha = 0.75", 14, 384, 0.75, 1.0, 29.6, 0.15, False),
        ("rho = 0.714", 10, 384, 0.75, 0.714, 15.1, 0.15, True),
    ],
)
def test_table3_depthwise_separable(label, d_f, channels, alpha, rho, macs_m, params_m, custom_op):
    assert int(512 * alpha) == channels and round(14 * rho) == d_f
    p = profile(_separable(d_f, channels, custom_op))
    assert round(p.total_macs / 1e6, 1) == macs_m, label
    assert round(p.total_params / 1e6, 2) == params_m, label
    # and exactly eq. (7), evaluated directly and through the library helper
    assert p.total_macs == _eq7(3, 512, 512, 14, alpha, rho)
    cost = depthwise_separable_cost(3, 512, 512, 14, alpha=alpha, rho=rho)
    assert (cost.macs, cost.params) == (p.total_macs, p.total_params)


def test_table3_reduction_factor():
    # "8 to 9 times less computation" (paper Sec. 3.1) for a 3x3 kernel: 1/N + 1/D_K^2
    std = profile(_standard(14, 512)).total_macs
    sep = profile(_separable(14, 512, True)).total_macs
    assert 8 < std / sep < 9
    assert sep / std == pytest.approx(1 / 512 + 1 / 9)


def test_table4_conv_mobilenet_params():
    # Table 4 "Conv MobileNet": every block a full 3x3 conv -> 29.3 M params, ~4866 M mult-adds
    widths = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    inp = keras.Input((224, 224, 3))
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(inp)
    for filters, stride in widths:
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(1000)(x))
    p = profile(model)
    assert round(p.total_params / 1e6, 1) == 29.3
    assert p.total_macs == pytest.approx(4866e6, rel=1e-3)


# --------------------------------------------------------------------------------------------
# MAC rules, nesting, multiple outputs, shared layers, views
# --------------------------------------------------------------------------------------------


def test_layer_formulas():
    inp = keras.Input((10, 12, 8))
    a = keras.layers.Conv2D(16, (3, 5), strides=2, padding="same", groups=4, name="grouped")(inp)
    b = keras.layers.SeparableConv2D(6, 3, depth_multiplier=2, padding="valid", name="sep")(a)
    c = keras.layers.Conv2DTranspose(5, 4, strides=2, padding="same", name="tconv")(b)
    d = GroupedDepthwiseConv2D(filters=10, kernel_size=3, groups=5, name="gdw")(c)
    e = keras.layers.Dense(3, name="dense3d")(d)  # applied per position
    f = keras.layers.BatchNormalization(name="bn")(e)
    p = profile(keras.Model(inp, f))
    assert p["grouped"].output_shape == (1, 5, 6, 16)
    assert p["grouped"].macs == 3 * 5 * (8 // 4) * 16 * 5 * 6
    assert p["sep"].output_shape == (1, 3, 4, 6)
    assert p["sep"].macs == (3 * 3 * 16 * 2 + 16 * 2 * 6) * 3 * 4
    assert p["tconv"].output_shape == (1, 6, 8, 5)
    assert p["tconv"].macs == 4 * 4 * 6 * 5 * 3 * 4  # K*K*C_in*C_out*H_in*W_in
    assert p["gdw"].macs == 3 * 3 * (5 // 5) * 10 * 6 * 8
    assert p["dense3d"].macs == 10 * 3 * 6 * 8
    assert p["bn"].macs == 0 and p["bn"].params == 4 * 3
    assert p.total_params == keras.Model(inp, f).count_params()


def test_batch_size_scales_macs_and_memory_not_params():
    model = keras_cnns.models.mobilenet.MobileNet(alpha=0.25, input_shape=(64, 64, 3), classes=10)
    p1, p4 = profile(model), profile(model, batch_size=4)
    assert p4.total_macs == 4 * p1.total_macs
    assert p4.total_activation_bytes == 4 * p1.total_activation_bytes
    assert p4.total_params == p1.total_params == model.count_params()
    assert p4.rows[-1].output_shape == (4, 10)


class _Split(keras.layers.Layer):
    def call(self, x):
        return x[..., :2], x[..., 2:]

    def compute_output_shape(self, s):
        return (s[:-1] + (2,), s[:-1] + (s[-1] - 2,))


def test_nested_models_shared_layers_multiple_outputs_and_views():
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(5, 3, padding="same", name="c"),
                              keras.layers.ReLU(name="r")], name="inner")
    shared = keras.layers.Dense(4, name="shared")
    inp = keras.Input((8, 8, 3), name="img")
    x = inner(inp)
    lo, hi = _Split(name="split")(x)
    y1 = shared(keras.layers.Flatten(name="flat1")(lo))
    y2 = shared(keras.layers.Flatten(name="flat2")(keras.layers.Dropout(0.5, name="drop")(hi[..., :2])))
    out = keras.layers.Add(name="add")([y1, y2])
    model = keras.Model(inp, out)
    p = profile(model)
    names = [r.name for r in p.rows]
    assert names[0] == "img" and "inner/c" in names and "inner/r" in names
    assert p["inner/c"].macs == 3 * 3 * 3 * 5 * 8 * 8
    split = p["split"]
    assert split.output_shapes == ((1, 8, 8, 2), (1, 8, 8, 3))
    assert split.activation_elements == 8 * 8 * 5
    shared_rows = [r for r in p.rows if r.name == "shared"]
    assert len(shared_rows) == 2
    assert [r.macs for r in shared_rows] == [128 * 4, 128 * 4]
    assert [r.params for r in shared_rows] == [128 * 4 + 4, 0]  # weights counted once
    assert p["flat1"].activation_elements == 0 and p["drop"].activation_elements == 0
    assert p["add"].activation_elements == 4
    assert p.total_params == model.count_params()
    assert p.total_macs == 3 * 3 * 3 * 5 * 64 + 2 * 128 * 4


def test_unknown_input_size_needs_input_shape():
    model = keras_cnns.models.mobilenet.MobileNet(alpha=0.25, input_shape=(None, None, 3), include_top=False)
    with pytest.raises(ValueError, match="input_shape"):
        profile(model)
    fixed = keras_cnns.models.mobilenet.MobileNet(alpha=0.25, input_shape=(96, 96, 3), include_top=False)
    assert profile(model, input_shape=(96, 96, 3)).total_macs == profile(fixed).total_macs
    with pytest.raises(ValueError, match="batch_size"):
        profile(fixed, batch_size=0)
    with pytest.raises(ValueError, match="model"):
        profile("vgg16")


def test_export_formats():
    model = keras_cnns.models.mobilenet.MobileNet(alpha=0.25, input_shape=(32, 32, 3), classes=3)
    p = profile(model)
    d = json.loads(json.dumps(p.to_dict()))
    assert d["totals"]["macs"] == p.total_macs and len(d["rows"]) == len(p.rows)
    assert d["totals"]["params"] == model.count_params()
    rows = list(csv.DictReader(io.StringIO(p.to_csv())))
    assert rows[-1]["name"] == "TOTAL" and int(rows[-1]["macs"]) == p.total_macs
    assert sum(int(r["params"]) for r in rows[:-1]) == p.total_params


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def test_run_with_own_parser(capsys):
    from keras_cnns.commands import profile as profile_cli  # the command, above the engine

    parser = argparse.ArgumentParser()
    profile_cli.add_arguments(parser)
    args = parser.parse_args(["mobilenet", "--alpha", "0.5", "--rho", "0.714", "--format", "json"])
    assert profile_cli.run(args) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["rows"][0]["output_shape"] == [[1, 160, 160, 3]]
    assert round(d["totals"]["macs"] / 1e6) == 77  # paper: alpha 0.5 at 160 -> 77 M
    with pytest.raises(ValueError, match="alpha"):
        profile_cli.run(parser.parse_args(["vgg16", "--alpha", "0.5"]))


def test_cli_profile_prints_table_with_total(capsys):
    from keras_cnns import cli

    assert cli.main(["profile", "mobilenet"]) == 0
    out = capsys.readouterr().out
    assert "568,740,352" in out  # total mult-adds
    assert "4,253,864" in out  # total params
    assert "conv_13_pw" in out and "TOTAL" in out
    assert cli.main(["profile", "mobilenet_0_25", "--input-size", "128", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[-1]["name"] == "TOTAL" and round(int(rows[-1]["macs"]) / 1e6) == 14  # paper: 14 M


def test_stochastic_depth_costs_its_branch():
    """The profiler owns the MAC rule of keras_cnns.layers.StochasticDepth (the layer never
    imports the profiler): a block costs its branch, as at inference every block is kept."""
    from keras_cnns.layers import StochasticDepth

    inner = keras.Input((8, 8, 4))
    branch = keras.Model(inner, keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inner))
    x = keras.Input((8, 8, 4))
    model = keras.Model(x, StochasticDepth(branch, 0.8, name="sd")([x, x]))
    assert profile(model).total_macs == 3 * 3 * 4 * 4 * 8 * 8
