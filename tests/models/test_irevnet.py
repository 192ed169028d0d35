"""i-RevNet: the official PyTorch code's parameter counts and outputs, the exact inverse (random
inputs, after training, after a ``.keras`` round trip), and the knobs' errors.

The reference is a transcription of the authors' code (jhjacobsen/pytorch-i-revnet,
``models/iRevNet.py`` and ``models/model_utils.py``: ``irevnet_block``, ``iRevNet``,
``psi``, ``injective_pad``, ``split``, ``merge``), run in a child process that imports only
torch and NumPy (torch after TensorFlow is not safe in one process, see
test_torchvision_bridge.py). It counts the registered configurations' parameters (on the
``meta`` device: no memory), and runs small networks with randomised weights and BatchNorm
statistics (tests/models/_torch_randomise.py): their logits, final features (``out_bij``) and
the official ``inverse`` of those features, which our model must reproduce with the same
weights copied in. The generic matrix (test_models_generic.py, test_contract.py) checks the
registered variants' figures, levels and a training step.
"""

import importlib.util
import json
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
from keras_cnns.models import irevnet
from keras_cnns.models._builder import shapes_only

HAVE_TORCH = importlib.util.find_spec("torch") is not None
RANDOMISE = Path(__file__).with_name("_torch_randomise.py").read_text()

#: Small networks covering every path of the official block: the initial space-to-depth with
#: stride-2 stages (bijective, ``first`` block without pre-activation), and the injective
#: padding of the input with dropout (CIFAR-like; dropout is off in inference).
SMALL = {
    "bijective": (dict(blocks=(2, 1, 2), strides=(2, 2, 2), channels=(24, 96, 384), init_ds=2,
                       mult=4, dropout_rate=0.0), 16, 5),
    "injective": (dict(blocks=(2, 2, 1), strides=(1, 2, 2), channels=(16, 64, 256), init_ds=0,
                       mult=4, dropout_rate=0.1), 16, 5),
    "injective_ds": (dict(blocks=(1, 2), strides=(1, 2), channels=(24, 96), init_ds=2, mult=4,
                          dropout_rate=0.0), 8, 5),
}

