"""``conv_bn_act``: the Conv2D -> BatchNormalization -> activation unit used by every family.

Written in the keras.applications style: a function from tensor to tensor that names each layer
from a ``name`` prefix and uses only stock Keras layers (they serialize with no custom objects,
except the :class:`~keras_cnns.layers.HardSwish` / :class:`~keras_cnns.layers.HardSigmoid`
activations, which are registered).
"""

from __future__ import annotations

from collections.abc import Mapping

import keras

from keras_cnns._checks import check_float, check_pair, check_positive_int
from keras_cnns.layers.activations import activation_layer, is_identity
from keras_cnns.layers.batch_norm import BatchNormalization
from keras_cnns.layers.utils import sub

__all__ = ["activation_layer", "conv_bn_act", "dispatch_plain_convolutions"]


def _check_padding(padding):
    """``"same"`` / ``"valid"`` (lower-cased) or explicit ZeroPadding2D spec; else ValueError."""
    if isinstance(padding, str):
        if padding.lower() not in ("same", "valid"):
            raise ValueError("`padding` must be 'same', 'valid' or explicit zero padding (int or tuple). "
                             f"Received: padding={padding!r}")
        return padding.lower()
    if isinstance(padding, bool):
        raise ValueError(f"`padding` must be 'same', 'valid', an int or a tuple. Received: padding={padding!r}")
    if isinstance(padding, int):
        if padding < 0:
            raise ValueError(f"`padding` must be non-negative. Received: padding={padding!r}")
        return padding
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        flat = []
        for p in padding:
            if isinstance(p, (tuple, list)):
                if len(p) != 2:
                    raise ValueError(f"`padding` pairs must have 2 entries. Received: padding={padding!r}")
                flat.extend(p)
            else:
                flat.append(p)
        if all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in flat):
            return tuple(tuple(p) if isinstance(p, (tuple, list)) else p for p in padding)
    raise ValueError("`padding` must be 'same', 'valid', a non-negative int, a pair of them or "
                     f"((top, bottom), (left, right)). Received: padding={padding!r}")


_ROLES = ("pad", "conv", "bn", "act")


def _layer_names(name, layer_names):
    """``{role: layer name}``: ``{name}_{role}`` unless ``layer_names`` names the role."""
    names = {role: sub(name, role) for role in _ROLES}
    if layer_names is None:
        return names
    if not isinstance(layer_names, Mapping):
        raise ValueError("`layer_names` must be None or a mapping from a role "
                         f"{list(_ROLES)} to a layer name. Received: layer_names={layer_names!r}")
    for role, value in layer_names.items():
        if role not in _ROLES or not (value is None or (isinstance(value, str) and value)):
            raise ValueError(f"`layer_names` maps the roles {list(_ROLES)} to non-empty names "
                             f"(or None). Received: layer_names={layer_names!r}")
        names[role] = value
    return names


def conv_bn_act(x, filters, kernel_size, strides=1, padding="same", groups=1, use_bias=False,
                use_bn=True, activation="relu", bn_momentum=0.99, bn_epsilon=1e-3,
                kernel_initializer="he_normal", dilation_rate=1, name=None, layer_names=None):
    """Conv2D [+ BatchNormalization] [+ activation].

    Layers (when ``name`` is given): ``{name}_pad`` (``ZeroPadding2D``, only for explicit
    padding), ``{name}_conv`` (``Conv2D``), ``{name}_bn`` (``BatchNormalization(axis=-1)``,
    when ``use_bn``) and ``{name}_act`` (see :func:`activation_layer`, skipped when
    ``activation`` is ``None`` or ``"linear"``). ``layer_names`` gives any of them a free name
    instead (e.g. keras.applications ResNet's ``conv1_relu``:
    ``name="conv1", layer_names={"act": "conv1_relu"}``).

    Args:
        x: input tensor ``[N, H, W, C]`` (channels last).
        filters: output channels.
        kernel_size: int or pair.
        strides: int or pair.
        padding: ``"same"``, ``"valid"``, or explicit zero padding in any form
            ``keras.layers.ZeroPadding2D`` takes (int, ``(ph, pw)``, ``((t, b), (l, r))``), in
            which case a ``ZeroPadding2D`` is followed by a ``"valid"`` convolution
            (keras.applications' way to match Caffe/PyTorch padding).
        groups: grouped convolution (``Conv2D(groups=...)``); ``C`` and ``filters`` must be
            divisible by it.
        use_bias: whether the convolution has a bias (normally off before BN).
        use_bn: add ``BatchNormalization(axis=-1)``.
        activation: ``None``, a name (``"relu"``, ``"relu6"``, ``"hard_swish"``, ``"swish"``...)
            or a callable / Layer.
        bn_momentum, bn_epsilon: BatchNormalization ``momentum`` and ``epsilon``.
        kernel_initializer: convolution kernel initializer.
        dilation_rate: int or pair.
        name: layer-name prefix, or ``None`` for Keras' automatic names.
        layer_names: optional mapping from a role (``"pad"``, ``"conv"``, ``"bn"``, ``"act"``)
            to that layer's full name, overriding ``{name}_{role}`` (a ``None`` value: Keras'
            automatic name). Roles not in it keep the default.

    Returns:
        The output tensor.

    Raises:
        ValueError: invalid argument (message names it), or channels not divisible by
            ``groups``.
    """
    check_positive_int("filters", filters)
    names = _layer_names(name, layer_names)
    kernel_size = check_pair("kernel_size", kernel_size)
    strides = check_pair("strides", strides)
    dilation_rate = check_pair("dilation_rate", dilation_rate)
    check_positive_int("groups", groups)
    padding = _check_padding(padding)
    check_float("bn_momentum", bn_momentum, 0.0, 1.0)
    check_float("bn_epsilon", bn_epsilon, 0.0, low_inclusive=False)
    if filters % groups:
        raise ValueError(f"`filters` ({filters}) must be divisible by `groups`. Received: groups={groups}")
    channels = x.shape[-1]
    if channels is not None and channels % groups:
        raise ValueError(f"Input channels ({channels}) must be divisible by `groups`. Received: groups={groups}")
    if not isinstance(padding, str):
        x = keras.layers.ZeroPadding2D(padding, name=names["pad"])(x)
        padding = "valid"
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, groups=groups,
        dilation_rate=dilation_rate, use_bias=use_bias, kernel_initializer=kernel_initializer,
        name=names["conv"],
    )(x)
    if use_bn:
        x = BatchNormalization(axis=-1, momentum=bn_momentum, epsilon=bn_epsilon,
                               name=names["bn"])(x)
    if not is_identity(activation):
        x = activation_layer(activation, name=names["act"])(x)
    return x


