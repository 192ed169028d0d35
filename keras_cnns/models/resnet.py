"""The residual families: ResNet (v1, v1.5, v2 / pre-activation), CIFAR ResNets, ResNeXt, Wide ResNet.

Papers:

* He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
  (arXiv:1512.03385): ResNet-18/34/50/101/152 (Table 1) and the CIFAR-10 ResNets of Sec. 4.2
  (``6n + 2`` layers: a 3x3 conv with 16 filters, three stages of ``n`` basic blocks with
  16/32/64 filters at 32/16/8 px, global average pooling, a 10-way FC; shortcut option A).
* He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016
  (arXiv:1603.05027): pre-activation units (BN -> ReLU -> conv), ResNet-164 / ResNet-1001 on
  CIFAR (bottleneck units, ``9n + 2`` layers, outputs 64/128/256).
* Xie, Girshick, Dollar, Tu, He, "Aggregated Residual Transformations for Deep Neural
  Networks", CVPR 2017 (arXiv:1611.05431): ResNeXt, the bottleneck with a grouped 3x3
  (cardinality ``C``, width ``d`` per group: "32x4d").
* Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016 (arXiv:1605.07146): WRN-``d``-``k``
  (pre-activation basic blocks of widths 16k/32k/64k, ``d = 6n + 4``, dropout between the two
  convolutions) and the ImageNet WRN-50-2 (the bottleneck's inner width doubled).
* Huang, Sun, Liu, Sedra, Weinberger, "Deep Networks with Stochastic Depth", ECCV 2016
  (arXiv:1603.09382): ``stochastic_depth=p_L`` on any model here drops whole residual
  branches per mini-batch in training (the branch is not computed) with the linear decay rule
  ``p_l = 1 - l/L (1 - p_L)`` (or ``stochastic_depth_rule="uniform"``) and scales each branch
  by ``p_l`` at inference (:class:`keras_cnns.blocks.StochasticDepth`).

Reference code and where it departs from the papers:

* torchvision ``torchvision/models/resnet.py`` (``layout="torchvision"``, the default): ResNet
  "v1.5": the bottleneck strides on its 3x3, not on the first 1x1 as in the paper's released
  Caffe models and keras.applications ``ResNet50`` (``layout="keras"``); the paper's Table 1 does
  not say which layer strides. v1.5 costs more: ResNet-50 4.09 G multiply-adds at 224 against
  3.86 G with the stride on the 1x1 (the paper's Table 1: 3.8 x 10^9 FLOPs). No conv biases, BN
  eps 1e-5 / momentum 0.1 (Keras 0.9), projection shortcuts (option B) only where the shape
  changes, Kaiming-normal (fan-out) kernels. Its
  ``resnext*`` and ``wide_resnet*`` are the same network with ``groups`` / ``width_per_group``
  (our ``base_width``): width ``int(planes * base_width / 64) * groups``.
* keras.applications ``keras/src/applications/resnet.py`` (``ResNet50/101/152``; our
  ``layout="keras"``, ``resnet50_keras`` ...): stride on the first 1x1, every convolution with a
  bias, BN eps 1.001e-5 and Keras' momentum 0.99; layer names ``conv1_pad``, ``conv1_conv``,
  ``conv1_bn``, ``conv1_relu``, ``pool1_pad``, ``pool1_pool``, ``conv{s}_block{b}_{i}_conv`` /
  ``_bn`` / ``_relu``, ``conv{s}_block{b}_0_conv`` / ``_0_bn`` (projection),
  ``conv{s}_block{b}_add``, ``conv{s}_block{b}_out``, ``avg_pool``, ``predictions``; all our
  ImageNet ResNets use these names (:func:`torchvision_names` maps them to torchvision's modules).
* keras.applications ``keras/src/applications/resnet_v2.py`` (``ResNet50V2/101V2/152V2``; our
  :func:`ResNetV2`): pre-activation bottlenecks whose *last* block of a stage strides (on the
  3x3), with a 1x1 max pool as that block's shortcut; the paper (and torchvision) stride in the
  first block. The stem convolution has a bias and no BN / ReLU (the first unit's
  pre-activation follows), ``post_bn`` / ``post_relu`` close the body; convolutions feeding a BN
  have no bias, the others have one; every 3x3 is explicitly padded (``_2_pad``).
* The CIFAR pre-activation code of the Identity Mappings paper (KaimingHe/resnet-1k-layers,
  ``resnet-pre-act.lua``) strides on the first 1x1 of a bottleneck and has no conv biases; the
  first unit of every stage applies its BN -> ReLU before the split, so its projection reads
  the pre-activated input (as in keras.applications ResNetV2 and the Wide ResNet code).
* Wide ResNet code (szagoruyko/wide-residual-networks): no BN before the first block (the
  block's pre-activation is the first BN), projections (1x1, no BN) only where the width
  changes, no conv biases.
* Shortcut A (CIFAR ResNets): the subsampled input (``x[:, ::2, ::2]``) with zero channels
  appended after its own; PyTorch re-implementations that pad half on each side have the same
  count and function up to the channel order.

Every model takes ``features_only=True`` (outputs ``{"P<k>": map}``, the last map at stride
``2^k``; ImageNet models have P1 (the stem convolution) to P5, CIFAR models P0 to P2; the last
level of a pre-activation model is taken after its final BN -> ReLU) and ``out_indices``.
"""

