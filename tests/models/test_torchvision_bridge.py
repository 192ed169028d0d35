"""``from_torchvision``: torchvision weights copied into ours give torchvision's outputs.

torchvision crashes when imported after TensorFlow (this process has TF: see conftest.py), so one
child process that imports only torch, torchvision and NumPy builds every reference model needed
by the selected tests (``weights=None``, every BatchNorm's statistics and affine parameters and
every bias randomised, ``eval()``), runs a seeded NCHW input through it and saves the
``state_dict`` (NumPy) and the input/output as ``.npz`` files (the residual families: each
block's last BatchNorm damped and the running statistics re-estimated from the input, see
``CALIBRATE``). The tests load those into our models and compare outputs (NHWC). The error-path
tests need no torch at all.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_cnns
from keras_cnns.layers import GroupedDepthwiseConv2D, fc_as_conv
from keras_cnns.bridges import (
    from_torchvision,
    load_state_dict,
    register_name_map,
    registered_names,
    weighted_layers,
)


def torchvision_names(model, family=None):
    return registered_names(model, "torchvision", family)


ATOL = 1e-4
HAVE_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision"))
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch / torchvision not installed "
                                 "(pip install -e '.[torch]')")

# case -> (our registered name, torchvision builder, input side, batch). VGG's head flattens
# pool5, which equals torchvision's AdaptiveAvgPool2d((7, 7)) only for a 7x7 map (224..239), and
# fc1 has 25,088 inputs only there: 224 is the smallest size. AlexNet's adaptive 6x6 pool is the
# identity at 224 (6x6 after pool5) and really averages at 160 (4x4 -> 6x6, overlapping bins).
# SqueezeNet at 72: ceil-mode pools with odd leftovers (1.0: 33 -> 16 -> 8 -> 4, 1.1: 35 -> 17
# -> 8 -> 4; floor pooling would give 3 at the end).
CASES = {
    "squeezenet1_0": ("squeezenet1_0", "squeezenet1_0", 72, 2),
    "squeezenet1_1": ("squeezenet1_1", "squeezenet1_1", 72, 2),
    "alexnet": ("alexnet", "alexnet", 224, 1),
    "alexnet_160": ("alexnet", "alexnet", 160, 1),
    # VGG: the shallowest configuration with and without BatchNorm, and the deepest with it (2
    # and 4 convolutions per stage; its layout only, STRUCTURE_ONLY). The other four share the
    # builder and its configuration table, and test_models_generic checks each one's exact
    # parameter count against torchvision's (reference_figures.csv); each of these
    # state_dicts is 0.5 GB, which the reference process writes and every case reads back (~90
    # s of the suite for those four).
    **{f"vgg{d}{bn}": (f"vgg{d}{bn}", f"vgg{d}{bn}", 224, 1)
       for d, bn in ((11, ""), (11, "_bn"), (19, "_bn"))},
}
# The residual families (v1.5: stride on the bottleneck's 3x3, downsample = 1x1 conv + BN) under
# torchvision's names. Their head is AdaptiveAvgPool2d((1, 1)) = our global average pool at any
# size, so 64 suffices: 64 -> 32 (conv1) -> 16 (maxpool) -> 16, 8, 4, 2 (layer1..4), every
# stage's stride-2 block and projection shortcut still in play.
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
           "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
           "wide_resnet50_2", "wide_resnet101_2")
CASES.update({name: (name, name, 64, 2) for name in RESNETS})
# MobileNetV2 in torchvision's layout (symmetric padding, BN eps 1e-5); 64 -> 2x2 at the end.
CASES["mobilenet_v2"] = ("mobilenetv2_torchvision", "mobilenet_v2", 64, 2)
# MobileNetV3 (torchvision layout); torchvision builds it with BatchNorm eps=0.001.
CASES["mobilenet_v3_large"] = ("mobilenetv3_large_torchvision", "mobilenet_v3_large", 64, 2)
CASES["mobilenet_v3_small"] = ("mobilenetv3_small_torchvision", "mobilenet_v3_small", 64, 2)
BN_EPSILON = {"mobilenet_v3_large": 1e-3, "mobilenet_v3_small": 1e-3}
# EfficientNet B0 / B1 (torchvision layout: symmetric padding, BN eps 1e-5, no preprocessing).
CASES["efficientnet_b0"] = ("efficientnet_b0_torchvision", "efficientnet_b0", 64, 2)
CASES["efficientnet_b1"] = ("efficientnet_b1_torchvision", "efficientnet_b1", 64, 2)
# ShuffleNet v2 (torchvision's layout; our layer names are its module prefixes). At 96, not 64:
# calibrated on 2 images of 2x2 final maps, torchvision's own float32 output is 9e-5 from its
# float64 one (x0_5), at 96 (3x3) 1.8e-5.
for _scale, _tv in (("0_50", "x0_5"), ("", "x1_0"), ("1_50", "x1_5"), ("2_00", "x2_0")):
    CASES[f"shufflenet_v2_{_tv}"] = ("shufflenetv2" + (f"_{_scale}" if _scale else ""),
                                     f"shufflenet_v2_{_tv}", 96, 2)
del _scale, _tv
# DenseNet-121/161/169/201, built with torchvision's BN epsilon (layout="torchvision"); at 64 px
# every transition still pools (64 -> 32 -> 16 -> 8, 4, 2). DenseNet-121 also memory-efficient:
# the same weights under the same names (the bottleneck's BN and 1x1 conv are sublayers).
for _depth in (121, 161, 169, 201):
    CASES[f"densenet{_depth}"] = (f"densenet{_depth}", f"densenet{_depth}", 64, 2)
CASES["densenet121_memory_efficient"] = ("densenet121", "densenet121", 64, 2)
BUILD_KWARGS = {case: dict(layout="torchvision") for case in CASES if case.startswith("densenet")}
BUILD_KWARGS["densenet121_memory_efficient"]["memory_efficient"] = True
del _depth
# Random running statistics do not normalise, and a residual stack adds every un-normalised
# branch: the logits grow with depth (measured at 64: resnet101 ~2e6, resnet152 ~1e10, float32
# round-off alone 3 .. 1e4; EfficientNet-B1 ~90, round-off 4e-3) and would hide e.g. a wrong fc
# bias. Re-estimating the statistics from the batch alone brings the logits to O(1) but leaves
# the deep nets chaotic (torchvision's own float32 vs float64 output: 1.4e-3 for resnet152). So
# for these the child also damps each residual block's last BatchNorm (ResNet's bn2 / bn3,
# EfficientNet's projection BN in its skip blocks: weight in [0.1, 0.3], bias in [-0.1, 0.1]),
# then sets every running mean / variance to the statistics of the test batch (one train-mode
# pass, momentum 1): float32 round-off <= 7e-6 (resnet152), while one block's permuted running
# variance moves the logits by 0.04 .. 0.13 and a permuted fc bias by 0.2.
CALIBRATE = set(RESNETS) | set(BUILD_KWARGS) | {"mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
                            "efficientnet_b0", "efficientnet_b1",
                            *(c for c in CASES if c.startswith("shufflenet_v2"))}
# The heaviest build: 143 M parameters (a ~575 MB state_dict), checked by layout only.
SLOW = {"vgg19_bn"}
#: Deeper or wider variants of a sibling whose outputs are compared here, built by the same
#: code from the same table (ResNet-34/101/152 of ResNet-18 and -50, ResNeXt-101 32x8d and
#: 64x4d of ResNeXt-50 32x4d, Wide ResNet-101-2 of Wide ResNet-50-2, DenseNet-169/201 of
#: DenseNet-121 and 161, VGG-19-BN of VGG-11-BN, EfficientNet-B1 of B0, ShuffleNet v2 x1.0 and
#: x1.5 of x0.5 and x2.0): the child writes only their state_dict's names and shapes, and
#: every entry must pair with one of our weights of that shape and every weight of ours with an
#: entry (``from_torchvision``, strict, on zeros; a grouped kernel's shape carries its groups).
#: With their exact parameter counts (reference_figures.csv, from torchvision) this checks the
#: whole layout; the forward pass adds nothing the sibling does not check, at 3-10 s a case
#: (the deepest builds of the file, and their state_dicts written and read back: VGG-19-BN's
#: is 575 MB).
STRUCTURE_ONLY = {"resnet34", "resnet101", "resnet152", "resnext101_32x8d", "resnext101_64x4d",
                  "wide_resnet101_2", "densenet169", "densenet201", "vgg19_bn",
                  "efficientnet_b1", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5"}
TOY_INPUT = (2, 4, 5, 7)  # NCHW: a non-square map, so the flatten permutation matters

# The children's torch side: torch + torchvision + NumPy, imported before any TensorFlow.
#: tests/models/_torch_randomise.py, run first in every torch child script
RANDOMISE = Path(__file__).with_name("_torch_randomise.py").read_text()
_TORCH_HELPERS = RANDOMISE + textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import torch, torchvision

    def calibrate(model, x, gen):  # residual families: see CALIBRATE
        from torchvision.models.efficientnet import MBConv
        from torchvision.models.resnet import BasicBlock, Bottleneck
        with torch.no_grad():
            for m in model.modules():
                last = None
                if isinstance(m, (BasicBlock, Bottleneck)):
                    last = m.bn2 if isinstance(m, BasicBlock) else m.bn3
                elif isinstance(m, MBConv) and m.use_res_connect:
                    last = m.block[-1][1]  # the projection's BatchNorm
                if last is not None:
                    last.weight.uniform_(0.1, 0.3, generator=gen)
                    last.bias.uniform_(-0.1, 0.1, generator=gen)
            bns = [m for m in model.modules()
                   if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
            for m in bns:
                m.momentum = 1.0  # running statistics := this batch's (unbiased variance)
            model.train()
            model(x)
            for m in bns:
                m.momentum = 0.1
                m.num_batches_tracked.fill_(7)

    def toy():
        return torch.nn.Sequential(
            torch.nn.Conv2d(4, 8, 3, padding=1, groups=4),      # depthwise, multiplier 2
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.Conv2d(8, 12, 3, padding=1, groups=4),     # grouped
            torch.nn.Conv2d(12, 12, 3, padding=1, groups=12),   # depthwise, multiplier 1
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Dropout(0.5),
            torch.nn.Linear(12 * 5 * 7, 10),
        )
""")

