"""RevNet: reversible residual networks that train without storing activations.

Paper: Gomez, Ren, Urtasun & Grosse, "The Reversible Residual Network: Backpropagation Without
Storing Activations", NIPS 2017 (arXiv:1707.04585), Sec. 5: RevNet-38, RevNet-110 and
RevNet-164 for CIFAR, built to match the parameter counts of ResNet-32, ResNet-110 and the
pre-activation ResNet-164 (0.46 M, 1.73 M, 1.75 M).

Reference code: renmengye/revnet-public (``resnet/models/revnet_model.py``,
``resnet/models/resnet_model.py``, ``resnet/configs/cifar_configs.py``), whose CIFAR configs this
module builds:

=========== ================= ======== =========== ======================= ====================
model        filters           units    unit        params (10 classes)     MACs at 32x32
=========== ================= ======== =========== ======================= ====================
revnet38     32-32-64-112      3-3-3    basic       464,890 (100: 475,060)  77.2 M
revnet110    32-32-64-128      9-9-9    basic       1,729,194 (1,740,804)   253.3 M
revnet164    32-128-256-512    9-9-9    bottleneck  1,748,778 (1,794,948)   250.2 M
=========== ================= ======== =========== ======================= ====================

(trainable parameters; the bottleneck widths are the config's ``[32, 32, 64, 128]`` times 4
after the stem, as revnet-public multiplies them.) The network: a 3x3 stem convolution
(``init_filter`` 3, no bias) -> BN -> ReLU; three stages at strides 1, 2, 2 whose first unit is
an ordinary (stored) coupling unit that changes the shape -- average pooling + channel padding
of each half for basic units, a 1x1 projection of each half for bottleneck ones -- and whose
other units are reversible (:class:`keras_cnns.blocks.reversible.ReversibleSequence`: one custom
gradient per stage that reconstructs activations in the backward pass); the network's very first
unit has no pre-activation; then BN -> ReLU, global average pooling and a dense classifier with
bias. BatchNorm epsilon 1e-3, moving-average decay 0.99 (revnet-public ``nnlib.batch_norm``);
kernels truncated normal with stddev ``sqrt(2 / (k * k * out))`` (``_conv``). Depth counts the
convolutions on the longest path plus the stem and classifier: ``12 n + 2`` for basic units
(``F`` and ``G`` of 2 convolutions each), ``18 n + 2`` for bottleneck units, ``n`` units per
stage. The one departure: revnet-public average-pools with ``VALID`` padding, which only works
for even sides; here the pooling is ``SAME`` (identical on even sides, and odd sides work).

Memory and precision (benchmarks/bench_revnet.py; tests/models/test_revnet.py):

* ``reversible_backprop=True`` (default): the peak memory of a training step does not grow with
  depth (the reconstruction needs one unit's activations at a time plus one stored map per
  stage; the first unit of each stage is recomputed from its stored input); ``False`` computes
  the same network with ordinary autodiff -- the same gradients to float32 rounding (the tests
  compare them several units deep, and the BN moving statistics after a step).
  benchmarks/bench_revnet.py at batch 128, 32x32, SGD, 2 quiet cores, oneDNN on (peak RSS of
  the training steps above the RSS before them, the graph traced beforehand): RevNet-38 257 MiB
  / ResNet-32 344 MiB (0.75x), RevNet-110 272 MiB / ResNet-110 1129 MiB (0.24x), RevNet-164
  772 MiB / pre-activation ResNet-164 3269 MiB (0.24x); flat in depth: RevNet-110 / RevNet-38
  1.06x, and RevNet-164 / the same network with 3 units per stage 1.04x. RevNet-164 / RevNet-38
  is 3.0x because RevNet-164 is 4x wider (128-256-512 channels against 32-64-112), not deeper.
  Each reversible run is a ``tf.while_loop`` over its units (forward, and the reconstructing
  backward), so the traced graph holds one unit per run; tracing costs per variable (the
  optimizer's updates), as much as for the ResNet (RevNet-164 703 MiB, ResNet-164 724 MiB, once
  per process): with it the process peaks are 1475 / 3993 MiB (0.37x; oneDNN off 0.38x). Step
  time: 1.2x-2.2x the matching ResNet's. Figures: README, "Memory".
* Mixed precision (``mixed_float16``: convolutions and the coupling sums in float16, BatchNorm
  in float32): the reconstruction subtracts in float16 what the forward pass added in float16,
  so each unit returns its input only up to float16 rounding, compounding over a stage's units.
  Measured by tests/models/test_revnet.py ``test_mixed_precision_reconstruction_and_gradients``
  (a 38-layer basic RevNet of widths 8-8-16-24, random weights, batch 8 at 16x16): the max
  relative error of each reversible run's reconstructed input against the stored one is
  1.8e-3 in float16 (4e-7 in float32). The weight and input gradients of the reconstructing
  pass differ from ordinary float16 backprop by a median (over tensors) of 6 % of each tensor's
  largest entry (float32: 3e-6 at worst), while ordinary float16 backprop itself is 11 % from
  float32 and the reconstructing float16 pass 13 %: the reconstruction adds a little to float16's
  own error, which this deep random network amplifies either way. Loss scaling does not change
  these figures. revnet-public builds its models in float32 (``dtype=tf.float32``).
* Training: ``keras-cnns train revnet38 --image-size 32 --no-export --quiet`` (the default
  recipe: Adam 1e-3, warm-up, poly decay, batch 64, 30 epochs) reached 0.9972 held-out top-1 on
  the embedded digits (360 images never trained on; best epoch 22 of 30) in 713 s wall time on
  2 CPU cores shared with other jobs (83 images/s). The paper's recipe is ``recipe="paper"``.

Every model takes ``features_only=True``: levels P0 (the end of stage 1, 32x32), P1 (stage 2)
and P2 (stage 3 after the final BN -> ReLU).
"""

