"""FBNet A, B and C: the layer sequences found by differentiable architecture search.

Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural
Architecture Search", CVPR 2019 (arXiv:1812.03443), Fig. 4 / Table 2. The search space (Table 1)
is a fixed macro-architecture: a 3x3 stride-2 stem (16 channels), 22 searchable layers in
stages of 16, 24, 32, 64, 112, 184 and 352 channels, a 1x1 convolution (1504 for A, 1984 for B
and C), global average pooling and the classifier. Each layer is one of nine candidates: an
inverted residual block (:func:`keras_cnns.blocks.inverted_residual_block`, ReLU, no SE) with
kernel 3 or 5, expansion 1, 3 or 6, optionally ``g2`` (both 1x1 convolutions in 2 groups with a
channel shuffle before the depthwise convolution, which the custom op fuses), or ``skip`` (the
identity; every searched skip here keeps the width and the stride, so it has no layers).

The layer sequences and details follow the authors' release, facebookresearch/mobile-vision
(``mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls.py``, ``fbnet_a`` / ``fbnet_b`` / ``fbnet_c``): the
expansion 1x1 is left out when the hidden width equals the input width (every ``e1`` block),
the block convolutions carry biases (``"bias": True``) before their BatchNormalization, and a
``g2`` block (``ir_k5_g2``: expansion 1) is shuffle -> depthwise -> grouped projection. BN
follows PyTorch (``epsilon=1e-5``, momentum 0.9 in Keras' convention) and so does the padding.

Counts (``reference_figures.csv``, 1000 classes, recounted by hand from the table in
``tests/models/test_fbnet.py``): trainable parameters A 4,319,712, B 4,816,216, C 5,590,784;
without BatchNorm's gamma and beta (the convolution and classifier weights and biases, the basis
on which the paper's counts are met) A 4,286,416 (the paper's Table 2: 4.3 M), B 4,782,520 and
C 5,546,544 (5.5 M; 0.85% above). The released B is 6% above the paper's 4.5 M: the paper's B
differs from the release in some layer its figure does not resolve; we follow the release.
Multiply-adds at 224 (convolutions and the classifier): A 244.5 M, B 291.0 M, C 378.1 M against
the paper's 249 M / 295 M / 375 M "FLOPs" (1.8%, 1.4% and 0.8% apart; the paper does not say
what else it counts).
"""

from __future__ import annotations


from keras_cnns import layers as kl
from keras_cnns._checks import check_choice, check_probability, fail
from keras_cnns.blocks.inverted_residual import inverted_residual_block
from keras_cnns.models._builder import family_builder, pooled_classifier
from keras_cnns.models._notation import decode_stages
from keras_cnns.models._registry import register_model
from keras_cnns.models._stages import build_numbered_stages

__all__ = ["ARCH", "FBNet"]

_PAPER = ("Wu et al., FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural "
          "Architecture Search, CVPR 2019 (arXiv:1812.03443)")
