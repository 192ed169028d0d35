"""DenseNet training: the memory-efficient implementation against the plain one (peak memory and
step time), and our DenseNet-121 against keras.applications' (step time).

Run from the repository root::

    python benchmarks/bench_densenet.py memory        # (a) both cases below, ~15 min on 2 cores
    python benchmarks/bench_densenet.py step          # (b) both oneDNN settings
    python benchmarks/bench_densenet.py memory --cases cifar --batch 16 --steps 2

(a) ``memory``: Pleiss et al. 2017 ("Memory-Efficient Implementation of DenseNets",
arXiv:1707.06990) recompute each layer's concatenation, BN, ReLU and 1x1 convolution in the
backward pass, so that the activations a training step keeps grow linearly with a block's depth
instead of quadratically, for some extra time. Two cases, each model in its own child process
(``memory_efficient=False`` / ``True``, the same architecture): DenseNet-BC (L=190, k=40) at
batch 64 on 32x32 inputs (``--cases cifar``) and DenseNet-121 at batch 16 on 224x224
(``--cases imagenet``). A child builds and compiles the model (SGD, ``jit_compile=False``), makes
the batch, reads its resident memory (the idle baseline), runs ``--steps`` training steps
(``train_on_batch``; the first one traces), and reports the process's peak resident memory
(``ru_maxrss``) above the baseline and the median time of the steps after the first. Targets:
memory-efficient / plain <= 0.5x peak memory at <= 1.3x step time.

(b) ``step``: ``keras_cnns.create_model("densenet121")`` against
``keras.applications.DenseNet121(weights=None)`` with the same weights (copied with
:func:`keras_cnns.from_keras_applications`), compiled alike, their training steps timed
interleaved; once per oneDNN setting, each in its own process. Target: keras.applications /
ours >= 1.0x (ours uses TensorFlow's fused batch-norm kernel in training).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import (add_onednn_arguments, dispatch_onednn_runs, environment_line,  # noqa: E402
                     interleaved, reject_below_one, timed_steps, train_step, write_json)

MEMORY_TARGET = 0.5
TIME_TARGET = 1.3
STEP_TARGET = 1.0
#: case -> (description, builder, its arguments, default batch, input side)
CASES = {
    "cifar": ("DenseNet-BC", "CifarDenseNet", dict(depth=190, growth_rate=40), 64, 32),
    "imagenet": ("DenseNet", "DenseNet", dict(depth=121), 16, 224),
}


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    mem = sub.add_parser("memory", help="(a) memory-efficient vs plain: peak memory, step time")
    mem.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    mem.add_argument("--batch", type=int, default=None, help="batch size (default: the case's)")
    mem.add_argument("--size", type=int, default=None, help="input side (default: the case's)")
    mem.add_argument("--depth", type=int, default=None,
                     help="the model's depth (default: the case's, 190 / 121)")
    mem.add_argument("--growth-rate", type=int, default=None,
                     help="the model's growth rate (default: the case's, 40 / 32)")
    mem.add_argument("--steps", type=int, default=3,
                     help="training steps per model, the first one traces (default 3)")
    mem.add_argument("--memory-limit", type=float, default=None,
                     help="GiB a child may hold before it is stopped and reported as not "
                          "fitting (default 85%% of the memory available at the start)")
    mem.add_argument("--child", default=None, help=argparse.SUPPRESS)  # case:efficient
    mem.add_argument("--json-out", default=None, help=argparse.SUPPRESS)
    step = sub.add_parser("step", help="(b) ours vs keras.applications DenseNet121, step time")
    step.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    step.add_argument("--size", type=int, default=224, help="input side (default 224)")
    step.add_argument("--reps", type=int, default=5, help="timed steps per side (default 5)")
    step.add_argument("--blocks", type=int, nargs=4, default=None, metavar="N",
                      help="layers per dense block of a DenseNet of your own on both sides "
                           "(keras.applications' DenseNet(blocks) builder); default DenseNet-121")
    add_onednn_arguments(step)
    return parser.parse_args(argv)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _memory_child(args) -> int:
    """One model in this process: baseline, steps, peak above the baseline."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    import keras_cnns

    case, efficient = args.child.split(":")
    _, builder, kwargs, batch, side = CASES[case]
    batch, side = args.batch or batch, args.size or side
    model = getattr(keras_cnns, builder)(input_shape=(side, side, 3),
                                         memory_efficient=efficient == "1", **_knobs(args, kwargs))
    classes = model.output_shape[-1]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((batch, side, side, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, classes, batch))
    step = train_step(model, x, y, momentum=0.9)
    baseline = _rss_bytes()
    times, loss = timed_steps(step, args.steps)
    if not np.isfinite(loss):
        print(f"non-finite loss {loss}")
        return 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    write_json(args.json_out, dict(baseline=baseline, peak=peak, extra=max(peak - baseline, 0),
                                   step=statistics.median(times[1:] or times), loss=float(loss),
                                   batch=batch, side=side))
    return 0


