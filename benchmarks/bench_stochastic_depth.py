"""Training-step time of a CIFAR ResNet with stochastic depth against the same net at constant
depth.

Run from the repository root::

    python benchmarks/bench_stochastic_depth.py                 # ResNet-110, batch 64, p_L = 0.5
    python benchmarks/bench_stochastic_depth.py --breakdown     # + what each stage's blocks cost
    python benchmarks/bench_stochastic_depth.py --depth 56 --reps 20 --onednn current

Huang et al. 2016 ("Deep Networks with Stochastic Depth", arXiv:1603.09382) train ResNet-110 on
CIFAR-10 with the linear rule ``p_l = 1 - l/L (1 - p_L)``, ``p_L = 0.5``: on average 75% of the
blocks run per step, and the paper reports about 25% less training time. keras_cnns'
:class:`~keras_cnns.blocks.StochasticDepth` skips a dropped block's branch under ``cond``, so
the saving is real computation, not a multiplication by zero.

Two models of the same architecture and weights (``keras_cnns.create_model("resnet110")`` with
and without ``stochastic_depth``), compiled alike (SGD, ``jit_compile=False``), train on the same
random batch; their steps are timed interleaved (constant, stochastic, constant, ...). The table
gives median step times, the median per-pair ratio ``t_stochastic / t_constant`` and the ratio of
the total times (the training-time saving); the target is <= 0.80. Each stochastic step draws a
new set of surviving blocks, so the number of steps (``--reps``) sets how well the average is
sampled. By default the whole run is made twice, once per TensorFlow CPU kernel set (oneDNN off
and on), each in its own process.

The linear rule keeps the early blocks more often than the late ones, so the saving depends on
what each stage costs on the machine's kernels, not only on the 25% of blocks dropped.
``--breakdown`` also times, in the same interleaved loop, the stochastic net with every block
kept (the cost of the ``cond`` machinery itself) and with one stage's blocks all dropped, and
from these prints each stage's block cost and the ratio the linear rule can reach on these
kernels: ``(fixed + sum_s mean(p_l in s) * cost_s) / t_constant``.
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
                     reject_below_one, train_step, write_json)

TARGET = 0.80


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=110, help="CIFAR ResNet depth 6n+2 (110)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--survival", type=float, default=0.5, help="p_L (default 0.5)")
    parser.add_argument("--reps", type=int, default=30, help="timed steps per side (default 30)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the all-kept net and each stage dropped (per-stage cost)")
    add_onednn_arguments(parser)
    return parser.parse_args(argv)


def _summarize(results):
    print("\n=== summary: training step, stochastic / constant depth (target <= 0.80) ===")
    for setting, r in results.items():
        line = (f"oneDNN {setting:<4} median of per-step ratios {r['median_ratio']:.3f}x, "
                f"total-time ratio {r['total_ratio']:.3f}x")
        if r.get("reachable") is not None:
            line += f"; reachable with these kernels {r['reachable']:.3f}x"
        print(line)


def _force(model, stage_of, dropped_stage):
    """Fix every StochasticDepth layer's survival: 1.0 (always kept), or 0.0 (never: a uniform
    draw in [0, 1) is never below 0) in the stage ``dropped_stage``. A diagnostic that sets
    the attribute directly, past the (0, 1] check of the constructor; used before tracing."""
    for layer, stage in stage_of(model):
        layer.survival_prob = 0.0 if stage == dropped_stage else 1.0
    return model


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("batch", "reps")):
        return 2
    if not 0.0 < args.survival <= 1.0:
        print(f"--survival must be in (0, 1]. Received: --survival={args.survival}")
        return 2
    if args.depth < 8 or (args.depth - 2) % 6:
        print("--depth must be 6n + 2 with n >= 1 (8, 14, 20, ..., 110). "
              f"Received: --depth={args.depth}")
        return 2
    code = dispatch_onednn_runs(args, argv, os.path.abspath(__file__), _summarize)
    if code is not None:
        return code
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    import keras_cnns
    from keras_cnns.blocks.stochastic_depth import StochasticDepth
    from keras_cnns.models._stages import survival_probabilities

    constant = keras_cnns.CifarResNet(depth=args.depth)
    weights = constant.get_weights()

    def stochastic_net():
        model = keras_cnns.CifarResNet(depth=args.depth, stochastic_depth=args.survival)
        model.set_weights(weights)
        return model

    def stage_of(model):
        layers = [l for l in model._flatten_layers() if isinstance(l, StochasticDepth)]
        return [(l, l.name.split("_block")[0]) for l in layers]

    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((args.batch, 32, 32, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, args.batch))

    def make_step(model):
        return train_step(model, x, y, lr=0.1, momentum=0.9)

    stochastic = stochastic_net()
    stages = list(dict.fromkeys(stage for _, stage in stage_of(stochastic)))
    steps = {"constant": make_step(constant), "stochastic": make_step(stochastic)}
    if args.breakdown:
        steps["all kept"] = make_step(_force(stochastic_net(), stage_of, None))
        for stage in stages:
            steps[f"{stage} dropped"] = make_step(_force(stochastic_net(), stage_of, stage))
    for _ in range(3):          # warm-up: tracing and the first steps
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    for _ in range(args.reps):  # interleaved: constant, stochastic, [...], constant, ...
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - t0) * 1e3)
    med = {name: statistics.median(t) for name, t in times.items()}
    median_ratio = statistics.median(s / c for s, c in zip(times["stochastic"], times["constant"]))
    total_ratio = sum(times["stochastic"]) / sum(times["constant"])

    blocks = 3 * ((args.depth - 2) // 6)
    probs = survival_probabilities(blocks, args.survival, "linear")
    print(f"\nCIFAR ResNet-{args.depth} ({blocks} residual blocks), batch {args.batch}, SGD train "
          f"step, {args.reps} interleaved steps per side, TF {tf.__version__}")
    print(environment_line() + "\n")
    print(f"{'model':<44}{'median step ms':>16}")
    labels = {"constant": "constant depth",
              "stochastic": f"stochastic depth (linear rule, p_L = {args.survival:g})"}
    for name in steps:
        print(f"{labels.get(name, 'stochastic, ' + name):<44}{med[name]:>16.1f}")
    print(f"\nexpected fraction of blocks run per step: {float(np.mean(probs)):.3f}")
    reachable = None
    if args.breakdown:
        per_stage = len(probs) // len(stages)
        costs = [med["all kept"] - med[f"{s} dropped"] for s in stages]
        fixed = med["all kept"] - sum(costs)
        means = [float(np.mean(probs[i * per_stage:(i + 1) * per_stage]))
                 for i in range(len(stages))]
        print("stage   blocks' cost ms   share   mean p_l")
        for stage, cost, mean in zip(stages, costs, means):
            print(f"{stage:<8}{cost:>15.1f}{cost / sum(costs):>8.1%}{mean:>11.3f}")
        print(f"outside the blocks (stem, head, shortcuts, optimizer): {fixed:.1f} ms")
        overhead = med["all kept"] / med["constant"]
        print(f"cond machinery, all blocks kept / constant: {overhead:.3f}x")
        reachable = (fixed + sum(c * m for c, m in zip(costs, means))) / med["constant"]
        print(f"ratio the linear rule can reach on these kernels: {reachable:.3f}x "
              f"(with equal stage costs: {float(np.mean(probs)):.3f} of the blocks' time)")
    verdict = "ok" if total_ratio <= TARGET else "MISSED"
    print(f"ratio stochastic / constant: median of per-step ratios {median_ratio:.3f}x, "
          f"total time {total_ratio:.3f}x  (target <= {TARGET:.2f}: {verdict})")
    write_json(args.json_out, {"median_ratio": median_ratio, "total_ratio": total_ratio,
                               "reachable": reachable})
    return 0


if __name__ == "__main__":
    sys.exit(main())
