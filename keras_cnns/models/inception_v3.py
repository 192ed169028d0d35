"""Inception-v3 (Szegedy et al. 2016): keras.applications' layout and torchvision's, with its
auxiliary classifier.

Paper: C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna, "Rethinking the Inception
Architecture for Computer Vision", CVPR 2016 (arXiv:1512.00567).

* Sec. 3.1: a 5x5 convolution factorised into two 3x3 ones (block A, Fig. 5: the 35x35 grid).
* Sec. 3.2: an n x n convolution factorised into 1 x n followed by n x 1 (block B, Fig. 6, with
  n = 7 on the 17x17 grid; block C, Fig. 7, the expanded-filter-bank 1x3 / 3x1 pairs on the 8x8
  grid).
* Sec. 5, Fig. 10: efficient grid-size reduction, a stride-2 convolution branch beside a stride-2
  pooling branch, concatenated (Mixed_6a 35 -> 17, Mixed_7a 17 -> 8).
* Sec. 4: one auxiliary classifier on the 17x17 grid (on top of the last 17x17 layer), acting as a
  regulariser; with batch-normalised layers in it (Sec. 4 and 7, "Inception-v2 ... BN-auxiliary").
* Sec. 6, Table 1: the network at 299x299: three 3x3 convolutions, a pool, 1x1 (80) and 3x3
  (192) convolutions, a pool, 3 x block A, reduction, 4 x block B, reduction, 2 x block C, pool,
  the classifier.
* Sec. 7: label-smoothing regularisation (``epsilon = 0.1``): in the "paper" training recipe.
* Sec. 8: RMSProp (decay 0.9, epsilon 1.0), lr 0.045 decayed by 0.94 every two epochs, gradient
  clipping at 2.0, batch 32 on each of 50 replicas: the "paper" recipe (``_recipes.py``).

Reference code (both reproduce the released networks, which the paper's table abbreviates):

* keras.applications ``keras/src/applications/inception_v3.py`` (``layout="keras"``, the default;
  the registered ``inception_v3``): no auxiliary head, every convolution bias-free and followed
  by ``BatchNormalization(scale=False)`` (no gamma; epsilon 1e-3, momentum 0.99) and a ReLU,
  block pools ``AveragePooling2D(3, 1, "same")`` (padding excluded from the mean), the head a
  global average pool and ``Dense`` (``avg_pool``, ``predictions``). Our concatenations carry
  its names (``mixed0`` ... ``mixed10``, ``mixed9_0``, ``mixed9_1``); its other layers are
  unnamed there, so the weights copy in order (:func:`keras_cnns.from_keras_applications`).
* torchvision ``torchvision/models/inception.py`` (``Inception3``, ``layout="torchvision"``, the
  registered ``inception_v3_torchvision``): BatchNorm with gamma (``eps=0.001``, torch momentum
  0.1 = Keras 0.9), block pools ``avg_pool2d(3, 1, padding=1)`` with torch's default
  ``count_include_pad=True`` (zero padding counted in the mean: here ``ZeroPadding2D(1)`` and a
  valid pool), dropout 0.5 before ``fc``, and ``InceptionAux`` on ``Mixed_6e``: average pool
  5x5 / 3, ``conv0`` 1x1 128 + BN + ReLU, ``conv1`` 5x5 768 + BN + ReLU, adaptive average pool
  to 1x1, ``fc`` (no dropout). Kernels are initialised as there: normal with std 0.1 (0.01 for
  ``AuxLogits.conv1``, 0.001 for ``AuxLogits.fc``; torch's truncation at +-2 is 20 std away).
  Our layer names are its module names (``Mixed_5b_branch5x5_1_conv`` = ``Mixed_5b.branch5x5_1
  .conv``), so :func:`torchvision_names` pairs them for :func:`keras_cnns.from_torchvision`.

The auxiliary classifier is the model's second output (``aux``) with loss weight 0.3, GoogLeNet's
(Szegedy et al. 2015; the Inception-v3 paper gives none); the served model
(SavedModel, ``served_model``) has the main output only. torchvision's head needs the 17x17-grid
map to be at least 17 wide (299 px and up): there it is reproduced exactly. On smaller inputs
(the head is built at any size >= 75) the 5x5 / 3 pool becomes a global pool when the map is
narrower than 5, and ``conv1`` pads ("same") when the pooled map is narrower than 5; its weights
are the same.

Feature levels (timm's ``inception_v3`` feature_info): P1 ``Conv2d_2b_3x3`` (64), P2
``Conv2d_4a_3x3`` (192), P3 ``mixed2`` (288), P4 ``mixed7`` (768), P5 ``mixed10`` (2048). Every
reduction is a valid convolution or pool, so their sides are ``floor((H - E) / 2^k) + 1`` with
extents 7, 19, 27, 43 and 75; 75 px (keras.applications' minimum) gives a 1x1 P5.
"""

