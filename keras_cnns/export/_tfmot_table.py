"""The one translation table of the tfmot path: Keras 3 layer -> spec -> tf_keras layer.

Imported by both sides of :mod:`keras_cnns.export._tfmot`: the parent (Keras 3, as
``keras_cnns.export._tfmot_table``) turns each layer into a spec entry with a row's ``to_spec``,
and the child :mod:`keras_cnns.export._tfmot_child` (``TF_USE_LEGACY_KERAS=1``, as the top-level
module ``_tfmot_table`` from its own directory) rebuilds each entry with the builder of its
``kind``. So this module imports only the standard library and NumPy at the top: Keras 3 and
keras_cnns only inside :func:`translators` and the ``to_spec`` functions (parent), tf_keras never
(the child passes itself, ``tk``, to the builders: ``tk.L`` is ``tf_keras.layers``, and
``tk.GroupConv``, ``tk.EdgePad``, ``tk.ChannelSplit`` its own layers).

Teaching the path a new layer type = one :class:`Row` in :data:`TABLE`: the Keras 3 classes it
covers (exact classes, as ``"module.Class"`` paths), ``to_spec(layer, cfg) -> (kind, args,
weights)`` (weights in tf_keras' layout; ``cfg`` is ``layer.get_config()``) and the builders
``{kind: build(tk, args, name)}`` of the kinds it introduces (a builder returns a tf_keras layer
or any ``fn(inputs) -> tensor``).

Translated (whitelist, exact): InputLayer (by the parent itself), Conv2D (``groups`` included),
DepthwiseConv2D, Keras' and keras_cnns' BatchNormalization (Keras' layer with a fused training
kernel: the same inference and weights), GroupedDepthwiseConv2D (a fused channel shuffle becomes
Reshape / Permute / Reshape; depthwise groups a DepthwiseConv2D with the kernel reshaped
``[kh, kw, 1, C*m] -> [kh, kw, C, m]``; other groups -- and Conv2D with ``groups > 1`` -- the
child's GroupConv, one ``tf.nn.conv2d`` per group with the same kernel, because TensorFlow's Eigen
CPU kernels (oneDNN off) have no gradient for a grouped convolution), ChannelShuffle (Reshape /
Permute / Reshape), ChannelSplit (a small slicing layer of the child's, no-op quantize config),
ReLU, Activation, ZeroPadding2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, Dropout,
Reshape, Flatten, Dense, Concatenate, Add, Softmax, Rescaling and CeilModeMaxPooling2D (stock
MaxPooling2D where "valid" / "same" is exact, else an edge-repeat pad layer then a "valid" pool).
"""

from __future__ import annotations

import importlib
import numbers
from typing import Any, Callable, Dict, NamedTuple, Tuple

import numpy as np

__all__ = ["MULTI_INPUT", "Row", "TABLE", "builders", "translators"]

ToSpec = Callable[[Any, Dict[str, Any]], Tuple[str, Dict[str, Any], list]]
Build = Callable[[Any, Dict[str, Any], str], Any]


class Row(NamedTuple):
    keras3: Tuple[str, ...]
    to_spec: ToSpec
    builds: Dict[str, Build]


# --------------------------------------------------------------------------- parent side helpers


def _error(layer, what):
    """``ValueError("Layer 'name' (Class)" + what)``."""
    return ValueError(f"Layer '{layer.name}' ({type(layer).__name__}){what}")


def _activation_name(layer, value):
    import keras

    if isinstance(value, str):
        name = value
    else:
        name = keras.activations.serialize(value)
        if isinstance(name, dict):
            name = name.get("config", name.get("class_name"))
    allowed = ("linear", "relu", "softmax", "sigmoid", "tanh", "swish", "silu", "elu",
               "selu", "softplus", "softsign", "gelu", "exponential", "hard_sigmoid")
    if not isinstance(name, str) or name not in allowed:
        raise _error(layer, f" has activation {value!r}, which the tf_keras translation does not "
                            f"support (allowed: {allowed}).")
    if name == "hard_sigmoid":  # Keras 2's hard_sigmoid has slope 0.2, Keras 3's 1/6
        raise _error(layer, ": activation 'hard_sigmoid' differs between Keras 3 and tf_keras; "
                            "not translated.")
    return "swish" if name == "silu" else name


