"""Which kernel runs a plain depthwise convolution: the custom op or TensorFlow's own.

:func:`keras_cnns.ops.grouped_depthwise_conv2d` (and so every
:class:`~keras_cnns.layers.GroupedDepthwiseConv2D` layer of the mobile networks) asks
:func:`prefer_custom_op` at trace time, for a *plain* depthwise convolution only (channel
multiplier 1, no channel shuffle, no dilation, equal strides, a square kernel): ``True`` runs the
compiled custom op, ``False`` runs ``tf.nn.depthwise_conv2d`` (the kernel
``keras.layers.DepthwiseConv2D`` uses). Grouped and shuffled convolutions always use the custom op
(stock TF has no fused kernel for them). The layer, its weights and its exported graph
(:func:`keras_cnns.ops.stock_ops_only`) are the same either way; only the kernel differs.

The rule is derived from ``benchmarks/bench_depthwise_shapes.py`` (forward + both gradients,
batch 32, every depthwise shape of MobileNet v1, MobileNetV2, MobileNetV3-Large and
EfficientNet-B0 at 224 and at 128; 2-core AMD EPYC with AVX-512, TF 2.21):

* TF with oneDNN off (Eigen kernels): the custom op is faster at every shape, 1.10-2.09x
  (1.33x over the four models' shapes weighted by use) -> always the custom op.
* oneDNN on: the custom op is 1.2-2.5x faster for 5x5 kernels and about 1.0-1.35x for most 3x3
  shapes (1.15x weighted, at 224 and at 128), but oneDNN's kernel wins for 3x3 kernels on large
  maps with few channels at both sizes (>= 56 px, <= 72 channels: 113x113 x 64 stride 2 0.82x,
  112x112 x 16 0.91x, 56x56 x 72 0.88x, 65x65 x 64 0.87x, 64x64 x 16 0.96x) -> stock TF there.
  Small maps with many channels are mixed (7x7 x 1152: 0.70x, but 4x4 x 1152 1.11x, 4x4 x 960
  1.21x) and keep the op.
* The same measurements with the op's AVX2 kernels (the op's build for CPUs without AVX-512,
  :func:`keras_cnns.ops._loader.op_isa`; 2-core AMD EPYC Zen 3, oneDNN on, 2026-12-07, after the
  AVX2 forward's per-tile prefetch): the op is faster at the shapes the rule above gives to
  oneDNN too (112x112 x 16 1.13-1.17x, 112x112 x 32 1.14-1.21x, 56x56 x 72 1.21-1.41x, 64x64 x
  16 1.14x, 64x64 x 32 1.20x) and ties at the strided 64-channel ones (113x113 x 64 1.01-1.02x,
  65x65 x 64 0.99x); the weighted total is 1.28-1.29x at 224 and 1.49x at 128 -> with the AVX2
  build, always the custom op.

``KERAS_CNNS_DEPTHWISE`` overrides the rule for the whole process: ``custom`` or ``stock``
(``auto``, the default, applies it). The benchmark sets ``custom`` to time the op itself.

Plain convolutions (``keras.layers.Conv2D`` with one group: :func:`prefer_custom_plain`, applied
by :func:`keras_cnns.layers.dispatch_plain_convolutions` to every model the library builds)
from ``benchmarks/bench_plain_conv.py`` (forward + both gradients, batch 64, the 53 distinct
plain convolutions of CIFAR ResNet-110, WRN-16-8 and DenseNet-40 at 32x32; 2-core AMD EPYC with
AVX-512, TF 2.21, both processes with a pooled CPU allocator):

* oneDNN on: oneDNN's convolution is faster at almost every shape (op / stock 0.38-0.88x for 3x3,
  1x1 about equal) -> always ``tf.nn.conv2d``.
* oneDNN off (Eigen): the op is faster for stride-1 convolutions: 3x3 with few channels
  1.49x (32x32 x 16 -> 16) and 1.52x (16x16 x 32 -> 32), 1.0x at 8x8 x 64; DenseNet's growth
  convolutions (-> 12 channels) 0.94-2.39x, mostly 1.1-1.6x; wide ones (128 -> 128 ... 512 ->
  512) 1.05-1.08x; 1x1 1.07-1.28x; it is slower for the 3-channel stem (0.89x). Strided ones
  were slower (0.61-0.90x) while the op's input gradient multiplied every tap, three quarters
  of them zeros at stride 2; it now takes each phase's taps only, and on the 2-core Zen 3
  (AVX2) they are 1.02-1.43x for 3x3 at stride 2 (34x34 x 16 -> 32 1.13x, 34x34 x 128 -> 256
  1.02x, 18x18 x 32 -> 64 1.11x, 18x18 x 256 -> 512 1.43x) and 1.22x / 1.58x for 1x1 at stride
  2 -> the op for strides 1 and 2, 1x1 and 3x3 kernels, at least 8 input channels, on maps up
  to 32 px (34 px at stride 2: a 32-px map padded for a VALID downsampling; the measured
  domain: larger and unknown sides keep Eigen's kernels).

Of the convolutions on the op, 3x3 ones with 16 or more output channels and those with a
float32 filter over 256 KiB run their forward pass on ``tf.nn.conv2d`` and only their two
gradients on the op (:func:`plain_forward_on_op`, which gives the measurements): the op's gains
are in the gradients, and its forward is the faster one only for 1x1 convolutions and narrow
3x3 ones (DenseNet's growth convolutions).

``KERAS_CNNS_PLAIN_CONV`` overrides the rule when a model is built: ``custom`` (every eligible
plain convolution on the op, every pass) or ``stock`` (none); ``auto`` (default) applies it.

Grouped spatial convolutions (ResNeXt's and CSPResNeXt's 32-group 3x3, ``1 < groups < C``, no
shuffle, float32): :func:`prefer_native_grouped` says whether ``tf.nn.conv2d`` with the grouped
filter runs them instead of the custom op. TensorFlow's Eigen kernels have no gradient for a
grouped ``Conv2D`` (oneDNN off: the custom op, 1.05-1.8x faster than one ``conv2d`` per group),
but oneDNN's grouped convolution has one and is faster than the op at every such shape of
CSPResNeXt-50 (forward + both gradients, batch 8, 2-core AMD EPYC with AVX-512, TF 2.21: 56x56 x
128 3.4x, 28x28 x 256 2.8x, 14x14 x 512 1.5x, 7x7 x 1024 1.8x, the strided 56 / 28 / 14 px ones
1.6 / 1.7 / 1.9x) -> with oneDNN on, ``tf.nn.conv2d``. ``KERAS_CNNS_GROUPED`` overrides it:
``custom`` (always the op) or ``native`` (``tf.nn.conv2d`` where oneDNN runs it; ``auto``, the
default, is the rule). Grouped 1x1 convolutions (ShuffleNet, FBNet) keep the op: not measured
here.
"""