def _knobs(args, kwargs):
    knobs = dict(kwargs)
    if args.depth:
        knobs["depth"] = args.depth
    if args.growth_rate:
        knobs["growth_rate"] = args.growth_rate
    return knobs


def _available_bytes() -> int:
    with open("/proc/meminfo") as fh:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
    return info.get("MemAvailable", info.get("MemTotal", 0))


def _run_watched(cmd, env, limit):
    """Run ``cmd``, stopping it once its resident memory passes ``limit`` bytes (so a model that
    does not fit is reported, not left to the kernel's OOM killer): ``(exit code or "killed",
    output, peak resident bytes seen)``."""
    import tempfile

    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        peak = 0
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/statm") as fh:
                    rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, ValueError, IndexError):
                rss = 0
            peak = max(peak, rss)
            if rss > limit:
                proc.kill()
                proc.wait()
                return "killed", "", peak
            time.sleep(0.05)
        log.seek(0)
        return proc.returncode, log.read(), peak


def _memory(args) -> int:
    import tempfile

    limit = int((args.memory_limit * 2**30) if args.memory_limit else 0.85 * _available_bytes())

    print("DenseNet training step: memory-efficient (Pleiss et al. 2017) vs plain, each model "
          "in its own process")
    rows = []
    for case in args.cases:
        desc, _, kwargs, batch, side = CASES[case]
        batch, side = args.batch or batch, args.size or side
        knobs = _knobs(args, kwargs)
        desc += (f" (L={knobs['depth']}, k={knobs['growth_rate']})" if "growth_rate" in knobs
                 else f"-{knobs['depth']}")
        got = {}
        for efficient in ("0", "1"):
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "r.json")
                cmd = [sys.executable, os.path.abspath(__file__), "memory", "--cases", case,
                       "--steps", str(args.steps), "--child", f"{case}:{efficient}",
                       "--json-out", out]
                for flag, value in (("--batch", args.batch), ("--size", args.size),
                                    ("--depth", args.depth), ("--growth-rate", args.growth_rate)):
                    if value:
                        cmd += [flag, str(value)]
                env = dict(os.environ)
                env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
                code, text, peak = _run_watched(cmd, env, limit)
                if code == "killed":
                    got[efficient] = dict(killed=True, peak=peak)
                    continue
                if code != 0 or not os.path.exists(out):
                    print(f"{desc} (memory_efficient={efficient == '1'}) failed with exit code "
                          f"{code}:\n" + "\n".join(text.strip().splitlines()[-20:]))
                    return 1
                with open(out) as fh:
                    got[efficient] = json.load(fh)
        plain, eff = got["0"], got["1"]
        if eff.get("killed"):
            print(f"{desc}: the memory-efficient model went over --memory-limit "
                  f"{limit / 2**30:.1f} GiB too; lower --batch")
            return 1
        print(f"\n{desc}, batch {batch}, {side}x{side}, SGD step, {args.steps} steps per model")
        if plain.get("killed"):
            # The plain model does not fit: its need is above what it reached when stopped.
            mem_ratio = eff["extra"] / max(plain["peak"] - eff["baseline"], 1)
            print(f"  plain             stopped at {plain['peak'] / 2**30:.2f} GiB resident, "
                  f"over --memory-limit {limit / 2**30:.1f} GiB: it does not fit this machine")
            time_ratio = None
        else:
            mem_ratio = eff["extra"] / max(plain["extra"], 1)
            time_ratio = eff["step"] / plain["step"]
        rows.append((case, mem_ratio, time_ratio, bool(plain.get("killed"))))
        for label, r in (("plain", plain), ("memory_efficient", eff)):
            if not r.get("killed"):
                print(f"  {label:<17} peak above idle {r['extra'] / 2**30:7.2f} GiB "
                      f"(idle {r['baseline'] / 2**30:.2f} GiB)  step {r['step']:.2f} s")
        bound = "< " if plain.get("killed") else ""
        timing = ("step time: the plain model did not run" if time_ratio is None else
                  f"step time {time_ratio:.3f}x (target <= {TIME_TARGET}x)")
        print(f"  memory-efficient / plain: memory {bound}{mem_ratio:.3f}x "
              f"(target <= {MEMORY_TARGET}x), {timing}")
    import tensorflow as tf  # noqa: F401  (for the environment line)

    print("\n" + environment_line())
    ok = all(m <= MEMORY_TARGET and (t is None or t <= TIME_TARGET) for _, m, t, _ in rows)
    print("=== summary: " + ", ".join(
        f"{c}: memory {'< ' if k else ''}{m:.3f}x, "
        + ("time n/a (plain did not fit)" if t is None else f"time {t:.3f}x")
        for c, m, t, k in rows) + (" (a target missed)" if not ok else
                                   " (targets met where measured)" if any(k for *_, k in rows)
                                   else " (targets met)"))
    return 0