def _pair(v):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return [int(v), int(v)]
    return [int(a) for a in v]


def _channels_last(layer, cfg):
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        raise _error(layer, f" uses data_format={cfg['data_format']!r}; only channels_last is "
                            "translated.")


def _static_spatial(layer):
    shape = layer.input.shape
    if None in (shape[1], shape[2]):
        raise _error(layer, " needs a static spatial input size for the translation.")
    return int(shape[1]), int(shape[2])


def _weights(layer):
    return [np.asarray(v.numpy()) for v in layer.weights]


# --------------------------------------------------------------------------- to_spec (parent)


def _conv(layer, cfg):
    _channels_last(layer, cfg)
    return "Conv2D", dict(filters=cfg["filters"], kernel_size=_pair(cfg["kernel_size"]),
                          strides=_pair(cfg["strides"]), padding=cfg["padding"],
                          dilation_rate=_pair(cfg["dilation_rate"]),
                          groups=int(cfg.get("groups", 1)), use_bias=cfg["use_bias"],
                          activation=_activation_name(layer, cfg["activation"])), _weights(layer)


def _dwconv(layer, cfg):
    _channels_last(layer, cfg)
    return "DepthwiseConv2D", dict(kernel_size=_pair(cfg["kernel_size"]),
                                   strides=_pair(cfg["strides"]), padding=cfg["padding"],
                                   depth_multiplier=cfg["depth_multiplier"],
                                   dilation_rate=_pair(cfg["dilation_rate"]),
                                   use_bias=cfg["use_bias"],
                                   activation=_activation_name(layer, cfg["activation"])
                                   ), _weights(layer)


def _bn(layer, cfg):
    if cfg.get("renorm") or cfg.get("synchronized"):
        raise _error(layer, ": renorm / synchronized batch normalisation is not translated.")
    axis = cfg["axis"]
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise _error(layer, ": multi-axis batch normalisation is not translated "
                                f"(axis={axis}).")
        axis = axis[0]
    if axis not in (-1, len(layer.input.shape) - 1):
        raise _error(layer, f": only last-axis batch normalisation is translated (axis={axis}).")
    return "BatchNormalization", dict(axis=-1, momentum=cfg["momentum"], epsilon=cfg["epsilon"],
                                      center=cfg["center"], scale=cfg["scale"]), _weights(layer)


