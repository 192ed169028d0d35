"""``keras-cnns tune MODEL --budget-madds 15e6 --dataset digits --trials N --epochs E``."""

from __future__ import annotations

import argparse

_FLAGS = {"max_macs": "--budget-madds", "max_params": "--budget-params",
          "max_latency_ms": "--budget-latency-ms", "objective": "--objective",
          "max_trials": "--trials", "epochs": "--epochs", "base_size": "--base-size",
          "algorithm": "--algorithm",
          "name": "MODEL", "model": "MODEL", "data": "--dataset", "cost": "--cost"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Search a model's width/resolution multipliers (from the registry: MobileNet alpha and "
        "rho, ...) under a cost budget with Keras Tuner: configurations over the budget are "
        "rejected before they are built; a progress line per trial; the Pareto front of "
        "accuracy against cost at the end, a plot, the best model exported.")
    parser.add_argument("model", metavar="MODEL", help="a tunable registered model (mobilenet)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--budget-madds", type=float, default=None, help="max multiply-adds")
    parser.add_argument("--budget-params", type=float, default=None, help="max parameters")
    parser.add_argument("--budget-latency-ms", type=float, default=None,
                        help="max batch-1 latency on this machine (measured before training)")
    parser.add_argument("--objective", default="accuracy", help="accuracy | tradeoff")
    parser.add_argument("--cost", default=None, help="macs | params | latency_ms")
    parser.add_argument("--trials", type=int, default=None, help="max trials (default: all)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per trial")
    parser.add_argument("--base-size", type=int, default=None,
                        help="the input side rho=1 stands for (default the model's, 224)")
    parser.add_argument("--algorithm", default="grid",
                        choices=("grid", "random", "bayesian", "hyperband"),
                        help="Keras Tuner's algorithm; every one honours the budget")
    parser.add_argument("--ranges", action="store_true",
                        help="continuous multipliers between the grid's extremes")
    parser.add_argument("--directory", default="tuning", help="Keras Tuner project root")
    parser.add_argument("--overwrite", action="store_true", help="start over (default: resume)")
    parser.add_argument("--export-dir", default="saved_models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps-per-epoch", type=int, default=None)


def run(args: argparse.Namespace) -> int:
    from keras_cnns.tuning.search import search

    kwargs = {}
    if args.steps_per_epoch:
        kwargs["steps_per_epoch"] = args.steps_per_epoch
    try:
        result = search(args.model, args.dataset, max_macs=args.budget_madds,
                        max_params=args.budget_params, max_latency_ms=args.budget_latency_ms,
                        objective=args.objective, cost=args.cost, base_size=args.base_size,
                        ranges=args.ranges, algorithm=args.algorithm, max_trials=args.trials,
                        epochs=args.epochs, seed=args.seed, directory=args.directory,
                        overwrite=args.overwrite, export_dir=args.export_dir, **kwargs)
    except ValueError as exc:
        msg = str(exc)
        for arg, flag in _FLAGS.items():
            msg = msg.replace(f"`{arg}`", f"`{flag}`").replace(f"Received: {arg}=",
                                                               f"Received: {flag}=")
        raise ValueError(msg) from None
    print(f"\n{len(result.trials)} trials, {len(result.rejected)} configurations rejected "
          f"before building; wall time {result.wall_time_s:.1f} s")
    print(f"plot: {result.plot_path}\nbest: {result.best['config'] if result.best else '-'}"
          f"\nSavedModel: {result.export_path}")
    return 0
