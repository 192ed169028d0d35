"""Keras Tuner search of a model's multipliers (width ``alpha``, resolution ``rho``, ``scale``)
under a cost budget, with the Pareto front of accuracy against cost.

:func:`search` is a thin layer over the public parts (:mod:`keras_cnns.tuning.hypermodel`):

* The space is a :class:`~keras_cnns.tuning.MultiplierHyperModel`: one hyperparameter per
  multiplier of the family (``model_info(name).multipliers()``, the papers' grids; ``ranges=True``
  for ``hp.Float`` ranges). Its budget (``max_macs``, ``max_params``) is a constraint of the
  oracle (:func:`~keras_cnns.tuning.budgeted`): every proposal is priced first -- multiply-adds by
  the family's closed form where there is one (MobileNet: the paper's eq. 7), otherwise by the
  profiler on a build that allocates no weights -- and one over the budget is drawn again: it
  never becomes a trial, is never built with weights, and does not count against ``max_trials``.
* The algorithm is a Keras Tuner one: ``"grid"`` (every point under the budget, in grid order),
  ``"random"``, ``"bayesian"`` (Gaussian process; ``num_initial_points`` random trials first) or
  ``"hyperband"`` (``max_epochs = epochs``, reduction ``factor = 3``; a promoted configuration
  continues from its previous round's weights).
  Each trial trains the configuration with :func:`keras_cnns.training.train` and reports
  accuracy, multiply-adds, parameters, batch-1 latency and the score; Keras Tuner keeps them all
  per trial (its own multi-objective is an unweighted sum, so the score is computed here).
* Objective ``"accuracy"``: held-out top-1 under the budget. ``"tradeoff"``: MnasNet's
  (Tan et al. 2019, eq. 2) ``accuracy * (cost / target) ** w`` with ``w = -0.07``.
* A measured latency budget (``max_latency_ms``) is checked on the built model before training;
  over it, the trial fails without training (``FailedTrialError``) and the configuration is not
  proposed again.
* Resuming (``overwrite=False``, the default) reloads the project directory: completed trials are
  not rerun. Keras Tuner's chief/worker mode (``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``,
  ``KERASTUNER_ORACLE_PORT``) distributes the trials.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Dict, List, Optional, Sequence

from keras_cnns._checks import fail, is_int
from keras_cnns.tuning.space import Config, candidate_configs

__all__ = ["Config", "SearchResult", "candidate_configs", "pareto_front", "search",
           "OBJECTIVES", "COSTS", "ALGORITHMS"]

OBJECTIVES = ("accuracy", "tradeoff")
COSTS = ("macs", "params", "latency_ms")
ALGORITHMS = ("grid", "random", "bayesian", "hyperband")
MNAS_W = -0.07


def pareto_front(rows: Sequence[Dict[str, Any]], cost: str = "macs",
                 metric: str = "accuracy") -> List[Dict[str, Any]]:
    """The rows no other row dominates (higher or equal ``metric`` at lower or equal ``cost``,
    one of them strictly), by increasing cost."""
    front = []
    for r in rows:
        dominated = any(
            o[metric] >= r[metric] and o[cost] <= r[cost]
            and (o[metric] > r[metric] or o[cost] < r[cost]) for o in rows)
        if not dominated:
            front.append(r)
    return sorted(front, key=lambda r: (r[cost], -r[metric]))


@dataclasses.dataclass
class SearchResult:
    """What :func:`search` returns: every trial's raw metrics, the front, the best model."""

    trials: List[Dict[str, Any]]
    front: List[Dict[str, Any]]
    best: Optional[Dict[str, Any]]
    rejected: List[Dict[str, Any]]
    export_path: Optional[str]
    plot_path: Optional[str]
    wall_time_s: float
    cost: str

    def table(self, rows=None) -> str:
        rows = self.front if rows is None else rows
        head = f"{'config':34s} {'MMACs':>8s} {'params':>10s} {'ms/img':>7s} {'top-1':>6s} {'score':>7s}"
        lines = [head, "-" * len(head)]
        for r in rows:
            lines.append(f"{r['config']:34s} {r['macs'] / 1e6:8.2f} {r['params']:10,d} "
                         f"{r['latency_ms']:7.2f} {r['accuracy']:6.3f} {r['score']:7.4f}")
        return "\n".join(lines)


