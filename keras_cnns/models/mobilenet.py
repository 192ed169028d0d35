"""MobileNet v1: depthwise separable convolutions with width and resolution multipliers.

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", 2017 (https://arxiv.org/abs/1704.04861). Table 1 body: a standard 3x3 stem
convolution, then 13 depthwise separable blocks (depthwise 3x3 -> BN -> ReLU6 -> pointwise 1x1 ->
BN -> ReLU6), global average pooling and a classifier. The width multiplier ``alpha`` thins every
layer (``alpha * M`` input, ``alpha * N`` output channels), the resolution multiplier ``rho``
shrinks the input side (``224 * rho``); a block then costs (the paper's eq. (7))
``D_K * D_K * aM * rD_F * rD_F + aM * aN * rD_F * rD_F`` mult-adds.

The layer sequence, the channel rounding ``int(filters * alpha)``, the stride-2 padding
(``ZeroPadding2D(((0, 1), (0, 1)))`` + "valid" depthwise) and the head (global average pooling
with ``keepdims`` -> dropout -> 1x1 convolution ``conv_preds`` -> reshape -> activation) follow
``keras.applications.MobileNet``, so its weights copy over one to one
(:func:`keras_cnns.from_keras_applications`). Weighted layers, keras.applications name ->
ours: ``conv1`` -> ``conv1_conv``, ``conv1_bn`` -> ``conv1_bn``, ``conv_dw_i[_bn]`` ->
``conv_i_dw[_bn]``, ``conv_pw_i[_bn]`` -> ``conv_i_pw[_bn]``, ``conv_preds`` -> ``conv_preds``.
The depthwise convolutions are :class:`~keras_cnns.layers.GroupedDepthwiseConv2D` (the library's
custom op; kernel ``[3, 3, 1, C * depth_multiplier]``).

Reference figures (``keras.applications.MobileNet``, ``keras/src/applications/mobilenet.py``,
``weights=None``; mult-adds of its conv and dense layers): alpha 1.0 / 0.75 / 0.5 / 0.25 ->
4,231,976 / 2,585,560 / 1,331,592 / 470,072 trainable parameters and 568.7 / 325.4 / 149.5 /
41.0 M mult-adds at 224. TF-slim's MAC table (tensorflow/models
``research/slim/nets/mobilenet_v1.md``) for alpha 0.75 (317 M) disagrees with the paper (325 M);
we follow keras.applications, whose architecture reproduces the paper's 325 M.
"""

from __future__ import annotations

import keras
from keras import layers

from keras_cnns import layers as kl
from keras_cnns._checks import check_positive_float, check_positive_int, check_probability, fail
from keras_cnns.models._builder import family_builder
from keras_cnns.models._registry import register_model

__all__ = ["MobileNet", "resolution_side"]

_PAPER = ("Howard et al., MobileNets: Efficient Convolutional Neural Networks for Mobile Vision "
          "Applications, 2017")
_BASE_SIZE = 224
_MIN_SIZE = 32
_STEM_FILTERS = 32
# (pointwise filters, depthwise stride) of the 13 depthwise separable blocks (paper Table 1).
_BLOCKS = (
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)


def _input_side(rho: float) -> int:
    """The input side for a resolution multiplier: ``round(224 * rho)`` (0.714 -> 160)."""
    return int(round(_BASE_SIZE * rho))


def resolution_side(ctx, rho: float, min_size: int) -> int:
    """The input side ``round(224 * rho)`` of a checked ``rho`` (MobileNet v1 and v2): ``rho != 1``
    excludes ``input_shape`` and must agree with a Keras ``input_tensor``'s side."""
    side = _input_side(rho)
    input_shape, input_tensor = ctx.input_shape, ctx.input_tensor
    if rho != 1.0:
        if input_shape is not None:
            raise ValueError(
                "`rho` and `input_shape` both set the input size: pass one of them (rho sets the "
                f"side to round(224 * rho) = {side}). Received: rho={rho!r}, "
                f"input_shape={input_shape!r}"
            )
        if side < min_size:
            fail("rho", f"must give an input side round(224 * rho) >= {min_size} (got {side})", rho)
        if input_tensor is not None and keras.backend.is_keras_tensor(input_tensor):
            if tuple(input_tensor.shape[1:3]) != (side, side):
                fail("rho", f"must agree with the side of `input_tensor` {tuple(input_tensor.shape)}: "
                            f"round(224 * rho) = {side}", rho)
    return side


