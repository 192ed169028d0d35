"""What the weight bridges share: the name-map table, layer walking, pairing and BatchNorm eps.

Every bridge pairs each Keras layer that owns weights with one layer / module of the reference
model. A family that needs more than the default (pairing in order) gives a *name map*:
``fn(keras_model) -> [(keras_layer_name, reference_name), ...]``, registered once per
``(family, bridge)`` with :func:`register_name_map` (see :mod:`keras_cnns.bridges`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import keras

from keras_cnns.models import model_info

__all__ = ["NameMap", "check_bn_epsilon", "name_maps", "register_name_map", "registered_names",
           "resolve_names", "weighted_layers"]

#: ``fn(keras_model) -> [(keras_layer_name, reference_name), ...]`` in any order, covering every
#: Keras layer that owns weights. ``reference_name`` is what the bridge's source calls the layer:
#: a torch module prefix (``"layer1.0.conv1"``), a keras.applications layer name, ...
NameMap = Callable[[Any], List[Tuple[str, str]]]
_NAME_MAPS: Dict[Tuple[str, str], NameMap] = {}

#: How far a Keras BatchNormalization epsilon may be from the source's.
EPSILON_TOLERANCE = 1e-12


def register_name_map(family: str, bridge: str, fn: NameMap) -> None:
    """Register how ``family``'s Keras layers map to the layers of ``bridge``'s source models.

    Args:
        family: the registry's family name (``model_info(name).family``, e.g. ``"ResNet"``).
        bridge: the bridge that uses it: ``"keras_applications"``, ``"torchvision"``, ...
        fn: ``fn(keras_model) -> [(keras_layer_name, reference_name), ...]``; e.g. for
            torchvision ``("conv2_block1_1_conv", "layer1.0.conv1")`` pairs that Keras layer with
            the state-dict entries ``layer1.0.conv1.weight`` (and ``.bias``). It may raise
            ``ValueError`` for a model of the family that has no counterpart.

    Raises:
        ValueError: an argument of the wrong kind, or ``(family, bridge)`` registered already
            with another function (one name map per family and bridge).
    """
    if not (isinstance(family, str) and family and isinstance(bridge, str) and bridge
            and callable(fn)):
        raise ValueError("register_name_map(family, bridge, fn) takes a family name, a bridge "
                         f"name and a callable. Received: family={family!r}, bridge={bridge!r}, "
                         f"fn={fn!r}")
    known = _NAME_MAPS.get((family, bridge))
    if known is not None and known is not fn:
        raise ValueError(f"family {family!r} already has a {bridge} name map ({known!r}); one "
                         f"per family and bridge. Received: fn={fn!r}")
    _NAME_MAPS[(family, bridge)] = fn


def name_maps(bridge: str) -> Dict[str, NameMap]:
    """``{family: fn}`` of the name maps registered for ``bridge`` (a copy)."""
    return {f: fn for (f, b), fn in _NAME_MAPS.items() if b == bridge}


def _model_family(model) -> Optional[str]:
    try:
        return model_info(model.name).family
    except ValueError:
        return None


def registered_names(model, bridge: str, family: Optional[str] = None
                     ) -> Optional[List[Tuple[str, str]]]:
    """The registered ``(keras_layer_name, reference_name)`` pairs for ``model``, or ``None``.

    ``family`` picks the name map (default: the family of the registered model named
    ``model.name``); ``None`` comes back when no map applies (the bridge then pairs by order).

    Raises:
        ValueError: ``family`` is given but has no ``bridge`` name map.
    """
    maps = name_maps(bridge)
    if family is None:
        family = _model_family(model)
        if family not in maps:
            return None
    elif family not in maps:
        raise ValueError(f"`family` has no registered {bridge} name map; registered: "
                         f"{sorted(maps)}. Received: family={family!r}")
    return [(str(k), str(r)) for k, r in maps[family](model)]


def resolve_names(model, bridge: str, family: Optional[str],
                  names: Union[None, Sequence[Tuple[str, str]], NameMap]
                  ) -> Optional[List[Tuple[str, str]]]:
    """A bridge's ``names`` argument (explicit pairs or ``fn(model)``), else the registered map."""
    if names is None:
        return registered_names(model, bridge, family)
    mapping = names(model) if callable(names) else names
    try:
        return [(str(k), str(r)) for k, r in mapping]
    except (TypeError, ValueError):
        raise ValueError("`names` must be a list of (keras_layer_name, reference_name) pairs or "
                         f"a callable returning one. Received: names={names!r}") from None


# ----------------------------------------------------------------------------------------------
# Keras layers
# ----------------------------------------------------------------------------------------------

def short_name(v) -> str:
    """A variable's own name (``"kernel"``, ``"moving_mean"``, ...)."""
    return (v.path if hasattr(v, "path") else v.name).rsplit("/", 1)[-1]


def describe(layer) -> str:
    return f"{layer.name!r} ({type(layer).__name__})"


def sublayers(model) -> List[Any]:
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    # Functional models keep their operations in topological order (inputs first).
    ops = getattr(model, "operations", None)
    return list(ops if ops is not None else model.layers)


def weighted_layers(model, skip: Optional[Callable[[Any], bool]] = None) -> List[Any]:
    """The layers of ``model`` that own weights, in topological order, nested models entered,
    and so are layers that hold no variable of their own, only sublayers that do (e.g. the
    memory-efficient DenseNet's :class:`keras_cnns.layers.DenseLayer`, two BatchNormalizations
    and two Conv2Ds under one call): their sublayers in tracking order.

    Args:
        model: a Keras model.
        skip: optional predicate; layers for which it is true are left out.

    Returns:
        A list of layers (each with a non-empty ``weights``).
    """
    out: List[Any] = []
    for layer in sublayers(model):
        if skip is not None and skip(layer):
            continue
        if isinstance(layer, keras.Model):
            out.extend(weighted_layers(layer, skip))
        elif getattr(layer, "weights", None):
            out.extend(_owners(layer, skip))
    return out