from __future__ import annotations

import re
import sys

import keras
from keras import layers

from keras_cnns._checks import check_bool, check_choice, check_probability, fail, is_int
from keras_cnns.blocks import check_block_args
from keras_cnns.layers.stochastic_depth import model_layers
from keras_cnns.layers import conv_bn_act
from keras_cnns.models._builder import classifier, family_builder
from keras_cnns.models._registry import register_model
from keras_cnns.models._stages import StageSpec, build_stages, check_stochastic_depth, stage_levels
from keras_cnns.layers.batch_norm import BatchNormalization

__all__ = [
    "CifarResNet",
    "PreActResNet",
    "ResNeXt",
    "ResNet",
    "ResNetV2",
    "WideResNet",
    "torchvision_names",
    "wrn",
]

#: depth -> (block kind, blocks per stage) of the ImageNet ResNets (He et al. 2015, Table 1).
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
_IMAGENET_FILTERS = (64, 128, 256, 512)
_CIFAR_FILTERS = (16, 32, 64)
_IMAGENET_MIN_SIZE = 32  # five stride-2 steps: 32 -> 1
_CIFAR_MIN_SIZE = 8      # two stride-2 steps: 8 -> 2

_FAN_OUT_NORMAL = {"class_name": "VarianceScaling",
                   "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}}
_TORCH_BN = dict(bn_epsilon=1e-5, bn_momentum=0.9)
_KERAS_BN = dict(bn_epsilon=1.001e-5, bn_momentum=0.99)

#: Block settings of each layout (see the module docstring).
LAYOUTS = {
    "torchvision": dict(stride_on="3x3", use_bias=False, explicit_pad=False,
                        kernel_initializer=_FAN_OUT_NORMAL, **_TORCH_BN),
    "keras": dict(stride_on="1x1", use_bias=True, explicit_pad=False,
                  kernel_initializer="glorot_uniform", **_KERAS_BN),
    "keras_v2": dict(stride_on="3x3", use_bias=True, explicit_pad=True,
                     kernel_initializer="glorot_uniform", **_KERAS_BN),
    "cifar": dict(stride_on="3x3", use_bias=False, explicit_pad=False,
                  kernel_initializer=_FAN_OUT_NORMAL, **_TORCH_BN),
}

_PAPER_RESNET = ("K. He, X. Zhang, S. Ren, J. Sun. Deep Residual Learning for Image Recognition. "
                 "CVPR 2016 (arXiv:1512.03385)")
_PAPER_PREACT = ("K. He, X. Zhang, S. Ren, J. Sun. Identity Mappings in Deep Residual Networks. "
                 "ECCV 2016 (arXiv:1603.05027)")
_PAPER_RESNEXT = ("S. Xie, R. Girshick, P. Dollar, Z. Tu, K. He. Aggregated Residual "
                  "Transformations for Deep Neural Networks. CVPR 2017 (arXiv:1611.05431)")
_PAPER_WRN = ("S. Zagoruyko, N. Komodakis. Wide Residual Networks. BMVC 2016 "
              "(arXiv:1605.07146)")

_SD_DOC = """\
        stochastic_depth: ``None`` (off) or the survival probability ``p_L`` of the last block,
            in ``(0, 1]`` (Huang et al. 2016 use 0.5).
        stochastic_depth_rule: ``"linear"`` (``p_l = 1 - l/L (1 - p_L)``) or ``"uniform"``."""


def _documented(default_name):
    """End a builder's docstring (after its own Args) with the stochastic-depth and common
    arguments (``{common_args}``, filled in by :func:`family_builder`), Returns and Raises."""
    def decorate(body):
        body.__doc__ = (body.__doc__.rstrip() + "\n" + _SD_DOC + "\n{common_args}\n\n    Returns:\n"
                        f"        A ``keras.Model`` (default name ``\"{default_name}\"``).\n\n"
                        "    Raises:\n        ValueError: an invalid argument (the message names "
                        "it).\n    ")
        return body
    return decorate


def _keras_block_name(stage, block):
    return f"conv{stage + 2}_block{block + 1}"


def _stem_imagenet(x, cfg, preact):
    """``conv1_pad/conv/bn/relu`` (7x7/2, 64) + ``pool1_pad/pool1_pool`` (3x3/2 max)."""
    x = conv_bn_act(
        x, 64, 7, strides=2, padding=3, use_bias=cfg["use_bias"], use_bn=not preact,
        activation=None if preact else "relu", bn_momentum=cfg["bn_momentum"],
        bn_epsilon=cfg["bn_epsilon"], kernel_initializer=cfg["kernel_initializer"], name="conv1",
        layer_names={"act": "conv1_relu"},
    )
    features = {"P1": x}
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x), features


