"""Small helpers shared by the families: ``make_divisible``, per-sample drop path (``DropPath``)
and ``sub`` (the layer-naming helper of every block)."""

from __future__ import annotations

import keras

from keras_cnns._checks import check_float, check_positive_int

__all__ = ["DropPath", "drop_path", "make_divisible", "sub"]


def sub(name, suffix):
    """``f"{name}_{suffix}"``, or ``None`` when ``name`` is ``None`` (Keras then auto-names)."""
    return None if name is None else f"{name}_{suffix}"


def make_divisible(v, divisor=8, min_value=None):
    """Round ``v`` to the nearest multiple of ``divisor``, never below ``min_value`` nor < 90% of v.

    The ``_make_divisible`` of the TensorFlow MobileNetV2/V3 reference (Sandler et al. 2018,
    Howard et al. 2019) used to round channel counts after width scaling.

    Args:
        v: the (float) channel count.
        divisor: positive integer.
        min_value: lower bound, default ``divisor``.

    Returns:
        An ``int`` multiple of ``divisor``.

    Raises:
        ValueError: ``divisor`` not a positive integer, ``v`` not a positive number, or
            ``min_value`` not a positive integer.
    """
    check_positive_int("divisor", divisor)
    check_float("v", v, 0.0, low_inclusive=False)
    check_positive_int("min_value", min_value, allow_none=True)
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # do not round down by more than 10%
        new_v += divisor
    return int(new_v)


@keras.saving.register_keras_serializable(package="keras_cnns")
class DropPath(keras.layers.Layer):
    """Stochastic depth: drop the whole residual branch per sample.

    Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016
    (https://arxiv.org/abs/1603.09382). In training each sample's tensor is zeroed with
    probability ``rate`` and the survivors are scaled by ``1 / (1 - rate)`` (timm's
    ``drop_path``); at inference it is the identity.

    Args:
        rate: drop probability in ``[0, 1)``.
        seed: optional int seed.
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: ``rate`` outside ``[0, 1)``.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_float("rate", rate, 0.0, 1.0, high_inclusive=False)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be None or an int. Received: seed={seed!r}")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate > 0 else None
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        shape = keras.ops.shape(inputs)
        noise_shape = (shape[0],) + (1,) * (len(inputs.shape) - 1)
        return keras.random.dropout(inputs, self.rate, noise_shape=noise_shape,
                                    seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


def drop_path(x, rate, name=None):
    """Apply :class:`DropPath` (``rate`` 0 returns ``x`` unchanged, adding no layer).

    Args:
        x: tensor (a residual branch).
        rate: drop probability in ``[0, 1)``.
        name: layer name.

    Returns:
        The output tensor.

    Raises:
        ValueError: ``rate`` outside ``[0, 1)``.
    """
    rate = check_float("rate", rate, 0.0, 1.0, high_inclusive=False)
    if rate == 0.0:
        return x
    return DropPath(rate, name=name)(x)
