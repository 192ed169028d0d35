"""AlexNet (torchvision's single tower and the original two-tower network) and ZFNet.

All three are five convolutions with overlapping 3x3/2 max-pools after conv1, conv2 and conv5,
ReLU everywhere and a ``4096 -> 4096 -> classes`` head with dropout 0.5; they differ in the layer
table, which one generic builder reads:

- ``alexnet``: torchvision's single tower ("one weird trick"), 64@11x11/4 p2, 192@5x5 p2,
  384, 256, 256 @3x3 p1; no LRN; adaptive 6x6 average pool before the head; dropout *before*
  fc1 and fc2; 224x224x3; **61,100,840** parameters.
- ``alexnet_v1``: the 2012 paper, 96@11x11/4, 256@5x5 p2 g2, 384, 384 g2, 256 g2 @3x3 p1;
  conv2/4/5 are grouped (groups=2, the two GPUs) through
  :class:`~keras_cnns.layers.GroupedDepthwiseConv2D`; LRN after the ReLU of conv1 and conv2;
  227x227x3; **60,965,224** parameters.
- ``zfnet``: Zeiler & Fergus 2013 as imgclsmob ``zfnet``, 96@7x7/2 p1, 256@5x5/2, 384, 384,
  256 @3x3 p1; LRN after conv1 and conv2; ceil-mode pools; 224x224x3; **62,357,608**
  parameters.

(``pN`` = N pixels of zero padding, ``gN`` = N groups.) Layer names: ``conv{i}`` (+ ``_pad``,
``_relu``, ``_lrn``), ``pool{i}``, then ``avgpool`` (``alexnet`` only), ``flatten``, ``fc1``,
``fc2``, ``predictions``.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from keras import layers

from keras_cnns._checks import check_bool, check_choice, check_probability
from keras_cnns.layers import GroupedDepthwiseConv2D, LocalResponseNormalization, max_pool_ceil
from keras_cnns.models._builder import classifier, family_builder, feature_level
from keras_cnns.models._registry import register_model

__all__ = ["AlexNet", "AlexNetV1", "ZFNet"]


@dataclasses.dataclass(frozen=True)
class _Conv:
    filters: int
    kernel: int
    stride: int = 1
    pad: int = 0          # symmetric zero padding, as in Caffe / PyTorch
    groups: int = 1
    lrn: bool = False     # LocalResponseNormalization after the ReLU
    pool: bool = False    # 3x3/2 max-pool after (the LRN)


_TORCHVISION = (
    _Conv(64, 11, 4, 2, pool=True),
    _Conv(192, 5, 1, 2, pool=True),
    _Conv(384, 3, 1, 1),
    _Conv(256, 3, 1, 1),
    _Conv(256, 3, 1, 1, pool=True),
)


def _original(groups: int, lrn: bool) -> Tuple[_Conv, ...]:
    return (
        _Conv(96, 11, 4, 0, lrn=lrn, pool=True),
        _Conv(256, 5, 1, 2, groups=groups, lrn=lrn, pool=True),
        _Conv(384, 3, 1, 1),
        _Conv(384, 3, 1, 1, groups=groups),
        _Conv(256, 3, 1, 1, groups=groups, pool=True),
    )


_ZFNET = (
    _Conv(96, 7, 2, 1, lrn=True, pool=True),
    _Conv(256, 5, 2, 0, lrn=True, pool=True),
    _Conv(384, 3, 1, 1),
    _Conv(384, 3, 1, 1),
    _Conv(256, 3, 1, 1, pool=True),
)

# Smallest input sides giving a >= 1x1 map after pool5 (checked in tests/models/test_classic.py).
ALEXNET_MIN_SIZE = 63      # 63 -> 15 -> 7 -> 7 -> 3 -> 3 -> 1
ALEXNET_V1_MIN_SIZE = 67   # 67 -> 15 -> 7 -> 7 -> 3 -> 3 -> 1
ZFNET_MIN_SIZE = 47        # 47 -> 22 -> 11 -> 4 -> 2 -> 2 -> 1 (ceil-mode pools)

_ALEXNET_PAPER = ("A. Krizhevsky, I. Sutskever, G. E. Hinton. ImageNet Classification with Deep "
                  "Convolutional Neural Networks. NeurIPS 2012")
_WEIRD_TRICK_PAPER = ("A. Krizhevsky. One weird trick for parallelizing convolutional neural "
                      "networks. arXiv:1404.5997, 2014 (torchvision's AlexNet)")
_ZFNET_PAPER = ("M. D. Zeiler, R. Fergus. Visualizing and Understanding Convolutional Networks. "
                "ECCV 2014 (arXiv:1311.2901)")


def _conv_unit(x, spec: _Conv, index: int, lrn_kwargs):
    """Convolution (+ explicit padding) -> ReLU [-> LRN] [-> 3x3/2 max-pool]."""
    name = f"conv{index}"
    if spec.stride == 1 and spec.pad * 2 == spec.kernel - 1:
        padding = "same"                      # equal to the symmetric padding at stride 1
    elif spec.pad == 0:
        padding = "valid"
    else:
        x = layers.ZeroPadding2D(spec.pad, name=f"{name}_pad")(x)
        padding = "valid"
    if spec.groups > 1:
        # Two-tower AlexNet: each half of the outputs sees only its half of the inputs.
        x = GroupedDepthwiseConv2D(spec.filters, spec.kernel, strides=spec.stride, padding=padding,
                                   groups=spec.groups, name=name)(x)
    else:
        x = layers.Conv2D(spec.filters, spec.kernel, strides=spec.stride, padding=padding,
                          name=name)(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    if spec.lrn:
        x = LocalResponseNormalization(**lrn_kwargs, name=f"{name}_lrn")(x)
    return x


def _max_pool(x, index: int, ceil_mode: bool):
    """3x3/2 max-pool; ``ceil_mode`` reproduces PyTorch/Caffe's ``ceil_mode=True`` output size.

    The inputs are ReLU (or LRN-of-ReLU) outputs, so they are >= 0: the ceil-mode pool is
    :func:`keras_cnns.layers.max_pool_ceil` with ``nonnegative=True`` (layers ``pool<i>_pad``, one
    zero row/column at the bottom/right that never wins a max, and ``pool<i>``); for ``H = 2``
    PyTorch clips the one window to the two rows, and the extra zero row never wins either.
    """
    if ceil_mode:
        return max_pool_ceil(x, 3, 2, name=f"pool{index}", nonnegative=True)
    return layers.MaxPooling2D(3, strides=2, padding="valid", name=f"pool{index}")(x)


def _fc_head(x, classes, classifier_activation, dropout, dropout_first, adaptive_pool):
    """``[AdaptiveAvgPool 6x6] -> Flatten -> fc1 -> fc2 -> predictions`` with dropout."""
    if adaptive_pool:
        # keras.layers.AdaptiveAveragePooling2D fails on a side of 1 (Keras 3.15: "negative
        # dimension" in its window arithmetic); repeating that row/column first gives the same
        # result (every 6x6 cell is then the mean of equal values), so use it there.
        h, w = x.shape[1], x.shape[2]
        if h == 1 or w == 1:
            x = layers.UpSampling2D((2 if h == 1 else 1, 2 if w == 1 else 1),
                                    name="avgpool_repeat")(x)
        x = layers.AdaptiveAveragePooling2D((6, 6), name="avgpool")(x)
    x = layers.Flatten(name="flatten")(x)
    for i in (1, 2):
        if dropout_first and dropout > 0:
            x = layers.Dropout(dropout, name=f"fc{i}_drop")(x)
        x = layers.Dense(4096, name=f"fc{i}")(x)
        x = layers.ReLU(name=f"fc{i}_relu")(x)
        if not dropout_first and dropout > 0:
            x = layers.Dropout(dropout, name=f"fc{i}_drop")(x)
    return classifier(x, classes, classifier_activation)


def _build(ctx, convs, *, ceil_mode, adaptive_pool, dropout_first, dropout, lrn_kwargs,
           default_name, default_shape, min_size):
    """The body behind :func:`AlexNet`, :func:`AlexNetV1` and :func:`ZFNet` (the caller has
    checked its knobs)."""
    x = ctx.start(default_shape=default_shape, min_size=min_size, require_static=True)
    # The levels: the last map before each layer that strides (P<k> at stride 2^k). Sides follow
    # floor((H - extent) / stride) + 1, the extent growing by (kernel - 1) * stride-so-far for
    # each convolution (kernel - 2 * pad) and pool (3, or 2 in ceil mode), as a receptive field.
    features, extent, stride = {}, 1, 1

    def level_ends():
        if stride > 1:
            features[f"P{stride.bit_length() - 1}"] = feature_level(
                f"P{stride.bit_length() - 1}", x, extent=extent)

    for i, spec in enumerate(convs, start=1):
        if spec.stride > 1:
            level_ends()
        x = _conv_unit(x, spec, i, lrn_kwargs)
        extent, stride = extent + (spec.kernel - 2 * spec.pad - 1) * stride, stride * spec.stride
        if spec.pool:
            level_ends()
            x = _max_pool(x, i, ceil_mode)
            extent, stride = extent + (1 if ceil_mode else 2) * stride, stride * 2
    level_ends()
    return ctx.finish(
        x, lambda x: _fc_head(x, ctx.classes, ctx.classifier_activation, dropout, dropout_first,
                              adaptive_pool),
        default_name=default_name, features=features)


# The paper's LRN: k=2, n=5 (radius 2), alpha=1e-4, beta=0.75 (Caffe's alpha/n convention).
_LRN = dict(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)


@family_builder
def AlexNet(dropout=0.5, *, ctx):
    """AlexNet as torchvision builds it (single tower, 64-192-384-256-256, no LRN).

    The "one weird trick" variant: conv1 64@11x11/4 (pad 2), conv2 192@5x5 (pad 2), conv3-5
    384/256/256 @3x3 (pad 1), 3x3/2 max-pools after conv1, conv2, conv5, then torchvision's
    ``AdaptiveAvgPool2d((6, 6))`` (``keras.layers.AdaptiveAveragePooling2D``: the identity at
    224x224, where the map is already 6x6; it averages or repeats cells at other sizes, so the
    head - and the parameter count, 61,100,840 - does not depend on the input size), and
    ``Dropout -> fc1 4096 -> ReLU -> Dropout -> fc2 4096 -> ReLU -> predictions`` (torchvision
    puts the dropout before each hidden FC layer).

    Args:
        dropout: dropout rate before ``fc1`` and ``fc2`` (default 0.5; 0 removes the layers).
{common_args}

    Input: default ``(224, 224, 3)``, sides >= 63; with the head H and W must be known (the
    adaptive pool needs them). The head is ``flatten``, ``fc1``, ``fc2``, ``predictions``;
    without it the output is the map after the last max-pool (or its pooling). Default name
    ``"alexnet"``.

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError: invalid argument (the message names it).
    """
    dropout = check_probability("dropout", dropout)
    return _build(
        ctx, _TORCHVISION, ceil_mode=False, adaptive_pool=True, dropout_first=True,
        dropout=dropout, lrn_kwargs=_LRN, default_name="alexnet", default_shape=(224, 224, 3),
        min_size=ALEXNET_MIN_SIZE,
    )


@family_builder
def AlexNetV1(groups=2, lrn=True, dropout=0.5, *, ctx):
    """The original two-tower AlexNet of the 2012 paper, at 227x227x3.

    ``conv1 96@11x11/4 -> ReLU -> LRN -> pool``, ``conv2 256@5x5 (pad 2, groups=2) -> ReLU -> LRN
    -> pool``, ``conv3 384@3x3``, ``conv4 384@3x3 (groups=2)``, ``conv5 256@3x3 (groups=2) ->
    pool``, then ``fc1 4096 -> ReLU -> Dropout -> fc2 4096 -> ReLU -> Dropout -> predictions``.
    The grouped layers are what the split over two GPUs really computed: conv2, conv4 and conv5
    see only the feature maps of their own GPU, conv3 and the FC layers see both. They run through
    the library's grouped-convolution op
    (:class:`~keras_cnns.layers.GroupedDepthwiseConv2D`). 60,965,224 parameters.

    The paper writes 224x224 inputs, but its 55x55 conv1 map needs 227 (``(227 - 11) / 4 + 1 =
    55``), as Caffe's reference model (BVLC ``models/bvlc_alexnet``, 227 crop) and the CS231n notes
    (https://cs231n.github.io/convolutional-networks/) point out. LRN uses the paper's ``k=2,
    n=5, alpha=1e-4, beta=0.75`` in the convention of the released Caffe model and torchvision's
    ``LocalResponseNorm`` (the window sum is scaled by ``alpha / n``; see
    :class:`~keras_cnns.layers.LocalResponseNormalization`).

    Args:
        groups: number of towers of conv2/4/5 (2 in the paper; 1 gives the single-tower network
            of imgclsmob ``alexnet``, 62,378,344 params). Must divide 96, 256 and 384.
        lrn: whether to apply local response normalization after conv1 and conv2.
        dropout: dropout rate after ``fc1`` and ``fc2`` (default 0.5; 0 removes the layers).
{common_args}

    Input: default ``(227, 227, 3)``, sides >= 67; with the head H and W must be known: it
    flattens the ``h x w x 256`` map after pool5 (6x6 at 227), so ``fc1`` has ``h * w * 256 *
    4096`` weights. The head is ``flatten``, ``fc1``, ``fc2``, ``predictions``; without it the
    output is the map after the last max-pool (or its pooling). Default name ``"alexnet_v1"``.

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError: invalid argument (the message names it).
    """
    check_choice("groups", groups, [1, 2, 4, 8, 16, 32])
    check_bool("lrn", lrn)
    dropout = check_probability("dropout", dropout)
    return _build(
        ctx, _original(groups, lrn), ceil_mode=False, adaptive_pool=False, dropout_first=False,
        dropout=dropout, lrn_kwargs=_LRN, default_name="alexnet_v1", default_shape=(227, 227, 3),
        min_size=ALEXNET_V1_MIN_SIZE,
    )


@family_builder
def ZFNet(dropout=0.5, *, ctx):
    """ZFNet (Zeiler & Fergus), the ILSVRC-2013 AlexNet refinement, at 224x224x3.

    ``conv1 96@7x7/2 (pad 1) -> ReLU -> LRN -> pool`` (110 -> 55), ``conv2 256@5x5/2 -> ReLU ->
    LRN -> pool`` (26 -> 13), ``conv3 384``, ``conv4 384``, ``conv5 256 @3x3 (pad 1) -> pool``
    (13 -> 6), then ``fc1 4096 -> fc2 4096`` with ReLU and dropout, ``predictions``: the sizes of
    the paper's Fig. 3 and 62,357,608 parameters.

    Follows imgclsmob ``zfnet`` (osmr/imgclsmob ``gluon/gluoncv2/models/zfnet.py``): single
    tower, LRN (``n=5, k=2``) after the ReLU and *before* the pool (the paper normalises after the
    pool), and pools with PyTorch's ``ceil_mode=True`` (needed for the paper's 110 -> 55 and
    26 -> 13).

    Args:
        dropout: dropout rate after ``fc1`` and ``fc2`` (default 0.5; 0 removes the layers).
{common_args}

    Input: default ``(224, 224, 3)``, sides >= 47; with the head H and W must be known: it
    flattens the ``h x w x 256`` map after pool5 (6x6 at 224), so ``fc1`` has ``h * w * 256 *
    4096`` weights. The head is ``flatten``, ``fc1``, ``fc2``, ``predictions``; without it the
    output is the map after the last max-pool (or its pooling). Default name ``"zfnet"``.

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError: invalid argument (the message names it).
    """
    dropout = check_probability("dropout", dropout)
    return _build(
        ctx, _ZFNET, ceil_mode=True, adaptive_pool=False, dropout_first=False, dropout=dropout,
        lrn_kwargs=_LRN, default_name="zfnet", default_shape=(224, 224, 3),
        min_size=ZFNET_MIN_SIZE,
    )


# reference figures: reference_figures.csv
for _name, _family, _paper, _builder, _shape, _min_size in (
        ("alexnet", "AlexNet", _WEIRD_TRICK_PAPER, AlexNet, (224, 224, 3), ALEXNET_MIN_SIZE),
        ("alexnet_v1", "AlexNet", _ALEXNET_PAPER, AlexNetV1, (227, 227, 3), ALEXNET_V1_MIN_SIZE),
        ("zfnet", "ZFNet", _ZFNET_PAPER, ZFNet, (224, 224, 3), ZFNET_MIN_SIZE)):
    register_model(_name, family=_family, paper=_paper, builder=_builder,
                   default_input_shape=_shape, min_input_size=_min_size)
del _name, _family, _paper, _builder, _shape, _min_size
