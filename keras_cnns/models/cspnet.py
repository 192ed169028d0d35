"""Cross Stage Partial networks (CSPResNet-50, CSPResNeXt-50, CSPDarknet-53, CSPDenseNet-201)
and their Darknet-53 baseline.

Papers:

* Wang, Liao, Wu, Chen, Hsieh, Yeh, "CSPNet: A New Backbone that can Enhance Learning
  Capability of CNN", CVPR Workshops 2020 (arXiv:1911.11929): a stage's base map is split in
  two along the channels; one part goes through the stage's blocks, the other crosses the stage
  untouched, and the two are merged by a "partial transition" (Sec. 3.1, Eq. (3): a transition
  on the blocks' output, concatenation with the crossing part, a second transition; Fig. 3 / 5).
* Redmon & Farhadi, "YOLOv3: An Incremental Improvement", arXiv:1804.02767 (2018), Table 1:
  Darknet-53 (a 3x3 stem of 32 filters, five stages of 1, 2, 8, 8, 4 residual units of a 1x1
  halving and a 3x3 restoring convolution, each stage opened by a strided 3x3 convolution).

Reference code and layout: timm 1.0.31 ``timm/models/cspnet.py`` (``CspNet``, the configurations
``cspresnet50``, ``cspresnext50``, ``cspdarknet53``, ``darknet53``; its docstring credits the
authors' Darknet cfg files, WongKinYiu/CrossStagePartialNetworks). :func:`CSPNet` and
:func:`Darknet` build those four networks exactly (the same parameter counts,
``reference_figures.csv``; ``tests/models/test_timm_bridge.py`` copies timm's random weights in
with :func:`keras_cnns.from_timm` and compares outputs):

* every convolution is followed by BatchNorm (eps 1e-5, momentum 0.1 in PyTorch's convention,
  Keras' 0.9) and, unless linear, LeakyReLU with slope 0.01 (timm's ``act_layer='leaky_relu'``,
  ``nn.LeakyReLU``'s default slope; CSPResNet and CSPResNeXt use it too, not ReLU); written
  ``keras.layers.ReLU(negative_slope=0.01)``, which runs ``tf.nn.leaky_relu``;
* PyTorch's symmetric padding: a strided 3x3 (7x7) convolution gets an explicit
  ``ZeroPadding2D`` of 1 (3) on every side; the CSPResNet stem's max-pool (3x3 / 2, padding 1,
  which pads with -inf and follows a LeakyReLU, so zero padding would not do) is a 3x3 / 1
  "same" max-pool (TensorFlow's pool ignores its padding) sampled every other row and column
  by a 1x1 / 2 max-pool: the same windows, for any input size;
* a CSP stage (timm's ``CrossStage``): ``conv_down`` (3x3 / 2, when the stage strides),
  ``conv_exp`` (1x1 to ``expand_ratio x`` the stage width; linear in CSPResNe(X)t,
  ``cross_linear``), the split (the first half crosses, the second half runs the blocks),
  ``conv_transition_b`` (1x1 on the blocks' output), the concatenation ``[crossing, blocks]``
  and ``conv_transition`` (1x1 to the stage width). timm folds the Darknet cfgs' separate
  expansion convolutions into the one ``conv_exp`` and splits its output (its docstring says
  so), so its counts differ from the Darknet models' (the authors' README table: CSPResNeXt-50
  20.50 M against timm's 20,569,896, CSPResNet-50 21.57 M against 21,616,168, CSPDarknet-53
  27.61 M against 27,642,184, Darknet-53 41.57 M against 41,609,928): the csv rows carry
  timm's exact counts and no paper figure;
* residual blocks: timm's ``BottleneckBlock`` (1x1, 3x3 grouped by the cardinality, 1x1 linear,
  + shortcut, LeakyReLU) and ``DarkBlock`` (1x1, 3x3, + shortcut, no activation after the sum).
  Grouped 3x3 convolutions (CSPResNeXt's, in the blocks and in ``conv_down``) run on the
  library's custom op (:func:`keras_cnns.blocks.grouped_conv2d`,
  ``benchmarks/bench_cspresnext.py``);
* timm zero-initialises each residual block's last BatchNorm scale (``zero_init_last``); the
  Keras models start from ones (the weights are the same kind; only the initial values differ).

Layer names are timm's module paths with ``_`` for ``.``, and ``_conv`` / ``_bn`` / ``_act`` for
``ConvNormAct``'s parts: ``stem_conv1_conv`` is ``stem.conv1.conv``,
``stages_2_blocks_0_conv2_bn`` is ``stages.2.blocks.0.conv2.bn``,
``stages_1_conv_transition_b_conv`` is ``stages.1.conv_transition_b.conv``, ``head_fc`` is
``head.fc`` (:func:`timm_names`, registered for :func:`keras_cnns.from_timm`).

CSPDenseNet-201 (:func:`CSPDenseNet`) has no public implementation: it is built from the paper's
description on top of DenseNet-201 (Huang et al. 2017, arXiv:1608.06993, Table 1, torchvision's
layout: 7x7 / 2 stem of 64, max-pool, dense blocks of 6, 12, 48, 32 BN-ReLU-1x1(4k)-BN-ReLU-3x3(k)
layers with growth rate k = 32, ReLU and BN eps 1e-5 as DenseNet). In every stage the base map
(``c`` channels) is split in half (the paper's partial ratio 0.5, Sec. 3.1); the dense block
runs on the second half (``c/2 + L k`` channels out); the partial transition is DenseNet's
transition layer (BN-ReLU-1x1 with its compression 0.5) on the block's output, the
concatenation with the crossing half, and a second BN-ReLU-1x1 to the width DenseNet-201 has
there (``(c + L k) / 2``, then the 2x2 average pool; ``c + L k`` = 1920 in the last stage,
followed by DenseNet's final BN-ReLU). The stage widths (64, 128, 256, 896, 1920) and strides
are DenseNet-201's. Its parameter count (21,283,784) is counted by hand in
``tests/models/test_cspnet.py``.

Feature levels (``features_only``): CSPResNe(X)t P1 (the stem convolution) to P5 (the stage
outputs); CSPDarknet-53 and Darknet-53 P0 (the stride-1 stem) to P5, as timm's
``feature_info``; CSPDenseNet P1 (stem convolution), P2 .. P4 the concatenations of stages 1-3
(before the pooled transition), P5 the final BN-ReLU.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, Optional, Tuple

import keras
from keras import layers

from keras_cnns._checks import check_choice, check_probability, fail, is_int
from keras_cnns.blocks.residual import grouped_conv2d
from keras_cnns.blocks.stochastic_depth import add_residual
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.shuffle import ChannelSplit
from keras_cnns.layers.stochastic_depth import model_layers
from keras_cnns.models._builder import family_builder, feature_level, pooled_classifier
from keras_cnns.models._registry import register_model
from keras_cnns.models._stages import (SplitMerge, Stage, StageSpec, Transition, build_stages,
                                       check_stochastic_depth)

__all__ = ["CSPDenseNet", "CSPNet", "DENSENET_BLOCKS", "Darknet", "LEAKY_SLOPE", "StagePlan",
           "VARIANTS", "stage_plan", "timm_names"]

_PAPER_CSP = ("C.-Y. Wang, H.-Y. M. Liao, Y.-H. Wu, P.-Y. Chen, J.-W. Hsieh, I.-H. Yeh. CSPNet: "
              "A New Backbone that can Enhance Learning Capability of CNN. CVPR Workshops 2020 "
              "(arXiv:1911.11929)")
_PAPER_DARKNET = ("J. Redmon, A. Farhadi. YOLOv3: An Incremental Improvement. arXiv:1804.02767 "
                  "(2018)")

#: timm's ``nn.LeakyReLU`` slope (PyTorch's default ``negative_slope``).
LEAKY_SLOPE = 0.01
_BN = dict(momentum=0.9, epsilon=1e-5)  # PyTorch's BatchNorm2d defaults in Keras' convention
_FAN_OUT_NORMAL = {"class_name": "VarianceScaling",  # timm's kaiming_normal_(mode='fan_out')
                   "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}}
_MIN_SIZE = 32  # five stride-2 steps: 32 -> 1
_TIMM_SHAPE = (256, 256, 3)  # timm's pretrained_cfg input_size of these models

#: timm 1.0.31 ``model_cfgs`` of the four networks (``CspStemCfg`` / ``CspStagesCfg``): the stem
#: (``"resnet"``: 7x7 / 2 of 64 + max-pool; ``"darknet"``: 3x3 / 1 of 32), the stage and block
#: kinds, and per stage the depth, output width, stride and the width ratios.
VARIANTS: Dict[str, dict] = {
    "cspresnet50": dict(stem="resnet", stage="csp", block="bottle", depths=(3, 3, 5, 2),
                        widths=(128, 256, 512, 1024), strides=(1, 2, 2, 2), groups=1,
                        expand_ratio=(2.0,) * 4, bottle_ratio=(0.5,) * 4, block_ratio=(1.0,) * 4,
                        cross_linear=True, down_growth=False),
    "cspresnext50": dict(stem="resnet", stage="csp", block="bottle", depths=(3, 3, 5, 2),
                         widths=(256, 512, 1024, 2048), strides=(1, 2, 2, 2), groups=32,
                         expand_ratio=(1.0,) * 4, bottle_ratio=(1.0,) * 4,
                         block_ratio=(0.5,) * 4, cross_linear=True, down_growth=False),
    "cspdarknet53": dict(stem="darknet", stage="csp", block="dark", depths=(1, 2, 8, 8, 4),
                         widths=(64, 128, 256, 512, 1024), strides=(2,) * 5, groups=1,
                         expand_ratio=(2.0,) + (1.0,) * 4, bottle_ratio=(0.5,) + (1.0,) * 4,
                         block_ratio=(1.0,) + (0.5,) * 4, cross_linear=False, down_growth=True),
    "darknet53": dict(stem="darknet", stage="dark", block="dark", depths=(1, 2, 8, 8, 4),
                      widths=(64, 128, 256, 512, 1024), strides=(2,) * 5, groups=1,
                      expand_ratio=(1.0,) * 5, bottle_ratio=(0.5,) * 5, block_ratio=(1.0,) * 5,
                      cross_linear=False, down_growth=False),
}
_STEMS = {"resnet": (64, 7, 2), "darknet": (32, 3, 1)}  # width, kernel, stride

#: DenseNet's dense layers per block (Huang et al. 2017, Table 1), for :func:`CSPDenseNet`.
DENSENET_BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32),
                   264: (6, 12, 64, 48)}


# ------------------------------------------------------------------------------------------------
# Layers shared by the stages
# ------------------------------------------------------------------------------------------------

def _act(x, slope, name):
    """timm's activation: LeakyReLU(``slope``) (``slope`` 0: ReLU)."""
    return layers.ReLU(negative_slope=slope, name=name)(x)


