"""VGG-11/13/16/19 (configurations A, B, D, E), with and without batch normalization.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015 (arXiv:1409.1556).

Five blocks of 3x3 "same" convolutions (64, 128, 256, 512, 512 filters; 1-4 per block) with ReLU,
each closed by a 2x2/2 max-pool, then ``Flatten -> fc1 4096 -> fc2 4096 -> predictions``. The
per-layer VGG-16 table of the CS231n notes ("VGGNet in detail",
https://cs231n.github.io/convolutional-networks/; 224x224x64 ... 7x7x512, 138M parameters) is
what the default configuration reproduces: **138,357,544** parameters for VGG-16 and
**143,667,240** for VGG-19.

Layer names are those of ``keras.applications.VGG16`` / ``VGG19`` (``block{b}_conv{i}``,
``block{b}_pool``, ``flatten``, ``fc1``, ``fc2``, ``predictions``), so weights copy layer for
layer (see :mod:`keras_cnns.bridges.keras_applications`). Two things differ from keras.applications, both
following the paper and torchvision: dropout 0.5 after ``fc1`` and ``fc2`` (``fc1_drop``,
``fc2_drop``; weightless, so the copy is unaffected; ``dropout=0`` removes them), and the ``_bn``
variants (torchvision's ``vgg*_bn``): ``Conv2D`` (with bias, linear) ->
``BatchNormalization`` (``block{b}_conv{i}_bn``, torchvision's momentum 0.1 = Keras 0.9 and
epsilon 1e-5) -> ReLU (``block{b}_conv{i}_relu``).

Like keras.applications (and unlike torchvision, whose adaptive 7x7 average pool fixes fc1 at
25,088 inputs), the head flattens whatever map pool5 gives, so with ``include_top=True`` the
input size must be known and fc1's size follows it (7x7x512 at 224).
"""

from __future__ import annotations

from keras import layers

from keras_cnns._checks import check_bool, check_choice, check_probability
from keras_cnns.models._builder import classifier, family_builder
from keras_cnns.models._registry import register_model
from keras_cnns.layers.batch_norm import BatchNormalization

__all__ = ["VGG", "VGG11", "VGG13", "VGG16", "VGG19"]

#: Convolutions per block for each depth (the paper's configurations A, B, D, E).
VGG_CONFIGS = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
BLOCK_FILTERS = (64, 128, 256, 512, 512)

#: Five 2x2/2 pools: 32 -> 1. (31 would give 0.)
MIN_INPUT_SIZE = 32

_PAPER = ("K. Simonyan, A. Zisserman. Very Deep Convolutional Networks for Large-Scale Image "
          "Recognition. ICLR 2015 (arXiv:1409.1556)")


def _conv(x, filters, block, index, batch_norm):
    """``block{block}_conv{index}``: 3x3 same convolution + ReLU (with BN in between)."""
    name = f"block{block}_conv{index}"
    if not batch_norm:
        # keras.applications' exact layer: the ReLU lives inside the Conv2D.
        return layers.Conv2D(filters, 3, padding="same", activation="relu", name=name)(x)
    x = layers.Conv2D(filters, 3, padding="same", name=name)(x)
    x = BatchNormalization(axis=-1, momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


@family_builder
def VGG(depth=16, batch_norm=False, dropout=0.5, *, ctx):
    """Build VGG-``depth`` (11, 13, 16 or 19 weight layers).

    Input: default ``(224, 224, 3)``, sides >= 32; with the head, H and W must be known (it
    flattens the pool5 map). Without it the output is the ``block5_pool`` map (or its pooling).

    Args:
        depth: 11, 13, 16 or 19 (configurations A, B, D, E of the paper).
        batch_norm: add ``BatchNormalization`` after every convolution (torchvision ``vgg*_bn``).
        dropout: dropout rate after ``fc1`` and ``fc2`` (0.5 in the paper and torchvision; 0
            removes the layers, as in keras.applications).
{common_args}

    Returns:
        A ``keras.Model`` (default name ``"vgg{depth}"`` or ``"vgg{depth}_bn"``).

    Raises:
        ValueError: invalid argument (the message names it).
    """
    check_choice("depth", depth, sorted(VGG_CONFIGS))
    check_bool("batch_norm", batch_norm)
    dropout = check_probability("dropout", dropout)
    x = ctx.start(default_shape=(224, 224, 3), min_size=MIN_INPUT_SIZE, require_static=True)
    features = {}
    for block, (n_convs, filters) in enumerate(zip(VGG_CONFIGS[depth], BLOCK_FILTERS), start=1):
        for index in range(1, n_convs + 1):
            x = _conv(x, filters, block, index, batch_norm)
        if block > 1:  # block b's convolutions run at stride 2^(b-1) (block 1's at 1: no level)
            features[f"P{block - 1}"] = x
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    features["P5"] = x

    def head(x):
        x = layers.Flatten(name="flatten")(x)
        for i in (1, 2):
            x = layers.Dense(4096, activation="relu", name=f"fc{i}")(x)
            if dropout > 0:
                x = layers.Dropout(dropout, name=f"fc{i}_drop")(x)
        return classifier(x, ctx.classes, ctx.classifier_activation)

    return ctx.finish(x, head, default_name=f"vgg{depth}_bn" if batch_norm else f"vgg{depth}",
                      features=features)


def _variant(depth):
    def builder(batch_norm=False, **kwargs):
        return VGG(depth, batch_norm=batch_norm, **kwargs)

    builder.__name__ = f"VGG{depth}"
    builder.__qualname__ = builder.__name__
    builder.__doc__ = (
        f"VGG-{depth}: ``VGG(depth={depth}, batch_norm=batch_norm, **kwargs)``; see :func:`VGG`."
    )
    return builder


VGG11 = _variant(11)
VGG13 = _variant(13)
VGG16 = _variant(16)
VGG19 = _variant(19)

# (name, depth, batch_norm); reference figures: reference_figures.csv
_VARIANTS = (
    ("vgg11", 11, False), ("vgg13", 13, False), ("vgg16", 16, False), ("vgg19", 19, False),
    ("vgg11_bn", 11, True), ("vgg13_bn", 13, True), ("vgg16_bn", 16, True), ("vgg19_bn", 19, True),
)

for _name, _depth, _bn in _VARIANTS:
    register_model(
        _name,
        family="VGG",
        paper=_PAPER,
        builder=VGG,
        default_input_shape=(224, 224, 3),
        min_input_size=MIN_INPUT_SIZE,
        depth=_depth,
        batch_norm=_bn,
    )
del _name, _depth, _bn