_OFFICIAL = textwrap.dedent('''
import torch, torch.nn as nn, torch.nn.functional as F

def split(x):
    n = int(x.size()[1] / 2)
    return x[:, :n, :, :].contiguous(), x[:, n:, :, :].contiguous()

def merge(x1, x2):
    return torch.cat((x1, x2), 1)

class injective_pad(nn.Module):
    def __init__(self, pad_size):
        super().__init__()
        self.pad_size = pad_size
        self.pad = nn.ZeroPad2d((0, 0, 0, pad_size))
    def forward(self, x):
        return self.pad(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
    def inverse(self, x):
        return x[:, :x.size(1) - self.pad_size, :, :]

class psi(nn.Module):
    def __init__(self, block_size):
        super().__init__()
        self.block_size, self.block_size_sq = block_size, block_size * block_size
    def inverse(self, input):
        bl, bl_sq = self.block_size, self.block_size_sq
        bs, new_d, h, w = input.shape[0], input.shape[1] // bl_sq, input.shape[2], input.shape[3]
        return input.reshape(bs, bl, bl, new_d, h, w).permute(0, 3, 4, 1, 5, 2).reshape(
            bs, new_d, h * bl, w * bl)
    def forward(self, input):
        bl, bl_sq = self.block_size, self.block_size_sq
        bs, d, nh, nw = input.shape[0], input.shape[1], input.shape[2] // bl, input.shape[3] // bl
        return input.reshape(bs, d, nh, bl, nw, bl).permute(0, 3, 5, 1, 2, 4).reshape(
            bs, d * bl_sq, nh, nw)

class irevnet_block(nn.Module):
    def __init__(self, in_ch, out_ch, stride=1, first=False, dropout_rate=0., affineBN=True,
                 mult=4):
        super().__init__()
        self.first = first
        self.pad = 2 * out_ch - in_ch
        self.stride = stride
        self.inj_pad = injective_pad(self.pad)
        self.psi = psi(stride)
        if self.pad != 0 and stride == 1:
            in_ch = out_ch * 2
        layers = []
        if not first:
            layers.append(nn.BatchNorm2d(in_ch // 2, affine=affineBN))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(in_ch // 2, int(out_ch // mult), kernel_size=3, stride=stride,
                                padding=1, bias=False))
        layers.append(nn.BatchNorm2d(int(out_ch // mult), affine=affineBN))
        layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(int(out_ch // mult), int(out_ch // mult), kernel_size=3,
                                padding=1, bias=False))
        layers.append(nn.Dropout(p=dropout_rate))
        layers.append(nn.BatchNorm2d(int(out_ch // mult), affine=affineBN))
        layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(int(out_ch // mult), out_ch, kernel_size=3, padding=1,
                                bias=False))
        self.bottleneck_block = nn.Sequential(*layers)
    def forward(self, x):
        if self.pad != 0 and self.stride == 1:
            x = merge(x[0], x[1])
            x = self.inj_pad.forward(x)
            x1, x2 = split(x)
            x = (x1, x2)
        x1, x2 = x[0], x[1]
        Fx2 = self.bottleneck_block(x2)
        if self.stride == 2:
            x1 = self.psi.forward(x1)
            x2 = self.psi.forward(x2)
        y1 = Fx2 + x1
        return (x2, y1)
    def inverse(self, x):
        x2, y1 = x[0], x[1]
        if self.stride == 2:
            x2 = self.psi.inverse(x2)
        Fx2 = - self.bottleneck_block(x2)
        x1 = Fx2 + y1
        if self.stride == 2:
            x1 = self.psi.inverse(x1)
        if self.pad != 0 and self.stride == 1:
            x = merge(x1, x2)
            x = self.inj_pad.inverse(x)
            x1, x2 = split(x)
            x = (x1, x2)
        else:
            x = (x1, x2)
        return x

class iRevNet(nn.Module):
    def __init__(self, nBlocks, nStrides, nClasses, nChannels=None, init_ds=2,
                 dropout_rate=0., affineBN=True, in_shape=None, mult=4):
        super().__init__()
        self.ds = in_shape[2] // 2 ** (nStrides.count(2) + init_ds // 2)
        self.init_ds = init_ds
        self.in_ch = in_shape[0] * 2 ** self.init_ds
        self.nBlocks = nBlocks
        self.first = True
        self.init_psi = psi(self.init_ds)
        self.stack = self.irevnet_stack(irevnet_block, nChannels, nBlocks, nStrides,
                                        dropout_rate=dropout_rate, affineBN=affineBN,
                                        in_ch=self.in_ch, mult=mult)
        self.bn1 = nn.BatchNorm2d(nChannels[-1] * 2, momentum=0.9)
        self.linear = nn.Linear(nChannels[-1] * 2, nClasses)
    def irevnet_stack(self, _block, nChannels, nBlocks, nStrides, dropout_rate, affineBN,
                      in_ch, mult):
        block_list = nn.ModuleList()
        strides, channels = [], []
        for channel, depth, stride in zip(nChannels, nBlocks, nStrides):
            strides = strides + ([stride] + [1] * (depth - 1))
            channels = channels + ([channel] * depth)
        for channel, stride in zip(channels, strides):
            block_list.append(_block(in_ch, channel, stride, first=self.first,
                                     dropout_rate=dropout_rate, affineBN=affineBN, mult=mult))
            in_ch = 2 * channel
            self.first = False
        return block_list
    def forward(self, x):
        n = self.in_ch // 2
        if self.init_ds != 0:
            x = self.init_psi.forward(x)
        out = (x[:, :n, :, :], x[:, n:, :, :])
        for block in self.stack:
            out = block.forward(out)
        out_bij = merge(out[0], out[1])
        out = F.relu(self.bn1(out_bij))
        out = F.avg_pool2d(out, self.ds)
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out, out_bij
    def inverse(self, out_bij):
        out = split(out_bij)
        for i in range(len(self.stack)):
            out = self.stack[-1 - i].inverse(out)
        out = merge(out[0], out[1])
        if self.init_ds != 0:
            x = self.init_psi.inverse(out)
        else:
            x = out
        return x
''')

