"""ShuffleNet v1 (groups 1-8, scales 0.25-2.0) and ShuffleNet v2 (0.5x-2.0x).

**v1**: Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network
for Mobile Devices", CVPR 2018 (arXiv:1707.01083), Table 1: a 3x3 / 2 convolution (24
channels, BN, ReLU), a 3x3 / 2 max-pool, stages 2-4 of 4, 8 and 4 units
(:func:`keras_cnns.blocks.shufflenet_unit`, the first of each with stride 2), global average
pooling and the classifier (with bias). The stage widths for ``g = 1, 2, 3, 4, 8`` groups are
Table 1's (144, 200, 240, 272, 384 for stage 2, doubled per stage), times the scale factor
``s``; the stem width per scale follows the megvii release (megvii-model/ShuffleNet-Series
``ShuffleNetV1/network.py``: 0.5x 12, or 16 with ``g = 8``; 1.0x and 1.5x 24; 2.0x 48) and, for
0.25x (not released), ``24 * s = 6`` as osmr/imgclsmob. The first unit of stage 2 has an
ungrouped first 1x1 convolution (paper Sec. 3.3). The unit's shuffle is fused into its
depthwise convolution and its group convolutions run on the custom op
(:mod:`keras_cnns.blocks.shuffle`); ``benchmarks/bench_shufflenet.py`` measures both against
the same model on stock TF ops (:func:`keras_cnns.ops.stock_ops_only`).

Counts (``reference_figures.csv``; trainable): 1x g=1 1,531,936, g=2 1,733,848, g=3 1,865,728,
g=4 1,968,344, g=8 2,434,768; 0.25x g=1 209,746, g=3 305,902; 0.5x g=3 718,324, all with the
classifier's bias (paper / imgclsmob). The variants only the megvii release defines (0.5x g=8,
1.5x g=3, 2x g=3: the release picked their stems) keep its bias-free classifier too
(``classifier_bias=False``): 1,010,448, 3,441,168 and 5,449,776 (with a bias: 1,000 more; the
megvii 1x g=3 checkpoint would be 1,864,728). Multiply-adds at 224 (convolutions and the
classifier; the paper's "FLOPs" are multiply-adds): 1x g=3 137.5 M (paper Table 2: 137 M /
megvii 138 M), g=8 138.4 M (Table 1: 137 M, Tables 2 and 5: 140 M), 0.5x g=3 37.6 M (38 M),
2x g=3 524.0 M (524 M).

**v2**: Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN
Architecture Design", ECCV 2018 (arXiv:1807.11164), Table 5, in torchvision's layout
(``torchvision/models/shufflenetv2.py``: ``conv1`` 3x3 / 2, 24 channels; max-pool; stages of
4, 8, 4 :func:`keras_cnns.blocks.shufflenet_v2_unit`; ``conv5`` 1x1 to 1024 (2048 for 2.0x);
global average pooling; ``fc``). The layer names are torchvision's module prefixes with ``_``
for ``.``, and :func:`keras_cnns.from_torchvision` copies ``shufflenet_v2_x*`` weights
(tested equal). Counts: 0.5x 1,366,792, 1.0x 2,278,604, 1.5x 3,503,624, 2.0x 7,393,996
(torchvision's ``num_params``).

Both follow PyTorch's BatchNorm (``epsilon=1e-5``, momentum 0.9 in Keras' convention) and its
symmetric padding.
"""

from __future__ import annotations

from keras import layers

from keras_cnns import layers as kl
from keras_cnns._checks import fail
from keras_cnns.blocks.shuffle import shufflenet_unit, shufflenet_v2_unit
from keras_cnns.models._builder import family_builder, pooled_classifier
from keras_cnns.models._registry import register_model
from keras_cnns.models._stages import Stage, StageSpec, build_stages, plain_block
from keras_cnns._checks import check_choice, check_probability

__all__ = ["SCALES", "STAGE2_WIDTHS", "V2_WIDTHS", "ShuffleNet", "ShuffleNetV2",
           "shufflenet_widths", "torchvision_names"]

_PAPER_V1 = ("Zhang et al., ShuffleNet: An Extremely Efficient Convolutional Neural Network for "
             "Mobile Devices, CVPR 2018 (arXiv:1707.01083)")
_PAPER_V2 = ("Ma et al., ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture "
             "Design, ECCV 2018 (arXiv:1807.11164)")
