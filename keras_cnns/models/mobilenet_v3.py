"""MobileNetV3 Large and Small: searched inverted residuals with squeeze-and-excitation and
hard-swish.

Howard et al., "Searching for MobileNetV3", ICCV 2019 (arXiv:1905.02244), Tables 1 and 2: a 3x3
stride-2 stem (16 channels, hard-swish), 15 (Large) or 11 (Small) inverted residual blocks
(:func:`keras_cnns.blocks.inverted_residual_block` with fractional expansions such as 2.3 rounded to
multiples of 8, 3x3 or 5x5 depthwise kernels, squeeze-and-excitation with a hard-sigmoid gate in
some blocks, ReLU in the early blocks and hard-swish later), a 1x1 convolution to 6x the last
block's channels, global average pooling, a 1x1 convolution with bias to 1280 (Large) / 1024
(Small) channels, hard-swish, dropout and the classifier. ``minimalistic=True`` is the paper's
"minimalistic" variant (Sec. 6.1.1 / keras.applications): 3x3 kernels, ReLU, no SE.
``alpha`` scales every block's channels to ``make_divisible(c * alpha, 8)``; the stem stays 16
and the last 1x1 convolution grows only for ``alpha > 1``, as in keras.applications.

Layouts (``layout``): ``"keras"`` (default) is ``keras.applications.MobileNetV3Large/Small``
(``include_preprocessing``: its ``Rescaling(1/127.5, -1)`` input layer; BN ``momentum=0.999,
epsilon=1e-3``; "same" stem and ``correct_pad`` before strided depthwise convolutions), so its
weights copy over in order (:func:`keras_cnns.from_keras_applications`);
``"torchvision"`` is ``torchvision.models.mobilenet_v3_large/small`` (BN ``epsilon=1e-3``,
``momentum=0.99`` in Keras' convention, symmetric padding; no preprocessing layer in its
registered variants), for :func:`keras_cnns.from_torchvision`. The two agree in every weight at
``alpha=1``; for other widths torchvision scales the hidden widths of its table rather than
``expansion * input``, which this builder does not follow.

Counts (``reference_figures.csv``): Large 5,483,032 trainable parameters (5,507,432 with BN's
moving statistics), 216.6 M multiply-adds at 224; Small 2,542,856 / 2,554,968, 56.5 M. The
paper's Table 3 prints 219 M / 5.4 M (Large) and 56 M / 2.5 M (Small); TF-slim's README's 66 M /
2.9 M for Small belongs to an older Small definition.
"""

from __future__ import annotations

import dataclasses

from keras import layers

from keras_cnns import layers as kl
from keras_cnns._checks import check_choice, check_positive_float, check_probability
from keras_cnns.blocks.inverted_residual import inverted_residual_block
from keras_cnns.layers.utils import make_divisible
from keras_cnns.models._builder import family_builder
from keras_cnns.models._notation import decode_stages
from keras_cnns.models._registry import register_model
from keras_cnns.models._stages import build_numbered_stages

__all__ = ["MobileNetV3"]

_PAPER = "Howard et al., Searching for MobileNetV3, ICCV 2019 (arXiv:1905.02244)"
_MIN_SIZE = 32
#: Table 1 (Large) and Table 2 (Small) of the paper, one block per string (the keras.applications
#: block index is the position), in the block notation of :mod:`keras_cnns.models._notation`.
ARCH = {
    "large": (
        "ir_r1_k3_s1_e1_c16_nre",
        "ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre",
        "ir_r1_k5_s2_e3_c40_se0.25_nre", "ir_r2_k5_s1_e3_c40_se0.25_nre",
        "ir_r1_k3_s2_e6_c80_nhs", "ir_r1_k3_s1_e2.5_c80_nhs", "ir_r2_k3_s1_e2.3_c80_nhs",
        "ir_r2_k3_s1_e6_c112_se0.25_nhs",
        "ir_r1_k5_s2_e6_c160_se0.25_nhs", "ir_r2_k5_s1_e6_c160_se0.25_nhs",
    ),
    "small": (
        "ir_r1_k3_s2_e1_c16_se0.25_nre",
        "ir_r1_k3_s2_e4.5_c24_nre", "ir_r1_k3_s1_e3.667_c24_nre",   # 72 / 16, 88 / 24
        "ir_r1_k5_s2_e4_c40_se0.25_nhs", "ir_r2_k5_s1_e6_c40_se0.25_nhs",
        "ir_r2_k5_s1_e3_c48_se0.25_nhs",
        "ir_r1_k5_s2_e6_c96_se0.25_nhs", "ir_r2_k5_s1_e6_c96_se0.25_nhs",
    ),
}
_LAST_POINT = {"large": 1280, "small": 1024}
LAYOUTS = {
    "keras": dict(bn_momentum=0.999, bn_epsilon=1e-3, padding="keras"),
    "torchvision": dict(bn_momentum=0.99, bn_epsilon=1e-3, padding="torch"),
}


def _keras_names(index):
    """keras.applications' layer names of block ``index`` (0-based)."""
    prefix = "expanded_conv_" if index == 0 else f"expanded_conv_{index}_"
    roles = {"expand_conv": "expand", "expand_bn": "expand_bn", "pad": "depthwise_pad",
             "dw": "depthwise", "dw_bn": "depthwise_bn", "se": "squeeze_excite",
             "project_conv": "project", "project_bn": "project_bn", "add": "add"}
    return {role: prefix + suffix for role, suffix in roles.items()}


