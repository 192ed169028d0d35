"""Quiet TensorFlow start-up for the ``keras-cnns`` command (imports only the standard library).

TF 2.21 writes its C++ start-up lines (``cudart_stub ... Could not find cuda drivers``,
``E0000 ... failed call to cuInit ... (303)``, the CPU-feature notice) straight to file
descriptor 2, past ``TF_CPP_MIN_LOG_LEVEL``: on a CPU machine they are harmless but alarming.
When the process is the ``keras-cnns`` command (or ``python -m keras_cnns``) without
``--verbose``, the package imports TensorFlow and lists its devices (which is what calls cuInit)
with fd 2 sent to a temporary file; if that fails, what was captured is printed with the error.
Library users (``import keras_cnns``) see TensorFlow's output unchanged.
"""

from __future__ import annotations

import os
import sys

__all__ = ["is_cli", "quiet_tensorflow_start"]

_DONE = False


def is_cli() -> bool:
    """Whether this process is the ``keras-cnns`` command."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ""
    if argv0 in ("keras-cnns", "keras-cnns.exe"):
        return True
    orig = list(getattr(sys, "orig_argv", []) or [])
    return any(a == "-m" and i + 1 < len(orig) and orig[i + 1] in ("keras_cnns", "keras_cnns.cli")
               for i, a in enumerate(orig))


def quiet_tensorflow_start(force: bool = False) -> None:
    """Import TensorFlow with its start-up noise hidden (once per process), for the CLI."""
    global _DONE
    if _DONE or "tensorflow" in sys.modules:
        return
    if not force and (not is_cli() or "--verbose" in sys.argv[1:]):
        return
    _DONE = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters)
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
