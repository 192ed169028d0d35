"""The multipliers a family opts in to tuning with (``ModelInfo.multipliers()``), and their grids.

The tuner (:mod:`keras_cnns.tuning`) reads only this table: a family joins the search by an entry
here, not by code in the tuner. Each value is the papers' grid, the default search space:

* MobileNet (Howard et al. 2017, arXiv:1704.04861, Tables 6-7): width ``alpha`` in
  {0.25, 0.5, 0.75, 1.0}; resolution ``rho`` giving inputs of 128, 160, 192 and 224.
* MobileNetV2 (Sandler et al. 2018, Fig. 5 / Table 6): ``alpha`` in {0.35, 0.5, 0.75, 1.0, 1.3,
  1.4}; inputs 96 ... 224.
* ShuffleNet v1 (Zhang et al. 2018, Table 2) ``scale`` in {0.25, 0.5, 1.0, 1.5, 2.0}; ShuffleNet v2
  (Ma et al. 2018, Table 5) {0.5, 1.0, 1.5, 2.0}.

``closed_form`` names a closed-form cost model of the family (``keras_cnns.tuning.cost``), used to
reject configurations over a multiply-add budget before anything is built.
"""

from __future__ import annotations

from typing import Any, Dict

_RHO_224 = (128 / 224, 160 / 224, 192 / 224, 1.0)

MULTIPLIERS: Dict[str, Dict[str, Any]] = {
    "MobileNet": {"grid": {"alpha": (0.25, 0.5, 0.75, 1.0), "rho": _RHO_224},
                  "closed_form": "mobilenet_v1"},
    "MobileNetV2": {"grid": {"alpha": (0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
                             "rho": (96 / 224,) + _RHO_224}},
    "ShuffleNet": {"grid": {"scale": (0.25, 0.5, 1.0, 1.5, 2.0)}},
    "ShuffleNetV2": {"grid": {"scale": (0.5, 1.0, 1.5, 2.0)}},
}


def multipliers_for(family: str) -> Dict[str, Any]:
    """``{"grid": {name: values}, "closed_form": ...}`` of a family, or ``{}``."""
    entry = MULTIPLIERS.get(family)
    if not entry:
        return {}
    return {"grid": {k: tuple(v) for k, v in entry["grid"].items()},
            "closed_form": entry.get("closed_form")}