def _stages(model_size, alpha, minimalistic):
    out = []
    for spec in decode_stages(ARCH[model_size]):
        options = spec.kwargs
        if minimalistic:
            options.update(kernel_size=3, activation="relu")
            options.pop("se_ratio", None)
        out.append(dataclasses.replace(spec, filters=make_divisible(spec.filters * alpha, 8),
                                       options=options))
    return tuple(out)


@family_builder
def MobileNetV3(model_size="large", alpha=1.0, minimalistic=False, layout="keras",
                include_preprocessing=True, dropout=0.2, stochastic_depth=None,
                stochastic_depth_rule="linear", *, ctx):
    """MobileNetV3 Large or Small (Howard et al. 2019) as a functional Keras model.

    Args:
        model_size: ``"large"`` or ``"small"``.
        alpha: width multiplier, a finite number > 0 (the paper's 0.75, 1.0).
        minimalistic: 3x3 kernels, ReLU everywhere and no squeeze-and-excitation.
        layout: ``"keras"`` or ``"torchvision"`` (see the module docstring).
        include_preprocessing: start with keras.applications' ``Rescaling(1/127.5, -1)``, so the
            model takes pixels in ``[0, 255]``.
        dropout: dropout rate before the classifier, in ``[0, 1)`` (0.2 as both references).
        stochastic_depth: ``None`` or the survival probability ``p_L`` of the last block
            (``stochastic_depth_rule``: ``"linear"`` or ``"uniform"``); blocks without an
            identity skip are never dropped.
{common_args}

    Feature levels (``features_only``): P1..P4 the last block output at each stride, P5 the
    1x1 convolution to 6x the last block's channels (960 / 576 at alpha 1).

    Returns:
        A ``keras.Model``: class scores ``[N, classes]`` with the top, else the last feature
        map or its pooled vector.

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    model_size = check_choice("model_size", model_size, list(ARCH))
    alpha = check_positive_float("alpha", alpha)
    check_choice("minimalistic", minimalistic, [False, True])
    layout = check_choice("layout", layout, list(LAYOUTS))
    check_choice("include_preprocessing", include_preprocessing, [False, True])
    check_probability("dropout", dropout)
    cfg = LAYOUTS[layout]
    bn = dict(bn_momentum=cfg["bn_momentum"], bn_epsilon=cfg["bn_epsilon"])
    act = "relu" if minimalistic else "hard_swish"

    x = img_input = ctx.start(default_shape=(224, 224, 3), min_size=_MIN_SIZE)
    if include_preprocessing:
        x = layers.Rescaling(scale=1.0 / 127.5, offset=-1.0, name="rescaling")(x)
    stem_names = {"conv": "conv", "bn": "conv_bn", "act": "conv_act"}
    if layout == "torchvision":
        stem_names["pad"] = "conv_pad"
    x = kl.conv_bn_act(x, 16, 3, strides=2, padding="same" if layout == "keras" else 1,
                       activation=act, kernel_initializer="glorot_uniform", **bn, name="conv",
                       layer_names=stem_names)

    x, features = build_numbered_stages(
        x, _stages(model_size, alpha, minimalistic), inverted_residual_block,
        layer_names=_keras_names, name=lambda i: f"expanded_conv_{i}",
        block_kwargs=dict(padding=cfg["padding"], expand_divisor=8, **bn),
        stochastic_depth=stochastic_depth, stochastic_depth_rule=stochastic_depth_rule, level=1,
    )
    x = kl.conv_bn_act(x, make_divisible(x.shape[-1] * 6, 8), 1, activation=act,
                       kernel_initializer="glorot_uniform", **bn, name="conv_1",
                       layer_names={"conv": "conv_1", "bn": "conv_1_bn", "act": "conv_1_act"})
    features["P5"] = x
    last_point = _LAST_POINT[model_size]
    if alpha > 1.0:
        last_point = make_divisible(last_point * alpha, 8)

    def head(x):
        x = layers.GlobalAveragePooling2D(keepdims=True, name="global_average_pooling2d")(x)
        x = layers.Conv2D(last_point, 1, padding="same", use_bias=True, name="conv_2")(x)
        x = kl.activation_layer(act, name="conv_2_act")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Conv2D(ctx.classes, 1, padding="same", name="logits")(x)
        x = layers.Flatten(name="flatten")(x)
        return layers.Activation(ctx.classifier_activation, name="predictions")(x)

    default = f"mobilenetv3_{model_size}{'_minimalistic' if minimalistic else ''}"
    return ctx.finish(x, head, default_name=default, features=features)


# reference figures: reference_figures.csv
for _name, _kwargs in (
        ("mobilenetv3_large", dict(model_size="large")),
        ("mobilenetv3_small", dict(model_size="small")),
        ("mobilenetv3_large_minimalistic", dict(model_size="large", minimalistic=True)),
        ("mobilenetv3_small_minimalistic", dict(model_size="small", minimalistic=True)),
        ("mobilenetv3_large_torchvision", dict(model_size="large", layout="torchvision",
                                               include_preprocessing=False)),
        ("mobilenetv3_small_torchvision", dict(model_size="small", layout="torchvision",
                                               include_preprocessing=False))):
    register_model(_name, family="MobileNetV3", paper=_PAPER, builder=MobileNetV3,
                   default_input_shape=(224, 224, 3), min_input_size=_MIN_SIZE, **_kwargs)
del _name, _kwargs
