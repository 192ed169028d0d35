"""i-RevNet: a deep network that is invertible up to its final projection onto the classes.

Paper: J.-H. Jacobsen, A. Smeulders, E. Oyallon, "i-RevNet: Deep Invertible Networks", ICLR 2018
(arXiv:1802.07088). Reference code: the authors' jhjacobsen/pytorch-i-revnet
(``models/iRevNet.py``, ``models/model_utils.py``, ``CIFAR_main.py``, ``ILSVRC_main.py``,
README); osmr/imgclsmob ``pytorchcv/models/irevnet.py`` (``irevnet301``) builds the same
ImageNet network.

The network (Sec. 3.1-3.2, Fig. 1; ``iRevNet.forward``):

* an optional initial space-to-depth ``S~`` (``init_ds``: 2 = blocks of 2x2, as the official
  ImageNet network; 0 = none, as its CIFAR network), then the split of the channels into two
  halves ``(x_0, x~_0)`` (an invertible linear operator:
  :class:`~keras_cnns.layers.irevnet.ChannelSplit`);
* blocks ``j = 1..J`` (eq. 1): ``x_{j+1} = S_{j+1} x~_j``, ``x~_{j+1} = x_j + F_{j+1}(x~_j)``,
  where ``S`` is the identity or, in the first block of a stage with stride 2, the invertible
  space-to-depth :class:`~keras_cnns.layers.InvertibleDownsampling` (2x2 blocks; its channel
  order is the official ``psi``'s), and ``F`` is the official bottleneck: [BN -> ReLU ->]
  3x3 conv (``channels / mult`` maps, the block's stride) -> BN -> ReLU -> 3x3 conv [->
  dropout] -> BN -> ReLU -> 3x3 conv (``channels`` maps), bias-free, the first BN -> ReLU left
  out in the network's first block. A stage whose first block has stride 1 and more channels
  than its input zero-pads the merged input first (:class:`~keras_cnns.layers.irevnet.InjectivePad`,
  the official ``injective_pad``): that is what makes an i-RevNet injective instead of bijective;
* the merge of the last pair, ``x~_J = [x_J, x~_J]`` (``out_bij`` in the official code: the
  network's final features, which determine the input); the classifier head on it as the
  official code: BN -> ReLU -> global average pooling -> linear.

:func:`invert` reconstructs the input from the final features (``inverse`` in the official
code): each block is undone from its output, ``x~_j = S^{-1} x_{j+1}``,
``x_j = x~_{j+1} - F_{j+1}(x~_j)``, in reverse order, then the split and ``S~``. It reads the
model's layers by name, so it works on a model loaded from a ``.keras`` file too (attributes of a
functional model do not survive saving); :func:`final_features` gives the features of any
i-RevNet model (the trunk output: with ``include_top=False``, ``pooling=None`` the model's own
output).

Registered variants:

* ``irevnet301``: i-RevNet (b), bijective, the official ImageNet configuration (README and
  ``scripts/train_ilsvrc-2012.sh``: nBlocks 6-16-72-6, nStrides 2-2-2-2, nChannels
  24-96-384-1536, init_ds 2, bottleneck mult 4; 3 x 100 convolutions + 1 = 301 layers, the
  imgclsmob name): 125,120,356 parameters, the official code's count and imgclsmob's.
  **Discrepancy: the paper's Table 1 prints 29 M parameters for i-RevNet (b).** No
  configuration of the official code with these blocks comes near it (the widths are forced:
  every stride-2 stage has 4x its predecessor's channels), and the authors' released ImageNet
  model is this one (74.018 % top-1 in their README, the "26.0" error of its table): we build
  the official configuration. Its 3 x 224 x 224 input and its 3072 x 7 x 7 features have the
  same dimension (150,528).
* ``irevnet_injective``: i-RevNet (a), injective. The paper's Table 1 prints 181 M parameters
  for it, but neither the paper's text nor the official repository gives its configuration.
  **Our choice**: the official ImageNet network with its first stage made injective the way the
  official code makes a network injective (its CIFAR network's design): stride 1 instead of 2
  in stage 1, whose first block zero-pads the 12 channels of ``S~`` (at 112 x 112) to 48 instead
  of space-to-depth-ing them (nBlocks 6-16-72-6, nStrides 1-2-2-2, nChannels 24-96-384-1536,
  init_ds 2; the official ``iRevNet`` builds exactly this from these arguments and prints
  "Injective iRevNet"). Features 3072 x 14 x 14 at 224 (4x the input's dimension), about 4x
  (b)'s multiply-adds, 125,121,328 parameters (972 more than (b): the first block's first
  convolution reads 24 channels instead of 6) -- **not** the paper's 181 M, which we could not
  reproduce from any stated configuration. ``IRevNet(init_ds=0, strides=(1, 2, 2, 2))`` is the
  other reading (no initial space-to-depth at all: the input itself zero-padded to 48 channels,
  features 28 x 28, 16x (b)'s multiply-adds, the same parameters).
* ``irevnet_cifar``: the official README's CIFAR-10 network
  (``CIFAR_main.py --nBlocks 18 18 18 --nStrides 1 2 2 --nChannels 16 64 256``, init_ds 0,
  mult 4, dropout 0.1 as ``CIFAR_main.py`` builds it), about 94.5 % on CIFAR-10 per the README.
  Injective: the 3-channel 32 x 32 input is zero-padded to 32 channels; features 512 x 8 x 8.

Batch normalisation: epsilon 1e-5 and PyTorch's default momentum 0.1 (Keras 0.9) in the blocks;
the head's BN has ``momentum=0.9`` in the official code (PyTorch's convention: Keras 0.1),
kept as is. Convolution and linear kernels are drawn as PyTorch's defaults (uniform,
variance ``1 / (3 fan_in)``).

Numerical note: the inverse is exact in exact arithmetic; in floating point each block's
reconstruction error is amplified by ``F``'s gain. In an injective network the channels of the
injective padding are zeros in every training image, so after training the batch
normalisations after ``F``'s convolutions of that half have moving variances near 0 (1 /
sqrt(epsilon) = 316 times per normalisation): recomputing ``F`` on reconstructed, nearly-zero
values there (as the official ``inverse`` does) turned float32 rounding into relative errors
of order 1 on the digits. :func:`invert` sets those channels to their known value 0 before
``F`` (the same map on the features of any input, the left inverse of the padding), which
keeps the error at float rounding (about 1e-7 relative).

Export: the SavedModel and float32 TFLite (TensorFlow's interpreter and LiteRT) reproduce
Keras (irevnet_cifar at 32 x 32: 0 and 1.3e-7). Full-integer int8 TFLite converts, but
XNNPACK refuses to prepare the injective networks: their first block's ``F`` reads the
padding half, identically zero, so its convolutions get degenerate int8 ranges (scale 7.8e-9;
on random and on trained weights alike). Bijective networks have no padding (a small one
converted and ran in int8).

Feature levels: ``P<k>`` is the merged pair at the end of each stage (``stage{s}_merge``),
at reduction ``2^k``; the space-to-depth needs sides divisible by the network's total
reduction (32 for the ImageNet networks, 4 for the CIFAR one), which is also its minimum input
side.
"""