def _grouped(layer, cfg):
    c = int(layer.input.shape[-1])
    groups, filters = layer._resolved(c)
    out = {"shuffle_groups": int(layer.shuffle_groups), "channels": c,
           "spatial": [layer.input.shape[1], layer.input.shape[2]]}
    common = dict(kernel_size=list(layer.kernel_size), strides=list(layer.strides),
                  padding=layer.padding, dilation_rate=list(layer.dilation_rate),
                  use_bias=layer.use_bias)
    ws = _weights(layer)
    if groups == c and groups > 1:
        kh, kw = layer.kernel_size
        ws[0] = ws[0].reshape(kh, kw, c, filters // c)
        out.update(common, conv="DepthwiseConv2D", depth_multiplier=filters // c)
    else:
        out.update(common, conv="Conv2D", filters=filters, groups=groups)
    if None in out["spatial"] and out["shuffle_groups"] > 1:
        raise _error(layer, ": a fused channel shuffle needs a static spatial input size for "
                            "the translation.")
    return "GroupedConv", out, ws


def _channel_shuffle(layer, cfg):
    h, w = _static_spatial(layer)
    return "ChannelShuffle", dict(groups=int(layer.groups), channels=int(layer.input.shape[-1]),
                                  spatial=[h, w]), []


def _relu(layer, cfg):
    return "ReLU", dict(max_value=cfg.get("max_value"),
                        negative_slope=float(cfg.get("negative_slope", 0.0)),
                        threshold=float(cfg.get("threshold", 0.0))), []


def _act(layer, cfg):
    return "Activation", dict(activation=_activation_name(layer, cfg["activation"])), []


def _zpad(layer, cfg):
    _channels_last(layer, cfg)
    return "ZeroPadding2D", dict(padding=[list(p) for p in cfg["padding"]]), []


def _pool(kind):
    def to_spec(layer, cfg):
        _channels_last(layer, cfg)
        return kind, dict(pool_size=_pair(cfg["pool_size"]),
                          strides=_pair(cfg["strides"] or cfg["pool_size"]),
                          padding=cfg["padding"]), []
    return to_spec


def _gap(layer, cfg):
    _channels_last(layer, cfg)
    return "GlobalAveragePooling2D", dict(keepdims=bool(cfg.get("keepdims", False))), []


def _ceil_pool(layer, cfg):
    h, w = _static_spatial(layer)
    pads = (layer._needed_pad(h), layer._needed_pad(w))
    k, s = layer.pool_size, layer.strides
    if pads == (0, 0):
        return "MaxPooling2D", dict(pool_size=[k, k], strides=[s, s], padding="valid"), []
    if layer._same_is_exact(h) and layer._same_is_exact(w):
        return "MaxPooling2D", dict(pool_size=[k, k], strides=[s, s], padding="same"), []
    return "EdgePadMaxPool", dict(pool_size=k, strides=s, pads=list(pads)), []


def _dense(layer, cfg):
    return "Dense", dict(units=cfg["units"], use_bias=cfg["use_bias"],
                         activation=_activation_name(layer, cfg["activation"])), _weights(layer)


def _simple(kind, keys=()):
    def to_spec(layer, cfg):
        return kind, {k: cfg[k] for k in keys}, []
    return to_spec


def _reshape(layer, cfg):
    return "Reshape", dict(target_shape=list(cfg["target_shape"])), []


def _flatten(layer, cfg):
    _channels_last(layer, cfg)
    return "Flatten", {}, []


def _rescale(layer, cfg):
    scale, offset = cfg["scale"], cfg["offset"]
    if not all(np.ndim(v) == 0 for v in (scale, offset)):
        raise _error(layer, ": only scalar scale/offset are translated.")
    return "Rescaling", dict(scale=float(scale), offset=float(offset)), []


# --------------------------------------------------------------------------- builders (child)


def _stock(kind, **convert):
    """``getattr(tk.L, kind)(name=name, **args)``, ``convert[key]`` applied to those args."""
    def build(tk, args, name):
        a = {k: convert[k](v) if k in convert else v for k, v in args.items()}
        return getattr(tk.L, kind)(name=name, **a)
    return build


def _group_conv(tk, args, name):
    a = dict(args)
    if name is not None:
        a["name"] = name
    if a.pop("activation", None) not in (None, "linear"):
        raise ValueError(f"grouped convolution {a['name']!r} with a fused activation")
    return tk.GroupConv(**a)


def _build_conv(tk, args, name):
    if int(args.get("groups", 1)) > 1:
        return _group_conv(tk, args, name)
    return tk.L.Conv2D(name=name, **args)


def _shuffle(tk, x, groups, channels, spatial, name):
    """ShuffleNet's channel shuffle with stock 4-D-friendly layers: [H*W, g, C/g] -> permute ->
    [H, W, C] (output channel j*g + i = input channel i*(C/g) + j)."""
    h, w = spatial
    x = tk.L.Reshape((h * w, groups, channels // groups), name=f"{name}_shuffle_split")(x)
    x = tk.L.Permute((1, 3, 2), name=f"{name}_shuffle_permute")(x)
    return tk.L.Reshape((h, w, channels), name=f"{name}_shuffle_merge")(x)


def _build_grouped(tk, a, name):
    def apply(x):
        if a["shuffle_groups"] > 1:
            x = _shuffle(tk, x, a["shuffle_groups"], a["channels"], a["spatial"], name)
        common = dict(kernel_size=a["kernel_size"], strides=a["strides"], padding=a["padding"],
                      dilation_rate=a["dilation_rate"], use_bias=a["use_bias"], name=name)
        if a["conv"] == "DepthwiseConv2D":
            return tk.L.DepthwiseConv2D(depth_multiplier=a["depth_multiplier"], **common)(x)
        if a["groups"] > 1:
            return _group_conv(tk, dict(common, filters=a["filters"], groups=a["groups"]), None)(x)
        return tk.L.Conv2D(a["filters"], **common)(x)
    return apply


def _build_channel_shuffle(tk, a, name):
    return lambda x: _shuffle(tk, x, a["groups"], a["channels"], a["spatial"], name)


def _build_edge_pad_pool(tk, a, name):
    def apply(x):
        x = tk.EdgePad(a["pads"], name=f"{name}_edgepad")(x)
        return tk.L.MaxPooling2D(a["pool_size"], a["strides"], "valid", name=name)(x)
    return apply


def _tuples(pairs):
    return tuple(tuple(p) for p in pairs)


# --------------------------------------------------------------------------- the table

_L = "keras.layers."
_KC = "keras_cnns.layers."

TABLE = (
    Row((_L + "Conv2D",), _conv, {"Conv2D": _build_conv}),
    Row((_L + "DepthwiseConv2D",), _dwconv, {"DepthwiseConv2D": _stock("DepthwiseConv2D")}),
    Row((_L + "BatchNormalization", _KC + "batch_norm.BatchNormalization"), _bn,
        {"BatchNormalization": _stock("BatchNormalization")}),
    Row((_KC + "grouped_conv.GroupedDepthwiseConv2D",), _grouped, {"GroupedConv": _build_grouped}),
    Row((_KC + "shuffle.ChannelShuffle",), _channel_shuffle,
        {"ChannelShuffle": _build_channel_shuffle}),
    Row((_KC + "shuffle.ChannelSplit",), _simple("ChannelSplit", ("parts",)),
        {"ChannelSplit": lambda tk, a, name: tk.ChannelSplit(a["parts"], name=name)}),
    Row((_L + "ReLU",), _relu, {"ReLU": _stock("ReLU")}),
    Row((_L + "Activation",), _act, {"Activation": _stock("Activation")}),
    Row((_L + "ZeroPadding2D",), _zpad,
        {"ZeroPadding2D": _stock("ZeroPadding2D", padding=_tuples)}),
    Row((_L + "MaxPooling2D",), _pool("MaxPooling2D"), {"MaxPooling2D": _stock("MaxPooling2D")}),
    Row((_L + "AveragePooling2D",), _pool("AveragePooling2D"),
        {"AveragePooling2D": _stock("AveragePooling2D")}),
    Row((_L + "GlobalAveragePooling2D",), _gap,
        {"GlobalAveragePooling2D": _stock("GlobalAveragePooling2D")}),
    Row((_L + "Dropout",), _simple("Dropout", ("rate",)), {"Dropout": _stock("Dropout")}),
    Row((_L + "Reshape",), _reshape, {"Reshape": _stock("Reshape", target_shape=tuple)}),
    Row((_L + "Flatten",), _flatten, {"Flatten": _stock("Flatten")}),
    Row((_L + "Dense",), _dense, {"Dense": _stock("Dense")}),
    Row((_L + "Concatenate",), _simple("Concatenate", ("axis",)),
        {"Concatenate": _stock("Concatenate")}),
    Row((_L + "Add",), _simple("Add"), {"Add": _stock("Add")}),
    Row((_L + "Softmax",), _simple("Softmax", ("axis",)), {"Softmax": _stock("Softmax")}),
    Row((_L + "Rescaling",), _rescale, {"Rescaling": _stock("Rescaling")}),
    # MaxPooling2D where "valid" / "same" is exact (that row builds it), else EdgePadMaxPool
    Row((_KC + "pooling.CeilModeMaxPooling2D",), _ceil_pool,
        {"EdgePadMaxPool": _build_edge_pad_pool}),
)

#: Kinds whose layer takes the list of its inputs (the others take their single input).
MULTI_INPUT = frozenset({"Concatenate", "Add"})


def _resolve(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def translators() -> Dict[type, ToSpec]:
    """``{exact Keras 3 class: to_spec}`` (parent only: imports Keras 3 and keras_cnns)."""
    return {_resolve(path): row.to_spec for row in TABLE for path in row.keras3}


def builders() -> Dict[str, Build]:
    """``{kind: build(tk, args, name)}`` (child: imports nothing)."""
    out: Dict[str, Build] = {}
    for row in TABLE:
        for kind, build in row.builds.items():
            if kind in out:
                raise ValueError(f"tfmot table: kind {kind!r} has two builders")
            out[kind] = build
    return out
