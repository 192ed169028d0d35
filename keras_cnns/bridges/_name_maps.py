"""The family name maps of every bridge, registered in one table (:func:`register_name_map`).

A name map is ``fn(keras_model) -> [(keras_layer_name, reference_name), ...]`` (see
:mod:`keras_cnns.bridges`). The maps of families whose Keras layer names are built to follow the
reference (ResNet, ShuffleNetV2: ``resnet.torchvision_names``, ``shufflenet.torchvision_names``)
live next to those names in the family modules, which never import this package; the others are
written here. Every registration of every bridge is at the bottom of this file; checked by
tests/models/test_torchvision_bridge.py.
"""

from __future__ import annotations

from typing import List, Tuple

from keras_cnns.bridges._common import all_layer_names, register_name_map
from keras_cnns.models import densenet, resnet, shufflenet
from keras_cnns.models import cspnet, googlenet, inception_v3

# ----------------------------------------------------------------------------------------------
# torchvision (module prefixes of torchvision/models/*.py)
# ----------------------------------------------------------------------------------------------

def _squeezenet_names(model) -> List[Tuple[str, str]]:
    """torchvision ``squeezenet1_0/1_1``: ``features`` = conv, ReLU, then one index per pool or
    Fire in order (our ``pool{k}`` follows block ``k``); ``classifier.1`` = conv10."""
    have = all_layer_names(model)
    pairs = [("conv1", "features.0")]
    index = 2
    for k in range(1, 10):
        if f"fire{k}_squeeze1x1" in have:
            pairs += [(f"fire{k}_{ours}", f"features.{index}.{theirs}") for ours, theirs in
                      (("squeeze1x1", "squeeze"), ("expand1x1", "expand1x1"), ("expand3x3", "expand3x3"))]
            index += 1
        if f"pool{k}" in have:
            index += 1
    if "conv10" in have:
        pairs.append(("conv10", "classifier.1"))
    return pairs


def _alexnet_names(model) -> List[Tuple[str, str]]:
    """torchvision ``alexnet``: ``features`` = conv, ReLU[, pool] per layer; ``classifier`` =
    Dropout, fc1, ReLU, Dropout, fc2, ReLU, predictions."""
    have = all_layer_names(model)
    pairs, index = [], 0
    for i in range(1, 6):
        pairs.append((f"conv{i}", f"features.{index}"))
        index += 3 if f"pool{i}" in have else 2
    head = (("fc1", "classifier.1"), ("fc2", "classifier.4"), ("predictions", "classifier.6"))
    return pairs + [p for p in head if p[0] in have]


def _vgg_names(model) -> List[Tuple[str, str]]:
    """torchvision ``vgg*[_bn]``: ``features`` = conv[, BN], ReLU per layer, a pool per block;
    ``classifier`` = fc1, ReLU, Dropout, fc2, ReLU, Dropout, predictions."""
    have = all_layer_names(model)
    pairs, index = [], 0
    for block in range(1, 6):
        i = 1
        while f"block{block}_conv{i}" in have:
            name = f"block{block}_conv{i}"
            pairs.append((name, f"features.{index}"))
            if f"{name}_bn" in have:
                pairs.append((f"{name}_bn", f"features.{index + 1}"))
                index += 1
            index += 2
            i += 1
        index += 1  # the block's max-pool
    head = (("fc1", "classifier.0"), ("fc2", "classifier.3"), ("predictions", "classifier.6"))
    return pairs + [p for p in head if p[0] in have]


# ----------------------------------------------------------------------------------------------
# timm (module paths of timm/models/*.py; keras_cnns.bridges.timm.from_timm)
# ----------------------------------------------------------------------------------------------
# CSPNet / Darknet: our layer names are timm's module paths (cspnet.timm_names, next to them).
# DenseNet: timm keeps torchvision's module names, so its torchvision map serves both bridges.
# A family's timm map is one more row of the table below.


# ----------------------------------------------------------------------------------------------
# The table: (family, bridge) -> name map. Families without an entry pair by order.
# ----------------------------------------------------------------------------------------------

for _family, _bridge, _fn in (
    ("SqueezeNet", "torchvision", _squeezenet_names),
    ("AlexNet", "torchvision", _alexnet_names),
    ("VGG", "torchvision", _vgg_names),
    ("ResNet", "torchvision", resnet.torchvision_names),
    ("ResNeXt", "torchvision", resnet.torchvision_names),
    ("WideResNet", "torchvision", resnet.torchvision_names),
    ("ShuffleNetV2", "torchvision", shufflenet.torchvision_names),
    ("DenseNet", "torchvision", densenet.torchvision_names),
    ("CSPNet", "timm", cspnet.timm_names),
    ("Darknet", "timm", cspnet.timm_names),
    ("DenseNet", "timm", densenet.torchvision_names),  # timm's DenseNet keeps torchvision's names
    ("GoogLeNet", "torchvision", googlenet.torchvision_names),
    ("Inception-v3", "torchvision", inception_v3.torchvision_names),
):
    register_name_map(_family, _bridge, _fn)
del _family, _bridge, _fn
