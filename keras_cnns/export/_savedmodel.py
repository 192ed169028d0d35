"""SavedModel export in the TF Serving layout: ``<base_dir>/<model_name>/<version>/``.

The ``serving_default`` signature (the one TF Serving's REST and gRPC ``predict`` call) takes one
named input, ``images`` (float32 preprocessed like the training data, or uint8 pixels with the
scaling and normalisation inside the graph), with a dynamic batch, and returns named outputs:
``probabilities``, ``top_k_classes`` and ``top_k_scores`` for a classifier, ``features`` for a
headless (``include_top=False``) model. A second endpoint, ``serve``, is the Keras model's
forward pass on float32 inputs (what ``model.export`` gives).

A model with several outputs (:func:`keras_cnns.models.heads.output_specs`: GoogLeNet's
auxiliary classifiers, ...) serves its served outputs only (the main one; auxiliary outputs are
left out), ``serving_default`` giving the main output; ``outputs=[...]`` adds others on request,
each as a signature of its own named after the output.

The export is traced inside :func:`keras_cnns.ops.stock_ops_only`, so every keras_cnns layer
lowers to stock TensorFlow ops (``GroupedDepthwiseConv2D`` to ``tf.nn.conv2d`` /
``tf.nn.depthwise_conv2d``) and the SavedModel runs with plain TensorFlow / TF Serving: no
keras_cnns, no compiled ``.so``. The graph is checked for namespaced custom ops before the
version is published.

Publishing is atomic: the model is written to ``<base_dir>/<model_name>/.tmp-<version>-<uuid>``
(TF Serving ignores non-numeric directories) and renamed to ``<version>`` only when complete and
verified; an existing version is never replaced (the rename itself refuses to replace, so two
concurrent exports cannot clobber each other).
"""

from __future__ import annotations

import ctypes
import errno
import json
import numbers
import os
import re
import shutil
import uuid
from typing import Iterable, List, Optional

import numpy as np

from keras_cnns._checks import fail

__all__ = [
    "CUSTOM_OP_NAMESPACE",
    "CustomOpInGraphError",
    "export_saved_model",
    "find_custom_ops",
    "saved_model",
    "serving_commands",
    "list_versions",
    "saved_model_op_names",
]

CUSTOM_OP_NAMESPACE = "KerasCnns>"
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_VERSION_RE = re.compile(r"^[0-9]+$")
_METADATA_FILE = "keras_cnns.json"


class CustomOpInGraphError(RuntimeError):
    """An exported graph contains a custom (namespaced) op, so it needs more than stock TF."""


