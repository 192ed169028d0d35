"""HyperNetworks: Wide ResNets whose 3x3 kernels a static hypernetwork generates.

Paper: D. Ha, A. Dai, Q. V. Le, "HyperNetworks", ICLR 2017 (arXiv:1609.09106): Sec. 3.1 (static
hypernetworks for deep convolutional networks), Appendix A.2 and Table 2 (CIFAR-10 "Hyper
Residual Network 40-1 / 40-2", 0.097 M / 0.148 M parameters, 8.02 % / 7.23 % test error, beside
the plain WRN-40-1 / 40-2 at 0.563 M / 2.236 M).

The main network is the CIFAR Wide ResNet WRN-``depth``-``k`` of Zagoruyko & Komodakis 2016
(arXiv:1605.07146) in the layout of the authors' code (szagoruyko/wide-residual-networks) that
:func:`keras_cnns.models.resnet.WideResNet` builds: a 3x3 stem of 16 filters, three stages of
``n = (depth - 4) / 6`` pre-activation basic blocks (BN -> ReLU -> 3x3 -> BN -> ReLU ->
[dropout] -> 3x3, + shortcut) of ``16k / 32k / 64k`` filters at strides 1 / 2 / 2, a 1x1
projection (reading the pre-activated input) where the width changes, a final BN -> ReLU,
global average pooling and a 10-way FC; no convolution biases. Layer names are the same as
:func:`~keras_cnns.models.resnet.WideResNet`'s (``conv1_conv``, ``conv{s}_block{b}_{i}_conv``,
``..._preact_bn``, ``..._0_conv``, ``post_bn``, ``avg_pool``, ``predictions``).

What the hypernetwork generates (the paper's Hyper Residual Network): every 3x3 convolution of
the residual blocks (``conv{s}_block{b}_1_conv`` and ``_2_conv``, :class:`HyperConv2D`), from
one :class:`HyperKernelGenerator` (``hypernetwork``) shared by all of them: ``N_z = d = 64``,
16 x 16 x 3 x 3 tiles, a layer of ``C_in -> C_out`` channels holding ``(C_in / 16) (C_out /
16)`` embeddings (:mod:`keras_cnns.layers.hyper`). Normal weights: the stem convolution (3 input
channels, not a multiple of the tile), the 1x1 projections, BatchNorm and the FC, as in the
PyTorch re-implementation g1910/HyperNetworks (``primary_net.py``: a plain ``conv1``, plain 1x1
``reslayer`` projections, BN, ``final`` FC; its main network is a post-activation ResNet-38
with the same 36 generated 3x3 convolutions).

Parameter counts (trainable; the arithmetic is in ``tests/models/test_hypernet.py``): generator
``16 * 64 * 65 + 9 * 16 * 65 = 75,920``; embeddings ``64`` per tile, 242 tiles for 40-1 and
966 for 40-2; with the stem, BatchNorm, projections and FC:

* ``hyper_wrn_40_1``: 75,920 + 15,488 + 432 + 2,720 + 2,560 + 650 = **97,770**;
* ``hyper_wrn_40_2``: 75,920 + 61,824 + 432 + 5,408 + 10,752 + 1,290 = **155,626**.

Against the paper's Table 2: 97,770 is 0.098 M (the paper prints 0.097 M: a truncation would
fit); 155,626 is 0.156 M (the paper prints 0.148 M). No reading of the paper's construction found reproduces both
(shortcut A instead of projections: 95,210 / 144,874; BatchNorm without gamma, a different
BN placement, biases in or out: none fits both); the same table's WRN-40-2 (2.236 M) is also
about 7.5 K below the authors' WRN-40-2 code (2,243,546), so the paper's main network probably
differs from the released WRN code in a way the paper does not describe.
"""

from __future__ import annotations

from keras import layers

from keras_cnns._checks import check_probability, fail, is_int
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.hyper import HyperConv2D, HyperKernelGenerator
from keras_cnns.models._builder import family_builder
from keras_cnns.models._registry import register_model
from keras_cnns.models._stages import StageSpec, build_stages, plain_block, stage_levels
from keras_cnns.models.heads import pooled_classifier

__all__ = ["HyperWideResNet", "hyper_preact_basic_block"]

_PAPER = ("D. Ha, A. Dai, Q. V. Le. HyperNetworks. ICLR 2017 (arXiv:1609.09106)")
_STEM_WIDTH = 16
_CIFAR_FILTERS = (16, 32, 64)
_MIN_SIZE = 8  # two stride-2 stages: 8 -> 2
#: torchvision's / the WRN code's BatchNorm (eps 1e-5, momentum 0.1 = Keras 0.9)
_BN = dict(epsilon=1e-5, momentum=0.9)
_FAN_OUT_NORMAL = {"class_name": "VarianceScaling",
                   "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"}}


