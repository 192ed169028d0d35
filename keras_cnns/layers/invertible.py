"""i-RevNet's invertible downsampling (space-to-depth) and its inverse.

Jacobsen, Smeulders & Oyallon, "i-RevNet: Deep Invertible Networks", ICLR 2018
(https://arxiv.org/abs/1802.07088), Sec. 3.1: the operator ``S_j`` rearranges every
``b x b`` spatial block into ``b^2`` channels, halving (for ``b = 2``) the resolution while
keeping every value: a permutation, hence exactly invertible. Implemented with
``tf.nn.space_to_depth`` / ``tf.nn.depth_to_space`` (pure index permutations, bit-exact).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_cnns._checks import check_positive_int

__all__ = ["InvertibleDownsampling", "InvertibleUpsampling"]


def _check_block_size(block_size):
    check_positive_int("block_size", block_size)
    if block_size < 2:
        raise ValueError(f"`block_size` must be >= 2. Received: block_size={block_size!r}")
    return block_size


@keras.saving.register_keras_serializable(package="keras_cnns")
class InvertibleDownsampling(keras.layers.Layer):
    """Space-to-depth ``[N, H, W, C] -> [N, H/b, W/b, C*b*b]`` with an exact :meth:`inverse`.

    Args:
        block_size: ``b`` (default 2), integer >= 2.
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: ``block_size`` invalid; input not 4-D or ``H`` / ``W`` not divisible by
            ``block_size`` (at build).
    """

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = _check_block_size(block_size)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        for axis, size in (("H", input_shape[1]), ("W", input_shape[2])):
            if size is not None and size % self.block_size:
                raise ValueError(f"{self.name}: input {axis} ({size}) must be divisible by `block_size`. "
                                 f"Received: block_size={self.block_size}")

    def call(self, inputs):
        return tf.nn.space_to_depth(inputs, self.block_size)

    def inverse(self, outputs):
        """Exact inverse (depth-to-space): ``inverse(layer(x)) == x`` bit for bit."""
        return tf.nn.depth_to_space(outputs, self.block_size)

    def inverse_layer(self, name=None):
        """An :class:`InvertibleUpsampling` layer computing :meth:`inverse`."""
        return InvertibleUpsampling(self.block_size, name=name)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        b = self.block_size
        return (n, None if h is None else h // b, None if w is None else w // b,
                None if c is None else c * b * b)

    def get_config(self):
        config = super().get_config()
        config["block_size"] = self.block_size
        return config


@keras.saving.register_keras_serializable(package="keras_cnns")
class InvertibleUpsampling(keras.layers.Layer):
    """Depth-to-space ``[N, H, W, C] -> [N, H*b, W*b, C/(b*b)]``, inverse of
    :class:`InvertibleDownsampling`.

    Args:
        block_size: ``b`` (default 2), integer >= 2.
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: ``block_size`` invalid; input not 4-D or ``C`` not divisible by ``b * b``.
    """

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = _check_block_size(block_size)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        c = input_shape[-1]
        b2 = self.block_size ** 2
        if c is not None and c % b2:
            raise ValueError(f"{self.name}: input channels ({c}) must be divisible by `block_size`**2 "
                             f"({b2}). Received: block_size={self.block_size}")

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)

    def inverse(self, outputs):
        """Exact inverse (space-to-depth)."""
        return tf.nn.space_to_depth(outputs, self.block_size)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        b = self.block_size
        return (n, None if h is None else h * b, None if w is None else w * b,
                None if c is None else c // (b * b))

    def get_config(self):
        config = super().get_config()
        config["block_size"] = self.block_size
        return config
