"""Blocks shared by several families: functional-API builders ``block(x, filters, ...) -> tensor``.

* :mod:`keras_cnns.blocks.residual`: basic / bottleneck residual blocks, post- and
  pre-activation (ResNet, ResNeXt, Wide ResNet), with shortcut options A/B/C, dropout and
  stochastic depth; :data:`BLOCKS` maps a block kind to its function (what
  :func:`keras_cnns.models._stages.build_stages` builds stages from).
* :mod:`keras_cnns.blocks.inverted_residual`: MobileNetV2's inverted residual (MBConv) block
  (expansion, depthwise on the custom op, linear projection, identity skip, stochastic depth).
* :mod:`keras_cnns.blocks.shuffle`: ShuffleNet v1's unit (group 1x1 convolutions, channel
  shuffle fused into the depthwise custom op) and ShuffleNet v2's (channel split, two branches,
  shuffle after the concatenation).
* :mod:`keras_cnns.blocks.stochastic_depth`: ``add_residual``, the residual sum that becomes a
  :class:`StochasticDepth` (Huang et al. 2016: the dropped branch is not computed) under stochastic
  depth. That layer and :class:`PadChannels` (shortcut A's zero channels) live in
  :mod:`keras_cnns.layers` and are re-exported here.
"""

from keras_cnns.blocks import residual as _residual
from keras_cnns.blocks.residual import *  # noqa: F401,F403  (the names of residual.__all__)
from keras_cnns.blocks.inverted_residual import inverted_residual_block
from keras_cnns.blocks.reversible import RevNetBlock, ReversibleSequence
from keras_cnns.blocks.shuffle import shufflenet_unit, shufflenet_v2_unit
from keras_cnns.layers.stochastic_depth import PadChannels, StochasticDepth

__all__ = sorted(_residual.__all__ + ["PadChannels", "RevNetBlock", "ReversibleSequence",
                                   "StochasticDepth", "inverted_residual_block",
                                   "shufflenet_unit", "shufflenet_v2_unit"])
