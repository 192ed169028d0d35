"""The custom op's own time in oneDNN-off and oneDNN-on processes, and with each CPU allocator.

Run from the repository root::

    python benchmarks/bench_op_processes.py            # 3 rounds (~2 min on 2 cores)
    python benchmarks/bench_op_processes.py --rounds 5 --reps 50

The op does not use oneDNN, so its time should not depend on ``TF_ENABLE_ONEDNN_OPTS`` (target:
equal within 10%). It did, by up to 1.9x (depthwise 3x3 forward+backward 37-46 ms with oneDNN
off, 24-26 ms with it on, 2-core AMD EPYC Zen 3): with oneDNN on TensorFlow allocates CPU tensors
from oneDNN's pooling allocator, with it off from ``malloc``, which returns large freed tensors to
the kernel, so each step's activations land on fresh pages that the kernel zero-fills, one page
fault per 4 KiB. ``import keras_cnns`` now gives oneDNN-off processes TensorFlow's pooled (BFC)
CPU allocator (``keras_cnns._startup.pooled_cpu_allocator``; ``KERAS_CNNS_CPU_ALLOCATOR=default``
turns it off).

Each configuration runs in its own child process, the three alternating round by round (so a
drift of the shared machine's speed hits all three): oneDNN off with ``malloc`` (the behaviour
before), oneDNN off as ``import keras_cnns`` now sets it up, and oneDNN on. Each child times only
the op (forward, or forward and both gradients inside one ``tf.function``) on ShuffleNet /
MobileNet layer shapes ([32, 28, 28, 240] float32) and reports the median over ``--reps`` calls
and the page faults the timed loop took (``getrusage``). The table gives the median over rounds
of each configuration and the ratios against the oneDNN-on process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import cpu_line, reject_below_one  # noqa: E402

#: name -> environment of the child (on top of this process's, TF_CPU_ALLOCATOR_USE_BFC removed)
CONFIGS = {
    "off, malloc": {"TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_CNNS_CPU_ALLOCATOR": "default"},
    "off (keras_cnns)": {"TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_CNNS_CPU_ALLOCATOR": "auto"},
    "on": {"TF_ENABLE_ONEDNN_OPTS": "1", "KERAS_CNNS_CPU_ALLOCATOR": "auto"},
}
CASES = ["depthwise 3x3 fwd", "depthwise 3x3 fwd+bwd", "shuffle(3)+dw 3x3 fwd+bwd",
         "grouped 1x1 g=3 fwd+bwd", "grouped 1x1 g=8 fwd+bwd"]


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="child processes per configuration")
    parser.add_argument("--reps", type=int, default=60, help="timed calls per case and child")
    parser.add_argument("--batch", type=int, default=32, help="batch size N (default 32)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # child: JSON out path
    return parser.parse_args(argv)


def _child(args) -> int:
    import resource
    import time

    import numpy as np
    import tensorflow as tf

    from keras_cnns import ops
    from keras_cnns.environment import cpu_allocator, onednn_enabled

    if not ops.custom_op_available():
        print("The compiled op is not available here; nothing to benchmark.")
        return 1
    os.environ["KERAS_CNNS_DEPTHWISE"] = "custom"  # the op itself, whatever the dispatch rule
    rng = np.random.default_rng(0)
    n, s, c = args.batch, 28, 240

    def rand(*shape):
        return tf.constant(rng.standard_normal(shape).astype(np.float32))

    x, dy = rand(n, s, s, c), rand(n, s, s, c)
    dw = rand(3, 3, 1, c)
    pw = {g: rand(1, 1, c // g, c) for g in (3, 8)}

    def fwd_bwd(**kw):
        @tf.function
        def step(x, f, dy):
            with tf.GradientTape() as tape:
                tape.watch([x, f])
                y = ops.grouped_depthwise_conv2d(x, f, **kw)
            return tape.gradient(y, [x, f], output_gradients=dy)
        return step

    calls = {
        "depthwise 3x3 fwd": (tf.function(lambda x, f, dy: ops.grouped_depthwise_conv2d(x, f)), dw),
        "depthwise 3x3 fwd+bwd": (fwd_bwd(), dw),
        "shuffle(3)+dw 3x3 fwd+bwd": (fwd_bwd(shuffle_groups=3), dw),
        "grouped 1x1 g=3 fwd+bwd": (fwd_bwd(groups=3), pw[3]),
        "grouped 1x1 g=8 fwd+bwd": (fwd_bwd(groups=8), pw[8]),
    }
    out = {"allocator": cpu_allocator(), "onednn": onednn_enabled(), "cases": {}}
    for name in CASES:
        fn, f = calls[name]
        for _ in range(3):
            fn(x, f, dy)
        times = []
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(args.reps):
            t = time.perf_counter()
            fn(x, f, dy)
            times.append(time.perf_counter() - t)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        out["cases"][name] = {"ms": 1e3 * statistics.median(times),
                              "faults_per_call": faults / args.reps}
    with open(args.child, "w") as fh:
        json.dump(out, fh)
    return 0


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("rounds", "reps", "batch")):
        return 2
    if args.child:
        return _child(args)
    print(f"the op's own time per process configuration: x=[{args.batch},28,28,240] float32, "
          f"{args.reps} calls per case and child, {args.rounds} rounds; {cpu_line()}")
    runs = {name: [] for name in CONFIGS}
    for r in range(args.rounds):
        for name, extra in CONFIGS.items():
            env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
            env.update(extra, TF_CPP_MIN_LOG_LEVEL="2")
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "out.json")
                cmd = [sys.executable, os.path.abspath(__file__), "--child", path,
                       "--reps", str(args.reps), "--batch", str(args.batch)]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0 or not os.path.exists(path):
                    print(f"child ({name}) failed with exit code {proc.returncode}:\n"
                          + proc.stdout[-2000:] + "\n".join(proc.stderr.splitlines()[-20:]))
                    return 1
                with open(path) as fh:
                    runs[name].append(json.load(fh))
            print(f"  round {r + 1}/{args.rounds}: {name:<17} ({runs[name][-1]['allocator']} "
                  f"allocator) done", flush=True)

    def med(name, case, key="ms"):
        return statistics.median(run["cases"][case][key] for run in runs[name])

    names = list(CONFIGS)
    print("\nmedian over rounds, ms (page faults per call); ratio = time / oneDNN-on time; "
          "target: oneDNN off (keras_cnns) within 10% of on")
    header = (f"{'case':<28}" + "".join(f"{n:>26}" for n in names)
              + f"{'malloc / on':>13}{'off / on':>10}")
    print(header)
    print("-" * len(header))
    for case in CASES:
        cells = "".join(f"{med(n, case):>15.2f} ({med(n, case, 'faults_per_call'):>7.0f})"
                        for n in names)
        before, now, on = (med(n, case) for n in names)
        ratio = now / on
        print(f"{case:<28}{cells}{before / on:>12.2f}x{ratio:>9.2f}x"
              f"{'  ok' if abs(ratio - 1) <= 0.10 else '  MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