def _stem_cifar(x, cfg, preact):
    """``conv1_conv`` (3x3, 16) [+ ``conv1_bn`` + ``conv1_relu`` in post-activation nets]."""
    x = conv_bn_act(
        x, 16, 3, strides=1, padding="same", use_bias=False, use_bn=not preact,
        activation=None if preact else "relu", bn_momentum=cfg["bn_momentum"],
        bn_epsilon=cfg["bn_epsilon"], kernel_initializer=cfg["kernel_initializer"], name="conv1",
        layer_names={"act": "conv1_relu"},
    )
    return x, {}


def _network(ctx, *, stages, layout, stem, level, preact, shortcut, dropout, stochastic_depth,
             stochastic_depth_rule, default_shape, min_size, default_name):
    """Check the family knobs, then build stem -> stages [-> post_bn/post_relu] -> head or
    features (``ctx``: the :class:`~keras_cnns.models._builder.BuildContext`)."""
    cfg = LAYOUTS[layout]
    p_last, rule = check_stochastic_depth(stochastic_depth, stochastic_depth_rule)
    block_kwargs = dict(cfg, shortcut=shortcut, dropout=dropout)
    for spec in stages:
        check_block_args(spec.block, spec.filters, stride=spec.stride, groups=spec.groups,
                         base_width=spec.base_width, **dict(block_kwargs, **spec.kwargs))
    _allow_graph_depth(sum(spec.blocks for spec in stages))
    x, features = stem(ctx.start(default_shape=default_shape, min_size=min_size), cfg, preact)
    x, features = build_stages(
        x, stages, block_kwargs=block_kwargs, stochastic_depth=p_last, stochastic_depth_rule=rule,
        name_fn=_keras_block_name, level=level, features=features,
    )
    if preact:
        x = BatchNormalization(axis=-1, momentum=cfg["bn_momentum"],
                               epsilon=cfg["bn_epsilon"], name="post_bn")(x)
        x = layers.ReLU(name="post_relu")(x)
        features[f"P{max(stage_levels(stages, level))}"] = x

    def head(x):
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return classifier(x, ctx.classes, ctx.classifier_activation)

    return ctx.finish(x, head, default_name=default_name, features=features)


def _allow_graph_depth(num_blocks):
    """Keras walks a functional graph recursively (building, cloning, saving): ResNet-1202's
    ~4,000 layers in a chain exceed Python's default recursion limit of 1,000 frames."""
    needed = 5_000 + 30 * num_blocks
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