# --------------------------------------------------------------------------- graph inspection
def saved_model_op_names(export_dir) -> List[str]:
    """Every op type in a SavedModel: its graphs' nodes and all functions of their libraries."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb_path = os.path.join(os.fspath(export_dir), "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(pb_path, "rb") as f:
        proto.ParseFromString(f.read())
    ops = set()
    for meta_graph in proto.meta_graphs:
        graph_def = meta_graph.graph_def
        ops.update(node.op for node in graph_def.node)
        for function in graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return sorted(ops)


def find_custom_ops(op_names: Iterable[str], namespace: Optional[str] = None) -> List[str]:
    """The op names that are custom ops.

    With ``namespace`` (e.g. ``"KerasCnns>"``) only that namespace's ops; by default every
    namespaced op (``Namespace>Op``): stock TensorFlow registers no op with a ``>`` in its name,
    while custom-op libraries conventionally do (``KerasCnns>``, ``Addons>``).
    """
    if namespace is not None:
        return sorted({op for op in op_names if op.startswith(namespace)})
    return sorted({op for op in op_names if ">" in op})


def _verify_stock_only(export_dir) -> None:
    custom = find_custom_ops(saved_model_op_names(export_dir))
    if custom:
        raise CustomOpInGraphError(
            f"the exported graph contains custom ops {custom}: it would need keras_cnns' compiled "
            "library to run. Layers must lower to stock TF ops inside "
            "keras_cnns.ops.stock_ops_only()."
        )


# --------------------------------------------------------------------------- versions
def list_versions(model_dir) -> List[int]:
    """Integer version directories under ``model_dir`` (``[]`` when it does not exist)."""
    try:
        entries = os.listdir(model_dir)
    except FileNotFoundError:
        return []
    return sorted(int(e) for e in entries
                  if _VERSION_RE.match(e) and os.path.isdir(os.path.join(model_dir, e)))


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _rename_noreplace(src: str, dst: str) -> None:
    """Rename ``src`` to ``dst``, failing with ``FileExistsError`` if ``dst`` exists.

    Linux' ``renameat2(RENAME_NOREPLACE)`` makes the check and the rename one atomic step.
    Where it is unavailable, fall back to a check then ``os.rename``, which on POSIX still
    refuses to replace a non-empty directory (a published version is never empty).
    """
    libc = None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                              ctypes.c_uint]
        renameat2.restype = ctypes.c_int
        rc = renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst),
                       _RENAME_NOREPLACE)
        if rc == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), dst)
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), src, None, dst)
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst) from exc
        raise


# --------------------------------------------------------------------------- export
INPUT_DTYPES = ("float32", "uint8")
SCORES = ("auto", "probabilities", "logits")
MODELS_CONFIG = "models.config"
REST_PORT = 8501


def _validate(model, base_dir, model_name, version, metadata):
    import keras

    if not isinstance(model, keras.Model):
        fail("model", "must be a keras.Model", type(model).__name__)
    if not isinstance(base_dir, (str, os.PathLike)) or not os.fspath(base_dir):
        fail("base_dir", "must be a non-empty path", base_dir)
    if model_name is not None and (not isinstance(model_name, str) or not _NAME_RE.match(model_name)
                                   or model_name in (".", "..")):
        fail("model_name", "must be None (use model.name) or a directory name of letters, "
              "digits, '_', '.', '-' (no leading '.' or '-')", model_name)
    if version is not None and (isinstance(version, bool)
                                or not isinstance(version, numbers.Integral) or version < 1):
        fail("version", "must be None (next free version) or a positive integer", version)
    if metadata is not None:
        if not isinstance(metadata, dict):
            fail("metadata", "must be None or a JSON-serialisable dict", type(metadata).__name__)
        try:
            json.dumps(metadata)
        except (TypeError, ValueError):
            fail("metadata", "must be None or a JSON-serialisable dict", metadata)
    if len(model.inputs) != 1:
        fail("model", "must have one input", f"{len(model.inputs)} inputs")
    if len(model.inputs[0].shape) != 4:
        fail("model", "must take images (batch, height, width, channels)",
             tuple(model.inputs[0].shape))


def _is_softmax(layer) -> bool:
    import keras

    if isinstance(layer, keras.layers.Softmax):
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


def _is_identity(layer) -> bool:
    """A pass-through the head may end with (the mixed-precision float32 cast)."""
    import keras

    return (isinstance(layer, keras.layers.Activation)
            and getattr(layer.activation, "__name__", None) == "linear")


def output_kind(model) -> str:
    """``"features"`` (the output is not ``(batch, classes)``), ``"probabilities"`` (it comes
    out of a softmax) or ``"logits"``."""
    out = model.outputs[0]
    if len(out.shape) != 2:
        return "features"
    layer = out._keras_history[0]
    while _is_identity(layer) and layer._inbound_nodes:
        parents = layer._inbound_nodes[0].input_tensors
        if len(parents) != 1:
            break
        layer = parents[0]._keras_history[0]
    return "probabilities" if _is_softmax(layer) else "logits"


def _normalization(input_dtype, normalization, metadata, channels):
    """``(mean, std)`` per channel for uint8 inputs (pixels / 255, then (x - mean) / std)."""
    if input_dtype == "float32":
        if normalization is not None:
            fail("normalization", "applies to input_dtype='uint8' only (float32 inputs are "
                 "given preprocessed)", normalization)
        return None
    source = "normalization"
    if normalization is None and metadata and "mean" in metadata and "std" in metadata:
        normalization, source = (metadata["mean"], metadata["std"]), "metadata"
    if normalization is None:
        fail("normalization", "is required with input_dtype='uint8': (mean, std) of the "
             "[0, 1]-scaled pixels the model was trained on, per channel or one for all (or a "
             "metadata dict with 'mean' and 'std', e.g. data.info(...).metadata())", None)
    try:
        mean, std = normalization
        mean = [float(v) for v in np.atleast_1d(mean)]
        std = [float(v) for v in np.atleast_1d(std)]
    except (TypeError, ValueError):
        fail(source, "must be (mean, std) with numbers per channel", normalization)
    if len(mean) == 1:
        mean = mean * channels
    if len(std) == 1:
        std = std * channels
    if len(mean) != channels or len(std) != channels or min(std) <= 0 or not all(
            np.isfinite(mean + std)):
        fail(source, f"must be (mean, std) with 1 or {channels} finite values each, std > 0",
             normalization)
    return mean, std


def _signature_outputs(kind) -> List[str]:
    return (["features"] if kind == "features" else
            (["logits"] if kind == "logits" else [])
            + ["probabilities", "top_k_classes", "top_k_scores"])


def _served_views(model, outputs, scores, top_k):
    """``[(signature, output name, single-output model, kind, top_k)]`` for the outputs to serve:
    the served ones (:func:`~keras_cnns.models.heads.served_outputs`) plus ``outputs``; the
    first is ``serving_default``. A view shares the model's layers and weights."""
    import keras

    from keras_cnns.models.heads import served_outputs

    chosen = served_outputs(model, outputs)
    views = []
    for j, (i, spec) in enumerate(chosen):
        view = model if len(model.outputs) == 1 else keras.Model(
            model.inputs, model.outputs[i], name=f"{model.name}_{spec.name}")
        kind = output_kind(view)
        if scores != "auto":
            if kind == "features":
                fail("scores", "must be 'auto' for a model whose output is not (batch, classes)",
                     scores)
            kind = scores
        k = None if kind == "features" else min(int(top_k), view.outputs[0].shape[-1])
        views.append(("serving_default" if j == 0 else spec.name, spec.name, view, kind, k))
    return views


