"""Inference time of a FractalNet's single columns (``keras_cnns.extract_column``) against the
whole network.

Run from the repository root::

    python benchmarks/bench_fractalnet.py                      # fractalnet20_cifar, batch 32
    python benchmarks/bench_fractalnet.py --model fractalnet40_cifar --batch 16 --reps 15

Larsson et al. 2017 (Sec. 4.3, Table 4) extract the deepest column of a FractalNet trained with
drop-path: nearly the accuracy of the whole network, at the cost of one column. A block of ``C``
columns has ``2^C - 1`` convolutions and its deepest column ``2^(C-1)`` of them, so the deepest
column needs about half the multiply-adds (``(2^(C-1)) / (2^C - 1)``, 4/7 for C = 3, 8/15 for
C = 4); the shallower columns much less. Each column model shares the full model's weights
(the same layer objects). Both run as ``tf.function``s in inference mode on the same random
batch, interleaved (full, column, full, ...), so load from other processes hits both alike; the
table gives the medians, the median per-pair ratio ``t_full / t_column`` (the speed-up) and the
multiply-add ratio from ``keras_cnns.profile``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import environment_line, interleaved  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fractalnet20_cifar")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--columns", default="all",
                        help="'all' or a comma-separated list of columns")
    args = parser.parse_args(argv)

    import tensorflow as tf

    import keras_cnns
    from keras_cnns.models.fractalnet import extract_column

    model = keras_cnns.create_model(args.model)
    state = next(layer for layer in model.layers if layer.__class__.__name__ == "FractalPathState")
    n_columns = state.columns[0]
    columns = range(n_columns) if args.columns == "all" else \
        [int(c) for c in args.columns.split(",")]
    x = tf.constant(np.random.default_rng(0).normal(
        size=(args.batch, *model.input_shape[1:])).astype("float32"))
    full = tf.function(lambda t: model(t, training=False))
    full_macs = keras_cnns.profile(model).total_macs
    print(environment_line() if callable(environment_line) else "")
    print(f"{args.model}, batch {args.batch}, {args.reps} interleaved pairs, inference "
          "(measured with other jobs running on the machine: compare ratios, not times)")
    print(f"{'column':>8} {'full ms':>9} {'column ms':>10} {'speed-up':>9} {'MAC ratio':>10}")
    rows = []
    for c in columns:
        sub = extract_column(model, c)
        np.testing.assert_allclose(  # the column is the forced full network
            np.asarray(sub(x[:2], training=False)),
            np.asarray(_forced(model, state, c, x[:2])), atol=1e-5)
        part = tf.function(lambda t, sub=sub: sub(t, training=False))
        t_part, t_full, ratio = interleaved(lambda: part(x).numpy(), lambda: full(x).numpy(),
                                            reps=args.reps)
        macs = keras_cnns.profile(sub).total_macs
        rows.append((c, t_full, t_part, ratio, full_macs / macs))
        print(f"{c:>8} {t_full:>9.1f} {t_part:>10.1f} {ratio:>8.2f}x {full_macs / macs:>9.2f}x")
    return rows


def _forced(model, state, c, x):
    state.force_column(c)
    try:
        return model(x, training=False)
    finally:
        state.force_column(None)


if __name__ == "__main__":
    main()
