"""Input normalisation with adapt-style state that stays live after weights are assigned."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = ["InputNormalization"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class InputNormalization(keras.layers.Normalization):
    """``keras.layers.Normalization`` with the same weights (``mean``, ``variance``, ``count``),
    read at every call.

    Stock ``Normalization`` snapshots its ``mean`` / ``variance`` into constants when it is built
    or loaded from a file, so assigning its variables later (``model.set_weights``, a weight
    bridge) changes nothing; this subclass computes ``(x - mean) / sqrt(variance)`` from the
    variables themselves. ``initial_mean`` / ``initial_variance`` (per channel) give the state it
    starts with (e.g. ImageNet's RGB statistics on a ``[0, 1]`` scale) instead of Keras' 0 / 1.
    Its weights pair one to one with keras.applications EfficientNet's ``Normalization`` layer.

    Args:
        initial_mean, initial_variance: ``None`` (0 and 1) or one value per channel.
        **kwargs: ``keras.layers.Normalization`` arguments (``axis`` must be ``-1``, the default
            here; no ``mean`` / ``variance`` constants, no ``invert``).

    Raises:
        ValueError: unsupported ``axis``, ``mean``, ``variance`` or ``invert``, or a non-positive
            ``initial_variance``.
    """

    def __init__(self, initial_mean=None, initial_variance=None, **kwargs):
        kwargs.setdefault("axis", -1)
        for arg in ("mean", "variance"):
            if kwargs.get(arg) is not None:
                raise ValueError(f"`{arg}` is not supported by InputNormalization (it keeps its "
                                 f"statistics as weights); use initial_{arg}. Received: "
                                 f"{arg}={kwargs[arg]!r}")
        if kwargs.get("invert"):
            raise ValueError("`invert` is not supported by InputNormalization. Received: "
                             f"invert={kwargs['invert']!r}")
        if kwargs["axis"] not in (-1, (-1,), [-1]):
            raise ValueError("`axis` must be -1 (channels last). Received: "
                             f"axis={kwargs['axis']!r}")
        for key in ("mean", "variance", "invert"):  # None / False: the defaults
            kwargs.pop(key, None)
        super().__init__(**kwargs)
        self.initial_mean = None if initial_mean is None else [float(v) for v in initial_mean]
        self.initial_variance = (None if initial_variance is None
                                 else [float(v) for v in initial_variance])
        if self.initial_variance is not None and min(self.initial_variance) <= 0:
            raise ValueError("`initial_variance` must be positive. Received: "
                             f"initial_variance={initial_variance!r}")

    def build(self, input_shape):
        super().build(input_shape)
        from keras.src.backend import in_stateless_scope

        if in_stateless_scope():  # shapes only: the variables are never allocated
            return
        for values, var, arg in ((self.initial_mean, self.adapt_mean, "initial_mean"),
                                 (self.initial_variance, self.adapt_variance, "initial_variance")):
            if values is None:
                continue
            if len(values) != var.shape[-1]:
                raise ValueError(f"`{arg}` has {len(values)} values for {var.shape[-1]} channels. "
                                 f"Received: {arg}={values!r}")
            var.assign(np.asarray(values, dtype=var.dtype))

    def call(self, inputs):
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        mean = ops.cast(self.adapt_mean, self.compute_dtype)
        variance = ops.cast(self.adapt_variance, self.compute_dtype)
        return (inputs - mean) / ops.maximum(ops.sqrt(variance), keras.config.epsilon())

    def get_config(self):
        config = super().get_config()
        for key in ("mean", "variance", "invert"):
            config.pop(key, None)
        config.update(initial_mean=self.initial_mean, initial_variance=self.initial_variance)
        return config
