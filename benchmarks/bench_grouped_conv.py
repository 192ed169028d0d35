"""Benchmark of ``keras_cnns.ops.grouped_depthwise_conv2d`` (the compiled CPU op) against stock TF.

Run from the repository root::

    python benchmarks/bench_grouped_conv.py            # full run (N=32, 30 reps; ~1 min on 2 cores)
    python benchmarks/bench_grouped_conv.py --quick    # short run (8 repetitions)
    python benchmarks/bench_grouped_conv.py --onednn off   # one setting of the stock kernels only

Every comparison times the two sides interleaved in the same loop (ours, theirs, ours, ...) on
MobileNet / ShuffleNet layer shapes (default [32, 28, 28, 240]), so load from other processes
hits both alike; the table reports median times and the median of the per-iteration ratios
``t_stock / t_ours`` (> 1 means ours is faster), next to the target each must reach:

1. depthwise 3x3, forward and forward+backward, vs ``tf.nn.depthwise_conv2d``   (>= 1.0x)
2. fused shuffle(g=3) + depthwise 3x3 forward+backward vs reshape/transpose shuffle then
   ``tf.nn.depthwise_conv2d``                                                    (>= 1.6x)
3. grouped 1x1 with groups 3 and 8 vs the faster stock formulation that runs: ``tf.nn.conv2d``
   grouped (oneDNN only has its gradients) or one ``tf.nn.conv2d`` per group  (>= 1.0x)
4. depthwise forward effective bandwidth, (input + output + filter bytes) / time, vs a copy
   that moves the same bytes (reads half, writes half; ``numpy.copyto`` split over all cores,
   into a preallocated array)                                                    (>= 60%)

Stock TF's CPU kernels depend on ``TF_ENABLE_ONEDNN_OPTS`` (oneDNN's or TF's own Eigen kernels,
chosen at import), so by default the script runs itself twice, once per setting in its own
process, prints both tables and a summary whose ratio is the smaller of the two: the peer to
beat is the faster stock side. Every table names the stock kernels, the CPU model and its ISA.

Forward+backward means the forward op and both gradients (to the input and to the filter) for
a given output gradient, each side inside one ``tf.function``.

Eager and ``tf.function`` execution on the CPU is synchronous, so a call's time ends when its
ops are done; the outputs are not converted with ``.numpy()``, which copies (~2.7 ms per 24 MB
here) and would add the same constant to both sides, pulling every ratio towards 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (  # noqa: E402
    add_onednn_arguments,
    dispatch_onednn_runs,
    environment_line,
    fastest_runnable,
    interleaved as _interleaved,
    reject_below_one,
    write_json,
)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 repetitions instead of 30")
    parser.add_argument("--batch", type=int, default=32, help="batch size N (default 32)")
    parser.add_argument("--size", type=int, default=28, help="spatial size H = W (default 28)")
    parser.add_argument("--channels", type=int, default=240, help="channels C (default 240)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per case")
    add_onednn_arguments(parser)
    return parser.parse_args(argv)


def _target_ok(ratio, target):
    if target == "(info)":
        return ""
    return "  ok" if ratio >= float(target.split()[1][:-1]) else "  MISSED"


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("batch", "size", "channels", "reps")):
        return 2
    if args.channels % 24:
        print(f"--channels must be a multiple of 24 (groups 3 and 8). Received: --channels={args.channels}")
        return 2
    rc = dispatch_onednn_runs(args, argv, os.path.abspath(__file__), _print_summary)
    return _run_here(args) if rc is None else rc


def _print_summary(results):
    """One table over both settings: the ratio against the faster stock side is the smaller of
    the two interleaved ratios."""
    off, on = results["off"], results["on"]
    print("\n=== summary: ours against the faster stock side (ratio = min over the oneDNN off / "
          "on runs of t_stock / t_ours) ===")
    print(f"  off: {off['environment']}\n  on:  {on['environment']}\n")
    header = (f"{'case':<28}{'ours ms':>13}{'stock off':>11}{'stock on':>10}{'ratio off':>11}"
              f"{'ratio on':>10}{'vs best':>9}  target")
    print(header)
    print("-" * len(header))
    for r_off, r_on in zip(off["rows"], on["rows"]):
        name, target, unit = r_off["case"], r_off["target"], r_off.get("unit", "x")
        best = min(r_off["ratio"], r_on["ratio"])
        if unit == "%":
            print(f"{name:<28}{r_off['ours_ms']:>6.2f}/{r_on['ours_ms']:<6.2f}"
                  f"{r_off['stock_ms']:>11.2f}{r_on['stock_ms']:>10.2f}{100 * r_off['ratio']:>10.0f}%"
                  f"{100 * r_on['ratio']:>9.0f}%{100 * best:>8.0f}%  {target}"
                  f"{'  ok' if 100 * best >= 60 else '  MISSED'}")
            continue
        print(f"{name:<28}{r_off['ours_ms']:>6.2f}/{r_on['ours_ms']:<6.2f}"
              f"{r_off['stock_ms']:>11.2f}{r_on['stock_ms']:>10.2f}{r_off['ratio']:>10.2f}x"
              f"{r_on['ratio']:>9.2f}x{best:>8.2f}x  {target}{_target_ok(best, target)}")
    differ = [f"{a['case']}: {a['stock']} / {b['stock']}"
              for a, b in zip(off["rows"], on["rows"]) if a["stock"] != b["stock"]]
    print("\n  stock formulation (off / on) where it differs: " + ("; ".join(differ) or "none"))
    # the op does not use oneDNN: its own time should not depend on the process's setting
    # (37-46 ms off, 24-26 ms on, on a Zen 3, before keras_cnns gave oneDNN-off processes the
    # pooled CPU allocator: keras_cnns._startup.pooled_cpu_allocator)
    print("\n=== the op's own time in the oneDNN-off and oneDNN-on processes (target: equal "
          "within 10%) ===")
    print("  (the two processes ran one after the other, so a drift of a shared machine's speed "
          "shows here;\n   benchmarks/bench_op_processes.py times them in lockstep)")
    print(f"{'case':<44}{'off ms':>9}{'on ms':>9}{'off / on':>10}")
    for r_off, r_on in zip(off["rows"], on["rows"]):
        if r_off.get("unit", "x") == "%":
            continue
        ratio = r_off["ours_ms"] / r_on["ours_ms"]
        print(f"{r_off['case']:<44}{r_off['ours_ms']:>9.2f}{r_on['ours_ms']:>9.2f}{ratio:>9.2f}x"
              f"{'  ok' if abs(ratio - 1) <= 0.10 else '  MISSED'}")


def _run_here(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from keras_cnns import ops
    from keras_cnns.ops import channel_shuffle_4d, reference_grouped_depthwise_conv2d
    from keras_cnns.ops._loader import load_error

    if not ops.custom_op_available():
        print(f"The compiled op is not available ({load_error()}); nothing to benchmark.")
        return 1
    reps = args.reps or (8 if args.quick else 30)
    n, s, c = args.batch, args.size, args.channels
    rng = np.random.default_rng(0)
    missing = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError)

    def rand(*shape):
        return tf.constant(rng.standard_normal(shape).astype(np.float32))

    x = rand(n, s, s, c)
    dy = rand(n, s, s, c)
    f_dw = rand(3, 3, 1, c)                       # our layout [KH, KW, C/groups = 1, C]
    f_dw_tf = tf.reshape(f_dw, [3, 3, c, 1])      # tf.nn.depthwise_conv2d's [KH, KW, C, 1]
    rows = []

    def add(name, ours, theirs, target, stock):
        t_o, t_t, ratio = _interleaved(ours, theirs, reps)
        rows.append(dict(case=name, ours_ms=t_o, stock_ms=t_t, ratio=ratio, target=target,
                         stock=stock))

    # --- forward-only callables (eager: one op each, plus the shuffle for the baseline) -------
    def ours_dw():
        return ops.grouped_depthwise_conv2d(x, f_dw, groups=c)

    def tf_dw():
        return tf.nn.depthwise_conv2d(x, f_dw_tf, [1, 1, 1, 1], "SAME")

    # --- forward + backward, each inside one tf.function ---------------------------------------
    def fwd_bwd(conv):
        @tf.function
        def step(x, f, dy):
            with tf.GradientTape() as tape:
                tape.watch([x, f])
                y = conv(x, f)
            dx, df = tape.gradient(y, [x, f], output_gradients=dy)
            return y, dx, df

        return step

    ours_dw_fb = fwd_bwd(lambda x, f: ops.grouped_depthwise_conv2d(x, f, groups=c))
    tf_dw_fb = fwd_bwd(lambda x, f: tf.nn.depthwise_conv2d(x, f, [1, 1, 1, 1], "SAME"))
    ours_sh_fb = fwd_bwd(lambda x, f: ops.grouped_depthwise_conv2d(x, f, groups=c,
                                                                   shuffle_groups=3))
    tf_sh_fb = fwd_bwd(lambda x, f: tf.nn.depthwise_conv2d(channel_shuffle_4d(x, 3), f,
                                                           [1, 1, 1, 1], "SAME"))

    def run(step, f):
        return lambda: step(x, f, dy)

    add("depthwise 3x3 fwd", ours_dw, tf_dw, ">= 1.0x", "depthwise_conv2d")
    add("depthwise 3x3 fwd+bwd", run(ours_dw_fb, f_dw), run(tf_dw_fb, f_dw_tf), ">= 1.0x",
        "depthwise_conv2d")
    add("shuffle(3)+dw 3x3 fwd",
        lambda: ops.grouped_depthwise_conv2d(x, f_dw, groups=c, shuffle_groups=3),
        lambda: tf.nn.depthwise_conv2d(channel_shuffle_4d(x, 3), f_dw_tf, [1, 1, 1, 1],
                                       "SAME"), "(info)", "shuffle+depthwise_conv2d")
    add("shuffle(3)+dw 3x3 fwd+bwd", run(ours_sh_fb, f_dw), run(tf_sh_fb, f_dw_tf), ">= 1.6x",
        "shuffle+depthwise_conv2d")
    for g in (3, 8):
        f_g = rand(1, 1, c // g, c)
        # Stock candidates: TF's grouped conv2d (gradients only with oneDNN) and one conv2d per
        # group (what keras_cnns exports and falls back to); the faster one that runs is the peer.
        fwd = {"grouped conv2d": lambda f_g=f_g: tf.nn.conv2d(x, f_g, 1, "SAME"),
               "per-group conv2d": lambda f_g=f_g, g=g: reference_grouped_depthwise_conv2d(
                   x, f_g, groups=g)}
        name, theirs = fastest_runnable(fwd, missing)
        add(f"grouped 1x1 g={g} fwd",
            lambda f_g=f_g, g=g: ops.grouped_depthwise_conv2d(x, f_g, groups=g), theirs,
            ">= 1.0x", name)
        ours_fb = fwd_bwd(lambda x, f, g=g: ops.grouped_depthwise_conv2d(x, f, groups=g))
        fb = {"grouped conv2d": run(fwd_bwd(lambda x, f: tf.nn.conv2d(x, f, 1, "SAME")), f_g),
              "per-group conv2d": run(fwd_bwd(lambda x, f, g=g: reference_grouped_depthwise_conv2d(
                  x, f, groups=g)), f_g)}
        name, theirs = fastest_runnable(fb, missing)
        add(f"grouped 1x1 g={g} fwd+bwd", run(ours_fb, f_g), theirs, "(info)", name)

    # --- 4. bandwidth: our depthwise forward vs a memory copy of the same bytes ---------------
    # Memory traffic of the forward: read x and the filter, write y. The copy baseline moves the
    # same traffic (it reads and writes half as many bytes each), split over all cores with
    # numpy.copyto (which releases the GIL), as a multi-threaded op can.
    nbytes = 4 * (int(np.prod(x.shape)) * 2 + int(np.prod(f_dw.shape)))
    src = np.ones(nbytes // 8, np.float32)
    dst = np.empty_like(src)
    workers = os.cpu_count() or 1
    bounds = np.linspace(0, src.size, workers + 1).astype(int)
    pool = ThreadPoolExecutor(workers)

    def copy():
        list(pool.map(lambda i: np.copyto(dst[bounds[i]:bounds[i + 1]],
                                          src[bounds[i]:bounds[i + 1]]), range(workers)))

    t_o, t_copy, ratio = _interleaved(ours_dw, copy, reps)
    pool.shutdown()
    bw_ours, bw_copy = nbytes / t_o / 1e6, nbytes / t_copy / 1e6

    env = environment_line()
    print(f"\nkeras_cnns grouped_depthwise_conv2d vs stock TensorFlow {tf.__version__} (CPU, "
          f"{os.cpu_count()} cores), x=[{n},{s},{s},{c}] float32, {reps} interleaved reps; "
          "ratio = t_stock / t_ours")
    print(env + "\n")
    header = f"{'case':<28}{'ours ms':>9}{'stock ms':>10}{'ratio':>8}  target  (stock side)"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['case']:<28}{r['ours_ms']:>9.2f}{r['stock_ms']:>10.2f}{r['ratio']:>7.2f}x  "
              f"{r['target']}{_target_ok(r['ratio'], r['target'])}  ({r['stock']})")
    pct = 100 * ratio
    print(f"{'dw fwd bandwidth vs copy':<28}{t_o:>9.2f}{t_copy:>10.2f}{pct:>7.0f}%  >= 60%"
          f"{'  ok' if pct >= 60 else '  MISSED'}")
    print(f"\n  dw fwd: {nbytes / 1e6:.1f} MB read+written (x, filter, y) -> {bw_ours:.1f} GB/s; "
          f"{workers}-thread copy of {nbytes / 2e6:.1f} MB ({nbytes / 1e6:.1f} MB read+written) "
          f"-> {bw_copy:.1f} GB/s")
    rows.append(dict(case="dw fwd bandwidth vs copy", ours_ms=t_o, stock_ms=t_copy, ratio=ratio,
                     target=">= 60%", stock="numpy copy", unit="%"))
    write_json(args.json_out, {"environment": env, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
