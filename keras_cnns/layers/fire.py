"""SqueezeNet's Fire module.

Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model
size", 2016 (https://arxiv.org/abs/1602.07360), Sec. 3.2 / Fig. 1: a 1x1 "squeeze" convolution
feeding parallel 1x1 and 3x3 "expand" convolutions whose outputs are concatenated on channels.
"""

from __future__ import annotations

import keras

from keras_cnns._checks import check_positive_int
from keras_cnns.layers.activations import activation_layer, is_identity
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.utils import sub

__all__ = ["fire_module"]

#: torchvision's SqueezeNet initialises every Fire convolution with ``kaiming_uniform_`` (a=0,
#: fan_in): ``U(-sqrt(6 / fan_in), sqrt(6 / fan_in))``, which is Keras' ``"he_uniform"``; biases 0.
FIRE_KERNEL_INITIALIZER = "he_uniform"


def fire_module(x, squeeze_filters, expand1x1_filters, expand3x3_filters, activation="relu",
                use_bn=False, kernel_initializer=FIRE_KERNEL_INITIALIZER, name=None,
                squeeze_kernel_initializer=None, expand_kernel_initializer=None,
                bn_momentum=0.99, bn_epsilon=1e-3):
    """SqueezeNet Fire module: squeeze 1x1 -> (expand 1x1 || expand 3x3) -> concat.

    Layers (``name`` prefix): ``{name}_squeeze1x1`` (+ ``{name}_squeeze1x1_bn``) +
    ``{name}_squeeze1x1_relu``, ``{name}_expand1x1`` (+ ``_bn``) + ``{name}_expand1x1_relu``,
    ``{name}_expand3x3`` (padding ``"same"``, + ``_bn``) + ``{name}_expand3x3_relu``, and
    ``{name}_concat`` (expand 1x1 channels first, then 3x3: torchvision's order). The activation
    layers keep the ``_relu`` suffix whatever ``activation`` is.

    Initialisation: the default is torchvision's SqueezeNet reference,
    ``kaiming_uniform_`` for every Fire convolution (Keras ``"he_uniform"``) and zero biases.
    (The original Caffe release used Xavier, i.e. pass ``kernel_initializer="glorot_uniform"``.)

    Args:
        x: input tensor ``[N, H, W, C]``.
        squeeze_filters: ``s_1x1``, channels of the squeeze convolution.
        expand1x1_filters: ``e_1x1``.
        expand3x3_filters: ``e_3x3``.
        activation: activation after each convolution (default ``"relu"``).
        use_bn: add BatchNormalization after each convolution (not in the paper; the
            convolutions keep their bias).
        kernel_initializer: initializer of all three convolutions.
        name: layer-name prefix.
        squeeze_kernel_initializer: overrides ``kernel_initializer`` for the squeeze conv.
        expand_kernel_initializer: overrides ``kernel_initializer`` for both expand convs.
        bn_momentum, bn_epsilon: BatchNormalization parameters when ``use_bn``.

    Returns:
        Tensor ``[N, H, W, expand1x1_filters + expand3x3_filters]``.

    Raises:
        ValueError: a filter count is not a positive integer, or the activation is unknown.
    """
    check_positive_int("squeeze_filters", squeeze_filters)
    check_positive_int("expand1x1_filters", expand1x1_filters)
    check_positive_int("expand3x3_filters", expand3x3_filters)
    if not is_identity(activation):
        activation_layer(activation)  # validate early
    sq_init = squeeze_kernel_initializer or kernel_initializer
    ex_init = expand_kernel_initializer or kernel_initializer

    def branch(t, filters, k, init, suffix):
        lname = sub(name, suffix)
        t = keras.layers.Conv2D(filters, k, padding="same" if k > 1 else "valid", use_bias=True,
                                kernel_initializer=init, bias_initializer="zeros", name=lname)(t)
        if use_bn:
            t = BatchNormalization(axis=-1, momentum=bn_momentum, epsilon=bn_epsilon,
                                   name=sub(lname, "bn"))(t)
        if not is_identity(activation):
            t = activation_layer(activation, name=sub(lname, "relu"))(t)
        return t

    s = branch(x, squeeze_filters, 1, sq_init, "squeeze1x1")
    e1 = branch(s, expand1x1_filters, 1, ex_init, "expand1x1")
    e3 = branch(s, expand3x3_filters, 3, ex_init, "expand3x3")
    return keras.layers.Concatenate(axis=-1, name=sub(name, "concat"))([e1, e3])
