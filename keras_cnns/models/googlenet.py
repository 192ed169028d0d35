"""GoogLeNet (Inception v1) with its auxiliary classifiers, and BN-Inception (Inception-v2 of the
batch-normalisation paper).

Papers:

* Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich, "Going Deeper with
  Convolutions", CVPR 2015 (arXiv:1409.4842). Table 1: a 7x7/2 convolution (64), 3x3/2 max pool,
  a 1x1 (64) and a 3x3 (192) convolution, 3x3/2 max pool, Inception 3a, 3b, 3x3/2 max pool,
  4a..4e, 3x3/2 max pool, 5a, 5b, 7x7 average pool, 40% dropout, a linear layer, softmax. An
  Inception module concatenates a 1x1 branch, 1x1 -> 3x3, 1x1 -> 5x5 and 3x3 max pool -> 1x1
  ("pool proj"); every convolution has a bias and a ReLU; Fig. 3 puts local response
  normalisation after the first max pool and before the second. Section 5: two auxiliary
  classifiers on the outputs of 4a and 4d, each "an average pooling layer with 5x5 filter size and
  stride 3 ..., a 1x1 convolution with 128 filters ..., a fully connected layer with 1024 units and
  rectified linear activation, a dropout layer with 70% ratio of dropped outputs, a linear layer
  with softmax loss as the classifier"; "during training, their loss gets added to the total loss
  of the network with a discount weight (the losses of the auxiliary classifiers were weighted by
  0.3). At inference time, these auxiliary networks are discarded."
* Ioffe, Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing Internal
  Covariate Shift", ICML 2015 (arXiv:1502.03167). Sec. 4.2 and Fig. 5 (the appendix's table):
  the Inception network with batch normalisation after every convolution, the 5x5 convolutions
  replaced by two stacked 3x3 ("double 3x3") convolutions, 28x28 modules 3a, 3b, the stride-2
  modules 3c and 4e (no 1x1 branch, their 3x3 and double-3x3 branches with stride 2, and a 3x3/2
  max pool passed through without projection), average or max pooling with a projection in the
  others (5b: max), the 7x7 average pool, the linear classifier. No auxiliary classifier and no
  local response normalisation (Sec. 4.2.1 removes it).

Layouts of :func:`GoogLeNet`:

* ``layout="paper"`` (``googlenet``, 6,998,552 parameters, 13,378,280 with the auxiliary
  classifiers): Table 1 and Sec. 5 as written. The layer settings the paper leaves out are those
  of the BVLC reproduction in Caffe (``models/bvlc_googlenet/train_val.prototxt``): LRN over 5
  channels with alpha 1e-4 and beta 0.75 (Caffe's ``k = 1``; Caffe's alpha is per element, as
  :class:`~keras_cnns.layers.lrn.LocalResponseNormalization` takes it), "xavier" kernels (uniform
  with variance 1 / fan_in: Keras' ``lecun_uniform``) and biases 0.2. Padding is TensorFlow's
  "same" everywhere, which gives Table 1's sizes at 224 (the paper gives no other); the main
  head is a global average pool (Table 1's 7x7 average pool at 224), the auxiliary heads are
  :func:`keras_cnns.models.heads.auxiliary_classifier` (average pool 5x5/3, 1x1 conv 128 with
  bias, FC 1024, dropout 0.7, FC): they flatten their pooled map, so a model with them needs a
  static input size.
* ``layout="torchvision"`` (``googlenet_torchvision``, 6,624,904 / 13,004,888): torchvision's
  ``torchvision/models/googlenet.py`` exactly, so that :func:`keras_cnns.from_torchvision` copies
  its weights (layer names below, :func:`torchvision_names`): every convolution without bias,
  followed by BatchNorm (eps 1e-3, momentum 0.1, Keras 0.9) and ReLU; no LRN; the "5x5" branch is
  a 3x3 convolution (vision issue #906: torchvision's weights are ported from a model built that
  way); the 3x3/2 max pools and the 2x2/2 one before 5a in ceil mode
  (:func:`keras_cnns.layers.max_pool_ceil`); conv1's padding 3 on both sides; dropout 0.2 before
  the classifier; ``InceptionAux``: adaptive average pool to 4x4, 1x1 conv 128 + BN + ReLU,
  flatten (torch's C, H, W order: the bridge permutes the rows), fc1 2048 -> 1024 + ReLU,
  dropout 0.7, fc2. Kernels: He-normal convolutions, Glorot-uniform fully connected layers, not
  torchvision's ``init_weights=True`` normal with std 0.01: through 22 BatchNorms with unit
  statistics that leaves the inference-mode logits of a new model near 1e-12 (its released
  weights were ported from the paper's model, not trained from that initialisation).

Outputs: with ``aux_logits=True`` (the default) and the head built, the model is the training
model with three outputs, ``[predictions, aux1, aux2]`` (main first; torchvision returns
``(logits, aux2, aux1)`` in training mode), the auxiliary ones declared with
:meth:`BuildContext.auxiliary` (kind ``"auxiliary"``, loss weight 0.3, not served): ``train()``
weights their losses by 0.3, the SavedModel and TFLite exports serve the main output only, and
:func:`keras_cnns.models.heads.served_model` is the main-output model sharing the weights.
``aux_logits=False`` builds the served network alone.

Feature levels (no auxiliary branch is a level): P1 conv1's ReLU, P2 the last stride-4 map
(``norm2`` in the paper layout, conv3's ReLU in torchvision's), P3 ``inception3b``, P4
``inception4e``, P5 ``inception5b`` (BN-Inception: P4 ``inception4d``). With "same" padding every
level has side ``ceil(H / stride)``; torchvision's ceil-mode pools give
``floor((H - E) / stride) + 1`` with extents 3, 7, 15, 15 at P2..P5. The minimum input side is 32
(P5 1x1; torchvision's own minimum is 15).

Training on the embedded digits (measured, 2 CPU cores shared with other jobs):
``keras-cnns train googlenet --image-size 32 --epochs 12`` (the library's default recipe: Adam
1e-3, 2-epoch warm-up, poly decay, batch 64; auxiliary losses weighted 0.3) reached 0.9806
held-out top-1 in 127 s; with the default 30 epochs, 0.9889 in 290 s;
``googlenet_torchvision`` (BatchNorm) with the same 12-epoch command 0.9806 (0.94 after two
epochs). The SavedModel they export serves the main output only.
"""

