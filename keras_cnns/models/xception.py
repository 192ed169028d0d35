"""Xception (Chollet 2017): entry, middle and exit flows of depthwise separable convolutions with
residual connections.

Paper: F. Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017
(arXiv:1610.02357). Fig. 5: the entry flow (two 3x3 convolutions, 32 and 64 maps, the first
with stride 2; three modules of ReLU -> separable 3x3 -> ReLU -> separable 3x3 -> 3x3 / 2 max
pool with 128, 256, 728 maps, each added to a 1x1 / 2 convolution of its input), the middle flow
(eight modules of three ReLU -> separable 3x3 with 728 maps, identity shortcut) and the exit flow
(ReLU -> separable 728 -> ReLU -> separable 1024 -> max pool, added to a 1x1 / 2 projection;
separable 1536 and 2048, each followed by ReLU; global average pooling; the classifier). "All
Convolution and SeparableConvolution layers are followed by batch normalization"; the separable
convolutions have no intermediate non-linearity between their depthwise and pointwise halves
(Sec. 4.7). Table 3: 22,855,952 parameters, keras.applications' trainable
count (BatchNorm moving statistics are the other 54,528 of its 22,910,480).

Reference code: keras.applications ``keras/src/applications/xception.py`` (``Xception``), whose
layer names we keep (``block1_conv1``, ``block1_conv1_bn``, ``block1_conv1_act``, ...,
``block{b}_sepconv{i}``, ``block{b}_sepconv{i}_bn``, ``block{b}_sepconv{i}_act``,
``block{b}_pool``, ``avg_pool``, ``predictions``; its unnamed shortcut convolutions and their BN
are ``block{b}_shortcut_conv`` / ``_bn`` here and ``block{b}_add`` its unnamed sums): the first two
convolutions are "valid", every other layer "same"; BatchNormalization is Keras' default
(epsilon 1e-3, momentum 0.99). The weights copy one-to-one with
:func:`keras_cnns.from_keras_applications`. Our separable convolution is
:class:`keras_cnns.layers.separable_conv.SeparableConv2D`: keras' layer and weights, its
depthwise half on the library's depthwise dispatch (the custom op or TF's kernel, whichever was
measured faster for the shape). BatchNormalization is :class:`keras_cnns.layers.BatchNormalization`
(TF's fused training kernel).

Sec. 4.2 - 4.3 (ImageNet optimisation and regularisation): SGD momentum 0.9, lr 0.045 decayed by
0.94 every 2 epochs, weight decay 1e-5, dropout 0.5 before the logistic regression layer, no
auxiliary tower: the "paper" recipe (``_recipes.py``) and the ``dropout`` knob (default 0, as
keras.applications).

Feature levels: P1 ``block1_conv2_act`` (64), P2 ``block2_add`` (128), P3 ``block3_add`` (256),
P4 ``block12_add`` (728, the end of the middle flow), P5 ``block14_sepconv2_act`` (2048). The
two valid 3x3 convolutions give P1 a side of ``floor((H - 7) / 2) + 1``; the "same" pools after
them keep that arithmetic (``floor((H - 7) / 2^k) + 1``, extent 7 at every level).
keras.applications refuses inputs below 71 px; the network itself needs 7, and builds here from
32 px (a 1x1 P5).
"""

from __future__ import annotations

from keras import layers

from keras_cnns._checks import check_float
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.separable_conv import SeparableConv2D
from keras_cnns.models._builder import family_builder, feature_level
from keras_cnns.models._registry import register_model
from keras_cnns.models.heads import pooled_classifier

__all__ = ["Xception"]

_PAPER = ("F. Chollet. Xception: Deep Learning with Depthwise Separable Convolutions. CVPR 2017 "
          "(arXiv:1610.02357)")
_MIN_SIZE = 32
_EXTENT = 7  # two valid 3x3 convolutions (stride 2, then 1) before every level
MIDDLE_BLOCKS = 8


