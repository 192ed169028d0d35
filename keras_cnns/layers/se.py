"""Squeeze-and-Excitation.

Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018 (https://arxiv.org/abs/1709.01507):
global average pool -> FC reduce -> ReLU -> FC expand -> sigmoid -> channel-wise rescale. The FCs
are 1x1 convolutions on the ``1 x 1`` pooled map (keras.applications' MobileNetV3/EfficientNet
layout); MobileNetV3 (Howard et al. 2019) uses the hard-sigmoid gate and
``_make_divisible(C * 0.25, 8)`` reduced channels.
"""

from __future__ import annotations

import keras

from keras_cnns._checks import check_float, check_positive_int
from keras_cnns.layers.activations import activation_layer, is_identity
from keras_cnns.layers.utils import make_divisible, sub

__all__ = ["squeeze_excite"]


def squeeze_excite(x, se_filters=None, se_ratio=0.25, activation="relu", gate="sigmoid",
                   divisor=None, name=None):
    """Squeeze-and-Excitation block: ``x * gate(expand(act(reduce(mean_hw(x)))))``.

    Layers: ``{name}_squeeze`` (``GlobalAveragePooling2D(keepdims=True)``), ``{name}_reduce``
    (1x1 ``Conv2D`` with bias), ``{name}_reduce_act``, ``{name}_expand`` (1x1 ``Conv2D`` to
    ``C`` with bias), ``{name}_gate`` and ``{name}_excite`` (``Multiply``).

    Args:
        x: input tensor ``[N, H, W, C]`` (``C`` static).
        se_filters: reduced channels; overrides ``se_ratio``.
        se_ratio: reduced channels ``= se_ratio * C``, rounded to the nearest int (at least 1),
            or ``make_divisible(se_ratio * C, divisor)`` when ``divisor`` is given.
        activation: activation after the reduce conv (default ``"relu"``).
        gate: ``"sigmoid"`` (SENet) or ``"hard_sigmoid"`` (MobileNetV3).
        divisor: see ``se_ratio``.
        name: layer-name prefix.

    Returns:
        Tensor of the shape of ``x``.

    Raises:
        ValueError: bad ``se_filters``, ``se_ratio`` outside ``(0, 1]``, unknown ``gate`` or
            ``activation``, bad ``divisor``, or unknown channel count.
    """
    if gate not in ("sigmoid", "hard_sigmoid"):
        raise ValueError(f"`gate` must be 'sigmoid' or 'hard_sigmoid'. Received: gate={gate!r}")
    check_positive_int("se_filters", se_filters, allow_none=True)
    check_positive_int("divisor", divisor, allow_none=True)
    channels = x.shape[-1]
    if channels is None:
        raise ValueError(f"The channel dimension of `x` must be known. Received: x.shape={tuple(x.shape)}")
    if se_filters is None:
        se_ratio = check_float("se_ratio", se_ratio, 0.0, 1.0, low_inclusive=False)
        if divisor is not None:
            se_filters = make_divisible(channels * se_ratio, divisor)
        else:
            se_filters = max(1, int(round(channels * se_ratio)))
    s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=sub(name, "squeeze"))(x)
    s = keras.layers.Conv2D(se_filters, 1, padding="same", use_bias=True, name=sub(name, "reduce"))(s)
    if not is_identity(activation):
        s = activation_layer(activation, name=sub(name, "reduce_act"))(s)
    s = keras.layers.Conv2D(channels, 1, padding="same", use_bias=True, name=sub(name, "expand"))(s)
    s = activation_layer(gate, name=sub(name, "gate"))(s)
    return keras.layers.Multiply(name=sub(name, "excite"))([x, s])
