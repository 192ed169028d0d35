"""Copy a torchvision model's weights into the keras_cnns model of the same configuration.

``from_torchvision(source, model)`` reads a PyTorch ``state_dict`` (from a ``torch.nn.Module``, a
mapping of torch tensors or NumPy arrays, an ``.npz`` file or a ``.pt`` / ``.pth`` file), pairs
every Keras layer that owns weights with one torch module (the state-dict entries sharing a prefix
before the last ``.``), converts each weight from PyTorch's layout to Keras', checks every shape
and only then assigns: any mismatch raises ``ValueError`` naming both sides and nothing is copied.

torch is imported only when ``source`` is a ``.pt`` / ``.pth`` file (a torch object passed in means
the caller has imported it already); NumPy inputs never touch it. torch itself imports fine after
TensorFlow, but *torchvision* imported after TensorFlow in one process crashes (segfault with
torch 2.14 / torchvision 0.29 / TF 2.21), so build torchvision models in a process that does not
import TensorFlow, save their ``state_dict`` and load the file here.

Conversion rules (PyTorch -> Keras):

* ``Conv{1,2,3}d`` weight ``[O, I / g, *k]`` -> ``Conv{1,2,3}D`` (also grouped, also
  :class:`~keras_cnns.layers.ConvFC`) and :class:`~keras_cnns.layers.GroupedDepthwiseConv2D`
  kernel ``[*k, I / g, O]`` (the grouped layout of ``tf.nn.conv2d``; both number the outputs of
  group ``j`` as ``j * O / g ...``).
* depthwise ``Conv2d(C, C * m, groups=C)`` weight ``[C * m, 1, kh, kw]`` -> Keras
  ``DepthwiseConv2D`` kernel ``[kh, kw, C, m]`` (both number output ``o = c * m + k``).
* ``Linear`` weight ``[out, in]`` -> ``Dense`` kernel ``[in, out]``; when the Dense reads a
  ``Flatten`` of a 4-D NHWC map (through weightless shape-keeping layers such as ``Dropout``),
  its rows are permuted from torch's ``(C, H, W)`` flatten order to Keras' ``(H, W, C)``.
* ``Linear`` -> a fully connected layer written as a convolution (``Conv2D`` kernel
  ``[h, w, c, out]``, :func:`keras_cnns.layers.fc_as_conv`): the same permutation, reshaped.
* ``BatchNorm`` ``weight / bias / running_mean / running_var`` -> ``gamma / beta / moving_mean /
  moving_variance``; the Keras layer's ``epsilon`` must equal the torch one (``bn_epsilon``,
  torchvision's 1e-5). ``num_batches_tracked`` is skipped.
* biases are copied as they are.

Pairing: a family registers an explicit name mapping with :func:`register_torchvision_names`
(SqueezeNet, AlexNet and VGG are registered below); the mapping is found from the model's name
(``model_info(model.name).family``) or the ``family`` argument. Without one, Keras layers that own
weights (topological order) pair one to one with torch modules (state-dict order).
"""

from __future__ import annotations

import collections.abc
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import keras
import numpy as np

from keras_cnns.layers.conv_fc import dense_to_conv_kernel
from keras_cnns.layers.grouped_conv import GroupedDepthwiseConv2D
from keras_cnns.models._keras_apps import _describe, _short, _sublayers

__all__ = ["TORCH_BN_EPSILON", "from_torchvision", "load_state_dict", "register_torchvision_names",
           "torchvision_names"]

#: torch.nn.BatchNorm2d's default ``eps`` (every torchvision classification model uses it).
TORCH_BN_EPSILON = 1e-5
#: How far a Keras BatchNormalization epsilon may be from the torch one.
EPSILON_TOLERANCE = 1e-12

# family -> fn(keras_model) -> [(keras_layer_name, torch_module_prefix), ...] in any order,
# covering every Keras layer that owns weights.
NameMapping = Callable[[object], List[Tuple[str, str]]]
_NAMES: Dict[str, NameMapping] = {}

_SOURCE_KINDS = ("a torch.nn.Module, a state_dict mapping of names to torch tensors or NumPy "
                 "arrays, or the path of an existing .npz, .pt or .pth file")


