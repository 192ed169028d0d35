"""Keras Tuner search of a model's multipliers (width ``alpha``, resolution ``rho``, ``scale``)
under a cost budget, with the Pareto front of accuracy against cost.

Design:

* The search space is the model family's multipliers from the registry
  (``model_info(name).multipliers()``, the papers' grids; ``ranges=True`` draws continuous values
  instead). Every configuration is costed first -- multiply-adds by the family's closed form where
  there is one (MobileNet: the paper's eq. 7), otherwise by the profiler on a build that
  allocates no weights; parameters likewise -- and those over the budget never enter the Keras
  Tuner space: no trial is spent on them, and none of them is built with weights.
* The space is one ``hp.Choice("config", ...)`` over the configurations under the budget; a
  Keras Tuner oracle proposes each once, in grid order or (``algorithm="random"``) a seeded
  random order, up to ``max_trials``.
  Each trial trains the configuration with :func:`keras_cnns.training.train` and reports
  accuracy, multiply-adds, parameters, batch-1 latency and the score; Keras Tuner keeps them all
  per trial (its own multi-objective is an unweighted sum, so the score is computed here).
* Objective ``"accuracy"``: held-out top-1 under the budget. ``"tradeoff"``: MnasNet's
  (Tan et al. 2019, eq. 2) ``accuracy * (cost / target) ** w`` with ``w = -0.07``.
* A measured latency budget (``max_latency_ms``) is checked on the built model before training;
  over it, the trial fails without training (``FailedTrialError``).
* Resuming (``overwrite=False``, the default) reloads the project directory: completed trials are
  not rerun. Keras Tuner's chief/worker mode (``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``,
  ``KERASTUNER_ORACLE_PORT``) distributes the trials.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from keras_cnns._checks import fail, is_int

__all__ = ["Config", "SearchResult", "candidate_configs", "pareto_front", "search",
           "OBJECTIVES", "COSTS"]

OBJECTIVES = ("accuracy", "tradeoff")
COSTS = ("macs", "params", "latency_ms")
MNAS_W = -0.07


@dataclasses.dataclass(frozen=True)
class Config:
    """One point of the search space, with its cost computed before any build."""

    label: str
    kwargs: Dict[str, float]
    side: int
    channels: int
    classes: int
    macs: int
    params: int

    def as_dict(self):
        return {"config": self.label, **self.kwargs, "side": self.side, "macs": self.macs,
                "params": self.params}


def _label(kwargs, side):
    return " ".join(f"{k}={v:.3g}" for k, v in kwargs.items()) + f" side={side}"


def candidate_configs(name: str, base_size: Optional[int] = None, classes: int = 10,
                      channels: Optional[int] = None, grid: Optional[Dict[str, Sequence]] = None,
                      ranges: bool = False, samples: int = 12, seed: int = 0,
                      phi: Optional[int] = None) -> List[Config]:
    """Every configuration of ``name``'s multipliers with its multiply-adds and parameters.

    ``rho`` sets the input side ``round(rho * base_size)`` (``base_size``: the model's default
    side, e.g. 224; smaller for small images); without ``rho`` the side is ``base_size``.
    ``ranges=True`` draws ``samples`` configurations uniformly between each grid's extremes.
    EfficientNet (a ``compound`` family): the grid over ``alpha, beta, gamma`` is filtered by
    ``|alpha * beta^2 * gamma^2 - 2| <= 0.1`` and scaled by ``phi`` (default 1).
    """
    from keras_cnns.models import model_info
    from keras_cnns.tuning.cost import CLOSED_FORMS, profiled_cost

    info = model_info(name)
    spec = info.multipliers()
    if not spec:
        fail("model", f"has no multipliers to tune ({info.name!r}, family {info.family}); "
             "tunable families: MobileNet, MobileNetV2, ShuffleNet, ShuffleNetV2", name)
    space = dict(spec["grid"])
    if grid is not None:
        if not isinstance(grid, dict) or set(grid) - set(space) or not grid:
            fail("grid", f"must be a dict over {sorted(space)}", grid)
        space.update({k: tuple(float(x) for x in v) for k, v in grid.items()})
    base = base_size or info.default_input_shape[0]
    if not is_int(base) or base < 1:
        fail("base_size", "must be a positive integer", base_size)
    channels = channels or info.default_input_shape[-1]
    keys = sorted(space)
    if ranges:
        rng = np.random.default_rng(seed)
        points = [tuple(float(rng.uniform(min(space[k]), max(space[k]))) for k in keys)
                  for _ in range(samples)]
    else:
        points = list(itertools.product(*(space[k] for k in keys)))
    closed = CLOSED_FORMS.get(spec.get("closed_form"))
    configs, seen, params_cache = [], set(), {}
    compound = spec.get("compound")
    if phi is not None and (not is_int(phi) or phi < 0):
        fail("phi", "must be a non-negative integer (EfficientNet's compound coefficient)", phi)
    for values in points:
        kwargs = dict(zip(keys, (float(v) for v in values)))
        if compound is not None:  # EfficientNet: alpha (depth), beta (width), gamma (resolution)
            a, b, g = kwargs["alpha"], kwargs["beta"], kwargs["gamma"]
            if abs(a * b * b * g * g - compound["target"]) > compound["tolerance"]:
                continue  # off the FLOPS constraint alpha * beta^2 * gamma^2 ~ 2
            p = compound["phi"] if phi is None else phi
            kwargs = {"depth": round(a ** p, 4), "width": round(b ** p, 4)}
            side = int(round(base * g ** p))
            rho = None
        else:
            rho = kwargs.pop("rho", None)
            side = int(round(rho * base)) if rho is not None else int(base)
        if side < info.min_input_size:
            continue  # the architecture cannot take it
        label = _label(kwargs, side)
        if label in seen:
            continue
        seen.add(label)
        probe = Config(label, kwargs, side, channels, classes, 0, 0)
        if closed is not None:  # MACs in closed form; parameters do not depend on the side
            key = tuple(sorted(kwargs.items()))
            if key not in params_cache:
                params_cache[key] = profiled_cost(info.name, kwargs, info.min_input_size,
                                                  channels, classes)[1]
            macs, params = closed(probe), params_cache[key]
        else:
            macs, params = profiled_cost(info.name, kwargs, side, channels, classes)
        configs.append(dataclasses.replace(probe, macs=macs, params=params))
    return configs


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


def _latency_ms(model, side, channels, reps=10):
    import tensorflow as tf

    x = tf.zeros([1, side, side, channels])
    fn = tf.function(lambda t: model(t, training=False))
    fn(x)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def _make_tuner(kt, name, configs, data, objective, cost, target, epochs, seed, train_kwargs,
                max_latency_ms, log, algorithm, max_trials, directory, project, overwrite):
    by_label = {c.label: c for c in configs}
    labels = [c.label for c in configs]

    class MultiplierHyperModel(kt.HyperModel):
        """``hp.Choice("config")`` over the configurations under the budget; ``build`` returns
        the configuration's compiled model."""

        def declare_hyperparameters(self, hp):
            hp.Choice("config", labels, ordered=False)

        def build(self, hp):
            import keras_cnns
            from keras_cnns.models.heads import output_specs

            c = by_label[hp.get("config")]
            model = keras_cnns.create_model(name, input_shape=(c.side, c.side, c.channels),
                                            classes=c.classes, **c.kwargs)
            specs = output_specs(model)
            if len(specs) == 1:
                model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                              metrics=["accuracy"])
            else:  # one loss per output, with its weight (auxiliary classifiers)
                model.compile(optimizer="adam",
                              loss=["sparse_categorical_crossentropy"] * len(specs),
                              loss_weights=[s.loss_weight for s in specs],
                              metrics=[["accuracy"] for _ in specs])
            return model

    order = list(labels)
    if algorithm == "random":
        np.random.default_rng(seed).shuffle(order)

    class ConfigOracle(kt.Oracle):
        """Each configuration once, in grid (or seeded random) order. Keras Tuner's own
        GridSearchOracle cannot resume: its order of trials is not saved with its state (KeyError
        in ``_ordered_ids.next`` after a reload), so this oracle derives it from the trials."""

        def populate_space(self, trial_id):
            used = {t.hyperparameters.values.get("config") for tid, t in self.trials.items()
                    if tid != trial_id}
            for label in order:
                if label not in used:
                    return {"status": kt.engine.trial.TrialStatus.RUNNING,
                            "values": {"config": label}}
            if self.ongoing_trials:
                return {"status": kt.engine.trial.TrialStatus.IDLE, "values": None}
            return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}

    class MultiplierTuner(kt.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            from keras_cnns.training import train
            import keras_cnns

            c = by_label[trial.hyperparameters.get("config")]
            start = time.perf_counter()
            if log:
                log(f"trial {trial.trial_id}: {c.label} ({c.macs / 1e6:.2f} M MACs, "
                    f"{c.params:,} params) ...")
            probe = keras_cnns.create_model(name, input_shape=(c.side, c.side, c.channels),
                                            classes=c.classes, **c.kwargs)
            latency = _latency_ms(probe, c.side, c.channels)
            del probe
            if max_latency_ms is not None and latency > max_latency_ms:
                raise kt.errors.FailedTrialError(
                    f"{c.label}: {latency:.2f} ms per image > the {max_latency_ms} ms budget "
                    "(measured before training)")
            result = train(name, data, model_kwargs=dict(c.kwargs), image_size=c.side,
                           epochs=epochs, seed=seed, verbose=0, **train_kwargs)
            acc = float(result.val_accuracy)
            value = {"macs": c.macs, "params": c.params, "latency_ms": latency}[cost]
            score = acc if objective == "accuracy" else acc * (value / target) ** MNAS_W
            metrics = {"score": score, "accuracy": acc, "top5_accuracy":
                       float(result.val_top5_accuracy), "macs": float(c.macs),
                       "params": float(c.params), "latency_ms": latency,
                       "train_s": time.perf_counter() - start}
            path = os.path.join(self.get_trial_dir(trial.trial_id), "model.weights.h5")
            result.model.save_weights(path)
            if log:
                log(f"trial {trial.trial_id}: {c.label}: top-1 {acc:.3f}, score {score:.4f}, "
                    f"{metrics['train_s']:.1f} s")
            self.local_rows.append({**c.as_dict(), **metrics, "trial_id": trial.trial_id})
            return metrics

    oracle = ConfigOracle(objective=kt.Objective("score", "max"),
                          max_trials=min(max_trials or len(configs), len(configs)), seed=seed)
    tuner = MultiplierTuner(oracle=oracle, hypermodel=MultiplierHyperModel(),
                            directory=directory, project_name=project, overwrite=overwrite)
    tuner.local_rows = []
    return tuner, by_label


def search(name: str, data: Any = "digits", *, max_macs: Optional[float] = None,
           max_params: Optional[float] = None, max_latency_ms: Optional[float] = None,
           objective: str = "accuracy", target: Optional[float] = None,
           cost: Optional[str] = None, base_size: Optional[int] = None,
           grid: Optional[Dict[str, Sequence]] = None, ranges: bool = False, samples: int = 12,
           phi: Optional[int] = None, algorithm: str = "grid", max_trials: Optional[int] = None, epochs: int = 3,
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
        algorithm: ``"grid"`` (every configuration under the budget) or ``"random"``.
        max_trials: at most this many trials (default: all).
        epochs: training epochs per trial; ``**train_kwargs`` go to
            :func:`keras_cnns.training.train` (``steps_per_epoch``, ``batch_size``, ...).
        directory, project_name, overwrite: Keras Tuner's project (resumed unless
            ``overwrite``).
        export_dir: export the best trial's model as a SavedModel there.
        plot: write ``pareto.png`` into the project directory.

    Raises:
        ValueError: an unknown model, a model without multipliers, an unknown objective or
            cost, a budget no configuration meets -- all before any trial runs.
    """
    import keras_tuner as kt

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
    if algorithm not in ("grid", "random"):
        fail("algorithm", "must be 'grid' or 'random'", algorithm)
    if not is_int(epochs) or epochs < 1:
        fail("epochs", "must be a positive integer", epochs)
    if max_trials is not None and (not is_int(max_trials) or max_trials < 1):
        fail("max_trials", "must be None or a positive integer", max_trials)
    from keras_cnns.data import info as data_info

    meta = data_info(data, seed=seed)
    configs = candidate_configs(name, base_size=base_size, classes=meta.num_classes,
                                channels=meta.input_shape[-1], grid=grid, ranges=ranges,
                                samples=samples, seed=seed, phi=phi)
    allowed, rejected = [], []
    for c in configs:
        over = ((max_macs is not None and c.macs > max_macs)
                or (max_params is not None and c.params > max_params))
        (rejected if over else allowed).append(c)
    if not allowed:
        cheapest = min(configs, key=lambda c: (c.macs, c.params)) if configs else None
        fail("max_macs" if max_macs is not None else "max_params",
             f"is met by no configuration of {name} (the cheapest, "
             f"{cheapest.label if cheapest else '-'}, needs "
             f"{cheapest.macs if cheapest else 0:,} MACs and "
             f"{cheapest.params if cheapest else 0:,} parameters)",
             max_macs if max_macs is not None else max_params)
    if target is None:
        target = {"macs": max_macs, "params": max_params, "latency_ms": max_latency_ms}[cost]
        if target is None and objective == "tradeoff":
            fail("target", "must be given for objective='tradeoff' without a budget on "
                 f"{cost!r}", target)
    project = project_name or f"{name}_{data}".replace(":", "_").replace("/", "_")
    log = (lambda m: print(m, flush=True)) if verbose else None
    if log:
        log(f"{name}: {len(allowed)} of {len(configs)} configurations under the budget "
            f"({', '.join(c.label for c in rejected) or 'none'} rejected before building)")
    tuner, by_label = _make_tuner(kt, name, allowed, data, objective, cost, target, epochs,
                                  seed, train_kwargs, max_latency_ms, log, algorithm,
                                  max_trials, directory, project, overwrite)
    tuner.search(verbose=0)
    if type(tuner.oracle).__name__ == "OracleClient":  # a worker: the chief holds the results
        rows = tuner.local_rows
        return SearchResult(trials=rows, front=pareto_front(rows, cost=cost), best=None,
                            rejected=[c.as_dict() for c in rejected], export_path=None,
                            plot_path=None, wall_time_s=time.perf_counter() - start, cost=cost)

    rows = []
    for trial in tuner.oracle.trials.values():
        if trial.status != "COMPLETED":
            continue
        c = by_label[trial.hyperparameters.get("config")]
        m = {k: float(trial.metrics.get_last_value(k)) for k in
             ("score", "accuracy", "top5_accuracy", "latency_ms", "train_s")}
        rows.append({**c.as_dict(), **m, "trial_id": trial.trial_id})
    rows.sort(key=lambda r: r["trial_id"])
    front = pareto_front(rows, cost=cost)
    best = max(rows, key=lambda r: r["score"]) if rows else None
    project_dir = os.path.join(directory, project)
    plot_path = _plot(rows, front, cost, project_dir, name) if (plot and rows) else None
    with open(os.path.join(project_dir, "results.json"), "w") as f:
        json.dump({"trials": rows, "front": front, "rejected": [c.as_dict() for c in rejected],
                   "cost": cost, "objective": objective}, f, indent=1)
    export_path = None
    if export_dir and best is not None:
        import keras_cnns
        from keras_cnns.export import export_saved_model

        c = by_label[best["config"]]
        model = keras_cnns.create_model(name, input_shape=(c.side, c.side, c.channels),
                                        classes=c.classes, **c.kwargs)
        model.load_weights(os.path.join(tuner.get_trial_dir(best["trial_id"]),
                                        "model.weights.h5"))
        export_path = export_saved_model(model, base_dir=export_dir, model_name=f"{name}_tuned",
                                         metadata={"tuning": best, **meta.metadata()},
                                         print_commands=False)
    result = SearchResult(trials=rows, front=front, best=best,
                          rejected=[c.as_dict() for c in rejected], export_path=export_path,
                          plot_path=plot_path, wall_time_s=time.perf_counter() - start,
                          cost=cost)
    if log:
        log("\nPareto front (accuracy against " + cost + "):\n" + result.table())
    return result


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
