"""GoogLeNet and BN-Inception: the counts and multiply-adds by hand from the papers' tables, the
served (no auxiliary) figures (the paper's layout, torchvision's `num_params`), torchvision's outputs after copying its weights
(with and without the auxiliary classifiers, in inference and in training mode), single modules
against an independent TF-ops computation, the served model, and the knobs' errors.

The generic matrix (test_models_generic.py, test_contract.py) checks the registered figures of
the default (training) builds, the levels and a training step; the training loss and the CLI
are in tests/training/test_googlenet_training.py.
"""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnns
from keras_cnns.bridges import from_torchvision
from keras_cnns.models import reference_figures, shapes_only
from keras_cnns.models._figures import Quoted
from keras_cnns.models.googlenet import torchvision_names
from keras_cnns.models.heads import output_specs, served_model
from tests.models.test_keras_apps import _randomize  # random kernels, BN statistics and biases

# ------------------------------------------------------------------------------------------------
# The papers' tables as data, counted by hand
# ------------------------------------------------------------------------------------------------

# Szegedy et al. 2015, Table 1: (module, side at 224, #1x1, #3x3 reduce, #3x3, #5x5 reduce,
# #5x5, pool proj)
TABLE_1 = (
    ("3a", 28, 64, 96, 128, 16, 32, 32), ("3b", 28, 128, 128, 192, 32, 96, 64),
    ("4a", 14, 192, 96, 208, 16, 48, 64), ("4b", 14, 160, 112, 224, 24, 64, 64),
    ("4c", 14, 128, 128, 256, 24, 64, 64), ("4d", 14, 112, 144, 288, 32, 64, 64),
    ("4e", 14, 256, 160, 320, 32, 128, 128), ("5a", 7, 256, 160, 320, 32, 128, 128),
    ("5b", 7, 384, 192, 384, 48, 128, 128),
)
# Ioffe & Szegedy 2015, Fig. 5: (module, output side at 224, #1x1, #3x3 reduce, #3x3, double
# #3x3 reduce, double #3x3, pool proj (0: pass through), stride)
FIG_5 = (
    ("3a", 28, 64, 64, 64, 64, 96, 32, 1), ("3b", 28, 64, 64, 96, 64, 96, 64, 1),
    ("3c", 14, 0, 128, 160, 64, 96, 0, 2), ("4a", 14, 224, 64, 96, 96, 128, 128, 1),
    ("4b", 14, 192, 96, 128, 96, 128, 128, 1), ("4c", 14, 160, 128, 160, 128, 160, 128, 1),
    ("4d", 14, 96, 128, 192, 160, 192, 128, 1), ("4e", 7, 0, 128, 192, 192, 256, 0, 2),
    ("5a", 7, 352, 192, 320, 160, 224, 128, 1), ("5b", 7, 352, 192, 320, 192, 224, 128, 1),
)
CLASSES = 1000


class _Count:
    """Parameters and multiply-adds of convolutions (with bias, or bias-free + BN gamma/beta) and
    fully connected layers."""

    def __init__(self, batch_norm):
        self.batch_norm, self.params, self.macs = batch_norm, 0, 0

    def conv(self, k, c_in, c_out, side):
        self.params += k * k * c_in * c_out + (2 * c_out if self.batch_norm else c_out)
        self.macs += k * k * c_in * c_out * side * side

    def fc(self, n_in, n_out):
        self.params += n_in * n_out + n_out
        self.macs += n_in * n_out


def _googlenet_by_hand(batch_norm, five, aux):
    """Table 1 (and Sec. 5's auxiliary classifiers: 4x4 after the 5x5/3 pool on 14x14, 1x1 conv
    128, FC 1024, FC 1000); ``five``: the kernel of the "5x5" branch (torchvision: 3)."""
    n = _Count(batch_norm)
    n.conv(7, 3, 64, 112)
    n.conv(1, 64, 64, 56)
    n.conv(3, 64, 192, 56)
    c = 192
    for name, side, n1, r3, n3, r5, n5, proj in TABLE_1:
        n.conv(1, c, n1, side)
        n.conv(1, c, r3, side)
        n.conv(3, r3, n3, side)
        n.conv(1, c, r5, side)
        n.conv(five, r5, n5, side)
        n.conv(1, c, proj, side)
        c = n1 + n3 + n5 + proj
        if aux and name in ("4a", "4d"):
            n.conv(1, c, 128, 4)
            n.fc(4 * 4 * 128, 1024)
            n.fc(1024, CLASSES)
    n.fc(c, CLASSES)
    return n


