"""CSPResNeXt-50: a training step with the custom op against the same model on stock TF ops.

Run from the repository root::

    python benchmarks/bench_cspresnext.py                    # 224x224, batch 8, both oneDNN settings
    python benchmarks/bench_cspresnext.py --size 128 --batch 16 --reps 5 --onednn current

CSPResNeXt-50 (Wang et al. 2020, arXiv:1911.11929; timm's ``cspresnext50`` layout,
``keras_cnns/models/cspnet.py``) has 32-group 3x3 convolutions in every residual block (13) and
in the strided ``conv_down`` of stages 2-4 (3). Which implementation they use is decided in one
place, ``keras_cnns.blocks.residual.grouped_conv2d``: the library's
``GroupedDepthwiseConv2D`` custom op (forward and both gradients compiled). Two copies of the
model (same weights, ``jit_compile=False``) are trained with SGD on random data; one traces its
train step normally (the grouped convolutions through the compiled
``KerasCnns>GroupedDepthwiseConv2D`` op, or, where oneDNN runs TensorFlow's kernels, its grouped
``tf.nn.conv2d``, which the dispatch rule of ``keras_cnns.ops.depthwise_dispatch`` picks there
as faster), the other inside ``keras_cnns.ops.stock_ops_only()``
(the stock formulation every export uses: one ``tf.nn.conv2d`` per group, which has gradients
with TensorFlow's oneDNN and Eigen CPU kernels alike). Their steps are timed interleaved (ours,
stock, ours, ...); the table gives median step times and the median per-pair ratio
``t_stock / t_ours`` (> 1: the op is faster; target >= 1.0). ``bench_resnext_grouped.py`` times
the grouped layers alone against ``Conv2D(groups=)``.

TensorFlow's stock kernels depend on ``TF_ENABLE_ONEDNN_OPTS`` (read at import), so by default the
comparison runs once per setting, each in its own process (``--onednn both``), and the summary
gives the ratio against the faster stock side; ``--onednn on|off|current`` runs one.
``--toy`` builds a narrow, one-block-per-stage CSPResNeXt (stage widths 64-512) for a quick check
of the script itself.
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

TARGET = 1.0


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=224, help="input side (default 224)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    parser.add_argument("--reps", type=int, default=5, help="timed steps per side (default 5)")
    parser.add_argument("--classes", type=int, default=1000, help="classes (default 1000)")
    parser.add_argument("--toy", action="store_true",
                        help="a narrow CSPResNeXt, one block per stage (a check of the script)")
    add_onednn_arguments(parser)
    return parser.parse_args(argv)


def _print_summary(results):
    print(f"\n=== summary: training step stock / ours (target >= {TARGET}); against the faster "
          f"stock side: {min(r['ratio'] for r in results.values()):.3f}x ===")
    for setting, r in results.items():
        print(f"  oneDNN {setting}: ours {r['ours_ms']:.1f} ms, stock {r['stock_ms']:.1f} ms, "
              f"ratio {r['ratio']:.3f}x")


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("size", "batch", "reps", "classes")):
        return 2
    if args.size < 32:
        print(f"--size must be >= 32 (five stride-2 steps). Received: --size={args.size}")
        return 2
    rc = dispatch_onednn_runs(args, argv, os.path.abspath(__file__), _print_summary)
    if rc is not None:
        return rc
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from keras_cnns import ops
    from keras_cnns.layers import GroupedDepthwiseConv2D
    from keras_cnns.models.cspnet import CSPNet

    if not ops.custom_op_available():
        print(f"The compiled op is not available ({ops._loader.load_error()}); nothing to compare.")
        return 1
    shape = (args.size, args.size, 3)
    knobs = dict(widths=(64, 128, 256, 512), depths=(1, 1, 1, 1)) if args.toy else {}

    def build():  # only the grouped path differs between the sides
        with plain_convolutions_on_tensorflow():
            return CSPNet("cspresnext50", input_shape=shape, classes=args.classes, **knobs)

    ours, stock = build(), build()
    stock.set_weights(ours.get_weights())
    grouped = sum(isinstance(layer, GroupedDepthwiseConv2D) for layer in ours.layers)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((args.batch, *shape), dtype=np.float32))
    y = tf.constant(rng.integers(0, args.classes, args.batch))

    step_ours, step_stock = train_step(ours, x, y), train_step(stock, x, y)
    # Count how often tracing takes the compiled-op branch, to prove which path each side uses.
    # And how often the dispatch rule hands a grouped layer to oneDNN's grouped tf.nn.conv2d.
    from keras_cnns.ops import _loader, depthwise_dispatch

    load, calls = _loader.load_library, []
    prefer, native = depthwise_dispatch.prefer_native_grouped, []
    _loader.load_library = lambda: calls.append(1) or load()
    depthwise_dispatch.prefer_native_grouped = lambda *a, **k: (
        native.append(1) if prefer(*a, **k) else None) is not None
    try:
        step_ours()  # traces with the custom op (or the native grouped conv the rule picks)
        traced_ours, native_ours = len(calls), len(native)
        with ops.stock_ops_only():
            step_stock()  # traces with stock TF ops
        traced_stock = len(calls) - traced_ours
    finally:
        _loader.load_library = load
        depthwise_dispatch.prefer_native_grouped = prefer
    if traced_ours == 0 or traced_stock != 0:
        print(f"tracing did not separate the paths (custom-op layers traced: ours {traced_ours}, "
              f"stock {traced_stock})")
        return 1
    med_ours, med_stock, ratio = interleaved(step_ours, step_stock, args.reps, warmup=2)
    label = "toy CSPResNeXt (widths 64-512, 1 block per stage)" if args.toy else "CSPResNeXt-50"
    print(f"\n{label}, {args.size}x{args.size}, batch {args.batch}, {args.classes} classes, SGD "
          f"train step, TF {tf.__version__} (CPU, {os.cpu_count()} cores), {args.reps} "
          f"interleaved steps per side; {grouped} grouped 3x3 convolutions (32 groups)")
    env = environment_line()
    print(env + "\n")
    print(f"{'grouped 3x3 path':<40}{'median step ms':>16}")
    print(f"{'ours (GroupedDepthwiseConv2D layers)':<40}{med_ours:>16.1f}")
    print(f"{'stock (tf.nn.conv2d per group)':<40}{med_stock:>16.1f}")
    print(f"(grouped layers traced through the custom op: {traced_ours} in ours, 0 in stock; "
          f"of ours, {native_ours} run as oneDNN's grouped tf.nn.conv2d by the dispatch rule "
          f"of keras_cnns.ops.depthwise_dispatch, {traced_ours - native_ours} on the op)")
    print(f"\nratio stock / ours (median of per-step ratios): {ratio:.3f}x (target >= {TARGET})")
    write_json(args.json_out, {"environment": env, "ours_ms": med_ours, "stock_ms": med_stock,
                               "ratio": ratio})
    return 0


if __name__ == "__main__":
    sys.exit(main())