def _conv_norm_act(x, filters, kernel, *, stride=1, groups=1, slope=LEAKY_SLOPE, name):
    """timm's ``ConvNormAct``: ``{name}_pad`` (strided only: PyTorch's symmetric padding
    ``((stride - 1) + (kernel - 1)) // 2``), ``{name}_conv`` (no bias; grouped on the custom op),
    ``{name}_bn``, ``{name}_act`` (``slope=None``: linear)."""
    padding = "same" if kernel > 1 else "valid"
    if stride > 1:
        x = layers.ZeroPadding2D(((stride - 1) + (kernel - 1)) // 2, name=f"{name}_pad")(x)
        padding = "valid"
    x = grouped_conv2d(filters, kernel, strides=stride, groups=groups, padding=padding,
                       use_bias=False, kernel_initializer=_FAN_OUT_NORMAL, name=f"{name}_conv")(x)
    x = BatchNormalization(axis=-1, **_BN, name=f"{name}_bn")(x)
    return x if slope is None else _act(x, slope, f"{name}_act")


def _max_pool_3x3_s2(x, name):
    """PyTorch's ``MaxPool2d(3, 2, padding=1)`` (-inf padding) for any sign and size: a 3x3 / 1
    "same" max-pool ``{name}_window`` (TF ignores the padded cells) read at every other row and
    column by a 1x1 / 2 max-pool ``{name}``: output ``i`` is the window centred on row ``2i``,
    ``ceil(n / 2)`` rows, as PyTorch's ``floor((n + 2 - 3) / 2) + 1``."""
    x = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_window")(x)
    return layers.MaxPooling2D(1, strides=2, name=name)(x)


def _pre_act_conv(x, filters, name, slope=0.0):
    """DenseNet's BN -> ReLU -> 1x1 convolution: ``{name}_bn``, ``{name}_act``, ``{name}_conv``."""
    x = BatchNormalization(axis=-1, **_BN, name=f"{name}_bn")(x)
    x = _act(x, slope, f"{name}_act")
    return layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal",
                         name=f"{name}_conv")(x)


