"""Residual blocks: basic and bottleneck, post-activation (ResNet v1) and pre-activation (v2).

Functional-API builders ``block(x, filters, ...) -> tensor`` shared by the residual families
(ResNet, ResNeXt, Wide ResNet, stochastic depth; see :mod:`keras_cnns.models.resnet`):

* :func:`basic_block`: two 3x3 convolutions (He et al. 2015, "Deep Residual Learning for Image
  Recognition", arXiv:1512.03385, Fig. 5 left).
* :func:`bottleneck_block`: 1x1 -> 3x3 -> 1x1 with expansion 4 (Fig. 5 right); with ``groups``
  and ``base_width`` the ResNeXt block (Xie et al. 2017, "Aggregated Residual Transformations",
  arXiv:1611.05431, Fig. 3c: the grouped-convolution form) and the wide bottleneck of
  torchvision's ``wide_resnet50_2`` (Zagoruyko & Komodakis 2016, arXiv:1605.07146).
* :func:`preact_basic_block`, :func:`preact_bottleneck_block`: the same with BN -> ReLU before
  each convolution and nothing after the addition (He et al. 2016, "Identity Mappings in Deep
  Residual Networks", arXiv:1603.05027, Fig. 4e), the blocks of keras.applications ResNetV2, of
  the paper's CIFAR ResNet-164/1001 and of Wide ResNets.

Arguments every block takes (:func:`check_block_args` validates them, before any layer):

* ``filters``: the block's "planes": the output channels of a basic block; the bottleneck
  ``planes``, whose output is ``4 * filters``.
* ``stride``; ``stride_on``: which convolution of a bottleneck strides: ``"1x1"`` (the paper,
  Caffe's original models and keras.applications ResNet50: the first 1x1) or ``"3x3"``
  (torchvision since v0.4, "ResNet v1.5", and keras.applications ResNetV2). Paper and reference
  code disagree here: the paper's Table 1 only says that conv3_1, conv4_1 and conv5_1 downsample
  "with a stride of 2"; torchvision's ``Bottleneck`` docstring notes that putting the stride on
  the 3x3 (as in Goyal et al. 2017) improves accuracy. Basic blocks always stride on their first
  3x3.
* ``groups``, ``base_width``: bottleneck width ``int(filters * base_width / 64) * groups``
  (torchvision's formula: ResNeXt 32x4d is ``groups=32, base_width=4``, WRN-50-2 is
  ``base_width=128``); basic blocks accept only ``groups=1, base_width=64`` (as torchvision).
* ``shortcut``: ``"A"``: parameter free, the input subsampled with the block's stride
  (``x[:, ::s, ::s]``, a 1x1 max pool) and zero channels appended when the block widens (He et al.
  2015, option A, their CIFAR networks); ``"B"``: a 1x1 convolution (+ BN in post-activation
  blocks) where the channel count changes, else the identity (a change of resolution alone, as in
  keras.applications ResNetV2's last block of a stage, is the parameter-free subsample there);
  ``"C"``: the projection in every block.
* ``dropout``: dropout rate before the last convolution (Wide ResNets: between the two 3x3).
* ``survival_prob``: stochastic depth (Huang et al. 2016, arXiv:1603.09382): ``None`` (off) or
  ``p_l`` in ``(0, 1]``; the branch is then wrapped in
  :class:`~keras_cnns.blocks.StochasticDepth`, which skips its computation when dropped.
* ``bn_epsilon``, ``bn_momentum``: BatchNormalization settings; torchvision's eps 1e-5 and
  momentum 0.1 are Keras' ``epsilon=1e-5, momentum=0.9``; keras.applications ResNet uses
  ``epsilon=1.001e-5`` and Keras' default momentum 0.99.
* ``use_bias``: keras.applications' conv biases: every convolution of a post-activation block,
  the last convolution and the projection of a pre-activation block (the others feed a BN).
* ``explicit_pad``: 3x3 convolutions get an explicit ``{name}_{i}_pad`` ZeroPadding2D(1) even at
  stride 1 (keras.applications ResNetV2's layout). Strided 3x3 convolutions are always padded
  explicitly (1 on every side, PyTorch's padding) because Keras' ``"same"`` would pad only the
  bottom/right at stride 2 and shift the sampling grid against torchvision's weights.
* ``kernel_initializer``; ``seed`` (of the stochastic-depth draws); ``name``: the layer-name
  prefix (``None``: Keras' automatic names).

Layer names follow keras.applications (``{name}_1_conv``, ``{name}_1_bn``, ``{name}_1_relu``,
..., ``{name}_0_conv`` / ``{name}_0_bn`` for the projection, ``{name}_add`` + ``{name}_out``
(the ReLU) after a post-activation block, ``{name}_preact_bn`` / ``{name}_preact_relu`` and the
addition ``{name}_out`` in a pre-activation block); ``{name}_0_pool`` / ``{name}_0_pad`` are
shortcut A's subsample and channel padding, ``{name}_dropout`` the dropout. With stochastic
depth the branch layers live in the model ``{name}_branch`` held by the ``StochasticDepth``
layer, which takes the place (and name) of the addition.
"""

