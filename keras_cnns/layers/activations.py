"""Hard sigmoid / hard swish (MobileNetV3) and the activation-layer factory of the library.

``hard_sigmoid(x) = relu6(x + 3) / 6`` and ``hard_swish(x) = x * relu6(x + 3) / 6`` as defined in
Howard et al., "Searching for MobileNetV3", ICCV 2019 (https://arxiv.org/abs/1905.02244).
Keras 2's ``hard_sigmoid`` used a slope of 0.2 (``clip(0.2 x + 0.5, 0, 1)``); these functions
always use MobileNetV3's slope 1/6 whatever the Keras version.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["HardSigmoid", "HardSwish", "activation_layer", "hard_sigmoid", "hard_swish"]


def hard_sigmoid(x):
    """MobileNetV3's hard sigmoid ``relu6(x + 3) / 6``.

    Args:
        x: a tensor.

    Returns:
        A tensor of the same shape and dtype, values in ``[0, 1]``.
    """
    return ops.relu6(x + 3.0) * (1.0 / 6.0)


def hard_swish(x):
    """MobileNetV3's hard swish ``x * relu6(x + 3) / 6``.

    Args:
        x: a tensor.

    Returns:
        A tensor of the same shape and dtype.
    """
    return x * hard_sigmoid(x)


@keras.saving.register_keras_serializable(package="keras_cnns")
class HardSigmoid(keras.layers.Layer):
    """Layer computing ``relu6(x + 3) / 6`` (MobileNetV3, Howard et al. 2019).

    Args:
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``...).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return hard_sigmoid(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config()


@keras.saving.register_keras_serializable(package="keras_cnns")
class HardSwish(keras.layers.Layer):
    """Layer computing ``x * relu6(x + 3) / 6`` (MobileNetV3, Howard et al. 2019).

    Args:
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``...).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return hard_swish(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config()


_ALIASES = {
    "hardswish": "hard_swish",
    "h_swish": "hard_swish",
    "hardsigmoid": "hard_sigmoid",
    "h_sigmoid": "hard_sigmoid",
    "silu": "swish",
    "identity": "linear",
}


def activation_layer(activation, name=None):
    """Build a Keras layer for an activation given by name or callable.

    ``"relu"`` -> ``ReLU()``, ``"relu6"`` -> ``ReLU(6.0)``, ``"hard_swish"`` -> :class:`HardSwish`,
    ``"hard_sigmoid"`` -> :class:`HardSigmoid`, ``"linear"`` / ``None`` -> ``Activation("linear")``,
    any other name ``keras.activations.get`` knows (``"swish"``, ``"sigmoid"``, ``"gelu"``,
    ``"tanh"``, ``"leaky_relu"``, ...) -> ``Activation(name)``. A ``keras.layers.Layer`` instance
    is returned unchanged, a Layer subclass is instantiated with ``name``, any other callable
    is wrapped in ``Activation`` (register it with ``keras.saving`` to serialize the model).

    Args:
        activation: ``None``, a string, a Layer instance/class or a callable.
        name: name of the created layer.

    Returns:
        A ``keras.layers.Layer``.

    Raises:
        ValueError: unknown activation name or unsupported type.
    """
    if activation is None:
        return keras.layers.Activation("linear", name=name)
    if isinstance(activation, keras.layers.Layer):
        return activation
    if isinstance(activation, type) and issubclass(activation, keras.layers.Layer):
        return activation(name=name)
    if isinstance(activation, str):
        key = activation.lower()
        key = _ALIASES.get(key, key)
        if key == "relu":
            return keras.layers.ReLU(name=name)
        if key == "relu6":
            return keras.layers.ReLU(6.0, name=name)
        if key == "hard_swish":
            return HardSwish(name=name)
        if key == "hard_sigmoid":
            return HardSigmoid(name=name)
        try:
            keras.activations.get(key)
        except (ValueError, TypeError, KeyError):
            raise ValueError(f"Unknown `activation` name. Received: activation={activation!r}") from None
        return keras.layers.Activation(key, name=name)
    if callable(activation):
        return keras.layers.Activation(activation, name=name)
    raise ValueError("`activation` must be None, a string, a Layer or a callable. "
                     f"Received: activation={activation!r}")


def is_identity(activation):
    """True when ``activation`` means "no activation" (``None``, ``"linear"``, ``"identity"``)."""
    return activation is None or (isinstance(activation, str) and activation.lower() in ("linear", "identity"))
