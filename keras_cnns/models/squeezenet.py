"""SqueezeNet 1.0 / 1.1 with optional simple or complex bypass.

Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer, "SqueezeNet: AlexNet-level accuracy with 50x
fewer parameters and <0.5MB model size", 2016 (https://arxiv.org/abs/1602.07360): Fig. 1 the
Fire module, Fig. 2 the bypasses, Table 1 the layers, Table 3 the bypass comparison.

The file reads top to bottom: the per-version layer tables, the small blocks (the bypass around a
Fire module, the conv10 classifier; the ceil-mode max-pool is
:func:`keras_cnns.layers.max_pool_ceil`), the generic builder :func:`SqueezeNet`,
and the registered variants.
"""

from __future__ import annotations

import keras
from keras import layers

from keras_cnns._checks import check_choice, check_probability
from keras_cnns.layers import fire_module
from keras_cnns.layers.fire import FIRE_KERNEL_INITIALIZER
from keras_cnns.layers.pooling import CeilModeMaxPooling2D, max_pool_ceil
from keras_cnns.models._builder import family_builder, feature_level
from keras_cnns.models._registry import register_model

__all__ = [
    "BYPASSES",
    "CONV10_BIAS_INITIALIZER",
    "CONV10_KERNEL_INITIALIZER",
    "CeilModeMaxPooling2D",  # re-exported from keras_cnns.layers.pooling
    "SqueezeNet",
    "VERSIONS",
]

PAPER = ("Iandola et al., SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and "
         "<0.5MB model size, 2016 (arXiv:1602.07360)")

VERSIONS = ("1_0", "1_1")
BYPASSES = ("none", "simple", "complex")

#: ``conv10`` (the final 1x1 classifier convolution, followed by ReLU and global average pooling)
#: starts with a zero kernel and a bias of 1: every class map is exactly 1 at every position, i.e.
#: inside ReLU's active region, and the prediction is exactly uniform. The reference
#: implementations use ``Normal(0, 0.01)`` and a zero bias (torchvision ``init.normal_(final_conv
#: .weight, std=0.01)``, DeepScale's ``gaussian std 0.01``), which leaves ~19% of the class maps
#: negative everywhere -- dead -- before the first step (see :func:`SqueezeNet`). The bias value is
#: AlexNet's constant 1 "to provide the ReLUs with positive inputs" (Krizhevsky et al. 2012).
CONV10_KERNEL_INITIALIZER = "zeros"
CONV10_BIAS_INITIALIZER = 1.0
#: The reference implementations' conv10 kernel standard deviation (kept for comparison).
REFERENCE_CONV10_STDDEV = 0.01

# Per version: the stem (filters, kernel) and the body, a sequence of
# ("fire", index, squeeze, expand1x1, expand3x3) and ("pool", index) entries (torchvision order).
_ARCH = {
    "1_0": {
        "stem": (96, 7),
        "body": [
            ("pool", 1),
            ("fire", 2, 16, 64, 64), ("fire", 3, 16, 64, 64), ("fire", 4, 32, 128, 128),
            ("pool", 4),
            ("fire", 5, 32, 128, 128), ("fire", 6, 48, 192, 192), ("fire", 7, 48, 192, 192),
            ("fire", 8, 64, 256, 256),
            ("pool", 8),
            ("fire", 9, 64, 256, 256),
        ],
    },
    "1_1": {
        "stem": (64, 3),
        "body": [
            ("pool", 1),
            ("fire", 2, 16, 64, 64), ("fire", 3, 16, 64, 64),
            ("pool", 3),
            ("fire", 4, 32, 128, 128), ("fire", 5, 32, 128, 128),
            ("pool", 5),
            ("fire", 6, 48, 192, 192), ("fire", 7, 48, 192, 192), ("fire", 8, 64, 256, 256),
            ("fire", 9, 64, 256, 256),
        ],
    },
}

#: Fires whose input and output channel counts are equal (identity bypass in "simple" and
#: "complex"), and those where they differ (1x1-conv bypass in "complex"). The same for both
#: versions: in 1.1 too, fires 3, 5, 7 and 9 keep their input width (128, 256, 384, 512).
SIMPLE_BYPASS_FIRES = (3, 5, 7, 9)
COMPLEX_BYPASS_FIRES = (2, 4, 6, 8)

#: Smallest input side that builds and leaves a >= 1x1 map for conv10 (checked by brute force in
#: tests/models/test_squeezenet.py).
MIN_INPUT_SIZE = {"1_0": 21, "1_1": 17}


