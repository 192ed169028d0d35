"""Max pooling with PyTorch's ``ceil_mode=True`` / Caffe's output size, written once.

``out = ceil((n - pool_size) / strides) + 1`` per spatial side, where stock ``MaxPooling2D`` gives
``floor`` ("valid") or ``ceil(n / strides)`` ("same"). SqueezeNet (Iandola et al. 2016, whose
Caffe release and torchvision's ``squeezenet1_0/1_1`` pool with ``ceil_mode=True``), SqueezeNext
(Gholami et al. 2018, Caffe release) and ZFNet (Zeiler & Fergus 2014, 110 -> 55 and 26 -> 13 in
its Fig. 3) use it through :func:`max_pool_ceil`.
"""

from __future__ import annotations

import keras

from keras_cnns._checks import check_positive_int

__all__ = ["CeilModeMaxPooling2D", "max_pool_ceil"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class CeilModeMaxPooling2D(keras.layers.Layer):
    """Max pooling with PyTorch's ``ceil_mode=True`` / Caffe's output size, for any input.

    ``out = ceil((n - pool_size) / strides) + 1`` per spatial side (windows may hang over the
    bottom/right edge; each still starts inside the input). Stock ``MaxPooling2D`` gives the floor
    ("valid") or ``ceil(n / strides)`` ("same"), neither of which is this in general, but one of
    them is for most static sizes, and the layer uses it then (3x3/2: "valid" for odd ``n``,
    "same" for even ``n``, whose one padded row/column TF's pool ignores).

    Otherwise (mixed parity of the two sides, or an unknown size) the last row/column is repeated
    to the needed size and the pool is "valid". That is exact whatever the sign of the input
    (SqueezeNet's complex bypass sums can be negative, so zero padding would not be): a window
    that hangs over the edge starts inside the input, so it already holds the last row/column
    whose copies it sees. It is also what int8 TFLite runs: the earlier ``-inf`` padding
    (``PADV2`` before ``MAX_POOL_2D``) made XNNPACK fail to prepare the quantized graph.
    """

    def __init__(self, pool_size=3, strides=2, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = int(pool_size)
        self.strides = int(strides)

    def _out(self, n):
        return -(-(n - self.pool_size) // self.strides) + 1

    def _needed_pad(self, n):
        """Rows to append so that a "valid" pool gives the ceil-mode size (``None``: unknown)."""
        if n is None:
            return None
        return max((self._out(n) - 1) * self.strides + self.pool_size - n, 0)

    def _same_is_exact(self, n):
        out, s, k = self._out(n), self.strides, self.pool_size
        same_out = -(-n // s)
        same_pad = max((same_out - 1) * s + k - n, 0)
        # "same" puts floor(pad / 2) before: exact only when that is zero and it adds what
        # ceil mode needs after
        return same_out == out and same_pad == self._needed_pad(n) and same_pad <= 1

    def _repeat_last(self, x, axis, count):
        if not count:
            return x
        last = x[:, -1:] if axis == 1 else x[:, :, -1:]
        return keras.ops.concatenate([x] + [last] * count, axis=axis)

    def call(self, inputs):
        k, s = self.pool_size, self.strides
        h, w = inputs.shape[1], inputs.shape[2]
        pads = (self._needed_pad(h), self._needed_pad(w))
        if pads == (0, 0):
            return keras.ops.max_pool(inputs, k, s, padding="valid")
        if None not in pads and self._same_is_exact(h) and self._same_is_exact(w):
            return keras.ops.max_pool(inputs, k, s, padding="same")
        # unknown size: s - 1 repeats give floor((n + s - 1 - k) / s) + 1 == the ceil-mode size
        x = self._repeat_last(inputs, 1, s - 1 if pads[0] is None else pads[0])
        x = self._repeat_last(x, 2, s - 1 if pads[1] is None else pads[1])
        return keras.ops.max_pool(x, k, s, padding="valid")

    def compute_output_shape(self, input_shape):
        def side(n):
            return None if n is None else self._out(n)

        return (input_shape[0], side(input_shape[1]), side(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=self.pool_size, strides=self.strides)
        return config


def max_pool_ceil(x, pool_size=3, strides=2, *, name=None, nonnegative=False):
    """Ceil-mode max pooling of ``x`` (``ceil((n - pool_size) / strides) + 1`` per side).

    Args:
        x: a 4-D channels-last tensor.
        pool_size, strides: the square window and its stride (``pool_size >= strides``, so a
            window never starts past the input).
        name: the pooling layer's name.
        nonnegative: the caller guarantees ``x >= 0`` (a ReLU output). Then the pool is two stock
            layers: ``ZeroPadding2D`` ``name + "_pad"`` appending ``strides - 1`` zero rows and
            columns at the bottom/right (a zero never wins a max over non-negative values, and
            ``floor((n + strides - 1 - pool_size) / strides) + 1`` is the ceil-mode size for every
            ``n``), then a "valid" ``MaxPooling2D`` ``name``. Otherwise one
            :class:`CeilModeMaxPooling2D` ``name``, exact whatever the sign of ``x``.

    Raises:
        ValueError: ``pool_size`` or ``strides`` not a positive integer, or
            ``strides > pool_size``.
    """
    k = check_positive_int("pool_size", pool_size)
    s = check_positive_int("strides", strides)
    if s > k:
        raise ValueError(f"`strides` must be <= `pool_size` ({k}) for ceil-mode pooling. "
                         f"Received: strides={strides!r}")
    if not nonnegative:
        return CeilModeMaxPooling2D(k, s, name=name)(x)
    pad = ((0, s - 1), (0, s - 1))
    x = keras.layers.ZeroPadding2D(pad, name=None if name is None else f"{name}_pad")(x)
    return keras.layers.MaxPooling2D(k, strides=s, padding="valid", name=name)(x)
