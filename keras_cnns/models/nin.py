"""Network in Network (CIFAR-10).

Lin, Chen & Yan, "Network In Network", ICLR 2014 (arXiv:1312.4400).

Three "mlpconv" blocks - a spatial convolution followed by two 1x1 convolutions (a small MLP
slid over the image), all with bias and ReLU - separated by a 3x3/2 pool and dropout 0.5. The last
mlpconv ends in ``classes`` maps that are globally average-pooled straight into the softmax:
no fully connected layer::

    input 32x32x3
    block1  192@5x5, 160@1x1, 96@1x1          -> 32x32x96
            max-pool 3x3/2 (pad 1), dropout    -> 16x16x96
    block2  192@5x5, 192@1x1, 192@1x1         -> 16x16x192
            avg-pool 3x3/2 (pad 1), dropout    ->  8x8x192
    block3  192@3x3, 192@1x1                  ->  8x8x192
    top     classes@1x1 + ReLU, global average pool, softmax

**966,986** parameters at 10 classes. The layout is imgclsmob ``nin_cifar10`` (osmr/imgclsmob
``gluon/gluoncv2/models/nin_cifar.py``; it equals the authors' Caffe CIFAR-10 model in widths):
pools of PyTorch's ``padding=1`` (the average pool counts the zero padding, PyTorch's default
``count_include_pad=True``), and a ReLU on the class maps before the global pool, as in the
original model. ``include_top=False`` ends at block 3 (192 maps): the class convolution is the
classifier.

Layer names: ``block{b}_conv{i}`` (Conv2D with ReLU), ``block{b}_pad``, ``block{b}_pool``,
``block{b}_drop``, then ``predictions_conv``, ``predictions_relu``, ``predictions_pool``,
``predictions`` (the classifier activation).
"""

from __future__ import annotations

from keras import layers

from keras_cnns._checks import check_probability
from keras_cnns.layers import activation_layer
from keras_cnns.models._builder import family_builder
from keras_cnns.models._registry import register_model

__all__ = ["NiN"]

# (kernel of the first conv, filters of the three convs) per mlpconv block; block 3's third
# conv is the classifier.
_BLOCKS = (
    (5, (192, 160, 96)),
    (5, (192, 192, 192)),
    (3, (192, 192)),
)

#: Every layer keeps or halves (rounding up) the side, so any side >= 1 builds.
MIN_INPUT_SIZE = 1

_PAPER = "M. Lin, Q. Chen, S. Yan. Network In Network. ICLR 2014 (arXiv:1312.4400)"


@family_builder(classes=10)
def NiN(dropout=0.5, *, ctx):
    """Build Network in Network for CIFAR-sized images.

    Input: default ``(32, 32, 3)``; H and W may be ``None`` (the network is fully
    convolutional). The head is the ``classes`` 1x1 convolution, ReLU, global average pool and
    the classifier activation (applied to the pooled class maps; ``None`` gives the pooled maps
    themselves); without it the output is the 192-channel map of block 3 (or its pooling).
    ``classes`` defaults to 10.

    Args:
        dropout: dropout rate after the first two mlpconv blocks (0.5 in the paper; 0 removes
            the layers).
{common_args}

    Returns:
        A ``keras.Model`` (default name ``"nin"``).

    Raises:
        ValueError: invalid argument (the message names it).
    """
    dropout = check_probability("dropout", dropout)
    x = ctx.start(default_shape=(32, 32, 3), min_size=MIN_INPUT_SIZE)
    features = {}
    for block, (kernel, widths) in enumerate(_BLOCKS, start=1):
        for index, filters in enumerate(widths, start=1):
            x = layers.Conv2D(filters, kernel if index == 1 else 1, padding="same",
                              activation="relu", name=f"block{block}_conv{index}")(x)
        features[f"P{block - 1}"] = x  # block b runs at stride 2^(b-1)
        if block < len(_BLOCKS):
            # PyTorch's 3x3/2 pool with padding=1: the inputs are ReLU outputs (>= 0), so zero
            # padding never wins the max and is what count_include_pad averages over.
            x = layers.ZeroPadding2D(1, name=f"block{block}_pad")(x)
            pool = layers.MaxPooling2D if block == 1 else layers.AveragePooling2D
            x = pool(3, strides=2, padding="valid", name=f"block{block}_pool")(x)
            if dropout > 0:
                x = layers.Dropout(dropout, name=f"block{block}_drop")(x)

    def head(x):
        x = layers.Conv2D(ctx.classes, 1, name="predictions_conv")(x)
        x = layers.ReLU(name="predictions_relu")(x)
        x = layers.GlobalAveragePooling2D(name="predictions_pool")(x)
        return activation_layer(ctx.classifier_activation, name="predictions")(x)

    return ctx.finish(x, head, default_name="nin", features=features)


register_model(
    "nin",
    family="NiN",
    paper=_PAPER,
    builder=NiN,
    default_input_shape=(32, 32, 3),
    min_input_size=MIN_INPUT_SIZE,
    default_classes=10,
)