from __future__ import annotations

import re
import sys
from typing import Dict

import keras
import tensorflow as tf
from keras import layers

from keras_cnns._checks import check_bool, check_choice, check_float, check_positive_int, fail, \
    is_int
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.invertible import InvertibleDownsampling
from keras_cnns.layers.irevnet import ChannelSplit, InjectivePad
from keras_cnns.models._builder import family_builder, feature_level
from keras_cnns.models._registry import register_model
from keras_cnns.models.heads import pooled_classifier

__all__ = ["CifarIRevNet", "IRevNet", "CONFIGS", "final_features", "invert", "reconstruct"]

_PAPER = ("J.-H. Jacobsen, A. Smeulders, E. Oyallon. i-RevNet: Deep Invertible Networks. "
          "ICLR 2018 (arXiv:1802.07088)")

#: name -> builder arguments of the registered variants (module docstring).
CONFIGS: Dict[str, dict] = {
    "irevnet301": dict(blocks=(6, 16, 72, 6), strides=(2, 2, 2, 2),
                       channels=(24, 96, 384, 1536), init_ds=2, mult=4),
    "irevnet_injective": dict(blocks=(6, 16, 72, 6), strides=(1, 2, 2, 2),
                              channels=(24, 96, 384, 1536), init_ds=2, mult=4),
    "irevnet_cifar": dict(blocks=(18, 18, 18), strides=(1, 2, 2), channels=(16, 64, 256),
                          init_ds=0, mult=4, dropout_rate=0.1),
}