# Runs in the child: torch + torchvision + NumPy only, never TensorFlow.
_REFERENCE_SCRIPT = _TORCH_HELPERS + textwrap.dedent("""
    out_dir, cases = sys.argv[1], json.loads(sys.argv[2])
    assert "tensorflow" not in sys.modules

    for seed, (case, (builder, size, batch, calibrated)) in enumerate(sorted(cases.items())):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(1000 + seed)
        if case == "toy":
            model, shape = toy(), (batch, 4, 5, 7)
        else:
            model, shape = getattr(torchvision.models, builder)(weights=None), (batch, 3, size, size)
        if calibrated == "structure":  # names and shapes only (STRUCTURE_ONLY)
            with open(os.path.join(out_dir, case + "_shapes.json"), "w") as f:
                json.dump({k: [list(v.shape), str(v.dtype).replace("torch.", "")]
                           for k, v in model.state_dict().items()}, f)
            del model
            print(case, "done", flush=True)
            continue
        randomise(model, gen)
        x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
        if calibrated:
            calibrate(model, torch.from_numpy(x), gen)
        model.eval()
        with torch.no_grad():
            y = model(torch.from_numpy(x)).numpy()
        state = model.state_dict()
        np.savez(os.path.join(out_dir, case + "_state.npz"), **{k: v.numpy() for k, v in state.items()})
        np.savez(os.path.join(out_dir, case + "_io.npz"), x=x, y=y)
        if case == "toy":
            torch.save(state, os.path.join(out_dir, "toy_state.pt"))
        del model, state
        print(case, "done", flush=True)
""")