def _bn_inception_by_hand():
    n = _Count(batch_norm=True)
    n.conv(7, 3, 64, 112)
    n.conv(1, 64, 64, 56)
    n.conv(3, 64, 192, 56)
    c, side_in = 192, 28
    for _, side, n1, r3, n3, rd, nd, proj, stride in FIG_5:
        if n1:
            n.conv(1, c, n1, side_in)
        n.conv(1, c, r3, side_in)
        n.conv(3, r3, n3, side)
        n.conv(1, c, rd, side_in)
        n.conv(3, rd, nd, side_in)
        n.conv(3, nd, nd, side)
        if proj:
            n.conv(1, c, proj, side_in)
        c = n1 + n3 + nd + (proj if proj else c)
        side_in = side
    n.fc(c, CLASSES)
    return n


# the figures the hand counts reproduce: the paper's Table 1 layout, torchvision's num_params
PAPER_NO_AUX, PAPER_AUX = 6_998_552, 13_378_280               # [C]
TORCHVISION_NO_AUX, TORCHVISION_AUX = 6_624_904, 13_004_888   # [R] GoogLeNet_Weights meta
BN_INCEPTION_TRAINABLE, BN_INCEPTION_TOTAL = 11_285_224, 11_305_256


def _count(model, trainable=True):
    weights = model.trainable_weights if trainable else model.weights
    return int(sum(np.prod(w.shape) for w in weights))


def test_hand_counts_equal_the_reference_figures():
    assert _googlenet_by_hand(False, 5, aux=False).params == PAPER_NO_AUX
    assert _googlenet_by_hand(False, 5, aux=True).params == PAPER_AUX
    assert _googlenet_by_hand(True, 3, aux=False).params == TORCHVISION_NO_AUX
    assert _googlenet_by_hand(True, 3, aux=True).params == TORCHVISION_AUX
    assert _bn_inception_by_hand().params == BN_INCEPTION_TRAINABLE
    # the csv rows (the default builds: GoogLeNet with its auxiliary classifiers)
    figures = reference_figures()
    assert figures["googlenet"].params == PAPER_AUX
    assert figures["googlenet_torchvision"].params == TORCHVISION_AUX
    assert figures["inception_v2"].params == BN_INCEPTION_TRAINABLE
    assert figures["googlenet"].macs.matches(_googlenet_by_hand(False, 5, aux=True).macs)
    assert figures["googlenet_torchvision"].macs.value == _googlenet_by_hand(True, 3, True).macs
    assert figures["inception_v2"].macs.value == _bn_inception_by_hand().macs


@pytest.mark.parametrize("name, batch_norm, five, no_aux, with_aux, served_macs", [
    ("googlenet", False, 5, PAPER_NO_AUX, PAPER_AUX, "1.583e9"),          # REFERENCE [C]
    ("googlenet_torchvision", True, 3, TORCHVISION_NO_AUX, TORCHVISION_AUX,
     "1.498e9"),                                                            # torchvision _ops
])
def test_served_and_training_models_have_the_reference_figures(name, batch_norm, five, no_aux,
                                                                with_aux, served_macs):
    with shapes_only():
        training = keras_cnns.create_model(name)
        plain = keras_cnns.create_model(name, aux_logits=False)
    assert [s.name for s in output_specs(training)] == ["predictions", "aux1", "aux2"]
    assert [(s.kind, s.loss_weight, s.served) for s in output_specs(training)[1:]] == \
        [("auxiliary", 0.3, False)] * 2
    served = served_model(training)
    assert len(plain.outputs) == 1 and len(served.outputs) == 1
    assert _count(training) == with_aux
    assert _count(plain) == _count(served) == no_aux
    hand = _googlenet_by_hand(batch_norm, five, aux=False)
    for model in (plain, served):
        assert keras_cnns.profile(model).total_macs == hand.macs
    assert keras_cnns.profile(training, outputs="served").total_macs == hand.macs
    assert Quoted(served_macs).matches(hand.macs)
    assert keras_cnns.profile(training).total_macs == _googlenet_by_hand(batch_norm, five,
                                                                           aux=True).macs