def register_torchvision_names(family: str, fn: NameMapping) -> None:
    """Register how a family's Keras layers map to torchvision module prefixes.

    ``fn(model)`` returns ``[(keras_layer_name, torch_prefix), ...]``: e.g.
    ``("conv2_block1_1_conv", "layer1.0.conv1")`` pairs that Keras layer with the state-dict
    entries ``layer1.0.conv1.weight`` (and ``.bias``). ``family`` is the registry's family name
    (``model_info(name).family``).
    """
    if not isinstance(family, str) or not callable(fn):
        raise ValueError("register_torchvision_names(family, fn) takes a family name and a "
                         f"callable. Received: family={family!r}, fn={fn!r}")
    _NAMES[family] = fn


# ----------------------------------------------------------------------------------------------
# Reading the source
# ----------------------------------------------------------------------------------------------

def _to_numpy(value, key: str) -> np.ndarray:
    """A torch tensor (no torch import needed: it is already loaded) or array-like as NumPy."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor
        t = value.detach().cpu()
        try:
            return t.numpy()
        except TypeError:  # bfloat16 and other dtypes NumPy lacks
            return t.float().numpy()
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (list, tuple, int, float, np.generic)):
        return np.asarray(value)
    raise ValueError(f"`source` entry {key!r} is not a torch tensor or NumPy array. "
                     f"Received: {type(value).__name__}")


def _read_file(path: str):
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    if ext in (".pt", ".pth"):
        import torch  # only here: the caller asked for a torch file

        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickled modules or other objects weights_only refuses
            raise ValueError(f"`source` file {path!r} could not be read as a state_dict with "
                             f"torch.load(weights_only=True) ({type(exc).__name__}: {exc}); save "
                             "`model.state_dict()` rather than the module.") from None
        if isinstance(loaded, collections.abc.Mapping) and isinstance(loaded.get("state_dict"),
                                                                      collections.abc.Mapping):
            loaded = loaded["state_dict"]  # a training checkpoint
        return loaded
    raise ValueError(f"`source` file {path!r} has an unknown type {ext or '(no extension)'!r}: "
                     "expected .npz (NumPy arrays named like the state_dict) or .pt / .pth "
                     f"(torch.save of a state_dict). Received: source={path!r}")


def load_state_dict(source) -> Dict[str, np.ndarray]:
    """The state dict of ``source`` as ``{name: NumPy array}`` in its order, without counters.

    Args:
        source: a ``torch.nn.Module`` (its ``state_dict()``), a mapping of names to torch tensors
            or NumPy arrays, or the path (``str`` / ``os.PathLike``) of an ``.npz`` file (read with
            NumPy) or a ``.pt`` / ``.pth`` file (``torch.load``, torch imported only then).

    Returns:
        An insertion-ordered dict; ``num_batches_tracked`` entries are left out.

    Raises:
        ValueError: ``source`` is none of these, the file does not exist or has another type, or
            an entry is not an array.
    """
    if isinstance(source, keras.Model):
        raise ValueError(f"`source` must be {_SOURCE_KINDS}; a Keras model is not (use "
                         f"from_keras_applications). Received: source={source.name!r} (keras.Model)")
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ValueError(f"`source` file {path!r} does not exist. `source` must be "
                             f"{_SOURCE_KINDS}. Received: source={path!r}")
        state = _read_file(path)
    elif not isinstance(source, collections.abc.Mapping) and callable(getattr(source, "state_dict", None)):
        state = source.state_dict()  # torch.nn.Module
    else:
        state = source
    if not isinstance(state, collections.abc.Mapping):
        shown = repr(source) if len(repr(source)) < 80 else type(source).__name__
        raise ValueError(f"`source` must be {_SOURCE_KINDS}. Received: source={shown}")
    out: Dict[str, np.ndarray] = {}
    for key in state:
        if not isinstance(key, str):
            raise ValueError(f"`source` keys must be state_dict names (str). Received: key {key!r}")
        if key.rsplit(".", 1)[-1] == "num_batches_tracked":
            continue
        out[key] = _to_numpy(state[key], key)
    if not out:
        raise ValueError(f"`source` holds no weights (an empty state_dict). Received: source={source!r}")
    return out


def _group(state: Dict[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
    """``{"features.0.weight": a, ...}`` -> ``{"features.0": {"weight": a, ...}, ...}`` in order."""
    groups: Dict[str, Dict[str, np.ndarray]] = {}
    for key, value in state.items():
        prefix, _, short = key.rpartition(".")
        groups.setdefault(prefix, {})[short] = value
    return groups


# ----------------------------------------------------------------------------------------------
# Pairing Keras layers with torch modules
# ----------------------------------------------------------------------------------------------

def _walk(layer, seen=None):
    """Every layer inside ``layer`` once, depth first: functional models in topological order,
    other layers through their tracked sublayers (e.g. a stochastic-depth block's branch)."""
    seen = set() if seen is None else seen
    if isinstance(layer, keras.Model):
        children = _sublayers(layer)
    else:
        flatten = getattr(layer, "_flatten_layers", None)
        children = list(flatten(include_self=False, recursive=False)) if flatten else []
    for child in children:
        if id(child) not in seen:
            seen.add(id(child))
            yield child
            yield from _walk(child, seen)


def _own_weights(layer) -> List[Any]:
    """``layer``'s weights that are not those of a sublayer."""
    inner = {id(w) for child in _walk(layer) for w in child.weights}
    return [w for w in layer.weights if id(w) not in inner]


def _weight_owners(model) -> List[Any]:
    """The layers that own weights themselves (not only through sublayers), in walk order."""
    return [layer for layer in _walk(model) if _own_weights(layer)]


def _all_layer_names(model) -> set:
    return {layer.name for layer in _walk(model)}


def _registered_family(model) -> Optional[str]:
    from keras_cnns.models._registry import model_info

    try:
        family = model_info(model.name).family
    except ValueError:
        return None
    return family if family in _NAMES else None


def torchvision_names(model, family: Optional[str] = None) -> Optional[List[Tuple[str, str]]]:
    """The registered ``(keras_layer_name, torch_prefix)`` pairs for ``model``, or ``None``.

    ``family`` picks the registered mapping (default: the family of the registered model named
    ``model.name``); ``None`` comes back when no mapping applies (pairing is then positional).
    """
    if family is None:
        family = _registered_family(model)
        if family is None:
            return None
    elif family not in _NAMES:
        raise ValueError(f"`family` has no registered torchvision name mapping; registered: "
                         f"{sorted(_NAMES)}. Received: family={family!r}")
    return [(str(k), str(t)) for k, t in _NAMES[family](model)]


def _pair_by_names(layers, groups, names, strict) -> List[Tuple[Any, str]]:
    by_name = {layer.name: layer for layer in layers}
    pairs, seen_k, seen_t = [], set(), set()
    for k_name, prefix in names:
        if k_name not in by_name:
            raise ValueError(f"The name mapping pairs Keras layer {k_name!r} with torch module "
                             f"{prefix!r}, but the model has no layer {k_name!r} that owns weights "
                             f"(layers with weights: {sorted(by_name)[:8]}...)")
        if prefix not in groups:
            raise ValueError(f"The name mapping pairs Keras layer {k_name!r} with torch module "
                             f"{prefix!r}, which is not in the state_dict (modules: "
                             f"{list(groups)[:8]}...); build both models with the same "
                             "configuration")
        if k_name in seen_k or prefix in seen_t:
            raise ValueError(f"The name mapping uses Keras layer {k_name!r} or torch module "
                             f"{prefix!r} twice")
        seen_k.add(k_name)
        seen_t.add(prefix)
        pairs.append((by_name[k_name], prefix))
    if strict:
        _check_all_used([layer.name for layer in layers if layer.name not in seen_k],
                        [p for p in groups if p not in seen_t])
    return pairs


def _check_all_used(keras_left: Sequence[str], torch_left: Sequence[str]) -> None:
    if keras_left:
        raise ValueError(f"Keras layers with weights that have no torch counterpart: {list(keras_left)}; "
                         "build the model with the torchvision configuration (classes, include_top, "
                         "no extra layers) or pass strict=False to leave them as they are")
    if torch_left:
        raise ValueError(f"torch modules left unused: {list(torch_left)}; build the Keras model "
                         "with the same configuration (e.g. include_top) or pass strict=False")


def _pair_by_order(layers, groups, strict) -> List[Tuple[Any, str]]:
    prefixes = list(groups)
    n = min(len(layers), len(prefixes))
    if strict and len(layers) != len(prefixes):
        raise ValueError(
            f"The Keras model has {len(layers)} layers with weights but the state_dict has "
            f"{len(prefixes)} modules (paired by order: no name mapping is registered for this "
            f"model). Unpaired Keras layers: {[layer.name for layer in layers[n:]]}; unused torch "
            f"modules: {prefixes[n:]}. Build both with the same configuration, register a "
            "mapping, pass `names`, or pass strict=False")
    return list(zip(layers[:n], prefixes[:n]))


# ----------------------------------------------------------------------------------------------
# Converting one pair
# ----------------------------------------------------------------------------------------------

_CONV_LAYERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, GroupedDepthwiseConv2D)
# Weightless layers that keep the shape: a Dense behind them still reads the Flatten's order.
_PASS_THROUGH = (keras.layers.Dropout, keras.layers.Activation, keras.layers.ReLU,
                 keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.Identity,
                 keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.AlphaDropout)


