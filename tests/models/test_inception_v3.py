"""Inception-v3: keras.applications' outputs after copying its weights, torchvision's outputs (with
the auxiliary head, in inference and in training mode) after copying its weights, the auxiliary
head's size by hand, the outputs' roles and the knobs' errors.

torchvision crashes when imported after TensorFlow (this process has TF: see conftest.py), so a
child process that imports only torch, torchvision and NumPy builds torchvision's
``inception_v3(aux_logits=True, init_weights=False, transform_input=False, dropout=0)`` with every
BatchNorm's statistics and affine parameters and every bias randomised, runs a seeded input
through it (``eval()``: the main output, and ``AuxLogits`` on ``Mixed_6e``'s output; ``train()``:
both outputs on batch statistics) and saves the state dict and the results as ``.npz``. 299 px
is the smallest input torchvision's auxiliary head takes (its ``conv1`` is a valid 5x5 on the
5x5 / 3 pool of the 17x17 grid: the grid must be >= 17 wide, i.e. H >= 299).

The generic matrix (test_models_generic.py, test_contract.py) checks the counts and MACs against
reference_figures.csv, the levels, a training step at 75 px and the serialisation.
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

import keras_cnns
from keras_cnns.bridges import from_keras_applications, from_torchvision, weighted_layers
from keras_cnns.models import feature_extractor, reference_figures, shapes_only
from keras_cnns.models.heads import output_specs, served_model
from keras_cnns.models.inception_v3 import InceptionV3, torchvision_names
from tests.models.test_keras_apps import _randomize  # random kernels, BN statistics and biases

HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision"))


def _x(shape, batch=2, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


# ------------------------------------------------------------------------------------------------
# Counts: the auxiliary head by hand (torchvision's InceptionAux), the figures with / without it
# ------------------------------------------------------------------------------------------------

def test_auxiliary_head_count_by_hand():
    # conv0 1x1 768 -> 128 + BN(128) gamma/beta, conv1 5x5 128 -> 768 + BN(768), fc 768 -> 1000
    aux = 768 * 128 + 2 * 128 + 5 * 5 * 128 * 768 + 2 * 768 + 768 * 1000 + 1000
    assert aux == 3_326_696
    with shapes_only():
        with_aux = InceptionV3(layout="torchvision")
        without = InceptionV3(layout="torchvision", aux_logits=False)
        keras_layout = InceptionV3()
    assert _trainable(with_aux) == reference_figures()["inception_v3_torchvision"].params
    assert _trainable(with_aux) - _trainable(without) == aux
    assert _trainable(without) == 23_834_568  # imgclsmob's InceptionV3
    # keras.applications' layout: no BN gamma (scale=False) and no auxiliary head
    bn_gammas = sum(int(w.shape[0]) for w in without.trainable_weights if w.path.endswith("gamma"))
    assert _trainable(keras_layout) == _trainable(without) - bn_gammas
    assert len(with_aux.outputs) == 2 and len(keras_layout.outputs) == 1
    # MACs: torchvision's 5.713 GFLOPS (eval mode) is the served model's; the auxiliary head
    # adds its conv0, conv1 and fc on the 5x5 pool of the 17x17 grid (the csv's training count)
    served = keras_cnns.profile(with_aux, outputs="served").total_macs
    assert served == keras_cnns.profile(keras_layout).total_macs == 5_713_216_096
    aux_macs = 5 * 5 * 768 * 128 + 5 * 5 * 128 * 768 + 768 * 1000
    assert keras_cnns.profile(with_aux).total_macs == served + aux_macs


# ------------------------------------------------------------------------------------------------
# keras.applications: the same outputs after copying randomised weights
# ------------------------------------------------------------------------------------------------

def test_outputs_match_keras_applications():
    # 75 (keras.applications' smallest side, 1 at the end) x 97: non-square, odd sides through
    # the valid convolutions and pools (37 x 48 -> ... -> 1 x 2 at the end)
    shape = (75, 97, 3)
    src = keras.applications.InceptionV3(weights=None, input_shape=shape, classes=7,
                                         classifier_activation=None)
    dst = keras_cnns.create_model("inception_v3", input_shape=shape, classes=7,
                                  classifier_activation=None)
    _randomize(src)
    x = _x(shape)
    expected = np.asarray(src(x, training=False))
    assert np.abs(expected).max() > 1e-2  # a non-trivial signal
    assert from_keras_applications(src, dst) is dst
    got = np.asarray(dst(x, training=False))
    print(f"\n[inception_v3 vs keras.applications {shape}] max diff "
          f"{np.abs(got - expected).max():.3g}")
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)
    for s, t in zip(weighted_layers(src), weighted_layers(dst), strict=True):
        for a, b in zip(s.get_weights(), t.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    # the concatenations carry keras.applications' names, at the same shapes; P3..P5 are its
    # mixed2 / mixed7 / mixed10
    for name in ("mixed0", "mixed2", "mixed7", "mixed9_0", "mixed9_1", "mixed10"):
        assert dst.get_layer(name).output.shape == src.get_layer(name).output.shape
    feats = feature_extractor(dst)
    for level, name in (("P3", "mixed2"), ("P4", "mixed7"), ("P5", "mixed10")):
        assert feats.output[level].shape[1:] == src.get_layer(name).output.shape[1:]


# ------------------------------------------------------------------------------------------------
# torchvision (with its auxiliary head), in a child process
# ------------------------------------------------------------------------------------------------

TV_SIZE, TV_BATCH, TV_CLASSES = 299, 2, 10

#: tests/models/_torch_randomise.py, run first in the torch child script
RANDOMISE = Path(__file__).with_name("_torch_randomise.py").read_text()
_TORCH_SCRIPT = RANDOMISE + textwrap.dedent("""
    import sys
    import numpy as np
    import torch, torchvision
    assert "tensorflow" not in sys.modules
    out, size, batch, classes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    model = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False,
                                            transform_input=False, num_classes=classes,
                                            dropout=0.0)
    randomise(model, gen)  # tests/models/_torch_randomise.py
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    x = np.random.default_rng(2).normal(size=(batch, 3, size, size)).astype(np.float32)
    grid = {}
    model.Mixed_6e.register_forward_hook(lambda m, i, o: grid.__setitem__("x", o))
    model.eval()
    with torch.no_grad():
        y = model(torch.from_numpy(x))
        aux = model.AuxLogits(grid["x"])  # eval() returns the main output only
    model.train()
    with torch.no_grad():
        y_train, aux_train = model(torch.from_numpy(x))
    np.savez(out + "_state.npz", **state)
    np.savez(out + "_io.npz", x=x, y=y.numpy(), aux=aux.numpy(), y_train=y_train.numpy(),
             aux_train=aux_train.numpy())
