"""EfficientNet B0-B7 and compound scaling for any ``phi``.

Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019
(arXiv:1905.11946). Table 1 (B0): a 3x3 stride-2 stem (32 channels), seven stages of MBConv
blocks (:func:`keras_cnns.blocks.inverted_residual_block`: expansion 1 or 6, 3x3 or 5x5
depthwise kernels, squeeze-and-excitation of ratio 0.25 of the block's *input* width with swish
and a sigmoid gate, swish everywhere else, drop connect on the skip blocks), a 1x1 convolution to
1280 channels, global average pooling, dropout and the classifier.

Compound scaling (Sec. 3.3, eq. 3): depth ``d = alpha^phi``, width ``w = beta^phi``, resolution
``r = gamma^phi`` with ``alpha * beta^2 * gamma^2 ~ 2`` (the paper's grid search at ``phi = 1``:
``alpha = 1.2, beta = 1.1, gamma = 1.15``). Channels are rounded as the reference
(``round_filters``: ``make_divisible(c * w, 8)``, never more than 10% down), repeats as
``ceil(d * n)``, and the input side is ``round(224 * r)``. B1-B7 are *not* the formula at
``phi = 1..7``: the released models use the hand-picked ``(w, d, side, dropout)`` of the
reference's ``efficientnet_params`` (:data:`VARIANTS`), which :func:`EfficientNet` takes directly
(``width`` / ``depth``); :func:`efficientnet` is the formula.

Layouts (``layout``): ``"keras"`` (default) is ``keras.applications.EfficientNetB0..B7`` layer for
layer: its names (``stem_conv``, ``block1a_dwconv``, ``block2b_se_reduce``, ``top_conv``,
``predictions``), BN ``momentum=0.99, epsilon=1e-3``, ``correct_pad`` padding, its initialisers,
and with ``include_preprocessing`` its ``Rescaling(1/255)`` + ``Normalization`` input layers, so its
weights copy over one to one (:func:`keras_cnns.from_keras_applications`; the
ImageNet checkpoints' extra ``Rescaling`` is folded into the copied variance). Our
``Normalization`` (:class:`keras_cnns.layers.InputNormalization`) starts with ImageNet's RGB mean
and variance, so the model takes pixels in ``[0, 255]`` (keras.applications' ``weights=None``
model starts with mean 0, variance 1). ``"torchvision"`` is ``torchvision.models.efficientnet_b*``
(BN ``epsilon=1e-5``, ``momentum=0.9`` in Keras' convention, symmetric padding, no preprocessing
in its registered variants), for :func:`keras_cnns.from_torchvision`.

Counts (``reference_figures.csv``): B0 5,288,548 trainable parameters (5,330,571 with BN's
moving statistics and the Normalization layer's mean, variance and count), 0.39 G multiply-adds
at 224 (our profiler: 385.8 M, which the paper's Table 2 prints as 0.39B FLOPs); B7 66,347,960 /
66,658,687.
"""

from __future__ import annotations

import dataclasses
import math

from keras import layers

from keras_cnns import layers as kl
from keras_cnns._checks import check_choice, check_positive_float, check_probability, fail
from keras_cnns.blocks.inverted_residual import inverted_residual_block, keras_correct_pad
from keras_cnns.layers.utils import make_divisible
from keras_cnns.models._builder import classifier, family_builder
from keras_cnns.models._notation import decode_stages
from keras_cnns.models._registry import register_model
from keras_cnns.models._stages import build_numbered_stages

__all__ = ["EfficientNet", "VARIANTS", "efficientnet"]

_PAPER = ("Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks, "
          "ICML 2019 (arXiv:1905.11946)")