def _bn_relu(x, name):
    x = BatchNormalization(axis=-1, name=f"{name}_bn", **_BN)(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _hyper_conv(x, filters, stride, params, name):
    """``{name}_conv``: a generated 3x3 convolution; a strided one is padded explicitly by 1
    (``{name}_pad``, PyTorch's padding, as the WRN code)."""
    padding = "same"
    if stride > 1:
        x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        padding = "valid"
    return HyperConv2D(filters, strides=stride, padding=padding, name=f"{name}_conv")([x, *params])


def hyper_preact_basic_block(x, filters, *, stride=1, params, dropout=0.0, name):
    """The WRN pre-activation basic block with generated 3x3 kernels: ``BN -> ReLU ->
    hyper 3x3 (stride) -> BN -> ReLU -> [dropout] -> hyper 3x3``, + the identity or, where the
    width changes, a 1x1 projection of the pre-activated input (``{name}_0_conv``).

    Args:
        x: input ``[N, H, W, C]``.
        filters: output channels.
        stride: stride of the first 3x3 (and of the projection).
        params: the shared generator's output ``[w_in, b_in, w_out, b_out]``.
        dropout: dropout rate between the convolutions.
        name: layer-name prefix.
    """
    in_channels = int(x.shape[-1])
    pre = _bn_relu(x, f"{name}_preact")
    if in_channels != filters:  # the projection reads the pre-activated input
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                                 kernel_initializer=_FAN_OUT_NORMAL, name=f"{name}_0_conv")(pre)
    elif stride > 1:
        shortcut = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
    else:
        shortcut = x
    y = _hyper_conv(pre, filters, stride, params, f"{name}_1")
    y = _bn_relu(y, f"{name}_1")
    if dropout > 0:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = _hyper_conv(y, filters, 1, params, f"{name}_2")
    return layers.Add(name=f"{name}_out")([shortcut, y])


def _is_depth(depth):
    return is_int(depth) and depth > 4 and (depth - 4) % 6 == 0


@family_builder(classes=10)
def HyperWideResNet(depth=40, k=1, z_dim=64, tile_size=16, dropout=0.0, *, ctx):
    """Hyper Residual Network ``depth``-``k`` (Ha et al. 2017, Sec. 3.1, Appendix A.2, Table 2):
    the CIFAR WRN-``depth``-``k`` (Zagoruyko & Komodakis 2016, the authors' layout, as
    :func:`keras_cnns.models.resnet.WideResNet`) whose residual-block 3x3 kernels one shared
    static hypernetwork generates from learned per-tile embeddings.

    Input: default ``(32, 32, 3)``, sides >= 8; 10 classes. The stem convolution, the 1x1
    projections, BatchNorm and the classifier are ordinary weights; the 3x3 kernels of the
    blocks are computed at every call (:class:`keras_cnns.layers.HyperConv2D`) from their
    embeddings by the generator ``hypernetwork`` (:class:`keras_cnns.layers.HyperKernelGenerator`,
    ``d = N_z``).

    Args:
        depth: ``6n + 4`` with ``n >= 1`` (the paper: 40).
        k: widening factor, a positive integer (the paper: 1 and 2).
        z_dim: ``N_z``, the size of a tile embedding and of the generator's hidden vectors
            (the paper: 64).
        tile_size: ``N_in = N_out``, the channels of a generated tile (the paper: 16); must divide
            every generated layer's channels (16, 16k, 32k, 64k).
        dropout: dropout rate between the two convolutions of a block (0: none).
{common_args}

    Returns:
        A ``keras.Model`` (default name ``"hyper_wrn_{depth}_{k}"``).

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    if not _is_depth(depth):
        fail("depth", "must be 6n + 4 for an integer n >= 1 (16, 22, 28, 40, ...)", depth)
    if not is_int(k) or k < 1:
        fail("k", "must be a positive integer (the widening factor)", k)
    if not is_int(z_dim) or z_dim < 1:
        fail("z_dim", "must be a positive integer (N_z, the embedding size)", z_dim)
    widths = tuple(f * int(k) for f in _CIFAR_FILTERS)
    if not is_int(tile_size) or tile_size < 1 \
            or any(c % tile_size for c in (_STEM_WIDTH, *widths)):
        fail("tile_size", f"must be a positive integer dividing every generated layer's "
                          f"channels {sorted({_STEM_WIDTH, *widths})} (the paper: 16)", tile_size)
    dropout = check_probability("dropout", dropout)
    depth, k, z_dim, tile_size = int(depth), int(k), int(z_dim), int(tile_size)

    img_input = ctx.start(default_shape=(32, 32, 3), min_size=_MIN_SIZE)
    generator = HyperKernelGenerator(z_dim=z_dim, in_size=tile_size, out_size=tile_size,
                                     kernel_size=3, name="hypernetwork")
    params = generator(img_input)
    x = layers.Conv2D(_STEM_WIDTH, 3, padding="same", use_bias=False,
                      kernel_initializer=_FAN_OUT_NORMAL, name="conv1_conv")(img_input)
    n = (depth - 4) // 6
    stages = [StageSpec("hyper_preact_basic", n, f, stride=s) for f, s in zip(widths, (1, 2, 2))]
    x, features = build_stages(
        x, stages, block_fns={"hyper_preact_basic": plain_block(hyper_preact_basic_block)},
        block_kwargs=dict(params=params, dropout=dropout),
        name_fn=lambda s, b: f"conv{s + 2}_block{b + 1}", level=0, features={},
    )
    x = BatchNormalization(axis=-1, name="post_bn", **_BN)(x)
    x = layers.ReLU(name="post_relu")(x)
    features[f"P{max(stage_levels(stages, 0))}"] = x
    return ctx.finish(x, lambda t: pooled_classifier(t, ctx), default_name=f"hyper_wrn_{depth}_{k}",
                      features=features)


# Reference figures (the hand counts above, the paper's Table 2): reference_figures.csv.
for _k in (1, 2):
    register_model(f"hyper_wrn_40_{_k}", family="HyperNetwork", paper=_PAPER,
                   builder=HyperWideResNet, default_input_shape=(32, 32, 3),
                   min_input_size=_MIN_SIZE, default_classes=10, depth=40, k=_k)
del _k