from __future__ import annotations

import keras
from keras import layers

from keras_cnns._checks import check_bool, check_choice, check_probability, fail
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.lrn import LocalResponseNormalization
from keras_cnns.layers.pooling import max_pool_ceil
from keras_cnns.models._builder import family_builder, feature_level
from keras_cnns.models._registry import register_model
from keras_cnns.models.heads import auxiliary_classifier, classifier

__all__ = ["BNInception", "BN_INCEPTION_BLOCKS", "GOOGLENET_BLOCKS", "GoogLeNet", "LAYOUTS",
           "torchvision_names"]

_GOOGLENET_PAPER = ("C. Szegedy, W. Liu, Y. Jia, P. Sermanet, S. Reed, D. Anguelov, D. Erhan, "
                    "V. Vanhoucke, A. Rabinovich. Going Deeper with Convolutions. CVPR 2015 "
                    "(arXiv:1409.4842)")
_BN_PAPER = ("S. Ioffe, C. Szegedy. Batch Normalization: Accelerating Deep Network Training by "
             "Reducing Internal Covariate Shift. ICML 2015 (arXiv:1502.03167)")

#: Table 1 of Szegedy et al. 2015: module -> (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5,
#: pool proj), in order; a 3x3/2 max pool follows 3b and 4e.
GOOGLENET_BLOCKS = (
    ("3a", (64, 96, 128, 16, 32, 32)),
    ("3b", (128, 128, 192, 32, 96, 64)),
    ("4a", (192, 96, 208, 16, 48, 64)),
    ("4b", (160, 112, 224, 24, 64, 64)),
    ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)),
    ("4e", (256, 160, 320, 32, 128, 128)),
    ("5a", (256, 160, 320, 32, 128, 128)),
    ("5b", (384, 192, 384, 48, 128, 128)),
)
_POOL_AFTER = {"3b": 3, "4e": 4}  # module -> the index of the max pool after it