from __future__ import annotations

from keras import layers

from keras_cnns._checks import check_bool, check_choice, check_float, fail
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.models._builder import family_builder, feature_level
from keras_cnns.models._registry import register_model
from keras_cnns.models.heads import pooled_classifier

__all__ = ["InceptionV3", "LAYOUTS", "torchvision_names"]

_PAPER = ("C. Szegedy, V. Vanhoucke, S. Ioffe, J. Shlens, Z. Wojna. Rethinking the Inception "
          "Architecture for Computer Vision. CVPR 2016 (arXiv:1512.00567)")
_MIN_SIZE = 75  # P5 side floor((H - 75) / 32) + 1 >= 1
#: The auxiliary head's loss weight (GoogLeNet's 0.3, Szegedy et al. 2015).
AUX_LOSS_WEIGHT = 0.3


def _normal(std):
    return {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": std}}


#: Layer settings of each layout (module docstring).
LAYOUTS = {
    "keras": dict(bn_scale=False, bn_momentum=0.99, count_include_pad=False,
                  kernel_initializer="glorot_uniform", aux_conv1_initializer="glorot_uniform",
                  aux_fc_initializer="glorot_uniform", dense_initializer="glorot_uniform",
                  aux_logits=False, dropout=0.0),
    "torchvision": dict(bn_scale=True, bn_momentum=0.9, count_include_pad=True,
                        kernel_initializer=_normal(0.1), aux_conv1_initializer=_normal(0.01),
                        aux_fc_initializer=_normal(0.001), dense_initializer=_normal(0.1),
                        aux_logits=True, dropout=0.5),
}
BN_EPSILON = 1e-3  # both layouts (Keras' default; torchvision's BasicConv2d eps=0.001)


class _Builder:
    """The layers of one build: ``conv(x, filters, kernel, name)`` = Conv -> BN -> ReLU with the
    layout's settings; ``avg_pool(x, name)`` the blocks' 3x3 / 1 average pool."""

    def __init__(self, settings):
        self.s = settings

    def conv(self, x, filters, kernel, name, strides=1, padding="same", initializer=None):
        s = self.s
        x = layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False,
                          kernel_initializer=initializer or s["kernel_initializer"],
                          name=f"{name}_conv")(x)
        x = BatchNormalization(scale=s["bn_scale"], epsilon=BN_EPSILON,
                               momentum=s["bn_momentum"], name=f"{name}_bn")(x)
        return layers.Activation("relu", name=name)(x)

    def avg_pool(self, x, name):
        if self.s["count_include_pad"]:  # torch's avg_pool2d(3, 1, padding=1): zeros counted
            x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
            return layers.AveragePooling2D(3, strides=1, padding="valid", name=name)(x)
        return layers.AveragePooling2D(3, strides=1, padding="same", name=name)(x)


