"""The units of the shuffle line: ShuffleNet v1's and ShuffleNet v2's.

**ShuffleNet v1** (Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional
Neural Network for Mobile Devices", CVPR 2018, arXiv:1707.01083, Fig. 2 (b), (c)):
a 1x1 group convolution to the bottleneck width ``filters / 4`` (BN, ReLU), the channel
shuffle, a 3x3 depthwise convolution with the unit's stride (BN, no activation), a 1x1 group
convolution back to the output width (BN); stride 1: ``ReLU(x + branch(x))``; stride 2:
``concat(AvgPool3x3/2(x), ReLU(branch(x)))``, so the branch produces ``filters - C_in``
channels. The shuffle and the depthwise convolution are **one** custom-op call
(:func:`keras_cnns.blocks.inverted_residual.depthwise_conv` with ``shuffle_groups``): the op
reads its input through the shuffle's permutation, so no shuffled copy of the map is made. The
1x1 group convolutions run on the op's grouped path (Keras' ``Conv2D(groups=...)`` has no TF
CPU kernel outside XLA). ``first=True`` is the paper's first unit of stage 2, whose first 1x1
convolution is not grouped ("the number of input channels is relatively small").

The megvii release (megvii-model/ShuffleNet-Series ``ShuffleNetV1/blocks.py``) applies the
shuffle after the depthwise convolution and its BN instead of before it; both are per-channel
operations, so the two orders compute the same function up to a permutation of the depthwise
kernel and BN weights (``tests/models/test_shufflenet.py`` checks it). Its shuffle also views
the channels as ``(C / g, g)`` rather than the paper's ``(g, C / g)``, i.e. the inverse
permutation; we follow the paper (and torchvision's ``channel_shuffle``), so a megvii
checkpoint would need its last 1x1 kernels' input channels permuted. Padding follows
PyTorch (symmetric ``1`` for the strided depthwise convolution and the average pool, whose
divisor counts the zero padding, as ``torch.nn.AvgPool2d``'s default ``count_include_pad``).

**ShuffleNet v2** (Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient
CNN Architecture Design", ECCV 2018, arXiv:1807.11164, Fig. 3 (c), (d)), torchvision's
``InvertedResidual`` (``torchvision/models/shufflenetv2.py``): stride 1 splits the channels in
halves, keeps the first and passes the second through 1x1 (BN, ReLU) -> 3x3 depthwise (BN) ->
1x1 (BN, ReLU); stride 2 runs two branches on the whole input, ``3x3 depthwise /2 (BN) -> 1x1
(BN, ReLU)`` and the same three layers as above with the stride in the depthwise convolution;
both concatenate and then shuffle with 2 groups (:class:`~keras_cnns.layers.ChannelShuffle`,
4-D tensors only).

Layer names follow torchvision's module prefixes for v2 (``{name}_branch2_0`` is
``{prefix}.branch2.0``), so :func:`keras_cnns.from_torchvision` pairs them by name.
"""

from __future__ import annotations

import keras

from keras_cnns._checks import check_float, check_positive_int, fail
from keras_cnns.blocks.inverted_residual import _pointwise, depthwise_conv
from keras_cnns.layers.shuffle import ChannelShuffle, ChannelSplit
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.utils import sub

__all__ = ["shufflenet_unit", "shufflenet_v2_unit"]


def _bn(t, momentum, epsilon, name):
    return BatchNormalization(axis=-1, momentum=momentum, epsilon=epsilon,
                              name=name)(t)


def _check_common(filters, stride, bn_momentum, bn_epsilon):
    check_positive_int("filters", filters)
    check_positive_int("stride", stride)
    if stride not in (1, 2):
        fail("stride", "must be 1 or 2", stride)
    check_float("bn_momentum", bn_momentum, 0.0, 1.0, high_inclusive=False)
    check_float("bn_epsilon", bn_epsilon, 0.0, low_inclusive=False)


def _channels(x):
    channels = x.shape[-1]
    if channels is None:
        fail("x", "must have a known number of channels", tuple(x.shape))
    return int(channels)


def _pad_pool(t, name):
    """3x3 / 2 average pool with PyTorch's padding 1 and ``count_include_pad=True``."""
    t = keras.layers.ZeroPadding2D(1, name=sub(name, "pool_pad"))(t)
    return keras.layers.AveragePooling2D(3, 2, padding="valid", name=sub(name, "pool"))(t)


def _depthwise(t, stride, initializer, shuffle_groups, name):
    """3x3 depthwise convolution (shuffle fused in front), PyTorch's symmetric padding."""
    padding = "same"
    if stride > 1:
        t = keras.layers.ZeroPadding2D(1, name=sub(name, "pad"))(t)
        padding = "valid"
    return depthwise_conv(3, strides=stride, padding=padding, kernel_initializer=initializer,
                          shuffle_groups=shuffle_groups, name=name)(t)