# ------------------------------------------------------------------------------------------------
# Blocks (build_stages block functions)
# ------------------------------------------------------------------------------------------------

def _check_identity(x, filters, stride, name):
    channels = x.shape[-1]
    if stride != 1 or channels != filters:
        fail("widths", f"give {name} an identity shortcut (input width {channels}, output "
                       f"{filters}, stride {stride}): a residual block keeps its width", filters)


def _bottle_block(x, filters, *, stride, groups, base_width, survival_prob, name, mid,
                  slope=LEAKY_SLOPE, seed=None):
    """timm's ``BottleneckBlock``: ``{name}_conv1`` (1x1 to ``mid``), ``{name}_conv2`` (3x3,
    ``groups``), ``{name}_conv3`` (1x1 to ``filters``, linear), ``{name}_add`` (the identity
    shortcut; a :class:`StochasticDepth` under stochastic depth), ``{name}_act3``."""
    del base_width
    _check_identity(x, filters, stride, name)

    def branch(t):
        t = _conv_norm_act(t, mid, 1, slope=slope, name=f"{name}_conv1")
        t = _conv_norm_act(t, mid, 3, groups=groups, slope=slope, name=f"{name}_conv2")
        return _conv_norm_act(t, filters, 1, slope=None, name=f"{name}_conv3")

    y = add_residual(x, x, branch, name_of=lambda s: f"{name}_{s}", survival_prob=survival_prob,
                     seed=seed)
    return _act(y, slope, f"{name}_act3")


