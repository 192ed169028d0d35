"""``GroupedDepthwiseConv2D``: grouped / depthwise convolution with an optional fused shuffle.

The one layer behind MobileNet's depthwise, ShuffleNet's grouped 1x1 and depthwise 3x3,
ResNeXt's grouped 3x3 and two-tower AlexNet's grouped convolutions. It calls
:func:`keras_cnns.ops.grouped_depthwise_conv2d` (the compiled C++/CUDA op when it is loaded, the
stock-TF reference otherwise). Custom ops have no XLA kernel, so the layer sets
``supports_jit = False``: Keras' ``jit_compile="auto"`` then compiles models that contain it
without XLA.
"""

from __future__ import annotations

import keras
from keras import initializers, regularizers, constraints

from keras_cnns.ops import grouped_depthwise_conv2d

__all__ = ["GroupedDepthwiseConv2D"]


def _pair(arg, v):
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    v = tuple(v)
    if len(v) != 2 or any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in v):
        raise ValueError(f"`{arg}` must be a positive integer or a pair of them. Received: {arg}={v!r}")
    return v


@keras.saving.register_keras_serializable(package="keras_cnns")
class GroupedDepthwiseConv2D(keras.layers.Layer):
    """Grouped 2-D convolution; ``groups == channels`` is depthwise, ``groups == 1`` plain.

    The kernel has ``tf.nn.conv2d``'s grouped layout ``[KH, KW, C // groups, filters]``: output
    channel ``o`` reads the input channels of group ``o // (filters // groups)``.

    Args:
        filters: output channels; ``None`` means ``channels * depth_multiplier``.
        kernel_size: int or pair.
        strides: int or pair.
        padding: ``"same"`` or ``"valid"``.
        dilation_rate: int or pair.
        groups: number of channel groups; ``None`` means depthwise (``groups = channels``).
        depth_multiplier: outputs per input channel when ``filters`` is ``None`` (default 1).
        shuffle_groups: ``g > 1`` applies ShuffleNet's channel shuffle with ``g`` groups to the
            input first (fused into the kernel's indexing).
        use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
        kernel_constraint, bias_constraint: as in ``keras.layers.Conv2D``.

    Raises:
        ValueError: invalid arguments, or channels not divisible by ``groups`` /
            ``shuffle_groups``, or ``filters`` not divisible by ``groups`` (at build).
    """

    def __init__(self, filters=None, kernel_size=3, strides=1, padding="same", dilation_rate=1,
                 groups=None, depth_multiplier=None, shuffle_groups=1, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if filters is not None and (isinstance(filters, bool) or not isinstance(filters, int) or filters < 1):
            raise ValueError(f"`filters` must be None or a positive integer. Received: filters={filters!r}")
        if groups is not None and (isinstance(groups, bool) or not isinstance(groups, int) or groups < 1):
            raise ValueError(f"`groups` must be None or a positive integer. Received: groups={groups!r}")
        if depth_multiplier is not None and (
            isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, int) or depth_multiplier < 1
        ):
            raise ValueError("`depth_multiplier` must be None or a positive integer. "
                             f"Received: depth_multiplier={depth_multiplier!r}")
        if filters is not None and depth_multiplier is not None:
            raise ValueError("Pass `filters` or `depth_multiplier`, not both. "
                             f"Received: filters={filters!r}, depth_multiplier={depth_multiplier!r}")
        if isinstance(shuffle_groups, bool) or not isinstance(shuffle_groups, int) or shuffle_groups < 1:
            raise ValueError("`shuffle_groups` must be a positive integer. "
                             f"Received: shuffle_groups={shuffle_groups!r}")
        if not isinstance(padding, str) or padding.lower() not in ("same", "valid"):
            raise ValueError(f"`padding` must be 'same' or 'valid'. Received: padding={padding!r}")
        self.filters = filters
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.strides = _pair("strides", strides)
        self.dilation_rate = _pair("dilation_rate", dilation_rate)
        self.padding = padding.lower()
        self.groups = groups
        self.depth_multiplier = depth_multiplier
        self.shuffle_groups = shuffle_groups
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        # Custom ops have no XLA kernel: keep Keras' jit_compile="auto" off for this model.
        self.supports_jit = False
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _resolved(self, channels):
        groups = channels if self.groups is None else self.groups
        filters = self.filters if self.filters is not None else channels * (self.depth_multiplier or 1)
        return groups, filters

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"{self.name}: the channel dimension of the input must be known. "
                             f"Received: input_shape={tuple(input_shape)}")
        groups, filters = self._resolved(channels)
        if channels % groups:
            raise ValueError(f"{self.name}: input channels ({channels}) must be divisible by `groups`. "
                             f"Received: groups={groups}")
        if filters % groups:
            raise ValueError(f"{self.name}: `filters` ({filters}) must be divisible by `groups`. "
                             f"Received: groups={groups}")
        if channels % self.shuffle_groups:
            raise ValueError(f"{self.name}: input channels ({channels}) must be divisible by "
                             f"`shuffle_groups`. Received: shuffle_groups={self.shuffle_groups}")
        self._groups, self._filters = groups, filters
        self.kernel = self.add_weight(
            name="kernel",
            shape=(*self.kernel_size, channels // groups, filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(filters,), initializer=self.bias_initializer,
                regularizer=self.bias_regularizer, constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    def call(self, inputs):
        y = grouped_depthwise_conv2d(
            inputs, self.kernel, strides=self.strides, padding=self.padding.upper(),
            dilations=self.dilation_rate, groups=self._groups, shuffle_groups=self.shuffle_groups,
        )
        if self.use_bias:
            y = y + self.bias
        return y

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        groups, filters = self._resolved(c)

        def out(size, k, s, d):
            if size is None:
                return None
            eff = (k - 1) * d + 1
            if self.padding == "same":
                return -(-size // s)
            return (size - eff) // s + 1 if size >= eff else 0

        return (n, out(h, self.kernel_size[0], self.strides[0], self.dilation_rate[0]),
                out(w, self.kernel_size[1], self.strides[1], self.dilation_rate[1]), filters)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "dilation_rate": self.dilation_rate,
            "groups": self.groups,
            "depth_multiplier": self.depth_multiplier,
            "shuffle_groups": self.shuffle_groups,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        })
        return config