def _sepconv_bn(x, filters, name):
    x = SeparableConv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    return BatchNormalization(name=f"{name}_bn")(x)


def _relu(x, name):
    return layers.Activation("relu", name=name)(x)


def _shortcut(x, filters, block):
    r = layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False,
                      name=f"{block}_shortcut_conv")(x)
    return BatchNormalization(name=f"{block}_shortcut_bn")(r)


def _entry_module(x, filters, block, first):
    """[ReLU] -> sep -> ReLU -> sep -> max pool 3x3/2, plus a 1x1/2 projection of the input.
    The first module reads the stem's ReLU output, so it has no leading ReLU."""
    residual = _shortcut(x, filters, block)
    if not first:
        x = _relu(x, f"{block}_sepconv1_act")
    x = _sepconv_bn(x, filters, f"{block}_sepconv1")
    x = _relu(x, f"{block}_sepconv2_act")
    x = _sepconv_bn(x, filters, f"{block}_sepconv2")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{block}_pool")(x)
    return layers.Add(name=f"{block}_add")([x, residual])


@family_builder
def Xception(dropout=0.0, *, ctx):
    """Xception (Chollet 2017, Fig. 5) as a functional Keras model, keras.applications' layout.

    Args:
        dropout: dropout rate before the classifier, in ``[0, 1)`` (the paper's ImageNet runs:
            0.5; keras.applications: none).
{common_args}

    Returns:
        A ``keras.Model`` (default name ``xception``).

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    dropout = check_float("dropout", dropout, low=0.0, high=1.0, high_inclusive=False)

    img_input = ctx.start(default_shape=(299, 299, 3), min_size=_MIN_SIZE)
    # entry flow
    x = layers.Conv2D(32, 3, strides=2, use_bias=False, name="block1_conv1")(img_input)
    x = BatchNormalization(name="block1_conv1_bn")(x)
    x = _relu(x, "block1_conv1_act")
    x = layers.Conv2D(64, 3, use_bias=False, name="block1_conv2")(x)
    x = BatchNormalization(name="block1_conv2_bn")(x)
    x = _relu(x, "block1_conv2_act")
    features = {"P1": x}
    x = _entry_module(x, 128, "block2", first=True)
    features["P2"] = x
    x = _entry_module(x, 256, "block3", first=False)
    features["P3"] = x
    x = _entry_module(x, 728, "block4", first=False)
    # middle flow
    for i in range(MIDDLE_BLOCKS):
        block = f"block{i + 5}"
        residual = x
        for j in (1, 2, 3):
            x = _relu(x, f"{block}_sepconv{j}_act")
            x = _sepconv_bn(x, 728, f"{block}_sepconv{j}")
        x = layers.Add(name=f"{block}_add")([x, residual])
    features["P4"] = x
    # exit flow
    block = f"block{MIDDLE_BLOCKS + 5}"
    residual = _shortcut(x, 1024, block)
    x = _relu(x, f"{block}_sepconv1_act")
    x = _sepconv_bn(x, 728, f"{block}_sepconv1")
    x = _relu(x, f"{block}_sepconv2_act")
    x = _sepconv_bn(x, 1024, f"{block}_sepconv2")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{block}_pool")(x)
    x = layers.Add(name=f"{block}_add")([x, residual])
    block = f"block{MIDDLE_BLOCKS + 6}"
    x = _relu(_sepconv_bn(x, 1536, f"{block}_sepconv1"), f"{block}_sepconv1_act")
    x = _relu(_sepconv_bn(x, 2048, f"{block}_sepconv2"), f"{block}_sepconv2_act")
    features["P5"] = x
    features = {k: feature_level(k, t, extent=_EXTENT) for k, t in features.items()}
    return ctx.finish(x, lambda t: pooled_classifier(t, ctx, dropout=dropout),
                      default_name="xception", features=features)


# reference figures: reference_figures.csv
register_model("xception", family="Xception", paper=_PAPER, builder=Xception,
               default_input_shape=(299, 299, 3), min_input_size=_MIN_SIZE)
