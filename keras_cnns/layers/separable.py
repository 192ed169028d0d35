"""MobileNet v1's depthwise separable block.

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", 2017 (https://arxiv.org/abs/1704.04861), Fig. 3: depthwise 3x3 -> BN -> ReLU6 ->
pointwise 1x1 -> BN -> ReLU6. The layer order, the stride-2 padding and the BatchNormalization
defaults follow ``keras.applications.MobileNet`` so weights transfer one-to-one.
"""

from __future__ import annotations

import keras

from keras_cnns._checks import check_float, check_pair, check_positive_int
from keras_cnns.layers.activations import activation_layer, is_identity
from keras_cnns.layers.grouped_conv import GroupedDepthwiseConv2D
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.utils import sub

__all__ = ["depthwise_separable_block"]


def depthwise_separable_block(x, pointwise_filters, strides=1, kernel_size=3, activation="relu6",
                              use_bn=True, bn_momentum=0.99, bn_epsilon=1e-3,
                              depthwise_use_custom_op=True, name=None, depth_multiplier=1):
    """MobileNet v1 depthwise separable convolution block.

    Layers (``name`` prefix): [``{name}_pad``] -> ``{name}_dw`` -> [``{name}_dw_bn``] ->
    ``{name}_dw_act`` -> ``{name}_pw`` -> [``{name}_pw_bn``] -> ``{name}_pw_act``.

    With ``strides > 1`` the input is first zero padded asymmetrically (for the 3x3 kernel:
    ``ZeroPadding2D(((0, 1), (0, 1)))``, in general ``k - s`` split floor/ceil) and the
    depthwise convolution is ``"valid"``, exactly as ``keras.applications.MobileNet``.

    The depthwise convolution is a :class:`~keras_cnns.layers.GroupedDepthwiseConv2D` with
    ``groups=None`` (kernel ``[k, k, 1, C * depth_multiplier]``) when
    ``depthwise_use_custom_op``, else ``keras.layers.DepthwiseConv2D`` (kernel
    ``[k, k, C, depth_multiplier]``). Both have no bias; the pointwise ``Conv2D`` has no bias.
    Initializers are Keras' defaults (glorot uniform), as in keras.applications.

    Args:
        x: input tensor ``[N, H, W, C]``.
        pointwise_filters: output channels of the 1x1 convolution.
        strides: depthwise stride, int or pair.
        kernel_size: depthwise kernel size, int or pair.
        activation: activation after both convolutions (default ``"relu6"``); ``None`` for
            none.
        use_bn: add BatchNormalization after each convolution (the convolutions stay
            bias-free; with ``use_bn=False`` they get a bias instead).
        bn_momentum, bn_epsilon: BatchNormalization parameters.
        depthwise_use_custom_op: use ``GroupedDepthwiseConv2D`` (custom op) instead of the
            stock ``DepthwiseConv2D``.
        name: layer-name prefix.
        depth_multiplier: depthwise channel multiplier (keras.applications' MobileNet
            ``depth_multiplier``; 1 in the paper).

    Returns:
        Output tensor ``[N, H / s, W / s, pointwise_filters]``.

    Raises:
        ValueError: invalid argument (message names it).
    """
    check_positive_int("pointwise_filters", pointwise_filters)
    strides = check_pair("strides", strides)
    kernel_size = check_pair("kernel_size", kernel_size)
    check_positive_int("depth_multiplier", depth_multiplier)
    check_float("bn_momentum", bn_momentum, 0.0, 1.0)
    check_float("bn_epsilon", bn_epsilon, 0.0, low_inclusive=False)
    use_bias = not use_bn
    if strides != (1, 1):
        pads = []
        for k, s in zip(kernel_size, strides):
            p = max(k - s, 0)
            pads.append((p // 2, p - p // 2))
        x = keras.layers.ZeroPadding2D(tuple(pads), name=sub(name, "pad"))(x)
        padding = "valid"
    else:
        padding = "same"
    if depthwise_use_custom_op:
        x = GroupedDepthwiseConv2D(
            kernel_size=kernel_size, strides=strides, padding=padding, groups=None,
            depth_multiplier=depth_multiplier, use_bias=use_bias, name=sub(name, "dw"),
        )(x)
    else:
        x = keras.layers.DepthwiseConv2D(
            kernel_size, strides=strides, padding=padding, depth_multiplier=depth_multiplier,
            use_bias=use_bias, name=sub(name, "dw"),
        )(x)
    if use_bn:
        x = BatchNormalization(axis=-1, momentum=bn_momentum, epsilon=bn_epsilon,
                               name=sub(name, "dw_bn"))(x)
    if not is_identity(activation):
        x = activation_layer(activation, name=sub(name, "dw_act"))(x)
    x = keras.layers.Conv2D(pointwise_filters, 1, padding="same", use_bias=use_bias,
                            name=sub(name, "pw"))(x)
    if use_bn:
        x = BatchNormalization(axis=-1, momentum=bn_momentum, epsilon=bn_epsilon,
                               name=sub(name, "pw_bn"))(x)
    if not is_identity(activation):
        x = activation_layer(activation, name=sub(name, "pw_act"))(x)
    return x
