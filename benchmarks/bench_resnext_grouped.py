"""ResNeXt's grouped 3x3 convolution: keras_cnns' custom op against ``keras.layers.Conv2D(groups=)``.

Run from the repository root::

    python benchmarks/bench_resnext_grouped.py              # both oneDNN settings, batch 8
    python benchmarks/bench_resnext_grouped.py --batch 16 --reps 20 --onednn current

Which implementation the residual blocks use for a grouped convolution is decided in one place,
``keras_cnns.blocks.residual.grouped_conv2d``; this script measures the two candidates on the
four grouped 3x3 convolutions of ResNeXt-50 32x4d (Xie et al. 2017, Table 1: 128 channels at
56x56, 256 at 28x28, 512 at 14x14, 1024 at 7x7, 32 groups; the first block of stages 2-4 is
strided, the others are not, and the table times the unstrided ones):

- ``Conv2D(groups=32)``: Keras' layer (on TensorFlow's CPU it runs the grouped convolution under
  XLA, since TF's CPU kernels have no grouped-convolution gradient without oneDNN);
- ``GroupedDepthwiseConv2D(groups=32)``: the keras_cnns custom op (same kernel layout
  ``[3, 3, C / 32, C]``), forward and both gradients in C++.

Both layers get the same kernel and input; a training step (forward, gradient of a scalar loss
for input and kernel) of each is timed interleaved, in a ``tf.function`` without ``jit_compile``
(Keras' own XLA use inside ``Conv2D`` is kept). Ratios > 1 mean the custom op is faster. Each
oneDNN setting runs in its own child process (TensorFlow picks its CPU kernels at import).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (add_onednn_arguments, dispatch_onednn_runs, environment_line,  # noqa: E402
                     grad_step, interleaved, reject_below_one, write_json)

#: (channels, side) of ResNeXt-50 32x4d's grouped 3x3 convolutions, stages 1-4
STAGES = ((128, 56), (256, 28), (512, 14), (1024, 7))


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--groups", type=int, default=32, help="cardinality (default 32)")
    parser.add_argument("--reps", type=int, default=15, help="timed steps per side (default 15)")
    parser.add_argument("--stages", type=int, default=4,
                        help="how many of the four stages to time (default 4)")
    parser.add_argument("--max-side", type=int, default=None,
                        help="cap the spatial side (a quick check; default: the real sides)")
    add_onednn_arguments(parser)
    return parser.parse_args(argv)


def _summarize(results):
    print("\n=== summary: training-step ratio Conv2D(groups) / custom op (> 1: custom op faster) ===")
    for setting, rows in results.items():
        cells = ", ".join(f"{r['channels']}@{r['side']}: {r['ratio']:.2f}x" for r in rows["rows"])
        print(f"oneDNN {setting}: {cells}; whole block sum {rows['total_ratio']:.2f}x")


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("batch", "groups", "reps", "stages", "max_side")):
        return 2
    if args.stages > len(STAGES):
        print(f"--stages must be <= {len(STAGES)}. Received: --stages={args.stages}")
        return 2
    for channels, _ in STAGES[:args.stages]:
        if channels % args.groups:
            print(f"--groups must divide {channels}. Received: --groups={args.groups}")
            return 2
    code = dispatch_onednn_runs(args, argv, os.path.abspath(__file__), _summarize)
    if code is not None:
        return code

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from keras_cnns.layers import GroupedDepthwiseConv2D

    print(environment_line())
    print(f"batch {args.batch}, groups {args.groups}, {args.reps} interleaved training steps")
    print(f"{'C@side':>10} {'Conv2D(groups) ms':>18} {'custom op ms':>13} {'ratio':>7}")
    rows, t_keras_sum, t_ours_sum = [], 0.0, 0.0
    rng = np.random.default_rng(0)
    for channels, side in STAGES[:args.stages]:
        side = min(side, args.max_side or side)
        stock = keras.layers.Conv2D(channels, 3, padding="same", groups=args.groups,
                                    use_bias=False)
        ours = GroupedDepthwiseConv2D(channels, 3, padding="same", groups=args.groups,
                                      use_bias=False)
        shape = (args.batch, side, side, channels)
        stock.build(shape)
        ours.build(shape)
        ours.kernel.assign(stock.kernel)
        x = tf.constant(rng.normal(size=shape).astype("float32"))
        np.testing.assert_allclose(ours(x).numpy(), stock(x).numpy(), rtol=1e-3, atol=1e-3)

        t_ours, t_stock, ratio = interleaved(grad_step(ours, x, [ours.kernel]),
                                             grad_step(stock, x, [stock.kernel]), args.reps)
        t_keras_sum += t_stock
        t_ours_sum += t_ours
        rows.append({"channels": channels, "side": side, "ours_ms": t_ours, "keras_ms": t_stock,
                     "ratio": ratio})
        print(f"{channels:>5}@{side:<4} {t_stock:>18.2f} {t_ours:>13.2f} {ratio:>6.2f}x")
    total = t_keras_sum / t_ours_sum
    print(f"{'sum':>10} {t_keras_sum:>18.2f} {t_ours_sum:>13.2f} {total:>6.2f}x")
    write_json(args.json_out, {"rows": rows, "total_ratio": total})
    return 0


if __name__ == "__main__":
    sys.exit(main())