#: PyTorch's default initialisation of Conv2d / Linear weights (kaiming_uniform_, a = sqrt(5)):
#: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
_TORCH_INIT = {"class_name": "VarianceScaling",
               "config": {"scale": 1.0 / 3.0, "mode": "fan_in", "distribution": "uniform"}}
_BN = dict(epsilon=1e-5, momentum=0.9)


def _check_sequence(arg, value, n, check):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or not len(value):
        fail(arg, "must be a non-empty sequence with one entry per stage", value)
    if n is not None and len(value) != n:
        fail(arg, f"must have one entry per stage, as many as `blocks` ({n})", value)
    for v in value:
        check(v)
    return tuple(int(v) for v in value)


def _check_knobs(blocks, strides, channels, init_ds, mult, dropout_rate, affine_bn):
    def positive(arg):
        def check(v):
            if not is_int(v) or v < 1:
                fail(arg, "must hold positive integers", blocks if arg == "blocks" else channels)
        return check

    blocks = _check_sequence("blocks", blocks, None, positive("blocks"))

    def stride_check(v):
        if v not in (1, 2) or isinstance(v, bool):
            fail("strides", "must hold 1 or 2 (the first block of each stage)", strides)

    strides = _check_sequence("strides", strides, len(blocks), stride_check)
    channels = _check_sequence("channels", channels, len(blocks), positive("channels"))
    check_choice("init_ds", init_ds, [0, 2, 4])
    check_positive_int("mult", mult)
    for c in channels:
        if c // mult < 1:
            fail("mult", f"leaves no bottleneck maps (channels {c} // mult = 0)", mult)
    dropout_rate = check_float("dropout_rate", dropout_rate, low=0.0, high=1.0,
                               high_inclusive=False)
    check_bool("affine_bn", affine_bn)
    return blocks, strides, channels, dropout_rate


def _stage_plan(in_ch, strides, channels):
    """Per stage ``(pad, stride, channels)`` with the official code's rules: a stride-2 stage
    needs ``channels = 2 x`` its input's channels (the space-to-depth of a half); a stride-1
    stage with more channels than its input zero-pads it to ``2 x channels``."""
    plan = []
    for s, (stride, c) in enumerate(zip(strides, channels)):
        if stride == 2:
            if in_ch % 2 or c != 2 * in_ch:
                fail("channels", f"stage {s + 1} has stride 2: the space-to-depth of each half "
                                 f"of its {in_ch} input channels gives {2 * in_ch}, so its "
                                 f"channels must be {2 * in_ch} (and the input channels even)",
                     channels)
            pad = 0
        else:
            if 2 * c < in_ch:
                fail("channels", f"stage {s + 1} (stride 1) must have at least half its {in_ch}"
                                 f" input channels (an i-RevNet cannot drop channels)", channels)
            pad = 2 * c - in_ch
        plan.append((pad, stride, c))
        in_ch = 2 * c
    return plan