_CHILD = RANDOMISE + _OFFICIAL + textwrap.dedent('''
import json, sys
import numpy as np

out_dir, counts_wanted, small = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])

def build(cfg, side, classes):
    return iRevNet(nBlocks=list(cfg["blocks"]), nStrides=list(cfg["strides"]), nClasses=classes,
                   nChannels=list(cfg["channels"]), init_ds=cfg["init_ds"],
                   dropout_rate=cfg["dropout_rate"], affineBN=True, in_shape=[3, side, side],
                   mult=cfg["mult"])

counts = {}
for name, (cfg, side, classes) in counts_wanted.items():
    with torch.device("meta"):
        model = build(cfg, side, classes)
    counts[name] = int(sum(p.numel() for p in model.parameters()))
json.dump(counts, open(f"{out_dir}/counts.json", "w"))

torch.manual_seed(0)
for case, (cfg, side, classes) in small.items():
    model = build(cfg, side, classes)
    randomise(model, torch.Generator().manual_seed(1))
    model.eval()
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits, out_bij = model(x)
        back = model.inverse(out_bij)
    state = {k: v.numpy() for k, v in model.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    np.savez(f"{out_dir}/{case}.npz", x=x.numpy(), logits=logits.numpy(),
             out_bij=out_bij.numpy(), back=back.numpy(),
             **{"state/" + k: v for k, v in state.items()})
print("done")
''')


def _official_args(config):
    return dict(blocks=config["blocks"], strides=config["strides"],
                channels=config["channels"], init_ds=config["init_ds"], mult=config["mult"],
                dropout_rate=config.get("dropout_rate", 0.0))


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """The official code's parameter counts of the registered networks and the small cases'
    weights, inputs, logits, features and inverses."""
    if not HAVE_TORCH:
        pytest.skip("torch not installed (pip install -e '.[torch]')")
    out = tmp_path_factory.mktemp("irevnet_official")
    counts = {}
    for name, config in irevnet.CONFIGS.items():
        info = keras_cnns.model_info(name)
        counts[name] = (_official_args(config), info.default_input_shape[0],
                        info.default_classes)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(out), json.dumps(counts),
                           json.dumps(SMALL)], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _nhwc(a):
    return np.ascontiguousarray(np.transpose(a, (0, 2, 3, 1)))


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# ------------------------------------------------------------------------------------------------
# The official code: parameter counts and outputs
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(irevnet.CONFIGS))
def test_counts_equal_the_official_code(name, official):
    counts = json.loads((official / "counts.json").read_text())
    with shapes_only():
        model = keras_cnns.create_model(name)
    assert _trainable(model) == counts[name] == keras_cnns.model_info(name).reference_params
    if name == "irevnet301":  # the README's configuration, imgclsmob's irevnet301
        assert counts[name] == 125_120_356


def _copy_official_weights(model, state, config):
    """The official ``stack.{i}.bottleneck_block.{j}`` modules into our
    ``stage{s}_block{b}_{conv,bn}{k}`` layers; ``bn1`` -> ``bn``, ``linear`` -> ``predictions``."""
    prefixes = [f"stage{s + 1}_block{b + 1}" for s, n in enumerate(config["blocks"])
                for b in range(n)]
    for i, p in enumerate(prefixes):
        t = f"stack.{i}.bottleneck_block"
        if i == 0:
            pairs = {"conv1": 0, "bn1": 1, "conv2": 3, "bn2": 5, "conv3": 7}
        else:
            pairs = {"bn0": 0, "conv1": 2, "bn1": 3, "conv2": 5, "bn2": 7, "conv3": 9}
        for ours, j in pairs.items():
            _set(model.get_layer(f"{p}_{ours}"), state, f"{t}.{j}")
    _set(model.get_layer("bn"), state, "bn1")
    _set(model.get_layer("predictions"), state, "linear")


def _set(layer, state, key):
    if isinstance(layer, keras.layers.BatchNormalization):
        layer.set_weights([state[f"state/{key}.{k}"] for k in
                           ("weight", "bias", "running_mean", "running_var")])
    elif isinstance(layer, keras.layers.Conv2D):
        layer.set_weights([np.transpose(state[f"state/{key}.weight"], (2, 3, 1, 0))])
    else:
        layer.set_weights([state[f"state/{key}.weight"].T, state[f"state/{key}.bias"]])


