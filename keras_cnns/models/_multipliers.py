"""The multipliers a family opts in to tuning with (``ModelInfo.multipliers()``), and their grids.

The tuner (:mod:`keras_cnns.tuning`) reads only this table: a family joins the search by an entry
here, not by code in the tuner. Each value is the papers' grid, the default search space:

* MobileNet (Howard et al. 2017, arXiv:1704.04861, Tables 6-7): width ``alpha`` in
  {0.25, 0.5, 0.75, 1.0}; resolution ``rho`` giving inputs of 128, 160, 192 and 224.
* MobileNetV2 (Sandler et al. 2018, Fig. 5 / Table 6): ``alpha`` in {0.35, 0.5, 0.75, 1.0, 1.3,
  1.4}; inputs 96 ... 224.
* MobileNetV3 (Howard et al. 2019, Table 3 / keras.applications) ``alpha`` in {0.75, 1.0}.
* ShuffleNet v1 (Zhang et al. 2018, Table 2) ``scale`` in {0.25, 0.5, 1.0, 1.5, 2.0}; ShuffleNet v2
  (Ma et al. 2018, Table 5) {0.5, 1.0, 1.5, 2.0}.
* EfficientNet (Tan & Le 2019, sec. 3.3): the compound search. Step 1 at ``phi = 1``: a small grid
  over depth ``alpha``, width ``beta`` and resolution ``gamma`` (each >= 1) under
  ``alpha * beta^2 * gamma^2 ~ 2`` (the paper found 1.2, 1.1, 1.15); a configuration is the model
  with ``depth = alpha^phi``, ``width = beta^phi`` at side ``round(base * gamma^phi)``.

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
    "MobileNetV3": {"grid": {"alpha": (0.75, 1.0)}},
    "ShuffleNet": {"grid": {"scale": (0.25, 0.5, 1.0, 1.5, 2.0)}},
    "ShuffleNetV2": {"grid": {"scale": (0.5, 1.0, 1.5, 2.0)}},
    "EfficientNet": {"grid": {"alpha": (1.1, 1.15, 1.2, 1.25, 1.3), "beta": (1.0, 1.05, 1.1, 1.15),
                              "gamma": (1.1, 1.15, 1.2, 1.25)},
                     "compound": {"target": 2.0, "tolerance": 0.1, "phi": 1}},
}


def multipliers_for(family: str) -> Dict[str, Any]:
    """``{"grid": {name: values}, "closed_form": ...}`` of a family, or ``{}``."""
    entry = MULTIPLIERS.get(family)
    if not entry:
        return {}
    return {"grid": {k: tuple(v) for k, v in entry["grid"].items()},
            "closed_form": entry.get("closed_form"), "compound": entry.get("compound")}