def _bottleneck(x, channels, stride, mult, first, dropout_rate, affine_bn, p):
    """The official ``bottleneck_block``: [BN -> ReLU ->] conv3x3/stride -> BN -> ReLU ->
    conv3x3 [-> dropout] -> BN -> ReLU -> conv3x3."""
    mid = channels // mult
    conv = dict(padding="same", use_bias=False, kernel_initializer=_TORCH_INIT)
    bn = dict(center=affine_bn, scale=affine_bn, **_BN)
    if not first:
        x = BatchNormalization(name=f"{p}_bn0", **bn)(x)
        x = layers.ReLU(name=f"{p}_relu0")(x)
    if stride == 2:  # PyTorch's padding=1 with stride 2: one row/column on each side
        x = layers.ZeroPadding2D(1, name=f"{p}_conv1_pad")(x)
        x = layers.Conv2D(mid, 3, strides=2, use_bias=False, kernel_initializer=_TORCH_INIT,
                          name=f"{p}_conv1")(x)
    else:
        x = layers.Conv2D(mid, 3, name=f"{p}_conv1", **conv)(x)
    x = BatchNormalization(name=f"{p}_bn1", **bn)(x)
    x = layers.ReLU(name=f"{p}_relu1")(x)
    x = layers.Conv2D(mid, 3, name=f"{p}_conv2", **conv)(x)
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name=f"{p}_drop")(x)
    x = BatchNormalization(name=f"{p}_bn2", **bn)(x)
    x = layers.ReLU(name=f"{p}_relu2")(x)
    return layers.Conv2D(channels, 3, name=f"{p}_conv3", **conv)(x)


#: The layers of F in call order (those a block has).
_F_LAYERS = ("bn0", "relu0", "conv1_pad", "conv1", "bn1", "relu1", "conv2", "drop", "bn2",
             "relu2", "conv3")


@family_builder
def IRevNet(blocks=(6, 16, 72, 6), strides=(2, 2, 2, 2), channels=(24, 96, 384, 1536),
            init_ds=2, mult=4, dropout_rate=0.0, affine_bn=True, *, ctx):
    """An i-RevNet (Jacobsen et al. 2018) as a functional Keras model; the defaults are the
    official ImageNet network, i-RevNet (b) (``irevnet301``).

    Args:
        blocks: blocks per stage (the official ``nBlocks``).
        strides: 1 or 2 per stage: the stride of its first block (``nStrides``).
        channels: ``F``'s output channels per stage, half the stage's channels
            (``nChannels``). A stride-2 stage must have twice its input's channels (the
            space-to-depth of a half); a stride-1 stage with more zero-pads its input (the
            injective padding).
        init_ds: the initial space-to-depth: 0 (none), 2 or 4 (``init_ds``: the input's
            ``init_ds x init_ds`` blocks become channels).
        mult: the bottleneck's reduction: ``F``'s inner convolutions have
            ``channels // mult`` maps (``bottleneck_mult``).
        dropout_rate: dropout after ``F``'s second convolution, in ``[0, 1)`` (0.1 in the
            official CIFAR script, 0 on ImageNet).
        affine_bn: whether the blocks' batch normalisations have ``gamma`` and ``beta``
            (``affineBN``).
{common_args}

    The input sides must be divisible by the total reduction (``init_ds`` times 2 per stride-2
    stage). With ``include_top=False`` and ``pooling=None`` the output is the invertible final
    features (:func:`invert`).

    Returns:
        A ``keras.Model`` (default name ``irevnet``).

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    return _build(ctx, blocks, strides, channels, init_ds, mult, dropout_rate, affine_bn,
                  default_shape=(224, 224, 3))


@family_builder(classes=10)
def CifarIRevNet(blocks=(18, 18, 18), strides=(1, 2, 2), channels=(16, 64, 256), init_ds=0,
                 mult=4, dropout_rate=0.1, affine_bn=True, *, ctx):
    """An i-RevNet for 32 x 32 images: :func:`IRevNet` with the official README's CIFAR-10
    defaults (``irevnet_cifar``: ``CIFAR_main.py --nBlocks 18 18 18 --nStrides 1 2 2
    --nChannels 16 64 256``, init_ds 0, mult 4, dropout 0.1), default input ``(32, 32, 3)``
    and 10 classes.

    Args:
        blocks, strides, channels, init_ds, mult, dropout_rate, affine_bn: as :func:`IRevNet`.
{common_args}

    Returns:
        A ``keras.Model`` (default name ``irevnet_cifar``).

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    return _build(ctx, blocks, strides, channels, init_ds, mult, dropout_rate, affine_bn,
                  default_shape=(32, 32, 3), default_name="irevnet_cifar")