def _flattened_map(layer) -> Optional[Tuple[int, int, int]]:
    """``(h, w, c)`` of the 4-D map a ``Flatten`` turns into ``layer``'s input, else ``None``."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    if not nodes or len(nodes[0].input_tensors) != 1:
        return None
    tensor = nodes[0].input_tensors[0]
    while True:
        history = getattr(tensor, "_keras_history", None)
        if history is None:
            return None
        op, node_index = history[0], history[1]
        inputs = op._inbound_nodes[node_index].input_tensors
        if len(inputs) != 1:
            return None
        if isinstance(op, keras.layers.Flatten):
            shape = tuple(inputs[0].shape)
            if len(shape) != 4 or None in shape[1:]:
                return None
            if getattr(op, "data_format", "channels_last") == "channels_first":
                return shape[2], shape[3], shape[1]
            return shape[1], shape[2], shape[3]
        if not isinstance(op, _PASS_THROUGH) or op.weights:
            return None
        tensor = inputs[0]


def _torch_conv_to_keras(w: np.ndarray) -> np.ndarray:
    """``[O, I / g, *k]`` -> ``[*k, I / g, O]``."""
    return np.transpose(w, tuple(range(2, w.ndim)) + (1, 0))


def _kernel(layer, w: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """The torch ``weight`` of the module paired with ``layer`` in the layout of its ``kernel``."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, c, m = shape
        if w.shape != (c * m, 1, kh, kw):
            raise ValueError(f"a DepthwiseConv2D kernel {shape} needs a depthwise torch weight "
                             f"{(c * m, 1, kh, kw)} (groups = in_channels), found {w.shape}")
        return _torch_conv_to_keras(w).reshape(shape)  # output o = c * m + k on both sides
    if isinstance(layer, _CONV_LAYERS):
        if w.ndim == 2 and len(shape) == 4:  # torch Linear -> FC-as-convolution
            if w.shape != (shape[3], int(np.prod(shape[:3]))):
                raise ValueError(f"a Linear weight {w.shape} does not fit the FC-as-convolution "
                                 f"kernel {shape} (needs {(shape[3], int(np.prod(shape[:3])))})")
            return dense_to_conv_kernel(w.T, shape[:3], flatten_order="chw")
        if w.ndim != len(shape):
            raise ValueError(f"a {w.ndim}-D torch weight {w.shape} cannot become the "
                             f"{len(shape)}-D kernel {shape}")
        return _torch_conv_to_keras(w)
    if isinstance(layer, keras.layers.Dense):
        if w.ndim != 2:
            raise ValueError(f"the Dense kernel {shape} needs a 2-D (Linear) torch weight, found {w.shape}")
        fmap = _flattened_map(layer)
        if fmap is not None and int(np.prod(fmap)) == w.shape[1]:
            return dense_to_conv_kernel(w.T, fmap, flatten_order="chw").reshape(-1, w.shape[0])
        return w.T
    raise ValueError(f"no conversion for a kernel of a {type(layer).__name__} layer")