@family_builder
def MobileNet(alpha=1.0, rho=1.0, depth_multiplier=1, dropout=1e-3, *, ctx):
    """MobileNet v1 (Howard et al. 2017) as a functional Keras model.

    Args:
        alpha: width multiplier, any finite number > 0 (at least 1/32 so the 32-channel stem
            keeps one channel). Every layer gets ``int(filters * alpha)`` channels
            (keras.applications' rounding). The paper's values: 1.0, 0.75, 0.5, 0.25.
        rho: resolution multiplier, a finite number > 0: the input side is
            ``round(224 * rho)`` (0.857 -> 192, 0.714 -> 160, 0.571 -> 128). It is an alternative
            to ``input_shape``: giving both with ``rho != 1`` is an error.
        depth_multiplier: channels each depthwise convolution produces per input channel
            (keras.applications' ``depth_multiplier``; 1 in the paper).
        dropout: dropout rate before the classifier, in ``[0, 1)``.
{common_args}

    The head is global average pooling -> dropout -> 1x1 conv ``conv_preds`` -> reshape ->
    ``classifier_activation``. Input: default ``(round(224 * rho), round(224 * rho), 3)``;
    sides may be ``None``; known sides must be >= 32. Default name
    ``mobilenet_{alpha:.2f}_{side}`` as keras.applications.

    Returns:
        A ``keras.Model``: class scores ``[N, classes]`` with the top, else the feature map
        ``[N, H/32, W/32, int(1024 * alpha)]`` or its pooled vector.

    Raises:
        ValueError: an invalid argument (the message names it), ``rho != 1`` together with
            ``input_shape`` (or with an ``input_tensor`` of another side), or an input side < 32.
    """
    alpha = check_positive_float("alpha", alpha)
    if int(_STEM_FILTERS * alpha) < 1:
        fail("alpha", f"must be >= 1/{_STEM_FILTERS} so that every layer keeps at least one "
                      "channel (channels = int(filters * alpha))", alpha)
    rho = check_positive_float("rho", rho)
    check_positive_int("depth_multiplier", depth_multiplier)
    check_probability("dropout", dropout)
    side = resolution_side(ctx, rho, _MIN_SIZE)

    img_input = ctx.start(default_shape=(side, side, 3), min_size=_MIN_SIZE)
    x = kl.conv_bn_act(
        img_input, int(_STEM_FILTERS * alpha), 3, strides=2, padding="same", use_bias=False,
        activation="relu6", kernel_initializer="glorot_uniform", name="conv1",
    )
    features, level = {}, 1
    for i, (filters, stride) in enumerate(_BLOCKS, start=1):
        if stride == 2:
            features[f"P{level}"] = x
            level += 1
        x = kl.depthwise_separable_block(
            x, int(filters * alpha), strides=stride, kernel_size=3, activation="relu6",
            depth_multiplier=depth_multiplier, name=f"conv_{i}",
        )

    def head(x):
        classes = ctx.classes
        x = layers.GlobalAveragePooling2D(keepdims=True, name="global_pool")(x)
        x = layers.Dropout(dropout, name="dropout")(x)
        x = layers.Conv2D(classes, 1, padding="same", name="conv_preds")(x)
        x = layers.Reshape((classes,), name="reshape")(x)
        return layers.Activation(ctx.classifier_activation, name="predictions")(x)

    features[f"P{level}"] = x
    return ctx.finish(x, head, default_name=f"mobilenet_{alpha:0.2f}_{ctx.shape[0]}",
                      features=features)



# reference figures: reference_figures.csv
for _name, _alpha in (("mobilenet", 1.0), ("mobilenet_0_75", 0.75), ("mobilenet_0_50", 0.5),
                      ("mobilenet_0_25", 0.25)):
    register_model(_name, family="MobileNet", paper=_PAPER, builder=MobileNet,
                   default_input_shape=(224, 224, 3), min_input_size=_MIN_SIZE, alpha=_alpha)
del _name, _alpha
