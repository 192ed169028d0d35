"""End-to-end benchmark: a MobileNet training step with the custom op vs the stock-TF path.

Run from the repository root::

    python benchmarks/bench_mobilenet_step.py                  # MobileNet 1.0, 160x160, batch 32
    python benchmarks/bench_mobilenet_step.py --size 128 --batch 16 --alpha 0.5 --reps 6

Two copies of the same keras_cnns MobileNet (same weights, ``jit_compile=False``) are trained
with SGD on random data; one traces its train step normally (depthwise convolutions through the
compiled ``KerasCnns>GroupedDepthwiseConv2D`` op), the other inside
``keras_cnns.ops.stock_ops_only()`` (``tf.nn.depthwise_conv2d`` and its gradients). Their steps
are timed interleaved (ours, stock, ours, ...) in one process; the table gives median step
times and the median per-pair ratio ``t_stock / t_ours`` (> 1 means the op is faster).

TensorFlow's stock kernels depend on ``TF_ENABLE_ONEDNN_OPTS`` (read at import), so by default
the script runs this comparison once per setting, each in its own process (``--onednn both``),
and reports the ratio against the faster stock side; ``--onednn on|off|current`` runs one.

The op's kernel-level gains (``bench_grouped_conv.py``) are diluted here: in MobileNet the
depthwise layers are a small part of the multiply-adds and of the time, the pointwise 1x1
convolutions dominate.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (  # noqa: E402
    add_onednn_arguments,
    dispatch_onednn_runs,
    environment_line,
    plain_convolutions_on_tensorflow,
    interleaved,
    reject_below_one,
    train_step,
    write_json,
)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=160, help="input side (default 160)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--alpha", type=float, default=1.0, help="width multiplier (default 1)")
    parser.add_argument("--reps", type=int, default=10, help="timed steps per side (default 10)")
    add_onednn_arguments(parser)
    return parser.parse_args(argv)


def _print_summary(results):
    print("\n=== summary: ratio stock / ours per setting; against the faster stock side: "
          f"{min(r['ratio'] for r in results.values()):.3f}x ===")
    for setting, r in results.items():
        print(f"  oneDNN {setting}: ours {r['ours_ms']:.1f} ms, stock {r['stock_ms']:.1f} ms, "
              f"ratio {r['ratio']:.3f}x")


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("size", "batch", "reps")):
        return 2
    # The stock kernels (and the pointwise convolutions of both sides) depend on oneDNN: by
    # default run once per setting, each in its own process.
    rc = dispatch_onednn_runs(args, argv, os.path.abspath(__file__), _print_summary)
    if rc is not None:
        return rc
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    import keras_cnns
    from keras_cnns import ops

    if not ops.custom_op_available():
        print(f"The compiled op is not available ({ops._loader.load_error()}); nothing to compare.")
        return 1
    shape = (args.size, args.size, 3)
    with plain_convolutions_on_tensorflow():  # only the depthwise path differs between sides
        ours = keras_cnns.MobileNet(alpha=args.alpha, input_shape=shape, classes=10)
        stock = keras_cnns.MobileNet(alpha=args.alpha, input_shape=shape, classes=10)
    stock.set_weights(ours.get_weights())
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((args.batch, *shape), dtype=np.float32))
    y = tf.constant(rng.integers(0, 10, args.batch))

    step_ours = train_step(ours, x, y)
    step_stock = train_step(stock, x, y)
    # Count how often tracing takes the compiled-op branch, to prove which path each side uses.
    from keras_cnns.ops import _loader

    load, calls = _loader.load_library, []
    _loader.load_library = lambda: calls.append(1) or load()
    try:
        step_ours()  # traces with the custom op
        traced_ours = len(calls)
        with ops.stock_ops_only():
            step_stock()  # traces with stock TF ops
        traced_stock = len(calls) - traced_ours
    finally:
        _loader.load_library = load
    if traced_ours == 0 or traced_stock != 0:
        print(f"tracing did not separate the paths (custom-op layers traced: ours {traced_ours}, "
              f"stock {traced_stock})")
        return 1
    med_ours, med_stock, ratio = interleaved(step_ours, step_stock, args.reps, warmup=2)
    print(f"\nMobileNet alpha={args.alpha:g}, {args.size}x{args.size}, batch {args.batch}, SGD "
          f"train step, TF {tf.__version__} (CPU, {os.cpu_count()} cores), {args.reps} "
          "interleaved steps per side")
    env = environment_line()
    print(env + "\n")
    print(f"{'depthwise path':<34}{'median step ms':>16}")
    print(f"{'custom op (KerasCnns>...)':<34}{med_ours:>16.1f}")
    print(f"{'stock (tf.nn.depthwise_conv2d)':<34}{med_stock:>16.1f}")
    print(f"(depthwise layers traced through the custom op: {traced_ours} in ours, 0 in stock)")
    print(f"\nratio stock / ours (median of per-step ratios): {ratio:.3f}x")
    write_json(args.json_out, {"environment": env, "ours_ms": med_ours, "stock_ms": med_stock,
                               "ratio": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