def _block_a(b, x, pool_features, block, name):
    """Fig. 5 (35x35): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | pool -> 1x1 (torchvision's
    InceptionA keeps the released 5x5 branch beside the factorised double 3x3)."""
    b1 = b.conv(x, 64, 1, f"{block}_branch1x1")
    b5 = b.conv(x, 48, 1, f"{block}_branch5x5_1")
    b5 = b.conv(b5, 64, 5, f"{block}_branch5x5_2")
    b3 = b.conv(x, 64, 1, f"{block}_branch3x3dbl_1")
    b3 = b.conv(b3, 96, 3, f"{block}_branch3x3dbl_2")
    b3 = b.conv(b3, 96, 3, f"{block}_branch3x3dbl_3")
    bp = b.avg_pool(x, f"{block}_pool")
    bp = b.conv(bp, pool_features, 1, f"{block}_branch_pool")
    return layers.Concatenate(name=name)([b1, b5, b3, bp])


def _reduction_a(b, x, block, name):
    """Fig. 10 (35 -> 17): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2, all valid."""
    b3 = b.conv(x, 384, 3, f"{block}_branch3x3", strides=2, padding="valid")
    bd = b.conv(x, 64, 1, f"{block}_branch3x3dbl_1")
    bd = b.conv(bd, 96, 3, f"{block}_branch3x3dbl_2")
    bd = b.conv(bd, 96, 3, f"{block}_branch3x3dbl_3", strides=2, padding="valid")
    bp = layers.MaxPooling2D(3, strides=2, name=f"{block}_pool")(x)
    return layers.Concatenate(name=name)([b3, bd, bp])


def _block_b(b, x, c7, block, name):
    """Fig. 6 (17x17, n = 7): 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 |
    pool -> 1x1."""
    b1 = b.conv(x, 192, 1, f"{block}_branch1x1")
    b7 = b.conv(x, c7, 1, f"{block}_branch7x7_1")
    b7 = b.conv(b7, c7, (1, 7), f"{block}_branch7x7_2")
    b7 = b.conv(b7, 192, (7, 1), f"{block}_branch7x7_3")
    bd = b.conv(x, c7, 1, f"{block}_branch7x7dbl_1")
    bd = b.conv(bd, c7, (7, 1), f"{block}_branch7x7dbl_2")
    bd = b.conv(bd, c7, (1, 7), f"{block}_branch7x7dbl_3")
    bd = b.conv(bd, c7, (7, 1), f"{block}_branch7x7dbl_4")
    bd = b.conv(bd, 192, (1, 7), f"{block}_branch7x7dbl_5")
    bp = b.avg_pool(x, f"{block}_pool")
    bp = b.conv(bp, 192, 1, f"{block}_branch_pool")
    return layers.Concatenate(name=name)([b1, b7, bd, bp])


def _reduction_b(b, x, block, name):
    """Fig. 10 (17 -> 8): 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool 3x3/2."""
    b3 = b.conv(x, 192, 1, f"{block}_branch3x3_1")
    b3 = b.conv(b3, 320, 3, f"{block}_branch3x3_2", strides=2, padding="valid")
    b7 = b.conv(x, 192, 1, f"{block}_branch7x7x3_1")
    b7 = b.conv(b7, 192, (1, 7), f"{block}_branch7x7x3_2")
    b7 = b.conv(b7, 192, (7, 1), f"{block}_branch7x7x3_3")
    b7 = b.conv(b7, 192, 3, f"{block}_branch7x7x3_4", strides=2, padding="valid")
    bp = layers.MaxPooling2D(3, strides=2, name=f"{block}_pool")(x)
    return layers.Concatenate(name=name)([b3, b7, bp])