def _imagenet(ctx, depth, *, layout, groups=1, base_width=64, shortcut="B", dropout=0.0,
              stochastic_depth=None, stochastic_depth_rule="linear", default_name, preact=False):
    kind, counts = IMAGENET_DEPTHS[depth]
    first = not preact  # keras.applications ResNetV2 strides in the last block of a stage
    stages = [StageSpec(("preact_" if preact else "") + kind, n, f, stride=s, groups=groups,
                        base_width=base_width, stride_block="first" if first else "last")
              for n, f, s in zip(counts, _IMAGENET_FILTERS, (1, 2, 2, 2) if first else (2, 2, 2, 1))]
    return _network(
        ctx, stages=stages, layout=layout, stem=_stem_imagenet, level=2, preact=preact,
        shortcut=shortcut, dropout=dropout, stochastic_depth=stochastic_depth,
        stochastic_depth_rule=stochastic_depth_rule, default_shape=(224, 224, 3),
        min_size=_IMAGENET_MIN_SIZE, default_name=default_name,
    )


def _cifar(ctx, kind, n, widths, *, stride_on="3x3", preact, default_name, **knobs):
    stages = [StageSpec(kind, n, f, stride=s, options={"stride_on": stride_on})
              for f, s in zip(widths, (1, 2, 2))]
    return _network(ctx, stages=stages, layout="cifar", stem=_stem_cifar, level=0, preact=preact,
                    default_shape=(32, 32, 3), min_size=_CIFAR_MIN_SIZE,
                    default_name=default_name, **knobs)


def _check_layout(layout):
    return check_choice("layout", layout, ["torchvision", "keras"])


def _is_depth(depth, per_stage, extra):
    return is_int(depth) and depth > extra and (depth - extra) % per_stage == 0


@family_builder
@_documented("resnet{depth}")
def ResNet(depth=50, layout="torchvision", groups=1, base_width=64, shortcut="B", dropout=0.0,
           stochastic_depth=None, stochastic_depth_rule="linear", *, ctx):
    """ImageNet ResNet-``depth`` (He et al. 2015), torchvision's v1.5 or keras.applications' v1.

    Input: default ``(224, 224, 3)``, sides >= 32 (or ``None``). Layer names are
    keras.applications' in both layouts (see the module docstring).

    Args:
        depth: 18, 34 (basic blocks), 50, 101 or 152 (bottlenecks).
        layout: ``"torchvision"`` (v1.5: stride on the bottleneck's 3x3, no conv biases, BN
            eps 1e-5 / momentum 0.9) or ``"keras"`` (keras.applications ResNet50/101/152: stride
            on the first 1x1, conv biases, BN eps 1.001e-5 / momentum 0.99).
        groups: groups of the bottleneck 3x3 (ResNeXt's cardinality; bottleneck depths only).
        base_width: torchvision's ``width_per_group`` (bottleneck width
            ``int(planes * base_width / 64) * groups``; 128 is WRN-50-2).
        shortcut: ``"A"``, ``"B"`` (the default: projection where the width changes) or ``"C"``
            (He et al. 2015, Sec. 3.3 / Table 3).
        dropout: dropout rate before each block's last convolution (0: none).
    """
    check_choice("depth", depth, sorted(IMAGENET_DEPTHS))
    return _imagenet(ctx, depth, layout=_check_layout(layout), groups=groups,
                     base_width=base_width, shortcut=shortcut,
                     dropout=check_probability("dropout", dropout),
                     stochastic_depth=stochastic_depth, stochastic_depth_rule=stochastic_depth_rule,
                     default_name=f"resnet{depth}")


@family_builder
@_documented("resnet{depth}v2")
def ResNetV2(depth=50, shortcut="B", stochastic_depth=None, stochastic_depth_rule="linear", *, ctx):
    """keras.applications ResNet50V2 / 101V2 / 152V2: pre-activation ResNet (He et al. 2016).

    Layout and layer names of ``keras/src/applications/resnet_v2.py`` (see the module
    docstring: the last block of a stage strides, conv biases where no BN follows, explicit
    padding, ``post_bn`` / ``post_relu``). Input: default ``(224, 224, 3)``, sides >= 32.

    Args:
        depth: 50, 101 or 152.
        shortcut: ``"B"`` (keras.applications: projection in the first block of a stage,
            strided 1x1 max pool in the last), ``"A"`` or ``"C"``.
    """
    check_choice("depth", depth, [50, 101, 152])
    return _imagenet(ctx, depth, layout="keras_v2", shortcut=shortcut, preact=True,
                     stochastic_depth=stochastic_depth, stochastic_depth_rule=stochastic_depth_rule,
                     default_name=f"resnet{depth}v2")


