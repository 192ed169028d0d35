"""LeNet-5, in its "modern" form.

LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document Recognition",
Proc. IEEE 86(11), 1998.

The paper's network has a sparse C3 connection table, trainable sub-sampling coefficients in S2/S4
and an RBF output layer (60,000 trainable parameters, counted from the paper's layer description
in Sec. II-B). This module builds the "modern" variant everyone trains today: every C3 map sees
all six S2 maps, sub-sampling is a plain 2x2 average pool, and the head is ``Dense(120) ->
Dense(84) -> Dense(classes)``. With a 32x32x1 input and 10 classes it has exactly **61,706**
parameters::

    input 32x32x1
    conv1   6@5x5 valid  -> 28x28x6     156
    pool1   avg 2x2 /2   -> 14x14x6
    conv2  16@5x5 valid  -> 10x10x16  2,416
    pool2   avg 2x2 /2   ->  5x5x16
    flatten              -> 400
    fc1    Dense 120                 48,120
    fc2    Dense 84                  10,164
    predictions Dense classes           850

The activation of the hidden layers is ``tanh`` by default (the paper uses a scaled tanh,
``1.7159 tanh(2x/3)``); pass ``activation="relu"`` for the common ReLU variant.
"""

from __future__ import annotations

from keras import layers

from keras_cnns._checks import fail
from keras_cnns.layers import activation_layer
from keras_cnns.models._builder import classifier, family_builder, feature_level
from keras_cnns.models._registry import register_model

__all__ = ["LeNet5"]

#: The smallest input side: 16 -> conv 12 -> pool 6 -> conv 2 -> pool 1.
MIN_INPUT_SIZE = 16

_PAPER = ("Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-Based Learning Applied to "
          "Document Recognition. Proc. IEEE, 1998")


def _check_activation(activation):
    """A name :func:`keras_cnns.layers.activation_layer` knows, or a callable."""
    if activation is None:
        fail("activation", "must be an activation name (e.g. 'tanh', 'relu') or a callable",
             activation)
    if isinstance(activation, str):
        try:
            activation_layer(activation, name="lenet5_activation_check")
        except ValueError:
            fail("activation", "must be a known Keras activation name or a callable", activation)
    elif not callable(activation):
        fail("activation", "must be an activation name (e.g. 'tanh', 'relu') or a callable",
             activation)


@family_builder(classes=10)
def LeNet5(activation="tanh", *, ctx):
    """Build LeNet-5 ("modern": full C3, average pooling, Dense 120-84-classes).

    Input: default ``(32, 32, 1)``, sides >= 16; with the head they must be known (it flattens
    the feature map, so ``fc1`` has ``16 * h * w * 120`` weights for an ``h x w`` final map; 5x5
    at 32x32). Without the head the output is the ``pool2`` map (or its pooling). ``classes``
    defaults to 10 (the digits).

    Args:
        activation: activation of the two convolutions and the two hidden Dense layers: a name
            (``"tanh"``, default, or ``"relu"``, ``"sigmoid"``...) or a callable.
{common_args}

    Returns:
        A ``keras.Model`` (default name ``"lenet5"``).

    Raises:
        ValueError: invalid argument (the message names it).
    """
    _check_activation(activation)
    x = ctx.start(default_shape=(32, 32, 1), min_size=MIN_INPUT_SIZE, require_static=True)
    x = layers.Conv2D(6, 5, padding="valid", name="conv1")(x)
    x = activation_layer(activation, name="conv1_act")(x)
    x = layers.AveragePooling2D(2, strides=2, name="pool1")(x)
    x = layers.Conv2D(16, 5, padding="valid", name="conv2")(x)
    x = p1 = activation_layer(activation, name="conv2_act")(x)
    x = layers.AveragePooling2D(2, strides=2, name="pool2")(x)
    # Valid 5x5 convolutions and 2x2 pools: side = floor((H - extent) / stride) + 1, with the
    # extent growing by (kernel - 1) * stride so far: conv1 5, pool1 6, conv2 6 + 4 * 2 = 14
    # (10 at 32), pool2 14 + 1 * 2 = 16 (5 at 32).
    features = {"P1": feature_level("P1", p1, extent=14), "P2": feature_level("P2", x, extent=16)}

    def head(x):
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(120, name="fc1")(x)
        x = activation_layer(activation, name="fc1_act")(x)
        x = layers.Dense(84, name="fc2")(x)
        x = activation_layer(activation, name="fc2_act")(x)
        return classifier(x, ctx.classes, ctx.classifier_activation)

    return ctx.finish(x, head, default_name="lenet5", features=features)


register_model(
    "lenet5",
    family="LeNet",
    paper=_PAPER,
    builder=LeNet5,
    default_input_shape=(32, 32, 1),
    min_input_size=MIN_INPUT_SIZE,
    default_classes=10,
)
