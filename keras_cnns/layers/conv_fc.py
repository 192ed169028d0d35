"""Fully connected layers as convolutions (OverFeat / FCN).

Sermanet et al., "OverFeat: Integrated Recognition, Localization and Detection using
Convolutional Networks", ICLR 2014 (https://arxiv.org/abs/1312.6229), Sec. 3.5; Long et al.,
"Fully Convolutional Networks for Semantic Segmentation", CVPR 2015. A ``Dense`` layer on a
flattened ``h x w x c`` map is a ``h x w`` "valid" convolution with ``units`` filters: on an
``h x w`` input it yields a ``1 x 1`` map equal to the Dense output, on a larger input it slides
and yields a map of class scores (one per ``h x w`` window, stride 1 in the map's units).
"""

from __future__ import annotations

import keras
import numpy as np

from keras_cnns._checks import check_pair, check_positive_int
from keras_cnns.layers.activations import activation_layer, is_identity
from keras_cnns.layers.utils import sub

__all__ = ["ConvFC", "dense_to_conv_kernel", "fc_as_conv"]


def fc_as_conv(x, units, kernel_size=None, activation=None, name=None, use_bias=True,
               kernel_initializer="glorot_uniform"):
    """A fully connected layer written as a ``"valid"`` convolution.

    Layers: ``{name}`` (``Conv2D(units, kernel_size, padding="valid")``) and, when
    ``activation`` is not ``None``/``"linear"``, ``{name}_act``.

    Args:
        x: input tensor ``[N, H, W, C]``.
        units: output units (filters).
        kernel_size: int or pair; ``None`` uses the incoming map's ``(H, W)`` (which must then
            be static), so the layer is exactly a Dense on the flattened map at that size.
        activation: ``None`` or any activation :func:`activation_layer` accepts.
        name: name of the Conv2D layer (the activation is ``{name}_act``).
        use_bias: whether the layer has a bias.
        kernel_initializer: kernel initializer.

    Returns:
        Tensor ``[N, H - kh + 1, W - kw + 1, units]`` (``[N, 1, 1, units]`` by default).

    Raises:
        ValueError: ``units`` not a positive integer, bad ``kernel_size``, or ``kernel_size`` is
            ``None`` while the spatial size of ``x`` is unknown.
    """
    check_positive_int("units", units)
    if kernel_size is None:
        h, w = x.shape[1], x.shape[2]
        if h is None or w is None:
            raise ValueError("`kernel_size=None` needs a static spatial input size; pass it "
                             f"explicitly. Received: kernel_size=None with input shape {tuple(x.shape)}")
        kernel_size = (h, w)
    kernel_size = check_pair("kernel_size", kernel_size)
    x = keras.layers.Conv2D(units, kernel_size, padding="valid", use_bias=use_bias,
                            kernel_initializer=kernel_initializer, name=name)(x)
    if not is_identity(activation):
        x = activation_layer(activation, name=sub(name, "act"))(x)
    return x


def dense_to_conv_kernel(dense_kernel, feature_shape, flatten_order="hwc"):
    """Reshape a ``Dense`` kernel ``[h*w*c, units]`` into a conv kernel ``[h, w, c, units]``.

    Args:
        dense_kernel: NumPy array or tensor ``[h * w * c, units]``.
        feature_shape: ``(h, w, c)`` of the map that was flattened.
        flatten_order: ``"hwc"`` (Keras ``Flatten`` of an NHWC map, default) or ``"chw"``
            (Caffe / PyTorch flatten of an NCHW map, for porting their weights).

    Returns:
        NumPy array ``[h, w, c, units]`` usable as the kernel of :func:`fc_as_conv` /
        :class:`ConvFC`.

    Raises:
        ValueError: ``feature_shape`` malformed, ``flatten_order`` unknown, or the kernel's
            first dimension is not ``h * w * c``.
    """
    try:
        fs = tuple(int(v) for v in feature_shape)
    except (TypeError, ValueError):
        fs = None
    if fs is None or len(fs) != 3 or min(fs) < 1:
        raise ValueError("`feature_shape` must be (h, w, c) of positive ints. "
                         f"Received: feature_shape={feature_shape!r}")
    if flatten_order not in ("hwc", "chw"):
        raise ValueError(f"`flatten_order` must be 'hwc' or 'chw'. Received: flatten_order={flatten_order!r}")
    k = np.asarray(dense_kernel)
    h, w, c = fs
    if k.ndim != 2 or k.shape[0] != h * w * c:
        raise ValueError(f"`dense_kernel` must have shape [{h * w * c}, units] for feature_shape={fs}. "
                         f"Received: dense_kernel.shape={k.shape}")
    units = k.shape[1]
    if flatten_order == "hwc":
        return k.reshape(h, w, c, units)
    return k.reshape(c, h, w, units).transpose(1, 2, 0, 3)


@keras.saving.register_keras_serializable(package="keras_cnns")
class ConvFC(keras.layers.Conv2D):
    """``Conv2D`` acting as a fully connected layer, kernel size inferred at build.

    Stock ``Conv2D`` needs its kernel size up front; ``ConvFC`` (for ``Sequential`` models or
    re-usable heads) takes ``kernel_size=None`` and uses the spatial size of its first input,
    so it equals ``Flatten() + Dense(units)`` at that size and slides on larger inputs.
    ``padding`` is always ``"valid"``.

    Args:
        units: output units (filters).
        kernel_size: int, pair, or ``None`` (infer from the input at build).
        activation, use_bias, kernel_initializer, ...: as in ``keras.layers.Conv2D``.

    Raises:
        ValueError: ``units`` not a positive integer, bad ``kernel_size``, or ``kernel_size``
            ``None`` with an unknown input spatial size at build.
    """

    def __init__(self, units, kernel_size=None, **kwargs):
        check_positive_int("units", units)
        if kernel_size is not None:
            kernel_size = check_pair("kernel_size", kernel_size)
        kwargs.pop("filters", None)
        kwargs.pop("padding", None)
        super().__init__(filters=units, kernel_size=kernel_size or 1, padding="valid", **kwargs)
        self.units = units
        self._infer_kernel = kernel_size is None

    def build(self, input_shape):
        if self._infer_kernel:
            h, w = input_shape[1], input_shape[2]
            if h is None or w is None:
                raise ValueError(f"{self.name}: `kernel_size=None` needs a static spatial input size. "
                                 f"Received: kernel_size=None, input_shape={tuple(input_shape)}")
            self.kernel_size = (int(h), int(w))
            self._infer_kernel = False
        super().build(input_shape)

    def get_config(self):
        config = super().get_config()
        config.pop("filters", None)
        config.pop("padding", None)
        config["units"] = self.units
        config["kernel_size"] = None if self._infer_kernel else tuple(self.kernel_size)
        return config
