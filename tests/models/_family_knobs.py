"""Smaller builds of a family's representative for the checks that do not depend on its depth
(export sweep, headless pooling, ``input_tensor`` reuse, serialization): one cell, block or unit
per stage keeps every kind of layer, operation, padding and adjustment of the variant, and a
check's time grows with the number of layers.

* NASNet-A Mobile: one cell per stage (16 cells took 110 s to export, 7 take 41 s;
  ``nasnet_mobile`` itself is exported at four sides in tests/models/test_nasnet.py);
* i-RevNet's CIFAR network: one block per stage (its 54 blocks took 186 s to export, 3 take 5 s);
* DenseNet-40, WRN-16-8 and HyperNetwork WRN-40-1 at depth 10 (one block or unit per stage),
  CSPResNeXt-50 with one block per stage, EfficientNet-B0 at half its depth (every stage keeps
  a block, the deeper ones their residual blocks);
* FractalNet: its smallest variant has one column, hence no join; two columns put its joins and
  the drop-path state into the checks.
"""

SMALLER = {"NASNet-A": {"num_cells": 1}, "i-RevNet": {"blocks": (1, 1, 1)},
           "FractalNet": {"columns": 2}, "DenseNet": {"depth": 10},
           "WideResNet": {"depth": 10}, "HyperNetwork": {"depth": 10},
           "CSPNet": {"depths": (1, 1, 1, 1)}, "EfficientNet": {"depth": 0.5}}


def knobs(name):
    """The smaller build's keyword arguments for a registered model (``{}`` for most)."""
    import keras_cnns

    return dict(SMALLER.get(keras_cnns.model_info(name).family, {}))