#: Fig. 5 of Ioffe & Szegedy 2015: module -> (#1x1, #3x3 reduce, #3x3, double #3x3 reduce,
#: double #3x3, pool, pool proj, stride). Stride-2 modules have no 1x1 branch and pass the max
#: pool through (proj 0).
BN_INCEPTION_BLOCKS = (
    ("3a", (64, 64, 64, 64, 96, "avg", 32, 1)),
    ("3b", (64, 64, 96, 64, 96, "avg", 64, 1)),
    ("3c", (0, 128, 160, 64, 96, "max", 0, 2)),
    ("4a", (224, 64, 96, 96, 128, "avg", 128, 1)),
    ("4b", (192, 96, 128, 96, 128, "avg", 128, 1)),
    ("4c", (160, 128, 160, 128, 160, "avg", 128, 1)),
    ("4d", (96, 128, 192, 160, 192, "avg", 128, 1)),
    ("4e", (0, 128, 192, 192, 256, "max", 0, 2)),
    ("5a", (352, 192, 320, 160, 224, "avg", 128, 1)),
    ("5b", (352, 192, 320, 192, 224, "max", 128, 1)),
)

_MIN_SIZE = 32  # every level at least 1x1 (torchvision's ceil pools need >= 15)
_AUX_AT = {"4a": "aux1", "4d": "aux2"}
_AUX_WEIGHT = 0.3  # Sec. 5

#: Layer settings of each GoogLeNet layout (module docstring).
LAYOUTS = {
    "paper": dict(batch_norm=False, lrn=True, five=5, ceil_mode=False, dropout=0.4,
                  kernel_initializer="lecun_uniform", dense_initializer="lecun_uniform",
                  bias_initializer=0.2),
    "torchvision": dict(batch_norm=True, lrn=False, five=3, ceil_mode=True, dropout=0.2,
                        kernel_initializer={"class_name": "VarianceScaling",
                                            "config": {"scale": 2.0, "mode": "fan_in",
                                                       "distribution": "untruncated_normal"}},
                        dense_initializer="glorot_uniform",
                        bias_initializer=None, bn_epsilon=1e-3, bn_momentum=0.9),
}


def _conv(x, filters, kernel, s, *, name, strides=1, padding="same"):
    """``name_conv`` (+ ``name_bn``) + ``name_relu``: a convolution with bias and ReLU (paper) or
    without bias, BatchNorm and ReLU (torchvision, BN-Inception)."""
    bias = s["bias_initializer"]
    x = layers.Conv2D(filters, kernel, strides=strides, padding=padding,
                      use_bias=not s["batch_norm"], kernel_initializer=s["kernel_initializer"],
                      bias_initializer=keras.initializers.Constant(bias) if bias else "zeros",
                      name=f"{name}_conv")(x)
    if s["batch_norm"]:
        x = BatchNormalization(epsilon=s["bn_epsilon"], momentum=s["bn_momentum"],
                               name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _max_pool(x, s, *, name, pool_size=3):
    """A stride-2 max pool: ceil mode (torchvision; ``x`` is a ReLU output) or "same"."""
    if s["ceil_mode"]:
        return max_pool_ceil(x, pool_size, 2, name=name, nonnegative=True)
    return layers.MaxPooling2D(pool_size, strides=2, padding="same", name=name)(x)


def _lrn(x, name):
    """Caffe's LRN of bvlc_googlenet (local_size 5, alpha 1e-4, beta 0.75, k 1)."""
    return LocalResponseNormalization(depth_radius=2, bias=1.0, alpha=1e-4, beta=0.75,
                                      name=name)(x)


def inception_module(x, widths, s, *, name, five=5):
    """Szegedy et al. 2015's Inception module: ``[1x1, 1x1 -> 3x3, 1x1 -> five x five, 3x3 max
    pool -> 1x1]`` concatenated (``name_concat``). ``widths``: (#1x1, #3x3 reduce, #3x3,
    #5x5 reduce, #5x5, pool proj)."""
    n1, r3, n3, r5, n5, proj = widths
    b1 = _conv(x, n1, 1, s, name=f"{name}_branch1")
    b2 = _conv(x, r3, 1, s, name=f"{name}_branch2a")
    b2 = _conv(b2, n3, 3, s, name=f"{name}_branch2b")
    b3 = _conv(x, r5, 1, s, name=f"{name}_branch3a")
    b3 = _conv(b3, n5, five, s, name=f"{name}_branch3b")
    b4 = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_branch4_pool")(x)
    b4 = _conv(b4, proj, 1, s, name=f"{name}_branch4")
    return layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])


