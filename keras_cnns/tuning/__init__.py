"""Keras Tuner search of the width / resolution multipliers under a cost budget.

* :func:`search` -- ``search("mobilenet", "digits", max_macs=15e6, epochs=3)``: every
  configuration of the family's multipliers (from the registry) costed before any build, those
  over the budget rejected, the rest searched with Keras Tuner, the Pareto front of accuracy
  against cost, a plot, the best model exported.
* :func:`candidate_configs`, :func:`pareto_front`, :mod:`keras_cnns.tuning.cost` (the MobileNet
  paper's closed-form cost).
"""

from keras_cnns.tuning.cost import mobilenet_v1_macs, profiled_cost
from keras_cnns.tuning.search import (COSTS, OBJECTIVES, Config, SearchResult, candidate_configs,
                                      pareto_front, search)

__all__ = ["COSTS", "OBJECTIVES", "Config", "SearchResult", "candidate_configs",
           "mobilenet_v1_macs", "pareto_front", "profiled_cost", "search"]
