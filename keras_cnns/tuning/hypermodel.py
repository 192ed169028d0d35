"""A public, budget-aware Keras Tuner ``HyperModel`` of a family's multipliers, and the oracle
guard that makes every Keras Tuner algorithm honour its budget.

* :class:`MultiplierHyperModel` -- each multiplier the family declares in the registry
  (MobileNet ``alpha`` and ``rho``, ShuffleNet ``scale``, EfficientNet's ``alpha, beta, gamma``
  ...) is its own hyperparameter: an ordered ``hp.Choice`` on the paper's grid (default) or an
  ``hp.Float`` between the grid's extremes (``ranges=True``), so Bayesian optimisation and
  Hyperband see a real, ordered space. ``rho`` (and EfficientNet's ``gamma``) set the input side;
  :meth:`MultiplierHyperModel.fit` resizes the data to it, so the user's datasets stay as they
  are.
* :func:`budgeted` -- the budget as a constraint of the oracle: every proposal is priced before it
  becomes a trial (closed form, or the profiler on a weight-free build) and one over the budget is
  drawn again; it never becomes a trial, so it is never built with weights, never trained and
  does not count against ``max_trials``. The hypermodel installs the guard itself on the tuner
  that adopts it (``kt.RandomSearch``, ``kt.GridSearch``, ``kt.BayesianOptimization``,
  ``kt.Hyperband`` or a subclass); call ``budgeted(tuner)`` explicitly for a chief that reloads a
  project (it proposes before it ever builds).

Per algorithm: random search and Hyperband's new configurations are drawn among the untried
points under the budget (finite spaces: uniformly among them, exactly; ``hp.Float`` spaces:
rejection sampling); Hyperband's promotions are past trials, under the budget by construction.
Grid search enumerates the points under the budget in grid order, skipping those of existing
trials (so, unlike Keras Tuner's own grid oracle, it resumes), and stops when they are exhausted.
Bayesian optimisation's Gaussian process only ever sees trials under the budget; when its
acquisition optimum is over the budget (or, in a finite space, already tried), the proposal is
the feasible untried point of best acquisition (upper confidence bound) instead.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
from typing import Any, Dict, List, Optional, Sequence

import keras_tuner as kt
import numpy as np

from keras_cnns._checks import fail, is_int
from keras_cnns.tuning._state_files import atomic_keras_tuner_writes
from keras_cnns.tuning.space import Config, Pricer, make_config, resolve_space

__all__ = ["MultiplierHyperModel", "adapt_images", "budgeted", "latency_ms", "trial_rows"]

_MAX_POINTS = 20000  # larger finite spaces are sampled like continuous ones
_DRAWS = 200  # rejection-sampling attempts for one continuous proposal
_ACQUISITION_CANDIDATES = 32


def _check_budget(arg, v):
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                          or not math.isfinite(v) or v <= 0):
        fail(arg, "must be None or a positive number", v)


class MultiplierHyperModel(kt.HyperModel):
    """A registered model's multipliers as a Keras Tuner search space, under a cost budget.

    Each multiplier of the family (``model_info(name).multipliers()``) is one hyperparameter of
    the same name: ``hp.Choice(name, grid, ordered=True)`` on the paper's grid, or with
    ``ranges=True`` ``hp.Float(name, min(grid), max(grid))``. ``rho`` maps to the input side
    ``round(rho * base_size)``; EfficientNet's ``alpha, beta, gamma`` to ``depth = alpha^phi``,
    ``width = beta^phi`` at side ``round(base_size * gamma^phi)``, points off its constraint
    ``alpha * beta^2 * gamma^2 ~ 2`` being infeasible like those over the budget.

    A tuner that adopts this hypermodel proposes only configurations under ``max_macs`` /
    ``max_params`` (see :func:`budgeted`); ``max_latency_ms`` (batch 1, this machine) can only be
    measured on a built model: a configuration over it fails its trial before training and is
    never proposed again.

    Example (a plain Keras Tuner flow; tiny: about 30 s on a 2-core CPU)::

        import keras_tuner as kt
        from keras_cnns.data import load_digits
        from keras_cnns.tuning import MultiplierHyperModel

        digits = load_digits(image_size=32, batch_size=64)         # the user's data, one size
        hypermodel = MultiplierHyperModel("mobilenet", max_macs=1.2e6, classes=10,
                                          base_size=48, grid={"alpha": (0.25, 0.5)})
        tuner = kt.BayesianOptimization(hypermodel=hypermodel, objective="val_accuracy",
                                        max_trials=3, directory="/tmp/kt", overwrite=True)
        tuner.search(digits.train, validation_data=digits.val, epochs=1, verbose=0)
        best = tuner.get_best_models(1)[0]      # built at its own side, e.g. 34 x 34
        print(best.input_shape, tuner.get_best_hyperparameters()[0].values)

    Args:
        model_name: a registered model whose family declares multipliers.
        max_macs, max_params: budgets checked before any build (closed form / weight-free).
        max_latency_ms: batch-1 latency budget, measured on the built model before training.
        classes: number of classes of the classifier.
        channels: input channels the models are built with (the data are adapted: grey images
            are repeated to 3 channels).
        base_size: the side ``rho = 1`` (``gamma = 1``) stands for; default the model's (224).
        grid: ``{multiplier: values}`` replacing the registry's grid for some multipliers.
        ranges: ``hp.Float`` between each grid's extremes instead of the grid's choices.
        phi: EfficientNet's compound coefficient (default the registry's 1).
        optimizer, learning_rate: what each built model is compiled with (Adam, 1e-3).
        compile_kwargs: more ``model.compile`` arguments (e.g. ``run_eagerly=True``: for trials
            of a few steps, eager execution is several times faster than tracing the graph).
        precise_bn: before every evaluation in ``fit``, recalibrate BatchNorm statistics on this
            many training batches (:class:`keras_cnns.training.PreciseBatchNorm`, as
            :func:`keras_cnns.training.train` does): after a few epochs Keras' moving averages
            lag the weights, and MobileNet's held-out accuracy collapses to chance without it
            (measured on the digits, alpha 0.25 at 37 px, 2 epochs: held-out 0.10 with the
            moving averages, 0.78 recalibrated). ``None``: off.
        name, tunable: as for ``keras_tuner.HyperModel``.

    Raises:
        ValueError (at construction, before any trial): an unknown model, a model without
            multipliers, a bad grid or budget, a budget no configuration meets.
    """

    def __init__(self, model_name: str, *, max_macs: Optional[float] = None,
                 max_params: Optional[float] = None, max_latency_ms: Optional[float] = None,
                 classes: int, channels: int = 3, base_size: Optional[int] = None,
                 grid: Optional[Dict[str, Sequence[float]]] = None, ranges: bool = False,
                 phi: Optional[int] = None, optimizer: str = "adam",
                 learning_rate: float = 1e-3, compile_kwargs: Optional[Dict[str, Any]] = None,
                 precise_bn: Optional[int] = 10, name: Optional[str] = None,
                 tunable: bool = True):
        for arg, v in (("max_macs", max_macs), ("max_params", max_params),
                       ("max_latency_ms", max_latency_ms)):
            _check_budget(arg, v)
        if not is_int(classes) or classes < 1:
            fail("classes", "must be a positive integer", classes)
        if not isinstance(ranges, bool):
            fail("ranges", "must be True or False", ranges)
        _check_budget("learning_rate", learning_rate)
        if learning_rate is None:
            fail("learning_rate", "must be a positive number", learning_rate)
        info, spec, space, base, channels, phi = resolve_space(model_name, grid, base_size,
                                                               channels, phi)
        super().__init__(name=name or f"{info.name}_multipliers", tunable=tunable)
        self.model_name = info.name
        self.info, self.spec, self.space = info, spec, space
        self.base_size, self.channels, self.classes, self.phi = base, channels, classes, phi
        self.ranges = ranges
        self.max_macs, self.max_params, self.max_latency_ms = max_macs, max_params, max_latency_ms
        self.optimizer, self.learning_rate = optimizer, learning_rate
        if compile_kwargs is not None and not isinstance(compile_kwargs, dict):
            fail("compile_kwargs", "must be None or a dict of model.compile arguments",
                 compile_kwargs)
        self.compile_kwargs = dict(compile_kwargs or {})
        if precise_bn is not None and (not is_int(precise_bn) or precise_bn < 1):
            fail("precise_bn", "must be None or a positive number of batches", precise_bn)
        self.precise_bn = precise_bn
        self.pricer = Pricer(info, spec)
        self.latency_over: Dict[str, float] = {}  # label -> measured ms (over the budget)
        self.rejected: Dict[str, Config] = {}  # priced configurations over the budget
        grid_points = [dict(zip(space, v)) for v in itertools.product(*space.values())]
        feasible = [p for p in grid_points if self.fits(p)]
        if not feasible:
            configs = [c for c in (self.config(p) for p in grid_points) if c is not None]
            cheapest = min(configs, key=lambda c: (self.pricer.macs(c), self.pricer.params(c))) \
                if configs else None
            what = (f"the cheapest, {cheapest.label}, needs {self.pricer.macs(cheapest):,} MACs "
                    f"and {self.pricer.params(cheapest):,} parameters" if cheapest else
                    f"no point of the grid fits the architecture at base_size={base}")
            arg = "max_macs" if max_macs is not None else (
                "max_params" if max_params is not None else "grid")
            fail(arg, f"is met by no configuration of {info.name} ({what})",
                 {"max_macs": max_macs, "max_params": max_params, "grid": grid}[arg])

    # -- the space ---------------------------------------------------------------------------
    def _declare(self, hp) -> Dict[str, float]:
        values = {}
        for k, grid in self.space.items():
            if len(set(grid)) == 1:
                values[k] = hp.Fixed(k, float(grid[0]))
            elif self.ranges:
                values[k] = hp.Float(k, float(min(grid)), float(max(grid)))
            else:
                values[k] = hp.Choice(k, sorted(float(v) for v in set(grid)), ordered=True)
        return values

    def declare_hyperparameters(self, hp):
        self._declare(hp)
        tuner, _ = self._find_tuner()
        if tuner is not None:
            budgeted(tuner, self)

    def config(self, values: Dict[str, Any]) -> Optional[Config]:
        """The :class:`Config` (unpriced) of a point (extra keys, e.g. ``tuner/epochs``, are
        ignored), or ``None`` where the architecture cannot take it."""
        point = {k: values[k] for k in self.space if k in values}
        if len(point) != len(self.space):
            return None
        return make_config(self.info, self.spec, point, self.base_size, self.channels,
                           self.classes, self.phi)

    def priced(self, values: Dict[str, Any]) -> Optional[Config]:
        c = self.config(values)
        return None if c is None else self.pricer.priced(c)

    def check(self, values: Dict[str, Any]):
        """``(fits, reason, config)``: whether a point is feasible and under the budget, costing
        only what the budget needs (no build with weights)."""
        c = self.config(values)
        if c is None:
            return False, "the architecture cannot take it (input side or constraint)", None
        if self.max_macs is not None and self.pricer.macs(c) > self.max_macs:
            self.rejected[c.label] = c
            return False, (f"{c.label}: {self.pricer.macs(c):,} MACs > the budget "
                           f"{self.max_macs:,.0f}"), c
        if self.max_params is not None and self.pricer.params(c) > self.max_params:
            self.rejected[c.label] = c
            return False, (f"{c.label}: {self.pricer.params(c):,} parameters > the budget "
                           f"{self.max_params:,.0f}"), c
        if c.label in self.latency_over:
            return False, (f"{c.label}: {self.latency_over[c.label]:.2f} ms per image > the "
                           f"budget {self.max_latency_ms} ms"), c
        return True, "", c

    def fits(self, values: Dict[str, Any]) -> bool:
        return self.check(values)[0]

    # -- Keras Tuner -------------------------------------------------------------------------
    def _find_tuner(self):
        """The Keras Tuner tuner calling this hypermodel (from the call stack), and whether the
        call is its construction-time probe of the space (no model is needed then)."""
        frame = sys._getframe(2)
        for _ in range(40):
            if frame is None:
                break
            owner = frame.f_locals.get("self")
            if isinstance(owner, kt.engine.base_tuner.BaseTuner) and owner.hypermodel is self:
                return owner, frame.f_code.co_name in ("_activate_all_conditions",
                                                       "_populate_initial_space")
            frame = frame.f_back
        return None, False

    def build(self, hp):
        """The compiled model of the trial's multipliers; never one over the budget."""
        import keras
        import keras_cnns
        from keras_cnns.models.heads import output_specs

        values = self._declare(hp)
        tuner, probing = self._find_tuner()
        if probing:
            return None  # Keras Tuner's probe for conditional hyperparameters: nothing to build
        if tuner is not None:
            budgeted(tuner, self)
        ok, reason, c = self.check(values)
        if not ok:  # only from an oracle the guard was not on yet (a reloaded project)
            draw = getattr(getattr(tuner, "oracle", None), "_budget_draw", None)
            new = draw() if draw is not None else None
            if new is None:
                raise kt.errors.FailedTrialError(f"over the budget, not built: {reason}")
            hp.values.update(new)  # the trial records the point it really trains
            values = {k: new[k] for k in self.space}
            c = self.config(values)
        model = keras_cnns.create_model(self.model_name,
                                        input_shape=(c.side, c.side, c.channels),
                                        classes=c.classes, **c.kwargs)
        if self.max_latency_ms is not None:
            ms = latency_ms(model, c.side, c.channels)
            if ms > self.max_latency_ms:
                self.latency_over[c.label] = ms
                raise kt.errors.FailedTrialError(
                    f"{c.label}: {ms:.2f} ms per image > the {self.max_latency_ms} ms budget "
                    "(measured before training)")
        specs = output_specs(model)
        optimizer = type(keras.optimizers.get(self.optimizer))(learning_rate=self.learning_rate)
        if len(specs) == 1:
            model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"], **self.compile_kwargs)
        else:  # one loss per output, with its weight (auxiliary classifiers)
            model.compile(optimizer=optimizer,
                          loss=["sparse_categorical_crossentropy"] * len(specs),
                          loss_weights=[s.loss_weight for s in specs],
                          metrics=[["accuracy"] for _ in specs], **self.compile_kwargs)
        return model

    def fit(self, hp, model, *args, **kwargs):
        """``model.fit`` on the data resized to the trial's side (``tf.data.Dataset`` of
        ``(images, labels[, weights])`` or arrays, ``validation_data`` too); grey images are
        repeated to the model's channels. Before every evaluation, BatchNorm statistics are
        recalibrated on ``precise_bn`` training batches."""
        side, channels = int(model.input_shape[1]), int(model.input_shape[-1])
        if args:
            args = (adapt_images(args[0], side, channels),) + tuple(args[1:])
            x = args[0]
        elif "x" in kwargs:
            kwargs["x"] = x = adapt_images(kwargs["x"], side, channels)
        else:
            x = None
        if self.precise_bn and x is not None:
            import tensorflow as tf

            from keras_cnns.training import PreciseBatchNorm

            if not isinstance(x, tf.data.Dataset):  # arrays: batches of the fit's batch size
                y = args[1] if len(args) > 1 else kwargs.get("y")
                x = tf.data.Dataset.from_tensor_slices((x, y) if y is not None else x).batch(
                    kwargs.get("batch_size") or 32)
            kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [
                PreciseBatchNorm(x, max_batches=self.precise_bn)]
        val = kwargs.get("validation_data")
        if isinstance(val, (tuple, list)):
            kwargs["validation_data"] = (adapt_images(val[0], side, channels),) + tuple(val[1:])
        elif val is not None:
            kwargs["validation_data"] = adapt_images(val, side, channels)
        return model.fit(*args, **kwargs)