def _block_c(b, x, block, name, inner_name):
    """Fig. 7 (8x8): 1x1 | 1x1 -> (1x3, 3x1) | 1x1 -> 3x3 -> (1x3, 3x1) | pool -> 1x1."""
    b1 = b.conv(x, 320, 1, f"{block}_branch1x1")
    b3 = b.conv(x, 384, 1, f"{block}_branch3x3_1")
    b3 = layers.Concatenate(name=inner_name)([b.conv(b3, 384, (1, 3), f"{block}_branch3x3_2a"),
                                              b.conv(b3, 384, (3, 1), f"{block}_branch3x3_2b")])
    bd = b.conv(x, 448, 1, f"{block}_branch3x3dbl_1")
    bd = b.conv(bd, 384, 3, f"{block}_branch3x3dbl_2")
    bd = layers.Concatenate(name=f"{block}_branch3x3dbl")(
        [b.conv(bd, 384, (1, 3), f"{block}_branch3x3dbl_3a"),
         b.conv(bd, 384, (3, 1), f"{block}_branch3x3dbl_3b")])
    bp = b.avg_pool(x, f"{block}_pool")
    bp = b.conv(bp, 192, 1, f"{block}_branch_pool")
    return layers.Concatenate(name=name)([b1, b3, bd, bp])


def _aux_head(b, x, ctx, name="aux"):
    """torchvision's ``InceptionAux`` (module docstring): the output layer is ``name``."""
    s = b.s
    h, w = x.shape[1], x.shape[2]
    if h is not None and w is not None and min(h, w) < 5:
        x = layers.GlobalAveragePooling2D(keepdims=True, name="AuxLogits_pool")(x)
    else:
        x = layers.AveragePooling2D(5, strides=3, name="AuxLogits_pool")(x)
    x = b.conv(x, 128, 1, "AuxLogits_conv0")
    h, w = x.shape[1], x.shape[2]
    small = h is not None and w is not None and min(h, w) < 5
    x = b.conv(x, 768, 5, "AuxLogits_conv1", padding="same" if small else "valid",
               initializer=s["aux_conv1_initializer"])
    x = layers.GlobalAveragePooling2D(name="AuxLogits_avgpool")(x)
    return layers.Dense(ctx.classes, activation=ctx.classifier_activation,
                        kernel_initializer=s["aux_fc_initializer"], name=name)(x)


