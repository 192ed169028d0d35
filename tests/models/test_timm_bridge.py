"""``from_timm``: timm's CSPNet / Darknet weights copied into ours give timm's outputs.

timm imports torchvision, which crashes when imported after TensorFlow (this process has TF: see
conftest.py), so one child process that imports only torch, timm and NumPy builds every
reference model the selected tests need (``timm.create_model(name)``, random weights, every
BatchNorm's statistics and affine parameters and the classifier bias randomised, each residual
block's last BatchNorm damped and the running statistics re-estimated from the test batch, see
``CALIBRATE``; ``eval()``), runs a seeded NCHW input through it and saves the ``state_dict``
(NumPy) and the input / output as ``.npz``. The tests load those into our models and compare
outputs (NHWC). The error-path tests need no torch.
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
from keras_cnns.bridges import (
    from_timm,
    register_name_map,
    registered_names,
    weighted_layers,
)
from keras_cnns.models.cspnet import CSPDenseNet, CSPNet, Darknet, timm_names

ATOL = 1e-4
HAVE_TIMM = all(importlib.util.find_spec(m) is not None for m in ("torch", "torchvision", "timm"))
needs_timm = pytest.mark.skipif(not HAVE_TIMM, reason="timm / torch not installed "
                                "(pip install -e '.[timm]')")

# case -> (registered name = timm name, (height, width), batch). A non-square 64 x 66 input:
# 64 keeps every side even (the stem max-pool pads only its top rows there), 66 gives odd sides
# from the first stride-2 step on (33, 17, 9, 5, 3: PyTorch's symmetric padding on both edges,
# the max-pool's bottom pad included), and the head's average pool is global at any size.
SIZE = (64, 66)
CASES = {name: (name, SIZE, 2) for name in ("cspresnet50", "cspresnext50", "cspdarknet53",
                                            "darknet53")}
# Random running statistics do not normalise and every residual block adds its un-normalised
# branch, so the logits of the deep stacks grow with depth and would hide a wrong bias (as in
# test_torchvision_bridge.py's CALIBRATE). The child damps each residual block's last BatchNorm
# (BottleneckBlock.conv3.bn, DarkBlock.conv2.bn: weight in [0.1, 0.3], bias in [-0.1, 0.1]), then
# sets every running mean / variance to the test batch's statistics (one train-mode pass with
# momentum 1): O(1) logits on which float32 round-off stays far below ATOL.
CALIBRATE = set(CASES)
# DenseNet (timm's densenet121 / densenet161: torchvision's module names, BatchNormAct2d with eps
# 1e-5): built with layout="torchvision"; the "DenseNet" timm map is torchvision's. No residual
# adds, but the BatchNorm statistics are re-estimated like the others'.
for _name in ("densenet121", "densenet161"):
    CASES[_name] = (_name, SIZE, 2)
    CALIBRATE.add(_name)
del _name
BUILD_KWARGS = {"densenet121": dict(layout="torchvision"), "densenet161": dict(layout="torchvision")}

# The child's torch side: torch + timm + NumPy, imported before any TensorFlow.
#: tests/models/_torch_randomise.py, run first in every torch child script
RANDOMISE = Path(__file__).with_name("_torch_randomise.py").read_text()
_TIMM_HELPERS = RANDOMISE + textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import torch, timm
    from timm.models.cspnet import BottleneckBlock, DarkBlock

    def calibrate(model, x, gen):  # see CALIBRATE
        with torch.no_grad():
            for m in model.modules():
                last = None
                if isinstance(m, BottleneckBlock):
                    last = m.conv3.bn
                elif isinstance(m, DarkBlock):
                    last = m.conv2.bn
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

    def reference(name, seed, shape, calibrated):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(1000 + seed)
        model = timm.create_model(name, pretrained=False)
        randomise(model, gen)
        x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
        if calibrated:
            calibrate(model, torch.from_numpy(x), gen)
        model.eval()
        with torch.no_grad():
            y = model(torch.from_numpy(x)).numpy()
        return model, x, y
""")