def _forward_module(main, views=()):
    """A ``tf.Module`` holding the variables of ``main`` and ``views`` (models sharing its
    layers), as the TF variables a trace reads (tracked by the module, restored by
    ``tf.saved_model.load``), and ``serve``: ``main``'s float32 forward pass (inference mode),
    what ``model.export`` writes as its ``serve`` endpoint."""
    import tensorflow as tf

    input_shape = tuple(main.inputs[0].shape)
    root = tf.Module()
    seen = {}
    for view in (main, *views):
        for variable in view.variables:
            seen.setdefault(id(variable), variable)
    root.model_variables = [getattr(v, "value", v) for v in seen.values()]
    root.serve = tf.function(
        lambda inputs: main(inputs, training=False), autograph=False,
        input_signature=[tf.TensorSpec((None,) + input_shape[1:], tf.float32, name="inputs")])
    return root


def write_forward_saved_model(model, path) -> None:
    """Write ``model``'s forward pass as a SavedModel with the one ``serve`` signature (what a
    TFLite conversion reads): :func:`_forward_module` saved, the model traced once."""
    import tensorflow as tf

    root = _forward_module(model)
    tf.saved_model.save(root, os.fspath(path), signatures={"serve": root.serve})


def _write_servable(views, path, spec) -> None:
    """Write the SavedModel with a signature per served output (``serving_default`` for the
    main one) and the ``serve`` endpoint (the main output's forward pass).

    Written with ``tf.saved_model.save`` on a ``tf.Module`` (:func:`_forward_module`) so that
    each endpoint is traced once, inside the save, and the main output's signature calls
    ``serve`` instead of tracing the model again: the model is traced once.
    ``keras.export.ExportArchive`` traced a model five times (each endpoint before the save to
    collect its variables and again inside it, where TF's function cache keys differ, plus
    Keras' default signature found by its resource walk) and wrote each variable twice: at
    224 px this export is 2.2-3.3x faster and half the size (README, "Export and serving").
    """
    import tensorflow as tf

    main = views[0][2]
    input_shape = tuple(main.inputs[0].shape)
    norm = spec["normalization"]
    root = _forward_module(main, [view for _, _, view, _, _ in views[1:]])

    def signature(view, kind, top_k):
        forward = root.serve if view is main else (lambda x: view(x, training=False))

        def serve(images):
            x = images
            if norm is not None:
                mean, std = norm
                x = (tf.cast(x, tf.float32) / 255.0 - tf.constant(mean, tf.float32)) / \
                    tf.constant(std, tf.float32)
            y = forward(x)
            if kind == "features":
                return {"features": y}
            outputs = {}
            if kind == "logits":
                outputs["logits"] = y
                y = tf.nn.softmax(y, axis=-1)
            y = tf.cast(y, tf.float32)
            scores, classes = tf.math.top_k(y, k=top_k)
            outputs.update(probabilities=y, top_k_classes=classes, top_k_scores=scores)
            return outputs

        return serve

    signatures = {}
    for name, _, view, kind, top_k in views:
        endpoint = tf.function(
            signature(view, kind, top_k), autograph=False,
            input_signature=[tf.TensorSpec((None,) + input_shape[1:], spec["input_dtype"],
                                           name="images")])
        setattr(root, name, endpoint)
        signatures[name] = endpoint
    signatures["serve"] = root.serve
    tf.saved_model.save(root, path, signatures=signatures)


