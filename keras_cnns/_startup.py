"""Process start-up: a quiet TensorFlow start for the ``keras-cnns`` command and the CPU allocator
(imports only the standard library at import time; TensorFlow when called).

TF 2.21 writes its C++ start-up lines (``cudart_stub ... Could not find cuda drivers``,
``E0000 ... failed call to cuInit ... (303)``, the CPU-feature notice) straight to file
descriptor 2, past ``TF_CPP_MIN_LOG_LEVEL``: on a CPU machine they are harmless but alarming.
When the process is the ``keras-cnns`` command (or ``python -m keras_cnns``) without
``--verbose``, the package imports TensorFlow and lists its devices (which is what calls cuInit)
with fd 2 sent to a temporary file; if that fails, what was captured is printed with the error.
Library users (``import keras_cnns``) see TensorFlow's output unchanged.

:func:`pooled_cpu_allocator` (called by ``import keras_cnns``) gives oneDNN-off processes the
pooled CPU allocator that oneDNN-on processes already have; its docstring says why.
"""

from __future__ import annotations

import os
import sys

__all__ = ["ALLOCATOR_ENV_VAR", "is_cli", "onednn_enabled", "pooled_cpu_allocator",
           "quiet_tensorflow_start"]

ALLOCATOR_ENV_VAR = "KERAS_CNNS_CPU_ALLOCATOR"
_ALLOCATOR_MODES = ("auto", "pooled", "default")

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


def onednn_enabled() -> bool | None:
    """Whether this process's TensorFlow runs its oneDNN CPU kernels (read from TF, which decides
    at import from ``TF_ENABLE_ONEDNN_OPTS`` and the CPU); ``None`` if TF cannot tell.

    The allocator choice below and the dispatch rules (:mod:`keras_cnns.ops.depthwise_dispatch`,
    which re-exports it) depend on it; :mod:`keras_cnns.environment` reports it."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def pooled_cpu_allocator() -> str:
    """Give this process TensorFlow's pooled (BFC) CPU allocator where oneDNN is off; returns
    what was decided: ``"pooled"`` (set here), ``"user"`` (``TF_CPU_ALLOCATOR_USE_BFC`` already
    set: left alone), ``"onednn"`` (oneDNN on: its allocator already pools) or ``"default"``.

    Why: with oneDNN on, TensorFlow allocates CPU tensors from oneDNN's pooling allocator; with
    it off (TF's default on AVX2-only CPUs such as AMD Zen 3) from ``malloc``, which hands large
    tensors back to the kernel when they are freed and gets fresh pages for the next step. The
    kernel zero-fills each fresh page: a training step then pays a page fault per 4 KiB of its
    large activations. Measured (2-core AMD EPYC, TF 2.21, oneDNN off, the op's depthwise 3x3
    forward + both gradients on [32, 28, 28, 240], 200 steps, four processes each): ``malloc``
    12.8-15.6 ms median in three processes of four (790,000-900,000 page faults; 7.1 ms with
    208,000 in the fourth), the pooled allocator 6.8-7.5 ms in all four (174,000-179,000),
    like a oneDNN-on process (6.7-7.7 ms). ``benchmarks/bench_grouped_conv.py`` compares the
    op's own times in the two processes.

    It sets ``TF_CPU_ALLOCATOR_USE_BFC=true``, which TensorFlow reads when it creates its CPU
    allocator (the first tensor, not the import): a process that ran TensorFlow ops before
    importing ``keras_cnns`` keeps ``malloc`` (``keras_cnns.environment.cpu_allocator()`` tells).
    ``KERAS_CNNS_CPU_ALLOCATOR``: ``auto`` (default, as above), ``pooled`` (also with oneDNN on)
    or ``default`` (leave TensorFlow's choice).

    Raises:
        ValueError: an unknown ``KERAS_CNNS_CPU_ALLOCATOR`` (the message names it).
    """
    raw = os.environ.get(ALLOCATOR_ENV_VAR, "auto")
    mode = raw.strip().lower() or "auto"
    if mode not in _ALLOCATOR_MODES:
        raise ValueError(f"`{ALLOCATOR_ENV_VAR}` must be one of {list(_ALLOCATOR_MODES)}. "
                         f"Received: {ALLOCATOR_ENV_VAR}={raw!r}")
    if mode == "default":
        return "default"
    if os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", "").strip():
        return "user"
    if mode == "auto":
        onednn = onednn_enabled()
        if onednn is None:  # no TensorFlow: nothing to configure
            return "default"
        if onednn:
            return "onednn"
    os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    return "pooled"
