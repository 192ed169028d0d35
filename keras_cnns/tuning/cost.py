"""Costs of a configuration before it is built: closed forms, and the profiler on a weightless build.

:func:`mobilenet_v1_macs` is the MobileNet paper's cost (Howard et al. 2017, eq. 7) summed over
the network: for a depthwise separable layer with ``M`` input and ``N`` output channels on an
output map of side ``D_F``, ``D_K * D_K * M * D_F^2 + M * N * D_F^2`` multiply-adds, with
``M = int(alpha * m)``, ``N = int(alpha * n)`` and ``D_F`` following the input side
``round(rho * base)`` through the strides, plus the 3x3 stem and the 1x1 classifier.
"""

from __future__ import annotations

import math
from typing import Dict

__all__ = ["mobilenet_v1_macs", "CLOSED_FORMS", "profiled_cost"]

_MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1),
                     (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def mobilenet_v1_macs(alpha: float, side: int, classes: int = 1000, channels: int = 3) -> int:
    """Multiply-adds of MobileNet v1 (``alpha``, input ``side x side x channels``)."""
    s = math.ceil(side / 2)  # stem: 3x3 stride 2, "same" padding
    m = int(32 * alpha)
    total = 3 * 3 * channels * m * s * s
    for filters, stride in _MOBILENET_BLOCKS:
        if stride == 2:  # zero pad (0, 1), then a valid 3x3 stride 2 (keras.applications)
            s = (s + 1 - 3) // 2 + 1
        n = int(filters * alpha)
        total += 3 * 3 * m * s * s + m * n * s * s  # eq. 7: depthwise + pointwise
        m = n
    return int(total + m * classes)  # the 1x1 classifier on the pooled 1x1 map


CLOSED_FORMS = {"mobilenet_v1": lambda config: mobilenet_v1_macs(
    config.kwargs.get("alpha", 1.0), config.side, config.classes, config.channels)}


def profiled_cost(name: str, kwargs: Dict, side: int, channels: int, classes: int):
    """``(macs, params)`` from :func:`keras_cnns.profile` of a build that allocates no weights:
    the served model's (its main output; auxiliary classifiers are training-only)."""
    import keras_cnns
    from keras_cnns.models._builder import shapes_only

    with shapes_only():
        model = keras_cnns.create_model(name, input_shape=(side, side, channels),
                                        classes=classes, **kwargs)
        prof = keras_cnns.profile(model, outputs="served")
    return int(prof.total_macs), int(prof.total_params)