def _build(ctx, blocks, strides, channels, init_ds, mult, dropout_rate, affine_bn, *,
           default_shape, default_name="irevnet"):
    blocks, strides, channels, dropout_rate = _check_knobs(blocks, strides, channels, init_ds,
                                                           mult, dropout_rate, affine_bn)
    reduction = max(init_ds, 1) * 2 ** strides.count(2)
    # Keras walks a functional graph recursively (building, cloning, saving): i-RevNet-301's
    # ~1,000 layers in a chain come near Python's default limit of 1,000 frames (as ResNet-1202)
    needed = 5_000 + 40 * sum(blocks)
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)
    img_input = ctx.start(default_shape=default_shape, min_size=reduction)
    h, w, c_in = ctx.shape
    for side in (h, w):
        if side is not None and side % reduction:
            fail("input_shape", f"must have sides divisible by {reduction} (the network's "
                                f"space-to-depth reductions)", ctx.input_shape or ctx.shape)
    in_ch = c_in * max(init_ds, 1) ** 2
    plan = _stage_plan(in_ch, strides, channels)

    x = img_input
    if init_ds:
        x = InvertibleDownsampling(init_ds, name="init_psi")(x)
    level = max(init_ds, 1).bit_length() - 1
    features = {}
    first = True
    for s, ((pad, stride, c), n) in enumerate(zip(plan, blocks)):
        for b in range(n):
            p = f"stage{s + 1}_block{b + 1}"
            block_stride = stride if b == 0 else 1
            if b == 0:
                if pad:
                    x = InjectivePad(pad, name=f"{p}_pad")(x)
                x1, x2 = ChannelSplit(name=f"{p}_split")(x)
            fx2 = _bottleneck(x2, c, block_stride, mult, first, dropout_rate, affine_bn, p)
            first = False
            if block_stride == 2:
                x1 = InvertibleDownsampling(2, name=f"{p}_psi1")(x1)
                x2 = InvertibleDownsampling(2, name=f"{p}_psi2")(x2)
            y1 = layers.Add(name=f"{p}_add")([fx2, x1])
            x1, x2 = x2, y1
        x = layers.Concatenate(name=f"stage{s + 1}_merge")([x1, x2])
        level += stride == 2
        features[f"P{level}"] = feature_level(f"P{level}", x)

    def head(t):
        t = BatchNormalization(epsilon=1e-5, momentum=0.1, name="bn")(t)
        t = layers.ReLU(name="relu")(t)
        return pooled_classifier(t, ctx, kernel_initializer=_TORCH_INIT,
                                 bias_initializer=_torch_bias_init(channels[-1] * 2))

    return ctx.finish(x, head, default_name=default_name, features=features)


