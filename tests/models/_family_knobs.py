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


#: Deep variants that only repeat the blocks of a registered sibling (more blocks per stage, or
#: EfficientNet's wider/deeper scaling of the same MBConv stages): their figures are checked at
#: the native size like every model's, and that they use exactly their sibling's kinds of layers
#: (test_models_generic.py, test_repeat_variants_use_their_siblings_layers), but the
#: forward/backward run is the sibling's: at min size they would only run the same code 2-3x
#: longer (~100 s of the suite). test_contract.py checks their declared feature levels at the
#: default size only: the sides at the test size follow the strides and paddings they share
#: with the sibling, which is checked there.
REPEATS = {
    "resnet101": "resnet50", "resnet152": "resnet50",
    "resnet101_keras": "resnet50_keras", "resnet152_keras": "resnet50_keras",
    "resnet101v2": "resnet50v2", "resnet152v2": "resnet50v2",
    "resnext101_32x8d": "resnext50_32x4d", "resnext101_64x4d": "resnext50_32x4d",
    "wide_resnet101_2": "wide_resnet50_2",
    "efficientnet_b3": "efficientnet_b0", "efficientnet_b4": "efficientnet_b0",
    "efficientnet_b5": "efficientnet_b0",
    "densenet161": "densenet121", "densenet169": "densenet121", "densenet201": "densenet121",
    "densenet264": "densenet121",
    "densenet100_k12": "densenet40_k12", "densenet100_k24": "densenet40_k12",
    "densenet_bc250_k24": "densenet_bc100_k12", "densenet_bc190_k40": "densenet_bc100_k12",
    "nasnet_large": "nasnet_mobile", "overfeat_accurate": "overfeat_fast",
    "fractalnet40_cifar": "fractalnet20_cifar", "revnet110": "revnet38",
    "fractalnet20_w16_cifar100": "fractalnet10_w16_cifar100",
    "fractalnet40_w16_cifar100": "fractalnet10_w16_cifar100",
    "fractalnet80_w16_cifar100": "fractalnet10_w16_cifar100",
    "fractalnet160_w16_cifar100": "fractalnet10_w16_cifar100",
    # deeper variants of the same blocks (plain and CIFAR ResNets, VGG, EfficientNet's compound
    # scaling below B3, WRN-28-10 of WRN-16-8's units)
    "resnet34": "resnet18", "resnet32": "resnet20", "resnet44": "resnet20",
    "resnet56": "resnet20", "resnet110": "resnet20",
    "vgg13": "vgg11", "vgg16": "vgg11", "vgg19": "vgg11",
    "vgg13_bn": "vgg11_bn", "vgg16_bn": "vgg11_bn", "vgg19_bn": "vgg11_bn",
    "efficientnet_b1": "efficientnet_b0", "efficientnet_b2": "efficientnet_b0",
    "efficientnet_b1_torchvision": "efficientnet_b0_torchvision", "wrn_28_10": "wrn_16_8",
    # wider variants: the same layers with more channels (width multiplier, ShuffleNet's scale
    # at the same groups and classifier, WRN's k)
    "mobilenet": "mobilenet_0_25", "mobilenet_0_50": "mobilenet_0_25",
    "mobilenet_0_75": "mobilenet_0_25", "mobilenetv2_1_40": "mobilenetv2",
    "shufflenet": "shufflenet_0_25_g3", "shufflenet_0_50_g3": "shufflenet_0_25_g3",
    "shufflenet_g1": "shufflenet_0_25_g1", "shufflenet_2_00_g3": "shufflenet_1_50_g3",
    "shufflenetv2": "shufflenetv2_0_50", "shufflenetv2_1_50": "shufflenetv2_0_50",
    "shufflenetv2_2_00": "shufflenetv2_0_50",
    "sqnxt23_2_0": "sqnxt23_1_0", "sqnxt23v5_2_0": "sqnxt23v5_1_0",
    "wrn_40_2": "wrn_40_1", "wrn_40_4": "wrn_40_1", "hyper_wrn_40_2": "hyper_wrn_40_1",
}
