"""RevNet training memory and step time against the ResNets it was built to match.

Run from the repository root::

    python benchmarks/bench_revnet.py                       # all six, batch 128, 32x32
    python benchmarks/bench_revnet.py --models revnet38 resnet32 --batch 32 --steps 2

Gomez et al. 2017 ("The Reversible Residual Network", arXiv:1707.04585) reconstruct each
reversible unit's input from its output in the backward pass, so that a training step stores one
map per stage instead of every activation. Each model runs in its own
child process: it builds and compiles the model (SGD momentum 0.9, ``jit_compile=False``), makes
a random batch, reads its resident memory (the idle baseline), runs ``--steps`` training steps
(``train_on_batch``) and reports the peak resident memory of those steps (``VmHWM``, reset with
``/proc/self/clear_refs`` after the graph was traced on two tiny batches) above the resident
memory before them, the process's peak above its idle baseline with the tracing included, and
the median time of the steps after the first. The tracing is reported apart because it is a
one-time cost per process that does not depend on the batch (about 0.7 GiB for RevNet-164 and
ResNet-164 alike: it grows with the number of variables, through the optimizer's per-variable
updates, while each reversible run's computation is one while loop over its units). The
children run in the pairs RevNet-38 / ResNet-32, RevNet-110 / ResNet-110, RevNet-164 /
pre-activation ResNet-164 (``--repeats`` rounds; medians over the rounds). Targets: RevNet-164
<= 0.4x ResNet-164's peak memory, and RevNet's peak nearly flat in depth (RevNet-164 <= 1.3x
RevNet-38). RevNet-164 is 4x wider than RevNet-38 (128-256-512 against 32-64-112 channels), so
``revnet56_bottleneck`` (RevNet-164's widths, 3 units per stage instead of 9) is also run: the
depth alone is RevNet-164 / revnet56_bottleneck.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (environment_line, reject_below_one, timed_steps, train_step,  # noqa: E402
                     write_json)

MODELS = ("revnet38", "resnet32", "revnet110", "resnet110", "revnet56_bottleneck", "revnet164",
          "preact_resnet164")
PAIRS = (("revnet38", "resnet32"), ("revnet110", "resnet110"), ("revnet164", "preact_resnet164"))
MEMORY_TARGET = 0.4  # RevNet-164 / ResNet-164
FLAT_TARGET = 1.3  # RevNet-164 / RevNet-38


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--size", type=int, default=32, help="input side (default 32)")
    parser.add_argument("--steps", type=int, default=3,
                        help="training steps per model, the first one traces (default 3)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds over the models (medians are reported; default 1)")
    parser.add_argument("--ordinary", action="store_true",
                        help="RevNets with reversible_backprop=False (ordinary autodiff), to see "
                             "what the reconstruction saves")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    import keras_cnns

    name = args.child
    kwargs = dict(reversible_backprop=False) if args.ordinary and "revnet" in name else {}
    if name == "revnet56_bottleneck":  # RevNet-164's widths with 3 units per stage
        from keras_cnns.models.revnet import RevNet

        model = RevNet(depth=56, bottleneck=True, input_shape=(args.size, args.size, 3),
                       classes=10, **kwargs)
    else:
        model = keras_cnns.create_model(name, input_shape=(args.size, args.size, 3), classes=10,
                                        **kwargs)
    rng = np.random.default_rng(0)

    def batch(n):
        return (tf.constant(rng.standard_normal((n, args.size, args.size, 3)).astype(np.float32)),
                tf.constant(rng.integers(0, 10, n)))

    idle = _rss_bytes()
    x, y = batch(args.batch)
    step = train_step(model, x, y, lr=0.01, momentum=0.9)
    # Trace (and let Grappler optimise) the training graph on two tiny batches: the second
    # shape makes Keras' tf.function relax the batch dimension, so the big batch below runs the
    # same graph without tracing again. What the graph itself costs is reported apart.
    for n in (2, 3):
        model.train_on_batch(*batch(n))
    traced = _hwm_bytes()
    with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to the current RSS
        fh.write("5")
    baseline = _rss_bytes()
    times, loss = timed_steps(step, args.steps)
    if not np.isfinite(loss):
        print(f"non-finite loss {loss}")
        return 1
    peak = _hwm_bytes()
    write_json(args.json_out, dict(baseline=baseline, peak=peak, extra=max(peak - baseline, 0),
                                   process=max(max(peak, traced) - idle, 0),
                                   trace=max(traced - idle, 0),
                                   step=statistics.median(times[1:] or times), loss=float(loss),
                                   params=int(model.count_params())))
    return 0


def _run_child(name, args):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "r.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--json-out", out,
               "--batch", str(args.batch), "--size", str(args.size), "--steps", str(args.steps)]
        if args.ordinary:
            cmd.append("--ordinary")
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.exists(out):
            text = (proc.stdout + proc.stderr).strip().splitlines()
            raise RuntimeError(f"{name} failed with exit code {proc.returncode}:\n"
                               + "\n".join(text[-20:]))
        with open(out) as fh:
            return json.load(fh)


def main(argv=None) -> int:
    args = _parse_args(argv)
    if args.child:
        return _child(args)
    if reject_below_one(args, ("batch", "size", "steps", "repeats")):
        return 2
    order = [m for m in MODELS if m in args.models]
    runs = {m: [] for m in order}
    for _ in range(args.repeats):
        for name in order:
            r = _run_child(name, args)
            runs[name].append(r)
            print(f"  {name:<20} step peak {r['extra'] / 2**20:8.1f} MiB  process peak "
                  f"{r['process'] / 2**20:8.1f} MiB  step {r['step']:.3f} s", flush=True)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("extra", "process", "trace", "step")}
           for m, rs in runs.items()}
    print(f"\nTraining step (SGD momentum 0.9), batch {args.batch}, {args.size}x{args.size}, "
          f"{args.steps} steps per model after tracing on two tiny batches, {args.repeats} round(s), "
          f"each model in "
          f"its own process{'; RevNets with ordinary autodiff' if args.ordinary else ''}")
    print("step peak: peak RSS of the training steps above the RSS before them (the graph "
          "already traced);\nprocess peak: the process's peak above its idle baseline, tracing "
          "the graph included (trace: the tracing alone)")
    print(f"{'model':<20} {'step peak':>12} {'process peak':>13} {'trace':>10} {'step':>9}")
    for m in order:
        print(f"{m:<20} {med[m]['extra'] / 2**20:8.1f} MiB {med[m]['process'] / 2**20:9.1f} MiB "
              f"{med[m]['trace'] / 2**20:6.0f} MiB {med[m]['step']:8.3f} s")
    summary = []
    for rev, res in PAIRS:
        if rev in med and res in med:
            mem = med[rev]["extra"] / max(med[res]["extra"], 1)
            proc = med[rev]["process"] / max(med[res]["process"], 1)
            t = med[rev]["step"] / med[res]["step"]
            print(f"{rev} / {res}: step memory {mem:.3f}x (process peak {proc:.3f}x), step time "
                  f"{t:.3f}x")
            summary.append(f"{rev}/{res} memory {mem:.3f}x (process {proc:.3f}x) time {t:.3f}x")
    ok = True
    if "revnet164" in med and "preact_resnet164" in med:
        # the target is on the process peak (tracing included), the stricter of the two
        r = med["revnet164"]["process"] / max(med["preact_resnet164"]["process"], 1)
        ok &= r <= MEMORY_TARGET
        print(f"RevNet-164 / ResNet-164 process peak {r:.3f}x (target <= {MEMORY_TARGET}x)")
    for deep, shallow in (("revnet164", "revnet38"), ("revnet110", "revnet38"),
                          ("revnet164", "revnet56_bottleneck")):
        if deep in med and shallow in med:
            r = med[deep]["extra"] / max(med[shallow]["extra"], 1)
            if (deep, shallow) == ("revnet164", "revnet38"):
                ok &= r <= FLAT_TARGET
            summary.append(f"{deep}/{shallow} memory {r:.3f}x")
            print(f"{deep} / {shallow} step memory {r:.3f}x"
                  + (f" (target <= {FLAT_TARGET}x)" if shallow == "revnet38" else "")
                  + (" (same widths, 9 vs 3 units per stage)" if shallow.endswith("bottleneck")
                     else ""))
    print("\n" + environment_line())
    print("=== summary: " + ", ".join(summary) + (" (targets met)" if ok else " (a target missed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
