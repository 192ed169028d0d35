"""Grid, random, Bayesian and Hyperband search of MobileNet's alpha x rho on the digits, under one
multiply-add budget and one total training budget (epochs summed over trials).

Each algorithm is Keras Tuner's own tuner driving :class:`keras_cnns.tuning.MultiplierHyperModel`
(the budget guard on its oracle): the digits at 16 px, resized by the hypermodel to each trial's
side ``round(rho * 64)`` (37, 46, 55 or 64 px), ``alpha`` in {0.25, 0.5, 0.75, 1.0}; 8 of the 16
configurations are under the budget of 8 M multiply-adds. Every algorithm stops once the epochs
its trials trained add up to the training budget (Hyperband's last trial may pass it: its epochs
are reported). An epoch is ``--steps`` (15) steps of 32 training digits; the held-out split
(360 digits) scores each trial, with BatchNorm statistics recalibrated first (the hypermodel's
``precise_bn``). Grid, random and Bayesian (2 random points, then the Gaussian process) train
each configuration ``--trial-epochs`` epochs (2 of a budget of 6: 3 trials); Hyperband runs
``max_epochs = 4``, ``factor = 2``: 4 one-epoch trials, the best 2 continued to 2 epochs (6
epochs). Adam at 3e-3, no schedule; graph mode (tracing a new model costs most of a trial here).

    python benchmarks/bench_tuning.py                      # the README's table
    python benchmarks/bench_tuning.py --epoch-budget 4 --steps 8    # quicker

Prints one row per algorithm: trials, epochs trained, the best held-out accuracy found (and its
configuration), the Pareto front's size (accuracy against MACs) and the wall time.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _cpu():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run(algorithm, args, digits, directory):
    import keras_tuner as kt

    from keras_cnns.tuning import MultiplierHyperModel, pareto_front, trial_rows

    hm = MultiplierHyperModel("mobilenet", max_macs=args.budget, classes=10, base_size=64,
                              learning_rate=args.learning_rate,
                              compile_kwargs={"run_eagerly": args.eager})
    base = {"grid": kt.GridSearch, "random": kt.RandomSearch,
            "bayesian": kt.BayesianOptimization, "hyperband": kt.Hyperband}[algorithm]

    class EpochBudget(base):
        """Stops the search once the trials' epochs add up to the training budget."""

        used = 0

        def on_trial_end(self, trial):
            values = trial.hyperparameters.values
            self.used += (values.get("tuner/epochs", args.trial_epochs)
                          - values.get("tuner/initial_epoch", 0))
            super().on_trial_end(trial)
            if self.used >= args.epoch_budget:
                self.oracle.max_trials = len(self.oracle.trials)

    common = dict(hypermodel=hm, objective="val_accuracy", seed=args.seed, directory=directory,
                  project_name=algorithm, overwrite=True)
    if algorithm == "hyperband":
        tuner = EpochBudget(max_epochs=4, factor=2, **common)
    elif algorithm == "bayesian":
        tuner = EpochBudget(max_trials=100, num_initial_points=2, **common)
    else:
        tuner = EpochBudget(max_trials=100, **common)
    start = time.perf_counter()
    train = digits.train.repeat() if args.steps else digits.train
    tuner.search(train, validation_data=digits.val, epochs=args.trial_epochs,
                 steps_per_epoch=args.steps or None, verbose=0)
    wall = time.perf_counter() - start
    rows = trial_rows(tuner)
    assert all(r["macs"] <= args.budget for r in rows)
    best = max(rows, key=lambda r: r["val_accuracy"])
    front = pareto_front(rows, metric="val_accuracy")
    return {"algorithm": algorithm, "trials": len(rows),
            "configs": len({r["config"] for r in rows}),
            "epochs": tuner.used, "best": best["val_accuracy"], "best_config": best["config"],
            "front": len(front), "wall_s": wall}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=8e6, help="max multiply-adds")
    parser.add_argument("--epoch-budget", type=int, default=6,
                        help="epochs summed over the trials of one search")
    parser.add_argument("--trial-epochs", type=int, default=2,
                        help="epochs per trial (grid, random, Bayesian)")
    parser.add_argument("--steps", type=int, default=15,
                        help="steps of 32 images per epoch (0: all 45, the 1437 digits)")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--eager", action="store_true",
                        help="run the trials eagerly (faster for a handful of steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--algorithms", default="grid,random,bayesian,hyperband")
    args = parser.parse_args(argv)

    from keras_cnns.data import load_digits

    digits = load_digits(image_size=16, batch_size=32, seed=args.seed)
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for algorithm in args.algorithms.split(","):
            results.append(run(algorithm, args, digits, directory))
            r = results[-1]
            print(f"{algorithm}: {r['trials']} trials, best {r['best']:.3f} "
                  f"({r['best_config']}), {r['wall_s']:.0f} s", flush=True)
    epoch = f"{args.steps} x 32 images" if args.steps else "the 1437 training digits"
    print(f"\nMobileNet on the digits, budget {args.budget / 1e6:g} M MACs, "
          f"{args.epoch_budget} epochs of {epoch} in all per search; "
          f"{_cpu()}, {os.cpu_count()} logical CPUs")
    head = (f"| algorithm | trials (configs) | epochs | best held-out top-1 | best config "
            f"| front size | wall s |")
    print(head + "\n|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['algorithm']} | {r['trials']} ({r['configs']}) | {r['epochs']} | "
              f"{r['best']:.3f} | {r['best_config']} | {r['front']} | {r['wall_s']:.0f} |")


if __name__ == "__main__":
    main()