@family_builder
def InceptionV3(layout="keras", aux_logits=None, dropout=None, *, ctx):
    """Inception-v3 (Szegedy et al. 2016, Table 1) as a functional Keras model.

    Args:
        layout: ``"keras"`` (keras.applications' network: BN without gamma, no auxiliary head)
            or ``"torchvision"`` (torchvision's ``inception_v3``: BN with gamma, padding counted
            in the blocks' average pools, dropout, the auxiliary head): see the module
            docstring.
        aux_logits: build the auxiliary classifier on the 17x17 grid (``Mixed_6e``) as a second
            output ``aux`` (loss weight 0.3; not served). ``None``: the layout's (keras
            ``False``, torchvision ``True`` with ``include_top``). ``True`` needs
            ``include_top``.
        dropout: dropout rate before the classifier, in ``[0, 1)``. ``None``: the layout's
            (keras 0, torchvision 0.5).
{common_args}

    Returns:
        A ``keras.Model`` (default name ``inception_v3`` or ``inception_v3_torchvision``); with
        the auxiliary head its outputs are ``[predictions, aux]``.

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    check_choice("layout", layout, sorted(LAYOUTS))
    s = LAYOUTS[layout]
    if aux_logits is None:  # the layout's, when there is a head to put it beside
        aux_logits = s["aux_logits"] and ctx.include_top
    check_bool("aux_logits", aux_logits)
    dropout = s["dropout"] if dropout is None else check_float(
        "dropout", dropout, low=0.0, high=1.0, high_inclusive=False)
    if aux_logits and not ctx.include_top:
        fail("aux_logits", "needs the classifier head (include_top=True); the auxiliary "
                           "classifier is an output of the training model", aux_logits)
    b = _Builder(s)

    img_input = ctx.start(default_shape=(299, 299, 3), min_size=_MIN_SIZE)
    x = b.conv(img_input, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
    x = b.conv(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
    x = b.conv(x, 64, 3, "Conv2d_2b_3x3")
    p1 = x
    x = layers.MaxPooling2D(3, strides=2, name="maxpool1")(x)
    x = b.conv(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
    x = b.conv(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
    p2 = x
    x = layers.MaxPooling2D(3, strides=2, name="maxpool2")(x)
    x = _block_a(b, x, 32, "Mixed_5b", "mixed0")
    x = _block_a(b, x, 64, "Mixed_5c", "mixed1")
    x = _block_a(b, x, 64, "Mixed_5d", "mixed2")
    p3 = x
    x = _reduction_a(b, x, "Mixed_6a", "mixed3")
    for i, (block, c7) in enumerate((("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160),
                                     ("Mixed_6e", 192))):
        x = _block_b(b, x, c7, block, f"mixed{4 + i}")
    p4 = x
    if aux_logits and ctx.head:
        ctx.auxiliary(p4, lambda t: _aux_head(b, t, ctx), name="aux",
                      loss_weight=AUX_LOSS_WEIGHT)
    x = _reduction_b(b, x, "Mixed_7a", "mixed8")
    x = _block_c(b, x, "Mixed_7b", "mixed9", "mixed9_0")
    x = _block_c(b, x, "Mixed_7c", "mixed10", "mixed9_1")
    # valid convolutions and pools: extents 7, 19, 27, 43, 75 (module docstring)
    features = {f"P{k}": feature_level(f"P{k}", t, extent=e)
                for k, t, e in ((1, p1, 7), (2, p2, 19), (3, p3, 27), (4, p4, 43), (5, x, 75))}
    default_name = "inception_v3" if layout == "keras" else "inception_v3_torchvision"

    def head(t):
        return pooled_classifier(t, ctx, dropout=dropout,
                                 kernel_initializer=s["dense_initializer"])

    return ctx.finish(x, head, default_name=default_name, features=features)


def _all_layers(model):
    """Every layer of ``model``, nested ones included."""
    found, stack = [], [model]
    while stack:
        layer = stack.pop()
        for child in getattr(layer, "_flatten_layers", lambda **k: [])(include_self=False,
                                                                       recursive=False):
            found.append(child)
            stack.append(child)
    return found


def torchvision_names(model):
    """``(keras layer, torchvision module)`` pairs of an Inception-v3 built with
    ``layout="torchvision"``: ``{name}_conv`` / ``{name}_bn`` -> ``{module}.conv`` /
    ``{module}.bn`` with ``Mixed_5b_branch1x1`` -> ``Mixed_5b.branch1x1``, ``AuxLogits_conv0``
    -> ``AuxLogits.conv0``, ``Conv2d_1a_3x3`` -> ``Conv2d_1a_3x3``; ``predictions`` -> ``fc``,
    ``aux`` -> ``AuxLogits.fc``.

    Raises:
        ValueError: a model built with ``layout="keras"`` (its BatchNorms have no gamma).
    """
    pairs = []
    for layer in _all_layers(model):
        name = layer.name
        if isinstance(layer, BatchNormalization) and not layer.scale:
            fail("model", "must be built with layout='torchvision' (torchvision's BatchNorms "
                          "have gamma; this model's have none)", model.name)
        for suffix in ("_conv", "_bn"):
            if name.endswith(suffix) and (name.startswith(("Conv2d_", "Mixed_", "AuxLogits_"))):
                module = name[: -len(suffix)]
                if module.startswith("Mixed_"):  # Mixed_5b_branch1x1 -> Mixed_5b.branch1x1
                    module = f"{module[:8]}.{module[9:]}"
                elif module.startswith("AuxLogits_"):
                    module = f"AuxLogits.{module[10:]}"
                pairs.append((name, f"{module}.{suffix[1:]}"))
        if name == "predictions":
            pairs.append((name, "fc"))
        elif name == "aux":
            pairs.append((name, "AuxLogits.fc"))
    return pairs


# reference figures: reference_figures.csv
register_model("inception_v3", family="Inception-v3", paper=_PAPER, builder=InceptionV3,
               default_input_shape=(299, 299, 3), min_input_size=_MIN_SIZE, layout="keras")
register_model("inception_v3_torchvision", family="Inception-v3", paper=_PAPER,
               builder=InceptionV3, default_input_shape=(299, 299, 3), min_input_size=_MIN_SIZE,
               layout="torchvision")