from __future__ import annotations

import functools
import os

from keras_cnns._startup import onednn_enabled  # the rules depend on it (re-exported)

__all__ = ["ENV_VAR", "GROUPED_ENV_VAR", "PLAIN_ENV_VAR", "dispatch_mode", "grouped_dispatch_mode",
           "measured_plain_rule", "measured_rule", "onednn_enabled", "plain_dispatch_mode",
           "prefer_custom_op", "prefer_custom_plain", "prefer_native_grouped"]

ENV_VAR = "KERAS_CNNS_DEPTHWISE"
_MODES = ("auto", "custom", "stock")
GROUPED_ENV_VAR = "KERAS_CNNS_GROUPED"
_GROUPED_MODES = ("auto", "custom", "native")
PLAIN_ENV_VAR = "KERAS_CNNS_PLAIN_CONV"
_PLAIN_MODES = ("auto", "custom", "stock")


def _mode(var: str, modes) -> str:
    mode = os.environ.get(var, "auto").strip().lower() or "auto"
    if mode not in modes:
        raise ValueError(f"`{var}` must be one of {list(modes)}. Received: "
                         f"{var}={os.environ.get(var)!r}")
    return mode


def dispatch_mode() -> str:
    """``KERAS_CNNS_DEPTHWISE`` (``auto`` when unset).

    Raises:
        ValueError: an unknown value (the message names the variable).
    """
    return _mode(ENV_VAR, _MODES)


@functools.lru_cache(maxsize=1)
def _onednn() -> bool:
    return bool(onednn_enabled())


def prefer_custom_op(height, width, channels, kernel_size, stride, onednn=None) -> bool:
    """Whether a plain depthwise convolution of an ``height x width x channels`` input with a
    ``kernel_size`` square kernel and ``stride`` runs faster on the custom op than on
    ``tf.nn.depthwise_conv2d`` in this process (the module docstring gives the measurements).
    Unknown sides (``None``) count as large. ``onednn``: ``None`` reads this process's setting.
    """
    mode = dispatch_mode()
    if mode != "auto":
        return mode == "custom"
    return measured_rule(height, width, channels, kernel_size, stride,
                         _onednn() if onednn is None else onednn, isa=_op_isa())


@functools.lru_cache(maxsize=1)
def _op_isa() -> str:
    from keras_cnns.ops._loader import op_isa

    return op_isa()


def measured_rule(height, width, channels, kernel_size, stride, onednn,
                  isa: str = "avx512") -> bool:
    """The measured rule itself (no environment override): ``True`` for the custom op.
    ``isa``: the vector ISA of the op's build (``"avx512"``, ``"avx2"`` or ``"baseline"``; the
    baseline build keeps the AVX-512 measurements' rule)."""
    del stride  # the measurements show no stride dependence beyond the map size
    if not onednn or isa == "avx2":
        return True
    if kernel_size != 3:
        return True
    side = min(s for s in (height, width, 1 << 30) if s is not None)
    if side >= 56 and channels is not None and channels <= 72:
        return False
    return True


