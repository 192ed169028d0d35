"""Side-by-side timing and the oneDNN on/off runs shared by the benchmark scripts.

TensorFlow picks its CPU kernels at import: oneDNN's with ``TF_ENABLE_ONEDNN_OPTS=1`` (the
default on Intel CPUs), its own Eigen kernels with ``=0`` (the default on AMD CPUs). The stock
side of a benchmark therefore differs by setting, so each benchmark runs itself once per setting
in a child process (:func:`run_per_onednn_setting`) and compares the custom op against the faster
stock side (the smaller of the two interleaved ratios).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
SETTINGS = {"off": "0", "on": "1"}


def interleaved(fn_ours, fn_theirs, reps: int, warmup: int = 3):
    """Time two callables alternately (ours, theirs, ours, ...), so load from other processes
    hits both alike. Returns the median times in ms of both sides and the median of the
    per-iteration ratios theirs / ours (> 1 means ours is faster)."""
    for _ in range(warmup):
        fn_ours()
        fn_theirs()
    t_ours, t_theirs, ratios = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn_ours()
        t1 = time.perf_counter()
        fn_theirs()
        t2 = time.perf_counter()
        t_ours.append((t1 - t0) * 1e3)
        t_theirs.append((t2 - t1) * 1e3)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(t_ours), statistics.median(t_theirs), statistics.median(ratios)


def fastest_runnable(candidates, errors, reps: int = 3):
    """``(name, fn)`` of the fastest of ``candidates`` (a dict name -> callable) that runs in
    this process (some stock formulations exist only with oneDNN on, e.g. gradients of a grouped
    ``tf.nn.conv2d``), by the best of ``reps`` timed calls after one warm-up call. ``errors``
    are the exception types that mean "this kernel does not exist here". Returns ``(None, None)``
    when none runs."""
    best = (None, None, float("inf"))
    for name, fn in candidates.items():
        try:
            fn()
        except errors:
            continue
        t = min(_time_once(fn) for _ in range(reps))
        if t < best[2]:
            best = (name, fn, t)
    return best[0], best[1]


@contextlib.contextmanager
def plain_convolutions_on_tensorflow():
    """Models built inside keep every plain convolution on TensorFlow's kernel
    (``KERAS_CNNS_PLAIN_CONV=stock``, restored on exit): for benchmarks that compare one other
    layer kind's path (depthwise, grouped) and must not move plain convolutions with it."""
    previous = os.environ.get("KERAS_CNNS_PLAIN_CONV")
    os.environ["KERAS_CNNS_PLAIN_CONV"] = "stock"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("KERAS_CNNS_PLAIN_CONV", None)
        else:
            os.environ["KERAS_CNNS_PLAIN_CONV"] = previous


def grad_step(fn, x, wrt):
    """A callable running one forward pass of ``fn`` on ``x`` and the gradients of
    ``sum(y ** 2)`` with respect to ``x`` and the variables ``wrt`` (a training step's worth of
    work for one layer) in a ``tf.function`` without XLA, results fetched to the host."""
    import tensorflow as tf

    @tf.function(jit_compile=False)
    def step(inp):
        with tf.GradientTape() as tape:
            tape.watch(inp)
            y = fn(inp)
            loss = tf.reduce_sum(y * y)
        return tape.gradient(loss, [inp, *wrt])

    return lambda: [g.numpy() for g in step(x)]


def train_step(model, x, y, *, lr: float = 0.01, momentum: float = 0.0):
    """``model`` compiled for a benchmark's training step (SGD with ``lr`` / ``momentum``, sparse
    categorical cross-entropy, ``jit_compile=False``: the custom op does not run under XLA) and a
    callable running one ``train_on_batch(x, y)``."""
    import keras

    model.compile(optimizer=keras.optimizers.SGD(lr, momentum=momentum),
                  loss="sparse_categorical_crossentropy", jit_compile=False)
    return lambda: model.train_on_batch(x, y)


