"""SavedModel export in the TF Serving layout: ``<base_dir>/<model_name>/<version>/``.

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

from keras_cnns._checks import fail

__all__ = [
    "CUSTOM_OP_NAMESPACE",
    "CustomOpInGraphError",
    "export_saved_model",
    "find_custom_ops",
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


def export_saved_model(model, base_dir="saved_models", model_name: Optional[str] = None,
                       version: Optional[int] = None, metadata: Optional[dict] = None,
                       verbose: bool = False) -> str:
    """Export ``model`` as ``<base_dir>/<model_name>/<version>/`` for TF Serving.

    Uses Keras 3's ``model.export(path, format="tf_saved_model")`` (serving endpoint ``serve``,
    signature ``serving_default``) inside :func:`keras_cnns.ops.stock_ops_only`, verifies the
    graph holds stock TF ops only, and publishes the version directory atomically.

    Args:
        model: a built ``keras.Model``.
        base_dir: the model repository root (TF Serving's ``--model_base_path`` parent).
        model_name: subdirectory name; ``None`` uses ``model.name``.
        version: positive integer; ``None`` takes 1 + the largest existing integer version (1
            if none), retrying the next number if a concurrent export takes it first.
        metadata: optional JSON-serialisable dict (e.g. ``DatasetSplits.metadata()``: input
            normalisation, class names) written to ``<version>/assets.extra/keras_cnns.json``
            (TF Serving's place for files it does not load itself).
        verbose: let Keras print the exported endpoints.

    Returns:
        str: the published version directory.

    Raises:
        ValueError: an invalid argument.
        FileExistsError: an explicit ``version`` already exists (it is left untouched).
        CustomOpInGraphError: the traced graph contains a custom op (nothing is published).
    """
    _validate(model, base_dir, model_name, version, metadata)
    from keras_cnns.ops import stock_ops_only

    name = model_name if model_name is not None else model.name
    if not _NAME_RE.match(name or ""):
        fail("model_name", "must be given when model.name is not a valid directory name", name)
    model_dir = os.path.join(os.fspath(base_dir), name)
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
            model.export(tmp, format="tf_saved_model", verbose=verbose)
        _verify_stock_only(tmp)
        if metadata is not None:
            extra = os.path.join(tmp, "assets.extra")
            os.makedirs(extra, exist_ok=True)
            with open(os.path.join(extra, _METADATA_FILE), "w", encoding="utf-8") as f:
                json.dump(metadata, f, indent=2, sort_keys=True)
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
    return target
