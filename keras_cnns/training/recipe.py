"""``Recipe``: every setting of a training run that is not the model or the data, validated.

A recipe is data: the registry records each family's paper recipe
(``model_info(name).recipe("paper")``) and the library's default for short runs
(``recipe("default")``); :func:`resolve_recipe` turns a name, a dict of overrides or a ``Recipe``
into one. Nothing here knows a family.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Dict, Optional, Tuple, Union

from keras_cnns._checks import fail, is_int

__all__ = ["OPTIMIZERS", "PRECISIONS", "Recipe", "SCHEDULES", "resolve_recipe"]

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "step", "poly", "cosine", "exponential")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
JIT = ("auto", "on", "off")


def _real(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(float(value)))


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A validated training recipe.

    Attributes:
        optimizer: ``"sgd"``, ``"adam"``, ``"adamw"`` or ``"rmsprop"``.
        learning_rate: peak learning rate (after the warm-up).
        batch_size: global batch size (split over the replicas of a ``tf.distribute`` strategy).
        epochs: passes over the training split.
        momentum: SGD / RMSProp momentum.
        nesterov: Nesterov momentum (SGD).
        rmsprop_rho: RMSProp's decay of the squared-gradient average (TF's "decay").
        epsilon: the optimizer's epsilon (Adam / RMSProp); ``None``: Keras' default.
        weight_decay: decoupled weight decay (0: none; not available with ``"adam"``).
        schedule: ``"constant"``, ``"step"`` (x ``gamma`` at each of ``milestones``),
            ``"poly"`` (to 0 at the end, ``poly_power``), ``"cosine"`` (to 0 at the end) or
            ``"exponential"`` (x ``decay_rate`` every ``decay_epochs``).
        warmup_epochs: linear warm-up from ~0 to ``learning_rate`` (Goyal et al. 2017).
        milestones: fractions of the run (0 < m < 1, increasing) where a step schedule decays.
        gamma: the step schedule's factor.
        poly_power: the poly schedule's exponent.
        decay_rate, decay_epochs: the exponential schedule.
        label_smoothing: Szegedy et al. 2016's label smoothing (0: none).
        augment: ``None`` (the dataset's default: its papers' augmentation in training, none
            on the embedded digits), ``True`` or ``False`` (see :func:`keras_cnns.data.load`).
        mixup: mixup's Beta(alpha, alpha) parameter (Zhang et al. 2018; 0: off).
        precision: ``"float32"``, ``"mixed_float16"`` or ``"mixed_bfloat16"``.
        jit_compile: ``"auto"`` (off on CPU, where XLA's depthwise convolution is much slower
            than TF's kernels, and with the library's custom op, which XLA cannot compile; on
            otherwise), ``"on"`` or ``"off"``.
        source: where the values come from (paper, section).
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 30
    momentum: float = 0.9
    nesterov: bool = False
    rmsprop_rho: float = 0.9
    epsilon: Optional[float] = None
    weight_decay: float = 0.0
    schedule: str = "poly"
    warmup_epochs: float = 0.0
    milestones: Tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    poly_power: float = 1.0
    decay_rate: float = 0.94
    decay_epochs: float = 2.0
    label_smoothing: float = 0.0
    augment: Union[None, bool, str] = None
    mixup: float = 0.0
    precision: str = "float32"
    jit_compile: str = "auto"
    source: str = ""

    def __post_init__(self):
        v = self
        if v.optimizer not in OPTIMIZERS:
            fail("optimizer", f"must be one of {list(OPTIMIZERS)}", v.optimizer)
        if not _real(v.learning_rate) or v.learning_rate <= 0:
            fail("learning_rate", "must be a finite number > 0", v.learning_rate)
        for arg in ("batch_size", "epochs"):
            value = getattr(v, arg)
            if not is_int(value) or value < 1:
                fail(arg, "must be an integer >= 1", value)
        for arg in ("momentum", "rmsprop_rho"):
            value = getattr(v, arg)
            if not _real(value) or not 0 <= value < 1:
                fail(arg, "must be a number in [0, 1)", value)
        if not isinstance(v.nesterov, bool):
            fail("nesterov", "must be True or False", v.nesterov)
        if v.epsilon is not None and (not _real(v.epsilon) or v.epsilon <= 0):
            fail("epsilon", "must be None or a number > 0", v.epsilon)
        if not _real(v.weight_decay) or v.weight_decay < 0:
            fail("weight_decay", "must be a number >= 0", v.weight_decay)
        if v.weight_decay and v.optimizer == "adam":
            fail("weight_decay", "is not used by optimizer 'adam' (use 'adamw', 'sgd' or "
                 "'rmsprop')", v.weight_decay)
        if v.schedule not in SCHEDULES:
            fail("schedule", f"must be one of {list(SCHEDULES)}", v.schedule)
        if not _real(v.warmup_epochs) or v.warmup_epochs < 0:
            fail("warmup_epochs", "must be a number >= 0", v.warmup_epochs)
        if v.warmup_epochs >= v.epochs and v.warmup_epochs > 0:
            fail("warmup_epochs", f"must be less than epochs ({v.epochs})", v.warmup_epochs)
        ms = tuple(v.milestones) if isinstance(v.milestones, (list, tuple)) else None
        if (ms is None or not all(_real(m) and 0 < m < 1 for m in ms)
                or list(ms) != sorted(set(ms))):
            fail("milestones", "must be increasing fractions of the run strictly between 0 "
                 "and 1, e.g. (0.5, 0.75)", v.milestones)
        object.__setattr__(self, "milestones", tuple(float(m) for m in ms))
        for arg, lo, hi in (("gamma", 0, 1), ("decay_rate", 0, 1)):
            value = getattr(v, arg)
            if not _real(value) or not lo < value <= hi:
                fail(arg, f"must be a number in ({lo}, {hi}]", value)
        for arg in ("poly_power", "decay_epochs"):
            value = getattr(v, arg)
            if not _real(value) or value <= 0:
                fail(arg, "must be a number > 0", value)
        if not _real(v.label_smoothing) or not 0 <= v.label_smoothing < 1:
            fail("label_smoothing", "must be a number in [0, 1)", v.label_smoothing)
        if not (v.augment is None or isinstance(v.augment, bool)):
            fail("augment", "must be None (the dataset's default), True or False", v.augment)
        if not _real(v.mixup) or v.mixup < 0:
            fail("mixup", "must be a number >= 0 (0: off)", v.mixup)
        if v.precision not in PRECISIONS:
            fail("precision", f"must be one of {list(PRECISIONS)}", v.precision)
        jit = {True: "on", False: "off"}.get(v.jit_compile, v.jit_compile)
        if jit not in JIT:
            fail("jit_compile", f"must be one of {list(JIT)} (or True/False)", v.jit_compile)
        object.__setattr__(self, "jit_compile", jit)
        if not isinstance(v.source, str):
            fail("source", "must be a string", v.source)

    def replace(self, **changes) -> "Recipe":
        """A copy with ``changes`` applied (validated; unknown fields are a clear error)."""
        _check_fields(changes)
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(d["milestones"])
        return d


def _check_fields(values: Dict[str, Any]) -> None:
    names = {f.name for f in dataclasses.fields(Recipe)}
    for key in values:
        if key not in names:
            fail(key, f"is not a Recipe field (the fields: {sorted(names)})", values[key])


def resolve_recipe(recipe: Union[None, str, Dict[str, Any], Recipe] = None, info=None,
                   **overrides) -> Recipe:
    """A ``Recipe`` from ``recipe`` and ``overrides`` (``None`` values in ``overrides`` ignored).

    ``recipe`` may be a ``Recipe``; ``None`` or ``"default"`` (the model's default recipe, the
    library's when ``info`` is ``None``); ``"paper"`` (the model's paper recipe from the
    registry); a named recipe of ``keras_cnns.models._recipes.RECIPES``; or a dict of fields on
    top of the default.

    Raises:
        ValueError: an unknown recipe name, a model with no recorded paper recipe, an unknown
            field, or an invalid value (the message names the field).
    """
    from keras_cnns.models import _recipes

    overrides = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(recipe, Recipe):
        return recipe.replace(**overrides) if overrides else recipe
    base: Dict[str, Any]
    default = info.recipe("default") if info is not None else dict(_recipes.DEFAULT_RECIPE)
    if recipe is None or recipe == "default":
        base = default
    elif recipe == "paper":
        if info is None:
            fail("recipe", "'paper' needs a registered model (pass its name)", recipe)
        base = info.recipe("paper")
        if base is None:
            fail("recipe", f"'paper': no paper recipe is recorded for {info.name!r} (family "
                 f"{info.family}); use 'default' or one of {sorted(_recipes.RECIPES)}", recipe)
    elif isinstance(recipe, str):
        key = recipe.strip().lower()
        if key not in _recipes.RECIPES:
            fail("recipe", f"must be 'default', 'paper', one of {sorted(_recipes.RECIPES)}, a "
                 "dict of Recipe fields or a Recipe", recipe)
        base = dict(_recipes.RECIPES[key])
    elif isinstance(recipe, dict):
        _check_fields(recipe)
        base = {**default, **recipe}
    else:
        fail("recipe", "must be None, a recipe name, a dict of Recipe fields or a Recipe", recipe)
    _check_fields(overrides)
    if "optimizer" in overrides and overrides["optimizer"] != base.get("optimizer"):
        # another optimizer without its own settings: its usual learning rate, and no weight
        # decay for plain Adam
        overrides.setdefault("learning_rate", _OPTIMIZER_LR[overrides["optimizer"]]
                             if overrides["optimizer"] in _OPTIMIZER_LR else None)
        if overrides["optimizer"] == "adam":
            overrides.setdefault("weight_decay", 0.0)
        overrides = {k: v for k, v in overrides.items() if v is not None}
    merged = {**base, **overrides}
    if ("epochs" in overrides and "warmup_epochs" not in overrides
            and merged.get("warmup_epochs", 0) >= merged["epochs"]):
        # a shorter run than the recipe's: keep the warm-up's share of the run
        base_epochs = base.get("epochs", Recipe.epochs)
        merged["warmup_epochs"] = merged["warmup_epochs"] * merged["epochs"] / base_epochs
    return Recipe(**merged)


_OPTIMIZER_LR = {"adam": 1e-3, "adamw": 1e-3, "sgd": 0.01, "rmsprop": 1e-3}
