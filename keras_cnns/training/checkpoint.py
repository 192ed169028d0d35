"""Atomic, verified training checkpoints: model and optimizer state, epoch, history, seeds.

A checkpoint is a directory ``ckpt-<epoch>`` holding ``state.npz`` (every model variable --
weights, BatchNorm statistics, the dropout layers' seed-generator states -- and every optimizer
variable, iteration count included) and ``state.json`` (epoch, metrics history, seed, the run's
fingerprint, the variables' names and shapes, the SHA-256 of ``state.npz``). It is written into a
temporary directory next to the others, flushed to disk, and renamed into place: a checkpoint
directory either is complete or does not exist under its final name. On resume the newest
checkpoint whose JSON parses, whose ``state.npz`` hashes to the recorded digest and whose
variables match the model is used; a corrupt or half-written one is reported and skipped for the
one before it. Under a multi-worker strategy only the chief writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

__all__ = ["CheckpointError", "CheckpointManager", "load_checkpoint_model"]

_NAME = re.compile(r"^ckpt-(\d+)$")
_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be used for this run (another model, nothing valid)."""


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _variables(model, optimizer) -> List[Tuple[str, Any]]:
    out = [(f"model/{v.path}", v) for v in model.variables]
    if optimizer is not None:
        out += [(f"optimizer/{v.path}", v) for v in optimizer.variables]
    return out


def _value(v) -> np.ndarray:
    try:
        return np.asarray(v.numpy())
    except AttributeError:  # a distributed variable: read in cross-replica context
        return np.asarray(v.value.numpy())


def _epoch_dirs(directory: str) -> List[Tuple[int, str]]:
    if not os.path.isdir(directory):
        return []
    found = []
    for entry in os.listdir(directory):
        m = _NAME.match(entry)
        if m and os.path.isdir(os.path.join(directory, entry)):
            found.append((int(m.group(1)), os.path.join(directory, entry)))
    return sorted(found, reverse=True)