from __future__ import annotations

import numbers
from typing import Any, Dict

import keras

from keras_cnns._checks import check_survival_prob, fail, is_int
from keras_cnns.blocks.stochastic_depth import add_residual
from keras_cnns.layers.activations import activation_layer
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.stochastic_depth import PadChannels
from keras_cnns.layers.utils import sub

__all__ = [
    "BLOCKS",
    "EXPANSION",
    "basic_block",
    "bottleneck_block",
    "bottleneck_width",
    "check_block_args",
    "grouped_conv2d",
    "preact_basic_block",
    "preact_bottleneck_block",
]

STRIDE_ON = ("1x1", "3x3")
SHORTCUTS = ("A", "B", "C")
#: Output channels = EXPANSION[kind] * filters.
EXPANSION = {"basic": 1, "bottleneck": 4, "preact_basic": 1, "preact_bottleneck": 4}


def grouped_conv2d(filters, kernel_size, *, strides=1, groups=1, padding="valid", use_bias=False,
                   kernel_initializer="he_normal", name=None):
    """The convolution layer of every residual block (the one place that picks its implementation).

    ``groups == 1``: ``keras.layers.Conv2D``. ``groups > 1`` (ResNeXt's 3x3):
    :class:`keras_cnns.layers.GroupedDepthwiseConv2D`, the custom op, with the same kernel
    layout ``[KH, KW, C / groups, filters]``: ``benchmarks/bench_resnext_grouped.py`` measures a
    training step of ResNeXt-50's grouped 3x3 convolutions about 75x faster with it than with
    ``Conv2D(groups=)``, which TensorFlow's CPU runs under XLA (its own CPU kernels have no
    grouped-convolution gradient without oneDNN).
    """
    if groups > 1:
        from keras_cnns.layers import GroupedDepthwiseConv2D

        return GroupedDepthwiseConv2D(
            filters, kernel_size, strides=strides, padding=padding, groups=groups,
            use_bias=use_bias, kernel_initializer=kernel_initializer, name=name,
        )
    return keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
        kernel_initializer=kernel_initializer, name=name,
    )


def bottleneck_width(filters, base_width=64, groups=1):
    """torchvision's bottleneck width ``int(filters * base_width / 64) * groups``."""
    return int(filters * (base_width / 64.0)) * groups


def _check_number(arg, value, low, high, high_inclusive):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value
    if ok:
        ok = low <= value <= high if high_inclusive else low <= value < high
    if not ok:
        fail(arg, f"must be a number in [{low}, {high}{']' if high_inclusive else ')'}", value)
    return float(value)


def check_block_args(kind, filters, *, stride=1, groups=1, base_width=64, stride_on="3x3",
                     shortcut="B", dropout=0.0, survival_prob=None, bn_epsilon=1e-5,
                     bn_momentum=0.9, use_bias=False, explicit_pad=False,
                     kernel_initializer="he_normal", seed=None, name=None) -> Dict[str, Any]:
    """Validate the arguments of a ``kind`` block (a key of :data:`BLOCKS`); return them checked.

    Raises:
        ValueError: an invalid argument; the message names it.
    """
    if kind not in EXPANSION:
        fail("kind", f"must be one of {sorted(EXPANSION)}", kind)
    for arg, value in (("filters", filters), ("stride", stride), ("groups", groups),
                       ("base_width", base_width)):
        if not is_int(value) or value < 1:
            fail(arg, "must be a positive integer", value)
    if kind.endswith("basic") and (groups != 1 or base_width != 64):
        fail("groups" if groups != 1 else "base_width",
             "must be groups=1 and base_width=64 in a basic block (torchvision's BasicBlock); "
             "use a bottleneck block for ResNeXt / wide bottlenecks",
             groups if groups != 1 else base_width)
    if kind.endswith("bottleneck") and bottleneck_width(filters, base_width, groups) < groups:
        fail("base_width", "gives a bottleneck width int(filters * base_width / 64) * groups of 0",
             base_width)
    if stride_on not in STRIDE_ON:
        fail("stride_on", f"must be one of {list(STRIDE_ON)}", stride_on)
    if shortcut not in SHORTCUTS:
        fail("shortcut", f"must be one of {list(SHORTCUTS)}", shortcut)
    for arg, value in (("use_bias", use_bias), ("explicit_pad", explicit_pad)):
        if not isinstance(value, bool):
            fail(arg, "must be True or False", value)
    if seed is not None and not is_int(seed):
        fail("seed", "must be None or an integer", seed)
    if name is not None and (not isinstance(name, str) or not name):
        fail("name", "must be None or a non-empty string", name)
    if isinstance(bn_epsilon, bool) or not isinstance(bn_epsilon, numbers.Real) or not bn_epsilon > 0:
        fail("bn_epsilon", "must be a number > 0", bn_epsilon)
    return dict(
        filters=int(filters), stride=int(stride), groups=int(groups), base_width=int(base_width),
        stride_on=stride_on, shortcut=shortcut,
        dropout=_check_number("dropout", dropout, 0.0, 1.0, False),
        survival_prob=check_survival_prob("survival_prob", survival_prob),
        bn_epsilon=float(bn_epsilon),
        bn_momentum=_check_number("bn_momentum", bn_momentum, 0.0, 1.0, False),
        use_bias=use_bias, explicit_pad=explicit_pad, kernel_initializer=kernel_initializer,
        seed=None if seed is None else int(seed), name=name,
    )