def shufflenet_unit(x, filters, *, stride=1, groups=3, first=False, bottleneck_ratio=0.25,
                    bn_momentum=0.9, bn_epsilon=1e-5, kernel_initializer="he_normal",
                    name=None):
    """ShuffleNet v1's unit on ``x`` (channels last); see the module docstring.

    Args:
        x: input ``[N, H, W, C]`` with known ``C``.
        filters: output channels (with stride 2 the branch makes ``filters - C`` of them).
        stride: 1 (residual add) or 2 (concatenation with the average-pooled input).
        groups: ``g``, the groups of the 1x1 convolutions and of the shuffle.
        first: the first unit of stage 2: its first 1x1 convolution is not grouped.
        bottleneck_ratio: bottleneck width ``int(filters * ratio)`` (paper: 1/4).
        bn_momentum, bn_epsilon: BatchNormalization settings (PyTorch's 0.9 / 1e-5).
        kernel_initializer: of every convolution.
        name: layer-name prefix: ``{name}_gconv1`` / ``_bn1`` / ``_relu1``, ``_dw`` (the fused
            shuffle + depthwise, after ``_pad`` with stride 2) / ``_bn2``, ``_gconv3`` /
            ``_bn3``, ``_pool_pad`` / ``_pool`` / ``_concat`` or ``_add``, ``_relu``.

    Returns:
        ``[N, H / stride, W / stride, filters]``.

    Raises:
        ValueError: an invalid argument, or widths not divisible by ``groups`` (the message
            names the argument and the widths).
    """
    _check_common(filters, stride, bn_momentum, bn_epsilon)
    check_positive_int("groups", groups)
    check_float("bottleneck_ratio", bottleneck_ratio, 0.0, 1.0, low_inclusive=False)
    channels = _channels(x)
    out = filters - channels if stride == 2 else filters
    if out < 1:
        fail("filters", f"must exceed the input width {channels} in a stride-2 unit (the "
                        "branch makes filters - C_in channels)", filters)
    if stride == 1 and channels != filters:
        fail("filters", f"must equal the input width {channels} in a stride-1 unit (identity "
                        "shortcut)", filters)
    mid = int(filters * bottleneck_ratio)
    first_groups = 1 if first else groups
    for arg, width, g in (("x", channels, first_groups), ("bottleneck", mid, groups),
                          ("filters", out, groups)):
        if width < 1 or width % g:
            fail("groups", f"must divide the unit's widths (input {channels}, bottleneck {mid}, "
                           f"branch output {out}; {arg} = {width} does not)", groups)

    t = _pointwise(mid, first_groups, False, kernel_initializer, sub(name, "gconv1"))(x)
    t = keras.layers.ReLU(name=sub(name, "relu1"))(_bn(t, bn_momentum, bn_epsilon,
                                                       sub(name, "bn1")))
    t = _depthwise(t, stride, kernel_initializer, groups, sub(name, "dw"))
    t = _bn(t, bn_momentum, bn_epsilon, sub(name, "bn2"))
    t = _pointwise(out, groups, False, kernel_initializer, sub(name, "gconv3"))(t)
    t = _bn(t, bn_momentum, bn_epsilon, sub(name, "bn3"))
    if stride == 1:
        t = keras.layers.Add(name=sub(name, "add"))([x, t])
        return keras.layers.ReLU(name=sub(name, "relu"))(t)
    t = keras.layers.ReLU(name=sub(name, "relu"))(t)
    return keras.layers.Concatenate(name=sub(name, "concat"))([_pad_pool(x, name), t])


def shufflenet_v2_unit(x, filters, *, stride=1, bn_momentum=0.9, bn_epsilon=1e-5,
                       kernel_initializer="he_normal", name=None):
    """ShuffleNet v2's unit (torchvision's ``InvertedResidual``); see the module docstring.

    Args:
        x: input ``[N, H, W, C]`` with known ``C``.
        filters: output channels (even); each branch makes ``filters / 2``.
        stride: 1 (channel split; ``C`` must equal ``filters``) or 2 (two branches).
        bn_momentum, bn_epsilon: BatchNormalization settings (torchvision's 0.9 / 1e-5).
        kernel_initializer: of every convolution.
        name: layer-name prefix, torchvision's module prefix with ``_`` for ``.``:
            ``{name}_branch1_0`` (depthwise) ... ``{name}_branch2_5`` / ``_6``.

    Returns:
        ``[N, H / stride, W / stride, filters]``.

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    _check_common(filters, stride, bn_momentum, bn_epsilon)
    channels = _channels(x)
    if filters % 2:
        fail("filters", "must be even (two branches of filters / 2)", filters)
    half = filters // 2
    if stride == 1 and channels != 2 * half:
        fail("filters", f"must equal the input width {channels} in a stride-1 unit", filters)

    def conv1x1_bn_relu(t, prefix, i):
        t = keras.layers.Conv2D(half, 1, use_bias=False, kernel_initializer=kernel_initializer,
                                name=f"{prefix}_{i}")(t)
        t = _bn(t, bn_momentum, bn_epsilon, f"{prefix}_{i + 1}")
        return keras.layers.ReLU(name=f"{prefix}_{i + 2}")(t)

    def dw_bn(t, prefix, i):
        t = _depthwise(t, stride, kernel_initializer, 1, f"{prefix}_{i}")
        return _bn(t, bn_momentum, bn_epsilon, f"{prefix}_{i + 1}")

    b1, b2 = sub(name, "branch1"), sub(name, "branch2")
    if stride == 1:
        keep, right = ChannelSplit(2, name=sub(name, "split"))(x)
    else:
        keep = conv1x1_bn_relu(dw_bn(x, b1, 0), b1, 2)
        right = x
    right = conv1x1_bn_relu(dw_bn(conv1x1_bn_relu(right, b2, 0), b2, 3), b2, 5)
    t = keras.layers.Concatenate(name=sub(name, "concat"))([keep, right])
    return ChannelShuffle(2, name=sub(name, "shuffle"))(t)
