"""Training-step time of a CIFAR ResNet with stochastic depth against the same net at constant depth.

Run from the repository root::

    python benchmarks/bench_stochastic_depth.py                 # ResNet-110, batch 64, p_L = 0.5
    python benchmarks/bench_stochastic_depth.py --depth 56 --reps 20

Huang et al. 2016 ("Deep Networks with Stochastic Depth", arXiv:1603.09382) train ResNet-110 on
CIFAR-10 with the linear rule ``p_l = 1 - l/L (1 - p_L)``, ``p_L = 0.5``: on average 75% of the
blocks run per step, and the paper reports about 25% less training time. keras_cnns'
:class:`~keras_cnns.blocks.StochasticDepth` skips a dropped block's branch under ``cond``, so
the saving is real computation, not a multiplication by zero.

Two models of the same architecture and weights (``keras_cnns.create_model("resnet110")`` with
and without ``stochastic_depth``), compiled alike (SGD, ``jit_compile=False``), train on the same
random batch; their steps are timed interleaved (constant, stochastic, constant, ...), and the
table gives median step times and the median per-pair ratio ``t_stochastic / t_constant`` (the
target is <= 0.80). Each stochastic step draws a new set of surviving blocks, so the number of
steps (``--reps``) sets how well the average is sampled.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import environment_line, interleaved, reject_below_one  # noqa: E402


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=110, help="CIFAR ResNet depth 6n+2 (110)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--survival", type=float, default=0.5, help="p_L (default 0.5)")
    parser.add_argument("--reps", type=int, default=30, help="timed steps per side (default 30)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _parse_args(argv)
    if reject_below_one(args, ("batch", "reps")):
        return 2
    if not 0.0 < args.survival <= 1.0:
        print(f"--survival must be in (0, 1]. Received: --survival={args.survival}")
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    import keras_cnns
    from keras_cnns.models._stages import survival_probabilities

    try:
        constant = keras_cnns.CifarResNet(depth=args.depth)
        stochastic = keras_cnns.CifarResNet(depth=args.depth, stochastic_depth=args.survival)
    except ValueError as exc:
        print(exc)
        return 2
    stochastic.set_weights(constant.get_weights())
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((args.batch, 32, 32, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, args.batch))

    def make_step(model):
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                      loss="sparse_categorical_crossentropy", jit_compile=False)
        return lambda: model.train_on_batch(x, y)

    step_constant, step_stochastic = make_step(constant), make_step(stochastic)
    blocks = 3 * ((args.depth - 2) // 6)
    expected = float(np.mean(survival_probabilities(blocks, args.survival, "linear")))
    # interleaved(ours, theirs) returns (t_ours, t_theirs, median of t_theirs / t_ours).
    med_sd, med_const, ratio = interleaved(step_stochastic, step_constant, args.reps, warmup=3)
    print(f"\nCIFAR ResNet-{args.depth} ({blocks} residual blocks), batch {args.batch}, SGD train "
          f"step, {args.reps} interleaved steps per side, TF {tf.__version__}")
    print(environment_line() + "\n")
    print(f"{'model':<44}{'median step ms':>16}")
    print(f"{'constant depth':<44}{med_const:>16.1f}")
    print(f"{f'stochastic depth (linear rule, p_L = {args.survival:g})':<44}{med_sd:>16.1f}")
    print(f"\nexpected fraction of blocks run per step: {expected:.3f}")
    ratio_sd = 1.0 / ratio
    verdict = "ok" if ratio_sd <= 0.80 else "MISSED"
    print(f"ratio stochastic / constant (median of per-step ratios): {ratio_sd:.3f}x  "
          f"(target <= 0.80: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