def _step_summary(results):
    print("\n=== summary: training step, keras.applications DenseNet121 / ours "
          f"(target >= {STEP_TARGET}x) ===")
    for setting, r in results.items():
        print(f"oneDNN {setting:<4} {r['ratio']:.3f}x (ours {r['ours_ms']:.0f} ms, "
              f"keras.applications {r['theirs_ms']:.0f} ms)")


def _step(args, argv) -> int:
    if reject_below_one(args, ("batch", "reps")):
        return 2
    if args.size < 32:
        print(f"--size must be >= 32. Received: --size={args.size}")
        return 2
    code = dispatch_onednn_runs(args, argv, os.path.abspath(__file__), _step_summary)
    if code is not None:
        return code
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    import keras_cnns

    shape = (args.size, args.size, 3)
    if args.blocks:
        from keras.src.applications import densenet  # the builder behind DenseNet121/169/201

        ours = keras_cnns.DenseNet(blocks=args.blocks, input_shape=shape)
        theirs = densenet.DenseNet(list(args.blocks), weights=None, input_shape=shape)
    else:
        ours = keras_cnns.create_model("densenet121", input_shape=shape)
        theirs = keras.applications.DenseNet121(weights=None, input_shape=shape)
    keras_cnns.from_keras_applications(theirs, ours)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((args.batch,) + shape).astype(np.float32))
    y = tf.constant(rng.integers(0, 1000, args.batch))

    t_ours, t_theirs, ratio = interleaved(train_step(ours, x, y, momentum=0.9),
                                          train_step(theirs, x, y, momentum=0.9), args.reps,
                                          warmup=2)
    label = f"DenseNet (blocks {tuple(args.blocks)})" if args.blocks else "DenseNet-121"
    print(f"{label} training step, batch {args.batch}, {args.size}x{args.size}, SGD, "
          f"{args.reps} interleaved steps per side, TF {tf.__version__}")
    print(environment_line())
    print(f"ours {t_ours:.0f} ms, keras.applications {t_theirs:.0f} ms: "
          f"keras.applications / ours {ratio:.3f}x (target >= {STEP_TARGET}x)")
    write_json(args.json_out, dict(ours_ms=t_ours, theirs_ms=t_theirs, ratio=ratio))
    return 0


def main(argv=None) -> int:
    args = _parse_args(argv)
    if args.what == "memory":
        if reject_below_one(args, ("batch", "size", "steps", "depth", "growth_rate")):
            return 2
        return _memory_child(args) if args.child else _memory(args)
    return _step(args, argv)


if __name__ == "__main__":
    sys.exit(main())
