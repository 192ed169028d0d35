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

Each configuration runs in its own child process: oneDNN off with ``malloc`` (the behaviour
before), oneDNN off as ``import keras_cnns`` now sets it up, and oneDNN on. The three children of
a round run in lockstep: the parent asks each in turn for one timed call, so a drift of the shared
machine's speed (on the 2-core Zen 3, a loop of one-cycle adds ran at 0.73-1.35 G iterations/s
in runs minutes apart, and the same op call took 4.2 and 5.0 ms in two processes a minute apart)
hits all three alike, as the in-process benchmarks interleave their two sides. Each child times
only the op (forward, or forward and both gradients inside one ``tf.function``) on ShuffleNet /
MobileNet layer shapes ([32, 28, 28, 240] float32), the median over ``--reps`` calls and the page
faults per call (``getrusage``). The table gives the median over rounds of each configuration and
the median and range of the rounds' ratios against the oneDNN-on child.
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
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # serve calls
    return parser.parse_args(argv)


def _child(args) -> int:
    """Serve timed calls in lockstep with the parent: after setting up it writes one ``KC ready``
    line (with its allocator and oneDNN setting as JSON), then for each ``time <case>`` line it
    reads it times one call of that case (after 3 warm-up calls the first time) and answers
    ``KC <ms> <page faults>``; ``quit`` ends it."""
    import resource
    import time

    import numpy as np
    import tensorflow as tf

    from keras_cnns import ops
    from keras_cnns.environment import cpu_allocator, onednn_enabled

    if not ops.custom_op_available():
        print("KC error: the compiled op is not available here; nothing to benchmark.",
              flush=True)
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
    print("KC ready " + json.dumps({"allocator": cpu_allocator(), "onednn": onednn_enabled()}),
          flush=True)
    warm = set()
    for line in sys.stdin:
        command, _, name = line.strip().partition(" ")
        if command != "time":
            break
        fn, f = calls[name]
        if name not in warm:
            warm.add(name)
            for _ in range(3):
                fn(x, f, dy)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        fn(x, f, dy)
        t = time.perf_counter() - t
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        print(f"KC {1e3 * t} {faults}", flush=True)
    return 0


class _Child:
    """One configuration's child process, driven a call at a time."""

    def __init__(self, name, extra, batch):
        env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
        env.update(extra, TF_CPP_MIN_LOG_LEVEL="2")
        self.name = name
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--child", "--batch", str(batch)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, bufsize=1)
        self.info = json.loads(self._reply("ready"))

    def _reply(self, expect=None):
        for line in self.proc.stdout:
            if not line.startswith("KC "):
                continue  # anything else a library prints
            body = line[3:].strip()
            if body.startswith("error"):
                break
            if expect:
                if not body.startswith(expect):
                    break
                return body[len(expect):].strip()
            return body
        self.close()
        self._stderr.seek(0)
        tail = "\n".join(self._stderr.read().splitlines()[-20:])
        raise RuntimeError(f"child ({self.name}) stopped with exit code {self.proc.returncode}:"
                           f"\n{tail}")

    def time(self, case):
        self.proc.stdin.write(f"time {case}\n")
        ms, faults = self._reply().split()
        return float(ms), int(faults)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("rounds", "reps", "batch")):
        return 2
    if args.child:
        return _child(args)
    print(f"the op's own time per process configuration: x=[{args.batch},28,28,240] float32, "
          f"{args.reps} calls per case and child, {args.rounds} rounds; {cpu_line()}")
    print("the three children of a round run in lockstep: one call in each in turn, so a drift "
          "of the shared machine's speed hits all three alike")
    names = list(CONFIGS)
    # rounds[r][name][case] = (median ms, page faults per call)
    rounds = []
    for r in range(args.rounds):
        children = []
        try:
            for name in names:
                children.append(_Child(name, CONFIGS[name], args.batch))
            result = {name: {} for name in names}
            for case in CASES:
                times = {name: [] for name in names}
                faults = {name: 0 for name in names}
                for _ in range(args.reps):
                    for child in children:
                        ms, fl = child.time(case)
                        times[child.name].append(ms)
                        faults[child.name] += fl
                for name in names:
                    result[name][case] = (statistics.median(times[name]),
                                          faults[name] / args.reps)
        except RuntimeError as err:
            print(err)
            return 1
        finally:
            for child in children:
                child.close()
        rounds.append(result)
        print(f"  round {r + 1}/{args.rounds} done ("
              + ", ".join(f"{c.name}: {c.info['allocator']} allocator" for c in children) + ")",
              flush=True)

    def med(name, case, i=0):
        return statistics.median(rnd[name][case][i] for rnd in rounds)

    print("\nmedian over rounds, ms (page faults per call); ratio = time / oneDNN-on time "
          "(median and range of the rounds' ratios); target: oneDNN off (keras_cnns) within 10% "
          "of on")
    header = (f"{'case':<28}" + "".join(f"{n:>26}" for n in names)
              + f"{'malloc / on':>13}{'off / on':>10}{'range':>14}")
    print(header)
    print("-" * len(header))
    for case in CASES:
        cells = "".join(f"{med(n, case):>15.2f} ({med(n, case, 1):>7.0f})" for n in names)
        before = statistics.median(rnd[names[0]][case][0] / rnd[names[2]][case][0]
                                   for rnd in rounds)
        ratios = [rnd[names[1]][case][0] / rnd[names[2]][case][0] for rnd in rounds]
        ratio = statistics.median(ratios)
        print(f"{case:<28}{cells}{before:>12.2f}x{ratio:>9.2f}x"
              f"{min(ratios):>8.2f}-{max(ratios):.2f}x"
              f"{'  ok' if abs(ratio - 1) <= 0.10 else '  MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