def grouped_dispatch_mode() -> str:
    """``KERAS_CNNS_GROUPED`` (``auto`` when unset).

    Raises:
        ValueError: an unknown value (the message names the variable).
    """
    return _mode(GROUPED_ENV_VAR, _GROUPED_MODES)


def prefer_native_grouped(onednn=None) -> bool:
    """Whether a grouped spatial convolution (``1 < groups < C``, kernel larger than 1x1, no
    shuffle, float32) runs as ``tf.nn.conv2d`` with the grouped filter rather than on the custom
    op in this process: only where oneDNN runs TensorFlow's CPU kernels (it has the grouped
    gradients; the module docstring gives the measurements), unless ``KERAS_CNNS_GROUPED``
    says otherwise. ``onednn``: ``None`` reads this process's setting."""
    onednn = _onednn() if onednn is None else onednn
    mode = grouped_dispatch_mode()
    if mode == "custom" or not onednn:
        return False
    return True


def plain_dispatch_mode() -> str:
    """``KERAS_CNNS_PLAIN_CONV`` (``auto`` when unset).

    Raises:
        ValueError: an unknown value (the message names the variable).
    """
    return _mode(PLAIN_ENV_VAR, _PLAIN_MODES)


def prefer_custom_plain(height, width, channels_in, channels_out, kernel_size, stride,
                        onednn=None) -> bool:
    """Whether a plain convolution (``keras.layers.Conv2D``: one group, no dilation, a square
    ``kernel_size`` kernel, equal strides, float32) of an ``height x width x channels_in`` input
    to ``channels_out`` channels runs faster on the custom op (at ``groups=1``) than on
    ``tf.nn.conv2d`` in this process, unless ``KERAS_CNNS_PLAIN_CONV`` says ``custom`` or
    ``stock``. ``onednn``: ``None`` reads this process's setting."""
    mode = plain_dispatch_mode()
    if mode != "auto":
        return mode == "custom"
    return measured_plain_rule(height, width, channels_in, channels_out, kernel_size, stride,
                               _onednn() if onednn is None else onednn)


def measured_plain_rule(height, width, channels_in, channels_out, kernel_size, stride,
                        onednn) -> bool:
    """The measured rule for plain convolutions (no environment override): ``True`` for the
    custom op. Only the measured domain gets the op: unknown sides (``None``) keep
    TensorFlow's kernels, and so do sides above 32 (34 at stride 2: a 32-px map padded for a
    VALID downsampling), kernels other than 1x1 and 3x3, strides above 2 and inputs of fewer
    than 8 channels."""
    if onednn or None in (height, width, channels_in) or stride not in (1, 2):
        return False
    if min(height, width) > (32 if stride == 1 else 34):
        return False
    return kernel_size in (1, 3) and channels_in >= 8


#: Filters of a plain convolution on the op bigger than this run their forward pass on
#: ``tf.nn.conv2d`` (the gradients stay on the op): see :func:`plain_forward_on_op`.
PLAIN_FORWARD_FILTER_BYTES = 256 * 1024


def plain_forward_on_op(kernel_size, channels_in, channels_out) -> bool:
    """For a plain convolution the rule put on the op (:func:`prefer_custom_plain`): whether its
    forward pass runs on the op too (``True``) or on ``tf.nn.conv2d``, with only the two
    gradients on the op (``False``). The op's gains are in the gradients; its forward keeps only
    the shapes where it is the faster one (2-core Zen 3, AVX2, oneDNN off, batch 64):

    * 1x1 convolutions and 3x3 ones with fewer than 16 output channels (DenseNet's growth
      convolutions): ``bench_plain_conv.py --forward-only`` 1.15-2.25x Eigen's forward;
    * not 3x3 ones with 16 or more output channels: level in isolation (0.98-1.05x at 16-64
      channels) and slower inside a network (CIFAR ResNet-110 inference, batch 64: the op's
      forwards 342 ms against Eigen's 277 ms per pass, whole model 0.80x);
    * not filters bigger than L2 (``PLAIN_FORWARD_FILTER_BYTES``, 256 KiB: 1x1 512 -> 512 and
      wider): the op's GEMM streams its packed filter once per few output pixels and loses to
      Eigen's blocked one (MobileNet's 4x4 x 1024 -> 1024 at batch 1, filter out of cache,
      0.63x).

    ``KERAS_CNNS_PLAIN_CONV=custom`` puts every pass on the op.
    """
    if plain_dispatch_mode() == "custom":
        return True
    if kernel_size * kernel_size * channels_in * channels_out * 4 > PLAIN_FORWARD_FILTER_BYTES:
        return False
    return kernel_size == 1 or channels_out < 16
