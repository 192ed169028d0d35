"""``grouped_depthwise_conv2d``: the compiled op when loaded, else the stock-TF reference.

The compiled op (``KerasCnns>GroupedDepthwiseConv2D``, C++ CPU kernels and CUDA kernels in
``custom_ops/``) is built on first use and cached (see :mod:`keras_cnns.ops._loader`). When it is
unavailable (no compiler, build error, ``KERAS_CNNS_DISABLE_CUSTOM_OP=1``) the same function runs
:func:`keras_cnns.ops._reference.reference_grouped_depthwise_conv2d`, and inside
:func:`stock_ops_only` it always does, so exported graphs contain stock TF ops only. A plain
depthwise convolution also runs there where TF's own kernel is the faster one on this machine
(:mod:`keras_cnns.ops.depthwise_dispatch`, measured per shape).
"""

from __future__ import annotations

import contextlib
import threading

import tensorflow as tf

from keras_cnns._checks import check_pair, check_positive_int
from keras_cnns.ops import _loader
from keras_cnns.ops._reference import reference_grouped_depthwise_conv2d

__all__ = ["custom_op_available", "grouped_depthwise_conv2d", "plain_conv2d_on_op",
           "stock_ops_only"]

_state = threading.local()


def _stock_only() -> bool:
    return getattr(_state, "stock_only", False)


@contextlib.contextmanager
def stock_ops_only():
    """Within this context every layer uses stock TF ops only (for export to Serving/TFLite).

    The setting is per thread and nests; tracing a ``tf.function`` inside the context bakes the
    stock-op path into that trace.
    """
    prev = _stock_only()
    _state.stock_only = True
    try:
        yield
    finally:
        _state.stock_only = prev


def custom_op_available() -> bool:
    """Whether the compiled kernel is loaded (builds it on the first call if needed).

    Returns:
        ``True`` if ``grouped_depthwise_conv2d`` runs the compiled op, ``False`` if it falls back
        to the pure-TensorFlow reference (``keras_cnns.ops._loader.load_error()`` says why).
    """
    return _loader.load_library() is not None


def _plain_depthwise(x, filters, strides, dilations, groups, shuffle_groups) -> bool:
    """A depthwise convolution ``tf.nn.depthwise_conv2d`` runs as is: static channels,
    multiplier 1, no shuffle or dilation, equal strides, a square kernel."""
    channels = x.shape[-1] if x.shape.rank == 4 else None
    return (channels is not None and groups == channels and shuffle_groups == 1
            and filters.shape.rank == 4 and filters.shape[2] == 1 and filters.shape[3] == channels
            and tuple(dilations) == (1, 1) and strides[0] == strides[1]
            and filters.shape[0] is not None and filters.shape[0] == filters.shape[1])


def _plain_grouped(x, filters, dilations, groups, shuffle_groups) -> bool:
    """A grouped spatial convolution oneDNN's ``tf.nn.conv2d`` runs: float32, static shapes,
    ``1 < groups < C``, no shuffle or dilation, a kernel larger than 1x1 and not larger than the
    map."""
    if x.shape.rank != 4 or filters.shape.rank != 4:
        return False
    _, height, width, channels = x.shape
    kh, kw = filters.shape[0], filters.shape[1]
    if None in (height, width, channels, kh, kw):
        return False
    # oneDNN's kernel is measured on real maps only: leave inputs smaller than the kernel
    # (empty VALID outputs) to the op, which handles them
    return (1 < groups < channels and shuffle_groups == 1 and x.dtype.name == "float32"
            and tuple(dilations) == (1, 1) and kh * kw > 1 and height >= kh and width >= kw)