class CheckpointManager:
    """Writes and finds the checkpoints of one run in ``directory``.

    Args:
        directory: the run's checkpoint directory (created when missing).
        fingerprint: what identifies the run's model (name, builder arguments, input shape,
            classes); a directory holding checkpoints with another fingerprint is refused.
        keep: how many of the newest epoch checkpoints to keep (``best`` is kept apart).
        is_chief: whether this process writes (``False`` on the non-chief workers of a
            multi-worker run: they only read).
    """

    def __init__(self, directory: str, fingerprint: Dict[str, Any], keep: int = 3,
                 is_chief: bool = True):
        if not isinstance(directory, (str, os.PathLike)) or not str(directory):
            raise ValueError(f"`checkpoint_dir` must be a directory path. "
                             f"Received: checkpoint_dir={directory!r}")
        self.directory = os.fspath(directory)
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise ValueError(f"`checkpoint_dir` must be a directory, not a file. "
                             f"Received: checkpoint_dir={self.directory!r}")
        self.fingerprint = json.loads(json.dumps(fingerprint, default=str))
        self.keep = int(keep)
        self.is_chief = bool(is_chief)
        if self.is_chief:
            os.makedirs(self.directory, exist_ok=True)
            for entry in os.listdir(self.directory):  # leftovers of a killed write
                if entry.startswith(".tmp-"):
                    shutil.rmtree(os.path.join(self.directory, entry), ignore_errors=True)

    # -- reading --------------------------------------------------------------------------------

    def epoch_checkpoints(self) -> List[Tuple[int, str]]:
        """``[(epoch, path), ...]`` of the ``ckpt-<epoch>`` directories, newest first."""
        return _epoch_dirs(self.directory)

    @staticmethod
    def read(path: str) -> Dict[str, Any]:
        """The verified ``state.json`` of the checkpoint at ``path``; ``ValueError`` (with the
        reason) when it is incomplete or corrupt."""
        meta_path = os.path.join(path, "state.json")
        npz_path = os.path.join(path, "state.npz")
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"state.json unreadable ({type(exc).__name__}: {exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise ValueError("state.json is not a keras_cnns checkpoint")
        if not os.path.isfile(npz_path):
            raise ValueError("state.npz is missing")
        if _sha256(npz_path) != meta.get("sha256"):
            raise ValueError("state.npz does not match its recorded SHA-256 (truncated or "
                             "modified)")
        return meta

    def check_fingerprint(self, meta: Dict[str, Any], path: str) -> None:
        theirs = meta.get("fingerprint")
        if theirs != self.fingerprint:
            diff = sorted(k for k in set(theirs or {}) | set(self.fingerprint)
                          if (theirs or {}).get(k) != self.fingerprint.get(k))
            raise CheckpointError(
                f"`checkpoint_dir` holds checkpoints of another run ({path}: "
                + ", ".join(f"{k}={(theirs or {}).get(k)!r} here {self.fingerprint.get(k)!r}"
                            for k in diff)
                + "). Use another checkpoint directory for this model; nothing was changed. "
                f"Received: checkpoint_dir={self.directory!r}")

    def latest(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        """``(path, meta)`` of the newest valid checkpoint, or ``None`` when there is none.

        Corrupt or half-written checkpoints are skipped with a warning; a valid checkpoint of
        another run raises :class:`CheckpointError`.
        """
        for epoch, path in self.epoch_checkpoints():
            try:
                meta = self.read(path)
            except ValueError as exc:
                warnings.warn(f"checkpoint {path} is unusable ({exc}); trying the one before it",
                              RuntimeWarning, stacklevel=2)
                continue
            self.check_fingerprint(meta, path)
            return path, meta
        return None

    def restore(self, path: str, model, optimizer) -> None:
        """Load the checkpoint at ``path`` into ``model`` and ``optimizer`` (built)."""
        meta = self.read(path)
        self.check_fingerprint(meta, path)
        targets = _variables(model, optimizer)
        names = meta["variables"]
        # shapes, in order (Keras' automatic layer names depend on what else the process built)
        if len(targets) != len(names) or any(
                list(v.shape) != list(shape) for (_, v), (_, shape) in zip(targets, names)):
            raise CheckpointError(
                f"checkpoint {path} holds {len(names)} variables that do not match this model's "
                f"and optimizer's {len(targets)} (another model or optimizer?). Received: "
                f"checkpoint_dir={self.directory!r}")
        with np.load(os.path.join(path, "state.npz")) as arrays:
            for i, (_, v) in enumerate(targets):
                v.assign(arrays[f"v{i}"])

    # -- writing --------------------------------------------------------------------------------

    def _write(self, final: str, model, optimizer, state: Dict[str, Any]) -> Optional[str]:
        if not self.is_chief:
            return None
        targets = _variables(model, optimizer)
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=self.directory)
        try:
            npz_path = os.path.join(tmp, "state.npz")
            with open(npz_path, "wb") as f:
                np.savez(f, **{f"v{i}": _value(v) for i, (_, v) in enumerate(targets)})
                f.flush()
                os.fsync(f.fileno())
            meta = dict(state, format=_FORMAT, fingerprint=self.fingerprint,
                        variables=[[n, list(v.shape)] for n, v in targets],
                        sha256=_sha256(npz_path))
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump(meta, f, indent=1, default=str)
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(tmp)
            old = None
            if os.path.exists(final):  # an unusable checkpoint of the same name: move it aside
                old = tempfile.mkdtemp(prefix=".tmp-old-", dir=self.directory)
                os.rename(final, os.path.join(old, "x"))
            os.rename(tmp, final)
            _fsync_dir(self.directory)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def save(self, epoch: int, model, optimizer, state: Dict[str, Any]) -> Optional[str]:
        """Write ``ckpt-<epoch>`` (atomically) and drop epoch checkpoints beyond ``keep``."""
        path = self._write(os.path.join(self.directory, f"ckpt-{int(epoch):04d}"), model,
                           optimizer, dict(state, epoch=int(epoch)))
        if path:
            for _, old in self.epoch_checkpoints()[self.keep:]:
                shutil.rmtree(old, ignore_errors=True)
        return path

    def save_best(self, epoch: int, model, state: Dict[str, Any]) -> Optional[str]:
        """Write the model's variables as ``best`` (atomically replacing the previous best)."""
        return self._write(os.path.join(self.directory, "best"), model, None,
                           dict(state, epoch=int(epoch)))

    def save_final(self, model, state: Dict[str, Any]) -> Optional[str]:
        """Write the run's final model (the best epoch after precise BatchNorm: what was
        evaluated and exported) as ``final``; :func:`load_checkpoint_model` prefers it."""
        return self._write(os.path.join(self.directory, "final"), model, None, dict(state))

    def best(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        path = os.path.join(self.directory, "best")
        if not os.path.isdir(path):
            return None
        try:
            return path, self.read(path)
        except ValueError as exc:
            warnings.warn(f"best checkpoint {path} is unusable ({exc})", RuntimeWarning,
                          stacklevel=2)
            return None

    def has_checkpoints(self) -> bool:
        return bool(self.epoch_checkpoints()) or os.path.isdir(os.path.join(self.directory,
                                                                            "best"))


def _checkpoint_path(path: str) -> str:
    """A checkpoint directory itself, or a run directory's ``final``, ``best`` or newest
    ``ckpt-<epoch>`` (in that order)."""
    if os.path.isfile(os.path.join(path, "state.json")):
        return path
    for name in ("final", "best"):
        if os.path.isfile(os.path.join(path, name, "state.json")):
            return os.path.join(path, name)
    epochs = _epoch_dirs(path)
    if epochs:
        return epochs[0][1]
    raise ValueError(f"`checkpoint` must be a keras_cnns checkpoint (a directory with "
                     f"state.json) or a run's --checkpoint-dir holding final/, best/ or "
                     f"ckpt-<epoch>/; none found. Received: checkpoint={path!r}")


def load_checkpoint_model(checkpoint: str):
    """Rebuild the model a checkpoint was written for and load its weights.

    Args:
        checkpoint: a run's checkpoint directory (``--checkpoint-dir``: its ``final``, else
            ``best``, else newest epoch checkpoint is used) or one checkpoint directory.

    Returns:
        ``(keras.Model, meta)``: the model with the checkpoint's variables, and the verified
        ``state.json`` (its ``fingerprint`` names the model, builder arguments, input shape,
        classes and dataset; ``seed`` the data split).

    Raises:
        ValueError: not a checkpoint, corrupt, written for a ``keras.Model`` given as an object
            (nothing names its builder), or variables that do not match the rebuilt model.
    """
    if not isinstance(checkpoint, (str, os.PathLike)) or not os.path.isdir(checkpoint):
        raise ValueError(f"`checkpoint` must be an existing directory. "
                         f"Received: checkpoint={checkpoint!r}")
    path = _checkpoint_path(os.fspath(checkpoint))
    meta = CheckpointManager.read(path)
    fp = meta.get("fingerprint") or {}
    if "kwargs" not in fp or "classes" not in fp:
        raise ValueError(f"checkpoint {path} was written for a keras.Model passed as an object, "
                         "not a registered name: nothing says how to rebuild it. Save that "
                         "model with model.save(...keras) instead. Received: "
                         f"checkpoint={os.fspath(checkpoint)!r}")
    from keras_cnns.models import model_info

    info = model_info(fp["model"])
    model = info.builder(**{**info.kwargs, **fp["kwargs"]}, name=info.name,
                         input_shape=tuple(fp["input_shape"]), classes=int(fp["classes"]))
    names = [n for n in meta["variables"] if n[0].startswith("model/")]
    targets = list(model.variables)
    if len(targets) != len(names) or any(
            list(v.shape) != list(shape) for v, (_, shape) in zip(targets, names)):
        raise ValueError(f"checkpoint {path} holds {len(names)} model variables that do not "
                         f"match the rebuilt {info.name}'s {len(targets)}. Received: "
                         f"checkpoint={os.fspath(checkpoint)!r}")
    with np.load(os.path.join(path, "state.npz")) as arrays:
        for i, v in enumerate(targets):
            v.assign(arrays[f"v{i}"])
    return model, dict(meta, path=path)