""")


@pytest.fixture(scope="module")
def torchvision_reference(tmp_path_factory):
    if not HAVE_TORCH:
        pytest.skip("torch / torchvision not installed (pip install -e '.[torch]')")
    prefix = str(tmp_path_factory.mktemp("inception_v3_torchvision") / "ref")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", _TORCH_SCRIPT, prefix, str(TV_SIZE),
                           str(TV_BATCH), str(TV_CLASSES)],
                          capture_output=True, text=True, timeout=600, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"torchvision reference process failed (rc={proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    with np.load(prefix + "_io.npz") as f:
        io = dict(f)
    return prefix + "_state.npz", io


def test_outputs_match_torchvision_with_auxiliary_head(torchvision_reference):
    state, io = torchvision_reference
    model = keras_cnns.create_model("inception_v3_torchvision", classes=TV_CLASSES,
                                    input_shape=(TV_SIZE, TV_SIZE, 3), classifier_activation=None,
                                    dropout=0.0)
    assert [s.name for s in output_specs(model)] == ["predictions", "aux"]
    assert from_torchvision(state, model, bn_epsilon=1e-3) is model
    x = np.ascontiguousarray(io["x"].transpose(0, 2, 3, 1))
    for training, keys in ((False, ("y", "aux")), (True, ("y_train", "aux_train"))):
        got = model(x, training=training)  # training: BatchNorm on the batch's statistics
        for g, key in zip(got, keys, strict=True):
            want = io[key]
            diff = float(np.abs(np.asarray(g) - want).max())
            print(f"\n[inception_v3_torchvision vs torchvision] {key}: max diff {diff:.3g} "
                  f"(max |logit| {np.abs(want).max():.3g})")
            assert np.abs(want).max() > 1e-2
            # training: the auxiliary head's last BatchNorm normalises 1x1 maps over the 2
            # images, (v - mean) / sqrt(var + 1e-3) of two values, which magnifies float32
            # round-off (measured 1.3e-4); a wrong variance (unbiased: x sqrt 2) moves it by 0.1
            np.testing.assert_allclose(np.asarray(g), want, atol=5e-4 if training else 1e-5,
                                       rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# Outputs' roles, small inputs, name map, knobs
# ------------------------------------------------------------------------------------------------

def test_auxiliary_output_is_trained_not_served():
    # the served model keeps the main output only (the generic matrix runs both outputs forward
    # and backward at 75 px, where the 17x17 grid is 3x3: the head pools globally there and
    # conv1 pads, with the same weights)
    with shapes_only():
        model = keras_cnns.create_model("inception_v3_torchvision", input_shape=(75, 75, 3))
        k = InceptionV3(aux_logits=True, input_shape=(299, 299, 3))
    main, aux = output_specs(model)
    assert (main.name, main.kind, main.served) == ("predictions", "classification", True)
    assert (aux.name, aux.kind, aux.loss_weight, aux.served) == ("aux", "auxiliary", 0.3, False)
    assert len(served_model(model).outputs) == 1
    assert model.get_layer("AuxLogits_conv1_conv").padding == "same"
    # the keras layout with the head on request: the same outputs' roles, torchvision's
    # valid 5x5 at 299 (17 -> 5 -> 1)
    assert [s.kind for s in output_specs(k)] == ["classification", "auxiliary"]
    assert k.get_layer("AuxLogits_conv1_conv").output.shape[1:3] == (1, 1)
    # headless: the layout's default leaves the head out (an explicit True is refused)
    with shapes_only():
        headless = keras_cnns.create_model("inception_v3_torchvision", include_top=False,
                                           pooling="avg", input_shape=(75, 75, 3))
    assert len(headless.outputs) == 1 and headless.output.shape == (None, 2048)


def test_torchvision_name_map():
    with shapes_only():
        model = InceptionV3(layout="torchvision", input_shape=(299, 299, 3))
        keras_model = InceptionV3(input_shape=(299, 299, 3))
    pairs = dict(torchvision_names(model))
    assert pairs["Conv2d_1a_3x3_conv"] == "Conv2d_1a_3x3.conv"
    assert pairs["Mixed_5b_branch5x5_1_bn"] == "Mixed_5b.branch5x5_1.bn"
    assert pairs["Mixed_7c_branch3x3dbl_3b_conv"] == "Mixed_7c.branch3x3dbl_3b.conv"
    assert pairs["AuxLogits_conv1_bn"] == "AuxLogits.conv1.bn"
    assert pairs["predictions"] == "fc" and pairs["aux"] == "AuxLogits.fc"
    assert set(pairs) == {layer.name for layer in weighted_layers(model)}
    with pytest.raises(ValueError, match="layout='torchvision'"):
        torchvision_names(keras_model)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(layout="slim"), "layout"),
    (dict(aux_logits="yes"), "aux_logits"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"),
    (dict(aux_logits=True, include_top=False), "aux_logits"),
    (dict(input_shape=(74, 74, 3)), "input_shape"),
])
def test_bad_knobs(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`") as info:
        InceptionV3(**kwargs)
    assert "Received" in str(info.value)