class _TrainingTuner:
    """Mixed before a Keras Tuner tuner class: a trial trains its configuration with
    :func:`keras_cnns.training.train` on a named dataset (the hypermodel only prices it)."""

    def run_trial(self, trial, *args, **kwargs):
        import keras_tuner as kt

        import keras_cnns
        from keras_cnns.training import train
        from keras_cnns.training.recipe import resolve_recipe
        from keras_cnns.tuning.hypermodel import latency_ms

        ctx = self._ctx
        hm = ctx["hypermodel"]
        values = trial.hyperparameters.values
        ok, reason, c = hm.check(values)
        if not ok:  # the guarded oracle never proposes one; a safety net, before any build
            raise kt.errors.FailedTrialError(f"over the budget, not built: {reason}")
        c = hm.pricer.priced(c)
        log = ctx["log"]
        total = int(values.get("tuner/epochs", ctx["epochs"]))
        first = int(values.get("tuner/initial_epoch", 0))
        past = values.get("tuner/trial_id")
        start = time.perf_counter()
        if log:
            log(f"trial {trial.trial_id}: {c.label} ({c.macs / 1e6:.2f} M MACs, "
                f"{c.params:,} params) ...")
        model = keras_cnns.create_model(hm.model_name, input_shape=(c.side, c.side, c.channels),
                                        classes=c.classes, **c.kwargs)
        latency = latency_ms(model, c.side, c.channels)
        if ctx["max_latency_ms"] is not None and latency > ctx["max_latency_ms"]:
            hm.latency_over[c.label] = latency
            raise kt.errors.FailedTrialError(
                f"{c.label}: {latency:.2f} ms per image > the {ctx['max_latency_ms']} ms budget "
                "(measured before training)")
        train_kwargs = dict(ctx["train_kwargs"])
        common = dict(image_size=c.side, epochs=total - first, seed=ctx["seed"], verbose=0)
        if past is not None:  # a Hyperband promotion: continue from the previous round
            model.load_weights(os.path.join(self.get_trial_dir(past), "model.weights.h5"))
            # the model's own recipe (train() knows it only by name), without a second warm-up
            recipe = dataclasses.asdict(resolve_recipe(train_kwargs.pop("recipe", None),
                                                       hm.info))
            recipe["warmup_epochs"] = 0.0
            result = train(model, ctx["data"], recipe=recipe, **common, **train_kwargs)
        else:
            del model
            result = train(hm.model_name, ctx["data"], model_kwargs=dict(c.kwargs), **common,
                           **train_kwargs)
        acc = float(result.val_accuracy)
        value = {"macs": c.macs, "params": c.params, "latency_ms": latency}[ctx["cost"]]
        score = acc if ctx["objective"] == "accuracy" else acc * (value / ctx["target"]) ** MNAS_W
        metrics = {"score": score, "accuracy": acc,
                   "top5_accuracy": float(result.val_top5_accuracy), "macs": float(c.macs),
                   "params": float(c.params), "latency_ms": latency,
                   "epochs": float(total - first), "train_s": time.perf_counter() - start}
        result.model.save_weights(os.path.join(self.get_trial_dir(trial.trial_id),
                                               "model.weights.h5"))
        if log:
            log(f"trial {trial.trial_id}: {c.label}: top-1 {acc:.3f}, score {score:.4f}, "
                f"{metrics['train_s']:.1f} s")
        self.local_rows.append({**c.as_dict(), **metrics, "trial_id": trial.trial_id})
        return metrics


_TUNER_CLASSES: Dict[str, type] = {}


