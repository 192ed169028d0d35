"""Custom ops of keras_cnns: grouped depthwise convolution with a fused channel shuffle."""

from keras_cnns.ops._reference import channel_shuffle_4d, reference_grouped_depthwise_conv2d
from keras_cnns.ops.grouped_conv import (
    custom_op_available,
    grouped_depthwise_conv2d,
    plain_conv2d_on_op,
    stock_ops_only,
)

__all__ = [
    "channel_shuffle_4d",
    "custom_op_available",
    "grouped_depthwise_conv2d",
    "plain_conv2d_on_op",
    "reference_grouped_depthwise_conv2d",
    "stock_ops_only",
]