def _resize(images, side, channels):
    import tensorflow as tf

    x = tf.convert_to_tensor(images)
    if x.dtype != tf.float32:
        x = tf.cast(x, tf.float32)
    if x.shape.rank == 3:  # (N, H, W): grey without a channel axis
        x = x[..., None]
    if x.shape[1] != side or x.shape[2] != side:
        x = tf.image.resize(x, (side, side))
    if x.shape[-1] == 1 and channels != 1:
        x = tf.repeat(x, channels, axis=-1)
    return x


def adapt_images(data, side: int, channels: int):
    """Images (arrays, or the first element of a ``tf.data.Dataset``'s tuples) resized to
    ``side x side`` with ``channels`` channels; anything else is returned as it is."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if isinstance(spec, tuple):
            return data.map(lambda x, *rest: (_resize(x, side, channels), *rest),
                            num_parallel_calls=tf.data.AUTOTUNE)
        return data.map(lambda x: _resize(x, side, channels),
                        num_parallel_calls=tf.data.AUTOTUNE)
    if isinstance(data, (np.ndarray, tf.Tensor)) and len(data.shape) in (3, 4):
        return _resize(data, side, channels)
    return data


def latency_ms(model, side, channels, reps=10):
    """Median batch-1 latency of ``model`` on this machine, in milliseconds."""
    import time

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


# ----------------------------------------------------------------------------------------------
# The oracle guard
# ----------------------------------------------------------------------------------------------

class _BudgetGuard:
    """Mixed into a Keras Tuner oracle's class (see :func:`budgeted`)."""

    _budget_hm: Optional[MultiplierHyperModel] = None

    def _budget_points(self, grid: bool = False) -> Optional[List[Dict[str, Any]]]:
        """Every point of the oracle's space under the budget, in grid order; ``None`` for a
        continuous (or very large, or conditional) space."""
        hp_mod = kt.engine.hyperparameters
        lists, names = [], []
        for hp in self.hyperparameters.space:
            if hp.conditions:
                return None
            if isinstance(hp, hp_mod.Fixed):
                values = [hp.value]
            elif isinstance(hp, hp_mod.Boolean):
                values = [False, True]
            elif isinstance(hp, hp_mod.Choice):
                values = list(hp.values)
            elif isinstance(hp, (hp_mod.Int, hp_mod.Float)) and (grid or hp.step is not None):
                values = list(hp.values)
            else:
                return None
            names.append(hp.name)
            lists.append(values)
        if math.prod(len(v) for v in lists) > _MAX_POINTS:
            return None
        key = (grid, tuple(names), tuple(tuple(v) for v in lists))
        cache = self.__dict__.setdefault("_budget_cache", {})
        if key not in cache:
            hm = self._budget_hm
            points = (dict(zip(names, combo)) for combo in itertools.product(*lists))
            cache[key] = [p for p in points if hm.fits(p)]
        return cache[key]

    def _untried(self, points):
        return [p for p in points if self._compute_values_hash(p) not in self._tried_so_far]

    def _random_values(self):
        points = self._budget_points()
        if points is not None:
            left = self._untried(points)
            if not left:
                return None  # every point under the budget was tried
            rng = random.Random(self._seed_state)
            self._seed_state += 1
            return dict(rng.choice(left))
        for _ in range(_DRAWS):
            values = super()._random_values()
            if values is None or self._budget_hm.fits(values):
                return values
        return None

    def _get_size(self, bracket_num, round_num):
        """Hyperband: a round holds at most as many trials as there are points under the budget
        (otherwise a small space runs out of new points in the first round and the bracket
        stops before promoting anything)."""
        size = super()._get_size(bracket_num, round_num)
        points = self._budget_points() if self._budget_hm is not None else None
        return min(size, len(points)) if points else size

    def _budget_draw(self):
        """A point under the budget for a trial proposed without the guard (reloaded project)."""
        return self._random_values()

    def populate_space(self, trial_id):
        if isinstance(self, kt.oracles.GridSearchOracle):
            return self._grid_populate(trial_id)
        response = super().populate_space(trial_id)
        values = response.get("values")
        if (isinstance(self, kt.oracles.BayesianOptimizationOracle)
                and response.get("status") == kt.engine.trial.TrialStatus.RUNNING and values):
            finite = self._budget_points()
            tried = self._compute_values_hash(values) in self._tried_so_far
            if not self._budget_hm.fits(values) or (finite is not None and tried):
                values = self._best_feasible_acquisition(finite)
                if values is None:
                    status = (kt.engine.trial.TrialStatus.IDLE if self.ongoing_trials
                              else kt.engine.trial.TrialStatus.STOPPED)
                    return {"status": status, "values": None}
                response = {"status": kt.engine.trial.TrialStatus.RUNNING, "values": values}
        return response

    def _grid_populate(self, trial_id):
        status = kt.engine.trial.TrialStatus
        points = self._budget_points(grid=True) or []
        used = {self._compute_values_hash(t.hyperparameters.values)
                for tid, t in self.trials.items() if tid != trial_id}
        for p in points:
            if self._compute_values_hash(p) not in used:
                return {"status": status.RUNNING, "values": dict(p)}
        if self.ongoing_trials:
            return {"status": status.IDLE, "values": None}
        return {"status": status.STOPPED, "values": None}

    def _best_feasible_acquisition(self, finite):
        """The untried point under the budget with the best upper confidence bound of the
        Gaussian process ``populate_space`` just fitted."""
        if finite is not None:
            candidates = self._untried(finite)
        else:
            candidates = [v for v in (self._random_values()
                                      for _ in range(_ACQUISITION_CANDIDATES)) if v]
        if not candidates:
            return None
        space = self._nonfixed_space()
        x = np.array([[hp.value_to_prob(v.get(hp.name, hp.default)) for hp in space]
                      for v in candidates])
        mu, sigma = self.gpr.predict(x, return_std=True)
        ucb = np.asarray(mu).ravel() - self.beta * np.asarray(sigma).ravel()
        return dict(candidates[int(np.argmin(ucb))])