@family_builder
@_documented("resnext{depth}_{cardinality}x{base_width}d")
def ResNeXt(depth=50, cardinality=32, base_width=4, layout="torchvision", shortcut="B",
            stochastic_depth=None, stochastic_depth_rule="linear", *, ctx):
    """ResNeXt-``depth`` ``cardinality`` x ``base_width`` d (Xie et al. 2017).

    The grouped-convolution form of the aggregated transformation (the paper's Fig. 3c, as
    torchvision ``resnext50_32x4d`` / ``resnext101_32x8d`` / ``resnext101_64x4d``): a ResNet
    bottleneck whose 3x3 has ``cardinality`` groups of ``base_width`` channels per 64 planes.
    Input: default ``(224, 224, 3)``, sides >= 32.

    Args:
        depth: 50, 101 or 152.
        cardinality: groups of the 3x3 convolution.
        base_width: channels per group at the first stage (``d``).
        layout: ``"torchvision"`` or ``"keras"`` (see :func:`ResNet`).
        shortcut: ``"A"``, ``"B"`` or ``"C"`` (see :func:`ResNet`).
    """
    check_choice("depth", depth, [50, 101, 152])
    for arg, value in (("cardinality", cardinality), ("base_width", base_width)):
        if not is_int(value) or value < 1:
            fail(arg, "must be a positive integer", value)
    return _imagenet(ctx, depth, layout=_check_layout(layout), groups=cardinality,
                     base_width=base_width, shortcut=shortcut, stochastic_depth=stochastic_depth,
                     stochastic_depth_rule=stochastic_depth_rule,
                     default_name=f"resnext{depth}_{cardinality}x{base_width}d")


@family_builder(classes=10)
@_documented("resnet{depth}")
def CifarResNet(depth=20, shortcut="A", stochastic_depth=None, stochastic_depth_rule="linear", *,
                ctx):
    """The CIFAR-10 ResNets of He et al. 2015, Sec. 4.2: ``depth = 6n + 2`` (20, 32, 44, 56,
    110, 1202), 16/32/64 filters, 32x32 inputs (sides >= 8), 10 classes.

    Args:
        depth: ``6n + 2`` with ``n >= 1``.
        shortcut: ``"A"`` (the paper's CIFAR choice: subsample + zero channels), ``"B"`` or
            ``"C"``.
    """
    if not _is_depth(depth, 6, 2):
        fail("depth", "must be 6n + 2 for an integer n >= 1 (20, 32, 44, 56, 110, 1202)", depth)
    return _cifar(ctx, "basic", (depth - 2) // 6, _CIFAR_FILTERS, preact=False, shortcut=shortcut,
                  dropout=0.0, stochastic_depth=stochastic_depth,
                  stochastic_depth_rule=stochastic_depth_rule, default_name=f"resnet{depth}")


@family_builder(classes=10)
@_documented("preact_resnet{depth}")
def PreActResNet(depth=164, bottleneck=True, shortcut="B", stride_on="1x1", stochastic_depth=None,
                 stochastic_depth_rule="linear", *, ctx):
    """Pre-activation CIFAR ResNets of He et al. 2016 (ResNet-164, ResNet-1001): 32x32 inputs
    (sides >= 8), 10 classes.

    Args:
        depth: ``9n + 2`` with bottleneck units (164, 1001; outputs 64/128/256 channels) or
            ``6n + 2`` with basic units (e.g. 110; 16/32/64 channels).
        bottleneck: bottleneck (True) or basic (False) pre-activation units.
        shortcut: ``"B"`` (the authors' code: projection in the first unit of each stage),
            ``"A"`` or ``"C"``.
        stride_on: where a bottleneck strides: ``"1x1"`` (the authors' code) or ``"3x3"``.
    """
    check_bool("bottleneck", bottleneck)
    per_block, kind = (9, "preact_bottleneck") if bottleneck else (6, "preact_basic")
    if not _is_depth(depth, per_block, 2):
        fail("depth", f"must be {per_block}n + 2 for an integer n >= 1 with "
                      f"bottleneck={bottleneck}", depth)
    return _cifar(ctx, kind, (depth - 2) // per_block, _CIFAR_FILTERS, stride_on=stride_on,
                  preact=True, shortcut=shortcut, dropout=0.0, stochastic_depth=stochastic_depth,
                  stochastic_depth_rule=stochastic_depth_rule,
                  default_name=f"preact_resnet{depth}")


