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
  moving_variance``; ``num_batches_tracked`` is skipped. The Keras layer's ``epsilon`` must equal
  the torch one: from a ``torch.nn.Module`` each BatchNorm's ``eps`` is read from the module
  itself (torchvision's MobileNetV3 uses 1e-3, the others 1e-5); a state dict (mapping or file)
  holds no eps, so there every BatchNorm is taken to use ``bn_epsilon`` (default torchvision's
  1e-5; pass 1e-3 for a MobileNetV3 state dict). A difference is a ``ValueError`` naming both
  layers (the Keras model is never changed behind the caller's back: build it with the torch
  epsilon, e.g. the ``*_torchvision`` registered variants).
* biases are copied as they are.

Pairing: by the family's name map, registered once with
:func:`keras_cnns.bridges.register_name_map` under the bridge ``"torchvision"`` (pairs of
``(keras_layer_name, torch_module_prefix)``; the registered maps are in
:mod:`keras_cnns.bridges._name_maps`), found from the model's name
(``model_info(model.name).family``) or the ``family`` argument, or by the ``names`` argument.
Without one, Keras layers that own weights (topological order) pair one to one with torch modules
(state-dict order).
"""

from __future__ import annotations

import collections.abc
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import keras
import numpy as np

from keras_cnns.bridges._common import (
    EPSILON_TOLERANCE,
    NameMap,
    check_bn_epsilon,
    describe,
    pair_by_names,
    pair_by_order,
    resolve_names,
    short_name,
    walk,
)
from keras_cnns.layers.conv_fc import dense_to_conv_kernel
from keras_cnns.layers.grouped_conv import GroupedDepthwiseConv2D

__all__ = ["BRIDGE", "TORCH_BN_EPSILON", "batch_norm_epsilons", "copy_torch_weights",
           "from_torchvision", "load_state_dict"]

#: This bridge's name in :func:`keras_cnns.bridges.register_name_map`.
BRIDGE = "torchvision"
#: torch.nn.BatchNorm2d's default ``eps`` (torchvision's models use it, MobileNetV3 aside).
TORCH_BN_EPSILON = 1e-5

_SOURCE_KINDS = ("a torch.nn.Module, a state_dict mapping of names to torch tensors or NumPy "
                 "arrays, or the path of an existing .npz, .pt or .pth file")


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


def batch_norm_epsilons(source) -> Dict[str, float]:
    """``{module prefix: eps}`` of every BatchNorm in a ``torch.nn.Module``; ``{}`` for a state
    dict or a file, which hold no eps.

    A module counts as a BatchNorm when it has ``eps`` and ``running_var`` (torch's
    ``_BatchNorm`` subclasses), so torch need not be imported here.
    """
    named = getattr(source, "named_modules", None)
    if isinstance(source, (str, os.PathLike, collections.abc.Mapping, keras.Model)) \
            or not callable(named):
        return {}
    return {name: float(module.eps) for name, module in named()
            if getattr(module, "eps", None) is not None and hasattr(module, "running_var")}


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

def _own_weights(layer) -> List[Any]:
    """``layer``'s weights that are not those of a sublayer."""
    inner = {id(w) for child in walk(layer) for w in child.weights}
    return [w for w in layer.weights if id(w) not in inner]


def _weight_owners(model) -> List[Any]:
    """The layers that own weights themselves (not only through sublayers), in walk order."""
    return [layer for layer in walk(model) if _own_weights(layer)]


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


def _module_epsilons(source, bn_epsilon: Optional[float]
                     ) -> Callable[[str], Tuple[float, str, str]]:
    """``fn(prefix) -> (eps, where it comes from, how to fix a mismatch)`` for the BatchNorm
    at ``prefix``: the module's own ``eps`` when ``source`` is a module, else ``bn_epsilon``."""
    read = batch_norm_epsilons(source)
    if bn_epsilon is not None:
        for prefix, eps in read.items():
            if abs(eps - bn_epsilon) > EPSILON_TOLERANCE:
                raise ValueError(f"`bn_epsilon` is {bn_epsilon!r} but the torch module's BatchNorm "
                                 f"{prefix!r} has eps={eps!r}; leave `bn_epsilon` out for a "
                                 f"module (its eps is read from it). Received: "
                                 f"bn_epsilon={bn_epsilon!r}")
    given = TORCH_BN_EPSILON if bn_epsilon is None else float(bn_epsilon)
    from_module = ("the torch BatchNorm's eps (read from the module)",
                   "Build the Keras model with the torch epsilon (its builder's bn_epsilon, or the "
                   "registered *_torchvision variant)")
    from_argument = ("the torch BatchNorm's eps (`bn_epsilon`; a state dict holds none)",
                     "Build the layer with the torch epsilon or pass the right `bn_epsilon`")

    def lookup(prefix: str) -> Tuple[float, str, str]:
        if prefix in read:
            return (read[prefix],) + from_module
        return (given,) + from_argument

    return lookup


def _convert(layer, prefix: str, entries: Dict[str, np.ndarray], strict: bool,
             bn_epsilon: Tuple[float, str, str]):
    """``[(variable, array), ...]`` for one Keras layer from one torch module's entries;
    ``bn_epsilon``: ``(eps, source, hint)`` of the torch BatchNorm (:func:`_module_epsilons`)."""
    variables = _own_weights(layer)
    if isinstance(layer, keras.layers.BatchNormalization):
        check_bn_epsilon(layer, *bn_epsilon)
        names = _BN_NAMES
    elif isinstance(layer, _CONV_LAYERS + (keras.layers.Dense, keras.layers.DepthwiseConv2D)):
        names = {"kernel": "weight", "bias": "bias"}
    else:
        raise ValueError(f"no torch conversion is known for {type(layer).__name__} layers")
    out, used = [], set()
    for var in variables:
        short = short_name(var)
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
    names: Union[None, Sequence[Tuple[str, str]], NameMap] = None,
    strict: bool = True,
    bn_epsilon: Optional[float] = None,
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
        family: the registered ``"torchvision"`` name map to use
            (:func:`keras_cnns.bridges.register_name_map`); default: the family of the
            registered model called ``model.name``, if a map is registered for it.
        names: explicit ``[(keras_layer_name, torch_prefix), ...]`` (or ``fn(model)`` returning
            it) instead of the registered map.
        strict: require every Keras layer with weights to be paired and every torch entry
            (``num_batches_tracked`` aside) to be used. With ``False`` those are left alone;
            a pair that does not fit always raises.
        bn_epsilon: the ``eps`` of the torch BatchNorm layers when ``source`` is a state dict or
            a file (they do not hold it); ``None``: torchvision's usual 1e-5 (MobileNetV3: pass
            1e-3). A ``torch.nn.Module`` gives each BatchNorm's own ``eps``, and ``bn_epsilon``
            may then be left out (if given, it must agree with the module). Every Keras
            ``BatchNormalization`` must use its torch layer's epsilon: nothing is adjusted.

    Returns:
        ``model``, with the torch weights.

    Raises:
        ValueError: ``source`` or ``model`` is not one of the accepted kinds, a file is missing
            or of an unknown type, a mapping names a layer or module that is not there, layers or
            entries are left unpaired (``strict``), a BatchNorm epsilon differs (from the
            module's ``eps`` or ``bn_epsilon``), or a pair does
            not correspond (the message names the Keras layer and the torch module). Nothing is
            assigned unless every pair fits.
    """
    return copy_torch_weights(source, model, bridge=BRIDGE, origin="torch", family=family,
                              names=names, strict=strict, bn_epsilon=bn_epsilon)


def copy_torch_weights(source, model, *, bridge: str, origin: str, family=None, names=None,
                       strict: bool = True, bn_epsilon=None):
    """The copy every PyTorch bridge makes (``from_torchvision``, ``from_timm``): checks the
    arguments, loads ``source``, pairs the weighted Keras layers with the state dict's modules
    by the name map registered under ``bridge`` (or by order), converts every pair, and assigns
    only when all fit. ``origin`` names the other side in messages (``"torch"``, ``"timm"``)."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model (the keras_cnns model to fill). "
                         f"Received: model={model!r}")
    if not isinstance(strict, bool):
        raise ValueError(f"`strict` must be True or False. Received: strict={strict!r}")
    if bn_epsilon is not None and (isinstance(bn_epsilon, bool)
                                   or not isinstance(bn_epsilon, (int, float)) or not bn_epsilon > 0):
        raise ValueError(f"`bn_epsilon` must be None or a positive number. Received: "
                         f"bn_epsilon={bn_epsilon!r}")
    epsilons = _module_epsilons(source, bn_epsilon)
    groups = _group(load_state_dict(source))
    layers = _weight_owners(model)

    mapping = resolve_names(model, bridge, family, names)
    messages = dict(origin=origin, unit="module", where="the state_dict")
    if mapping is None:
        pairs = pair_by_order(layers, list(groups), strict, **messages)
    else:
        pairs = pair_by_names(layers, groups, mapping, strict, **messages)

    plan: List[Tuple[Any, np.ndarray]] = []
    for layer, prefix in pairs:
        try:
            plan.extend(_convert(layer, prefix, groups[prefix], strict, epsilons(prefix)))
        except ValueError as exc:
            raise ValueError(f"Cannot copy {origin} module {prefix!r} into Keras layer "
                             f"{describe(layer)}: {exc}") from None
    for var, array in plan:
        var.assign(np.asarray(array, dtype=var.dtype))
    return model
