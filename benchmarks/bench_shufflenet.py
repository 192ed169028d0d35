"""ShuffleNet v1 with the custom op against the same model on stock TF ops.

Run from the repository root::

    python benchmarks/bench_shufflenet.py                         # g=3 and g=8, 224 and 128
    python benchmarks/bench_shufflenet.py --groups 8 --sizes 128 --reps 5 --onednn current
    python benchmarks/bench_shufflenet.py --groups 3 --sizes 224 --breakdown

Two copies of ShuffleNet v1 1x (same weights, 1000 classes, ``jit_compile=False``) are compared
in one process: one traces its functions normally (each unit's channel shuffle fused into its
depthwise convolution, and its 1x1 group convolutions, on the compiled
``KerasCnns>GroupedDepthwiseConv2D`` op), the other inside ``keras_cnns.ops.stock_ops_only()``
(the stock formulation exports use: the shuffle as a 4-D reshape / transpose / reshape, then
``tf.nn.depthwise_conv2d``, and each group convolution as one ``tf.nn.conv2d`` per group).
Timed interleaved (ours, stock, ours, ...): the SGD training step at batch 32 (target: stock /
ours >= 1.25x), inference at batch 32 and at batch 1. By default once per TensorFlow CPU kernel
set (oneDNN off and on), each in its own process.

``--breakdown`` adds where the time goes: each distinct layer shape of the model's fused
shuffle + depthwise and group 1x1 convolutions, forward + input and kernel gradients at the
benchmark's batch, op against its stock formulation, weighted by how often the model uses it.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (add_onednn_arguments, dispatch_onednn_runs, environment_line,  # noqa: E402
                     grad_step, interleaved, reject_below_one, write_json)

TARGET = 1.25


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[3, 8], choices=[1, 2, 3, 4, 8],
                        help="ShuffleNet v1 1x groups (default 3 8)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 128],
                        help="input sides (default 224 128)")
    parser.add_argument("--batch", type=int, default=32, help="batch (default 32)")
    parser.add_argument("--reps", type=int, default=7, help="timed steps per side (default 7)")
    parser.add_argument("--scale", type=float, default=1.0, help="width scale (default 1.0)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time each fused layer shape, op vs stock")
    add_onednn_arguments(parser)
    return parser.parse_args(argv)


def _summarize(results):
    print(f"\n=== summary: training step stock / ours (target >= {TARGET}) ===")
    for setting, r in results.items():
        print(f"oneDNN {setting}: " + ", ".join(
            f"g{row['groups']}@{row['size']} {row['train_ratio']:.3f}x" for row in r["rows"]))


def _layer_breakdown(model, batch, reps):
    """Rows (kind, shape, uses, ours ms, stock ms, ratio) for the fused layers of ``model``."""
    import tensorflow as tf

    from keras_cnns.layers import GroupedDepthwiseConv2D
    from keras_cnns.ops import stock_ops_only

    shapes = collections.Counter()
    for layer in model.layers:
        if isinstance(layer, GroupedDepthwiseConv2D):
            kind = ("shuffle+dw" if layer.shuffle_groups > 1 else "dw") if layer.groups is None \
                else f"gconv1x1 g{layer.groups}"
            h, w, c = layer.input.shape[1:]
            shapes[(kind, h, c, layer._filters, layer.strides[0], layer.name)] += 1
    # Distinct shapes (the name kept only to rebuild the layer once per shape).
    distinct = {}
    for (kind, h, c, f, s, name), n in shapes.items():
        distinct.setdefault((kind, h, c, f, s), [name, 0])[1] += n
    rows = []
    rng = np.random.default_rng(0)
    for (kind, h, c, f, s), (name, uses) in sorted(distinct.items()):
        layer = model.get_layer(name)
        x = tf.constant(rng.random((batch, h, h, c), dtype=np.float32))
        fn = lambda t, layer=layer: layer(t)  # noqa: E731
        ours = grad_step(fn, x, layer.trainable_weights)
        with stock_ops_only():
            stock = grad_step(fn, x, layer.trainable_weights)
            stock()  # trace inside the context
        ours()
        med_ours, med_stock, ratio = interleaved(ours, stock, reps, warmup=1)
        rows.append((kind, f"{h}x{h}x{c}->{f}/{s}", uses, med_ours, med_stock, ratio))
    return rows


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("batch", "reps")):
        return 2
    if min(args.sizes) < 32:
        print(f"--sizes must be >= 32. Received: --sizes={' '.join(map(str, args.sizes))}")
        return 2
    code = dispatch_onednn_runs(args, argv, os.path.abspath(__file__), _summarize)
    if code is not None:
        return code
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from keras_cnns import ops
    from keras_cnns.models.shufflenet import ShuffleNet

    if not ops.custom_op_available():
        print(f"The compiled op is not available ({ops._loader.load_error()}); nothing to compare.")
        return 1
    print(f"\nShuffleNet v1 {args.scale:g}x, batch {args.batch}, {args.reps} interleaved steps per "
          f"side, TF {tf.__version__}")
    print(environment_line() + "\n")
    print(f"{'model':<10}{'size':>6}{'train ours ms':>15}{'stock ms':>10}{'ratio':>8}"
          f"{'infer32 ours':>14}{'stock':>8}{'ratio':>8}{'infer1 ours':>13}{'stock':>8}"
          f"{'ratio':>8}")
    rows, breakdowns = [], []
    rng = np.random.default_rng(0)
    for size in args.sizes:
        shape = (size, size, 3)
        x = tf.constant(rng.random((args.batch, *shape), dtype=np.float32))
        y = tf.constant(rng.integers(0, 1000, args.batch))
        for groups in args.groups:
            ours = ShuffleNet(groups=groups, scale=args.scale, input_shape=shape)
            stock = ShuffleNet(groups=groups, scale=args.scale, input_shape=shape)
            stock.set_weights(ours.get_weights())
            for m in (ours, stock):
                m.compile(optimizer=keras.optimizers.SGD(0.01),
                          loss="sparse_categorical_crossentropy", jit_compile=False)
            infer = {id(m): tf.function(lambda t, m=m: m(t, training=False), jit_compile=False)
                     for m in (ours, stock)}
            train_ours = lambda: ours.train_on_batch(x, y)  # noqa: E731
            train_stock = lambda: stock.train_on_batch(x, y)  # noqa: E731
            train_ours()
            infer[id(ours)](x), infer[id(ours)](x[:1])
            with ops.stock_ops_only():  # every trace of the stock copy bakes in stock ops
                train_stock()
                infer[id(stock)](x), infer[id(stock)](x[:1])
            out = []
            for fo, fs in ((train_ours, train_stock),
                           (lambda: infer[id(ours)](x).numpy(), lambda: infer[id(stock)](x).numpy()),
                           (lambda: infer[id(ours)](x[:1]).numpy(),
                            lambda: infer[id(stock)](x[:1]).numpy())):
                reps = args.reps if fo is train_ours else args.reps * 3
                out.append(interleaved(fo, fs, reps, warmup=1))
            (t_o, t_s, r_t), (i_o, i_s, r_i), (l_o, l_s, r_l) = out
            row = {"groups": groups, "size": size, "train_ours_ms": t_o, "train_stock_ms": t_s,
                   "train_ratio": r_t, "infer32_ours_ms": i_o, "infer32_stock_ms": i_s,
                   "infer32_ratio": r_i, "infer1_ours_ms": l_o, "infer1_stock_ms": l_s,
                   "infer1_ratio": r_l}
            rows.append(row)
            print(f"{'g' + str(groups):<10}{size:>6}{t_o:>15.1f}{t_s:>10.1f}{r_t:>7.3f}x"
                  f"{i_o:>14.1f}{i_s:>8.1f}{r_i:>7.3f}x{l_o:>13.2f}{l_s:>8.2f}{r_l:>7.3f}x")
            if args.breakdown:
                breakdowns.append((groups, size, _layer_breakdown(ours, args.batch, args.reps)))
            del ours, stock, infer
            keras.backend.clear_session()
    for groups, size, brows in breakdowns:
        print(f"\nbreakdown g{groups}@{size}: fused layers, forward + gradients at batch "
              f"{args.batch} (ms per call; 'uses' = layers of that shape in the model)")
        print(f"{'kind':<14}{'shape':<22}{'uses':>5}{'ours ms':>10}{'stock ms':>10}{'ratio':>8}")
        total_o = total_s = 0.0
        for kind, shp, uses, o, s, r in brows:
            total_o, total_s = total_o + uses * o, total_s + uses * s
            print(f"{kind:<14}{shp:<22}{uses:>5}{o:>10.2f}{s:>10.2f}{r:>7.3f}x")
        print(f"{'all (weighted by uses)':<41}{total_o:>10.1f}{total_s:>10.1f}"
              f"{total_s / total_o:>7.3f}x")
    met = sum(r["train_ratio"] >= TARGET for r in rows)
    print(f"\ntraining step at >= {TARGET}x: {met} of {len(rows)} "
          f"(median ratio {statistics.median(r['train_ratio'] for r in rows):.3f}x)")
    write_json(args.json_out, {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
