"""The multiplier space of a family and the cost of each of its points, before anything is built.

A point is a dict of the family's multipliers from the registry (``model_info(name).multipliers()``:
``{"alpha": 0.5, "rho": 0.714}``); :func:`make_config` turns it into a :class:`Config` (the builder
arguments and the input side), :class:`Pricer` gives its multiply-adds and parameters -- the
family's closed form where there is one, otherwise :func:`keras_cnns.tuning.cost.profiled_cost`
on a build that allocates no weights -- computing only what a question needs, once per point.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Dict, List, Optional, Sequence

import numpy as np

from keras_cnns._checks import fail, is_int

__all__ = ["Config", "Pricer", "candidate_configs", "make_config", "resolve_space"]


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


def resolve_space(name: str, grid: Optional[Dict[str, Sequence]] = None,
                  base_size: Optional[int] = None, channels: Optional[int] = None,
                  phi: Optional[int] = None):
    """``(info, spec, space, base, channels, phi)`` of a tunable model, checking the arguments.

    Raises:
        ValueError: an unknown model, one without multipliers, a bad grid / base_size / phi.
    """
    from keras_cnns.models import model_info

    info = model_info(name)
    spec = info.multipliers()
    if not spec:
        fail("model", f"has no multipliers to tune ({info.name!r}, family {info.family}); "
             "tunable families: MobileNet, MobileNetV2, MobileNetV3, ShuffleNet, ShuffleNetV2, "
             "EfficientNet", name)
    space = dict(spec["grid"])
    if grid is not None:
        if not isinstance(grid, dict) or set(grid) - set(space) or not grid:
            fail("grid", f"must be a dict over {sorted(space)}", grid)
        for k, v in grid.items():
            try:
                values = tuple(float(x) for x in v)
            except (TypeError, ValueError):
                values = ()
            if not values or any(x <= 0 for x in values):
                fail("grid", f"must give {k!r} a non-empty sequence of positive numbers", grid)
            space[k] = values
    base = base_size or info.default_input_shape[0]
    if not is_int(base) or base < 1:
        fail("base_size", "must be a positive integer", base_size)
    channels = channels or info.default_input_shape[-1]
    if not is_int(channels) or channels < 1:
        fail("channels", "must be a positive integer", channels)
    if phi is not None and (not is_int(phi) or phi < 0):
        fail("phi", "must be a non-negative integer (EfficientNet's compound coefficient)", phi)
    return info, spec, {k: space[k] for k in sorted(space)}, int(base), int(channels), phi


def make_config(info, spec, values: Dict[str, float], base: int, channels: int, classes: int,
                phi: Optional[int] = None) -> Optional[Config]:
    """The :class:`Config` (costs 0, see :class:`Pricer`) of one point, or ``None`` where the
    architecture cannot take it (a side under its minimum, EfficientNet off its constraint)."""
    kwargs = {k: float(v) for k, v in values.items()}
    compound = spec.get("compound")
    if compound is not None:  # EfficientNet: alpha (depth), beta (width), gamma (resolution)
        a, b, g = kwargs["alpha"], kwargs["beta"], kwargs["gamma"]
        if abs(a * b * b * g * g - compound["target"]) > compound["tolerance"]:
            return None  # off the FLOPS constraint alpha * beta^2 * gamma^2 ~ 2
        p = compound["phi"] if phi is None else phi
        kwargs = {"depth": round(a ** p, 4), "width": round(b ** p, 4)}
        side = int(round(base * g ** p))
    else:
        rho = kwargs.pop("rho", None)
        side = int(round(rho * base)) if rho is not None else int(base)
    if side < info.min_input_size:
        return None
    return Config(_label(kwargs, side), kwargs, side, channels, classes, 0, 0)


class Pricer:
    """Multiply-adds and parameters of configurations, each computed once and only when asked:
    MACs by the family's closed form where it has one (no build at all), otherwise -- and for
    parameters -- by the profiler on a build that allocates no weights (``shapes_only``)."""

    def __init__(self, info, spec):
        from keras_cnns.tuning.cost import CLOSED_FORMS

        self.info, self.spec = info, spec
        self.closed = CLOSED_FORMS.get(spec.get("closed_form"))
        self._macs: Dict[str, int] = {}
        self._params: Dict[tuple, int] = {}
        self.profiled_builds = 0  # weight-free builds made so far

    def _profile(self, c: Config, side: int):
        from keras_cnns.tuning.cost import profiled_cost

        self.profiled_builds += 1
        return profiled_cost(self.info.name, c.kwargs, side, c.channels, c.classes)

    def macs(self, c: Config) -> int:
        if c.label not in self._macs:
            if self.closed is not None:
                self._macs[c.label] = int(self.closed(c))
            else:
                macs, params = self._profile(c, c.side)
                self._macs[c.label] = macs
                self._params.setdefault(self._pkey(c), params)
        return self._macs[c.label]

    def _pkey(self, c):
        # parameters do not depend on the side, except through it nowhere in these families
        return tuple(sorted(c.kwargs.items())), c.channels, c.classes

    def params(self, c: Config) -> int:
        key = self._pkey(c)
        if key not in self._params:
            side = self.info.min_input_size if self.closed is not None else c.side
            self._params[key] = self._profile(c, max(side, self.info.min_input_size))[1]
        return self._params[key]

    def priced(self, c: Config) -> Config:
        return dataclasses.replace(c, macs=self.macs(c), params=self.params(c))


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
    info, spec, space, base, channels, phi = resolve_space(name, grid, base_size, channels, phi)
    keys = list(space)
    if ranges:
        rng = np.random.default_rng(seed)
        points = [tuple(float(rng.uniform(min(space[k]), max(space[k]))) for k in keys)
                  for _ in range(samples)]
    else:
        points = list(itertools.product(*(space[k] for k in keys)))
    pricer = Pricer(info, spec)
    configs, seen = [], set()
    for values in points:
        c = make_config(info, spec, dict(zip(keys, values)), base, channels, classes, phi)
        if c is None or c.label in seen:
            continue
        seen.add(c.label)
        configs.append(pricer.priced(c))
    return configs
