"""What a bug report needs to know about the machine: ``keras-cnns info --env``.

TensorFlow's CPU kernels differ between machines: with oneDNN (``TF_ENABLE_ONEDNN_OPTS=1``, the
default on Intel CPUs) convolutions and matrix products run oneDNN's primitives, without it (the
default on AMD CPUs, or ``TF_ENABLE_ONEDNN_OPTS=0``) TensorFlow's own Eigen kernels, which accept
fewer argument combinations and round differently. :func:`environment_info` gathers that setting,
the CPU model and vector ISA, the versions, whether the custom op is compiled and loaded, and
whether CUDA is visible; :func:`format_environment` prints it one line per fact.

It reports on every layer of the package (versions, the custom op, LiteRT), so it sits at the top,
beside :mod:`keras_cnns.cli`; :func:`onednn_enabled` is defined in :mod:`keras_cnns._startup`
(the CPU allocator's choice needs it before anything else is imported), used by the dispatch
rules (:mod:`keras_cnns.ops.depthwise_dispatch`) and re-exported here.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from keras_cnns.ops.depthwise_dispatch import onednn_enabled

__all__ = ["cpu_allocator", "cpu_description", "environment_info", "format_environment",
           "onednn_enabled"]

# The vector-ISA flags of /proc/cpuinfo that matter for TF's and the custom op's kernels.
_ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw",
              "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_description(cpuinfo: str | None = None) -> dict:
    """``{"model": ..., "vendor": ..., "isa": [...]}`` from ``/proc/cpuinfo`` (Linux), falling
    back to :mod:`platform` elsewhere. ``isa`` lists the relevant vector extensions present, in a
    fixed order."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key in ("model name", "vendor_id", "flags") and key not in fields:
            fields[key] = value.strip()
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "vendor": fields.get("vendor_id", ""),
        "isa": [f for f in _ISA_FLAGS if f in flags],
    }


def cpu_allocator() -> str:
    """Which allocator this process's TensorFlow gives CPU tensors: ``"pooled"`` (BFC, or
    oneDNN's pooling allocator) or ``"malloc"`` (``keras_cnns._startup.pooled_cpu_allocator``
    says why it matters). Creates TensorFlow's CPU allocator if nothing has yet."""
    import tensorflow as tf

    try:
        tf.config.experimental.get_memory_info("CPU:0")  # only pooling allocators keep stats
    except ValueError:
        return "malloc"
    return "pooled"


def environment_info(load_op: bool = True) -> dict:
    """Facts for a bug report, as a flat dict of strings, bools and lists.

    Args:
        load_op: also try to load (and on a cold cache compile, ~15 s) the custom op, to report
            whether it works here; ``False`` only reports whether it was loaded already.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    import keras_cnns
    from keras_cnns.export._litert import litert_version
    from keras_cnns.ops import _loader

    cpu = cpu_description()
    if load_op:
        _loader.load_library()
    build = tf.sysconfig.get_build_info()
    try:
        gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    except Exception:  # pragma: no cover - defensive: a broken CUDA setup must not break the report
        gpus = []
    return {
        "keras_cnns": keras_cnns.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "ai_edge_litert": litert_version() or "(not installed)",
        "onednn": onednn_enabled(),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(unset)"),
        "cpu_allocator": cpu_allocator(),
        "cpu": cpu["model"],
        "cpu_vendor": cpu["vendor"],
        "cpu_isa": cpu["isa"],
        "cpu_count": os.cpu_count(),
        "custom_op_loaded": _loader._state["lib"] is not None,
        "custom_op_error": _loader.load_error(),
        "custom_op_cache": str(_loader.cache_dir()),
        "tf_built_with_cuda": bool(tf.test.is_built_with_cuda()),
        "tf_cuda_version": build.get("cuda_version", ""),
        "gpus_visible": gpus,
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"),
        "executable": sys.executable,
    }


def format_environment(info: dict | None = None) -> str:
    """:func:`environment_info` as ``key: value`` lines (the text to paste into a bug report)."""
    info = environment_info() if info is None else info
    width = max(len(k) for k in info)
    lines = []
    for key, value in info.items():
        if isinstance(value, (list, tuple)):
            value = " ".join(map(str, value)) or "(none)"
        elif value is None:
            value = "(none)" if key == "custom_op_error" else "unknown"
        elif isinstance(value, bool):
            value = ("on" if value else "off") if key == "onednn" else ("yes" if value else "no")
        lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)
