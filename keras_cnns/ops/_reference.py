"""Pure-TensorFlow reference of grouped depthwise convolution with a fused channel shuffle.

This is the semantics the compiled op reproduces, the fallback when the op is not loaded, and the
path used when exporting (``stock_ops_only``): only stock TF ops, 4-D tensors throughout, so TF
Serving, TFLite and its GPU delegate run the result.

Portability. TensorFlow's CPU convolution kernels differ between builds that run with oneDNN
(``TF_ENABLE_ONEDNN_OPTS=1``, the default on Intel CPUs) and its own Eigen kernels (the default
on AMD CPUs, and ``TF_ENABLE_ONEDNN_OPTS=0`` anywhere). Only oneDNN accepts

* ``tf.nn.depthwise_conv2d`` with unequal strides (``(2, 1)``),
* gradients of a grouped ``tf.nn.conv2d`` (``1 < groups < C``), and
* gradients of ``tf.nn.conv2d`` with dilations > 1.

So this module never relies on any of them: it uses only the combinations both kernel sets run,
forward and backward, and expresses the rest through them:

* a grouped convolution is one ``tf.nn.conv2d`` per group (``tf.split`` -> ``conv2d`` ->
  ``tf.concat``), the formulation of Krizhevsky et al.'s two-tower AlexNet;
* a dilated ``conv2d`` kernel is dilated explicitly (zeros inserted between its taps), which
  computes the same sums;
* unequal depthwise strides run as an explicitly padded VALID depthwise convolution at stride
  ``gcd(sh, sw)`` in both directions, followed by a strided slice taking every
  ``sh / gcd``-th row and ``sw / gcd``-th column (the outputs of a stride-``s`` convolution are
  every ``s``-th output of the stride-1 one);
* depthwise stride together with dilation uses the explicitly dilated kernel as well
  (``tf.nn.depthwise_conv2d`` takes strides or dilation, not both).

The common cases (equal strides, no dilation, depthwise or plain) map to a single
``tf.nn.depthwise_conv2d`` / ``tf.nn.conv2d`` as before.
"""

from __future__ import annotations

import math

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
    return tuple(int(a) for a in v)


def dilate_kernel(filters, dilations):
    """Insert ``d - 1`` zero taps between the taps of ``filters`` (``[KH, KW, I, O]``) along each
    spatial axis, so that a convolution with the result equals the dilated convolution with
    ``filters``. 4-D ops only (``concat`` of slices and zeros)."""
    for axis, d in enumerate(dilations):
        k = filters.shape[axis]
        if d == 1 or k == 1:
            continue
        zeros_shape = list(filters.shape)
        zeros_shape[axis] = d - 1
        zeros = tf.zeros(zeros_shape, filters.dtype)
        pieces = []
        for i in range(k):
            begin = [0, 0, 0, 0]
            begin[axis] = i
            size = list(filters.shape)
            size[axis] = 1
            pieces.append(tf.slice(filters, begin, size))
            if i < k - 1:
                pieces.append(zeros)
        filters = tf.concat(pieces, axis)
    return filters


def _same_pads(size, k_eff, stride):
    """TensorFlow's SAME padding ``(before, after)`` for one spatial axis; ``size`` may be a
    Python int (static) or a scalar tensor (dynamic)."""
    if isinstance(size, int):
        out = -(-size // stride)
        total = max((out - 1) * stride + k_eff - size, 0)
        return total // 2, total - total // 2
    out = (size + stride - 1) // stride
    total = tf.maximum((out - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def _pad_same(x, k_eff, strides):
    """Pad ``x`` explicitly as SAME would for effective kernel ``k_eff`` and ``strides``."""
    dynamic = tf.shape(x)
    pads = []
    for axis in (1, 2):
        size = x.shape[axis]
        size = int(size) if size is not None else dynamic[axis]
        pads.append(_same_pads(size, k_eff[axis - 1], strides[axis - 1]))
    if all(isinstance(p, int) and p == 0 for pair in pads for p in pair):
        return x
    return tf.pad(x, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])


def _depthwise(x, filters, strides, padding, dilations):
    """Depthwise convolution, ``filters`` in ``tf.nn.depthwise_conv2d``'s ``[KH, KW, C, M]``."""
    sh, sw = strides
    if (dilations != (1, 1)) and (strides != (1, 1)):
        filters, dilations = dilate_kernel(filters, dilations), (1, 1)
    if sh == sw:
        return tf.nn.depthwise_conv2d(x, filters, [1, sh, sw, 1], padding, dilations=dilations)
    # Unequal strides (dilations are (1, 1) here): pad for the real strides, convolve at the
    # common stride, keep every (s / common)-th output row / column.
    common = math.gcd(sh, sw)
    if padding == "SAME":
        x = _pad_same(x, (filters.shape[0], filters.shape[1]), strides)
    y = tf.nn.depthwise_conv2d(x, filters, [1, common, common, 1], "VALID")
    return y[:, ::sh // common, ::sw // common, :]


def _conv(x, filters, strides, padding, dilations):
    """Plain (one group) convolution; dilation through an explicitly dilated kernel."""
    if dilations != (1, 1):
        filters = dilate_kernel(filters, dilations)
    return tf.nn.conv2d(x, filters, [1, *strides, 1], padding)


def reference_grouped_depthwise_conv2d(x, filters, strides=1, padding="SAME", dilations=1,
                                       groups=None, shuffle_groups=1):
    """``tf.nn.conv2d(shuffle(x), filters, strides, padding, dilations)`` with stock ops.

    ``groups == C`` uses ``tf.nn.depthwise_conv2d`` (the same arithmetic; fast on CPU and
    natively supported by TFLite), ``groups == 1`` ``tf.nn.conv2d``, and other groups one
    ``tf.nn.conv2d`` per group. Forward and gradients run with TensorFlow's oneDNN kernels and
    with its Eigen kernels alike (see the module docstring).
    """
    x = tf.convert_to_tensor(x)
    filters = tf.convert_to_tensor(filters, dtype=x.dtype)
    c = x.shape[-1]
    if groups is None:
        groups = c // filters.shape[2]
    x = channel_shuffle_4d(x, shuffle_groups)
    strides = _as_pair(strides)
    dilations = _as_pair(dilations)
    padding = padding.upper()
    kh, kw, _, cout = filters.shape
    if padding == "VALID":
        # TF's CPU convolutions return a wrongly shaped, uninitialised tensor when a VALID kernel
        # is larger than the input; the correct result is empty.
        eh, ew = (kh - 1) * dilations[0] + 1, (kw - 1) * dilations[1] + 1
        h, w = x.shape[1], x.shape[2]
        if (h is not None and h < eh) or (w is not None and w < ew):
            sh, sw = strides
            shape = tf.shape(x)
            out_h = tf.maximum((shape[1] - eh) // sh + 1, 0) * tf.cast(shape[1] >= eh, tf.int32)
            out_w = tf.maximum((shape[2] - ew) // sw + 1, 0) * tf.cast(shape[2] >= ew, tf.int32)
            return tf.zeros(tf.stack([shape[0], out_h, out_w, cout]), x.dtype)
    if groups == c and groups > 1:
        return _depthwise(x, tf.reshape(filters, [kh, kw, c, cout // c]), strides, padding,
                          dilations)
    if groups == 1:
        return _conv(x, filters, strides, padding, dilations)
    xs = tf.split(x, groups, axis=-1)
    fs = tf.split(filters, groups, axis=-1)
    return tf.concat([_conv(xg, fg, strides, padding, dilations) for xg, fg in zip(xs, fs)],
                     axis=-1)