from __future__ import annotations

import keras
from keras import layers

from keras_cnns._checks import check_bool, fail, is_int
from keras_cnns.blocks.reversible import RevNetBlock, ReversibleSequence
from keras_cnns.models._builder import family_builder
from keras_cnns.models._registry import register_model
from keras_cnns.models.heads import pooled_classifier

__all__ = ["RevNet"]

_PAPER = ("Gomez, Ren, Urtasun & Grosse, 'The Reversible Residual Network: Backpropagation "
          "Without Storing Activations', NIPS 2017 (arXiv:1707.04585)")
_MIN_SIZE = 8
_KERNEL_INIT = keras.initializers.VarianceScaling(2.0, "fan_out", "truncated_normal")
_FC_INIT = keras.initializers.VarianceScaling(1.0, "fan_in", "uniform")  # "uniform_scaling"


def _check_filters(filters, bottleneck):
    if isinstance(filters, (str, bytes)) or not hasattr(filters, "__len__") or len(filters) != 4 \
            or not all(is_int(f) and f > 0 for f in filters):
        fail("filters", "must be 4 positive integers (stem, stage 1, stage 2, stage 3)", filters)
    widths = [int(f) * (4 if bottleneck and i else 1) for i, f in enumerate(filters)]
    if any(w % 2 for w in widths) or (bottleneck and any(w % 8 for w in widths[1:])):
        fail("filters", "must give even stage widths (multiples of 8 with bottleneck=True: each "
                        "half's bottleneck is a quarter of it)", filters)
    if not bottleneck:
        for a, b in zip(widths, widths[1:]):
            if b < a or (b - a) % 4:
                fail("filters", "must not decrease, and each half must grow by an even number "
                                "of channels (padded equally on both sides)", filters)
    return widths


@family_builder(classes=10)
def RevNet(depth=38, filters=None, bottleneck=False, reversible_backprop=True, *, ctx):
    """A CIFAR RevNet (Gomez et al. 2017; renmengye/revnet-public's layout).

    Args:
        depth: ``12 n + 2`` (basic units) or ``18 n + 2`` (``bottleneck=True``), ``n`` units per
            stage: 38, 110 (basic), 164 (bottleneck) are the paper's.
        filters: ``(stem, stage1, stage2, stage3)`` widths before the bottleneck's x4 (default:
            revnet-public's, ``(32, 32, 64, 112)`` for depth 38, else ``(32, 32, 64, 128)``).
        bottleneck: bottleneck residual functions (1x1-3x3-1x1, stage widths x4).
        reversible_backprop: reconstruct activations in the backward pass (flat memory); False
            differentiates the same network ordinarily (the reference for the gradients).
{common_args}

    Returns:
        A ``keras.Model``.
    """
    check_bool("bottleneck", bottleneck)
    check_bool("reversible_backprop", reversible_backprop)
    per_unit = 18 if bottleneck else 12
    if not is_int(depth) or depth < per_unit + 2 or (depth - 2) % per_unit:
        fail("depth", f"must be {per_unit} n + 2 for n >= 1 units per stage with "
                      f"bottleneck={bottleneck} (e.g. {per_unit * 3 + 2}, {per_unit * 9 + 2})", depth)
    units = (depth - 2) // per_unit
    if filters is None:
        filters = (32, 32, 64, 112) if depth == 38 and not bottleneck else (32, 32, 64, 128)
    widths = _check_filters(filters, bottleneck)

    x = ctx.start(default_shape=(32, 32, 3), min_size=_MIN_SIZE)
    x = layers.Conv2D(widths[0], 3, padding="same", use_bias=False,
                      kernel_initializer=_KERNEL_INIT, name="init_conv")(x)
    x = layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name="init_bn")(x)
    x = layers.ReLU(name="init_relu")(x)
    features = {}
    for s, stride in enumerate((1, 2, 2)):
        x = RevNetBlock(widths[s + 1], strides=stride, bottleneck=bottleneck,
                        preactivate=s > 0, recompute=reversible_backprop,
                        name=f"unit_{s + 1}_0")(x)
        if units > 1:
            x = ReversibleSequence(units - 1, bottleneck=bottleneck,
                                   reversible_backprop=reversible_backprop,
                                   name=f"unit_{s + 1}_rev")(x)
        if s < 2:
            features[f"P{s}"] = x
    x = layers.BatchNormalization(momentum=0.99, epsilon=1e-3, name="final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    features["P2"] = x
    return ctx.finish(
        x, head=lambda t: pooled_classifier(t, ctx, kernel_initializer=_FC_INIT),
        default_name=f"revnet{depth}", features=features)


for _name, _depth, _bottleneck in (("revnet38", 38, False), ("revnet110", 110, False),
                                   ("revnet164", 164, True)):
    register_model(_name, family="RevNet", paper=_PAPER, builder=RevNet,
                   default_input_shape=(32, 32, 3), min_input_size=_MIN_SIZE, default_classes=10,
                   depth=_depth, bottleneck=_bottleneck)
del _name, _depth, _bottleneck