def _torchvision_aux(x, ctx, dropout, s, *, name):
    """torchvision's ``InceptionAux``: adaptive average pool to 4x4, 1x1 conv 128 + BN + ReLU,
    flatten, fc1 1024 + ReLU, dropout, fc2 (the output, named ``name``)."""
    h, w = x.shape[1], x.shape[2]
    if h == 1 or w == 1:
        # keras.layers.AdaptiveAveragePooling2D fails on a side of 1 (Keras 3.15); repeating
        # that row/column first gives the same bins (see alexnet.py)
        x = layers.UpSampling2D((2 if h == 1 else 1, 2 if w == 1 else 1),
                                name=f"{name}_repeat")(x)
    x = layers.AdaptiveAveragePooling2D((4, 4), name=f"{name}_pool")(x)
    x = _conv(x, 128, 1, s, name=name)
    x = layers.Flatten(name=f"{name}_flatten")(x)
    x = layers.Dense(1024, kernel_initializer=s["dense_initializer"], name=f"{name}_fc")(x)
    x = layers.ReLU(name=f"{name}_fc_relu")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return layers.Dense(ctx.classes, activation=ctx.classifier_activation,
                        kernel_initializer=s["dense_initializer"], name=name)(x)


def _head(x, ctx, dropout, kernel_initializer="glorot_uniform"):
    """Global average pool (Table 1's 7x7 average pool at 224), dropout, the classifier."""
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    return classifier(x, ctx.classes, ctx.classifier_activation,
                      kernel_initializer=kernel_initializer)