def _torch_bias_init(fan_in):
    """PyTorch's default Linear bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = float(fan_in) ** -0.5
    return keras.initializers.RandomUniform(-bound, bound)


# ------------------------------------------------------------------------------------------------
# The inverse
# ------------------------------------------------------------------------------------------------

_BLOCK = re.compile(r"^stage(\d+)_block(\d+)_conv3$")


def _structure(model):
    """``(layers by name, [[block prefix, ...] per stage], final merge name)`` of an i-RevNet
    model, read off its layer names."""
    by_name = {layer.name: layer for layer in model.layers}
    found = {}
    for name in by_name:
        m = _BLOCK.match(name)
        if m:
            found.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    if not found or sorted(found) != list(range(1, len(found) + 1)):
        fail("model", "must be an i-RevNet built by keras_cnns (its stage<s>_block<b> layers "
                      "were not found)", getattr(model, "name", model))
    stages = [[f"stage{s}_block{b}" for b in sorted(found[s])] for s in sorted(found)]
    last = f"stage{len(stages)}_merge"
    if last not in by_name:
        fail("model", f"has no layer {last!r}: not an i-RevNet built by keras_cnns",
             model.name)
    return by_name, stages, last


def final_features(model) -> keras.Model:
    """The model from ``model``'s input to its final features (the merged last pair,
    ``stage<S>_merge``: the official ``out_bij``), sharing its layers and weights: what
    :func:`invert` inverts."""
    _, _, last = _structure(model)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, model.get_layer(last).output,
                       name=f"{model.name}_features")


def invert(model, features):
    """The input that gives ``features``: the official ``iRevNet.inverse`` (but for the
    padding's known zeros, module docstring, "Numerical note").

    Args:
        model: an i-RevNet built by :func:`IRevNet` (any head, or none), or loaded from a file.
        features: its final features (:func:`final_features`, or the output of a model built
            with ``include_top=False``), ``(N, h, w, C)``.

    Returns:
        The reconstructed input, a float tensor ``(N, H, W, C_in)``. Every batch normalisation
        runs in inference mode (its moving statistics), as in ``model(x, training=False)``:
        the inverse of that forward pass, exact up to float rounding (about 1e-7 relative in
        float32 for the registered networks).

    Raises:
        ValueError: ``model`` is not an i-RevNet of this library.
    """
    by_name, stages, _ = _structure(model)

    def apply_f(p, t):
        for suffix in _F_LAYERS:
            layer = by_name.get(f"{p}_{suffix}")
            if layer is not None:
                t = layer(t, training=False)
        return t

    x = tf.convert_to_tensor(features)
    for s in reversed(range(len(stages))):
        n = x.shape[-1] // 2
        x2, y1 = x[..., :n], x[..., n:]  # the stage's merge, undone
        pad = by_name.get(f"{stages[s][0]}_pad")
        for p in reversed(stages[s]):
            psi = by_name.get(f"{p}_psi1")
            if psi is not None:
                x2 = psi.inverse(x2)
            if pad is not None and p == stages[s][0]:
                # the stage's first x~ holds the padding's channels: exact zeros in the forward
                # pass; set them so before F (module docstring, "Numerical note")
                keep = max(0, x2.shape[-1] - pad.pad)
                x2 = tf.concat([x2[..., :keep], tf.zeros_like(x2[..., keep:])], axis=-1)
            x1 = y1 - apply_f(p, x2)
            if psi is not None:
                x1 = psi.inverse(x1)
            x2, y1 = x1, x2  # the previous block's output pair (x1, x2) = (its x2, its y1)
        x = tf.concat([x2, y1], axis=-1)  # the stage's split, undone
        if pad is not None:
            x = pad.inverse(x)
    init = by_name.get("init_psi")
    return init.inverse(x) if init is not None else x


def reconstruct(model, x):
    """``invert(model, final_features(model)(x))``: ``x`` through the network and back."""
    features = final_features(model)(x, training=False)
    return invert(model, features)


# reference figures: reference_figures.csv
for _name, _config in CONFIGS.items():
    _cifar = _name == "irevnet_cifar"
    register_model(_name, family="i-RevNet", paper=_PAPER,
                   builder=CifarIRevNet if _cifar else IRevNet,
                   default_input_shape=(32, 32, 3) if _cifar else (224, 224, 3),
                   min_input_size=4 if _cifar else 32, default_classes=10 if _cifar else 1000,
                   # 125 M parameters and 300+ blocks: the generic tests build the ImageNet
                   # networks once for their figures; tests/models/test_irevnet.py runs their
                   # layout with fewer blocks
                   heavy=not _cifar, **_config)
del _name, _config, _cifar
