"""Shared building blocks of keras_cnns (keras.applications / timm style).

Blocks are functions ``tensor -> tensor`` that name every layer from a ``name`` prefix and use
stock Keras layers; custom layers exist only where stock Keras cannot express the operation, and
all are registered for serialization under the ``keras_cnns`` package.
"""

from keras_cnns.layers.activations import (
    HardSigmoid,
    HardSwish,
    activation_layer,
    hard_sigmoid,
    hard_swish,
)
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.conv import conv_bn_act, dispatch_plain_convolutions
from keras_cnns.layers.dense_connect import DenseLayer
from keras_cnns.layers.drop_path_schedule import SamePadding2D, ScheduledDropPath
from keras_cnns.layers.conv_fc import ConvFC, dense_to_conv_kernel, fc_as_conv
from keras_cnns.layers.fire import fire_module
from keras_cnns.layers.fractal import (FractalJoin, FractalPathState, drop_path_disabled,
                                       fractal_joins, fractal_state)
from keras_cnns.layers.grouped_conv import GroupedDepthwiseConv2D
from keras_cnns.layers.invertible import InvertibleDownsampling, InvertibleUpsampling
from keras_cnns.layers.irevnet import InjectivePad
from keras_cnns.layers.lrn import LocalResponseNormalization
from keras_cnns.layers.normalization import InputNormalization
from keras_cnns.layers.pooling import CeilModeMaxPooling2D, max_pool_ceil
from keras_cnns.layers.se import squeeze_excite
from keras_cnns.layers.separable import depthwise_separable_block
from keras_cnns.layers.separable_conv import SeparableConv2D
from keras_cnns.layers.shuffle import ChannelShuffle, ChannelSplit
from keras_cnns.layers.stochastic_depth import PadChannels, StochasticDepth
from keras_cnns.layers.utils import DropPath, drop_path, make_divisible
from keras_cnns.layers.hyper import HyperConv2D, HyperKernelGenerator, hyper_kernel

__all__ = [
    "BatchNormalization",
    "CeilModeMaxPooling2D",
    "ChannelShuffle",
    "ChannelSplit",
    "ConvFC",
    "DenseLayer",
    "DropPath",
    "GroupedDepthwiseConv2D",
    "HardSigmoid",
    "HardSwish",
    "InputNormalization",
    "InvertibleDownsampling",
    "InvertibleUpsampling",
    "LocalResponseNormalization",
    "PadChannels",
    "SamePadding2D",
    "ScheduledDropPath",
    "SeparableConv2D",
    "StochasticDepth",
    "activation_layer",
    "conv_bn_act",
    "dispatch_plain_convolutions",
    "dense_to_conv_kernel",
    "depthwise_separable_block",
    "drop_path",
    "fc_as_conv",
    "fire_module",
    "hard_sigmoid",
    "hard_swish",
    "make_divisible",
    "max_pool_ceil",
    "squeeze_excite",
    "HyperConv2D",
    "HyperKernelGenerator",
    "hyper_kernel",
    "FractalJoin",
    "FractalPathState",
    "drop_path_disabled",
    "fractal_joins",
    "fractal_state",
    "InjectivePad",
]