@family_builder
def GoogLeNet(layout="paper", aux_logits=True, dropout=None, aux_dropout=0.7, *, ctx):
    """GoogLeNet (Szegedy et al. 2015, Table 1), with its two auxiliary classifiers (Sec. 5).

    Args:
        layout: ``"paper"`` (conv biases, LRN, a true 5x5 branch, no BatchNorm) or
            ``"torchvision"`` (torchvision's ``googlenet``: BatchNorm, the 3x3 in the "5x5"
            branch, ceil-mode pools; build this for torchvision weights). See the module
            docstring.
        aux_logits: build the auxiliary classifiers at 4a and 4d as further outputs (the
            training model: ``[predictions, aux1, aux2]``, auxiliary loss weight 0.3, served
            without them). ``False``: the main output alone.
        dropout: the dropout before the classifier, in ``[0, 1)``; ``None``: the layout's (the
            paper's 0.4, torchvision's 0.2).
        aux_dropout: the dropout in the auxiliary classifiers, in ``[0, 1)`` (0.7 in both).
{common_args}

    Returns:
        A ``keras.Model`` (default name ``googlenet``, ``googlenet_torchvision`` for that
        layout); with the auxiliary heads a model of three outputs, main first.

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    check_choice("layout", layout, sorted(LAYOUTS))
    check_bool("aux_logits", aux_logits)
    s = LAYOUTS[layout]
    dropout = s["dropout"] if dropout is None else check_probability("dropout", dropout)
    aux_dropout = check_probability("aux_dropout", aux_dropout)

    img_input = ctx.start(default_shape=(224, 224, 3), min_size=_MIN_SIZE,
                          require_static=aux_logits)
    features = {}
    if s["ceil_mode"]:  # torchvision: padding 3 on both sides
        x = layers.ZeroPadding2D(3, name="conv1_pad")(img_input)
        x = _conv(x, 64, 7, s, strides=2, padding="valid", name="conv1")
    else:
        x = _conv(img_input, 64, 7, s, strides=2, name="conv1")
    features["P1"] = x
    x = _max_pool(x, s, name="pool1")
    if s["lrn"]:
        x = _lrn(x, "norm1")
    x = _conv(x, 64, 1, s, name="conv2")
    x = _conv(x, 192, 3, s, name="conv3")
    if s["lrn"]:
        x = _lrn(x, "norm2")
    features["P2"] = x
    x = _max_pool(x, s, name="pool2")
    for block, widths in GOOGLENET_BLOCKS:
        x = inception_module(x, widths, s, name=f"inception{block}", five=s["five"])
        if block in _AUX_AT and aux_logits:
            aux = _AUX_AT[block]
            if layout == "torchvision":
                def head(t, aux=aux):
                    return _torchvision_aux(t, ctx, aux_dropout, s, name=aux)
            else:
                def head(t, aux=aux):
                    return auxiliary_classifier(t, ctx.classes, ctx.classifier_activation,
                                                name=aux, dropout=aux_dropout)
            ctx.auxiliary(x, head, name=aux, loss_weight=_AUX_WEIGHT)
        if block in _POOL_AFTER:
            k = _POOL_AFTER[block]
            features[f"P{k}"] = x
            # the paper: 3x3/2; torchvision: 3x3/2 after 3b, 2x2/2 after 4e (both ceil mode)
            size = 2 if (s["ceil_mode"] and k == 4) else 3
            x = _max_pool(x, s, name=f"pool{k}", pool_size=size)
    features["P5"] = x
    if s["ceil_mode"]:  # floor((H - E) / 2^k) + 1 after the ceil-mode pools
        for level, extent in (("P2", 3), ("P3", 7), ("P4", 15), ("P5", 15)):
            features[level] = feature_level(level, features[level], extent=extent)
    default_name = "googlenet" if layout == "paper" else f"googlenet_{layout}"
    return ctx.finish(x, lambda t: _head(t, ctx, dropout, s["dense_initializer"]),
                      default_name=default_name, features=features)


_BN_SETTINGS = dict(batch_norm=True, kernel_initializer="glorot_uniform", bias_initializer=None,
                    bn_epsilon=1e-3, bn_momentum=0.99)


def bn_inception_module(x, widths, s, *, name):
    """A module of Ioffe & Szegedy 2015's Fig. 5: ``[1x1, 1x1 -> 3x3, 1x1 -> 3x3 -> 3x3,
    pool (-> 1x1 proj)]`` concatenated (``name_concat``); with stride 2 no 1x1 branch, the last
    3x3 of each 3x3 branch strided and the 3x3/2 max pool passed through. ``widths``: (#1x1,
    #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, "avg" | "max", pool proj, stride)."""
    n1, r3, n3, rd, nd, pool, proj, stride = widths
    branches = []
    if n1:
        branches.append(_conv(x, n1, 1, s, name=f"{name}_branch1"))
    b = _conv(x, r3, 1, s, name=f"{name}_branch2a")
    branches.append(_conv(b, n3, 3, s, strides=stride, name=f"{name}_branch2b"))
    b = _conv(x, rd, 1, s, name=f"{name}_branch3a")
    b = _conv(b, nd, 3, s, name=f"{name}_branch3b")
    branches.append(_conv(b, nd, 3, s, strides=stride, name=f"{name}_branch3c"))
    pooling = layers.AveragePooling2D if pool == "avg" else layers.MaxPooling2D
    b = pooling(3, strides=stride, padding="same", name=f"{name}_branch4_pool")(x)
    if proj:
        b = _conv(b, proj, 1, s, name=f"{name}_branch4")
    branches.append(b)
    return layers.Concatenate(name=f"{name}_concat")(branches)


@family_builder
def BNInception(dropout=0.0, *, ctx):
    """BN-Inception (Ioffe & Szegedy 2015, Sec. 4.2 and Fig. 5): Inception with batch
    normalisation, double-3x3 branches and the stride-2 modules 3c and 4e.

    Every convolution is bias-free and followed by BatchNorm (Keras' epsilon 1e-3 and momentum
    0.99: the paper gives neither) and ReLU; padding is TensorFlow's "same" (Fig. 5's sizes at
    224); Glorot-uniform kernels. Fig. 5's "avg + 32" is a 3x3/1 average pool and a 1x1
    projection; its 7x7 average pool is a global average pool. The classifier has no dropout by
    default (Sec. 4.2.1 removes it from the BN networks).

    Args:
        dropout: dropout before the classifier, in ``[0, 1)``.
{common_args}

    Returns:
        A ``keras.Model`` (default name ``inception_v2``, the catalogue's name).

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    dropout = check_probability("dropout", dropout)
    s = _BN_SETTINGS
    img_input = ctx.start(default_shape=(224, 224, 3), min_size=_MIN_SIZE)
    x = _conv(img_input, 64, 7, s, strides=2, name="conv1")
    features = {"P1": x}
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = _conv(x, 64, 1, s, name="conv2")
    x = _conv(x, 192, 3, s, name="conv3")
    features["P2"] = x
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool2")(x)
    level = 3
    for block, widths in BN_INCEPTION_BLOCKS:
        if widths[-1] == 2:  # the stride-2 module ends the level before it
            features[f"P{level}"] = x
            level += 1
        x = bn_inception_module(x, widths, s, name=f"inception{block}")
    features[f"P{level}"] = x
    return ctx.finish(x, lambda t: _head(t, ctx, dropout), default_name="inception_v2",
                      features=features)


def torchvision_names(model):
    """``(keras layer, torchvision module)`` pairs of a GoogLeNet in the torchvision layout:
    ``conv{1,2,3}_{conv,bn}`` -> ``conv{1,2,3}.{conv,bn}``;
    ``inception{b}_{branch1, branch2a, branch2b, branch3a, branch3b, branch4}_{conv,bn}`` ->
    ``inception{b}.{branch1, branch2.0, branch2.1, branch3.0, branch3.1, branch4.1}.{conv,bn}``;
    ``aux{i}_{conv,bn}`` / ``aux{i}_fc`` / ``aux{i}`` -> ``aux{i}.conv.{conv,bn}`` /
    ``aux{i}.fc1`` / ``aux{i}.fc2``; ``predictions`` -> ``fc``.

    Raises:
        ValueError: ``model`` is not a GoogLeNet in the torchvision layout (the paper layout has
            no BatchNorm, so torchvision's weights do not fit it).
    """
    names = {layer.name for layer in model.layers}
    if "conv1_bn" not in names or "inception3a_concat" not in names:
        fail("model", "must be a GoogLeNet built with layout='torchvision' (torchvision's "
                      "googlenet has BatchNorm and a 3x3 '5x5' branch)", model.name)
    pairs = []
    for i in (1, 2, 3):
        pairs += [(f"conv{i}_conv", f"conv{i}.conv"), (f"conv{i}_bn", f"conv{i}.bn")]
    branches = {"branch1": "branch1", "branch2a": "branch2.0", "branch2b": "branch2.1",
                "branch3a": "branch3.0", "branch3b": "branch3.1", "branch4": "branch4.1"}
    for block, _ in GOOGLENET_BLOCKS:
        for ours, theirs in branches.items():
            pairs += [(f"inception{block}_{ours}_{k}", f"inception{block}.{theirs}.{k}")
                      for k in ("conv", "bn")]
    for aux in ("aux1", "aux2"):
        if aux in names:
            pairs += [(f"{aux}_conv", f"{aux}.conv.conv"), (f"{aux}_bn", f"{aux}.conv.bn"),
                      (f"{aux}_fc", f"{aux}.fc1"), (aux, f"{aux}.fc2")]
    if "predictions" in names:
        pairs.append(("predictions", "fc"))
    return pairs


# reference figures: reference_figures.csv
register_model("googlenet", family="GoogLeNet", paper=_GOOGLENET_PAPER, builder=GoogLeNet,
               default_input_shape=(224, 224, 3), min_input_size=_MIN_SIZE, layout="paper")
register_model("googlenet_torchvision", family="GoogLeNet", paper=_GOOGLENET_PAPER,
               builder=GoogLeNet, default_input_shape=(224, 224, 3), min_input_size=_MIN_SIZE,
               layout="torchvision")
register_model("inception_v2", family="BN-Inception", paper=_BN_PAPER, builder=BNInception,
               default_input_shape=(224, 224, 3), min_input_size=_MIN_SIZE)
