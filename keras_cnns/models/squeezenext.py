"""SqueezeNext: 1.0-SqNxt-23, 1.0-SqNxt-23v5, 1.0-G-SqNxt-23, 2.0-SqNxt-23 and 2.0-SqNxt-23v5.

Gholami, Kwon, Wu, Tai, Yue, Jin, Zhao, Keutzer, "SqueezeNext: Hardware-Aware Neural Network
Design", CVPR Workshops 2018 (arXiv:1803.10615). The layers follow the authors' Caffe release,
amirgholami/SqueezeNext (``<variant>/train_val.prototxt``, one directory per variant), layer by
layer:

- Input 227x227 (the release's ``crop_size``). ``conv1``: 64 filters, 7x7 (v5: 5x5), stride 2,
  no padding; a 3x3/2 max-pool with Caffe's ceil-mode output size
  (:class:`~keras_cnns.layers.CeilModeMaxPooling2D`).
- Four stages of ``C`` = 32, 64, 128, 256 channels (2.0: twice that), strides 1, 2, 2, 2, with
  6, 6, 8, 1 blocks (v5: 2, 4, 14, 1; 21 blocks in both).
- The block (paper Fig. 1, right): 1x1 -> C/2 (the stage's stride, if any, is here), 1x1 ->
  C/4, the separable pair 3x1 -> C/2 and 1x3 -> C/2 (zero padding 1 along the kernel's long
  side, i.e. "same"), 1x1 expansion -> C; added to the shortcut, then ReLU. The pair's order
  alternates: the even blocks of a stage (counting from 0) run 3x1 first, the odd ones 1x3
  first. The shortcut of the first block of each stage is a 1x1 convolution with the stage's
  stride (also in stage 1, where 2.0 keeps 64 channels), the other blocks add their input.
- v5 (``version="23v5"``) starts each stage with a 1x1 "transition" convolution to ``C`` with
  the stage's stride instead, and every block of the stage, the first included, is an
  identity-residual block on its output.
- Every convolution, the expansion and the shortcut included, has no bias and is followed by
  BatchNorm with a learnt scale and offset (Caffe's BatchNorm + Scale) and ReLU.
- Tail: a 1x1 convolution to 128 (also in 2.0), global average pooling and the 1000-way fully
  connected layer **without a bias** (``bias_term: false``). There is no dropout in the release
  (``dropout`` adds one before the classifier).
- G-SqNxt (``groups=2``): the first 1x1 of every block and the 3x1 and 1x3 are 2-group
  convolutions (:class:`keras_cnns.layers.GroupedDepthwiseConv2D`); the second 1x1, the
  expansion and the shortcut are not. No channel shuffle.

Maps at 227: conv1 111 (v5: 112), pool 55 (56), stages 55 (56), 28, 14, 7. Initialisation:
Caffe's ``xavier`` filler (uniform, variance 1 / fan_in) is Keras' ``"lecun_uniform"``, for
every convolution and the classifier. BatchNorm ``epsilon`` is Caffe's 1e-5; the momentum is
Keras' 0.99, not Caffe's ``moving_average_fraction`` 0.999: Caffe divides its running sums by
the running weight (an exact average from the first step), Keras does not correct the zero
start of its moving averages, which at 0.999 would stay visibly biased for thousands of steps.

Counts (``reference_figures.csv``, 1000 classes, recounted in ``tests/models/test_squeezenext.py``
from a table of its own): trainable parameters (convolution and classifier weights, BatchNorm's
gamma and beta) 1.0-SqNxt-23 717,280; 1.0-SqNxt-23v5 930,016; 1.0-G-SqNxt-23 543,072;
2.0-SqNxt-23 2,361,728; 2.0-SqNxt-23v5 3,222,912. Caffe's BatchNorm blobs (mean, variance and
a scale factor per layer, 2C + 1 values, not learnt) are not among them; Keras'
``count_params()`` adds the moving mean and variance (2C per layer: 1.0-SqNxt-23 728,832 in
all). Multiply-adds at 227 (convolutions and the classifier): 278.0 M, 224.9 M, 224.2 M,
742.1 M and 702.6 M. osmr/imgclsmob's ``sqnxt23_w1`` (724,056 parameters, 287.28 M MACs) is a
different variant and is not matched here: 224 input, biases on every convolution and the
classifier, conv1 padded by 1, block widths taken from the block's input width, and its
``23v5`` keeps the 1x1-convolution shortcuts instead of the release's transition convolutions.
"""

from __future__ import annotations

import numbers

from keras import layers

