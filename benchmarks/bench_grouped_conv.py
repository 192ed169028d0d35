"""Benchmark of ``keras_cnns.ops.grouped_depthwise_conv2d`` (the compiled CPU op) against stock TF.

Run from the repository root::

    python benchmarks/bench_grouped_conv.py            # full run (N=32, 30 repetitions, ~15-20 s on 2 cores)
    python benchmarks/bench_grouped_conv.py --quick    # short run (8 repetitions, ~10-15 s)

Every comparison times the two sides interleaved in the same loop (ours, theirs, ours, ...) on
MobileNet / ShuffleNet layer shapes (default [32, 28, 28, 240]), so load from other processes
hits both alike; the table reports median times and the median of the per-iteration ratios
``t_stock / t_ours`` (> 1 means ours is faster), next to the target from the issue:

1. depthwise 3x3, forward and forward+backward, vs ``tf.nn.depthwise_conv2d``   (>= 1.0x)
2. fused shuffle(g=3) + depthwise 3x3 forward+backward vs reshape/transpose shuffle then
   ``tf.nn.depthwise_conv2d``                                                    (>= 1.6x)
3. grouped 1x1 with groups 3 and 8 vs ``tf.nn.conv2d`` grouped                    (>= 1.0x)
4. depthwise forward effective bandwidth, (input + output + filter bytes) / time, vs a copy
   that moves the same bytes (reads half, writes half; ``numpy.copyto`` split over all cores,
   into a preallocated array)                                                    (>= 60%)

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

from _timing import interleaved as _interleaved  # noqa: E402


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 repetitions instead of 30")
    parser.add_argument("--batch", type=int, default=32, help="batch size N (default 32)")
    parser.add_argument("--size", type=int, default=28, help="spatial size H = W (default 28)")
    parser.add_argument("--channels", type=int, default=240, help="channels C (default 240)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per case")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from keras_cnns import ops
    from keras_cnns.ops import channel_shuffle_4d
    from keras_cnns.ops._loader import load_error

    if not ops.custom_op_available():
        print(f"The compiled op is not available ({load_error()}); nothing to benchmark.")
        return 1
    reps = args.reps or (8 if args.quick else 30)
    n, s, c = args.batch, args.size, args.channels
    rng = np.random.default_rng(0)

    def rand(*shape):
        return tf.constant(rng.standard_normal(shape).astype(np.float32))

    x = rand(n, s, s, c)
    dy = rand(n, s, s, c)
    f_dw = rand(3, 3, 1, c)                       # our layout [KH, KW, C/groups = 1, C]
    f_dw_tf = tf.reshape(f_dw, [3, 3, c, 1])      # tf.nn.depthwise_conv2d's [KH, KW, C, 1]
    rows = []

    def add(name, ours, theirs, target):
        t_o, t_t, ratio = _interleaved(ours, theirs, reps)
        rows.append((name, t_o, t_t, ratio, target))

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

    add("depthwise 3x3 fwd", ours_dw, tf_dw, ">= 1.0x")
    add("depthwise 3x3 fwd+bwd", run(ours_dw_fb, f_dw), run(tf_dw_fb, f_dw_tf), ">= 1.0x")
    add("shuffle(3)+dw 3x3 fwd",
        lambda: ops.grouped_depthwise_conv2d(x, f_dw, groups=c, shuffle_groups=3),
        lambda: tf.nn.depthwise_conv2d(channel_shuffle_4d(x, 3), f_dw_tf, [1, 1, 1, 1],
                                       "SAME"), "(info)")
    add("shuffle(3)+dw 3x3 fwd+bwd", run(ours_sh_fb, f_dw), run(tf_sh_fb, f_dw_tf), ">= 1.6x")
    for g in (3, 8):
        f_g = rand(1, 1, c // g, c)
        add(f"grouped 1x1 g={g} fwd",
            lambda f_g=f_g, g=g: ops.grouped_depthwise_conv2d(x, f_g, groups=g),
            lambda f_g=f_g: tf.nn.conv2d(x, f_g, 1, "SAME"), ">= 1.0x")
        ours_fb = fwd_bwd(lambda x, f, g=g: ops.grouped_depthwise_conv2d(x, f, groups=g))
        tf_fb = fwd_bwd(lambda x, f: tf.nn.conv2d(x, f, 1, "SAME"))
        add(f"grouped 1x1 g={g} fwd+bwd", run(ours_fb, f_g), run(tf_fb, f_g), "(info)")

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

    print(f"\nkeras_cnns grouped_depthwise_conv2d vs stock TensorFlow {tf.__version__} (CPU, "
          f"{os.cpu_count()} cores), x=[{n},{s},{s},{c}] float32, {reps} interleaved reps; "
          "ratio = t_stock / t_ours\n")
    header = f"{'case':<28}{'ours ms':>9}{'stock ms':>10}{'ratio':>8}  target"
    print(header)
    print("-" * len(header))
    for name, t_o2, t_t, r, target in rows:
        ok = "" if target == "(info)" else ("  ok" if r >= float(target.split()[1][:-1]) else "  MISSED")
        print(f"{name:<28}{t_o2:>9.2f}{t_t:>10.2f}{r:>7.2f}x  {target}{ok}")
    pct = 100 * ratio
    print(f"{'dw fwd bandwidth vs copy':<28}{t_o:>9.2f}{t_copy:>10.2f}{pct:>7.0f}%  >= 60%"
          f"{'  ok' if pct >= 60 else '  MISSED'}")
    print(f"\n  dw fwd: {nbytes / 1e6:.1f} MB read+written (x, filter, y) -> {bw_ours:.1f} GB/s; "
          f"{workers}-thread copy of {nbytes / 2e6:.1f} MB ({nbytes / 1e6:.1f} MB read+written) "
          f"-> {bw_copy:.1f} GB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