def _check_widening(k):
    if not is_int(k) or k < 1:
        fail("k", "must be a positive integer (the widening factor)", k)
    return int(k)


@family_builder(classes=10)
@_documented("wrn_{depth}_{k}")
def WideResNet(depth=28, k=10, dropout=0.0, shortcut="B", stochastic_depth=None,
               stochastic_depth_rule="linear", *, ctx):
    """CIFAR Wide ResNet WRN-``depth``-``k`` (Zagoruyko & Komodakis 2016).

    ``depth = 6n + 4`` (16, 22, 28, 40, ...): a 3x3 stem of 16 filters, three stages of ``n``
    pre-activation basic blocks with ``16k / 32k / 64k`` filters, dropout between the two
    convolutions, a final BN -> ReLU, global average pooling; 32x32 inputs (sides >= 8), 10
    classes. :func:`wrn` also builds the ImageNet WRN-50-2 / WRN-101-2.

    Args:
        depth: ``6n + 4`` with ``n >= 1``.
        k: widening factor, a positive integer.
        dropout: dropout rate between the convolutions (the paper uses 0.3 on CIFAR).
        shortcut: ``"B"`` (the authors' code: a 1x1 projection where the width changes), ``"A"``
            or ``"C"``.
    """
    k = _check_widening(k)
    dropout = check_probability("dropout", dropout)
    if not _is_depth(depth, 6, 4):
        fail("depth", "must be 6n + 4 for an integer n >= 1 (16, 22, 28, 40, ...); wrn() also "
                      "takes 50 / 101 (ImageNet)", depth)
    return _cifar(ctx, "preact_basic", (depth - 4) // 6, tuple(f * k for f in _CIFAR_FILTERS),
                  preact=True, shortcut=shortcut, dropout=dropout, stochastic_depth=stochastic_depth,
                  stochastic_depth_rule=stochastic_depth_rule, default_name=f"wrn_{depth}_{k}")


