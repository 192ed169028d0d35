"""``SeparableConv2D``: Keras' layer with its depthwise half on the library's depthwise dispatch.

``keras.layers.SeparableConv2D`` (Xception's layer, Chollet 2017) computes a depthwise
convolution followed by a pointwise 1x1 convolution; on TensorFlow it calls
``tf.nn.separable_conv2d``, i.e. ``tf.nn.depthwise_conv2d`` then ``tf.nn.conv2d``. This layer is
that layer (same arguments, weights ``depthwise_kernel [KH, KW, C, m]`` and ``pointwise_kernel
[1, 1, C * m, F]`` under the same names, config, profiler rule), but runs its depthwise half
through :func:`keras_cnns.ops.grouped_depthwise_conv2d`: the compiled custom op or TensorFlow's
kernel, whichever :mod:`keras_cnns.ops.depthwise_dispatch` measured faster for the shape, and
stock ops inside :func:`keras_cnns.ops.stock_ops_only` (export). The depthwise kernel is handed to
the op as ``[KH, KW, 1, C * m]``, a reshape that keeps the output order ``o = c * m + k`` of
``tf.nn.depthwise_conv2d``, so keras.applications' ``SeparableConv2D`` weights copy as they are.

The pointwise half stays ``tf.nn.conv2d`` (a 1x1 convolution, as in ``tf.nn.separable_conv2d``).
Anything the custom path does not cover (``channels_first``, a non-TensorFlow backend) falls
back to Keras' own ``call``.
"""

from __future__ import annotations

import keras

__all__ = ["SeparableConv2D"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class SeparableConv2D(keras.layers.SeparableConv2D):
    """``keras.layers.SeparableConv2D`` whose depthwise convolution runs on the depthwise
    dispatch (module docstring). Arguments, weights and config are Keras'."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The custom op has no XLA kernel (as GroupedDepthwiseConv2D).
        self.supports_jit = False

    def _custom_path(self, inputs) -> bool:
        return (keras.backend.backend() == "tensorflow" and self.data_format == "channels_last"
                and len(inputs.shape) == 4 and inputs.shape[-1] is not None)

    def call(self, inputs):
        if not self._custom_path(inputs):
            return super().call(inputs)
        import tensorflow as tf

        from keras_cnns.ops import grouped_depthwise_conv2d

        kh, kw, c, m = self.depthwise_kernel.shape
        depthwise = tf.reshape(self.depthwise_kernel, (kh, kw, 1, c * m))
        x = grouped_depthwise_conv2d(inputs, depthwise, strides=self.strides,
                                     padding=self.padding.upper(), dilations=self.dilation_rate,
                                     groups=c)
        y = tf.nn.conv2d(x, self.pointwise_kernel, strides=1, padding="VALID")
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        if self.activation is not None:
            y = self.activation(y)
        return y