def timed_steps(step, steps: int):
    """``(seconds per call, last result)`` of ``steps`` calls of ``step()`` (a training step that
    returns its loss)."""
    times, result = [], None
    for _ in range(steps):
        t0 = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - t0)
    return times, result


def _time_once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def environment_line() -> str:
    """Which stock kernels this process compares against: oneDNN on/off, CPU model and ISA."""
    import tensorflow as tf

    from keras_cnns.environment import cpu_allocator, onednn_enabled

    onednn = {True: "on", False: "off", None: "unknown"}[onednn_enabled()]
    return (f"stock TF {tf.__version__} CPU kernels: oneDNN {onednn} "
            f"({ONEDNN_ENV}={os.environ.get(ONEDNN_ENV, '(unset)')}), {cpu_allocator()} CPU "
            f"allocator; {cpu_line()}")


def cpu_line() -> str:
    """``CPU: <model> [<vendor>], <n> cores, ISA: <flags>`` for a benchmark's header."""
    from keras_cnns.environment import cpu_description

    cpu = cpu_description()
    return (f"CPU: {cpu['model']} [{cpu['vendor'] or '?'}], {os.cpu_count()} cores, "
            f"ISA: {' '.join(cpu['isa']) or '-'}")


def add_onednn_arguments(parser) -> None:
    parser.add_argument("--onednn", choices=["both", "on", "off", "current"], default="both",
                        help="stock kernels to compare against: run once with TF's oneDNN "
                             "kernels and once with its Eigen kernels, each in its own process "
                             "(default both), one of them, or this process's setting (current)")
    parser.add_argument("--json-out", default=None, help=argparse.SUPPRESS)  # child -> parent


def run_per_onednn_setting(script: str, argv, settings):
    """Run ``script argv --onednn current`` once per setting (``"off"``/``"on"``) in a child
    process with ``TF_ENABLE_ONEDNN_OPTS`` set, echo its output, and return the JSON results the
    children wrote (a dict setting -> result), or ``None`` if a child failed."""
    argv = _without_option(list(argv), "--onednn")
    results = {}
    for setting in settings:
        env = dict(os.environ, **{ONEDNN_ENV: SETTINGS[setting]})
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "result.json")
            cmd = [sys.executable, script, *argv, "--onednn", "current", "--json-out", out]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            print(f"\n=== {ONEDNN_ENV}={SETTINGS[setting]} (oneDNN {setting}) ===")
            print(proc.stdout.rstrip())
            if proc.returncode != 0 or not os.path.exists(out):
                print(f"child run failed with exit code {proc.returncode}:\n"
                      + "\n".join(proc.stderr.strip().splitlines()[-20:]))
                return None
            with open(out) as fh:
                results[setting] = json.load(fh)
    return results


def dispatch_onednn_runs(args, argv, script, summarize):
    """Unless ``--onednn current``: run ``script`` once per requested oneDNN setting in child
    processes, call ``summarize(results)`` when both ran, and return the exit code. Returns
    ``None`` when this process is to run the benchmark itself."""
    if args.onednn == "current":
        return None
    settings = ["off", "on"] if args.onednn == "both" else [args.onednn]
    results = run_per_onednn_setting(script, argv if argv is not None else sys.argv[1:], settings)
    if results is None:
        return 1
    if len(results) > 1:
        summarize(results)
    return 0


def _without_option(argv, option):
    """``argv`` without ``option VALUE`` / ``option=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == option:
            skip = True
        elif not a.startswith(option + "="):
            out.append(a)
    return out


def reject_below_one(args, names) -> bool:
    """Print the error for the first of ``names`` (argparse attributes, ``None`` = unset) that
    is below 1 and return True; False when all are fine."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            print(f"{flag} must be >= 1. Received: {flag}={value}")
            return True
    return False


def write_json(path, payload) -> None:
    if path:
        with open(path, "w") as fh:
            json.dump(payload, fh)