def wrn(depth=28, k=10, dropout=0.0, **kwargs):
    """Wide ResNet WRN-``depth``-``k`` (Zagoruyko & Komodakis 2016), CIFAR or ImageNet by depth.

    ``depth = 6n + 4``: :func:`WideResNet` (CIFAR, 10 classes). ``depth`` 50 or 101:
    torchvision's ``wide_resnet{depth}_{k}`` (ImageNet, 1000 classes): :func:`ResNet` with
    ``base_width = 64 k`` (post-activation bottlenecks whose inner width is ``k`` times
    ResNet's; ``dropout`` before each block's last convolution), default name
    ``"wide_resnet{depth}_{k}"``.

    Args:
        depth: ``6n + 4`` (CIFAR) or 50 / 101 (ImageNet).
        k: widening factor, a positive integer.
        dropout: dropout rate (0.3 in the paper's CIFAR runs; torchvision's models have none).
        **kwargs: the other arguments of :func:`WideResNet` / :func:`ResNet`.

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    if depth in (50, 101) and not isinstance(depth, bool):
        k = _check_widening(k)
        kwargs.setdefault("name", None)
        kwargs["name"] = kwargs["name"] or f"wide_resnet{depth}_{k}"
        return ResNet(depth, base_width=64 * k, dropout=dropout, **kwargs)
    return WideResNet(depth, k, dropout, **kwargs)


# ------------------------------------------------------------------------------------------------
# torchvision module names (registered for keras_cnns.from_torchvision in keras_cnns.bridges)
# ------------------------------------------------------------------------------------------------

_BLOCK_LAYER = re.compile(r"conv(\d)_block(\d+)_(\d)_(conv|bn)")


def torchvision_names(model):
    """``[(keras_layer_name, torchvision_module_prefix), ...]`` for a torchvision-layout model.

    Covers every layer with weights of :func:`ResNet` (``layout="torchvision"``),
    :func:`ResNeXt` and the ImageNet :func:`WideResNet`: ``conv1_conv`` -> ``conv1``,
    ``conv1_bn`` -> ``bn1``, ``conv{s}_block{b}_{i}_conv`` / ``_bn`` ->
    ``layer{s-1}.{b-1}.conv{i}`` / ``bn{i}``, ``conv{s}_block{b}_0_conv`` / ``_0_bn`` ->
    ``layer{s-1}.{b-1}.downsample.0`` / ``.1``, ``predictions`` -> ``fc``. With stochastic depth
    the block layers sit inside each block's ``StochasticDepth`` branch model (same names).

    Raises:
        ValueError: the model has no torchvision counterpart (keras.applications layout with
            conv biases, CIFAR or pre-activation networks) or a weighted layer this mapping
            does not know.
    """
    pairs = []
    for layer in model_layers(model):
        if not layer.weights:
            continue
        name = layer.name
        if getattr(layer, "use_bias", False) and isinstance(layer, keras.layers.Conv2D):
            fail("model", "must have torchvision's layout (no conv biases; "
                          f"{name!r} has one)", model.name)
        if name in ("conv1_conv", "conv1_bn", "predictions"):
            pairs.append((name, {"conv1_conv": "conv1", "conv1_bn": "bn1", "predictions": "fc"}[name]))
            continue
        match = _BLOCK_LAYER.fullmatch(name)
        if match is None:
            fail("model", f"must be a torchvision-layout ResNet / ResNeXt / Wide ResNet (layer "
                          f"{name!r} has no torchvision counterpart)", model.name)
        stage, block, index, kind = match.groups()
        prefix = f"layer{int(stage) - 1}.{int(block) - 1}."
        if index == "0":
            pairs.append((name, prefix + ("downsample.0" if kind == "conv" else "downsample.1")))
        else:
            pairs.append((name, prefix + f"{kind}{index}"))
    stem = model.get_layer("conv1_conv") if any(n == "conv1_conv" for n, _ in pairs) else None
    if stem is None or tuple(stem.kernel.shape[:2]) != (7, 7):
        fail("model", "must be an ImageNet ResNet / ResNeXt / Wide ResNet (torchvision has no "
                      "CIFAR ResNets)", model.name)
    return pairs


# ------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------

# Reference figures (exact counts, multiply-adds, the papers' printed counts) and their sources:
# reference_figures.csv.

def _register(name, family, paper, builder, *, shape=(224, 224, 3), min_size=_IMAGENET_MIN_SIZE,
              classes=1000, heavy=False, **kwargs):
    register_model(
        name, family=family, paper=paper, builder=builder, default_input_shape=shape,
        min_input_size=min_size, default_classes=classes, heavy=heavy, **kwargs,
    )


_CIFAR = dict(shape=(32, 32, 3), min_size=_CIFAR_MIN_SIZE, classes=10)

for _depth in (18, 34, 50, 101, 152):  # torchvision layout (v1.5)
    _register(f"resnet{_depth}", "ResNet", _PAPER_RESNET, ResNet, depth=_depth)
for _depth in (50, 101, 152):  # keras.applications layout (v1, conv biases)
    _register(f"resnet{_depth}_keras", "ResNet", _PAPER_RESNET, ResNet, depth=_depth,
              layout="keras")
for _depth in (50, 101, 152):  # keras.applications ResNetV2
    _register(f"resnet{_depth}v2", "ResNetV2", _PAPER_PREACT, ResNetV2, depth=_depth)
for _name, _depth, _card, _width in (("resnext50_32x4d", 50, 32, 4),
                                     ("resnext101_32x8d", 101, 32, 8),
                                     ("resnext101_64x4d", 101, 64, 4)):
    _register(_name, "ResNeXt", _PAPER_RESNEXT, ResNeXt, depth=_depth, cardinality=_card,
              base_width=_width)
for _depth in (50, 101):
    # Wide ResNet, ImageNet (torchvision); wrn(depth, 2) builds the same network, the registry
    # holds the contract builder itself.
    _register(f"wide_resnet{_depth}_2", "WideResNet", _PAPER_WRN, ResNet, depth=_depth,
              base_width=128)
for _depth in (20, 32, 44, 56, 110, 1202):
    _register(f"resnet{_depth}", "ResNet", _PAPER_RESNET, CifarResNet, heavy=_depth > 1000,
              depth=_depth, **_CIFAR)
for _depth in (164, 1001):
    _register(f"preact_resnet{_depth}", "ResNetV2", _PAPER_PREACT, PreActResNet,
              heavy=_depth > 1000, depth=_depth, **_CIFAR)
for _depth, _k in ((16, 8), (28, 10), (40, 4), (40, 1), (40, 2)):
    _register(f"wrn_{_depth}_{_k}", "WideResNet", _PAPER_WRN, WideResNet, depth=_depth, k=_k,
              **_CIFAR)

del _depth, _name, _card, _width, _k