from keras_cnns._checks import check_choice, check_probability, fail
from keras_cnns.blocks.residual import grouped_conv2d
from keras_cnns.layers import CeilModeMaxPooling2D, activation_layer
from keras_cnns.models._builder import family_builder, feature_level, pooled_classifier
from keras_cnns.models._registry import register_model
from keras_cnns.models._stages import Stage, StageSpec, Transition, build_stages, plain_block
from keras_cnns.layers.batch_norm import BatchNormalization

__all__ = ["DEPTHS", "SqueezeNext", "VERSIONS", "WIDTHS", "squeezenext_block"]

_PAPER = ("Gholami et al., SqueezeNext: Hardware-Aware Neural Network Design, CVPR Workshops "
          "2018 (arXiv:1803.10615)")

VERSIONS = ("23", "23v5")
#: Stage widths per width multiplier (the released 1.0 and 2.0).
WIDTHS = {1.0: (32, 64, 128, 256), 2.0: (64, 128, 256, 512)}
#: Blocks per stage.
DEPTHS = {"23": (6, 6, 8, 1), "23v5": (2, 4, 14, 1)}
STRIDES = (1, 2, 2, 2)
STEM_FILTERS = 64
STEM_KERNEL = {"23": 7, "23v5": 5}
FINAL_FILTERS = 128
#: Caffe's "xavier" filler: uniform with variance 1 / fan_in.
KERNEL_INITIALIZER = "lecun_uniform"
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.99
#: Five stride-2 steps: 32 -> 13 -> 6 -> 6 -> 3 -> 2 -> 1 (v5: 32 -> 14 -> 7 -> 7 -> 4 -> 2 -> 1);
#: the layers would build from 11 (v5: 9), but with 1x1 maps from the pool on.
MIN_INPUT_SIZE = 32


def _conv_bn_relu(x, filters, kernel_size, *, strides=1, groups=1, padding="valid", name):
    """Bias-free convolution (2-group: the custom op) -> BatchNorm (gamma, beta) -> ReLU."""
    x = grouped_conv2d(filters, kernel_size, strides=strides, groups=groups, padding=padding,
                       use_bias=False, kernel_initializer=KERNEL_INITIALIZER,
                       name=f"{name}_conv")(x)
    x = BatchNormalization(axis=-1, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                           name=f"{name}_bn")(x)
    return activation_layer("relu", name=f"{name}_act")(x)