_MIN_SIZE = 32
#: Table 1 of the paper (EfficientNet-B0), one stage per string, in the block notation of
#: :mod:`keras_cnns.models._notation` (keras.applications' ``DEFAULT_BLOCKS_ARGS``).
ARCH = (
    "ir_r1_k3_s1_e1_c16_se0.25",
    "ir_r2_k3_s2_e6_c24_se0.25",
    "ir_r2_k5_s2_e6_c40_se0.25",
    "ir_r3_k3_s2_e6_c80_se0.25",
    "ir_r3_k5_s1_e6_c112_se0.25",
    "ir_r4_k5_s2_e6_c192_se0.25",
    "ir_r1_k3_s1_e6_c320_se0.25",
)
#: ``name -> (width, depth, input side, dropout)`` of the released models (the reference's
#: ``efficientnet_params``; keras.applications' EfficientNetB0..B7).
VARIANTS = {
    "b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5),
}
#: ImageNet's RGB statistics on the [0, 1] scale (keras.applications' ``IMAGENET_STDDEV_RGB``).
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
LAYOUTS = {
    "keras": dict(bn_momentum=0.99, bn_epsilon=1e-3, padding="keras"),
    "torchvision": dict(bn_momentum=0.9, bn_epsilon=1e-5, padding="torch"),
}
#: keras.applications' initialisers (``CONV_KERNEL_INITIALIZER``, ``DENSE_KERNEL_INITIALIZER``).
CONV_INIT = {"class_name": "VarianceScaling",
             "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
DENSE_INIT = {"class_name": "VarianceScaling",
              "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}
_KERAS_ROLES = {"expand_act": "expand_activation", "pad": "dwconv_pad", "dw": "dwconv",
                "dw_bn": "bn", "dw_act": "activation"}


def round_filters(filters, width):
    """The reference's channel rounding: ``make_divisible(filters * width, 8)``."""
    return make_divisible(filters * width, 8)


def round_repeats(repeats, depth):
    """The reference's repeat rounding: ``ceil(depth * repeats)``."""
    return int(math.ceil(depth * repeats))


def _stages(width, depth):
    return tuple(dataclasses.replace(spec, filters=round_filters(spec.filters, width),
                                     blocks=round_repeats(spec.blocks, depth))
                 for spec in decode_stages(ARCH))


def _names(stages):
    """Per global block index: keras.applications' prefix ``block{stage}{letter}``."""
    out = []
    for s, spec in enumerate(stages):
        for b in range(spec.blocks):
            letter = chr(97 + b) if b < 26 else f"{chr(97 + b // 26 - 1)}{chr(97 + b % 26)}"
            out.append(f"block{s + 1}{letter}")
    return out


@family_builder
def EfficientNet(width=1.0, depth=1.0, layout="keras", include_preprocessing=True, dropout=0.2,
                 drop_connect_rate=0.2, *, ctx, default_side=224):
    """EfficientNet (Tan & Le 2019) at width / depth coefficients as a functional Keras model.

    Args:
        width: width coefficient ``w`` (channels ``make_divisible(c * w, 8)``), a number > 0.
        depth: depth coefficient ``d`` (repeats ``ceil(d * n)``), a number > 0.
        layout: ``"keras"`` or ``"torchvision"`` (see the module docstring).
        include_preprocessing: start with ``Rescaling(1/255)`` and a ``Normalization`` holding
            ImageNet's RGB mean and variance, so the model takes pixels in ``[0, 255]``.
        dropout: dropout rate before the classifier, in ``[0, 1)`` (B0: 0.2 ... B7: 0.5).
        drop_connect_rate: the last block's drop connect rate in ``[0, 1)``; block ``b`` of
            ``B`` (0-based, over all stages) drops its branch per sample with rate
            ``drop_connect_rate * b / B`` in training (keras.applications / the reference: 0.2).
        default_side: the input side when neither ``input_shape`` nor ``input_tensor`` is given.
{common_args}

    Feature levels (``features_only``): P1..P4 the last block output at each stride, P5 the
    ``top_conv`` map (1280 channels at B0).

    Returns:
        A ``keras.Model``: class scores ``[N, classes]`` with the top, else the last feature
        map or its pooled vector.

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    width = check_positive_float("width", width)
    depth = check_positive_float("depth", depth)
    layout = check_choice("layout", layout, list(LAYOUTS))
    check_choice("include_preprocessing", include_preprocessing, [False, True])
    check_probability("dropout", dropout)
    check_probability("drop_connect_rate", drop_connect_rate)
    cfg = LAYOUTS[layout]
    bn = dict(bn_momentum=cfg["bn_momentum"], bn_epsilon=cfg["bn_epsilon"])
    keras_layout = layout == "keras"
    init = CONV_INIT if keras_layout else "he_normal"

    x = ctx.start(default_shape=(default_side, default_side, 3), min_size=_MIN_SIZE)
    if include_preprocessing:
        x = layers.Rescaling(1.0 / 255.0, name="rescaling")(x)
        x = kl.InputNormalization(initial_mean=IMAGENET_MEAN_RGB,
                                  initial_variance=[s * s for s in IMAGENET_STDDEV_RGB],
                                  name="normalization")(x)
    pad = (tuple(keras_correct_pad(side, 3) for side in x.shape[1:3]) if keras_layout else 1)
    x = kl.conv_bn_act(x, round_filters(32, width), 3, strides=2, padding=pad,
                       activation="swish", kernel_initializer=init, **bn, name="stem",
                       layer_names={"pad": "stem_conv_pad", "conv": "stem_conv",
                                    "bn": "stem_bn", "act": "stem_activation"})

    stages = _stages(width, depth)
    names = _names(stages)
    total = len(names)
    x, features = build_numbered_stages(
        x, stages, inverted_residual_block,
        name=lambda i: names[i],
        layer_names=lambda i: {role: f"{names[i]}_{suffix}"
                               for role, suffix in _KERAS_ROLES.items()},
        block_kwargs_of=lambda i: {"drop_rate": drop_connect_rate * i / total},
        block_kwargs=dict(activation="swish", se_base="input", se_divisor=None,
                          se_activation="swish", se_gate="sigmoid", padding=cfg["padding"],
                          kernel_initializer=init,
                          depthwise_initializer=CONV_INIT if keras_layout else None, **bn),
        level=1,
    )
    x = kl.conv_bn_act(x, round_filters(1280, width), 1, activation="swish",
                       kernel_initializer=init, **bn, name="top",
                       layer_names={"conv": "top_conv", "bn": "top_bn", "act": "top_activation"})
    features["P5"] = x

    def head(x):
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name="top_dropout")(x)
        return classifier(x, ctx.classes, ctx.classifier_activation,
                          kernel_initializer=DENSE_INIT if keras_layout else "glorot_uniform")

    return ctx.finish(x, head, default_name="efficientnet", features=features)


def efficientnet(phi=0, alpha=1.2, beta=1.1, gamma=1.15, **kwargs):
    """EfficientNet at compound coefficient ``phi`` (eq. 3 of the paper): depth ``alpha^phi``,
    width ``beta^phi``, input side ``round(224 * gamma^phi)``.

    Args:
        phi: the compound coefficient, a number >= 0 (0 is B0).
        alpha, beta, gamma: depth, width and resolution bases, each >= 1 (the paper's grid search:
            1.2, 1.1, 1.15, with ``alpha * beta^2 * gamma^2 ~ 2``).
        **kwargs: :func:`EfficientNet` arguments (``input_shape`` overrides the side).

    Returns:
        The ``keras.Model`` (named ``efficientnet_phi{phi}`` unless ``name`` is given).

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    for arg, value in (("phi", phi), ("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            fail(arg, "must be a finite number", value)
    if phi < 0:
        fail("phi", "must be >= 0", phi)
    for arg, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if value < 1:
            fail(arg, "must be >= 1 (a scaling base)", value)
    for arg in ("width", "depth", "default_side"):
        if arg in kwargs:
            fail(arg, "is set by phi, alpha, beta and gamma here; call EfficientNet() to set it",
                 kwargs[arg])
    kwargs.setdefault("name", f"efficientnet_phi{phi:g}")
    return EfficientNet(width=beta ** phi, depth=alpha ** phi,
                        default_side=int(round(224 * gamma ** phi)), **kwargs)


# reference figures: reference_figures.csv
for _variant, (_w, _d, _side, _drop) in VARIANTS.items():
    # B6 / B7 (43 M / 66 M parameters, 45 / 55 blocks) are built for their figures only in the
    # generic matrix; tests/models/test_efficientnet.py runs both against keras.applications.
    register_model(f"efficientnet_{_variant}", family="EfficientNet", paper=_PAPER,
                   builder=EfficientNet, default_input_shape=(_side, _side, 3),
                   min_input_size=_MIN_SIZE, width=_w, depth=_d, dropout=_drop,
                   default_side=_side, heavy=_variant in ("b6", "b7"))
for _variant in ("b0", "b1"):
    _w, _d, _side, _drop = VARIANTS[_variant]
    register_model(f"efficientnet_{_variant}_torchvision", family="EfficientNet", paper=_PAPER,
                   builder=EfficientNet, default_input_shape=(_side, _side, 3),
                   min_input_size=_MIN_SIZE, width=_w, depth=_d, dropout=_drop,
                   default_side=_side, layout="torchvision", include_preprocessing=False)
del _variant, _w, _d, _side, _drop