_GUARDED: Dict[type, type] = {}


def budgeted(tuner, hypermodel: Optional[MultiplierHyperModel] = None):
    """Make ``tuner``'s oracle honour ``hypermodel``'s budget (default: the tuner's hypermodel);
    returns the tuner. Idempotent; a worker's oracle client is left alone (the chief proposes).
    From here on this process writes Keras Tuner's state files atomically, so a search killed
    mid-write can be resumed (:mod:`keras_cnns.tuning._state_files`).

    Raises:
        ValueError: the hypermodel is not a :class:`MultiplierHyperModel`, or no point of the
            oracle's space is under the budget (before any trial).
    """
    hm = hypermodel if hypermodel is not None else getattr(tuner, "hypermodel", None)
    if not isinstance(hm, MultiplierHyperModel):
        fail("hypermodel", "must be a keras_cnns.tuning.MultiplierHyperModel", hm)
    atomic_keras_tuner_writes()
    oracle = tuner.oracle
    if type(oracle).__name__ == "OracleClient":
        return tuner
    if not isinstance(oracle, _BudgetGuard):
        cls = type(oracle)
        if cls not in _GUARDED:
            _GUARDED[cls] = type(f"Budgeted{cls.__name__}", (_BudgetGuard, cls), {})
        oracle.__class__ = _GUARDED[cls]
    if oracle._budget_hm is not hm:
        oracle._budget_hm = hm
        oracle.__dict__.pop("_budget_cache", None)
        points = oracle._budget_points()
        if points is not None and not points and oracle.hyperparameters.space:
            fail("max_macs" if hm.max_macs is not None else "max_params",
                 f"is met by no point of the tuner's space for {hm.model_name}",
                 hm.max_macs if hm.max_macs is not None else hm.max_params)
    return tuner


def trial_rows(tuner, metric: Optional[str] = None) -> List[Dict[str, Any]]:
    """One row per completed trial of a tuner driving a :class:`MultiplierHyperModel`: the
    configuration, its multiply-adds and parameters, and ``metric`` (default the objective; its
    best value in the trial) -- ready for :func:`keras_cnns.tuning.pareto_front`."""
    hm = tuner.hypermodel
    metric = metric or tuner.oracle.objective.name
    rows = []
    for trial in tuner.oracle.trials.values():
        if trial.status != "COMPLETED" or not trial.metrics.exists(metric):
            continue
        c = hm.priced(trial.hyperparameters.values)
        if c is None:
            continue
        rows.append({**c.as_dict(), metric: float(trial.metrics.get_best_value(metric)),
                     "trial_id": trial.trial_id,
                     "epochs": trial.hyperparameters.values.get("tuner/epochs")})
    return sorted(rows, key=lambda r: r["trial_id"])