@pytest.fixture(scope="session")
def torch_reference(request, tmp_path_factory):
    """Directory with ``{case}_state.npz`` / ``{case}_io.npz`` for every selected case (+ toy)."""
    if not HAVE_TORCH:
        pytest.skip("torch / torchvision not installed")
    wanted = {"toy": ("toy", 0, TOY_INPUT[0], False)}
    for item in request.session.items:
        case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
        if case in CASES and "torch_reference" in getattr(item, "fixturenames", ()):
            wanted[case] = CASES[case][1:] + (
                "structure" if case in STRUCTURE_ONLY else case in CALIBRATE,)
    out = tmp_path_factory.mktemp("torchvision_reference")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", _REFERENCE_SCRIPT, str(out), json.dumps(wanted)],
                          capture_output=True, text=True, timeout=1800, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"torchvision reference process failed (rc={proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    yield out
    shutil.rmtree(out, ignore_errors=True)  # ~1.7 GB with the three VGGs


def _io(directory, case):
    with np.load(directory / f"{case}_io.npz") as f:
        return f["x"], f["y"]


def _nhwc(x):
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def _outputs(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def _report(case, got, expected):
    diff = float(np.abs(got - expected).max())
    print(f"\n[torchvision bridge] {case}: max |ours - torchvision| = {diff:.3g} "
          f"(max |logit| = {float(np.abs(expected).max()):.3g})")
    return diff


@needs_torch
@pytest.mark.parametrize("case", [
    pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c for c in CASES
])
def test_outputs_match_torchvision(case, torch_reference):
    name, _, size, _ = CASES[case]
    model = keras_cnns.create_model(name, classes=1000, input_shape=(size, size, 3),
                                    classifier_activation=None, **BUILD_KWARGS.get(case, {}))
    if case in STRUCTURE_ONLY:
        shapes = json.loads((torch_reference / f"{case}_shapes.json").read_text())
        zeros = {k: np.zeros(shape, dtype) for k, (shape, dtype) in shapes.items()}
        assert from_torchvision(zeros, model, bn_epsilon=BN_EPSILON.get(case, 1e-5)) is model
        assert not any(np.any(np.asarray(w)) for w in model.trainable_weights)  # all assigned
        return
    x, expected = _io(torch_reference, case)
    state = torch_reference / f"{case}_state.npz"
    if case.startswith("squeezenet"):  # exercise both kinds of source: a path and a dict
        state = dict(np.load(state))
    assert from_torchvision(state, model, bn_epsilon=BN_EPSILON.get(case, 1e-5)) is model
    got = _outputs(model, _nhwc(x))
    assert got.shape == expected.shape
    assert np.abs(expected).max() > 1e-2  # a non-trivial signal
    assert _report(case, got, expected) <= ATOL
    del model, got, state
    (torch_reference / f"{case}_state.npz").unlink()  # free the disk early (VGG: ~550 MB each)


def _toy_keras(fc_as_convolution=False, name="toy"):
    """Our layers for the child's torch toy: depthwise (m=2), BN, grouped, depthwise, FC."""
    inp = keras.Input(TOY_INPUT[2:] + TOY_INPUT[1:2])
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(inp)
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = GroupedDepthwiseConv2D(12, 3, groups=4, name="grouped")(x)
    x = GroupedDepthwiseConv2D(None, 3, name="dw2")(x)
    x = keras.layers.ReLU()(x)
    if fc_as_convolution:
        x = keras.layers.Flatten()(fc_as_conv(x, 10, name="fc"))
    else:
        x = keras.layers.Dropout(0.5)(keras.layers.Flatten()(x))
        x = keras.layers.Dense(10, name="fc")(x)
    return keras.Model(inp, x, name=name)


@needs_torch
@pytest.mark.parametrize("fc_as_convolution", [False, True], ids=["dense", "fc_as_conv"])
def test_toy_layers_match_torch(torch_reference, fc_as_convolution):
    # Positional pairing (no mapping registered for "toy"); Dropout between Flatten and Dense.
    x, expected = _io(torch_reference, "toy")
    model = _toy_keras(fc_as_convolution)
    from_torchvision(torch_reference / "toy_state.npz", model)
    assert _report(f"toy ({'fc_as_conv' if fc_as_convolution else 'dense'})",
                   _outputs(model, _nhwc(x)), expected) <= 1e-5


_PT_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_torchvision_bridge import _toy_keras, _nhwc, _outputs
    from keras_cnns.bridges.torchvision import from_torchvision  # TensorFlow is imported first
    assert "tensorflow" in sys.modules and "torch" not in sys.modules
    model = from_torchvision(sys.argv[1] + "/toy_state.pt", _toy_keras())  # imports torch now
    assert "torch" in sys.modules and "torchvision" not in sys.modules
    with np.load(sys.argv[1] + "/toy_io.npz") as f:
        x, y = f["x"], f["y"]
    print("max_abs_diff", float(np.abs(_outputs(model, _nhwc(x)) - y).max()))
""")


@needs_torch
def test_pt_file_loads_after_tensorflow(torch_reference):
    # A fresh process, so that importing torch after TF here leaves the test process alone.
    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([sys.executable, "-c", _PT_CHILD, str(torch_reference), here],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    diff = float(proc.stdout.split("max_abs_diff")[-1])
    assert diff <= 1e-5


# torchvision first, then keras_cnns (TensorFlow) in the same process: that order works, and
# lets the bridge receive the torch.nn.Module itself (and read each BatchNorm's eps from it).
_MODULE_CHILD = _TORCH_HELPERS + textwrap.dedent("""
    import keras_cnns  # TensorFlow after torchvision
    results = {}
    for seed, (builder, name) in enumerate(json.loads(sys.argv[1])):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(1000 + seed)
        module = getattr(torchvision.models, builder)(weights=None)
        randomise(module, gen)
        x = np.random.default_rng(seed).normal(size=(2, 3, 64, 64)).astype(np.float32)
        calibrate(module, torch.from_numpy(x), gen)
        module.eval()
        with torch.no_grad():
            y = module(torch.from_numpy(x)).numpy()
        model = keras_cnns.create_model(name, classes=1000, input_shape=(64, 64, 3),
                                        classifier_activation=None)
        keras_cnns.from_torchvision(module, model)  # no bn_epsilon: read from the module
        got = np.asarray(model(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), training=False))
        try:  # a state dict holds no eps: bn_epsilon's default (1e-5) applies there
            keras_cnns.from_torchvision(module.state_dict(), model)
            error = ""
        except ValueError as exc:
            error = str(exc)
        results[builder] = dict(
            eps=sorted({m.eps for m in module.modules()
                        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}),
            diff=float(np.abs(got - y).max()), scale=float(np.abs(y).max()), error=error)
    print("RESULTS", json.dumps(results))
