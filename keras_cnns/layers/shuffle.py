"""ShuffleNet's channel shuffle with 4-D tensors only.

Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
Devices", CVPR 2018 (https://arxiv.org/abs/1707.01083), Sec. 3.1: view the ``C`` channels as
``(g, C/g)``, transpose to ``(C/g, g)``, flatten. The usual implementation reshapes to a 5-D
tensor ``[N, H, W, g, C/g]``; TFLite's GPU delegate and NNAPI reject 5-D tensors, so this layer
uses ``[N, H*W, g, C/g] -> transpose [0, 1, 3, 2] -> [N, H, W, C]``
(:func:`keras_cnns.ops.channel_shuffle_4d`).
"""

from __future__ import annotations

import keras

from keras_cnns.layers._validation import check_positive_int
from keras_cnns.ops import channel_shuffle_4d

__all__ = ["ChannelShuffle"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class ChannelShuffle(keras.layers.Layer):
    """Channel shuffle: output channel ``j * g + i`` is input channel ``i * (C/g) + j``.

    A permutation of the channels (no weights). Shuffling with ``g`` then with ``C / g`` is the
    identity.

    Args:
        groups: ``g``; the channel count must be divisible by it. ``1`` is the identity.
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: ``groups`` not a positive integer; input not 4-D, channels unknown, or
            channels not divisible by ``groups`` (at build).
    """

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = check_positive_int("groups", groups)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"{self.name}: the channel dimension must be known. "
                             f"Received: input_shape={tuple(input_shape)}")
        if channels % self.groups:
            raise ValueError(f"{self.name}: input channels ({channels}) must be divisible by `groups`. "
                             f"Received: groups={self.groups}")
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    def call(self, inputs):
        return channel_shuffle_4d(inputs, self.groups)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["groups"] = self.groups
        return config
