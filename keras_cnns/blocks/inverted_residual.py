"""The inverted residual block (MBConv) of the MobileNetV2 line.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018
(arXiv:1801.04381), Table 1: a 1x1 expansion to ``expansion * C_in`` channels (BN, activation;
left out when ``expansion == 1``), a ``k x k`` depthwise convolution with the block's stride
(BN, activation), optionally squeeze-and-excitation on the hidden map (MobileNetV3, Howard et
al. 2019, arXiv:1905.02244: reduce to ``make_divisible(hidden * se_ratio, 8)`` with ReLU, gate
with hard-sigmoid), a *linear* 1x1 projection to ``filters`` (BN, no activation), and the identity
skip ``x + branch(x)`` when the stride is 1 and the channels match. With ``survival_prob`` the
skip is a :class:`~keras_cnns.blocks.StochasticDepth` (Huang et al. 2016: a dropped branch is
not computed; blocks without a skip ignore it, as timm's ``drop_path`` does).

Layers (``name`` prefix; each can be renamed through ``layer_names``, which is how
``keras.applications``' ``block_1_expand`` ... names are kept): ``{name}_expand_conv``,
``_expand_bn``, ``_expand_act``, ``_pad`` (stride > 1), ``_dw``, ``_dw_bn``, ``_dw_act``,
``_se`` (the squeeze-and-excitation prefix: ``_se_squeeze``, ``_se_reduce``, ...),
``_project_conv``, ``_project_bn``, ``_drop`` (``drop_rate > 0``), ``_add``.

``padding`` of a strided depthwise convolution: ``"keras"`` is keras.applications'
``correct_pad`` (``ZeroPadding2D(((k//2 - a, k//2), (k//2 - a, k//2)))`` with ``a = 1`` for an
even side, ``0`` for odd, then ``"valid"``), ``"torch"`` is PyTorch's symmetric ``k // 2``. The
two give maps of the same size but shifted by one pixel, so a model follows one of them to match
its reference's outputs.

The depthwise convolution is :func:`depthwise_conv`, the one place that picks its
implementation: :class:`~keras_cnns.layers.GroupedDepthwiseConv2D` (the library's custom op,
kernel ``[k, k, 1, C]``), as MobileNet v1's blocks; it exports with stock ops
(:func:`keras_cnns.ops.stock_ops_only`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import keras

from keras_cnns._checks import check_float, check_positive_int, check_survival_prob, fail, is_int
from keras_cnns.blocks.stochastic_depth import add_residual
from keras_cnns.layers.activations import activation_layer
from keras_cnns.layers.se import squeeze_excite
from keras_cnns.layers.utils import DropPath, make_divisible, sub
from keras_cnns.layers.batch_norm import BatchNormalization

__all__ = ["PADDINGS", "SE_BASES", "depthwise_conv", "inverted_residual_block", "keras_correct_pad"]

PADDINGS = ("keras", "torch")
_ROLES = ("expand_conv", "expand_bn", "expand_act", "pad", "dw", "dw_bn", "dw_act", "se",
          "project_conv", "project_bn", "drop", "add", "branch", "branch_input")
SE_BASES = ("hidden", "input")


def depthwise_conv(kernel_size, *, strides=1, padding="same", kernel_initializer=None,
                   shuffle_groups=1, use_bias=False, name=None):
    """The depthwise convolution of the inverted-residual line (multiplier 1):
    :class:`~keras_cnns.layers.GroupedDepthwiseConv2D`, the custom op (``kernel_initializer``
    ``None``: the layer's default), with ShuffleNet's channel shuffle of ``shuffle_groups``
    groups fused in front. Which kernel runs a plain depthwise convolution on this machine is
    :mod:`keras_cnns.ops.depthwise_dispatch`'s measured choice."""
    from keras_cnns.layers import GroupedDepthwiseConv2D

    init = {} if kernel_initializer is None else {"kernel_initializer": kernel_initializer}
    return GroupedDepthwiseConv2D(None, kernel_size, strides=strides, padding=padding,
                                  groups=None, shuffle_groups=shuffle_groups, use_bias=use_bias,
                                  name=name, **init)


def _pointwise(filters, groups, use_bias, kernel_initializer, name):
    """A 1x1 convolution; grouped ones run on the custom op's grouped path (Keras'
    ``Conv2D(groups=...)`` has no TF CPU kernel outside XLA)."""
    if groups == 1:
        return keras.layers.Conv2D(filters, 1, padding="same", use_bias=use_bias,
                                   kernel_initializer=kernel_initializer, name=name)
    from keras_cnns.layers import GroupedDepthwiseConv2D

    return GroupedDepthwiseConv2D(filters, 1, groups=groups, use_bias=use_bias,
                                  kernel_initializer=kernel_initializer, name=name)


def keras_correct_pad(side: Optional[int], kernel_size: int):
    """keras.applications' ``imagenet_utils.correct_pad`` along one axis: ``(before, after)``
    zero padding for a stride-2 "valid" convolution to give ``ceil(side / 2)`` outputs."""
    adjust = 1 if side is None else 1 - side % 2
    half = kernel_size // 2
    return (half - adjust, half)


def _check(filters, stride, expansion, kernel_size, padding, groups, bn_momentum, bn_epsilon,
           layer_names, se_ratio, expand_divisor, se_base, se_divisor, se_gate, drop_rate,
           survival_prob, pw_groups, use_bias):
    for arg, value in (("filters", filters), ("stride", stride), ("kernel_size", kernel_size)):
        check_positive_int(arg, value)
    check_float("expansion", expansion, 1.0, float("inf"), high_inclusive=False)
    if se_ratio is not None:
        check_float("se_ratio", se_ratio, 0.0, 1.0, low_inclusive=False)
    check_positive_int("expand_divisor", expand_divisor, allow_none=True)
    check_positive_int("se_divisor", se_divisor, allow_none=True)
    check_positive_int("pw_groups", pw_groups)
    if not isinstance(use_bias, bool):
        fail("use_bias", "must be True or False", use_bias)
    if se_base not in SE_BASES:
        fail("se_base", f"must be one of {list(SE_BASES)}", se_base)
    if se_gate not in ("sigmoid", "hard_sigmoid"):
        fail("se_gate", "must be 'sigmoid' or 'hard_sigmoid'", se_gate)
    check_float("drop_rate", drop_rate, 0.0, 1.0, high_inclusive=False)
    if drop_rate > 0 and survival_prob is not None:
        fail("drop_rate", "must be 0 when survival_prob is given (stochastic depth and drop "
                          "connect both act on the skip; pick one)", drop_rate)
    if kernel_size % 2 == 0:
        fail("kernel_size", "must be odd (3, 5, 7, ...)", kernel_size)
    if padding not in PADDINGS:
        fail("padding", f"must be one of {list(PADDINGS)}", padding)
    if groups != 1:
        fail("groups", "must be 1: the inverted residual block has no grouped convolution", groups)
    check_float("bn_momentum", bn_momentum, 0.0, 1.0, high_inclusive=False)
    check_float("bn_epsilon", bn_epsilon, 0.0, low_inclusive=False)
    unknown = sorted(set(layer_names or {}) - set(_ROLES))
    if unknown:
        fail("layer_names", f"has unknown roles {unknown}; the roles are {list(_ROLES)}",
             layer_names)


def inverted_residual_block(x, filters, *, stride=1, expansion=6, kernel_size=3,
                            activation="relu6", se_ratio=None, expand_divisor=None,
                            se_base="hidden", se_divisor=8, se_activation="relu",
                            se_gate="hard_sigmoid", padding="keras", bn_momentum=0.999,
                            bn_epsilon=1e-3, kernel_initializer="glorot_uniform",
                            depthwise_initializer=None, survival_prob=None, drop_rate=0.0,
                            pw_groups=1, use_bias=False, seed=None, groups=1, base_width=None,
                            name=None, layer_names: Optional[Dict[str, Any]] = None):
    """MobileNetV2's inverted residual block on ``x`` (channels last); see the module docstring.

    Args:
        x: input tensor ``[N, H, W, C]`` with known ``C``.
        filters: output channels of the linear projection.
        stride: the depthwise convolution's stride.
        expansion: expansion factor ``t`` >= 1 (may be fractional, as MobileNetV3's 2.3): the
            hidden width is ``round(t * C)``, or ``make_divisible(t * C, expand_divisor)``; 1
            leaves out the 1x1 expansion (the first block of MobileNetV2 / V3).
        kernel_size: odd depthwise kernel size.
        activation: after the expansion and the depthwise convolution (``"relu6"``; V3:
            ``"relu"`` or ``"hard_swish"``).
        se_ratio: ``None`` or the squeeze-and-excitation ratio (V3: 0.25 of the hidden width).
        expand_divisor: ``None`` or the divisor the hidden width is rounded to (V3: 8).
        se_base: the width ``se_ratio`` multiplies: ``"hidden"`` (V3) or ``"input"``
            (EfficientNet's ``filters_in * se_ratio``).
        se_divisor: the SE width is ``make_divisible(base * se_ratio, se_divisor)`` (V3: 8), or
            with ``None`` ``max(1, int(base * se_ratio))`` (EfficientNet).
        se_activation, se_gate: after the SE reduction (``"relu"``; EfficientNet ``"swish"``) and
            its gate (``"hard_sigmoid"``; EfficientNet ``"sigmoid"``).
        padding: ``"keras"`` or ``"torch"``, the strided depthwise padding (module docstring).
        bn_momentum, bn_epsilon: BatchNormalization settings (keras.applications: 0.999, 1e-3;
            torchvision: 0.9, 1e-5).
        kernel_initializer: of the 1x1 convolutions.
        depthwise_initializer: of the depthwise kernel (``None``: the layer's default).
        survival_prob: stochastic depth ``p_l`` (``None``: off); used only when the block has
            its identity skip.
        drop_rate: EfficientNet's drop connect rate in ``[0, 1)`` on the skip block's branch
            (0: off; not together with ``survival_prob``).
        pw_groups: FBNet's ``g``: groups of the 1x1 expansion and projection, and a channel
            shuffle of that many groups before the depthwise convolution (fused into it); 1
            (default) is the plain block. ``C_in``, the hidden width and ``filters`` must be
            divisible by it.
        use_bias: biases on the three convolutions (FBNet's reference has them; default off).
        seed: seed of the stochastic-depth draws.
        groups, base_width: the stage builder's common block arguments; ``groups`` must be 1,
            ``base_width`` is unused.
        name: layer-name prefix (``None``: Keras' automatic names).
        layer_names: ``{role: layer name}`` overrides (roles: see the module docstring).

    Returns:
        ``[N, ceil(H / stride), ceil(W / stride), filters]``.

    Raises:
        ValueError: an invalid argument (the message names it), or ``x`` without a known
            channel count.
    """
    del base_width
    survival_prob = check_survival_prob("survival_prob", survival_prob)
    _check(filters, stride, expansion, kernel_size, padding, groups, bn_momentum, bn_epsilon,
           layer_names, se_ratio, expand_divisor, se_base, se_divisor, se_gate, drop_rate,
           survival_prob, pw_groups, use_bias)
    if seed is not None and not is_int(seed):
        fail("seed", "must be None or an integer", seed)
    channels = x.shape[-1]
    if channels is None:
        fail("x", "must have a known number of channels", tuple(x.shape))
    channels = int(channels)
    names = dict(layer_names or {})

    def name_of(role):
        return names[role] if role in names else sub(name, role)

    def bn(t, role):
        return BatchNormalization(axis=-1, momentum=bn_momentum, epsilon=bn_epsilon,
                                  name=name_of(role))(t)

    hidden = (int(round(expansion * channels)) if expand_divisor is None
              else make_divisible(expansion * channels, expand_divisor))

    skip = stride == 1 and channels == filters
    for arg, width in (("x", channels), ("expansion", hidden), ("filters", filters)):
        if width % pw_groups:
            fail("pw_groups", f"must divide the block's widths (input {channels}, hidden "
                              f"{hidden}, output {filters}; {arg} does not)", pw_groups)

    def branch(t):
        if expansion > 1:
            t = _pointwise(hidden, pw_groups, use_bias, kernel_initializer,
                           name_of("expand_conv"))(t)
            t = activation_layer(activation, name=name_of("expand_act"))(bn(t, "expand_bn"))
        dw_padding = "same"
        if stride > 1:
            if padding == "keras":
                pads = tuple(keras_correct_pad(side, kernel_size) for side in t.shape[1:3])
            else:
                pads = kernel_size // 2
            t = keras.layers.ZeroPadding2D(pads, name=name_of("pad"))(t)
            dw_padding = "valid"
        t = depthwise_conv(kernel_size, strides=stride, padding=dw_padding,
                           kernel_initializer=depthwise_initializer, shuffle_groups=pw_groups,
                           use_bias=use_bias, name=name_of("dw"))(t)
        t = activation_layer(activation, name=name_of("dw_act"))(bn(t, "dw_bn"))
        if se_ratio is not None:
            base = (hidden if se_base == "hidden" else channels) * se_ratio
            se_filters = (max(1, int(base)) if se_divisor is None
                          else make_divisible(base, se_divisor))
            t = squeeze_excite(t, se_filters=se_filters, activation=se_activation, gate=se_gate,
                               name=name_of("se"))
        t = _pointwise(filters, pw_groups, use_bias, kernel_initializer,
                       name_of("project_conv"))(t)
        t = bn(t, "project_bn")
        if drop_rate > 0 and skip:
            t = DropPath(drop_rate, seed=seed, name=name_of("drop"))(t)
        return t

    if skip:
        return add_residual(x, x, branch, name_of=name_of, survival_prob=survival_prob, seed=seed)
    return branch(x)
