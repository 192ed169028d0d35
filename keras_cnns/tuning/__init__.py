"""Keras Tuner search of the width / resolution multipliers under a cost budget.

* :class:`MultiplierHyperModel` -- a public, budget-aware ``keras_tuner.HyperModel``: each
  multiplier the family declares (MobileNet ``alpha`` and ``rho``, ShuffleNet ``scale``,
  EfficientNet's ``alpha, beta, gamma`` ...) is its own hyperparameter, and any Keras Tuner
  algorithm that drives it (``kt.RandomSearch``, ``kt.GridSearch``, ``kt.BayesianOptimization``,
  ``kt.Hyperband``) proposes only configurations under its budget (:func:`budgeted`); its ``fit``
  resizes the data to each trial's input side. :func:`trial_rows` reads a tuner's trials back for
  :func:`pareto_front`.
* :func:`search` -- ``search("mobilenet", "digits", max_macs=15e6, epochs=3,
  algorithm="bayesian")``: a thin layer over those, with trials trained by
  :func:`keras_cnns.training.train`, the Pareto front of accuracy against cost, a plot, the best
  model exported, resume and chief/worker.
* :func:`candidate_configs`, :func:`pareto_front`, :mod:`keras_cnns.tuning.cost` (the MobileNet
  paper's closed-form cost).

``keras_tuner`` is imported on first use of the hypermodel parts.
"""

from keras_cnns.tuning.cost import mobilenet_v1_macs, profiled_cost
from keras_cnns.tuning.search import (ALGORITHMS, COSTS, OBJECTIVES, Config, SearchResult,
                                      candidate_configs, make_tuner, pareto_front, search)

__all__ = ["ALGORITHMS", "COSTS", "OBJECTIVES", "Config", "MultiplierHyperModel",
           "SearchResult", "budgeted", "candidate_configs", "make_tuner", "mobilenet_v1_macs",
           "pareto_front", "profiled_cost", "search", "trial_rows"]

_LAZY = ("MultiplierHyperModel", "budgeted", "trial_rows")


def __getattr__(name):
    if name in _LAZY:
        from keras_cnns.tuning import hypermodel

        return getattr(hypermodel, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