def _op_convolution(layer, inputs, kernel):
    """``Conv2D.convolution_op`` of a layer :func:`dispatch_plain_convolutions` chose: the
    compiled op where it may run, Keras' own convolution otherwise (exports, other dtypes)."""
    from keras_cnns.ops.grouped_conv import plain_conv2d_on_op

    y = plain_conv2d_on_op(inputs, kernel, layer.strides, layer.padding)
    return type(layer).convolution_op(layer, inputs, kernel) if y is None else y


def _plain_input_shape(layer):
    """The (static) input shape of a plain, once-called ``keras.layers.Conv2D``, or ``None``."""
    if (type(layer) is not keras.layers.Conv2D or layer.groups != 1
            or layer.data_format != "channels_last" or tuple(layer.dilation_rate) != (1, 1)
            or layer.kernel_size[0] != layer.kernel_size[1] or layer.strides[0] != layer.strides[1]
            or layer.compute_dtype != "float32" or len(layer._inbound_nodes) != 1):
        return None
    shape = tuple(layer.input.shape)
    return shape if len(shape) == 4 and shape[-1] is not None else None


def dispatch_plain_convolutions(model) -> list:
    """Run the plain convolutions of ``model`` on the custom op where it is measured faster.

    Every ``keras.layers.Conv2D`` of the model (nested ones too) with one group, no dilation, a
    square kernel, equal strides, float32 compute and one call is looked up in the measured rule
    (:func:`keras_cnns.ops.depthwise_dispatch.prefer_custom_plain`: its input side and channels,
    output channels, kernel and stride, this process's oneDNN setting, ``KERAS_CNNS_PLAIN_CONV``);
    the chosen layers get an instance ``convolution_op`` that runs the compiled op at
    ``groups=1`` (:func:`keras_cnns.ops.plain_conv2d_on_op`) and ``supports_jit = False``
    (custom ops have no XLA kernel). Their class, config, weights, names and exports do not
    change: inside :func:`keras_cnns.ops.stock_ops_only` (every export) they run Keras' own
    convolution, and a model rebuilt from its config (``.keras`` files, ``clone_model``) is
    the plain Keras model. Every model the library builds goes through this
    (``keras_cnns.models._builder.make_model``).

    Returns:
        The names of the layers now on the op (empty where the rule keeps TensorFlow's
        kernels everywhere, e.g. with oneDNN on).
    """
    import types

    from keras_cnns.ops.depthwise_dispatch import prefer_custom_plain

    chosen = []
    for layer in model._flatten_layers(include_self=False):
        try:
            shape = _plain_input_shape(layer)
        except (AttributeError, ValueError):  # not called in a functional graph
            shape = None
        if shape is None:
            continue
        _, height, width, channels = shape
        if prefer_custom_plain(height, width, channels, layer.filters, layer.kernel_size[0],
                               layer.strides[0]):
            layer.convolution_op = types.MethodType(_op_convolution, layer)
            layer.supports_jit = False
            chosen.append(layer.name)
    return chosen
