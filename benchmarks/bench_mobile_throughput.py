"""Training throughput and inference latency of our mobile networks against keras.applications'.

Run from the repository root::

    python benchmarks/bench_mobile_throughput.py                        # sizes 128 and 224, batch 32
    python benchmarks/bench_mobile_throughput.py --sizes 128 --reps 3 --onednn current

For each architecture (MobileNet v1, MobileNetV2, MobileNetV3-Large, EfficientNet-B0; 1000
classes) the
keras_cnns model and keras.applications' model of the same configuration (``weights=None``; our
weights copied in with ``from_keras_applications`` so both compute the same function) are
compiled alike (SGD, ``jit_compile=False``: XLA's CPU depthwise convolution is far slower than
TF's kernels, and the custom op has no XLA kernel) and trained on the same random batch. Their
steps are timed interleaved (ours, theirs, ours, ...); the table gives training images/s and the
ratio ``ours / theirs`` (target >= 1.0 for each), and the median latency of one image in
inference (``model(x, training=False)`` in a ``tf.function``, also timed interleaved). By
default the whole run is made once per TensorFlow CPU kernel set (oneDNN off and on), each in
its own process.

The two sides differ in the depthwise convolution (ours: the custom op
``GroupedDepthwiseConv2D`` where :mod:`keras_cnns.ops.depthwise_dispatch` measured it faster;
keras.applications': ``DepthwiseConv2D``) and in BatchNormalization (ours:
:class:`keras_cnns.layers.BatchNormalization`, TF's fused kernel in training mode).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (add_onednn_arguments, dispatch_onednn_runs, environment_line,  # noqa: E402
                     interleaved, reject_below_one, train_step, write_json)

MODELS = ("mobilenet", "mobilenetv2", "mobilenetv3_large", "efficientnet_b0")


def _pair(name, size):
    import keras

    import keras_cnns

    shape = (size, size, 3)
    if name == "mobilenet":
        return keras_cnns.MobileNet(input_shape=shape), keras.applications.MobileNet(
            input_shape=shape, weights=None)
    if name == "mobilenetv2":
        return keras_cnns.MobileNetV2(input_shape=shape), keras.applications.MobileNetV2(
            input_shape=shape, weights=None)
    if name == "efficientnet_b0":
        return keras_cnns.EfficientNet(input_shape=shape), keras.applications.EfficientNetB0(
            input_shape=shape, weights=None)
    return keras_cnns.MobileNetV3("large", input_shape=shape), keras.applications.MobileNetV3Large(
        input_shape=shape, weights=None)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 224],
                        help="input sides (default 128 224)")
    parser.add_argument("--batch", type=int, default=32, help="training batch (default 32)")
    parser.add_argument("--reps", type=int, default=5, help="timed steps per side (default 5)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                        help="architectures (default: all)")
    add_onednn_arguments(parser)
    return parser.parse_args(argv)


def _latency_ms(ours, theirs, x, reps):
    """Median batch-1 inference latency (ms) of both models, timed interleaved like the
    training steps (ours, theirs, ours, ...) so that load from other processes hits both alike
    (timing one model after the other let a burst of load land on one side only)."""
    import tensorflow as tf

    def forward(model):
        fn = tf.function(lambda t: model(t, training=False), jit_compile=False)
        return lambda: fn(x)

    med_ours, med_theirs, _ = interleaved(forward(ours), forward(theirs), max(8, reps * 6),
                                          warmup=3)
    return med_ours, med_theirs


def _summarize(results):
    print("\n=== summary: training images/s, ours / keras.applications (target >= 1.0) ===")
    for setting, r in results.items():
        print(f"oneDNN {setting}: " + ", ".join(f"{row['model']}@{row['size']} "
                                                f"{row['ratio']:.3f}x" for row in r["rows"]))


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("batch", "reps")):
        return 2
    if min(args.sizes) < 32:
        print(f"--sizes must be >= 32 (the models' minimum input side). Received: --sizes="
              f"{' '.join(map(str, args.sizes))}")
        return 2
    code = dispatch_onednn_runs(args, argv, os.path.abspath(__file__), _summarize)
    if code is not None:
        return code
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from keras_cnns.bridges import from_keras_applications

    rng = np.random.default_rng(0)
    print(f"\nTraining step (SGD, batch {args.batch}, {args.reps} interleaved steps per side) and "
          f"batch-1 inference, TF {tf.__version__}")
    print(environment_line() + "\n")
    print(f"{'model':<20}{'size':>6}{'ours img/s':>12}{'keras img/s':>13}{'ratio':>8}"
          f"{'ours 1-img ms':>15}{'keras 1-img ms':>16}")
    rows = []
    for size in args.sizes:
        x = tf.constant(rng.random((args.batch, size, size, 3), dtype=np.float32) * 255)
        y = tf.constant(rng.integers(0, 1000, args.batch))
        one = x[:1]
        for name in args.models:
            ours, theirs = _pair(name, size)
            from_keras_applications(ours, theirs)

            med_ours, med_theirs, ratio = interleaved(train_step(ours, x, y),
                                                      train_step(theirs, x, y),
                                                      args.reps, warmup=2)
            lat_ours, lat_theirs = _latency_ms(ours, theirs, one, args.reps)
            row = {"model": name, "size": size, "ours_ips": args.batch / med_ours * 1e3,
                   "theirs_ips": args.batch / med_theirs * 1e3, "ratio": ratio,
                   "ours_latency_ms": lat_ours, "theirs_latency_ms": lat_theirs}
            rows.append(row)
            print(f"{name:<20}{size:>6}{row['ours_ips']:>12.1f}{row['theirs_ips']:>13.1f}"
                  f"{ratio:>7.3f}x{lat_ours:>15.2f}{lat_theirs:>16.2f}")
            del ours, theirs
            keras.backend.clear_session()
    write_json(args.json_out, {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
