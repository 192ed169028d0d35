"""Run ``.tflite`` files in LiteRT (``ai-edge-litert``), the TFLite runtime without TensorFlow.

``tf.lite.Interpreter`` is TensorFlow's copy of the TFLite runtime; on a phone or a small
server the model runs in LiteRT instead (Google's standalone runtime, the ``ai-edge-litert``
wheel, formerly ``tflite-runtime``). :func:`run_litert` runs files there the way such a
deployment would: in a **child process that cannot import TensorFlow or keras_cnns** (an import
hook refuses both, so the check also proves the file needs neither), with LiteRT's default
delegate (XNNPACK on CPUs). Integer inputs and outputs are (de)quantized with the tensors' scale
and zero point, as :func:`keras_cnns.export.run_tflite` does.

``ai-edge-litert`` is an optional dependency (``pip install "keras-cnns[litert]"``, also in the
``dev`` extra): its 2.3 wheels exist for Linux x86_64, macOS arm64 and Windows x86_64, not for
Linux aarch64.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from typing import Dict, Mapping, Tuple, Union

import numpy as np

__all__ = ["LiteRTError", "litert_available", "litert_version", "run_litert", "run_litert_many"]

INSTALL_HINT = 'pip install "keras-cnns[litert]"  (or: pip install ai-edge-litert)'


class LiteRTError(RuntimeError):
    """A file did not load, allocate or run in LiteRT (the message is LiteRT's)."""


_CHILD = textwrap.dedent("""
    import json, sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.split(".")[0]
            if top in ("tensorflow", "keras", "keras_cnns", "tf_keras"):
                raise ImportError(f"{name} must not be needed to run a .tflite file in LiteRT")
    sys.meta_path.insert(0, Block())
    import numpy as np
    import ai_edge_litert
    from ai_edge_litert.interpreter import Interpreter

    def run(path, x):
        interp = Interpreter(model_path=path)
        inp = interp.get_input_details()[0]
        if tuple(inp["shape"]) != x.shape:
            interp.resize_tensor_input(inp["index"], list(x.shape))
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        if np.issubdtype(inp["dtype"], np.integer):
            scale, zero = inp["quantization"]
            lim = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), lim.min, lim.max).astype(inp["dtype"])
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        out = interp.get_output_details()[0]
        y = interp.get_tensor(out["index"])
        if np.issubdtype(out["dtype"], np.integer):
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y

    jobs = json.load(open(sys.argv[1]))
    results = {}
    for job in jobs:
        try:
            np.save(job["outputs"], run(job["path"], np.load(job["inputs"])))
            results[job["name"]] = {"ok": True}
        except Exception as exc:  # reported per file, the others still run
            results[job["name"]] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    with open(sys.argv[2], "w") as f:
        json.dump({"results": results,
                   "version": getattr(ai_edge_litert, "__version__", None),
                   "tensorflow_loaded": any(m.split(".")[0] == "tensorflow" for m in sys.modules),
                   "keras_cnns_loaded": any(m.split(".")[0] == "keras_cnns"
                                            for m in sys.modules)}, f)
""")


def litert_available() -> bool:
    """Whether ``ai_edge_litert`` is installed (without importing it)."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def litert_version():
    """The installed ``ai-edge-litert`` version, or ``None``."""
    from importlib import metadata

    try:
        return metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        return None


def _require():
    if not litert_available():
        raise ModuleNotFoundError(
            f"running .tflite files in LiteRT needs the ai-edge-litert package: {INSTALL_HINT}",
            name="ai_edge_litert")


def run_litert_many(jobs: Mapping[str, Tuple[Union[str, os.PathLike], np.ndarray]], *,
                    timeout: int = 1800) -> Dict[str, Union[np.ndarray, LiteRTError]]:
    """Run several ``.tflite`` files in one LiteRT child process.

    Args:
        jobs: ``{name: (path, x)}``, ``x`` a float32 batch (quantized where the input is
            integer).
        timeout: seconds for the child.

    Returns:
        ``{name: output array}``; a file that failed maps to a :class:`LiteRTError` (the others
        still ran).

    Raises:
        ModuleNotFoundError: ``ai-edge-litert`` is not installed (with the install command).
        LiteRTError: the child process itself failed.
    """
    _require()
    if not isinstance(jobs, Mapping) or not jobs:
        from keras_cnns._checks import fail

        fail("jobs", "must be a non-empty {name: (path, x)} mapping", type(jobs).__name__)
    with tempfile.TemporaryDirectory(prefix="keras_cnns_litert_") as work:
        spec = []
        for i, (name, (path, x)) in enumerate(jobs.items()):
            path = os.path.abspath(os.fspath(path))
            if not os.path.isfile(path):
                raise FileNotFoundError(f"path: no .tflite file at {path!r} (job {name!r})")
            inputs = os.path.join(work, f"{i}-x.npy")
            np.save(inputs, np.asarray(x, dtype=np.float32))
            spec.append({"name": name, "path": path, "inputs": inputs,
                         "outputs": os.path.join(work, f"{i}-y.npy")})
        jobs_path, result_path = os.path.join(work, "jobs.json"), os.path.join(work, "out.json")
        with open(jobs_path, "w") as f:
            json.dump(spec, f)
        from keras_cnns.export._child import child_env

        proc = subprocess.run([sys.executable, "-c", _CHILD, jobs_path, result_path],
                              env=child_env(),
                              capture_output=True, text=True, timeout=timeout, cwd=work)
        if proc.returncode != 0 or not os.path.isfile(result_path):
            raise LiteRTError(f"the LiteRT process failed (exit code {proc.returncode}):\n"
                              + proc.stderr[-3000:])
        with open(result_path) as f:
            done = json.load(f)
        if done["tensorflow_loaded"] or done["keras_cnns_loaded"]:  # the hook refuses both
            raise LiteRTError("the LiteRT process imported TensorFlow or keras_cnns")
        out: Dict[str, Union[np.ndarray, LiteRTError]] = {}
        for job in spec:
            res = done["results"].get(job["name"], {"ok": False, "error": "missing"})
            out[job["name"]] = (np.load(job["outputs"]) if res["ok"]
                                else LiteRTError(f"{job['name']}: {res['error']}"))
        return out


def run_litert(path, x, *, timeout: int = 600) -> np.ndarray:
    """Run one ``.tflite`` file on a float32 batch ``x`` in LiteRT (a child process without
    TensorFlow; default delegate) and return its output as float32.

    Raises:
        ModuleNotFoundError: ``ai-edge-litert`` is not installed.
        LiteRTError: LiteRT could not load, allocate or run the file.
    """
    y = run_litert_many({"model": (path, x)}, timeout=timeout)["model"]
    if isinstance(y, LiteRTError):
        raise y
    return y