_MIN_SIZE = 32
#: The searched layers of each model, one string per layer in the block notation of
#: :mod:`keras_cnns.models._notation` (``skip_c<width>``: the identity), and the width of the
#: last 1x1 convolution. From mobile-vision's ``fbnet_modeldef_cls.py``.
ARCH = {
    "a": ((
        "skip_c16",
        "ir_r1_k3_s2_e3_c24", "ir_r1_k3_s1_e1_c24", "skip_c24", "skip_c24",
        "ir_r1_k5_s2_e6_c32", "ir_r1_k3_s1_e3_c32", "ir_r1_k5_s1_e1_c32", "ir_r1_k3_s1_e3_c32",
        "ir_r1_k5_s2_e6_c64", "ir_r1_k5_s1_e3_c64", "ir_r1_k5_s1_e1_c64_g2", "ir_r1_k5_s1_e6_c64",
        "ir_r1_k3_s1_e6_c112", "ir_r1_k5_s1_e1_c112_g2", "ir_r1_k5_s1_e3_c112",
        "ir_r1_k3_s1_e1_c112_g2",
        "ir_r1_k5_s2_e6_c184", "ir_r1_k5_s1_e6_c184", "ir_r1_k5_s1_e3_c184", "ir_r1_k5_s1_e6_c184",
        "ir_r1_k5_s1_e6_c352",
    ), 1504),
    "b": ((
        "ir_r1_k3_s1_e1_c16",
        "ir_r1_k3_s2_e6_c24", "ir_r1_k5_s1_e1_c24", "ir_r1_k3_s1_e1_c24", "ir_r1_k3_s1_e1_c24",
        "ir_r1_k5_s2_e6_c32", "ir_r1_k5_s1_e3_c32", "ir_r1_k3_s1_e6_c32", "ir_r1_k5_s1_e6_c32",
        "ir_r1_k5_s2_e6_c64", "ir_r1_k5_s1_e6_c64", "skip_c64", "ir_r1_k5_s1_e3_c64",
        "ir_r1_k5_s1_e6_c112", "ir_r1_k3_s1_e1_c112", "ir_r1_k5_s1_e1_c112", "ir_r1_k5_s1_e3_c112",
        "ir_r1_k5_s2_e6_c184", "ir_r1_k5_s1_e1_c184", "ir_r1_k5_s1_e6_c184", "ir_r1_k5_s1_e6_c184",
        "ir_r1_k3_s1_e6_c352",
    ), 1984),
    "c": ((
        "ir_r1_k3_s1_e1_c16",
        "ir_r1_k3_s2_e6_c24", "skip_c24", "ir_r1_k3_s1_e1_c24", "ir_r1_k3_s1_e1_c24",
        "ir_r1_k5_s2_e6_c32", "ir_r1_k5_s1_e3_c32", "ir_r1_k5_s1_e6_c32", "ir_r1_k3_s1_e6_c32",
        "ir_r1_k5_s2_e6_c64", "ir_r1_k5_s1_e3_c64", "ir_r1_k5_s1_e6_c64", "ir_r1_k5_s1_e6_c64",
        "ir_r1_k5_s1_e6_c112", "ir_r1_k5_s1_e6_c112", "ir_r1_k5_s1_e6_c112", "ir_r1_k5_s1_e3_c112",
        "ir_r1_k5_s2_e6_c184", "ir_r1_k5_s1_e6_c184", "ir_r1_k5_s1_e6_c184", "ir_r1_k5_s1_e6_c184",
        "ir_r1_k3_s1_e6_c352",
    ), 1984),
}
BN = dict(bn_momentum=0.9, bn_epsilon=1e-5)


def _layers(model):
    """The model's layers without its identity skips, checked against the running width."""
    width, kept = 16, []
    for text in ARCH[model][0]:
        if text.startswith("skip_c"):
            if int(text[len("skip_c"):]) != width:
                fail("arch", f"{text!r} changes the width {width}: not an identity", text)
            continue
        (spec,) = decode_stages([text])
        kept.append(spec)
        width = spec.filters
    return tuple(kept)


@family_builder
def FBNet(model="c", dropout=0.2, *, ctx):
    """FBNet A, B or C (Wu et al. 2019) as a functional Keras model.

    Args:
        model: ``"a"``, ``"b"`` or ``"c"``.
        dropout: dropout rate before the classifier, in ``[0, 1)``.
{common_args}

    Feature levels (``features_only``): P1..P4 the last block output at each stride, P5 the
    last 1x1 convolution (1504 / 1984 channels).

    Returns:
        A ``keras.Model``: class scores ``[N, classes]`` with the top, else the last feature
        map or its pooled vector.

    Raises:
        ValueError: an invalid argument (the message names it).
    """
    model = check_choice("model", model, list(ARCH))
    check_probability("dropout", dropout)
    x = ctx.start(default_shape=(224, 224, 3), min_size=_MIN_SIZE)
    x = kl.conv_bn_act(x, 16, 3, strides=2, padding=1, activation="relu",
                       kernel_initializer="he_normal", **BN, name="stem")
    x, features = build_numbered_stages(
        x, _layers(model), inverted_residual_block,
        layer_names=lambda i: {}, name=lambda i: f"block{i}",
        block_kwargs=dict(activation="relu", padding="torch", use_bias=True,
                          kernel_initializer="he_normal", **BN),
        level=1,
    )
    x = kl.conv_bn_act(x, ARCH[model][1], 1, activation="relu", kernel_initializer="he_normal",
                       **BN, name="last")
    features["P5"] = x

    def head(x):
        return pooled_classifier(x, ctx, dropout)

    return ctx.finish(x, head, default_name=f"fbnet_{model}", features=features)


# reference figures: reference_figures.csv
for _model in ARCH:
    register_model(f"fbnet_{_model}", family="FBNet", paper=_PAPER, builder=FBNet,
                   default_input_shape=(224, 224, 3), min_input_size=_MIN_SIZE, model=_model)
del _model