def _dark_block(x, filters, *, stride, groups, base_width, survival_prob, name, mid,
                slope=LEAKY_SLOPE, seed=None):
    """timm's ``DarkBlock`` (Darknet-53's residual unit): ``{name}_conv1`` (1x1 to ``mid``),
    ``{name}_conv2`` (3x3 to ``filters``, ``groups``), ``{name}_add``; no activation after it."""
    del base_width
    _check_identity(x, filters, stride, name)

    def branch(t):
        t = _conv_norm_act(t, mid, 1, slope=slope, name=f"{name}_conv1")
        return _conv_norm_act(t, filters, 3, groups=groups, slope=slope, name=f"{name}_conv2")

    return add_residual(x, x, branch, name_of=lambda s: f"{name}_{s}",
                        survival_prob=survival_prob, seed=seed)


def _dense_layer(x, filters, *, stride, groups, base_width, survival_prob, name, bn_size):
    """torchvision's ``_DenseLayer`` (DenseNet-B): ``{name}_norm1``, ``_relu1``, ``_conv1``
    (1x1 to ``bn_size * filters``), ``_norm2``, ``_relu2``, ``_conv2`` (3x3 to ``filters``, the
    growth rate), ``{name}_concat`` ``[x, new]``."""
    del base_width, stride, groups  # StageSpec defaults (1): a dense layer takes neither
    if survival_prob is not None:
        fail("stochastic_depth", "must be None: dense layers have no residual branch to drop",
             survival_prob)
    t = BatchNormalization(axis=-1, **_BN, name=f"{name}_norm1")(x)
    t = layers.ReLU(name=f"{name}_relu1")(t)
    t = layers.Conv2D(bn_size * filters, 1, use_bias=False, kernel_initializer="he_normal",
                      name=f"{name}_conv1")(t)
    t = BatchNormalization(axis=-1, **_BN, name=f"{name}_norm2")(t)
    t = layers.ReLU(name=f"{name}_relu2")(t)
    t = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                      name=f"{name}_conv2")(t)
    return layers.Concatenate(name=f"{name}_concat")([x, t])


_BLOCK_FNS = {"bottle": _bottle_block, "dark": _dark_block, "dense": _dense_layer}