_BN_NAMES = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
             "moving_variance": "running_var"}


def _convert(layer, prefix: str, entries: Dict[str, np.ndarray], strict: bool, bn_epsilon: float):
    """``[(variable, array), ...]`` for one Keras layer from one torch module's entries."""
    variables = _own_weights(layer)
    if isinstance(layer, keras.layers.BatchNormalization):
        if abs(float(layer.epsilon) - bn_epsilon) > EPSILON_TOLERANCE:
            raise ValueError(f"its epsilon is {layer.epsilon!r} but the torch BatchNorm used "
                             f"eps={bn_epsilon!r} (`bn_epsilon`): the outputs would differ. Build "
                             "the layer with the torch epsilon or pass the right `bn_epsilon`")
        names = _BN_NAMES
    elif isinstance(layer, _CONV_LAYERS + (keras.layers.Dense, keras.layers.DepthwiseConv2D)):
        names = {"kernel": "weight", "bias": "bias"}
    else:
        raise ValueError(f"no torch conversion is known for {type(layer).__name__} layers")
    out, used = [], set()
    for var in variables:
        short = _short(var)
        torch_name = names.get(short)
        if torch_name is None:
            raise ValueError(f"no torch counterpart is known for its weight {short!r}")
        if torch_name not in entries:
            raise ValueError(f"its weight {short!r} needs the torch entry '{prefix}.{torch_name}', "
                             f"which the state_dict lacks (it has {sorted(entries)})")
        array = entries[torch_name]
        shape = tuple(var.shape)
        if short == "kernel":
            array = _kernel(layer, array, shape)
        if tuple(array.shape) != shape:
            raise ValueError(f"weight {short!r} has shape {shape} in Keras but '{prefix}.{torch_name}' "
                             f"gives {tuple(array.shape)}")
        used.add(torch_name)
        out.append((var, array))
    left = sorted(set(entries) - used)
    if strict and left:
        raise ValueError(f"the torch entries {[f'{prefix}.{n}' for n in left]} have no Keras "
                         "variable (e.g. a bias the Keras layer was built without); pass "
                         "strict=False to ignore them")
    return out