def squeezenext_block(x, filters, *, strides=1, shortcut_conv=False, groups=1,
                      order=("3x1", "1x3"), name):
    """One SqueezeNext block with output width ``filters`` (layers ``{name}_...``).

    ``{name}_squeeze1`` (1x1 -> filters/2, ``strides``, ``groups``), ``{name}_squeeze2``
    (1x1 -> filters/4), ``{name}_conv3x1`` and ``{name}_conv1x3`` (-> filters/2, "same",
    ``groups``) in ``order``, ``{name}_expand`` (1x1 -> filters); each conv + BN + ReLU. The
    shortcut is the input (``shortcut_conv=False``: then ``strides`` must be 1 and the input
    ``filters`` wide) or ``{name}_shortcut`` (1x1 -> filters, ``strides``, + BN + ReLU);
    ``{name}_add`` and ``{name}_relu`` close the block.
    """
    if not shortcut_conv and (strides != 1 or x.shape[-1] != filters):
        fail("shortcut_conv", f"must be True when the block changes the shape (input "
                              f"{x.shape[-1]} channels, {filters} filters, stride {strides})",
             shortcut_conv)
    kernels = {"3x1": (3, 1), "1x3": (1, 3)}
    if sorted(order) != ["1x3", "3x1"]:
        fail("order", "must be ('3x1', '1x3') or ('1x3', '3x1')", order)
    shortcut = x
    if shortcut_conv:
        shortcut = _conv_bn_relu(x, filters, 1, strides=strides, name=f"{name}_shortcut")
    y = _conv_bn_relu(x, filters // 2, 1, strides=strides, groups=groups, name=f"{name}_squeeze1")
    y = _conv_bn_relu(y, filters // 4, 1, name=f"{name}_squeeze2")
    for kernel in order:
        y = _conv_bn_relu(y, filters // 2, kernels[kernel], groups=groups, padding="same",
                          name=f"{name}_conv{kernel}")
    y = _conv_bn_relu(y, filters, 1, name=f"{name}_expand")
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_relu")(y)


_BLOCK = plain_block(squeezenext_block, stride_arg="strides", takes_groups=True)


def _stage(stage, filters, depth, stride, version, groups):
    """Stage ``stage`` (1-based): v5 the strided transition convolution, then ``depth``
    identity blocks; 23 the strided first block with its 1x1-convolution shortcut, then
    identity blocks."""
    if version == "23v5":
        def transition(t):
            return _conv_bn_relu(t, filters, 1, strides=stride, name=f"stage{stage}_transition")
        return Stage(StageSpec("block", depth, filters, groups=groups),
                     pre=Transition(transition, stride=stride))
    first = StageSpec("block", 1, filters, stride=stride, groups=groups,
                      options={"shortcut_conv": True})
    return Stage([first] + ([StageSpec("block", depth - 1, filters, groups=groups)]
                            if depth > 1 else []))


def _pair_order(stage_index, block_index):
    """The separable pair's order: 3x1 first in the even blocks of a stage, 1x3 in the odd."""
    return {"order": ("3x1", "1x3") if block_index % 2 == 0 else ("1x3", "3x1")}


def _default_name(width, version, groups):
    return f"{'g_' if groups == 2 else ''}sqnxt{version}_{width:.1f}".replace(".", "_")


@family_builder
def SqueezeNext(width=1.0, version="23", groups=1, dropout=0.0, *, ctx):
    """SqueezeNext (Gholami et al. 2018) as a functional Keras model: the Caffe release's layers.

    Args:
        width: ``1.0`` or ``2.0``: stage widths 32/64/128/256 or 64/128/256/512 (the released
            multipliers).
        version: ``"23"`` (6, 6, 8, 1 blocks, 7x7 conv1, a 1x1-convolution shortcut on the first
            block of each stage) or ``"23v5"`` (2, 4, 14, 1 blocks, 5x5 conv1, a 1x1 transition
            convolution at the start of each stage).
        groups: ``1``, or ``2`` for G-SqNxt (2-group first 1x1, 3x1 and 1x3 in every block;
            released for ``width=1.0, version="23"`` only).
        dropout: dropout rate before the classifier, in ``[0, 1)`` (the release has none).
{common_args}

    Feature levels (``features_only``): P1 ``conv1``, P2..P4 the outputs of stages 1..3, P5
    the final 1x1 convolution (128 channels).

    Returns:
        A ``keras.Model``: class scores ``[N, classes]`` with the top (a fully connected layer
        without bias), else the final 128-channel map or its pooled vector.

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    if isinstance(width, bool) or not isinstance(width, numbers.Real) or width not in WIDTHS:
        fail("width", f"must be one of {list(WIDTHS)}", width)
    width = float(width)
    version = check_choice("version", version, VERSIONS)
    if isinstance(groups, bool) or groups not in (1, 2):
        fail("groups", "must be 1 or 2", groups)
    groups = int(groups)
    dropout = check_probability("dropout", dropout)

    x = ctx.start(default_shape=(227, 227, 3), min_size=MIN_INPUT_SIZE)
    x = _conv_bn_relu(x, STEM_FILTERS, STEM_KERNEL[version], strides=2, name="conv1")
    p1 = x
    x = CeilModeMaxPooling2D(3, 2, name="pool1")(x)
    stages = [_stage(stage, filters, depth, stride, version, groups) for stage, (
        filters, depth, stride) in enumerate(zip(WIDTHS[width], DEPTHS[version], STRIDES), 1)]
    x, features = build_stages(x, stages, block_fns={"block": _BLOCK},
                               block_kwargs_fn=_pair_order, level=2, features={"P1": p1},
                               name_fn=lambda s, b: f"stage{s + 1}_block{b + 1}")
    x = _conv_bn_relu(x, FINAL_FILTERS, 1, name="final")
    features["P5"] = x
    # conv1 (k x k, stride 2, valid) gives floor((H - k) / 2) + 1; the ceil-mode 3x3/2 pool adds
    # (3 - 2) * 2 to that extent, and the strided 1x1 convolutions after it keep it:
    # side = floor((H - extent) / stride) + 1 at every later level.
    k = STEM_KERNEL[version]
    features = {name: feature_level(name, t, extent=k if name == "P1" else k + 2)
                for name, t in features.items()}

    def head(x):
        return pooled_classifier(x, ctx, dropout, use_bias=False,
                                 kernel_initializer=KERNEL_INITIALIZER)

    return ctx.finish(x, head, default_name=_default_name(width, version, groups),
                      features=features)


# reference figures: reference_figures.csv
for _width, _version, _groups in ((1.0, "23", 1), (1.0, "23v5", 1), (1.0, "23", 2),
                                  (2.0, "23", 1), (2.0, "23v5", 1)):
    register_model(_default_name(_width, _version, _groups), family="SqueezeNext", paper=_PAPER,
                   builder=SqueezeNext, default_input_shape=(227, 227, 3),
                   min_input_size=MIN_INPUT_SIZE, width=_width, version=_version, groups=_groups)
del _width, _version, _groups