def make_tuner(algorithm: str, hypermodel, *, objective="val_accuracy", max_trials=None,
               epochs: int = 3, seed: int = 0, directory: str = "tuning",
               project_name: Optional[str] = None, overwrite: bool = False,
               hyperband_factor: int = 3, num_initial_points: Optional[int] = None,
               tuner_class=None, **tuner_kwargs):
    """The Keras Tuner tuner of ``algorithm`` (one of :data:`ALGORITHMS`) over ``hypermodel``,
    with the budget guard on its oracle. ``max_trials`` defaults to every point under the budget
    (finite spaces) or 10; Hyperband runs one iteration with ``max_epochs = epochs`` (and stops
    at ``max_trials`` if given). ``tuner_class``: a subclass to use instead of Keras Tuner's."""
    import keras_tuner as kt

    from keras_cnns.tuning._state_files import repair_project
    from keras_cnns.tuning.hypermodel import budgeted

    if algorithm not in ALGORITHMS:
        fail("algorithm", f"must be one of {list(ALGORITHMS)}", algorithm)
    base = {"grid": kt.GridSearch, "random": kt.RandomSearch,
            "bayesian": kt.BayesianOptimization, "hyperband": kt.Hyperband}[algorithm]
    cls = tuner_class or base
    # A project left with an empty trial.json by a run killed mid-write is repaired before Keras
    # Tuner reloads it (budgeted, below, makes the writes from now on atomic).
    if not overwrite:
        repair_project(os.path.join(os.fspath(directory), project_name or "untitled_project"))
    common = dict(hypermodel=hypermodel, objective=objective, seed=seed, directory=directory,
                  project_name=project_name, overwrite=overwrite, **tuner_kwargs)
    if algorithm == "hyperband":
        tuner = cls(max_epochs=epochs, factor=hyperband_factor, hyperband_iterations=1, **common)
        if max_trials:
            tuner.oracle.max_trials = max_trials
    else:
        if max_trials is None:
            n = _finite_size(hypermodel)
            max_trials = n if n is not None else 10
        if algorithm == "bayesian":
            dims = sum(1 for v in hypermodel.space.values() if len(set(v)) > 1)
            common["num_initial_points"] = num_initial_points or min(
                max(3 * dims, 1), max(2, max_trials // 2))
        tuner = cls(max_trials=max_trials, **common)
    return budgeted(tuner, hypermodel)


def _finite_size(hm) -> Optional[int]:
    import itertools

    if hm.ranges:
        return None
    return sum(1 for v in itertools.product(*hm.space.values())
               if hm.fits(dict(zip(hm.space, v))))


def _training_tuner_class(algorithm):
    import keras_tuner as kt

    if algorithm not in _TUNER_CLASSES:
        base = {"grid": kt.GridSearch, "random": kt.RandomSearch,
                "bayesian": kt.BayesianOptimization, "hyperband": kt.Hyperband}[algorithm]
        _TUNER_CLASSES[algorithm] = type(f"Training{base.__name__}", (_TrainingTuner, base), {})
    return _TUNER_CLASSES[algorithm]


def search(name: str, data: Any = "digits", *, max_macs: Optional[float] = None,
           max_params: Optional[float] = None, max_latency_ms: Optional[float] = None,
           objective: str = "accuracy", target: Optional[float] = None,
           cost: Optional[str] = None, base_size: Optional[int] = None,
           grid: Optional[Dict[str, Sequence]] = None, ranges: bool = False, samples: int = 12,
           phi: Optional[int] = None, algorithm: str = "grid", max_trials: Optional[int] = None,
           epochs: int = 3,
           seed: int = 0, directory: str = "tuning", project_name: Optional[str] = None,
           overwrite: bool = False, export_dir: Optional[str] = None, plot: bool = True,
           verbose: int = 1, **train_kwargs) -> SearchResult:
    """Search ``name``'s multipliers on ``data`` under a cost budget; see the module docstring.

    Args:
        name: a registered model whose family declares multipliers (MobileNet ...).
        data: a dataset name of :func:`keras_cnns.data.load` (``"digits"`` by default).
        max_macs, max_params: budgets checked before any build; ``max_latency_ms``: batch-1
            latency on this machine, checked on the built model before training.
        objective: ``"accuracy"`` or ``"tradeoff"`` (MnasNet's ``acc * (cost/target)^-0.07``).
        target: the trade-off's target cost (default: the budget on ``cost``).
        cost: the cost of the front and the trade-off: ``"macs"`` (default), ``"params"`` or
            ``"latency_ms"``.
        base_size: the side ``rho = 1`` stands for (default the model's, 224).
        grid, ranges, samples: the space (default the registry's grid).
        phi: EfficientNet's compound coefficient (default 1: the paper's step 1).
        algorithm: ``"grid"`` (every configuration under the budget, in grid order),
            ``"random"``, ``"bayesian"`` or ``"hyperband"`` (see the module docstring).
        max_trials: at most this many trials (default: every configuration under the budget;
            ``samples`` with ``ranges``; Hyperband: its brackets). Configurations over the
            budget never count.
        epochs: training epochs per trial (Hyperband: the most a configuration trains);
            ``**train_kwargs`` go to
            :func:`keras_cnns.training.train` (``steps_per_epoch``, ``batch_size``, ...).
        directory, project_name, overwrite: Keras Tuner's project (resumed unless
            ``overwrite``; default name ``<model>_<data>``, plus ``_<algorithm>`` but for grid).
        export_dir: export the best trial's model as a SavedModel there.
        plot: write ``pareto.png`` into the project directory.

    Raises:
        ValueError: an unknown model, a model without multipliers, an unknown objective or
            cost or algorithm, a budget no configuration meets -- all before any trial runs.
    """
    start = time.perf_counter()
    if objective not in OBJECTIVES:
        fail("objective", f"must be one of {list(OBJECTIVES)}", objective)
    cost = cost or ("latency_ms" if max_latency_ms is not None and max_macs is None
                    and max_params is None else ("params" if max_params is not None
                                                 and max_macs is None else "macs"))
    if cost not in COSTS:
        fail("cost", f"must be one of {list(COSTS)}", cost)
    for arg, v in (("max_macs", max_macs), ("max_params", max_params),
                   ("max_latency_ms", max_latency_ms), ("target", target)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                              or not math.isfinite(v) or v <= 0):
            fail(arg, "must be None or a positive number", v)
    if algorithm not in ALGORITHMS:
        fail("algorithm", f"must be one of {list(ALGORITHMS)}", algorithm)
    if not is_int(epochs) or epochs < 1:
        fail("epochs", "must be a positive integer", epochs)
    if max_trials is not None and (not is_int(max_trials) or max_trials < 1):
        fail("max_trials", "must be None or a positive integer", max_trials)
    if not is_int(samples) or samples < 1:
        fail("samples", "must be a positive integer", samples)
    if target is None:
        target = {"macs": max_macs, "params": max_params, "latency_ms": max_latency_ms}[cost]
        if target is None and objective == "tradeoff":
            fail("target", "must be given for objective='tradeoff' without a budget on "
                 f"{cost!r}", target)
    from keras_cnns.data import info as data_info
    from keras_cnns.tuning.hypermodel import MultiplierHyperModel

    meta = data_info(data, seed=seed)
    hm = MultiplierHyperModel(name, max_macs=max_macs, max_params=max_params,
                              classes=meta.num_classes, channels=meta.input_shape[-1],
                              base_size=base_size, grid=grid, ranges=ranges, phi=phi)
    name = hm.model_name
    n_points = _finite_size(hm)
    suffix = "" if algorithm == "grid" else f"_{algorithm}"  # grid: the name it always had
    project = project_name or f"{name}_{data}{suffix}".replace(":", "_").replace("/", "_")
    log = (lambda m: print(m, flush=True)) if verbose else None
    if log:
        space = (f"{n_points} configurations under the budget" if n_points is not None
                 else "continuous ranges")
        over = ", ".join(sorted(hm.rejected)) or "none"
        log(f"{name}: {algorithm} search over {space} ({over} rejected before building)")
    tuner = make_tuner(algorithm, hm, objective=_objective(), epochs=epochs, seed=seed,
                       max_trials=max_trials or (samples if ranges else None),
                       directory=directory, project_name=project, overwrite=overwrite,
                       tuner_class=_training_tuner_class(algorithm))
    tuner._ctx = dict(hypermodel=hm, data=data, objective=objective, cost=cost, target=target,
                      epochs=epochs, seed=seed, train_kwargs=train_kwargs, log=log,
                      max_latency_ms=max_latency_ms)
    tuner.local_rows = []
    tuner.search(verbose=0)
    rejected = [hm.pricer.priced(c).as_dict() for _, c in sorted(hm.rejected.items())]
    if type(tuner.oracle).__name__ == "OracleClient":  # a worker: the chief holds the results
        rows = tuner.local_rows
        return SearchResult(trials=rows, front=pareto_front(rows, cost=cost), best=None,
                            rejected=rejected, export_path=None, plot_path=None,
                            wall_time_s=time.perf_counter() - start, cost=cost)

    rows = []
    for trial in tuner.oracle.trials.values():
        if trial.status != "COMPLETED":
            continue
        c = hm.pricer.priced(hm.config(trial.hyperparameters.values))
        m = {k: float(trial.metrics.get_last_value(k)) for k in
             ("score", "accuracy", "top5_accuracy", "latency_ms", "train_s", "epochs")}
        rows.append({**c.as_dict(), **m, "trial_id": trial.trial_id})
    rows.sort(key=lambda r: r["trial_id"])
    front = pareto_front(rows, cost=cost)
    best = max(rows, key=lambda r: r["score"]) if rows else None
    project_dir = os.path.join(directory, project)
    plot_path = _plot(rows, front, cost, project_dir, name) if (plot and rows) else None
    with open(os.path.join(project_dir, "results.json"), "w") as f:
        json.dump({"trials": rows, "front": front, "rejected": rejected, "cost": cost,
                   "objective": objective, "algorithm": algorithm}, f, indent=1)
    export_path = None
    if export_dir and best is not None:
        import keras_cnns
        from keras_cnns.export import export_saved_model

        c = hm.config(_values_of(tuner, best))
        model = keras_cnns.create_model(name, input_shape=(c.side, c.side, c.channels),
                                        classes=c.classes, **c.kwargs)
        model.load_weights(os.path.join(tuner.get_trial_dir(best["trial_id"]),
                                        "model.weights.h5"))
        export_path = export_saved_model(model, base_dir=export_dir, model_name=f"{name}_tuned",
                                         metadata={"tuning": best, **meta.metadata()},
                                         print_commands=False)
    result = SearchResult(trials=rows, front=front, best=best, rejected=rejected,
                          export_path=export_path, plot_path=plot_path,
                          wall_time_s=time.perf_counter() - start, cost=cost)
    if log:
        log("\nPareto front (accuracy against " + cost + "):\n" + result.table())
    return result


def _objective():
    import keras_tuner as kt

    return kt.Objective("score", "max")


def _values_of(tuner, row):
    return dict(tuner.oracle.get_trial(row["trial_id"]).hyperparameters.values)


def _plot(rows, front, cost, directory, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = 1e6 if cost == "macs" else 1.0
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter([r[cost] / scale for r in rows], [r["accuracy"] for r in rows], c="0.6",
               label="trials")
    ax.plot([r[cost] / scale for r in front], [r["accuracy"] for r in front], "o-", c="C0",
            label="Pareto front")
    for r in front:
        ax.annotate(r["config"].replace(" side=", "\n"), (r[cost] / scale, r["accuracy"]),
                    fontsize=6)
    ax.set(xlabel={"macs": "M multiply-adds", "params": "parameters",
                   "latency_ms": "ms per image"}[cost], ylabel="held-out top-1",
           title=f"{name}: accuracy against cost")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(directory, "pareto.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
