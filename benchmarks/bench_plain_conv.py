"""Plain convolutions on the custom op (``groups=1``) against TensorFlow's ``tf.nn.conv2d``.

Run from the repository root::

    python benchmarks/bench_plain_conv.py                  # shapes, then training steps, both oneDNN
    python benchmarks/bench_plain_conv.py --part shapes --reps 5
    python benchmarks/bench_plain_conv.py --part steps --batch 64 --steps 10
    python benchmarks/bench_plain_conv.py --part shapes --forward-only --models mobilenet --side 128 --batch 1

``--part shapes``: every distinct plain convolution (``keras.layers.Conv2D`` with one group: input
``H x W x C_in``, ``C_out``, kernel, stride) of the CIFAR networks ``--models`` (default CIFAR
ResNet-110, WRN-16-8, DenseNet-40 at 32x32), timed interleaved for one training step's worth of
work (forward, then the gradients with respect to input and kernel, ``jit_compile=False``) on the
op and on ``tf.nn.conv2d`` (what ``keras.layers.Conv2D`` runs), with the ratio
``stock / op`` (> 1: the op is faster) and what the library's rule
(:func:`keras_cnns.ops.depthwise_dispatch.measured_plain_rule`) picks for the shape with this
process's oneDNN setting. ``--forward-only`` times the forward pass alone, what inference runs:
the op's gradients are what make training faster, and its forward loses where a call has few
pixels (4x4 maps, a 1x1 classifier, batch 1; see the README).

``--part steps``: a training step (SGD, ``train_on_batch``, ``jit_compile=False``) of each model
built twice with the same weights, once as the library builds it (the rule puts some plain
convolutions on the op, :func:`keras_cnns.layers.dispatch_plain_convolutions`) and once with
``KERAS_CNNS_PLAIN_CONV=stock``, interleaved; ratio = stock step time / rule step time. Targets:
>= 1.3x with oneDNN off, >= 0.98x with it on (the rule must not cost anything there).

Stock TF's kernels depend on ``TF_ENABLE_ONEDNN_OPTS``, so by default the script runs itself once
per setting, each in its own process, and ends with a summary of both.
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
                     grad_step, interleaved, reject_below_one, train_step, write_json)

MODELS = ("resnet110", "wrn_16_8", "densenet40_k12")
TARGETS = {"off": 1.3, "on": 0.98}


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["shapes", "steps", "both", "inference"],
                        default="both",
                        help="both = shapes then steps; inference is run only when asked for")
    parser.add_argument("--infer-batches", type=int, nargs="+", default=[1, 16],
                        help="inference: batch sizes (default 1 16)")
    parser.add_argument("--forward-only", action="store_true",
                        help="shapes: time the forward pass alone (what inference runs) instead "
                             "of forward + both gradients")
    parser.add_argument("--models", nargs="+", default=list(MODELS),
                        help=f"registered CIFAR models (default {' '.join(MODELS)})")
    parser.add_argument("--side", type=int, default=32, help="input side (default 32)")
    parser.add_argument("--batch", type=int, default=64, help="batch (default 64)")
    parser.add_argument("--reps", type=int, default=7, help="timed calls per shape and side")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per side")
    add_onednn_arguments(parser)
    return parser.parse_args(argv)


def _shapes(models, side):
    """``Counter((h, w, c_in, c_out, k, stride, padding) -> uses)`` over the models' plain
    convolutions (the ones the dispatch considers)."""
    import keras_cnns
    from keras_cnns.layers.conv import _plain_input_shape
    from keras_cnns.models import shapes_only

    uses = collections.Counter()
    for name in models:
        with shapes_only():
            model = keras_cnns.create_model(name, input_shape=(side, side, 3), classes=10)
        for layer in model._flatten_layers(include_self=False):
            shape = _plain_input_shape(layer)
            if shape is not None:
                _, h, w, c = shape
                uses[(h, w, c, layer.filters, layer.kernel_size[0], layer.strides[0],
                      layer.padding)] += 1
    return uses


def _run_shapes(args, out):
    from keras_cnns.environment import onednn_enabled
    from keras_cnns.ops.depthwise_dispatch import PLAIN_ENV_VAR

    rng = np.random.default_rng(0)
    onednn = bool(onednn_enabled())
    # The op on every pass (KERAS_CNNS_PLAIN_CONV=custom: no forward split): this part times
    # the op's own kernels against TensorFlow's.
    previous = os.environ.get(PLAIN_ENV_VAR)
    os.environ[PLAIN_ENV_VAR] = "custom"
    try:
        _time_shapes(args, out, rng, onednn)
    finally:
        if previous is None:
            os.environ.pop(PLAIN_ENV_VAR, None)
        else:
            os.environ[PLAIN_ENV_VAR] = previous


def _time_shapes(args, out, rng, onednn):
    import tensorflow as tf

    from keras_cnns.ops import plain_conv2d_on_op
    from keras_cnns.ops.depthwise_dispatch import PLAIN_FORWARD_FILTER_BYTES, measured_plain_rule

    uses = _shapes(args.models, args.side)
    print(f"\n{len(uses)} distinct plain convolutions in {', '.join(args.models)} at "
          f"{args.side}x{args.side}, batch {args.batch}, "
          f"{'forward only' if args.forward_only else 'forward + both gradients'}, "
          f"{args.reps} interleaved calls per side")
    print(f"{'H x W x C_in -> C_out':>24}{'k':>3}{'s':>3}{'uses':>6}{'op ms':>9}{'stock ms':>10}"
          f"{'stock/op':>10}{'rule':>8}")
    rows = []
    sums = {"op": 0.0, "stock": 0.0, "rule": 0.0}
    for (h, w, c, f, k, s, pad), n in sorted(uses.items(), key=lambda kv: (-kv[0][0], kv[0][2])):
        x = tf.constant(rng.normal(size=(args.batch, h, w, c)).astype(np.float32))
        kernel = tf.Variable((rng.normal(size=(k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32))

        def op(t):
            return plain_conv2d_on_op(t, kernel, s, pad)

        def stock(t):
            return tf.nn.conv2d(t, kernel, s, pad.upper())

        if args.forward_only:
            op_fn, stock_fn = tf.function(op), tf.function(stock)
            t_op, t_stock, _ = interleaved(lambda: op_fn(x), lambda: stock_fn(x), args.reps)
        else:
            t_op, t_stock, _ = interleaved(grad_step(op, x, [kernel]),
                                           grad_step(stock, x, [kernel]), args.reps)
        use_op = measured_plain_rule(h, w, c, f, k, s, onednn)
        split = use_op and k * k * c * f * 4 > PLAIN_FORWARD_FILTER_BYTES
        sums["op"] += n * t_op
        sums["stock"] += n * t_stock
        sums["rule"] += n * (t_op if use_op else t_stock)
        rows.append({"h": h, "w": w, "c_in": c, "c_out": f, "k": k, "stride": s, "uses": n,
                     "op_ms": t_op, "stock_ms": t_stock, "ratio": t_stock / t_op,
                     "rule_op": use_op, "rule_forward_stock": split})
        pick = "op*" if split else ("op" if use_op else "stock")
        print(f"{f'{h} x {w} x {c} -> {f}':>24}{k:>3}{s:>3}{n:>6}{t_op:>9.2f}{t_stock:>10.2f}"
              f"{t_stock / t_op:>9.2f}x{pick:>8}", flush=True)
    print("op*: the rule runs the forward on tf.nn.conv2d, the gradients on the op "
          "(filter over 256 KiB); 'op ms' is the op on every pass")
    print(f"weighted total: op {sums['op']:.0f} ms, stock {sums['stock']:.0f} ms "
          f"(stock / op {sums['stock'] / sums['op']:.2f}x); the rule's picks {sums['rule']:.0f} ms "
          f"(stock / rule {sums['stock'] / sums['rule']:.2f}x)")
    out["shapes"] = {"rows": rows, "sums": sums}


def _build(name, side, mode, weights=None):
    import keras_cnns

    os.environ["KERAS_CNNS_PLAIN_CONV"] = mode
    try:
        model = keras_cnns.create_model(name, input_shape=(side, side, 3), classes=10)
    finally:
        os.environ.pop("KERAS_CNNS_PLAIN_CONV", None)
    if weights is not None:
        model.set_weights(weights)
    return model


def _pair(name, side):
    """The model as the library builds it (the rule), the same model with
    ``KERAS_CNNS_PLAIN_CONV=stock`` and the same weights, how many of its ``Conv2D`` layers the
    rule put on the op, and how many it has."""
    from keras_cnns.layers.conv import _op_convolution

    ruled = _build(name, side, "auto")
    stock = _build(name, side, "stock", ruled.get_weights())
    layers = list(ruled._flatten_layers(include_self=False))
    on_op = sum(getattr(getattr(layer, "convolution_op", None), "__func__", None)
                is _op_convolution for layer in layers)
    convs = sum(type(layer).__name__ == "Conv2D" for layer in layers)
    return ruled, stock, on_op, convs


def _run_steps(args, out):
    rng = np.random.default_rng(0)
    x = rng.random((args.batch, args.side, args.side, 3), dtype=np.float32)
    y = rng.integers(0, 10, size=(args.batch,))
    print(f"\ntraining step (SGD, train_on_batch, jit_compile=False), batch {args.batch}, "
          f"{args.side}x{args.side}, {args.steps} interleaved steps per side")
    print(f"{'model':<18}{'convs on op':>13}{'rule ms':>10}{'stock ms':>10}{'stock/rule':>12}")
    rows = []
    for name in args.models:
        ruled, stock, on_op, convs = _pair(name, args.side)
        t_rule, t_stock, ratio = interleaved(train_step(ruled, x, y), train_step(stock, x, y),
                                             args.steps, warmup=2)
        rows.append({"model": name, "on_op": on_op, "convs": convs, "rule_ms": t_rule,
                     "stock_ms": t_stock, "ratio": ratio})
        print(f"{name:<18}{f'{on_op}/{convs}':>13}{t_rule:>10.1f}{t_stock:>10.1f}{ratio:>11.2f}x",
              flush=True)
    out["steps"] = rows


def _run_inference(args, out):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    print(f"\ninference (model(x, training=False) in a tf.function, jit_compile=False), "
          f"{args.side}x{args.side}, {3 * args.reps} interleaved calls per side")
    print(f"{'model':<18}{'batch':>6}{'convs on op':>13}{'rule ms':>10}{'stock ms':>10}"
          f"{'stock/rule':>12}")
    rows = []
    for name in args.models:
        ruled, stock, on_op, convs = _pair(name, args.side)
        f_rule = tf.function(lambda t, m=ruled: m(t, training=False), jit_compile=False)
        f_stock = tf.function(lambda t, m=stock: m(t, training=False), jit_compile=False)
        for batch in args.infer_batches:
            x = tf.constant(rng.random((batch, args.side, args.side, 3), dtype=np.float32))
            t_rule, t_stock, ratio = interleaved(lambda: f_rule(x).numpy(),
                                                 lambda: f_stock(x).numpy(), 3 * args.reps,
                                                 warmup=2)
            rows.append({"model": name, "batch": batch, "on_op": on_op, "convs": convs,
                         "rule_ms": t_rule, "stock_ms": t_stock, "ratio": ratio})
            print(f"{name:<18}{batch:>6}{f'{on_op}/{convs}':>13}{t_rule:>10.2f}{t_stock:>10.2f}"
                  f"{ratio:>11.3f}x", flush=True)
    out["inference"] = rows


def _summarize(results):
    print("\n=== summary: plain convolutions with the rule against TensorFlow's kernels ===")
    for setting, r in results.items():
        print(f"oneDNN {setting}: {r['environment']}")
        if "shapes" in r:
            sums = r["shapes"]["sums"]
            print(f"  shapes, weighted by use: stock / op {sums['stock'] / sums['op']:.2f}x, "
                  f"stock / rule {sums['stock'] / sums['rule']:.2f}x")
        for row in r.get("inference", []):
            print(f"  {row['model']:<18} inference at batch {row['batch']:<4} stock / rule "
                  f"{row['ratio']:.3f}x ({row['on_op']}/{row['convs']} convolutions on the op)")
        for row in r.get("steps", []):
            ok = row["ratio"] >= TARGETS[setting]
            print(f"  {row['model']:<18} training step stock / rule {row['ratio']:.2f}x "
                  f"({row['on_op']}/{row['convs']} convolutions on the op)  target >= "
                  f"{TARGETS[setting]}x {'ok' if ok else 'MISSED'}")


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("side", "batch", "reps", "steps")):
        return 2
    import keras_cnns

    unknown = [m for m in args.models if m not in keras_cnns.list_models()]
    if unknown:
        print(f"--models: unknown model(s) {unknown}; see keras_cnns.list_models()")
        return 2
    code = dispatch_onednn_runs(args, argv, os.path.abspath(__file__), _summarize)
    if code is not None:
        return code
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_cnns.ops import custom_op_available

    if not custom_op_available():
        print("the custom op is not available on this machine (see keras-cnns info --env)")
        return 1
    env = environment_line()
    print(env)
    out = {"environment": env}
    if args.part in ("shapes", "both"):
        _run_shapes(args, out)
    if args.part in ("steps", "both"):
        _run_steps(args, out)
    if args.part == "inference":
        _run_inference(args, out)
    write_json(args.json_out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