class _Block:
    """One block's checked arguments and the layer-building steps its kinds share."""

    def __init__(self, kind, x, filters, kwargs):
        self.__dict__.update(check_block_args(kind, filters, **kwargs))
        self.kind = kind
        channels = x.shape[-1]
        if channels is None:
            fail("x", "must have a known number of channels", tuple(x.shape))
        self.in_channels = int(channels)
        self.out_channels = EXPANSION[kind] * self.filters
        self.projects = self.shortcut == "C" or (
            self.shortcut == "B" and self.in_channels != self.out_channels)
        if not self.projects and self.in_channels > self.out_channels:
            fail("shortcut", f"'A' cannot narrow {self.in_channels} to {self.out_channels} "
                             "channels (it only pads); use 'B' or 'C'", self.shortcut)

    def name_of(self, suffix):
        return sub(self.name, suffix)

    def bn(self, x, suffix):
        return BatchNormalization(
            axis=-1, momentum=self.bn_momentum, epsilon=self.bn_epsilon, name=self.name_of(suffix),
        )(x)

    def relu(self, x, suffix):
        return activation_layer("relu", name=self.name_of(suffix))(x)

    def conv(self, x, index, filters, kernel_size, *, stride=1, groups=1, bn=True, act=True,
             use_bias=False):
        """``{name}_{index}_[pad|conv|bn|relu]``: [explicit pad] -> conv -> [BN] -> [ReLU]."""
        padding = "valid"
        if kernel_size > 1:
            padding = "same"
            if stride > 1 or self.explicit_pad:
                x = keras.layers.ZeroPadding2D(kernel_size // 2, name=self.name_of(f"{index}_pad"))(x)
                padding = "valid"
        x = grouped_conv2d(
            filters, kernel_size, strides=stride, groups=groups, padding=padding, use_bias=use_bias,
            kernel_initializer=self.kernel_initializer, name=self.name_of(f"{index}_conv"),
        )(x)
        if bn:
            x = self.bn(x, f"{index}_bn")
        if act:
            x = self.relu(x, f"{index}_relu")
        return x

    def shortcut_of(self, x, *, bn):
        """The projection ``{name}_0_conv`` [+ ``_0_bn``], or the parameter-free shortcut."""
        if self.projects:
            x = grouped_conv2d(self.out_channels, 1, strides=self.stride, use_bias=self.use_bias,
                               kernel_initializer=self.kernel_initializer,
                               name=self.name_of("0_conv"))(x)
            return self.bn(x, "0_bn") if bn else x
        if self.stride > 1:
            x = keras.layers.MaxPooling2D(1, strides=self.stride, name=self.name_of("0_pool"))(x)
        if self.out_channels > self.in_channels:
            x = PadChannels(self.out_channels - self.in_channels, name=self.name_of("0_pad"))(x)
        return x

    def branch(self, x, units, *, post_activation):
        """The convolutions ``units`` = ``[(filters, kernel, stride, groups), ...]``; the dropout
        before the last one. Post-activation: every conv has BN, all but the last a ReLU;
        pre-activation: the last conv has neither (the next block's pre-activation follows)."""
        for index, (filters, kernel_size, stride, groups) in enumerate(units, start=1):
            last = index == len(units)
            if last and self.dropout > 0:
                x = keras.layers.Dropout(self.dropout, name=self.name_of("dropout"))(x)
            x = self.conv(x, index, filters, kernel_size, stride=stride, groups=groups,
                          bn=post_activation or not last, act=not last,
                          use_bias=self.use_bias and (post_activation or last))
        return x

    def add(self, x, shortcut, branch_fn, suffix):
        """``shortcut + branch_fn(x)`` as ``{name}_{suffix}`` (see
        :func:`~keras_cnns.blocks.stochastic_depth.add_residual`)."""
        return add_residual(x, shortcut, branch_fn, name_of=self.name_of, add_suffix=suffix,
                            survival_prob=self.survival_prob, seed=self.seed)


def _units(block):
    """The convolutions of a block: ``[(filters, kernel, stride, groups), ...]``."""
    if block.kind.endswith("basic"):
        return [(block.filters, 3, block.stride, 1), (block.filters, 3, 1, 1)]
    width = bottleneck_width(block.filters, block.base_width, block.groups)
    s1, s3 = (block.stride, 1) if block.stride_on == "1x1" else (1, block.stride)
    return [(width, 1, s1, 1), (width, 3, s3, block.groups), (block.out_channels, 1, 1, 1)]


def _post_activation_block(kind, x, filters, kwargs):
    block = _Block(kind, x, filters, kwargs)
    shortcut = block.shortcut_of(x, bn=True)  # first, as keras.applications builds it
    units = _units(block)
    y = block.add(x, shortcut, lambda t: block.branch(t, units, post_activation=True), "add")
    return block.relu(y, "out")


def _pre_activation_block(kind, x, filters, kwargs):
    block = _Block(kind, x, filters, kwargs)
    units = _units(block)

    def preact(t):
        return block.relu(block.bn(t, "preact_bn"), "preact_relu")

    def convs(t):
        return block.branch(t, units, post_activation=False)

    if block.projects:  # the projection also reads the pre-activated input
        p = preact(x)
        return block.add(p, block.shortcut_of(p, bn=False), convs, "out")
    shortcut = block.shortcut_of(x, bn=False)
    return block.add(x, shortcut, lambda t: convs(preact(t)), "out")


_ARGS_DOC = """

    Args:
        x: input tensor ``[N, H, W, C]`` (channels last, ``C`` known).
        filters: see the module docstring (output ``{expansion} * filters`` channels).
        **kwargs: ``stride, groups, base_width, stride_on, shortcut, dropout, survival_prob,
            bn_epsilon, bn_momentum, use_bias, explicit_pad, kernel_initializer, seed, name``
            (module docstring; defaults as torchvision: stride 1, ``stride_on="3x3"``,
            ``shortcut="B"``, eps 1e-5, momentum 0.9, no biases).

    Returns:
        The block's output tensor.

    Raises:
        ValueError: an invalid argument (the message names it).
    """


def basic_block(x, filters, **kwargs):
    """Post-activation basic block: 3x3 -> BN -> ReLU -> 3x3 -> BN, + shortcut, ReLU."""
    return _post_activation_block("basic", x, filters, kwargs)


def bottleneck_block(x, filters, **kwargs):
    """Post-activation bottleneck: 1x1 -> BN -> ReLU -> 3x3 (grouped) -> BN -> ReLU -> 1x1 -> BN,
    + shortcut, ReLU."""
    return _post_activation_block("bottleneck", x, filters, kwargs)


def preact_basic_block(x, filters, **kwargs):
    """Pre-activation basic block: BN -> ReLU -> 3x3 -> BN -> ReLU -> [dropout] -> 3x3, + shortcut
    (a projection reads the pre-activated input, as in keras.applications ResNetV2 and the Wide
    ResNet code)."""
    return _pre_activation_block("preact_basic", x, filters, kwargs)


def preact_bottleneck_block(x, filters, **kwargs):
    """Pre-activation bottleneck: BN -> ReLU -> 1x1 -> BN -> ReLU -> 3x3 -> BN -> ReLU -> 1x1,
    + shortcut."""
    return _pre_activation_block("preact_bottleneck", x, filters, kwargs)


for _fn, _kind in ((basic_block, "basic"), (bottleneck_block, "bottleneck"),
                   (preact_basic_block, "preact_basic"), (preact_bottleneck_block, "preact_bottleneck")):
    _fn.__doc__ += _ARGS_DOC.format(expansion=EXPANSION[_kind])
del _fn, _kind

#: Block kind -> block function; :func:`keras_cnns.models._stages.build_stages` looks kinds up
#: here unless given its own mapping.
BLOCKS = {
    "basic": basic_block,
    "bottleneck": bottleneck_block,
    "preact_basic": preact_basic_block,
    "preact_bottleneck": preact_bottleneck_block,
}