# ------------------------------------------------------------------------------------------------
# timm's channel plan
# ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class StagePlan:
    """One stage's widths as timm's ``CrossStage`` / ``DarkStage`` compute them.

    Attributes:
        depth, out, stride, groups: blocks, output width, stride, groups of the 3x3s.
        down: ``conv_down``'s output width (0: no ``conv_down``, a stride-1 CSP stage).
        exp: ``conv_exp``'s width (0 in a Darknet stage); each half is ``exp / 2``.
        block_out, mid: the blocks' output and inner widths.
        linear_exp: ``conv_exp`` without activation (timm's ``cross_linear``).
    """

    depth: int
    out: int
    stride: int
    groups: int
    down: int
    exp: int
    block_out: int
    mid: int
    linear_exp: bool


def _round(value):
    return int(round(value))  # timm's int(round(...)) (round half to even)


def stage_plan(variant: str, widths: Optional[Tuple[int, ...]] = None,
               depths: Optional[Tuple[int, ...]] = None) -> Tuple[int, Tuple[StagePlan, ...]]:
    """``(stem_width, stages)``: timm's widths of ``variant`` (a key of :data:`VARIANTS`), with
    the stage output ``widths`` and block ``depths`` optionally replaced.

    Raises:
        ValueError: an unknown ``variant``; ``widths`` / ``depths`` not one positive integer
            per stage; widths that give a zero width, an odd ``conv_exp`` (it is split in
            halves), halves that differ from the blocks' width (their identity shortcuts), or
            widths the groups do not divide (the message names the argument).
    """
    cfg = VARIANTS[check_choice("variant", variant, sorted(VARIANTS))]
    n = len(cfg["depths"])
    for arg, value in (("widths", widths), ("depths", depths)):
        if value is not None and (
                isinstance(value, (str, bytes)) or not hasattr(value, "__len__")
                or len(value) != n or not all(is_int(v) and v >= 1 for v in value)):
            fail(arg, f"must be None or {n} positive integers (one per stage of {variant})",
                 value)
    widths = tuple(int(w) for w in (cfg["widths"] if widths is None else widths))
    depths = tuple(int(d) for d in (cfg["depths"] if depths is None else depths))
    groups = cfg["groups"]
    stem = _STEMS[cfg["stem"]][0]
    prev, plans = stem, []
    for i, (depth, out) in enumerate(zip(depths, widths)):
        stride = cfg["strides"][i]
        if cfg["stage"] == "dark":
            down, exp, half = out, 0, out
        else:
            down = (out if cfg["down_growth"] else prev) if stride > 1 else 0
            exp = _round(out * cfg["expand_ratio"][i])
            half = exp // 2
        block_out = _round(out * cfg["block_ratio"][i])
        mid = _round(block_out * cfg["bottle_ratio"][i])
        where = f"stage {i} of {variant} (widths {widths})"
        if min(exp or 2, half, block_out, mid) < 1 or exp % 2:
            fail("widths", f"give {where} a zero or odd split width: conv_exp {exp}, blocks "
                           f"{block_out} ({mid} inside)", widths)
        if half != block_out:
            fail("widths", f"give {where} blocks of width {block_out} on a half of width {half} "
                           "(their identity shortcuts need equal widths)", widths)
        for width in (prev, down or groups, mid, block_out):
            if width % groups:
                fail("widths", f"must give {where} widths divisible by the {groups} groups "
                               f"(found {width})", widths)
        plans.append(StagePlan(depth, out, stride, groups, down, exp, block_out, mid,
                               cfg["cross_linear"]))
        prev = out
    return stem, tuple(plans)