def test_bn_inception_figures():
    with shapes_only():
        model = keras_cnns.create_model("inception_v2")
    assert _count(model) == BN_INCEPTION_TRAINABLE
    assert _count(model, trainable=False) == BN_INCEPTION_TOTAL
    assert keras_cnns.profile(model).total_macs == _bn_inception_by_hand().macs
    assert Quoted("2.033e9").matches(_bn_inception_by_hand().macs)   # REFERENCE [C]
    assert not any(isinstance(l, keras.layers.Conv2D) and l.use_bias for l in model.layers)


# ------------------------------------------------------------------------------------------------
# Modules against an independent computation (TF ops from the tables above)
# ------------------------------------------------------------------------------------------------

def _ref_conv(model, name, x, stride=1):
    """conv (+ bias) (+ inference BN) + ReLU with tf.nn ops, the weights read by name."""
    conv = model.get_layer(f"{name}_conv")
    y = tf.nn.conv2d(x, conv.kernel, stride, "SAME")
    if conv.use_bias:
        y = y + conv.bias
    try:
        bn = model.get_layer(f"{name}_bn")
    except ValueError:
        bn = None
    if bn is not None:
        y = (y - bn.moving_mean) / tf.sqrt(bn.moving_variance + bn.epsilon) * bn.gamma + bn.beta
    return tf.nn.relu(y)


def _check_module(model, before, after, reference):
    probe = keras.Model(model.inputs, [model.get_layer(before).output,
                                       model.get_layer(after).output])
    x = np.random.default_rng(3).normal(size=(2, *model.input_shape[1:])).astype("float32")
    inp, out = (np.asarray(t) for t in probe(x, training=False))
    expected = np.asarray(reference(tf.constant(inp)))
    assert out.shape == expected.shape
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(out, expected, atol=2e-5 * np.abs(expected).max(), rtol=1e-4)


def test_bn_inception_modules_match_tf_ops():
    # 3c: stride 2, no 1x1 branch, the max pool passed through; 4a: average pool + projection;
    # 5b: max pool + projection
    model = keras_cnns.create_model("inception_v2", input_shape=(64, 64, 3), classes=5)
    _randomize(model, seed=2)
    for module, before in (("3c", "inception3b_concat"), ("4a", "inception3c_concat"),
                           ("5b", "inception5a_concat")):
        _, _, n1, r3, n3, rd, nd, proj, stride = next(r for r in FIG_5 if r[0] == module)
        pool = tf.nn.max_pool2d if module in ("3c", "4e", "5b") else tf.nn.avg_pool2d
        _check_module(model, before, f"inception{module}_concat",
                      _bn_inception_reference(model, f"inception{module}", n1, n3, nd, proj,
                                              stride, pool))


def _bn_inception_reference(model, p, n1, n3, nd, proj, stride, pool):
    def reference(x):
        branches = []
        if n1:
            branches.append(_ref_conv(model, f"{p}_branch1", x))
        branches.append(_ref_conv(model, f"{p}_branch2b",
                                  _ref_conv(model, f"{p}_branch2a", x), stride))
        d = _ref_conv(model, f"{p}_branch3b", _ref_conv(model, f"{p}_branch3a", x))
        branches.append(_ref_conv(model, f"{p}_branch3c", d, stride))
        pooled = pool(x, 3, stride, "SAME")
        branches.append(_ref_conv(model, f"{p}_branch4", pooled) if proj else pooled)
        out = tf.concat(branches, axis=-1)
        assert out.shape[-1] == n1 + n3 + nd + (proj if proj else x.shape[-1])
        return out

    return reference


