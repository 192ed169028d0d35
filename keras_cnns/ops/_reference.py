"""Pure-TensorFlow reference of grouped depthwise convolution with a fused channel shuffle.

This is the semantics the compiled op reproduces, the fallback when the op is not loaded, and the
path used when exporting (``stock_ops_only``): only stock TF ops, 4-D tensors throughout, so TF
Serving, TFLite and its GPU delegate run the result.
"""

from __future__ import annotations

import tensorflow as tf


def channel_shuffle_4d(x, groups: int):
    """ShuffleNet's channel shuffle using 4-D tensors only.

    View ``C`` as ``(groups, C // groups)``, transpose to ``(C // groups, groups)``, flatten.
    Implemented as ``[N, H*W, g, C/g] -> [N, H*W, C/g, g] -> [N, H, W, C]``.
    """
    if groups == 1:
        return x
    shape = tf.shape(x)
    n, h, w = shape[0], shape[1], shape[2]
    c = x.shape[-1]
    y = tf.reshape(x, [n, h * w, groups, c // groups])
    y = tf.transpose(y, [0, 1, 3, 2])
    return tf.reshape(y, [n, h, w, c])


def _as_pair(v):
    if isinstance(v, int):
        return (v, v)
    return tuple(v)


def reference_grouped_depthwise_conv2d(x, filters, strides=1, padding="SAME", dilations=1,
                                       groups=None, shuffle_groups=1):
    """``tf.nn.conv2d(shuffle(x), filters, strides, padding, dilations)`` with stock ops.

    ``groups == C`` uses ``tf.nn.depthwise_conv2d`` (the same arithmetic; fast on CPU and
    natively supported by TFLite), other groups ``tf.nn.conv2d`` whose filter depth
    ``C // groups`` implies the grouping.
    """
    x = tf.convert_to_tensor(x)
    filters = tf.convert_to_tensor(filters, dtype=x.dtype)
    c = x.shape[-1]
    if groups is None:
        groups = c // filters.shape[2]
    x = channel_shuffle_4d(x, shuffle_groups)
    sh, sw = _as_pair(strides)
    dh, dw = _as_pair(dilations)
    padding = padding.upper()
    if padding == "VALID":
        # TF's CPU convolutions return a wrongly shaped, uninitialised tensor when a VALID kernel
        # is larger than the input; the correct result is empty.
        eh, ew = (filters.shape[0] - 1) * dh + 1, (filters.shape[1] - 1) * dw + 1
        h, w = x.shape[1], x.shape[2]
        if (h is not None and h < eh) or (w is not None and w < ew):
            shape = tf.shape(x)
            out_h = tf.maximum((shape[1] - eh) // sh + 1, 0) * tf.cast(shape[1] >= eh, tf.int32)
            out_w = tf.maximum((shape[2] - ew) // sw + 1, 0) * tf.cast(shape[2] >= ew, tf.int32)
            return tf.zeros(tf.stack([shape[0], out_h, out_w, filters.shape[-1]]), x.dtype)
    if groups == c and groups > 1:
        kh, kw, _, cout = filters.shape
        dw_filters = tf.reshape(filters, [kh, kw, c, cout // c])
        if (sh, sw) != (1, 1) and (dh, dw) != (1, 1):
            # depthwise_conv2d does not take strides and dilation together; conv2d does.
            return tf.nn.conv2d(x, filters, [1, sh, sw, 1], padding, dilations=[1, dh, dw, 1])
        return tf.nn.depthwise_conv2d(x, dw_filters, [1, sh, sw, 1], padding, dilations=(dh, dw))
    return tf.nn.conv2d(x, filters, [1, sh, sw, 1], padding, dilations=[1, dh, dw, 1])
