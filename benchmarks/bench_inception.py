"""Training steps of the Inception line against keras.applications: ours and keras.applications'
model with the same weights, interleaved, for each oneDNN setting in its own process.

Run from the repository root::

    python benchmarks/bench_inception.py                       # batch 8, 150 px, both settings
    python benchmarks/bench_inception.py --models xception --batch 16 --size 299
    python benchmarks/bench_inception.py --quick --onednn current   # smoke test (~1 min)

For each model of :data:`MODELS`: ``keras_cnns.create_model(name)`` and the keras.applications
builder (``weights=None``) at the same input shape, the weights copied across with
:func:`keras_cnns.from_keras_applications`, both compiled alike (SGD momentum 0.9, sparse
categorical cross-entropy, ``jit_compile=False``: ``_timing.train_step``), then ``--reps``
training steps (``train_on_batch``) of each timed alternately (ours, theirs, ours, ...) after
``--warmup`` untimed ones. Printed: the median step times and the median of the per-step ratios
keras.applications / ours (> 1: ours is faster; target >= 1.0x), and the same for the process
CPU time of each step (``time.process_time``: less sensitive than the wall clock to other jobs on
the machine, which take cores but not this process's CPU seconds), once with TensorFlow's oneDNN
kernels (``TF_ENABLE_ONEDNN_OPTS=1``) and once with its Eigen kernels (``=0``), each in a child
process (TensorFlow picks its kernels at import).

Where ours differs: BatchNormalization runs TF's fused kernel in training
(:class:`keras_cnns.layers.BatchNormalization`; Keras 3's own layer computes it from separate
ops), and Xception's separable convolutions run their depthwise half on the library's depthwise
dispatch (:class:`keras_cnns.layers.separable_conv.SeparableConv2D`: the custom op, or TF's
kernel where it was measured faster). ``--quick``: batch 2 at 76 px, one warm-up and two timed
steps (a smoke test of the script, not a measurement).
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

TARGET = 1.0
#: key -> (label, our registered name, keras.applications builder, its smallest input side).
#: One line per model: the keras.applications model must take the same weights in order.
MODELS = {
    "inception_v3": ("Inception-v3", "inception_v3", "InceptionV3", 75),
    "xception": ("Xception", "xception", "Xception", 71),
    "nasnet_mobile": ("NASNet-A Mobile", "nasnet_mobile", "NASNetMobile", 32),
}
QUICK = dict(batch=2, size=76, reps=2, warmup=1)  # even: NASNet (keras issue 14170)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="models to time (default: all)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 8)")
    parser.add_argument("--size", type=int, default=None, help="input side (default 150)")
    parser.add_argument("--reps", type=int, default=None,
                        help="timed steps per side (default 7)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps per side first (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: batch 2, 76 px, 1 warm-up and 2 timed steps (explicit "
                             "options still win)")
    add_onednn_arguments(parser)
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else dict(batch=8, size=150, reps=7, warmup=2)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def _cpu_timed(fn, sink):
    """``fn`` that also appends the process CPU seconds of each call to ``sink``."""
    def run():
        t0 = time.process_time()
        out = fn()
        sink.append(time.process_time() - t0)
        return out
    return run


def _summary(results):
    print(f"\n=== summary: training step, keras.applications / ours (target >= {TARGET}x) ===")
    for setting, r in results.items():
        for key, m in r["models"].items():
            print(f"oneDNN {setting:<4} {MODELS[key][0]:<14} {m['ratio']:.3f}x "
                  f"(ours {m['ours_ms']:.0f} ms, keras.applications {m['theirs_ms']:.0f} ms); "
                  f"CPU time {m['cpu_ratio']:.3f}x ({m['ours_cpu_ms']:.0f} / "
                  f"{m['theirs_cpu_ms']:.0f} ms)")


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("batch", "reps", "warmup")):
        return 2
    smallest = max(MODELS[k][3] for k in args.models)
    if args.size < smallest:
        print(f"--size must be >= {smallest} (keras.applications' smallest input for "
              f"{', '.join(args.models)}). Received: --size={args.size}")
        return 2
    code = dispatch_onednn_runs(args, argv, os.path.abspath(__file__), _summary)
    if code is not None:
        return code
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    import keras_cnns

    shape = (args.size, args.size, 3)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((args.batch,) + shape).astype(np.float32))
    y = tf.constant(rng.integers(0, 1000, args.batch))
    print(f"training step, batch {args.batch}, {args.size}x{args.size}, SGD momentum 0.9, "
          f"{args.warmup} warm-up + {args.reps} interleaved steps per side, TF {tf.__version__}")
    print(environment_line())
    out = {}
    for key in args.models:
        label, name, app, _ = MODELS[key]
        ours = keras_cnns.create_model(name, input_shape=shape)
        theirs = getattr(keras.applications, app)(weights=None, input_shape=shape)
        keras_cnns.from_keras_applications(theirs, ours)
        cpu_ours, cpu_theirs = [], []
        t_ours, t_theirs, ratio = interleaved(
            _cpu_timed(train_step(ours, x, y, momentum=0.9), cpu_ours),
            _cpu_timed(train_step(theirs, x, y, momentum=0.9), cpu_theirs),
            args.reps, warmup=args.warmup)
        cpu_ours, cpu_theirs = cpu_ours[-args.reps:], cpu_theirs[-args.reps:]
        cpu_ratio = statistics.median(b / a for a, b in zip(cpu_ours, cpu_theirs))
        c_ours, c_theirs = (statistics.median(v) * 1e3 for v in (cpu_ours, cpu_theirs))
        print(f"{label:<14} ours {t_ours:7.0f} ms, keras.applications {t_theirs:7.0f} ms: "
              f"keras.applications / ours {ratio:.3f}x (target >= {TARGET}x); CPU time "
              f"{c_ours:.0f} / {c_theirs:.0f} ms: {cpu_ratio:.3f}x")
        out[key] = dict(ours_ms=t_ours, theirs_ms=t_theirs, ratio=ratio, ours_cpu_ms=c_ours,
                        theirs_cpu_ms=c_theirs, cpu_ratio=cpu_ratio)
        del ours, theirs
        keras.backend.clear_session()
    write_json(args.json_out, dict(models=out, batch=args.batch, size=args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
