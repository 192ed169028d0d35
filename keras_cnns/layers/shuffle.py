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

from keras_cnns._checks import check_positive_int
from keras_cnns.ops import channel_shuffle_4d

__all__ = ["ChannelShuffle", "ChannelSplit"]


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


@keras.saving.register_keras_serializable(package="keras_cnns")
class ChannelSplit(keras.layers.Layer):
    """ShuffleNet v2's channel split: the input's channels cut into ``parts`` equal parts,
    returned as a list (``torch.chunk(x, parts, dim=1)``); a 4-D strided slice each. Also
    i-RevNet's split (``parts=2``), with the exact :meth:`inverse` (the concatenation).

    Args:
        parts: number of parts (default 2); the channel count must be divisible by it.
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: ``parts`` not an integer >= 2; input not 4-D, channels unknown, or
            channels not divisible by ``parts`` (at build).
    """

    def __init__(self, parts=2, **kwargs):
        super().__init__(**kwargs)
        self.parts = check_positive_int("parts", parts)
        if self.parts < 2:
            raise ValueError(f"`parts` must be an integer >= 2. Received: parts={parts!r}")
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.parts:
            raise ValueError(f"{self.name}: input channels ({channels}) must be known and "
                             f"divisible by `parts`. Received: parts={self.parts}")
        self._width = channels // self.parts

    def call(self, inputs):
        w = self._width
        return [inputs[..., i * w:(i + 1) * w] for i in range(self.parts)]

    def inverse(self, outputs):
        """The concatenation of the parts: ``inverse(layer(x)) == x`` bit for bit (i-RevNet's
        ``merge``)."""
        return keras.ops.concatenate(list(outputs), axis=-1)

    def compute_output_shape(self, input_shape):
        part = (*input_shape[:-1], input_shape[-1] // self.parts)
        return [part] * self.parts

    def get_config(self):
        config = super().get_config()
        config["parts"] = self.parts
        return config