def _owners(layer, skip) -> List[Any]:
    """``[layer]`` if it owns a variable itself (or has no sublayers), else its weighted
    sublayers, recursively."""
    own = list(getattr(layer, "_trainable_variables", [])) + list(
        getattr(layer, "_non_trainable_variables", []))
    flatten = getattr(layer, "_flatten_layers", None)
    children = list(flatten(include_self=False, recursive=False)) if flatten else []
    if own or not children:
        return [layer]
    out: List[Any] = []
    for child in children:
        if (skip is None or not skip(child)) and getattr(child, "weights", None):
            out.extend(_owners(child, skip))
    return out


def walk(layer, seen=None):
    """Every layer inside ``layer`` once, depth first: functional models in topological order,
    other layers through their tracked sublayers (e.g. a stochastic-depth block's branch)."""
    seen = set() if seen is None else seen
    if isinstance(layer, keras.Model):
        children = sublayers(layer)
    else:
        flatten = getattr(layer, "_flatten_layers", None)
        children = list(flatten(include_self=False, recursive=False)) if flatten else []
    for child in children:
        if id(child) not in seen:
            seen.add(id(child))
            yield child
            yield from walk(child, seen)


def all_layer_names(model) -> set:
    """The names of every layer in ``model`` (:func:`walk`)."""
    return {layer.name for layer in walk(model)}


# ----------------------------------------------------------------------------------------------
# Pairing
# ----------------------------------------------------------------------------------------------

def pair_by_names(layers: Sequence[Any], sources: Dict[str, Any], mapping, strict: bool, *,
                  origin: str, unit: str, where: str,
                  relax: str = " or pass strict=False") -> List[Tuple[Any, str]]:
    """``[(keras_layer, reference_name), ...]`` from a name map.

    ``layers``: the Keras layers that own weights; ``sources``: the reference side by name.
    Messages call one reference item ``f"{origin} {unit}"`` ("torch module") and the reference
    container ``where`` ("the state_dict"); ``relax`` ends the advice of the ``strict`` errors.
    ``strict``: every layer and every source must be paired.
    """
    what = f"{origin} {unit}"
    by_name = {layer.name: layer for layer in layers}
    pairs, seen_k, seen_r = [], set(), set()
    for k_name, ref in mapping:
        if k_name not in by_name:
            raise ValueError(f"The name mapping pairs Keras layer {k_name!r} with {what} "
                             f"{ref!r}, but the model has no layer {k_name!r} that owns weights "
                             f"(layers with weights: {sorted(by_name)[:8]}...)")
        if ref not in sources:
            raise ValueError(f"The name mapping pairs Keras layer {k_name!r} with {what} "
                             f"{ref!r}, which is not in {where} ({unit}s: {list(sources)[:8]}...); "
                             "build both models with the same configuration")
        if k_name in seen_k or ref in seen_r:
            raise ValueError(f"The name mapping uses Keras layer {k_name!r} or {what} "
                             f"{ref!r} twice")
        seen_k.add(k_name)
        seen_r.add(ref)
        pairs.append((by_name[k_name], ref))
    if strict:
        keras_left = [layer.name for layer in layers if layer.name not in seen_k]
        if keras_left:
            raise ValueError(f"Keras layers with weights that have no {origin} counterpart: "
                             f"{keras_left}; build the model with the {origin} configuration "
                             f"(classes, include_top, no extra layers){relax}")
        ref_left = [r for r in sources if r not in seen_r]
        if ref_left:
            raise ValueError(f"{what}s left unused: {ref_left}; build the Keras model with the "
                             f"same configuration (e.g. include_top){relax}")
    return pairs


def pair_by_order(layers: Sequence[Any], sources: Sequence[Any], strict: bool, *,
                  origin: str, unit: str, where: str,
                  relax: str = " or pass strict=False") -> List[Tuple[Any, Any]]:
    """``[(keras_layer, source), ...]`` in order (no name map for the model); ``strict``: the
    two sides must have the same length. Messages as :func:`pair_by_names`; ``relax`` ends the
    advice of the length error."""
    n = min(len(layers), len(sources))
    if strict and len(layers) != len(sources):
        names = [getattr(s, "name", s) for s in sources]
        raise ValueError(
            f"The models have different numbers of layers with weights: {len(layers)} in the "
            f"Keras model to fill vs {len(sources)} {origin} {unit}s in {where} (paired by "
            "order: no name map applies to this model). Unpaired Keras layers: "
            f"{[layer.name for layer in layers[n:]][:8]}; unused {unit}s: {names[n:][:8]}. "
            "Build both with the same configuration (include_top, alpha, classes, ...), "
            "register a name map, pass `names`" + relax)
    return list(zip(layers[:n], sources[:n]))


def check_bn_epsilon(layer, epsilon: float, source: str, hint: str) -> None:
    """``ValueError`` unless the Keras BatchNormalization ``layer`` uses ``epsilon``;
    ``source`` says where ``epsilon`` came from, ``hint`` how to fix it."""
    if abs(float(layer.epsilon) - float(epsilon)) > EPSILON_TOLERANCE:
        raise ValueError(f"its epsilon is {layer.epsilon!r} but {source} is {epsilon!r}: the "
                         f"outputs would differ. {hint}")