def _fire(x, index, squeeze, e1, e3, bypass):
    """Fire module ``fire{index}`` with the bypass the variant asks for around it."""
    name = f"fire{index}"
    y = fire_module(x, squeeze, e1, e3, name=name)
    if bypass in ("simple", "complex") and index in SIMPLE_BYPASS_FIRES:
        return layers.Add(name=f"{name}_bypass_add")([x, y])
    if bypass == "complex" and index in COMPLEX_BYPASS_FIRES:
        shortcut = layers.Conv2D(e1 + e3, 1, use_bias=True, kernel_initializer=FIRE_KERNEL_INITIALIZER,
                                 bias_initializer="zeros", name=f"{name}_bypass_conv")(x)
        return layers.Add(name=f"{name}_bypass_add")([shortcut, y])
    return y


@family_builder
def SqueezeNet(version="1_0", bypass="none", dropout=0.5, *, ctx):
    """SqueezeNet (Iandola et al. 2016), version 1.0 or 1.1, with optional bypass.

    Layout (torchvision ``squeezenet.py`` = DeepScale's Caffe release): ``conv1`` (1.0: 96 @ 7x7/2;
    1.1: 64 @ 3x3/2, no padding) + ReLU, 3x3/2 max-pools, eight Fire modules ``fire2``..``fire9``
    (1.0: pools after conv1, fire4, fire8; 1.1: after conv1, fire3, fire5), then the
    classifier: dropout, ``conv10`` (1x1, ``classes`` maps, with bias) + ReLU, global average
    pooling, ``classifier_activation``. There is no fully connected layer.

    Pooling follows the reference implementations: torchvision's ``MaxPool2d(3, 2,
    ceil_mode=True)`` and Caffe's (ceil) pooling, so a 224 input gives 13x13 maps at fire9 in both
    versions (1.0: conv1 109x109, 1.1: conv1 111x111; a 227 Caffe input gives conv1 111x111 in
    1.0). A count of 777.2 M MACs for 1.0 assumes floor pooling; with ceil pooling the conv
    MACs at 224 are 819 M, torchvision's 0.819 GFLOPS. Parameter counts do not depend on it.

    Bypass (paper Sec. 6, Fig. 2, Table 3): ``"simple"`` adds identity shortcuts
    (``Add`` after the Fire's concat) around fires 3, 5, 7 and 9, the Fires whose input and output
    widths match; in 1.1 these are the same Fires (128, 256, 384, 512 channels), so 1.1 uses the
    same rule. It adds no parameters. ``"complex"`` additionally puts a 1x1 convolution (with
    bias, no activation) shortcut around fires 2, 4, 6 and 8, where the widths differ:
    +341,248 parameters in 1.0 (1,589,672 in all, 6.36 MB in float32). **Conflict with the
    paper:** its Table 3 gives 7.7 MB for complex bypass, i.e. about 1.9-2.0 M
    parameters, which this Fig. 2 layout does not reproduce; we follow the figure.

    Initialisation: every convolution but conv10 is torchvision's ``kaiming_uniform_`` (Keras
    ``"he_uniform"``), biases zero. conv10 deliberately differs from the references (torchvision
    ``Normal(0, 0.01)``, DeepScale Caffe ``gaussian 0.01``, zero bias): it starts with a **zero
    kernel and a bias of 1**, so every class map is 1 everywhere and the first prediction is
    exactly uniform. Why: conv10 is followed by ReLU and global average pooling, so a class whose
    map is negative at every position of every image outputs a constant 0 and gets exactly zero
    gradient -- it is dead and can never be predicted. conv10's inputs are fire9's ReLU outputs,
    all non-negative with a mean as large as their spread, so any zero-mean random kernel gives
    each class an image-independent offset ``w_k . mean(f)`` that outweighs its image-dependent
    part (measured ratio 1.8-1.9): with the reference init, 18-19% of class maps are dead before
    the first step (over 1000 maps, 200 digits images, with or without bypass, He or Xavier
    Fire init), i.e. ~88% of 10-class models start with at least one dead class. Training makes
    it worse: while the features are not yet discriminative, the softmax loss pulls the live
    class scores down toward the dead ones (0), and because all inputs are positive, each update
    moves a whole class map up or down at once (LeCun et al., "Efficient BackProp", 1998, Sec.
    4.3); the simple bypass sums make fire9 ~15x larger than without bypass, amplifying it.
    Measured on digits (squeezenet1_1, simple bypass, 64x64, Adam 1e-3 with a 2-epoch warm-up,
    8-15 epochs): reference init, 6 seeds: held-out 0.10-0.98, 5 of 6 runs ended with 2-10 dead
    classes; this init, 12 runs: 0.958-0.983, no dead class. (The training recipe,
    :mod:`keras_cnns.training`, does the rest: standardised inputs, Adam, learning-rate warm-up
    then poly decay.)

    Args:
        version: ``"1_0"`` (paper Table 1) or ``"1_1"`` (DeepScale v1.1: 2.4x fewer MACs, same
            accuracy).
        bypass: ``"none"``, ``"simple"`` or ``"complex"``.
        dropout: dropout rate before conv10 (paper: 0.5), in ``[0, 1)``.
{common_args}

    The head is the conv10 classifier (``classes`` filters; ``classifier_activation=None`` gives
    the pooled class scores); without it the model returns the fire9 feature map (or its
    pooling). Input: default ``(224, 224, 3)``; the side must be at least 21 (1.0) or 17
    (1.1); ``None`` sides are allowed (fully convolutional). Default name ``"squeezenet1_0"`` /
    ``"squeezenet1_1"`` plus the bypass.

    Returns:
        A ``keras.Model``.

    Raises:
        ValueError: an invalid ``version``, ``bypass``, ``dropout`` or shared argument; each
            message names the argument and ends with ``Received: arg=value``.
    """
    check_choice("version", version, VERSIONS)
    min_size = MIN_INPUT_SIZE[version]
    check_choice("bypass", bypass, BYPASSES)
    dropout = check_probability("dropout", dropout)
    default_name = f"squeezenet{version}" + ("" if bypass == "none" else f"_{bypass}_bypass")

    arch = _ARCH[version]
    img_input = ctx.start(default_shape=(224, 224, 3), min_size=min_size)
    stem_filters, stem_kernel = arch["stem"]
    x = layers.Conv2D(stem_filters, stem_kernel, strides=2, padding="valid", use_bias=True,
                      kernel_initializer=FIRE_KERNEL_INITIALIZER, bias_initializer="zeros",
                      name="conv1")(img_input)
    x = layers.ReLU(name="conv1_relu")(x)
    # The levels: conv1's map, then the last map before each pool. conv1 (kernel k, stride 2,
    # valid) gives floor((H - k) / 2) + 1; each 3x3/2 ceil-mode pool adds (3 - 2) * stride-so-far
    # to the extent: side = floor((H - extent) / stride) + 1.
    features, extent, stride = {}, stem_kernel, 2
    for entry in arch["body"]:
        if entry[0] == "pool":
            features[f"P{stride.bit_length() - 1}"] = feature_level(
                f"P{stride.bit_length() - 1}", x, extent=extent)
            extent, stride = extent + stride, stride * 2
            x = max_pool_ceil(x, 3, 2, name=f"pool{entry[1]}")
        else:
            x = _fire(x, *entry[1:], bypass=bypass)

    def head(x):
        x = layers.Dropout(dropout, name="drop9")(x)
        x = layers.Conv2D(
            ctx.classes, 1, use_bias=True,
            kernel_initializer=CONV10_KERNEL_INITIALIZER,
            bias_initializer=keras.initializers.Constant(CONV10_BIAS_INITIALIZER), name="conv10")(x)
        x = layers.ReLU(name="conv10_relu")(x)
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return layers.Activation(ctx.classifier_activation or "linear", name="predictions")(x)

    features[f"P{stride.bit_length() - 1}"] = feature_level(f"P{stride.bit_length() - 1}", x,
                                                             extent=extent)
    return ctx.finish(x, head, default_name=default_name, features=features)


# ----------------------------------------------------------------------------------------------
# Registered variants
# ----------------------------------------------------------------------------------------------

def _register(name, version, bypass):
    # reference figures: reference_figures.csv
    register_model(
        name, family="SqueezeNet", paper=PAPER, builder=SqueezeNet,
        default_input_shape=(224, 224, 3), min_input_size=MIN_INPUT_SIZE[version],
        version=version, bypass=bypass,
    )


_register("squeezenet1_0", "1_0", "none")
_register("squeezenet1_1", "1_1", "none")
_register("squeezenet1_0_simple_bypass", "1_0", "simple")
_register("squeezenet1_0_complex_bypass", "1_0", "complex")
_register("squeezenet1_1_simple_bypass", "1_1", "simple")