# Python-level dispatch on static shapes: AutoGraph must not convert it (inside a user's
# tf.function it would recurse into the loader and warn about every helper it cannot convert)
@tf.autograph.experimental.do_not_convert
def grouped_depthwise_conv2d(x, filters, strides=1, padding="SAME", dilations=1, groups=None,
                             shuffle_groups=1, name=None):
    """Grouped (depthwise when ``groups == C``) 2-D convolution of a channel-shuffled NHWC input.

    Computes ``tf.nn.conv2d(shuffle(x), filters, strides, padding, dilations=dilations)`` where
    ``shuffle`` is ShuffleNet's channel shuffle with ``shuffle_groups`` groups (view C as
    ``(g, C / g)``, transpose, flatten; the identity for ``g = 1``). The compiled op fuses the
    shuffle into its indexing; its gradients (to ``x`` and ``filters``) are compiled kernels too.

    Args:
        x: ``[N, H, W, C]`` float16, float32 or float64 tensor. float16 runs the compiled op in
            float32 and casts the result back.
        filters: ``[KH, KW, C // groups, C_out]`` tensor of ``x``'s dtype, ``C_out % groups == 0``
            (``tf.nn.conv2d``'s layout for grouped convolution; ``groups == C`` is depthwise with
            channel multiplier ``C_out // C``, ``groups == 1`` a plain convolution).
        strides: positive int or ``(stride_h, stride_w)``. Strides and dilations may both exceed
            1 (unlike ``tf.nn.depthwise_conv2d``).
        padding: ``"SAME"`` or ``"VALID"`` (case-insensitive), with TensorFlow's SAME rule.
        dilations: positive int or ``(dilation_h, dilation_w)``.
        groups: number of channel groups; ``None`` infers ``C // filters.shape[2]`` (needs both
            static).
        shuffle_groups: ``g >= 1``; ``g > 1`` shuffles the input channels first.
        name: optional name scope.

    Returns:
        ``[N, OH, OW, C_out]`` tensor of ``x``'s dtype.

    Raises:
        ValueError: invalid ``padding``, ``strides``, ``dilations``, ``groups``,
            ``shuffle_groups`` or dtype, or (when ``C`` is static) ``groups`` /
            ``shuffle_groups`` not dividing ``C``.
        tf.errors.InvalidArgumentError: shape errors only visible at run time (wrong ranks,
            filter depth != C / groups, C_out not divisible by groups...), raised by the op.
    """
    if not isinstance(padding, str) or padding.upper() not in ("SAME", "VALID"):
        raise ValueError(f"`padding` must be 'SAME' or 'VALID'. Received: padding={padding!r}")
    padding = padding.upper()
    strides = check_pair("strides", strides)
    dilations = check_pair("dilations", dilations)
    groups = check_positive_int("groups", groups, allow_none=True)
    shuffle_groups = check_positive_int("shuffle_groups", shuffle_groups)

    with tf.name_scope(name or "grouped_depthwise_conv2d"):
        x = tf.convert_to_tensor(x)
        if x.dtype not in (tf.float16, tf.float32, tf.float64):
            raise ValueError("`x` must be a float16, float32 or float64 tensor. "
                             f"Received: x.dtype={x.dtype.name}")
        filters = tf.convert_to_tensor(filters)
        if filters.dtype != x.dtype:
            raise ValueError("`filters` must have the dtype of `x` "
                             f"({x.dtype.name}). Received: filters.dtype={filters.dtype.name}")
        channels = x.shape[-1] if x.shape.rank is not None else None
        if groups is None:
            depth = filters.shape[2] if filters.shape.rank == 4 else None
            if channels is None or depth is None or depth == 0 or channels % depth:
                raise ValueError("`groups=None` needs static input channels divisible by the "
                                 "filter depth `filters.shape[2]`; pass `groups` explicitly. "
                                 f"Received: groups=None, x.shape={x.shape}, "
                                 f"filters.shape={filters.shape}")
            groups = channels // depth
        if channels is not None:
            if channels % groups:
                raise ValueError(f"`groups` must divide the input channels ({channels}). "
                                 f"Received: groups={groups}")
            if channels % shuffle_groups:
                raise ValueError(f"`shuffle_groups` must divide the input channels ({channels}). "
                                 f"Received: shuffle_groups={shuffle_groups}")

        lib = None if _stock_only() else _loader.load_library()
        if lib is not None and _plain_depthwise(x, filters, strides, dilations, groups,
                                                shuffle_groups):
            from keras_cnns.ops.depthwise_dispatch import prefer_custom_op

            if not prefer_custom_op(x.shape[1], x.shape[2], channels, filters.shape[0],
                                    strides[0]):
                lib = None  # TF's own kernel is faster for this shape (measured)
        if lib is not None and _plain_grouped(x, filters, dilations, groups, shuffle_groups):
            from keras_cnns.ops.depthwise_dispatch import prefer_native_grouped

            if prefer_native_grouped():  # oneDNN's grouped convolution (measured faster)
                return tf.nn.conv2d(x, filters, list(strides), padding,
                                    dilations=list(dilations))
        if lib is None:
            return reference_grouped_depthwise_conv2d(x, filters, strides, padding, dilations,
                                                      groups, shuffle_groups)
        half = x.dtype == tf.float16
        y = lib.keras_cnns_grouped_depthwise_conv2d(
            tf.cast(x, tf.float32) if half else x, tf.cast(filters, tf.float32) if half else filters,
            strides=list(strides), padding=padding, dilations=list(dilations), groups=groups,
            shuffle_groups=shuffle_groups)
        return tf.cast(y, tf.float16) if half else y