# Runs in the child: torch + timm + NumPy only, never TensorFlow.
_REFERENCE_SCRIPT = _TIMM_HELPERS + textwrap.dedent("""
    out_dir, cases = sys.argv[1], json.loads(sys.argv[2])
    assert "tensorflow" not in sys.modules

    for seed, (case, (name, (h, w), batch, calibrated)) in enumerate(sorted(cases.items())):
        model, x, y = reference(name, seed, (batch, 3, h, w), calibrated)
        state = model.state_dict()
        np.savez(os.path.join(out_dir, case + "_state.npz"),
                 **{k: v.numpy() for k, v in state.items()})
        np.savez(os.path.join(out_dir, case + "_io.npz"), x=x, y=y,
                 params=sum(p.numel() for p in model.parameters()))
        del model, state
        print(case, "done", flush=True)
""")


@pytest.fixture(scope="session")
def timm_reference(request, tmp_path_factory):
    """Directory with ``{case}_state.npz`` / ``{case}_io.npz`` for every selected case."""
    if not HAVE_TIMM:
        pytest.skip("timm / torch not installed")
    wanted = {}
    for item in request.session.items:
        case = getattr(getattr(item, "callspec", None), "params", {}).get("case")
        if case in CASES and "timm_reference" in getattr(item, "fixturenames", ()):
            wanted[case] = CASES[case] + (case in CALIBRATE,)
    out = tmp_path_factory.mktemp("timm_reference")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", _REFERENCE_SCRIPT, str(out), json.dumps(wanted)],
                          capture_output=True, text=True, timeout=1800, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"timm reference process failed (rc={proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    yield out
    shutil.rmtree(out, ignore_errors=True)