def test_paper_googlenet_module_and_stem_match_tf_ops():
    model = keras_cnns.create_model("googlenet", input_shape=(64, 64, 3), classes=5)
    _randomize(model, seed=4)
    _, _, n1, r3, n3, r5, n5, proj = TABLE_1[2]  # 4a: a true 5x5 branch, biases, no BN
    assert model.get_layer("inception4a_branch3b_conv").kernel.shape == (5, 5, r5, n5)

    def module(x):
        p = "inception4a"
        b3 = _ref_conv(model, f"{p}_branch3b", _ref_conv(model, f"{p}_branch3a", x))
        return tf.concat([_ref_conv(model, f"{p}_branch1", x),
                          _ref_conv(model, f"{p}_branch2b", _ref_conv(model, f"{p}_branch2a", x)),
                          b3,
                          _ref_conv(model, f"{p}_branch4", tf.nn.max_pool2d(x, 3, 1, "SAME"))],
                         axis=-1)

    _check_module(model, "pool3", "inception4a_concat", module)

    def lrn(x):  # Caffe's LRN (bvlc_googlenet): local_size 5, alpha 1e-4 (per element), beta .75
        c = x.shape[-1]
        sq = tf.pad(tf.square(x), [[0, 0], [0, 0], [0, 0], [2, 2]])
        window = sum(sq[..., k:k + c] for k in range(5))
        return x / (1.0 + 1e-4 / 5 * window) ** 0.75

    def stem(x):  # pool1 -> norm1 -> conv2 -> conv3 -> norm2
        y = lrn(tf.nn.max_pool2d(x, 3, 2, "SAME"))
        return lrn(_ref_conv(model, "conv3", _ref_conv(model, "conv2", y)))

    _check_module(model, "conv1_relu", "norm2", stem)


# ------------------------------------------------------------------------------------------------
# torchvision: the same outputs after copying its (randomised) weights
# ------------------------------------------------------------------------------------------------

HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision"))
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch / torchvision not installed "
                                 "(pip install -e '.[torch]')")
# 84 px: 42 (conv1) -> 21 (pool1; floor mode: 20) -> 10 (pool2) -> 5 (pool3; floor: 4) -> 3
# (the 2x2 pool4; floor: 2): three of the four ceil-mode pools keep a partial window; the
# auxiliary classifiers' adaptive pool takes 5x5 to 4x4 with overlapping bins.
SIDE, BATCH, TV_CLASSES = 84, 2, 10

# torch + torchvision + NumPy only: torchvision crashes when imported after TensorFlow.
#: tests/models/_torch_randomise.py, run first in the torch child script
RANDOMISE = Path(__file__).with_name("_torch_randomise.py").read_text()
_CHILD = RANDOMISE + textwrap.dedent("""
    import sys
    import numpy as np
    import torch, torchvision
    out, side, batch, classes = sys.argv[1], *map(int, sys.argv[2:5])
    assert "tensorflow" not in sys.modules
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    # dropout 0 on both sides, so that training mode is deterministic (BN: batch statistics)
    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False,
                                         transform_input=False, num_classes=classes,
                                         dropout=0.0, dropout_aux=0.0)
    randomise(model, gen)  # tests/models/_torch_randomise.py
    x = np.random.default_rng(0).normal(size=(batch, 3, side, side)).astype(np.float32)
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    seen = {}
    for block in ("inception4a", "inception4d"):
        getattr(model, block).register_forward_hook(
            lambda mod, inp, o, block=block: seen.__setitem__(block, o))
    model.eval()
    with torch.no_grad():
        main = model(torch.from_numpy(x))
        aux1, aux2 = model.aux1(seen["inception4a"]), model.aux2(seen["inception4d"])
        model.train()
        train = model(torch.from_numpy(x))  # GoogLeNetOutputs(logits, aux2, aux1)
    np.savez(out + "/state.npz", **state)
    np.savez(out + "/io.npz", x=x, main=main.numpy(), aux1=aux1.numpy(), aux2=aux2.numpy(),
             train_main=train.logits.numpy(), train_aux1=train.aux_logits1.numpy(),
             train_aux2=train.aux_logits2.numpy())
""")


@pytest.fixture(scope="module")
def torch_googlenet(tmp_path_factory):
    if not HAVE_TORCH:
        pytest.skip("torch / torchvision not installed")
    out = tmp_path_factory.mktemp("googlenet_torchvision")
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(out), str(SIDE), str(BATCH),
                           str(TV_CLASSES)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert proc.returncode == 0, proc.stderr[-4000:]
    state = dict(np.load(out / "state.npz"))
    with np.load(out / "io.npz") as f:
        io = {k: f[k] for k in f.files}
    return state, io


def _nhwc(x):
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def _build(**kwargs):
    return keras_cnns.create_model("googlenet_torchvision", classes=TV_CLASSES,
                                   input_shape=(SIDE, SIDE, 3), classifier_activation=None,
                                   dropout=0.0, aux_dropout=0.0, **kwargs)