@tf.autograph.experimental.do_not_convert
def plain_conv2d_on_op(x, kernel, strides, padding):
    """A plain convolution (``tf.nn.conv2d(x, kernel, strides, padding)``, float32 NHWC, one
    group, no dilation) on the compiled op at ``groups=1``, or ``None`` where the op is not to
    run it: not loaded, inside :func:`stock_ops_only` (exports), or another dtype. The caller
    (:func:`keras_cnns.layers.dispatch_plain_convolutions`) then runs its own stock path; the
    choice of *which* convolutions come here is the measured rule
    :func:`keras_cnns.ops.depthwise_dispatch.prefer_custom_plain`. Filters too big for the op's
    forward (:func:`keras_cnns.ops.depthwise_dispatch.plain_forward_on_op`) run it on
    ``tf.nn.conv2d`` with the op's two gradients."""
    if _stock_only() or getattr(x, "dtype", None) is None or x.dtype.name != "float32":
        return None
    lib = _loader.load_library()
    if lib is None:
        return None
    strides = check_pair("strides", strides)
    attrs = dict(strides=list(strides), padding=padding.upper(), dilations=[1, 1], groups=1,
                 shuffle_groups=1)
    from keras_cnns.ops.depthwise_dispatch import plain_forward_on_op

    kh, kw, cin, cout = kernel.shape
    if kh != kw or plain_forward_on_op(kh, cin, cout):
        return lib.keras_cnns_grouped_depthwise_conv2d(x, kernel, **attrs)
    return _stock_forward_op_gradients(lib, x, tf.convert_to_tensor(kernel), attrs)


def _stock_forward_op_gradients(lib, x, kernel, attrs):
    """``tf.nn.conv2d`` forward whose two gradients are the op's (where the op's forward is the
    slower one, :func:`keras_cnns.ops.depthwise_dispatch.plain_forward_on_op`). Second-order
    gradients follow the op's registered gradients of its backprop ops."""

    @tf.custom_gradient
    def conv(inputs, filters):
        y = tf.nn.conv2d(inputs, filters, strides=[1, *attrs["strides"], 1],
                         padding=attrs["padding"])

        def grad(dy):
            dx = lib.keras_cnns_grouped_depthwise_conv2d_backprop_input(
                tf.shape(inputs), filters, dy, **attrs)
            df = lib.keras_cnns_grouped_depthwise_conv2d_backprop_filter(
                inputs, tf.shape(filters), dy, **attrs)
            return dx, df

        return y, grad

    return conv(x, kernel)