def _update_models_config(base_dir: str, name: str) -> str:
    """Add ``name`` to ``<base_dir>/models.config`` (TF Serving's ``--model_config_file``), with
    the base path the printed ``docker run`` mounts (``/models/<name>``); rewritten atomically."""
    path = os.path.join(base_dir, MODELS_CONFIG)
    names = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            names = re.findall(r'name:\s*"([^"]+)"', f.read())
    if name not in names:
        names.append(name)
    body = "model_config_list {\n" + "".join(
        f'  config {{\n    name: "{n}"\n    base_path: "/models/{n}"\n'
        f'    model_platform: "tensorflow"\n  }}\n' for n in names) + "}\n"
    tmp = os.path.join(base_dir, f".tmp-{MODELS_CONFIG}-{uuid.uuid4().hex}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def serving_commands(version_dir) -> List[str]:
    """The ``docker run tensorflow/serving`` line that serves the repository holding
    ``version_dir`` and a ``curl`` line calling its REST predict API."""
    version_dir = os.path.abspath(os.fspath(version_dir))
    model_dir = os.path.dirname(version_dir)
    base_dir, name = os.path.dirname(model_dir), os.path.basename(model_dir)
    return [
        f'docker run --rm -p {REST_PORT}:{REST_PORT} -v "{base_dir}:/models" tensorflow/serving '
        f"--model_config_file=/models/{MODELS_CONFIG}",
        f"curl -X POST http://localhost:{REST_PORT}/v1/models/{name}:predict "
        '-d \'{"instances": [IMAGE, ...]}\'   # IMAGE: a height x width x channels nested list',
    ]


def saved_model(model, base_dir="saved_models", version: Optional[int] = None, *,
                model_name: Optional[str] = None, input_dtype: str = "float32",
                normalization=None, top_k: int = 5, scores: str = "auto",
                metadata: Optional[dict] = None, models_config: bool = True,
                print_commands: bool = True, verbose: bool = False,
                outputs: Optional[List[str]] = None) -> str:
    """Export ``model`` as ``<base_dir>/<model_name>/<version>/`` for TF Serving.

    The model is traced inside :func:`keras_cnns.ops.stock_ops_only`, the graph is verified to
    hold stock TF ops only, and the version directory is published atomically (never over an
    existing one).

    Args:
        model: a built single-input image ``keras.Model``; of several outputs, the served ones
            (:func:`keras_cnns.models.heads.output_specs`: the main output) are exported.
        base_dir: the model repository root (mounted as ``/models`` by TF Serving's image).
        version: positive integer; ``None`` takes 1 + the largest existing integer version (1
            if none), retrying the next number if a concurrent export takes it first.
        model_name: subdirectory name; ``None`` uses ``model.name``.
        input_dtype: ``"float32"`` (``images`` preprocessed like the training data) or
            ``"uint8"`` (pixels 0-255; ``/ 255`` and ``(x - mean) / std`` run in the graph).
        normalization: ``(mean, std)`` for ``"uint8"``, per channel or one value; by default
            ``metadata["mean"]``/``["std"]`` (what :meth:`keras_cnns.data.info(...).metadata`
            and the training loop write).
        top_k: how many classes ``top_k_classes``/``top_k_scores`` hold (at most the classes).
        scores: what the model outputs: ``"auto"`` (a softmax at the end means probabilities,
            otherwise logits, to which the signature applies a softmax and also returns them as
            ``logits``), or say ``"probabilities"``/``"logits"``.
        metadata: optional JSON-serialisable dict written to
            ``<version>/assets.extra/keras_cnns.json`` (TF Serving's place for files it does not
            load itself).
        models_config: add the model to ``<base_dir>/models.config``.
        print_commands: print the ``docker run`` and ``curl`` lines that serve and call it.
        verbose: print the exported endpoints.
        outputs: names of further outputs to serve (e.g. ``["aux1"]``, an auxiliary classifier
            that is left out by default), each as a signature named after it.

    Returns:
        str: the published version directory.

    Raises:
        ValueError: an invalid argument.
        FileExistsError: an explicit ``version`` already exists (it is left untouched).
        CustomOpInGraphError: the traced graph contains a custom op (nothing is published).
    """
    _validate(model, base_dir, model_name, version, metadata)
    if input_dtype not in INPUT_DTYPES:
        fail("input_dtype", f"must be one of {INPUT_DTYPES}", input_dtype)
    if scores not in SCORES:
        fail("scores", f"must be one of {SCORES}", scores)
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
        fail("top_k", "must be a positive integer", top_k)
    if outputs is not None and (isinstance(outputs, (str, bytes))
                                or not all(isinstance(o, str) for o in outputs)):
        fail("outputs", "must be None or a list of output names", outputs)
    views = _served_views(model, outputs, scores, top_k)
    kind = views[0][3]
    channels = model.inputs[0].shape[-1]
    norm = _normalization(input_dtype, normalization, metadata, channels)
    spec = {"kind": kind, "input_dtype": input_dtype, "normalization": norm,
            "top_k": views[0][4]}
    from keras_cnns.ops import stock_ops_only

    name = model_name if model_name is not None else model.name
    if not _NAME_RE.match(name or ""):
        fail("model_name", "must be given when model.name is not a valid directory name", name)
    base_dir = os.fspath(base_dir)
    model_dir = os.path.join(base_dir, name)
    explicit = version is not None
    target_version = int(version) if explicit else (max(list_versions(model_dir), default=0) + 1)
    target = os.path.join(model_dir, str(target_version))
    if explicit and os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, f"version {target_version} of {name!r} already "
                              f"exists; versions are never overwritten", target)
    created_model_dir = not os.path.isdir(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    tmp = os.path.join(model_dir, f".tmp-{target_version}-{uuid.uuid4().hex}")
    try:
        with stock_ops_only():
            _write_servable(views, tmp, spec)
        _verify_stock_only(tmp)
        extra = os.path.join(tmp, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        serving = {"signature": "serving_default", "input": "images",
                   "input_dtype": input_dtype, "input_shape": list(model.inputs[0].shape[1:]),
                   "outputs": _signature_outputs(kind), "top_k": spec["top_k"],
                   "output": views[0][1],
                   "signatures": {sig: {"output": out, "outputs": _signature_outputs(k),
                                        "top_k": tk} for sig, out, _, k, tk in views}}
        if norm is not None:
            serving.update(mean=norm[0], std=norm[1])
        payload = dict(metadata or {})
        payload["serving"] = serving
        with open(os.path.join(extra, _METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, sort_keys=True)
        while True:
            try:
                _rename_noreplace(tmp, target)
                break
            except FileExistsError:
                if explicit:
                    raise FileExistsError(errno.EEXIST, f"version {target_version} of {name!r} "
                                          "already exists; versions are never overwritten",
                                          target) from None
                target_version = max(list_versions(model_dir) + [target_version]) + 1
                target = os.path.join(model_dir, str(target_version))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created_model_dir:
            try:
                os.rmdir(model_dir)  # only if still empty (a concurrent export may use it)
            except OSError:
                pass
        raise
    if models_config:
        _update_models_config(base_dir, name)
    if verbose:
        print(f"serving_default: images {serving['input_dtype']} "
              f"{['batch'] + serving['input_shape']} -> {', '.join(serving['outputs'])}")
    if print_commands:
        print(f"SavedModel version {os.path.basename(target)} of {name!r}: {target}")
        print("Serve it with TF Serving and call its REST API:")
        for line in serving_commands(target):
            print("  " + line)
    return target


#: The earlier name of :func:`saved_model`.
export_saved_model = saved_model