def _csp_stage(i, plan, block, slope):
    """timm's ``CrossStage`` as a :class:`Stage`: ``pre`` = ``conv_down``; the split =
    ``conv_exp`` + :class:`ChannelSplit` (the second half runs the blocks); the merge =
    ``conv_transition_b``, ``[crossing, blocks]``, ``conv_transition``."""
    name = f"stages_{i}"
    pre = None
    if plan.stride > 1:
        pre = Transition(lambda t: _conv_norm_act(t, plan.down, 3, stride=plan.stride,
                                                  groups=plan.groups, slope=slope,
                                                  name=f"{name}_conv_down"), stride=plan.stride)

    def split(t):
        t = _conv_norm_act(t, plan.exp, 1, slope=None if plan.linear_exp else slope,
                           name=f"{name}_conv_exp")
        crossing, part = ChannelSplit(2, name=f"{name}_split")(t)
        return part, crossing

    def merge(y, crossing):
        y = _conv_norm_act(y, plan.exp // 2, 1, slope=slope, name=f"{name}_conv_transition_b")
        t = layers.Concatenate(name=f"{name}_concat")([crossing, y])
        return _conv_norm_act(t, plan.out, 1, slope=slope, name=f"{name}_conv_transition")

    spec = StageSpec(block, plan.depth, plan.block_out, groups=plan.groups,
                     options={"mid": plan.mid})
    return Stage(spec, pre=pre, split_merge=SplitMerge(split, merge))


def _dark_stage(i, plan, block, slope):
    """timm's ``DarkStage``: ``conv_down`` (3x3 / 2) then the blocks."""
    down = Transition(lambda t: _conv_norm_act(t, plan.down, 3, stride=plan.stride,
                                               groups=plan.groups, slope=slope,
                                               name=f"stages_{i}_conv_down"), stride=plan.stride)
    return Stage(StageSpec(block, plan.depth, plan.block_out, groups=plan.groups,
                           options={"mid": plan.mid}), pre=down)


def _timm_network(ctx, variant, *, widths, depths, dropout, stochastic_depth,
                  stochastic_depth_rule, default_name):
    """Check the knobs, then build timm's ``CspNet`` of ``variant``."""
    stem_width, plans = stage_plan(variant, widths, depths)
    dropout = check_probability("dropout", dropout)
    p_last, rule = check_stochastic_depth(stochastic_depth, stochastic_depth_rule)
    cfg = VARIANTS[variant]
    _, kernel, stride = _STEMS[cfg["stem"]]
    slope = LEAKY_SLOPE
    x = ctx.start(default_shape=_TIMM_SHAPE, min_size=_MIN_SIZE)
    x = _conv_norm_act(x, stem_width, kernel, stride=stride, slope=slope, name="stem_conv1")
    if cfg["stem"] == "resnet":
        features, level = {"P1": x}, 2
        x = _max_pool_3x3_s2(x, "stem_pool")
    else:
        features, level = {}, 0
    make_stage = _csp_stage if cfg["stage"] == "csp" else _dark_stage
    stages = [make_stage(i, plan, cfg["block"], slope) for i, plan in enumerate(plans)]
    x, features = build_stages(
        x, stages, block_fns=_BLOCK_FNS, block_kwargs={"slope": slope},
        stochastic_depth=p_last, stochastic_depth_rule=rule,
        name_fn=lambda s, b: f"stages_{s}_blocks_{b}", level=level, features=features,
    )
    return ctx.finish(x, lambda t: pooled_classifier(t, ctx, dropout, name="head_fc"),
                      default_name=default_name, features=features)


_SD_DOC = """\
        stochastic_depth: ``None`` (off) or the survival probability ``p_L`` of the last
            residual block, in ``(0, 1]`` (timm's ``drop_path_rate`` is ``1 - p_L``; its rule
            is linear per block too).
        stochastic_depth_rule: ``"linear"`` or ``"uniform"``."""


def _documented(default_name):
    def decorate(body):
        body.__doc__ = (body.__doc__.rstrip() + "\n" + _SD_DOC + "\n{common_args}\n\n    Returns:\n"
                        f"        A ``keras.Model`` (default name: {default_name}).\n\n"
                        "    Raises:\n        ValueError: an invalid argument (the message names "
                        "it).\n    ")
        return body
    return decorate


@family_builder
@_documented("``variant``")
def CSPNet(variant="cspresnet50", widths=None, depths=None, dropout=0.0, stochastic_depth=None,
           stochastic_depth_rule="linear", *, ctx):
    """A Cross Stage Partial network (Wang et al. 2020) in timm's layout (module docstring).

    Input: default ``(256, 256, 3)`` (timm's ``input_size`` for these models), sides >= 32.

    Args:
        variant: ``"cspresnet50"``, ``"cspresnext50"`` (32 groups) or ``"cspdarknet53"``
            (timm's configurations; ``"darknet53"``, the baseline without partial stages, is
            :func:`Darknet`).
        widths: ``None`` or the output width of each stage (4 for CSPResNe(X)t-50, 5 for
            CSPDarknet-53), timm's ``out_chs``; the inner widths follow timm's ratios.
        depths: ``None`` or the number of residual blocks of each stage.
        dropout: dropout rate before ``head_fc`` (timm's ``drop_rate``).
    """
    check_choice("variant", variant, [v for v in VARIANTS if v != "darknet53"])
    return _timm_network(ctx, variant, widths=widths, depths=depths, dropout=dropout,
                         stochastic_depth=stochastic_depth,
                         stochastic_depth_rule=stochastic_depth_rule, default_name=variant)


@family_builder
@_documented("``\"darknet53\"``")
def Darknet(depth=53, widths=None, dropout=0.0, stochastic_depth=None,
            stochastic_depth_rule="linear", *, ctx):
    """Darknet-53 (Redmon & Farhadi 2018, Table 1), timm's ``darknet53`` layout: a 3x3 / 1 stem
    of 32, five stages of a 3x3 / 2 ``conv_down`` and 1, 2, 8, 8, 4 ``DarkBlock`` units,
    LeakyReLU(0.01), global average pooling and ``head_fc``.

    Input: default ``(256, 256, 3)``, sides >= 32.

    Args:
        depth: 53.
        widths: ``None`` or the five stage widths (timm's ``out_chs``; the units' 1x1 halves).
        dropout: dropout rate before ``head_fc``.
    """
    check_choice("depth", depth, [53])
    return _timm_network(ctx, "darknet53", widths=widths, depths=None, dropout=dropout,
                         stochastic_depth=stochastic_depth,
                         stochastic_depth_rule=stochastic_depth_rule, default_name="darknet53")


# ------------------------------------------------------------------------------------------------
# CSPDenseNet
# ------------------------------------------------------------------------------------------------

def _dense_stage(i, width, layers_, growth, bn_size, last):
    """A partial dense block and partial transition (module docstring) on a base map of
    ``width`` channels; returns ``(stage, output width)``."""
    name = f"stages_{i}"
    dense_out = width // 2 + layers_ * growth
    out = width + layers_ * growth
    if not last:
        out //= 2

    def split(t):
        crossing, part = ChannelSplit(2, name=f"{name}_split")(t)
        return part, crossing

    def merge(y, crossing):
        y = _pre_act_conv(y, dense_out // 2, f"{name}_transition_b")
        return layers.Concatenate(name=f"{name}_concat")([crossing, y])

    def transition(t):
        t = _pre_act_conv(t, out, f"{name}_transition")
        return t if last else layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(t)

    stage = Stage(StageSpec("dense", layers_, growth, options={"bn_size": bn_size}),
                  post=Transition(transition, stride=1 if last else 2),
                  split_merge=SplitMerge(split, merge))
    return stage, out


@family_builder
def CSPDenseNet(depth=201, growth_rate=32, bn_size=4, dropout=0.0, *, ctx):
    """CSPDenseNet (Wang et al. 2020, Sec. 3.1, Fig. 3 (b)): DenseNet-``depth`` whose dense
    blocks are partial dense blocks with partial transitions (module docstring; no public
    implementation exists: the design and its hand-counted parameters are this library's).

    Input: default ``(224, 224, 3)``, sides >= 32.

    Args:
        depth: 121, 169, 201 or 264 (DenseNet's dense layers per block, Table 1).
        growth_rate: ``k``, the channels each dense layer adds (32).
        bn_size: the dense layers' bottleneck width in units of ``k`` (4: DenseNet-B).
        dropout: dropout rate before the classifier.
{common_args}

    Returns:
        A ``keras.Model`` (default name ``"cspdensenet{depth}"``).

    Raises:
        ValueError: an invalid argument (the message names it), e.g. a ``growth_rate`` that
            makes a stage's base width odd (it is split in halves).
    """
    blocks = DENSENET_BLOCKS[check_choice("depth", depth, sorted(DENSENET_BLOCKS))]
    for arg, value in (("growth_rate", growth_rate), ("bn_size", bn_size)):
        if not is_int(value) or value < 1:
            fail(arg, "must be a positive integer", value)
    dropout = check_probability("dropout", dropout)
    stages, width, widths = [], 64, []
    for i, n in enumerate(blocks):
        if width % 2:
            fail("growth_rate", f"gives stage {i} of cspdensenet{depth} an odd base width "
                                f"{width} (it is split in halves)", growth_rate)
        stage, width = _dense_stage(i, width, n, growth_rate, bn_size, i == len(blocks) - 1)
        stages.append(stage)
        widths.append(width)
    x = ctx.start(default_shape=(224, 224, 3), min_size=_MIN_SIZE)
    x = _conv_norm_act(x, 64, 7, stride=2, slope=0.0, name="stem")
    p1 = x
    x = _max_pool_3x3_s2(x, "stem_pool")
    x, levels = build_stages(x, stages, block_fns=_BLOCK_FNS, level=2,
                             name_fn=lambda s, b: f"stages_{s}_blocks_{b}")
    x = BatchNormalization(axis=-1, **_BN, name="final_bn")(x)
    x = layers.ReLU(name="final_act")(x)
    # Levels after 2x2 average pools (floor): extent 1 + 4 (P3), + 8 (P4), + 16 (P5).
    features = {"P1": p1, "P2": levels["P2"],
                "P3": feature_level("P3", levels["P3"], extent=5),
                "P4": feature_level("P4", levels["P4"], extent=13),
                "P5": feature_level("P5", x, extent=29)}
    return ctx.finish(x, lambda t: pooled_classifier(t, ctx, dropout),
                      default_name=f"cspdensenet{depth}", features=features)


# ------------------------------------------------------------------------------------------------
# timm module names (registered for keras_cnns.from_timm in keras_cnns.bridges)
# ------------------------------------------------------------------------------------------------

_TIMM_LAYER = re.compile(
    r"(?:stem_(conv1)|stages_(\d+)_(?:blocks_(\d+)_(conv[123])"
    r"|(conv_down|conv_exp|conv_transition_b|conv_transition)))_(conv|bn)")


def timm_names(model):
    """``[(keras_layer_name, timm_module_prefix), ...]`` for :func:`CSPNet` / :func:`Darknet`:
    ``stem_conv1_conv`` -> ``stem.conv1.conv``, ``stages_{i}_blocks_{j}_conv{k}_bn`` ->
    ``stages.{i}.blocks.{j}.conv{k}.bn``, ``stages_{i}_conv_exp_conv`` ->
    ``stages.{i}.conv_exp.conv`` (likewise ``conv_down``, ``conv_transition_b``,
    ``conv_transition``), ``head_fc`` -> ``head.fc``. With stochastic depth the block layers sit
    inside each block's ``StochasticDepth`` branch model (same names).

    Raises:
        ValueError: a weighted layer without a timm counterpart (:func:`CSPDenseNet` has none).
    """
    pairs = []
    for layer in model_layers(model):
        if not layer.weights:
            continue
        name = layer.name
        if name == "head_fc":
            pairs.append((name, "head.fc"))
            continue
        match = _TIMM_LAYER.fullmatch(name)
        if match is None:
            fail("model", f"must be a timm-layout CSPNet / Darknet (layer {name!r} has no timm "
                          "counterpart; CSPDenseNet has no timm implementation)", model.name)
        stem, stage, block, block_conv, stage_conv, part = match.groups()
        if stem:
            prefix = f"stem.{stem}"
        elif block is not None:
            prefix = f"stages.{stage}.blocks.{block}.{block_conv}"
        else:
            prefix = f"stages.{stage}.{stage_conv}"
        pairs.append((name, f"{prefix}.{part}"))
    return pairs


# ------------------------------------------------------------------------------------------------
# Registry (figures: reference_figures.csv)
# ------------------------------------------------------------------------------------------------

for _variant in ("cspresnet50", "cspresnext50", "cspdarknet53"):
    register_model(_variant, family="CSPNet", paper=_PAPER_CSP, builder=CSPNet,
                   default_input_shape=_TIMM_SHAPE, min_input_size=_MIN_SIZE, variant=_variant)
register_model("darknet53", family="Darknet", paper=_PAPER_DARKNET, builder=Darknet,
               default_input_shape=_TIMM_SHAPE, min_input_size=_MIN_SIZE, depth=53)
register_model("cspdensenet201", family="CSPNet", paper=_PAPER_CSP, builder=CSPDenseNet,
               default_input_shape=(224, 224, 3), min_input_size=_MIN_SIZE, depth=201)
del _variant
