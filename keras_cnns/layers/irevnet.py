"""The invertible linear operators of i-RevNet besides the space-to-depth: the channel split,
and the injective channel padding.

Jacobsen, Smeulders & Oyallon, "i-RevNet: Deep Invertible Networks", ICLR 2018
(arXiv:1802.07088), Sec. 3.1-3.2, and the authors' code (jhjacobsen/pytorch-i-revnet,
``models/model_utils.py``: ``split``, ``merge``, ``injective_pad``):

* :class:`ChannelSplit` (the official ``split``; ShuffleNet v2's split layer,
  :class:`keras_cnns.layers.ChannelSplit`, with ``parts=2``): the first ``C / 2`` channels and
  the rest; its :meth:`~ChannelSplit.inverse` is the concatenation (the official ``merge``).
* :class:`InjectivePad` (the official ``injective_pad``): ``pad`` zero channels appended after
  the input's; an injective linear map whose left inverse (:meth:`~InjectivePad.inverse`) drops
  them again. It is what makes the injective i-RevNets (the CIFAR network, i-RevNet (a)) wider
  than their input.

The downsampling ``S_j`` is :class:`keras_cnns.layers.InvertibleDownsampling`
(``tf.nn.space_to_depth``): its channel order, ``(row offset, column offset, channel)`` with the
channel fastest, is the official ``psi``'s (``models/model_utils.py``) once NCHW is read as NHWC,
so no reordering is needed to compare with the official code. All three are index operations:
their inverses are exact, bit for bit.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_cnns._checks import fail, is_int
from keras_cnns.layers.shuffle import ChannelSplit

__all__ = ["ChannelSplit", "InjectivePad"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class InjectivePad(keras.layers.Layer):
    """Append ``pad`` zero channels (the official ``injective_pad``), with the left
    :meth:`inverse` that drops them.

    Args:
        pad: the number of zero channels, a positive integer.
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: ``pad`` not a positive integer.
    """

    def __init__(self, pad, **kwargs):
        super().__init__(**kwargs)
        if not is_int(pad) or pad < 1:
            fail("pad", "must be a positive integer", pad)
        self.pad = int(pad)

    def call(self, inputs):
        return ops.pad(inputs, [[0, 0]] * (len(inputs.shape) - 1) + [[0, self.pad]])

    def inverse(self, outputs):
        """The first ``C - pad`` channels: ``inverse(layer(x)) == x``."""
        return outputs[..., :outputs.shape[-1] - self.pad]

    def compute_output_shape(self, input_shape):
        c = input_shape[-1]
        return tuple(input_shape[:-1]) + (None if c is None else c + self.pad,)

    def get_config(self):
        config = super().get_config()
        config["pad"] = self.pad
        return config
