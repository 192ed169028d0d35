"""The custom op against TF's depthwise convolution, shape by shape, for the mobile networks.

Run from the repository root::

    python benchmarks/bench_depthwise_shapes.py                    # batch 32 at 224, both oneDNN
    python benchmarks/bench_depthwise_shapes.py --sizes 128 224 --reps 10 --onednn current

Collects every distinct depthwise convolution (input ``H x W x C``, kernel, stride, padding) of
MobileNet v1, MobileNetV2, MobileNetV3-Large and EfficientNet-B0 at each input side, and times,
interleaved, one training-step's worth of work for it (forward, then the gradients with respect
to input and kernel, in a ``tf.function``, ``jit_compile=False``) with the library's custom op
(``grouped_depthwise_conv2d``, the compiled kernels) and with stock TF
(``tf.nn.depthwise_conv2d``, what ``keras.layers.DepthwiseConv2D`` runs). It prints per shape the
two times and the ratio ``stock / custom`` (> 1: the custom op is faster), the total over every
shape weighted by how often the models use it, and what the library's dispatch rule
(:func:`keras_cnns.ops.depthwise_dispatch.measured_rule`) picks for that shape with this
process's oneDNN setting, so the rule can be checked against the measurements it was derived
from. The custom side runs with ``KERAS_CNNS_DEPTHWISE=custom`` (the op itself, not the rule).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (add_onednn_arguments, dispatch_onednn_runs, environment_line,  # noqa: E402
                     grad_step, interleaved, reject_below_one, write_json)

MODELS = ("mobilenet", "mobilenetv2", "mobilenetv3_large", "efficientnet_b0")


def _shapes(size):
    """``Counter((h, w, c, k, stride, padding) -> uses)`` over the models at side ``size``."""
    import keras_cnns
    from keras_cnns.layers import GroupedDepthwiseConv2D
    from keras_cnns.models import shapes_only

    uses = collections.Counter()
    for name in MODELS:
        with shapes_only():
            model = keras_cnns.create_model(name, input_shape=(size, size, 3))
        for layer in model.layers:
            if isinstance(layer, GroupedDepthwiseConv2D):
                _, h, w, c = layer.input.shape
                uses[(h, w, c, layer.kernel_size[0], layer.strides[0], layer.padding)] += 1
    return uses


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224],
                        help="model input sides (default 224)")
    parser.add_argument("--batch", type=int, default=32, help="batch (default 32)")
    parser.add_argument("--reps", type=int, default=7, help="timed calls per side (default 7)")
    add_onednn_arguments(parser)
    return parser.parse_args(argv)


def _summarize(results):
    print("\n=== summary: stock / custom op time over all shapes (> 1: custom op faster) ===")
    for setting, r in results.items():
        print(f"oneDNN {setting}: " + ", ".join(
            f"side {t['size']}: {t['ratio']:.3f}x (rule picks {t['rule_ratio']:.3f}x of stock)"
            for t in r["totals"]))


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("batch", "reps")):
        return 2
    code = dispatch_onednn_runs(args, argv, os.path.abspath(__file__), _summarize)
    if code is not None:
        return code
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["KERAS_CNNS_DEPTHWISE"] = "custom"  # time the op, not the dispatch rule
    import tensorflow as tf

    from keras_cnns.environment import onednn_enabled
    from keras_cnns.ops import custom_op_available, grouped_depthwise_conv2d
    from keras_cnns.ops._loader import op_isa
    from keras_cnns.ops.depthwise_dispatch import measured_rule

    if not custom_op_available():
        print("the custom op is not available on this machine (see keras-cnns env)")
        return 1
    rng = np.random.default_rng(0)
    print(f"\nDepthwise convolution forward + input/kernel gradients, batch {args.batch}, "
          f"{args.reps} interleaved calls per side")
    print(environment_line() + f"; the op's kernels: {op_isa()} build\n")
    rows, totals = [], []
    for size in args.sizes:
        uses = _shapes(size)
        print(f"side {size}: {len(uses)} distinct shapes in {', '.join(MODELS)}")
        print(f"{'H x W x C':>16}{'k':>3}{'s':>3}{'pad':>6}{'uses':>6}{'custom ms':>11}"
              f"{'stock ms':>10}{'stock/custom':>14}{'rule':>8}")
        sum_custom = sum_stock = sum_rule = 0.0
        for (h, w, c, k, s, pad), n in sorted(uses.items(), key=lambda kv: -kv[0][0] * kv[0][2]):
            x = tf.constant(rng.normal(size=(args.batch, h, w, c)).astype(np.float32))
            kernel = tf.Variable(rng.normal(size=(k, k, 1, c)).astype(np.float32))

            def custom(t):
                return grouped_depthwise_conv2d(t, kernel, strides=s, padding=pad.upper())

            def stock(t):
                return tf.nn.depthwise_conv2d(t, tf.reshape(kernel, (k, k, c, 1)),
                                              (1, s, s, 1), pad.upper())

            med_custom, med_stock, _ = interleaved(grad_step(custom, x, [kernel]),
                                                   grad_step(stock, x, [kernel]), args.reps)
            use_custom = measured_rule(h, w, c, k, s, bool(onednn_enabled()), isa=op_isa())
            sum_custom += n * med_custom
            sum_stock += n * med_stock
            sum_rule += n * (med_custom if use_custom else med_stock)
            ratio = med_stock / med_custom
            rows.append({"size": size, "h": h, "w": w, "c": c, "k": k, "stride": s,
                         "padding": pad, "uses": n, "custom_ms": med_custom,
                         "stock_ms": med_stock, "ratio": ratio, "rule_custom": use_custom})
            print(f"{f'{h} x {w} x {c}':>16}{k:>3}{s:>3}{pad:>6}{n:>6}{med_custom:>11.2f}"
                  f"{med_stock:>10.2f}{ratio:>13.2f}x{'custom' if use_custom else 'stock':>8}")
        total = {"size": size, "ratio": sum_stock / sum_custom, "rule_ratio": sum_rule / sum_stock,
                 "custom_ms": sum_custom, "stock_ms": sum_stock, "rule_ms": sum_rule}
        totals.append(total)
        print(f"weighted total: custom {sum_custom:.1f} ms, stock {sum_stock:.1f} ms "
              f"(stock / custom {total['ratio']:.3f}x); the rule's picks {sum_rule:.1f} ms "
              f"({total['rule_ratio']:.3f}x of stock)\n")
    write_json(args.json_out, {"rows": rows, "totals": totals})
    return 0


if __name__ == "__main__":
    sys.exit(main())