def _close(name, got, expected):
    got = np.asarray(got)
    scale = float(np.abs(expected).max())
    diff = float(np.abs(got - expected).max())
    print(f"\n[googlenet torchvision] {name}: max |ours - torchvision| = {diff:.3g} "
          f"(max |logit| = {scale:.3g})")
    assert got.shape == expected.shape and scale > 1e-2
    assert diff <= 1e-4 * max(1.0, scale)


@needs_torch
def test_outputs_match_torchvision_with_the_auxiliary_classifiers(torch_googlenet):
    state, io = torch_googlenet
    model = _build()
    assert from_torchvision(state, model, bn_epsilon=1e-3) is model  # strict: every entry used
    x = _nhwc(io["x"])
    # the served model: the main output, the same weights
    served = served_model(model)
    _close("served", served(x, training=False), io["main"])
    assert {id(w) for w in served.weights} <= {id(w) for w in model.weights}
    # inference, then training mode (which moves the BN moving statistics: last)
    for training, prefix in ((False, ""), (True, "train_")):
        main, aux1, aux2 = model(x, training=training)
        _close(f"{prefix}main", main, io[f"{prefix}main"])
        _close(f"{prefix}aux1", aux1, io[f"{prefix}aux1"])
        _close(f"{prefix}aux2", aux2, io[f"{prefix}aux2"])


@needs_torch
def test_outputs_match_torchvision_without_the_auxiliary_classifiers(torch_googlenet):
    state, io = torch_googlenet
    model = _build(aux_logits=False)
    assert not any(layer.name.startswith("aux") for layer in model.layers)
    trunk = {k: v for k, v in state.items() if not k.startswith("aux")}
    from_torchvision(trunk, model, bn_epsilon=1e-3)  # strict: every entry and layer paired
    x = _nhwc(io["x"])
    _close("no aux: main", model(x, training=False), io["main"])
    _close("no aux: train main", model(x, training=True), io["train_main"])


def test_name_map_covers_every_weighted_layer_and_refuses_the_paper_layout():
    with shapes_only():
        model = keras_cnns.create_model("googlenet_torchvision", input_shape=(64, 64, 3))
        paper = keras_cnns.create_model("googlenet", input_shape=(64, 64, 3))
    pairs = torchvision_names(model)
    weighted = {layer.name for layer in model.layers if layer.weights}
    assert {k for k, _ in pairs} == weighted
    assert len({v for _, v in pairs}) == len(pairs)
    assert ("aux1", "aux1.fc2") in pairs and ("inception5b_branch3b_conv",
                                              "inception5b.branch3.1.conv") in pairs
    with pytest.raises(ValueError, match=r"`model`.*layout='torchvision'.*Received: model="):
        torchvision_names(paper)


# ------------------------------------------------------------------------------------------------
# Outputs, levels and knobs
# ------------------------------------------------------------------------------------------------

def test_levels_leave_the_auxiliary_branches_out():
    for name in ("googlenet", "googlenet_torchvision", "inception_v2"):
        levels = keras_cnns.model_info(name).feature_levels()
        assert [lv["level"] for lv in levels] == ["P1", "P2", "P3", "P4", "P5"]
        assert not any(lv["layer"].startswith("aux") for lv in levels)
    with shapes_only():
        headless = keras_cnns.create_model("googlenet", include_top=False, pooling="avg")
    assert len(headless.outputs) == 1 and headless.output_shape == (None, 1024)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(layout="caffe"), "layout"),
    (dict(aux_logits="yes"), "aux_logits"),
    (dict(aux_logits=1), "aux_logits"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"),
    (dict(dropout="0.4"), "dropout"),
    (dict(aux_dropout=1.5), "aux_dropout"),
    (dict(aux_dropout=None), "aux_dropout"),
])
def test_bad_googlenet_knobs(kwargs, arg):
    with pytest.raises(ValueError, match=rf"`{arg}`.*Received: {arg}="):
        keras_cnns.GoogLeNet(**kwargs)


def test_bad_bn_inception_knobs_and_static_size_for_the_aux_heads():
    with pytest.raises(ValueError, match=r"`dropout`.*Received: dropout="):
        keras_cnns.BNInception(dropout=1.0)
    with pytest.raises(ValueError, match=r"`input_shape`"):  # the aux heads flatten their map
        keras_cnns.GoogLeNet(input_shape=(None, None, 3))
    with shapes_only():  # without them any size goes
        model = keras_cnns.GoogLeNet(input_shape=(None, None, 3), aux_logits=False)
    assert model.output_shape == (None, 1000)
