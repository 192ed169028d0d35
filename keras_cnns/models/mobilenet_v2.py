"""MobileNetV2: inverted residuals with linear bottlenecks, width and resolution multipliers.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018
(arXiv:1801.04381), Table 2: a 3x3 stride-2 stem convolution (32 channels), 17 inverted residual
blocks (:func:`keras_cnns.blocks.inverted_residual_block`) in seven stages ``(t, c, n, s)`` =
(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
(6, 320, 1, 1), a 1x1 convolution to 1280 channels, global average pooling and the classifier;
ReLU6 after every convolution but the projections. The width multiplier ``alpha`` scales every
block's channels to ``make_divisible(int(c * alpha), 8)`` and the stem to
``make_divisible(32 * alpha, 8)``; the last convolution keeps 1280 unless ``alpha > 1``
(``make_divisible(1280 * alpha, 8)``). ``rho`` sets the input side ``round(224 * rho)``.

Layouts (``layout``; both use keras.applications' layer names): ``"keras"`` (default) is
``keras.applications.MobileNetV2`` layer for layer: its names (``Conv1``, ``bn_Conv1``,
``expanded_conv_depthwise``, ``block_1_expand``, ..., ``Conv_1``, ``predictions``),
BatchNormalization ``momentum=0.999, epsilon=1e-3``, the stem's "same" padding and
``correct_pad`` before the strided depthwise convolutions, so its weights copy over one to one (:func:`keras_cnns.from_keras_applications`).
``"torchvision"`` is ``torchvision.models.mobilenet_v2``: BatchNormalization ``epsilon=1e-5``,
``momentum=0.9`` and PyTorch's symmetric padding (stem and strided depthwise), so torchvision
weights give torchvision's outputs (:func:`keras_cnns.from_torchvision`). Both have the same
parameters; their strided convolutions see the input shifted by one pixel.

Counts (``reference_figures.csv``): alpha 1.0: 3,504,872 trainable parameters (torchvision and
keras.applications; 3,538,984 with BN's moving statistics), 300.8 M multiply-adds at 224
(the paper's Table 3: 3.4 M, 300 M); alpha 1.4: 6,108,776 trainable, 582 M. The paper's 6.9 M
for 1.4 is above every implementation (TF-slim's table: 6.06 M); we follow keras.applications.

The depthwise convolutions run on the custom op
(:func:`keras_cnns.blocks.inverted_residual.depthwise_conv`).
"""

from __future__ import annotations

import dataclasses

from keras import layers

from keras_cnns import layers as kl
from keras_cnns._checks import check_choice, check_positive_float, check_probability
from keras_cnns.blocks.inverted_residual import inverted_residual_block
from keras_cnns.layers.utils import make_divisible
from keras_cnns.models._builder import classifier, family_builder
from keras_cnns.models._notation import decode_stages
from keras_cnns.models._registry import register_model
from keras_cnns.models._stages import build_numbered_stages
from keras_cnns.models.mobilenet import resolution_side

__all__ = ["MobileNetV2"]

_PAPER = ("Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018 "
          "(arXiv:1801.04381)")
_MIN_SIZE = 32
#: Table 2 of the paper in the block notation (:mod:`keras_cnns.models._notation`).
ARCH = (
    "ir_r1_k3_s1_e1_c16",
    "ir_r2_k3_s2_e6_c24",
    "ir_r3_k3_s2_e6_c32",
    "ir_r4_k3_s2_e6_c64",
    "ir_r3_k3_s1_e6_c96",
    "ir_r3_k3_s2_e6_c160",
    "ir_r1_k3_s1_e6_c320",
)
LAYOUTS = {
    "keras": dict(bn_momentum=0.999, bn_epsilon=1e-3, padding="keras"),
    "torchvision": dict(bn_momentum=0.9, bn_epsilon=1e-5, padding="torch"),
}


def _keras_names(index):
    """keras.applications' layer names of block ``index`` (0-based over all blocks)."""
    prefix = "expanded_conv_" if index == 0 else f"block_{index}_"
    roles = {"expand_conv": "expand", "expand_bn": "expand_BN", "expand_act": "expand_relu",
             "pad": "pad", "dw": "depthwise", "dw_bn": "depthwise_BN", "dw_act": "depthwise_relu",
             "project_conv": "project", "project_bn": "project_BN", "add": "add",
             "branch": "branch", "branch_input": "branch_input"}
    return {role: prefix + suffix for role, suffix in roles.items()}


