"""DenseNet's dense layer and transition (Huang, Liu, van der Maaten, Weinberger, "Densely
Connected Convolutional Networks", CVPR 2017, arXiv:1608.06993).

Layer ``l`` of a dense block computes ``x_l = H_l([x_0, x_1, ..., x_{l-1}])`` (eq. 2): ``H_l``
is BN -> ReLU -> 3x3 conv with ``k`` (the growth rate) outputs, and in DenseNet-B a bottleneck
BN -> ReLU -> 1x1 conv with ``4k`` outputs before it. A transition between blocks is BN -> ReLU
-> 1x1 conv -> 2x2 average pool; DenseNet-C compresses there to ``floor(theta * m)`` of the
``m`` channels.

Layer names are keras.applications' (``keras/src/applications/densenet.py``):
``{name}_0_bn``, ``{name}_0_relu``, ``{name}_1_conv``, ``{name}_1_bn``, ``{name}_1_relu``,
``{name}_2_conv``, ``{name}_concat`` for a layer and ``{name}_bn``, ``{name}_relu``,
``{name}_conv``, ``{name}_pool`` for a transition; a layer without bottleneck (the CIFAR
DenseNet of the paper's Table 2) has ``_0_bn``, ``_0_relu``, ``_2_conv``.

With ``drop_rate > 0`` a dropout follows every convolution of a layer and a transition's
convolution, as in the authors' code (liuzhuang13/DenseNet ``densenet.lua``, after each
convolution but the first); torchvision drops only the layer's new maps.

``memory_efficient=True`` (Pleiss et al. 2017, arXiv:1707.06990): the layer is a
:class:`keras_cnns.layers.DenseLayer` on the *list* of the block's maps, whose concatenation,
normalisations and ReLUs are recomputed in the backward pass (and the 1x1 convolution where
the layer reads at most 8k maps). The running concatenation of the plain layout is then
built only where something reads it (the block's output); each layer's output carries the list
it concatenates, which the next memory-efficient layer reads instead. The weights and their names
are the plain layout's.
"""

from __future__ import annotations

from keras import layers

from keras_cnns._checks import check_positive_int, fail
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.dense_connect import DenseLayer

__all__ = ["check_memory_efficient", "dense_layer", "dense_parts", "dense_transition"]

_PARTS = "_keras_cnns_dense_parts"


def dense_parts(x):
    """The maps whose concatenation ``x`` is (``[x]`` for any other tensor)."""
    return list(getattr(x, _PARTS, None) or [x])


def check_memory_efficient(memory_efficient, bottleneck, drop_rate):
    """ValueError naming ``memory_efficient`` unless it is off or the layers allow it (a
    bottleneck, no dropout)."""
    if memory_efficient and not bottleneck:
        fail("memory_efficient", "needs bottleneck=True (it recomputes the bottleneck's "
                                 "concatenation, BN and ReLU)", memory_efficient)
    if memory_efficient and drop_rate > 0:
        fail("memory_efficient", "needs drop_rate=0 (a recomputed layer would need the same "
                                 "dropout masks again)", memory_efficient)


def _dropout(x, rate, name):
    return layers.Dropout(rate, name=name)(x) if rate > 0 else x


def dense_layer(x, growth_rate, *, name, bottleneck=True, bottleneck_width=4, drop_rate=0.0,
                memory_efficient=False, bn_epsilon=1.001e-5, bn_momentum=0.99,
                kernel_initializer="glorot_uniform"):
    """One layer of a dense block: ``concat([x, H(x)])``.

    Args:
        x: the block's running concatenation (or, under ``memory_efficient``, the output of the
            previous memory-efficient layer, which carries its parts).
        growth_rate: ``k``, the channels this layer adds.
        name: layer-name prefix (keras.applications: ``conv2_block1``).
        bottleneck: DenseNet-B's BN-ReLU-1x1 (``bottleneck_width * k`` channels) first.
        bottleneck_width: the bottleneck's channels per growth channel (the paper's 4).
        drop_rate: dropout after each convolution, in ``[0, 1)``.
        memory_efficient: one :class:`~keras_cnns.layers.DenseLayer` recomputing the
            concatenation, BNs and ReLUs in the backward pass (needs ``bottleneck``, no dropout).
        bn_epsilon, bn_momentum, kernel_initializer: layer settings of the layout.

    Returns:
        The concatenation ``[x, x_new]`` (``k`` more channels).
    """
    check_positive_int("growth_rate", growth_rate)
    check_memory_efficient(memory_efficient, bottleneck, drop_rate)
    bn = dict(epsilon=bn_epsilon, momentum=bn_momentum)
    conv = dict(use_bias=False, kernel_initializer=kernel_initializer)
    if memory_efficient:
        parts = dense_parts(x)
        y = DenseLayer(growth_rate, bottleneck_width * growth_rate, epsilon=bn_epsilon,
                       momentum=bn_momentum, kernel_initializer=kernel_initializer,
                       names=[f"{name}_{s}" for s in ("0_bn", "1_conv", "1_bn", "2_conv")],
                       name=f"{name}_layer")(parts if len(parts) > 1 else parts[0])
        parts = parts + [y]
        out = layers.Concatenate(name=f"{name}_concat")(parts)
        setattr(out, _PARTS, parts)
        return out
    y = BatchNormalization(name=f"{name}_0_bn", **bn)(x)
    y = layers.Activation("relu", name=f"{name}_0_relu")(y)
    if bottleneck:
        y = layers.Conv2D(bottleneck_width * growth_rate, 1, name=f"{name}_1_conv", **conv)(y)
        y = _dropout(y, drop_rate, f"{name}_1_drop")
        y = BatchNormalization(name=f"{name}_1_bn", **bn)(y)
        y = layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = layers.Conv2D(growth_rate, 3, padding="same", name=f"{name}_2_conv", **conv)(y)
    y = _dropout(y, drop_rate, f"{name}_2_drop")
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def dense_transition(x, filters, *, name, drop_rate=0.0, pool=True, bn_epsilon=1.001e-5,
                     bn_momentum=0.99, kernel_initializer="glorot_uniform"):
    """BN -> ReLU -> 1x1 conv (``filters``) [-> dropout] [-> 2x2 average pool, stride 2]."""
    check_positive_int("filters", filters)
    x = BatchNormalization(epsilon=bn_epsilon, momentum=bn_momentum, name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, kernel_initializer=kernel_initializer,
                      name=f"{name}_conv")(x)
    x = _dropout(x, drop_rate, f"{name}_drop")
    if pool:
        x = layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)
    return x