_MIN_SIZE = 32
BN = dict(bn_momentum=0.9, bn_epsilon=1e-5)
#: Units per stage (stages 2, 3, 4), both versions.
REPEATS = (4, 8, 4)
#: v1: stage-2 output width per number of groups (paper Table 1); stages 3, 4 double it.
STAGE2_WIDTHS = {1: 144, 2: 200, 3: 240, 4: 272, 8: 384}
#: v1: the scale factors of the paper (Table 2) and the stem width of each (megvii release;
#: 0.25x: 24 * 0.25).
SCALES = {0.25: 6, 0.5: 12, 1.0: 24, 1.5: 24, 2.0: 48}
_STEM_OVERRIDES = {(0.5, 8): 16}  # megvii's 0.5x g=8
#: ``(scale, groups)`` of the registered variants defined by the megvii release alone (their
#: stems are its choice): they keep its bias-free classifier as well.
MEGVII_ONLY = ((0.5, 8), (1.5, 3), (2.0, 3))
#: v2: output widths of stages 2, 3, 4 and conv5 (paper Table 5, torchvision).
V2_WIDTHS = {0.5: (48, 96, 192, 1024), 1.0: (116, 232, 464, 1024),
             1.5: (176, 352, 704, 1024), 2.0: (244, 488, 976, 2048)}


def shufflenet_widths(groups, scale):
    """``(stem, (stage2, stage3, stage4))`` output widths of ShuffleNet v1."""
    base = STAGE2_WIDTHS[groups]
    stem = _STEM_OVERRIDES.get((scale, groups), SCALES[scale])
    return stem, tuple(int(base * m * scale) for m in (1, 2, 4))


def _stem(x, filters, names):
    """3x3 / 2 convolution (BN, ReLU) and 3x3 / 2 max-pool, PyTorch's padding 1 (the pool's
    zero padding equals its -inf padding: its input is a ReLU output)."""
    x = kl.conv_bn_act(x, filters, 3, strides=2, padding=1, activation="relu",
                       kernel_initializer="he_normal", **BN, layer_names=names)
    p1 = x
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    return layers.MaxPooling2D(3, 2, name="maxpool")(x), p1


def _stages(widths, groups=1, first_options=()):
    """Stages 2, 3, 4 of :data:`REPEATS` units: the stride-2 unit (kind ``"down"``: v1 paper
    Fig. 2(c), v2 Fig. 3(d); stage 2's with ``first_options``), then the stride-1 units
    (``"basic"``: Fig. 2(b), Fig. 3(c))."""
    return [Stage([StageSpec("down", 1, width, stride=2, groups=groups,
                             options=first_options if s == 0 else ()),
                   StageSpec("basic", units - 1, width, groups=groups)])
            for s, (units, width) in enumerate(zip(REPEATS, widths))]


def _build_stages(x, stages, unit, name_fn, p1):
    """The stages on the max-pool output ``x`` (level 2; ``p1`` the stem convolution): the
    output and features P1..P5."""
    return build_stages(x, stages, block_fns={"down": unit, "basic": unit},
                        block_kwargs=dict(kernel_initializer="he_normal", **BN),
                        name_fn=name_fn, level=2, features={"P1": p1, "P2": x})


_V1_UNIT = plain_block(shufflenet_unit, takes_groups=True)
_V2_UNIT = plain_block(shufflenet_v2_unit)


def _scale_arg(scale, allowed):
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or float(scale) not in allowed:
        fail("scale", f"must be one of {sorted(allowed)}", scale)
    return float(scale)


def _head(ctx, dropout, name="predictions", use_bias=True):
    return lambda x: pooled_classifier(x, ctx, dropout, name=name, use_bias=use_bias)


@family_builder
def ShuffleNet(groups=3, scale=1.0, stem_width=None, dropout=0.0, classifier_bias=True, *, ctx):
    """ShuffleNet v1 (Zhang et al. 2018) as a functional Keras model.

    Args:
        groups: ``g``, the groups of the 1x1 convolutions: 1, 2, 3, 4 or 8 (paper Table 1).
        scale: the width factor ``s``: 0.25, 0.5, 1.0, 1.5 or 2.0 (paper Table 2).
        stem_width: the stem's width; ``None``: the release's for this scale (module docstring).
        dropout: dropout rate before the classifier, in ``[0, 1)`` (the paper has none).
        classifier_bias: whether the classifier has a bias (the megvii release's has none).
{common_args}

    Feature levels (``features_only``): P1 the stem convolution, P2 the max-pool, P3..P5 the
    outputs of stages 2..4.

    Returns:
        A ``keras.Model``: class scores ``[N, classes]`` with the top, else the stage-4 map or
        its pooled vector.

    Raises:
        ValueError: an invalid argument (the message names it), e.g. a ``groups`` that does
            not divide this scale's widths (0.25x with ``g = 8``).
    """
    groups = check_choice("groups", groups, list(STAGE2_WIDTHS))
    scale = _scale_arg(scale, SCALES)
    check_probability("dropout", dropout)
    if not isinstance(classifier_bias, bool):
        fail("classifier_bias", "must be True or False", classifier_bias)
    stem, widths = shufflenet_widths(groups, scale)
    if stem_width is not None:
        if isinstance(stem_width, bool) or not isinstance(stem_width, int) or stem_width < 1:
            fail("stem_width", "must be None or a positive integer", stem_width)
        stem = stem_width
    x = ctx.start(default_shape=(224, 224, 3), min_size=_MIN_SIZE)
    x, p1 = _stem(x, stem, {"conv": "stem_conv", "bn": "stem_bn", "act": "stem_relu",
                            "pad": "stem_pad"})
    x, features = _build_stages(x, _stages(widths, groups, {"first": True}), _V1_UNIT,
                                lambda s, b: f"stage{s + 2}_unit{b + 1}", p1)
    return ctx.finish(x, _head(ctx, dropout, use_bias=classifier_bias),
                      default_name=_v1_name(groups, scale),
                      features=features)