@family_builder
def MobileNetV2(alpha=1.0, rho=1.0, layout="keras", dropout=0.0, stochastic_depth=None,
                stochastic_depth_rule="linear", *, ctx):
    """MobileNetV2 (Sandler et al. 2018) as a functional Keras model.

    Args:
        alpha: width multiplier, a finite number > 0 (the paper's 0.35 .. 1.4); channels
            ``make_divisible(int(c * alpha), 8)``.
        rho: resolution multiplier: input side ``round(224 * rho)`` (an alternative to
            ``input_shape``; giving both with ``rho != 1`` is an error).
        layout: ``"keras"`` (keras.applications' names, BN and padding) or ``"torchvision"``
            (see the module docstring).
        dropout: dropout rate before the classifier, in ``[0, 1)`` (keras.applications: none;
            torchvision: 0.2).
        stochastic_depth: ``None`` or the survival probability ``p_L`` of the last block,
            spread over the 17 blocks by ``stochastic_depth_rule`` (``"linear"`` or
            ``"uniform"``); blocks without an identity skip are never dropped.
{common_args}

    Feature levels (``features_only``): P1..P4 are the outputs of the last block at stride
    2, 4, 8, 16 (16, 24, 32, 96 channels at alpha 1), P5 the 1280-channel ``out_relu``.

    The head is ``Conv_1`` (1x1, 1280 channels) -> BN -> ReLU6 -> global average pooling ->
    dropout -> ``Dense`` ``predictions``. Input: default ``(round(224 * rho),) * 2 + (3,)``;
    known sides must be >= 32.

    Returns:
        A ``keras.Model``: class scores ``[N, classes]`` with the top, else the feature map
        ``[N, H/32, W/32, last channels]`` or its pooled vector.

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    alpha = check_positive_float("alpha", alpha)
    rho = check_positive_float("rho", rho)
    layout = check_choice("layout", layout, list(LAYOUTS))
    check_probability("dropout", dropout)
    cfg = LAYOUTS[layout]
    side = resolution_side(ctx, rho, _MIN_SIZE)
    img_input = ctx.start(default_shape=(side, side, 3), min_size=_MIN_SIZE)

    stem = make_divisible(32 * alpha, 8)
    bn = dict(bn_momentum=cfg["bn_momentum"], bn_epsilon=cfg["bn_epsilon"])
    x = kl.conv_bn_act(img_input, stem, 3, strides=2,
                       padding="same" if layout == "keras" else 1, activation="relu6",
                       kernel_initializer="glorot_uniform", **bn, name="Conv1",
                       layer_names={"pad": "Conv1_pad", "conv": "Conv1", "bn": "bn_Conv1",
                                    "act": "Conv1_relu"})
    stages = tuple(dataclasses.replace(s, filters=make_divisible(int(s.filters * alpha), 8))
                   for s in decode_stages(ARCH))
    x, features = build_numbered_stages(
        x, stages, inverted_residual_block, layer_names=_keras_names,
        block_kwargs=dict(padding=cfg["padding"], **bn),
        stochastic_depth=stochastic_depth, stochastic_depth_rule=stochastic_depth_rule, level=1,
    )
    last = make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = kl.conv_bn_act(x, last, 1, activation="relu6", kernel_initializer="glorot_uniform", **bn,
                       name="Conv_1", layer_names={"conv": "Conv_1", "bn": "Conv_1_bn",
                                                   "act": "out_relu"})
    features["P5"] = x  # the end of level 5 is the 1x1 convolution to 1280 channels

    def head(x):
        x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name="dropout")(x)
        return classifier(x, ctx.classes, ctx.classifier_activation)

    return ctx.finish(x, head, default_name=f"mobilenetv2_{alpha:0.2f}_{ctx.shape[0]}",
                      features=features)


# reference figures: reference_figures.csv
for _name, _kwargs in (("mobilenetv2", dict(alpha=1.0)), ("mobilenetv2_1_40", dict(alpha=1.4)),
                       ("mobilenetv2_torchvision", dict(layout="torchvision", dropout=0.2))):
    register_model(_name, family="MobileNetV2", paper=_PAPER, builder=MobileNetV2,
                   default_input_shape=(224, 224, 3), min_input_size=_MIN_SIZE, **_kwargs)
del _name, _kwargs
