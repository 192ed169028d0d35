"""Copy weights from a ``keras.applications`` model into the keras_cnns model of the same config.

``from_keras_applications(source, target)`` walks the layers that own weights in both models in
topological order, pairs them one to one, converts each weight where the two libraries store it
differently (rules below), checks every shape, and only then assigns: a mismatch anywhere raises
``ValueError`` naming both layers and nothing is copied.

Conversion rules (``(source class, target class) -> converter``; the most specific classes win):

* ``DepthwiseConv2D`` kernel ``[KH, KW, C, m]`` -> :class:`~keras_cnns.layers.GroupedDepthwiseConv2D`
  (depthwise) kernel ``[KH, KW, 1, C * m]``: a plain reshape, because both number the output
  channels ``o = c * m + k`` (input channel ``c``, multiplier index ``k``); and back.
* ``Dense`` kernel ``[h * w * c, units]`` <-> ``Conv2D`` kernel ``[h, w, c, units]`` (a fully
  connected layer written as a convolution, :func:`keras_cnns.layers.fc_as_conv`): a reshape,
  because Keras' ``Flatten`` of an NHWC map orders features ``(h, w, c)``.
* Grouped ``Conv2D(groups=g)`` <-> ``GroupedDepthwiseConv2D(groups=g)``: the same layout
  ``[KH, KW, C / g, F]`` and the same output order, so shapes must simply agree.
* ``Normalization`` -> ``Normalization``: the statistics as they are, except that a
  ``Rescaling`` right after the source's layer is folded into the variance (keras.applications'
  ImageNet EfficientNet stores the standard deviation as the variance and rescales after it,
  tensorflow/tensorflow#49930); stock ``Normalization`` targets are refreshed after the copy.
* Anything else: weights must have identical shapes.

Pairing: in topological order, unless a name map applies: the family's, registered with
:func:`keras_cnns.bridges.register_name_map` under the bridge ``"keras_applications"`` (pairs of
``(keras_cnns_layer_name, keras_applications_layer_name)``; found from the target's name,
``model_info(target.name).family``, or the ``family`` argument), or the ``names`` argument. Layers
that exist on one side only (e.g. keras.applications EfficientNet's ``Normalization``) can be left
out with ``skip_source`` / ``skip_target``. New converters between layer classes are added with
:func:`register_weight_rule`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import keras
import numpy as np

from keras_cnns.bridges._common import (
    NameMap,
    describe,
    pair_by_names,
    pair_by_order,
    resolve_names,
    short_name,
    weighted_layers,
)

__all__ = ["BRIDGE", "from_keras_applications", "register_weight_rule", "weighted_layers"]

#: This bridge's name in :func:`keras_cnns.bridges.register_name_map`.
BRIDGE = "keras_applications"

# converter(source_layer, target_layer, source_arrays, target_variables) -> target arrays
Converter = Callable[[Any, Any, List[np.ndarray], List[Any]], List[np.ndarray]]
_RULES: Dict[Tuple[type, type], Converter] = {}


def register_weight_rule(source_class: type, target_class: type, converter: Converter) -> None:
    """Register how weights of ``source_class`` layers become weights of ``target_class`` ones.

    ``converter(source_layer, target_layer, source_arrays, target_variables)`` returns the list
    of NumPy arrays to assign to ``target_variables`` (same length and order); it may raise
    ``ValueError`` when the two layers cannot correspond. Shapes are checked after it runs.
    Subclasses inherit the rule; the most specific registered pair wins.
    """
    if not (isinstance(source_class, type) and isinstance(target_class, type) and callable(converter)):
        raise ValueError("register_weight_rule(source_class, target_class, converter) takes two "
                         f"classes and a callable. Received: source_class={source_class!r}, "
                         f"target_class={target_class!r}, converter={converter!r}")
    _RULES[(source_class, target_class)] = converter


def _rule_for(source, target) -> Optional[Converter]:
    for s_cls in type(source).__mro__:
        for t_cls in type(target).__mro__:
            rule = _RULES.get((s_cls, t_cls))
            if rule is not None:
                return rule
    return None


def _by_name(source_layer, target_layer, src: List[np.ndarray], tgt_vars: List[Any], convert_kernel):
    """Pair weights by short name; ``convert_kernel(array, target_shape)`` maps the kernel."""
    s_names = [short_name(v) for v in source_layer.weights]
    t_names = [short_name(v) for v in tgt_vars]
    if sorted(s_names) != sorted(t_names):
        raise ValueError(f"weights {s_names} do not correspond to {t_names}")
    lookup = dict(zip(s_names, src))
    out = []
    for name, var in zip(t_names, tgt_vars):
        a = lookup[name]
        if name == "kernel":
            a = convert_kernel(a, tuple(var.shape))
        out.append(a)
    return out


def _same_layout(source_layer, src: List[np.ndarray], tgt_vars: List[Any]) -> List[np.ndarray]:
    """No conversion: pair by short name when both sides name their weights alike, else by order."""
    if len(src) != len(tgt_vars):
        raise ValueError(f"{len(src)} weights in the source vs {len(tgt_vars)} in the target")
    s_names = [short_name(v) for v in source_layer.weights]
    t_names = [short_name(v) for v in tgt_vars]
    if sorted(s_names) == sorted(t_names) and len(set(s_names)) == len(s_names):
        lookup = dict(zip(s_names, src))
        return [lookup[n] for n in t_names]
    return list(src)


def _depthwise_to_grouped(source_layer, target_layer, src, tgt_vars):
    def kernel(a, shape):
        kh, kw, c, m = a.shape
        if shape != (kh, kw, 1, c * m):
            raise ValueError(f"depthwise kernel {a.shape} needs a depthwise target kernel "
                             f"{(kh, kw, 1, c * m)}, found {shape}")
        return a.reshape(kh, kw, 1, c * m)  # output o = c * m + k on both sides

    return _by_name(source_layer, target_layer, src, tgt_vars, kernel)


def _grouped_to_depthwise(source_layer, target_layer, src, tgt_vars):
    def kernel(a, shape):
        kh, kw, c, m = shape
        if a.shape != (kh, kw, 1, c * m):
            raise ValueError(f"kernel {a.shape} is not the depthwise kernel {(kh, kw, 1, c * m)} "
                             f"of a DepthwiseConv2D kernel {shape}")
        return a.reshape(kh, kw, c, m)

    return _by_name(source_layer, target_layer, src, tgt_vars, kernel)


def _dense_to_conv(source_layer, target_layer, src, tgt_vars):
    def kernel(a, shape):
        if a.ndim != 2 or len(shape) != 4 or int(np.prod(shape[:3])) != a.shape[0] or shape[3] != a.shape[1]:
            raise ValueError(f"Dense kernel {a.shape} does not fit the conv kernel {shape}")
        return a.reshape(shape)  # Flatten of NHWC orders features (h, w, c)

    return _by_name(source_layer, target_layer, src, tgt_vars, kernel)


def _conv_to_dense(source_layer, target_layer, src, tgt_vars):
    def kernel(a, shape):
        if a.ndim != 4 or len(shape) != 2 or int(np.prod(a.shape[:3])) != shape[0] or a.shape[3] != shape[1]:
            raise ValueError(f"conv kernel {a.shape} does not fit the Dense kernel {shape}")
        return a.reshape(shape)

    return _by_name(source_layer, target_layer, src, tgt_vars, kernel)


def _install_default_rules() -> None:
    from keras_cnns.layers.grouped_conv import GroupedDepthwiseConv2D

    register_weight_rule(keras.layers.DepthwiseConv2D, GroupedDepthwiseConv2D, _depthwise_to_grouped)
    register_weight_rule(GroupedDepthwiseConv2D, keras.layers.DepthwiseConv2D, _grouped_to_depthwise)
    register_weight_rule(keras.layers.Dense, keras.layers.Conv2D, _dense_to_conv)
    register_weight_rule(keras.layers.Conv2D, keras.layers.Dense, _conv_to_dense)


_install_default_rules()


def from_keras_applications(
    source,
    target,
    *,
    skip_source: Optional[Callable[[Any], bool]] = None,
    skip_target: Optional[Callable[[Any], bool]] = None,
    family: Optional[str] = None,
    names: Union[None, Sequence[Tuple[str, str]], NameMap] = None,
):
    """Copy the weights of a ``keras.applications`` model into a keras_cnns model.

    Both models must be built with the same configuration (width, classes, ``include_top``,
    input channels). The weighted layers of both are paired in topological order, or by a name
    map (the module docstring); every pair is converted and its shapes checked before anything
    is assigned, so a failure leaves ``target`` untouched.

    Example::

        src = keras.applications.MobileNet(alpha=0.5, weights="imagenet")
        dst = keras_cnns.MobileNet(alpha=0.5)
        from_keras_applications(src, dst)

    Args:
        source: the ``keras.applications`` model (or any Keras model with the same layout).
        target: the keras_cnns model.
        skip_source: optional predicate on source layers to leave out of the pairing.
        skip_target: optional predicate on target layers to leave out of the pairing.
        family: the registered ``"keras_applications"`` name map to use
            (:func:`keras_cnns.bridges.register_name_map`); default: the family of the
            registered model called ``target.name``, if a map is registered for it.
        names: explicit ``[(target_layer_name, source_layer_name), ...]`` (or ``fn(target)``
            returning it) instead of the registered map.

    Returns:
        ``target``, with the weights of ``source``.

    Raises:
        ValueError: the models are not Keras models, their weighted layers differ in number (or
            a name map leaves some unpaired or names a layer that is not there), or a pair of
            layers does not correspond (different weights or shapes); the message names both
            layers.
    """
    for arg, m in (("source", source), ("target", target)):
        if not isinstance(m, keras.Model):
            raise ValueError(f"`{arg}` must be a keras.Model. Received: {arg}={m!r}")
    src_layers = weighted_layers(source, skip_source)
    tgt_layers = weighted_layers(target, skip_target)
    mapping = resolve_names(target, BRIDGE, family, names)
    messages = dict(origin="source", unit="layer", where=f"the source model {source.name!r}",
                    relax="")
    if mapping is None:
        pairs = pair_by_order(tgt_layers, src_layers, True, **messages)
    else:
        by_name = {layer.name: layer for layer in src_layers}
        pairs = [(t, by_name[s]) for t, s in
                 pair_by_names(tgt_layers, by_name, mapping, True, **messages)]

    plan: List[Tuple[Any, np.ndarray]] = []
    for t, s in pairs:
        arrays = [np.asarray(keras.ops.convert_to_numpy(v)) for v in s.weights]
        t_vars = list(t.weights)
        where = f"source layer {describe(s)} -> target layer {describe(t)}"
        rule = _rule_for(s, t)
        try:
            if rule is not None:
                new = list(rule(s, t, arrays, t_vars))
            else:
                new = _same_layout(s, arrays, t_vars)
        except ValueError as exc:
            raise ValueError(f"Cannot copy {where}: {exc}") from None
        if len(new) != len(t_vars):
            raise ValueError(f"Cannot copy {where}: {len(new)} weights for {len(t_vars)} variables")
        for a, v in zip(new, t_vars):
            if tuple(a.shape) != tuple(v.shape):
                raise ValueError(
                    f"Cannot copy {where}: weight {short_name(v)!r} has shape {tuple(a.shape)} in the "
                    f"source and {tuple(v.shape)} in the target"
                )
            plan.append((v, a))

    for v, a in plan:
        v.assign(a.astype(v.dtype) if hasattr(a, "astype") else a)
    for t in tgt_layers:  # stock Normalization snapshots its statistics: refresh them
        if isinstance(t, keras.layers.Normalization) and t.built:
            t.finalize_state()
    return target


def _following_scale(layer) -> Optional[np.ndarray]:
    """The per-channel scale of a ``Rescaling`` (offset 0) that alone consumes ``layer``'s
    output, else ``None``."""
    consumers = [node.operation for node in getattr(layer, "_outbound_nodes", [])]
    if len(consumers) != 1 or not isinstance(consumers[0], keras.layers.Rescaling):
        return None
    op = consumers[0]
    return np.asarray(op.scale, dtype=np.float64) if np.all(np.asarray(op.offset) == 0) else None


def _normalization_fold(source_layer, target_layer, src, tgt_vars):
    """Normalization -> Normalization, folding a ``Rescaling(s)`` that follows the source's
    layer into the variance: ``(x - m) / sqrt(v) * s = (x - m) / sqrt(v / s^2)``.
    keras.applications' ImageNet EfficientNet checkpoints store the standard deviation as the
    variance and add ``Rescaling(1 / sqrt(std))`` after the layer (tensorflow/tensorflow#49930):
    the copy then holds the true variance ``std^2``."""
    out = _same_layout(source_layer, src, tgt_vars)
    scale = _following_scale(source_layer)
    if scale is not None:
        names = [short_name(v) for v in tgt_vars]
        i = names.index("variance") if "variance" in names else 1
        out[i] = (np.asarray(out[i], dtype=np.float64) / scale ** 2).astype(np.float32)
    return out


register_weight_rule(keras.layers.Normalization, keras.layers.Normalization, _normalization_fold)
