"""Keras Tuner's state files, safe against a search killed mid-write.

Keras Tuner (1.4) writes ``trial.json``, ``oracle.json`` and the tuner's state in place
(``keras_tuner.src.utils.save_json``: open for writing, then write). A search killed between the
two (SIGKILL, a preempted machine, an out-of-memory kill) leaves an empty ``trial.json``, and the
next run cannot resume: ``Oracle.reload`` parses every ``trial_*/trial.json`` and stops at the
empty one with a ``JSONDecodeError``. Seen in this repository's kill-and-resume test, where the
kill landed just as the second trial was created.

* :func:`atomic_keras_tuner_writes` routes those writes through a temporary file in the same
  directory and ``os.replace``, so a file is either its old or its new content.
* :func:`repair_project` handles projects left by a run without it: before a resume it sets
  aside a ``trial.json`` that does not parse when the oracle does not list that trial as
  running (the trial was being created: Keras Tuner saves the trial before the oracle), and
  otherwise raises a ``ValueError`` naming the file.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import uuid
import warnings

__all__ = ["atomic_keras_tuner_writes", "repair_project"]


def _atomic_save_json(path, obj, original):
    path = os.fspath(path)
    if "://" in path:  # a remote file system (gs://, ...): Keras Tuner's own write
        return original(path, obj)
    obj_str = json.dumps(obj)
    # A new name beside the target, created with a plain file's permissions (the umask applies)
    tmp = os.path.join(os.path.dirname(path) or ".", f".tmp-{uuid.uuid4().hex}.json")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(obj_str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return obj_str


def atomic_keras_tuner_writes() -> None:
    """Make Keras Tuner's JSON state writes atomic in this process (idempotent). Every Keras
    Tuner module calls ``utils.save_json`` through the module, so replacing it there covers the
    trial, oracle and tuner files."""
    from keras_tuner.src import utils as kt_utils

    current = kt_utils.save_json
    if getattr(current, "_keras_cnns_atomic", False):
        return

    def save_json(path, obj):
        return _atomic_save_json(path, obj, current)

    save_json._keras_cnns_atomic = True
    save_json.__doc__ = current.__doc__
    kt_utils.save_json = save_json


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def repair_project(project_dir) -> list:
    """Before resuming the Keras Tuner project in ``project_dir``: set aside (rename to
    ``unreadable_<trial dir>``, with a warning) each ``trial_*/trial.json`` that does not parse
    and whose trial the oracle does not list as running. Returns the directories set aside.

    Raises:
        ValueError: ``oracle.json`` does not parse, or it lists an unreadable trial as running
            (the message names the file and says to remove it or pass ``overwrite=True``).
    """
    project_dir = os.fspath(project_dir)
    if not os.path.isdir(project_dir):
        return []
    oracle_file = os.path.join(project_dir, "oracle.json")
    oracle = None
    if os.path.exists(oracle_file):
        oracle = _read_json(oracle_file)
        if not isinstance(oracle, dict):
            raise ValueError(
                f"cannot resume the Keras Tuner project {project_dir!r}: {oracle_file} is empty "
                "or not JSON (a search killed while Keras Tuner wrote it?). Remove the project "
                "directory or pass overwrite=True to start over.")
    running = set(str(t) for t in (oracle or {}).get("ongoing_trials", {}).values())
    moved = []
    for trial_file in sorted(glob.glob(os.path.join(project_dir, "trial_*", "trial.json"))):
        if isinstance(_read_json(trial_file), dict):
            continue
        trial_dir = os.path.dirname(trial_file)
        trial_id = os.path.basename(trial_dir)[len("trial_"):]
        if trial_id in running:
            raise ValueError(
                f"cannot resume the Keras Tuner project {project_dir!r}: {trial_file} is empty "
                "or not JSON, and the oracle lists that trial as running. Remove the project "
                "directory or pass overwrite=True to start over.")
        target = os.path.join(project_dir, "unreadable_" + os.path.basename(trial_dir))
        n = 1
        while os.path.exists(target):
            n += 1
            target = os.path.join(project_dir, f"unreadable{n}_" + os.path.basename(trial_dir))
        os.replace(trial_dir, target)
        warnings.warn(f"{trial_file} was empty or not JSON (a search killed while Keras Tuner "
                      f"wrote it); the trial was not recorded and is set aside as {target}",
                      RuntimeWarning, stacklevel=2)
        moved.append(target)
    return moved