@family_builder
def ShuffleNetV2(scale=1.0, dropout=0.0, *, ctx):
    """ShuffleNet v2 (Ma et al. 2018) in torchvision's layout as a functional Keras model.

    Args:
        scale: the width: 0.5, 1.0, 1.5 or 2.0 (torchvision's ``shufflenet_v2_x0_5`` ...).
        dropout: dropout rate before ``fc``, in ``[0, 1)`` (torchvision has none).
{common_args}

    Feature levels (``features_only``): P1 ``conv1``, P2 the max-pool, P3, P4 the outputs of
    stages 2, 3, P5 ``conv5``.

    Returns:
        A ``keras.Model``: class scores ``[N, classes]`` with the top, else the ``conv5`` map
        or its pooled vector.

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    scale = _scale_arg(scale, V2_WIDTHS)
    check_probability("dropout", dropout)
    x = ctx.start(default_shape=(224, 224, 3), min_size=_MIN_SIZE)
    x, p1 = _stem(x, 24, {"conv": "conv1_0", "bn": "conv1_1", "act": "conv1_2",
                          "pad": "conv1_pad"})
    *stage_widths, last = V2_WIDTHS[scale]
    x, features = _build_stages(x, _stages(stage_widths), _V2_UNIT,
                                lambda s, b: f"stage{s + 2}_{b}", p1)
    x = kl.conv_bn_act(x, last, 1, activation="relu", kernel_initializer="he_normal", **BN,
                       layer_names={"conv": "conv5_0", "bn": "conv5_1", "act": "conv5_2"})
    features["P5"] = x
    return ctx.finish(x, _head(ctx, dropout, name="fc"), default_name=_v2_name(scale),
                      features=features)


def torchvision_names(model):
    """``[(keras_layer_name, torchvision_module_prefix), ...]`` for :func:`ShuffleNetV2`: every
    layer with weights is named after its torchvision module with ``_`` for ``.``
    (``stage2_0_branch1_0`` is ``stage2.0.branch1.0``, ``fc`` is ``fc``)."""
    pairs = []
    for layer in model.layers:
        if layer.weights:
            if layer.name.startswith(("stem", "stage2_unit")):
                fail("model", "must be a ShuffleNetV2 (v1 has no torchvision counterpart)",
                     model.name)
            pairs.append((layer.name, layer.name.replace("_", ".")))
    return pairs


def _tag(scale):
    return f"{int(scale)}_{int(round(scale * 100)) % 100:02d}"


def _v1_name(groups, scale):
    if (groups, scale) == (3, 1.0):
        return "shufflenet"  # the paper's default model, 1x with g = 3
    return "shufflenet" + ("" if scale == 1.0 else f"_{_tag(scale)}") + f"_g{groups}"


def _v2_name(scale):
    return "shufflenetv2" + ("" if scale == 1.0 else f"_{_tag(scale)}")


# reference figures: reference_figures.csv
for _groups, _scale in ((3, 1.0), (1, 1.0), (2, 1.0), (4, 1.0), (8, 1.0), (1, 0.25), (3, 0.25),
                        (3, 0.5), (8, 0.5), (3, 1.5), (3, 2.0)):
    register_model(_v1_name(_groups, _scale), family="ShuffleNet", paper=_PAPER_V1,
                   builder=ShuffleNet, default_input_shape=(224, 224, 3),
                   min_input_size=_MIN_SIZE, groups=_groups, scale=_scale,
                   classifier_bias=(_scale, _groups) not in MEGVII_ONLY)
for _scale in V2_WIDTHS:
    register_model(_v2_name(_scale), family="ShuffleNetV2", paper=_PAPER_V2,
                   builder=ShuffleNetV2, default_input_shape=(224, 224, 3),
                   min_input_size=_MIN_SIZE, scale=_scale)
del _groups, _scale