# ----------------------------------------------------------------------------------------------
# The bridge
# ----------------------------------------------------------------------------------------------

def from_torchvision(
    source,
    model,
    *,
    family: Optional[str] = None,
    names: Union[None, Sequence[Tuple[str, str]], NameMapping] = None,
    strict: bool = True,
    bn_epsilon: float = TORCH_BN_EPSILON,
):
    """Copy a torchvision (PyTorch) model's weights into the keras_cnns ``model``.

    Build ``model`` with the torchvision configuration: the same variant, ``classes`` (1000 for
    ImageNet weights) and, for heads that flatten a fixed map (VGG), the input size the torch
    weights expect (224). torchvision returns logits: build with ``classifier_activation=None``
    to compare outputs, or keep ``"softmax"`` for probabilities. Inputs are NHWC on the Keras
    side (transpose NCHW images with ``x.transpose(0, 2, 3, 1)``).

    Example::

        # in a process without TensorFlow (torchvision crashes when imported after it):
        #   torch.save(torchvision.models.squeezenet1_1(weights="DEFAULT").state_dict(), "sq.pth")
        model = keras_cnns.create_model("squeezenet1_1", classifier_activation=None)
        keras_cnns.from_torchvision("sq.pth", model)

    Args:
        source: a ``torch.nn.Module``, a ``state_dict`` (mapping of names to torch tensors or
            NumPy arrays), or the path of an ``.npz`` file (NumPy arrays named like the state
            dict; read without torch) or a ``.pt`` / ``.pth`` file (``torch.load``, imported only
            then).
        model: the Keras model to fill.
        family: the registered name mapping to use (:func:`register_torchvision_names`);
            default: the family of the registered model called ``model.name``, if it has one.
        names: explicit ``[(keras_layer_name, torch_prefix), ...]`` (or ``fn(model)`` returning
            it) instead of the registered mapping.
        strict: require every Keras layer with weights to be paired and every torch entry
            (``num_batches_tracked`` aside) to be used. With ``False`` those are left alone;
            a pair that does not fit always raises.
        bn_epsilon: the ``eps`` of the torch BatchNorm layers (torchvision: 1e-5); every Keras
            ``BatchNormalization`` must use the same epsilon.

    Returns:
        ``model``, with the torch weights.

    Raises:
        ValueError: ``source`` or ``model`` is not one of the accepted kinds, a file is missing
            or of an unknown type, a mapping names a layer or module that is not there, layers or
            entries are left unpaired (``strict``), a BatchNorm epsilon differs, or a pair does
            not correspond (the message names the Keras layer and the torch module). Nothing is
            assigned unless every pair fits.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model (the keras_cnns model to fill). "
                         f"Received: model={model!r}")
    if not isinstance(strict, bool):
        raise ValueError(f"`strict` must be True or False. Received: strict={strict!r}")
    if isinstance(bn_epsilon, bool) or not isinstance(bn_epsilon, (int, float)) or not bn_epsilon > 0:
        raise ValueError(f"`bn_epsilon` must be a positive number. Received: bn_epsilon={bn_epsilon!r}")
    groups = _group(load_state_dict(source))
    layers = _weight_owners(model)

    if names is not None:
        mapping = names(model) if callable(names) else names
        try:
            mapping = [(str(k), str(t)) for k, t in mapping]
        except (TypeError, ValueError):
            raise ValueError("`names` must be a list of (keras_layer_name, torch_prefix) pairs or "
                             f"a callable returning one. Received: names={names!r}") from None
    else:
        mapping = torchvision_names(model, family)
    if mapping is None:
        pairs = _pair_by_order(layers, groups, strict)
    else:
        pairs = _pair_by_names(layers, groups, mapping, strict)

    plan: List[Tuple[Any, np.ndarray]] = []
    for layer, prefix in pairs:
        try:
            plan.extend(_convert(layer, prefix, groups[prefix], strict, float(bn_epsilon)))
        except ValueError as exc:
            raise ValueError(f"Cannot copy torch module {prefix!r} into Keras layer "
                             f"{_describe(layer)}: {exc}") from None
    for var, array in plan:
        var.assign(np.asarray(array, dtype=var.dtype))
    return model


# ----------------------------------------------------------------------------------------------
# The families built here (torchvision's module names; checked by tests/models/
# test_torchvision_bridge.py). ResNet-like families register theirs in their own modules.
# ----------------------------------------------------------------------------------------------

def _squeezenet_names(model) -> List[Tuple[str, str]]:
    """torchvision ``squeezenet1_0/1_1``: ``features`` = conv, ReLU, then one index per pool or
    Fire in order (our ``pool{k}`` follows block ``k``); ``classifier.1`` = conv10."""
    have = _all_layer_names(model)
    pairs = [("conv1", "features.0")]
    index = 2
    for k in range(1, 10):
        if f"fire{k}_squeeze1x1" in have:
            pairs += [(f"fire{k}_{ours}", f"features.{index}.{theirs}") for ours, theirs in
                      (("squeeze1x1", "squeeze"), ("expand1x1", "expand1x1"), ("expand3x3", "expand3x3"))]
            index += 1
        if f"pool{k}" in have:
            index += 1
    if "conv10" in have:
        pairs.append(("conv10", "classifier.1"))
    return pairs


def _alexnet_names(model) -> List[Tuple[str, str]]:
    """torchvision ``alexnet``: ``features`` = conv, ReLU[, pool] per layer; ``classifier`` =
    Dropout, fc1, ReLU, Dropout, fc2, ReLU, predictions."""
    have = _all_layer_names(model)
    pairs, index = [], 0
    for i in range(1, 6):
        pairs.append((f"conv{i}", f"features.{index}"))
        index += 3 if f"pool{i}" in have else 2
    head = (("fc1", "classifier.1"), ("fc2", "classifier.4"), ("predictions", "classifier.6"))
    return pairs + [p for p in head if p[0] in have]


def _vgg_names(model) -> List[Tuple[str, str]]:
    """torchvision ``vgg*[_bn]``: ``features`` = conv[, BN], ReLU per layer, a pool per block;
    ``classifier`` = fc1, ReLU, Dropout, fc2, ReLU, Dropout, predictions."""
    have = _all_layer_names(model)
    pairs, index = [], 0
    for block in range(1, 6):
        i = 1
        while f"block{block}_conv{i}" in have:
            name = f"block{block}_conv{i}"
            pairs.append((name, f"features.{index}"))
            if f"{name}_bn" in have:
                pairs.append((f"{name}_bn", f"features.{index + 1}"))
                index += 1
            index += 2
            i += 1
        index += 1  # the block's max-pool
    head = (("fc1", "classifier.0"), ("fc2", "classifier.3"), ("predictions", "classifier.6"))
    return pairs + [p for p in head if p[0] in have]


register_torchvision_names("SqueezeNet", _squeezenet_names)
register_torchvision_names("AlexNet", _alexnet_names)
register_torchvision_names("VGG", _vgg_names)