""")


@needs_torch
def test_torch_module_gives_each_batch_norm_eps():
    # torchvision's MobileNetV3 builds its BatchNorms with eps=1e-3: handed the module, the
    # bridge reads it, and the registered *_torchvision model (epsilon 1e-3) takes the weights
    # without `bn_epsilon`; its state dict alone still needs bn_epsilon=1e-3.
    cases = [("mobilenet_v3_small", "mobilenetv3_small_torchvision"),
             ("mobilenet_v3_large", "mobilenetv3_large_torchvision")]
    proc = subprocess.run([sys.executable, "-c", _MODULE_CHILD, json.dumps(cases)],
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout.split("RESULTS")[-1])
    for builder, _ in cases:
        r = results[builder]
        print(f"\n[torchvision bridge] {builder} from the module: max |ours - torchvision| = "
              f"{r['diff']:.3g} (max |logit| = {r['scale']:.3g})")
        assert r["eps"] == [1e-3]
        assert r["scale"] > 1e-2 and r["diff"] <= ATOL
        assert "epsilon is 0.001" in r["error"] and "`bn_epsilon`" in r["error"]


class _FakeBatchNorm:
    """What the bridge reads of a torch BatchNorm: ``eps`` (and ``running_var``)."""

    def __init__(self, eps):
        self.eps, self.running_var = eps, None


class _FakeModule:
    """A ``torch.nn.Module`` stand-in (no torch in this process): ``state_dict`` and
    ``named_modules``."""

    def __init__(self, state, eps):
        self.state, self.eps = state, eps

    def state_dict(self):
        return self.state

    def named_modules(self):
        prefixes = {k.rpartition(".")[0] for k in self.state if k.endswith("running_var")}
        return [("", self)] + [(p, _FakeBatchNorm(self.eps)) for p in sorted(prefixes)]


def test_module_eps_is_checked_against_keras():
    model = keras_cnns.create_model("vgg11_bn", include_top=False, input_shape=(32, 32, 3))
    state = _torch_layout(model)
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"'features\.1'.*'block1_conv1_bn'.*epsilon is 1e-05 "
                                         r"but the torch BatchNorm's eps \(read from the module\)"):
        from_torchvision(_FakeModule(state, 1e-3), model)
    with pytest.raises(ValueError, match=r"`bn_epsilon` is 0\.001 but the torch module's "
                                         r"BatchNorm 'features\.1' has eps=1e-05"):
        from_torchvision(_FakeModule(state, 1e-5), model, bn_epsilon=1e-3)
    assert _unchanged(model, before)
    from_torchvision(_FakeModule(state, 1e-5), model)
    from_torchvision(_FakeModule(state, 1e-5), model, bn_epsilon=1e-5)


# ----------------------------------------------------------------------------------------------
# Without torch: a torch-layout state dict written from our own weights, and the error paths
# ----------------------------------------------------------------------------------------------

_TORCH_NAME = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
               "moving_mean": "running_mean", "moving_variance": "running_var"}


def _torch_layout(model):
    """Our (conv / BN) weights as the torchvision state dict the registered mapping expects."""
    layers = {layer.name: layer for layer in weighted_layers(model)}
    state = {}
    for k_name, prefix in torchvision_names(model):
        for v in layers[k_name].weights:
            short = v.path.rsplit("/", 1)[-1]
            a = keras.ops.convert_to_numpy(v)
            state[f"{prefix}.{_TORCH_NAME[short]}"] = a.transpose(3, 2, 0, 1) if a.ndim == 4 else a
    return state


def _squeezenet(**kw):
    return keras_cnns.SqueezeNet(version="1_1", input_shape=(64, 64, 3), classes=10, **kw)


def _snapshot(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def _unchanged(model, before):
    return all(np.array_equal(a, keras.ops.convert_to_numpy(v)) for a, v in zip(before, model.weights))


def test_round_trip_through_torch_layout():
    src = _squeezenet()
    for v in src.weights:  # conv10 starts at zero: make every weight distinct
        v.assign(np.random.default_rng(0).normal(size=v.shape).astype("float32"))
    state = _torch_layout(src)
    assert list(state)[:2] == ["features.0.weight", "features.0.bias"]
    assert "features.3.squeeze.weight" in state and "classifier.1.weight" in state
    dst = _squeezenet()
    from_torchvision(state, dst)
    for a, b in zip(src.weights, dst.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    # A custom model name has no registered mapping: pairing by order gives the same weights.
    other = _squeezenet(name="my_squeezenet")
    assert torchvision_names(other) is None
    from_torchvision(state, other)
    for a, b in zip(src.weights, other.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


def test_shape_mismatch_names_both_sides_and_copies_nothing():
    state = _torch_layout(_squeezenet())
    state["features.3.expand3x3.weight"] = np.zeros((64, 16, 1, 1), "float32")
    dst = _squeezenet()
    before = _snapshot(dst)
    with pytest.raises(ValueError, match=r"features\.3\.expand3x3.*fire2_expand3x3.*\(3, 3, 16, 64\)"):
        from_torchvision(state, dst)
    assert _unchanged(dst, before)


def test_strict_unused_and_missing_entries():
    state = _torch_layout(_squeezenet())
    dst = _squeezenet()
    before = _snapshot(dst)
    with pytest.raises(ValueError, match=r"unused.*'extra'"):
        from_torchvision({**state, "extra.weight": np.zeros(3, "float32")}, dst)
    with pytest.raises(ValueError, match=r"features\.0\.running_mean.*no Keras variable"):
        from_torchvision({**state, "features.0.running_mean": np.zeros(64, "float32")}, dst)
    missing = {k: v for k, v in state.items() if not k.startswith("classifier.1")}
    with pytest.raises(ValueError, match=r"conv10.*classifier\.1.*not in the state_dict"):
        from_torchvision(missing, dst)
    no_bias = {k: v for k, v in state.items() if k != "features.0.bias"}
    with pytest.raises(ValueError, match=r"conv1.*features\.0\.bias"):
        from_torchvision(no_bias, dst)
    assert _unchanged(dst, before)
    # strict=False: the classifier-less model takes the features and ignores the rest.
    headless = _squeezenet(include_top=False)
    with pytest.raises(ValueError, match=r"classifier\.1"):
        from_torchvision(state, headless)
    from_torchvision({**state, "extra.weight": np.zeros(3, "float32")}, headless, strict=False)
    conv1 = headless.get_layer("conv1").kernel
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(conv1),
                                  state["features.0.weight"].transpose(2, 3, 1, 0))


def test_bypass_convolutions_have_no_torch_counterpart():
    state = _torch_layout(keras_cnns.create_model("squeezenet1_0", input_shape=(64, 64, 3), classes=10))
    model = keras_cnns.create_model("squeezenet1_0_complex_bypass", input_shape=(64, 64, 3), classes=10)
    with pytest.raises(ValueError, match=r"no torch counterpart.*fire2_bypass_conv"):
        from_torchvision(state, model)


def test_batch_norm_epsilon_must_match():
    model = keras_cnns.create_model("vgg11_bn", include_top=False, input_shape=(32, 32, 3))
    state = _torch_layout(model)
    assert "features.1.running_var" in state and "features.4.weight" in state
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"'features\.1'.*'block1_conv1_bn'.*epsilon"):
        from_torchvision(state, model, bn_epsilon=1e-3)
    assert _unchanged(model, before)
    from_torchvision(state, model)  # torchvision's 1e-5 = ours


def test_explicit_names_and_registration():
    model = _squeezenet(include_top=False, name="renamed")
    state = _torch_layout(_squeezenet(include_top=False))
    names = torchvision_names(_squeezenet(include_top=False))
    from_torchvision(state, model, names=names)
    from_torchvision(state, model, names=lambda m: names)
    from_torchvision(state, model, family="SqueezeNet")
    with pytest.raises(ValueError, match=r"`family`.*Received: family='Nope'"):
        from_torchvision(state, model, family="Nope")
    with pytest.raises(ValueError, match=r"no layer 'nope'"):
        from_torchvision(state, model, names=[("nope", "features.0")], strict=False)
    with pytest.raises(ValueError, match=r"`names`"):
        from_torchvision(state, model, names=[1, 2])
    with pytest.raises(ValueError, match="register_name_map"):
        register_name_map("X", "torchvision", "not callable")
    with pytest.raises(ValueError, match="already has a torchvision name map"):
        register_name_map("SqueezeNet", "torchvision", lambda m: names)


@pytest.mark.parametrize("source, match", [
    (42, r"`source` must be a torch\.nn\.Module, a state_dict mapping"),
    ([1, 2], r"`source` must be"),
    ({"a.weight": "text"}, r"`source` entry 'a\.weight' is not a torch tensor or NumPy array"),
    ({}, r"`source` holds no weights"),
    ("missing.npz", r"`source` file .*missing\.npz' does not exist"),
    ("weights.txt", r"`source` file .*weights\.txt' has an unknown type '\.txt'.*\.npz.*\.pt"),
], ids=["int", "list", "bad-entry", "empty", "missing-file", "unknown-type"])
def test_bad_source(source, match, tmp_path):
    if isinstance(source, str):
        source = tmp_path / source
        if source.name == "weights.txt":
            source.write_text("not weights")
    with pytest.raises(ValueError, match=match):
        from_torchvision(source, _squeezenet())


def test_bad_model_and_options():
    state = _torch_layout(_squeezenet())
    with pytest.raises(ValueError, match=r"`model` must be a keras\.Model"):
        from_torchvision(state, "squeezenet1_1")
    with pytest.raises(ValueError, match=r"`source` must be .*a Keras model is not"):
        from_torchvision(_squeezenet(), _squeezenet())
    with pytest.raises(ValueError, match=r"`bn_epsilon`"):
        from_torchvision(state, _squeezenet(), bn_epsilon=0)
    with pytest.raises(ValueError, match=r"`strict`"):
        from_torchvision(state, _squeezenet(), strict="yes")


def test_exported_from_the_package():
    assert keras_cnns.from_torchvision is from_torchvision
    assert "from_torchvision" in keras_cnns.__all__


def test_load_state_dict_npz_skips_counters(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, **{"bn.weight": np.ones(2, "float32"), "bn.num_batches_tracked": np.array(3)})
    assert list(load_state_dict(path)) == ["bn.weight"]
    assert list(load_state_dict(str(path))) == ["bn.weight"]