@pytest.mark.parametrize("case", sorted(SMALL))
def test_outputs_and_inverse_equal_the_official_code(case, official):
    config, side, classes = SMALL[case]
    ref = np.load(official / f"{case}.npz")
    model = irevnet.IRevNet(**config, input_shape=(side, side, 3), classes=classes,
                            classifier_activation=None)
    _copy_official_weights(model, ref, config)
    x = _nhwc(ref["x"])
    logits = model(x, training=False).numpy()
    features = irevnet.final_features(model)(x, training=False).numpy()
    back = irevnet.invert(model, _nhwc(ref["out_bij"])).numpy()
    scale = np.abs(ref["logits"]).max()
    print(f"\n[i-RevNet {case}] max |logits - official| = "
          f"{np.abs(logits - ref['logits']).max():.3g} (scale {scale:.3g}), features "
          f"{np.abs(features - _nhwc(ref['out_bij'])).max():.3g}, inverse "
          f"{np.abs(back - _nhwc(ref['back'])).max():.3g}")
    assert scale > 1e-2
    np.testing.assert_allclose(logits, ref["logits"], atol=1e-4 * max(1.0, scale), rtol=0)
    np.testing.assert_allclose(features, _nhwc(ref["out_bij"]), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(back, _nhwc(ref["back"]), atol=1e-4, rtol=0)
    np.testing.assert_allclose(back, x, atol=1e-4, rtol=0)  # the official inverse is exact too


# ------------------------------------------------------------------------------------------------
# The inverse
# ------------------------------------------------------------------------------------------------

def _relative_error(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def _randomise_bn(model, seed=0):
    """BN statistics and affine parameters away from their initial values (else every BN
    is the identity in inference and the inverse would be tested on an easier network)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.uniform(-0.5, 0.5, c),
                               rng.uniform(-0.5, 0.5, c), rng.uniform(0.5, 1.5, c)])


def test_inverse_of_the_cifar_network_on_random_inputs():
    # irevnet_cifar, all 54 blocks: injective (the input padded from 3 to 32 channels)
    model = keras_cnns.create_model("irevnet_cifar")
    _randomise_bn(model)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    features = irevnet.final_features(model)(x, training=False)
    assert tuple(features.shape) == (2, 8, 8, 512)
    back = irevnet.invert(model, features)
    err = _relative_error(back, x)
    print(f"\n[i-RevNet] irevnet_cifar: relative reconstruction error {err:.3g}")
    assert err <= 1e-5


def test_headless_model_outputs_the_invertible_features_and_survives_saving(tmp_path):
    # a bijective network (initial space-to-depth, every stage strided): input and features
    # have the same dimension; the inverse is read off layer names after a .keras round trip
    model = keras_cnns.create_model("irevnet301", blocks=(1, 2, 1, 1), include_top=False,
                                    input_shape=(32, 32, 3))
    _randomise_bn(model)
    x = np.random.default_rng(1).uniform(0, 1, size=(2, 32, 32, 3)).astype("float32")
    features = model(x, training=False)
    assert tuple(features.shape) == (2, 1, 1, 3072) and features.shape[1:].num_elements() \
        == 32 * 32 * 3
    path = tmp_path / "irevnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for m in (model, loaded):
        assert _relative_error(irevnet.invert(m, features), x) <= 1e-5
    # equal up to float32 rounding: with oneDNN off the built model's plain convolutions run
    # on the custom op (keras_cnns.layers.dispatch_plain_convolutions), the reloaded Keras
    # model's on TensorFlow's kernel (3e-7 apart here)
    np.testing.assert_allclose(irevnet.reconstruct(loaded, x).numpy(),
                               irevnet.reconstruct(model, x).numpy(), rtol=0, atol=1e-5)


def test_inverse_holds_after_training():
    # a few SGD steps at a large rate move every weight and the BN statistics; the inverse of
    # the trained network's inference pass still reconstructs its input
    model = keras_cnns.create_model("irevnet_cifar", blocks=(2, 2, 2), input_shape=(16, 16, 3),
                                    classes=4)
    before = [w.numpy().copy() for w in model.weights]
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, size=(64, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 4, size=64)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    moved = [not np.allclose(a, w.numpy()) for a, w in zip(before, model.weights)]
    assert sum(moved) > 0.9 * len(moved)
    err = _relative_error(irevnet.reconstruct(model, x[:8]), x[:8])
    print(f"\n[i-RevNet] after training: relative reconstruction error {err:.3g}")
    assert err <= 1e-5
    # A long run drives the moving variances of F's normalisations in the padded (always zero)
    # half of the first block to 0 (the digits run of `keras-cnns train`: exactly 0); F's gain
    # there is then ~1e5, and recomputing F on reconstructed near-zeros (the official inverse)
    # gave relative errors of order 1. invert() feeds F the padding's known zeros.
    for name in ("stage1_block1_bn1", "stage1_block1_bn2"):
        bn = model.get_layer(name)
        bn.moving_variance.assign(np.zeros(bn.moving_variance.shape, "float32"))
    err = _relative_error(irevnet.reconstruct(model, x[:8]), x[:8])
    print(f"[i-RevNet] zero-variance normalisations on the padding: error {err:.3g}")
    assert err <= 1e-5


def test_invert_refuses_other_models():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="`model`"):
        irevnet.invert(model, np.zeros((1, 6, 6, 2), "float32"))


# ------------------------------------------------------------------------------------------------
# Layers and knobs
# ------------------------------------------------------------------------------------------------

def test_split_and_pad_layers_invert_exactly():
    from keras_cnns.layers.irevnet import ChannelSplit, InjectivePad

    x = np.random.default_rng(3).normal(size=(2, 4, 4, 5)).astype("float32")
    # the split is ShuffleNet v2's (i-RevNet's channels are even wherever it splits: the
    # builder's channel checks); an odd channel count is a clear error, not an uneven split
    y = np.concatenate([x, x[..., :1]], axis=-1)
    a, b = ChannelSplit()(y)
    np.testing.assert_array_equal(a, y[..., :3])
    np.testing.assert_array_equal(b, y[..., 3:])
    np.testing.assert_array_equal(ChannelSplit().inverse([a, b]), y)
    with pytest.raises(ValueError, match="divisible by `parts`"):
        ChannelSplit()(x)
    pad = InjectivePad(3)
    padded = pad(x)
    assert padded.shape[-1] == 8 and not np.any(padded[..., 5:])
    np.testing.assert_array_equal(pad.inverse(padded), x)
    assert InjectivePad.from_config(pad.get_config()).pad == 3
    with pytest.raises(ValueError, match="`pad`"):
        InjectivePad(0)


@pytest.mark.parametrize("arg, kwargs", [
    ("strides", dict(strides=(2, 2, 2))),                       # 3 entries for 4 stages
    ("channels", dict(channels=(24, 96, 384))),
    ("blocks", dict(blocks=(6, 0, 72, 6))),
    ("blocks", dict(blocks=())),
    ("strides", dict(strides=(2, 3, 2, 2))),
    ("channels", dict(channels=(24, 100, 384, 1536))),          # stride 2 needs 2 x 48 = 96
    ("channels", dict(strides=(1, 2, 2, 2), channels=(4, 8, 16, 32))),  # 12 -> 8 drops channels
    ("init_ds", dict(init_ds=3)),
    ("mult", dict(mult=0)),
    ("mult", dict(mult=32)),                                    # 24 // 32 = 0 maps
    ("dropout_rate", dict(dropout_rate=1.0)),
    ("affine_bn", dict(affine_bn="yes")),
    ("input_shape", dict(input_shape=(48, 48, 3))),             # not divisible by 32
])
def test_bad_knobs_raise(arg, kwargs):
    with pytest.raises(ValueError) as err, shapes_only():
        irevnet.IRevNet(**kwargs)
    assert f"`{arg}`" in str(err.value) and f"Received: {arg}=" in str(err.value), str(err.value)


def test_int8_file_runs_with_the_reference_kernels(tmp_path):
    """Full-integer int8 of an injective i-RevNet converts and runs with TFLite's reference
    kernels (XNNPACK, the default delegate, refuses it: the module docstring), and agrees
    with Keras' float32 logits to within the int8 rounding of a random network."""
    import tensorflow as tf

    from keras_cnns.export._tflite import export_tflite_variants

    keras.utils.set_random_seed(0)
    model = keras_cnns.create_model("irevnet_cifar", blocks=(1, 1, 1), input_shape=(32, 32, 3),
                                    classes=10, classifier_activation=None)
    rng = np.random.default_rng(0)
    calib = rng.random((32, 32, 32, 3), dtype=np.float32)
    path = str(tmp_path / "q.tflite")
    export_tflite_variants(model, {path: "int8"}, representative_dataset=calib)
    interp = tf.lite.Interpreter(
        path, experimental_op_resolver_type=tf.lite.experimental.OpResolverType
        .BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    x = calib[:4]
    scale, zero = inp["quantization"]
    q = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    got = []
    for i in range(len(x)):
        interp.set_tensor(inp["index"], q[i:i + 1])
        interp.invoke()
        o_scale, o_zero = out["quantization"]
        got.append((interp.get_tensor(out["index"]).astype(np.float32) - o_zero) * o_scale)
    got = np.concatenate(got)
    want = np.asarray(model(x, training=False))
    assert np.all(np.isfinite(got))
    spread = float(want.max() - want.min())
    assert spread > 1e-6 and np.max(np.abs(got - want)) <= 0.1 * spread + 2 * out["quantization"][0]