def _nhwc(x):
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def _outputs(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def _report(case, got, expected):
    diff = float(np.abs(got - expected).max())
    print(f"\n[timm bridge] {case}: max |ours - timm| = {diff:.3g} "
          f"(max |logit| = {float(np.abs(expected).max()):.3g})")
    return diff


@needs_timm
@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_match_timm(case, timm_reference):
    name, (h, w), _ = CASES[case]
    with np.load(timm_reference / f"{case}_io.npz") as f:
        x, expected, params = f["x"], f["y"], int(f["params"])
    model = keras_cnns.create_model(name, classes=1000, input_shape=(h, w, 3),
                                    classifier_activation=None, **BUILD_KWARGS.get(case, {}))
    # timm's count at this size is the csv row's (the parameters do not depend on the size)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == params
    assert keras_cnns.model_info(name).reference_params == params
    assert from_timm(timm_reference / f"{case}_state.npz", model) is model
    got = _outputs(model, _nhwc(x))
    assert got.shape == expected.shape == (2, 1000)
    assert np.abs(expected).max() > 1e-2  # a non-trivial signal
    assert _report(case, got, expected) <= ATOL


# timm first, then keras_cnns (TensorFlow) in the same process: that order works, and lets the
# bridge receive the timm module itself (and read each BatchNormAct2d's eps from it).
_MODULE_CHILD = _TIMM_HELPERS + textwrap.dedent("""
    import keras_cnns  # TensorFlow after timm
    from keras_cnns.bridges import from_timm
    name, (h, w) = sys.argv[1], json.loads(sys.argv[2])
    module, x, y = reference(name, 0, (2, 3, h, w), True)
    model = keras_cnns.create_model(name, classes=1000, input_shape=(h, w, 3),
                                    classifier_activation=None)
    from_timm(module, model)  # no bn_epsilon: read from the module
    got = np.asarray(model(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), training=False))
    try:  # the module's eps (1e-5) disagrees with a bn_epsilon of 1e-3
        from_timm(module, model, bn_epsilon=1e-3)
        error = ""
    except ValueError as exc:
        error = str(exc)
    eps = sorted({m.eps for m in module.modules()
                  if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)})
    print("RESULTS", json.dumps(dict(diff=float(np.abs(got - y).max()),
                                     scale=float(np.abs(y).max()), eps=eps, error=error)))
""")


@needs_timm
def test_timm_module_is_a_source():
    proc = subprocess.run([sys.executable, "-c", _MODULE_CHILD, "cspresnext50", json.dumps(SIZE)],
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(proc.stdout.split("RESULTS")[-1])
    print(f"\n[timm bridge] cspresnext50 from the module: max |ours - timm| = {r['diff']:.3g} "
          f"(max |logit| = {r['scale']:.3g})")
    assert r["eps"] == [1e-5]
    assert r["scale"] > 1e-2 and r["diff"] <= ATOL
    assert "`bn_epsilon` is 0.001 but the torch module's BatchNorm" in r["error"]


# ----------------------------------------------------------------------------------------------
# Without torch: a timm-layout state dict written from our own weights, and the error paths
# ----------------------------------------------------------------------------------------------

_TORCH_NAME = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
               "moving_mean": "running_mean", "moving_variance": "running_var"}
# Small members of the registered families (the registered names, so their maps apply): the
# error paths need the layout, not the size.
SMALL = dict(widths=(64, 128, 256, 512), depths=(1, 1, 1, 1), input_shape=(32, 32, 3),
             classes=10)
SMALL_DARK = dict(widths=(16, 32, 64, 128, 256), input_shape=(32, 32, 3), classes=10)


def _timm_layout(model):
    """Our weights as the timm state dict the registered map expects (distinct random values)."""
    rng = np.random.default_rng(0)
    layers = {layer.name: layer for layer in weighted_layers(model)}
    state = {}
    for k_name, prefix in timm_names(model):
        for v in layers[k_name].weights:
            short = v.path.rsplit("/", 1)[-1]
            a = rng.uniform(0.5, 1.5, size=v.shape).astype("float32")
            state[f"{prefix}.{_TORCH_NAME[short]}"] = a.transpose(3, 2, 0, 1) if a.ndim == 4 \
                else (a.T if a.ndim == 2 else a)
    return state


def _snapshot(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def _unchanged(model, before):
    return all(np.array_equal(a, keras.ops.convert_to_numpy(v))
               for a, v in zip(before, model.weights))


def _kernel(model, name):
    return keras.ops.convert_to_numpy(model.get_layer(name).kernel)


def test_registered_maps_cover_every_weighted_layer():
    for model in (CSPNet("cspresnet50", **SMALL),
                  CSPNet("cspdarknet53", depths=(1, 2, 1, 1, 1), **SMALL_DARK),
                  Darknet(**SMALL_DARK)):
        pairs = registered_names(model, "timm")
        assert sorted(k for k, _ in pairs) == sorted(l.name for l in weighted_layers(model))
        assert len({r for _, r in pairs}) == len(pairs)
    pairs = dict(registered_names(CSPNet("cspresnext50", **SMALL), "timm"))
    assert pairs["stem_conv1_conv"] == "stem.conv1.conv"
    assert pairs["stages_1_conv_down_conv"] == "stages.1.conv_down.conv"
    assert pairs["stages_1_conv_transition_b_bn"] == "stages.1.conv_transition_b.bn"
    assert pairs["stages_3_conv_transition_conv"] == "stages.3.conv_transition.conv"
    assert pairs["stages_0_blocks_0_conv2_conv"] == "stages.0.blocks.0.conv2.conv"
    assert pairs["head_fc"] == "head.fc"
    assert "stages_0_conv_down_conv" not in pairs  # stage 0 keeps the resolution: no conv_down


def test_round_trip_through_timm_layout(tmp_path):
    model = CSPNet("cspresnext50", **SMALL)
    state = _timm_layout(model)
    assert state["stages.0.blocks.0.conv2.conv.weight"].shape == (32, 1, 3, 3)  # 32 groups
    from_timm(state, model)
    np.testing.assert_array_equal(_kernel(model, "stages_2_blocks_0_conv2_conv"),
                                  state["stages.2.blocks.0.conv2.conv.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(_kernel(model, "head_fc"), state["head.fc.weight"].T)
    bn = model.get_layer("stages_1_conv_exp_bn")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn.moving_variance),
                                  state["stages.1.conv_exp.bn.running_var"])
    # an .npz file, and a model with stochastic depth (its block layers nested in branches)
    path = tmp_path / "state.npz"
    np.savez(path, **state)
    deep = CSPNet("cspresnext50", stochastic_depth=0.8, **SMALL)
    from_timm(path, deep)
    np.testing.assert_array_equal(_kernel(deep, "stages_0_conv_exp_conv"),
                                  _kernel(model, "stages_0_conv_exp_conv"))
    branch = deep.get_layer("stages_2_blocks_0_add").branch
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(
        branch.get_layer("stages_2_blocks_0_conv3_conv").kernel),
        _kernel(model, "stages_2_blocks_0_conv3_conv"))


def test_mismatched_model_names_both_sides_and_copies_nothing():
    state = _timm_layout(CSPNet("cspresnet50", **SMALL))
    other = CSPNet("cspresnext50", **SMALL)  # same stage widths, other inner widths and groups
    before = _snapshot(other)
    with pytest.raises(ValueError, match=r"Cannot copy timm module 'stages\.0\.conv_exp\.conv' "
                                         r"into Keras layer 'stages_0_conv_exp_conv'.*shape"):
        from_timm(state, other)
    assert _unchanged(other, before)
    # another family without a timm map: paired by order, the counts differ
    resnet = keras_cnns.create_model("resnet18", input_shape=(32, 32, 3), classes=10)
    with pytest.raises(ValueError, match=r"different numbers of layers with weights.*timm module"):
        from_timm(state, resnet)
    # Darknet-53's state dict into CSPDarknet-53: modules the CSP model does not have
    dark = Darknet(**SMALL_DARK)
    csp = CSPNet("cspdarknet53", **SMALL_DARK)
    with pytest.raises(ValueError, match=r"timm module 'stages\.0\.conv_exp\.conv'.*not in the "
                                         r"state_dict"):
        from_timm(_timm_layout(dark), csp)


def test_cspdensenet_has_no_timm_counterpart():
    model = CSPDenseNet(depth=121, growth_rate=8, input_shape=(32, 32, 3), classes=10)
    state = _timm_layout(CSPNet("cspresnet50", **SMALL))
    with pytest.raises(ValueError, match=r"`model` must be a timm-layout CSPNet.*stem_conv.*"
                                         r"CSPDenseNet has no timm implementation"):
        from_timm(state, model, family="CSPNet")


def test_strict_and_batch_norm_epsilon():
    model = CSPNet("cspresnet50", **SMALL)
    state = _timm_layout(model)
    before = _snapshot(model)
    with pytest.raises(ValueError, match=r"unused.*'extra'"):
        from_timm({**state, "extra.weight": np.zeros(3, "float32")}, model)
    missing = {k: v for k, v in state.items() if not k.startswith("head.fc")}
    with pytest.raises(ValueError, match=r"head_fc.*head\.fc.*not in the state_dict"):
        from_timm(missing, model)
    with pytest.raises(ValueError, match=r"'stem\.conv1\.bn'.*'stem_conv1_bn'.*epsilon"):
        from_timm(state, model, bn_epsilon=1e-3)
    assert _unchanged(model, before)
    headless = CSPNet("cspresnet50", include_top=False, **{k: v for k, v in SMALL.items()
                                                            if k != "classes"})
    with pytest.raises(ValueError, match=r"head\.fc"):
        from_timm(state, headless)
    from_timm(state, headless, strict=False)
    np.testing.assert_array_equal(_kernel(headless, "stem_conv1_conv"),
                                  state["stem.conv1.conv.weight"].transpose(2, 3, 1, 0))


def test_a_family_map_is_one_registration():
    # What a DenseNet (or any) timm map takes: register_name_map(family, "timm", fn), nothing
    # in the bridge. A renamed model has no registered family: `family` picks the map.
    register_name_map("TimmBridgeTestFamily", "timm", timm_names)
    model = CSPNet("cspresnet50", name="my_cspnet", **SMALL)
    state = _timm_layout(CSPNet("cspresnet50", **SMALL))
    assert registered_names(model, "timm") is None
    from_timm(state, model, family="TimmBridgeTestFamily")
    from_timm(state, model, names=timm_names)
    with pytest.raises(ValueError, match=r"`family` has no registered timm name map.*"
                                         r"Received: family='Nope'"):
        from_timm(state, model, family="Nope")
    with pytest.raises(ValueError, match="already has a timm name map"):
        register_name_map("CSPNet", "timm", lambda m: [])
    # the timm maps are not torchvision's
    assert registered_names(CSPNet("cspresnet50", **SMALL), "torchvision") is None


def test_bad_model_source_and_options():
    state = _timm_layout(CSPNet("cspresnet50", **SMALL))
    model = CSPNet("cspresnet50", **SMALL)
    with pytest.raises(ValueError, match=r"`model` must be a keras\.Model"):
        from_timm(state, "cspresnet50")
    with pytest.raises(ValueError, match=r"`source` must be"):
        from_timm(42, model)
    with pytest.raises(ValueError, match=r"`bn_epsilon`"):
        from_timm(state, model, bn_epsilon=0)
    with pytest.raises(ValueError, match=r"`strict`"):
        from_timm(state, model, strict="yes")


def test_exported_from_the_bridges_package():
    import keras_cnns.bridges as bridges

    assert bridges.from_timm is from_timm and "from_timm" in bridges.__all__
