"""Verify a model's exports against Keras, the way a deployment would run them.

:func:`verify_exports` exports each model as a SavedModel (TF Serving layout) and as float32 and
int8 TFLite, then checks, per model:

* the SavedModel's ``serving_default`` signature, run in a **fresh Python process that never
  imports keras_cnns** (an import hook refuses it, so neither the package nor its compiled
  custom-op library can be loaded), against the Keras model's output;
* the float32 ``.tflite`` in ``tf.lite.Interpreter`` with its default (XNNPACK) delegate;
* that the full-integer int8 ``.tflite`` allocates and runs with the default delegate (and its
  top-1 agreement with Keras on the probe images, which random weights make a weak signal).

One child process checks every SavedModel of the call (TensorFlow is imported once).
``benchmarks/export_all.py`` runs it over every registered model; the test suite over one model
per family.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from typing import Any, Collection, Dict, List, Mapping, Optional, Union

import numpy as np

from keras_cnns._checks import fail
from keras_cnns.export._child import child_env

__all__ = ["verify_exports"]

_CHILD = textwrap.dedent("""
    import json, sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "keras_cnns" or name.startswith("keras_cnns."):
                raise ImportError("keras_cnns must not be needed to run the export")
    sys.meta_path.insert(0, Block())
    import numpy as np
    import tensorflow as tf

    jobs = json.load(open(sys.argv[1]))
    out = {}
    for job in jobs:
        try:
            loaded = tf.saved_model.load(job["saved_model"])
            sig = loaded.signatures["serving_default"]
            (name, spec), = sig.structured_input_signature[1].items()
            x = np.load(job["inputs"])
            result = sig(**{name: tf.constant(x, spec.dtype)})
            key = job["output"] if job["output"] in result else sorted(result)[0]
            np.save(job["outputs"], result[key].numpy())
            out[job["name"]] = {"ok": True, "input_name": name, "outputs": sorted(result)}
        except Exception as exc:  # reported per model, the others still run
            out[job["name"]] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
    with open(sys.argv[2], "w") as f:
        json.dump({"results": out, "keras_cnns_loaded": any(
            m == "keras_cnns" or m.startswith("keras_cnns.") for m in sys.modules),
            "custom_op_loaded": any("keras_cnns" in l and ".so" in l
                                    for l in open("/proc/self/maps"))
            if sys.platform.startswith("linux") else False}, f)
""")


def verify_exports(models: Mapping[str, Any], workdir: Optional[str] = None, *,
                   num_images: int = 4, int8: Union[bool, Collection[str]] = True, seed: int = 0,
                   calibrate_batch_norm="auto", litert="auto", float64_reference: bool = False,
                   calibration_images: int = 64, progress: bool = False,
                   timeout: int = 3600) -> List[Dict[str, Any]]:
    """Export every model and compare each deployment path with Keras.

    Args:
        models: ``{name: keras.Model}`` (single image input, single output).
        workdir: where the exports go (a temporary directory, removed, by default).
        num_images: random probe images per model (uniform in [0, 1)).
        int8: also convert to full-integer int8 and run it: ``True`` (every model), ``False``
            (none), or the names of the models to convert (the others get float32 only).
        seed: the probe images' seed (each model draws its images from ``(seed, its name)``).
        calibrate_batch_norm: ``"auto"`` (default): set the model's BatchNorm statistics
            from random calibration images first
            (:func:`keras_cnns.layers.precise_bn.recalibrate_batch_norm`; this changes the given model)
            when its outputs do not vary over the probe images (freshly initialised BatchNorm
            statistics let deep networks' activations vanish: EfficientNet-B0 at 32x32 has
            1e-14 before its classifier and outputs exactly 1/10 everywhere, which would make
            any comparison pass trivially) or are not finite (the same identity statistics let
            CIFAR ResNet-1202's 600 residual sums overflow float32). A model without BatchNorm
            whose outputs do not vary gets He-normal kernels instead (SqueezeNet). ``True``
            always, ``False`` never. Each channel's variance is then floored at a tenth of its
            layer's mean: on random weights and images some channels barely vary, BatchNorm's
            scale reaches 1e3+, and any reassociation of float32 arithmetic (graph fusions,
            TFLite folding BatchNorm into the kernel) moves the outputs by 1e-4 to 3e-3
            (measured on SqueezeNext-23 and EfficientNet-B0): a property of those weights, not
            of the export. Not always, for the same reason.
        litert: also run the float32 and int8 files in LiteRT (``ai-edge-litert``, the TFLite
            runtime without TensorFlow, in a child process that cannot import TensorFlow or
            keras_cnns): ``"auto"`` (default) when it is installed, ``True`` (an error when it
            is not), ``False``.
        float64_reference: also evaluate a float64 copy of each model (same weights, stock TF
            ops) and report how far Keras' own float32 result and the float32 TFLite file are
            from it (``keras_float64_rel_err``, ``tflite_float64_rel_err``, and the served
            SavedModel's ``saved_model_float64_rel_err``: TF's graph optimiser fuses
            convolution, BatchNorm and activation, another float32 program): on random weights
            a deep network can amplify float32 rounding, and then Keras and TFLite differ from
            each other by about twice what each differs from the exact result.
        calibration_images: random images (uniform in [0, 1)) that calibrate BatchNorm (one
            batch) and int8 quantisation. 64 by default: EfficientNet's last stages run at 1x1
            at 32x32 input, so with 16 images each channel's batch variance comes from 16
            numbers, some channels' variance is ~0, BatchNorm's scale reaches 1e3-6e4 and Keras'
            own float32 result is 2e-3 off a float64 evaluation (EfficientNet-B4/B7, measured);
            with 64 images the output scale drops from 1.7e5 to 4.7e3 and that error to 1.3e-4.
        progress: one line per model.
        timeout: seconds for the child process.

    Build the models with ``classifier_activation=None`` to compare logits (a saturated softmax
    hides differences); ``*_rel_diff`` is the max abs difference over ``max(1, max |output|)``.

    Returns:
        One dict per model: ``name``, ``keras_output_std`` (the outputs' spread over the probe
        images: a comparison means little when it is ~0), ``saved_model_max_abs_diff`` (fresh process, no
        keras_cnns; ``saved_model_prob_abs_diff``: the same on the softmax of logits, what a
        client reads from ``probabilities``), ``tflite_max_abs_diff`` (float32;
        ``tflite_prob_abs_diff`` on the softmax of logits), ``int8_runs`` (allocated and invoked with
        the default delegate), ``int8_agreement``, ``int8_error`` / ``error`` when something
        failed, ``seconds``.
    """
    import keras

    from keras_cnns.export._savedmodel import output_kind, saved_model
    from keras_cnns.export._tflite import _interpreter, export_tflite_variants, run_tflite
    from keras_cnns.layers.precise_bn import recalibrate_batch_norm

    from keras_cnns.export._litert import _require, litert_available, run_litert_many

    if litert not in ("auto", True, False):
        fail("litert", '"auto", True or False', litert)
    use_litert = litert is True or (litert == "auto" and litert_available())
    if litert is True:
        _require()  # before any export, with the install command
    if isinstance(calibration_images, bool) or not isinstance(calibration_images, int) \
            or calibration_images < 2:
        fail("calibration_images", "must be an integer >= 2 (BatchNorm needs a batch variance)",
             calibration_images)
    if not isinstance(models, Mapping) or not models:
        fail("models", "must be a non-empty {name: keras.Model} mapping", type(models).__name__)
    for name, model in models.items():
        if not isinstance(model, keras.Model):
            fail("models", f"must map names to keras.Model objects ({name!r} does not)",
                 type(model).__name__)
    from keras_cnns.models.heads import served_model

    models = {name: served_model(model) for name, model in models.items()}  # the main outputs
    if isinstance(int8, bool):
        int8_names = set(models) if int8 else set()
    elif isinstance(int8, (str, bytes)) or not isinstance(int8, Collection) \
            or not set(int8) <= set(models):
        fail("int8", "must be True, False or a collection of names among the models' names",
             int8 if isinstance(int8, (bool, str)) else sorted(set(int8) - set(models))
             if isinstance(int8, Collection) else type(int8).__name__)
    else:
        int8_names = set(int8)
    own_tmp = workdir is None
    workdir = tempfile.mkdtemp(prefix="keras_cnns_verify_") if own_tmp else os.fspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    rows: List[Dict[str, Any]] = []
    jobs = []
    lite_jobs = {}  # (name, variant) -> (path, x)
    try:
        for name, model in models.items():
            t0 = time.perf_counter()
            quantize = name in int8_names
            # the probe and calibration images of each model from (seed, its name): a model's
            # check does not depend on which other models are verified with it
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            row: Dict[str, Any] = {"name": name, "params": int(model.count_params()),
                                   "input_shape": list(model.inputs[0].shape[1:])}
            rows.append(row)
            try:
                shape = (num_images,) + tuple(model.inputs[0].shape[1:])
                x = rng.random(shape, dtype=np.float32)
                calib = rng.random((calibration_images,) + shape[1:], dtype=np.float32)
                expected = np.asarray(model(x, training=False), np.float32)
                # degenerate: outputs that do not vary, or that overflowed (CIFAR ResNet-1202
                # at initialisation: BatchNorm's identity statistics let 600 residual sums
                # grow past float32's range, so every logit is inf or NaN)
                degenerate = (not np.all(np.isfinite(expected))
                              or float(expected.std(axis=0).mean()) < 1e-6)
                if calibrate_batch_norm is True or (calibrate_batch_norm == "auto"
                                                    and degenerate):
                    if recalibrate_batch_norm(model, [calib]):
                        _floor_variances(model)
                        row["batch_norm_calibrated"] = True
                        expected = np.asarray(model(x, training=False), np.float32)
                    elif calibrate_batch_norm == "auto":
                        # no BatchNorm to calibrate (SqueezeNet: its class maps' bias of 1
                        # and ReLU give every logit exactly 1 at initialisation): He-normal
                        # kernels, which keep a ReLU network's activations alive
                        _he_normal(model, rng)
                        row["reinitialised"] = True
                        expected = np.asarray(model(x, training=False), np.float32)
                if not np.all(np.isfinite(expected)):
                    raise FloatingPointError(
                        "the Keras model's outputs are not finite on the probe images"
                        + (" even after calibrating its BatchNorm statistics"
                           if row.get("batch_norm_calibrated") else ""))
                row["keras_output_std"] = float(expected.std(axis=0).mean())
                scale = max(1.0, float(np.max(np.abs(expected))))
                row["output_scale"] = scale
                kind = output_kind(model)
                np.save(os.path.join(workdir, f"{name}-x.npy"), x)
                np.save(os.path.join(workdir, f"{name}-keras.npy"), expected)
                path = saved_model(model, base_dir=os.path.join(workdir, "saved_models"),
                                   model_name=name, models_config=False, print_commands=False)
                jobs.append({"name": name, "saved_model": path,
                             "inputs": os.path.join(workdir, f"{name}-x.npy"),
                             "outputs": os.path.join(workdir, f"{name}-served.npy"),
                             "output": {"features": "features", "logits": "logits"}.get(
                                 kind, "probabilities")})
                f32 = os.path.join(workdir, f"{name}-float32.tflite")
                q = os.path.join(workdir, f"{name}-int8.tflite")
                try:  # one trace for both conversions
                    export_tflite_variants(model, {f32: "float32",
                                                   **({q: "int8"} if quantize else {})},
                                           representative_dataset=calib,
                                           saved_model_dir=path)  # its `serve` endpoint
                except Exception as exc:  # noqa: BLE001 - int8 reported, float32 retried alone
                    if not quantize:
                        raise
                    row["int8_runs"] = False
                    row["int8_error"] = f"{type(exc).__name__}: {exc}"[:500]
                    export_tflite_variants(model, {f32: "float32"}, saved_model_dir=path)
                y_f32 = run_tflite(f32, x)
                row["tflite_max_abs_diff"] = float(np.max(np.abs(y_f32 - expected)))
                row["tflite_rel_diff"] = row["tflite_max_abs_diff"] / scale
                if kind == "logits" and expected.ndim == 2:  # the probabilities an app reads
                    row["tflite_prob_abs_diff"] = float(np.max(np.abs(
                        _softmax(y_f32) - _softmax(expected))))
                if float64_reference:
                    try:
                        exact = _float64_outputs(model, x)
                        row["keras_float64_rel_err"] = float(
                            np.max(np.abs(expected - exact))) / scale
                        row["tflite_float64_rel_err"] = float(
                            np.max(np.abs(y_f32 - exact))) / scale
                        np.save(os.path.join(workdir, f"{name}-float64.npy"), exact)
                    except Exception as exc:  # noqa: BLE001 - reported, not hidden
                        row["float64_error"] = f"{type(exc).__name__}: {exc}"[:500]
                if use_litert:
                    lite_jobs[(name, "float32")] = (f32, x)
                if quantize and "int8_error" not in row:
                    try:
                        yq = run_tflite(q, x)
                        row["int8_runs"] = bool(np.all(np.isfinite(yq)))
                        row["int8_output_step"] = float(
                            _interpreter(q).get_output_details()[0]["quantization"][0])
                        if use_litert:
                            lite_jobs[(name, "int8")] = (q, x)
                            np.save(os.path.join(workdir, f"{name}-int8.npy"), yq)
                        if expected.ndim == 2:
                            row["int8_agreement"] = float(np.mean(
                                yq.argmax(-1) == expected.argmax(-1)))
                    except Exception as exc:  # noqa: BLE001 - reported, not hidden
                        row["int8_runs"] = False
                        row["int8_error"] = f"{type(exc).__name__}: {exc}"[:500]
            except Exception as exc:  # noqa: BLE001
                row["error"] = f"{type(exc).__name__}: {exc}"[:1000]
            row["seconds"] = round(time.perf_counter() - t0, 2)
            if progress:
                print(f"  {name:<36} exported in {row['seconds']:6.1f} s  "
                      f"tflite {row.get('tflite_max_abs_diff', float('nan')):.2g}  "
                      + (f"int8 {'runs' if row.get('int8_runs') else 'FAILED'}" if quantize
                         else "float32 only"), flush=True)

        if lite_jobs:
            by_name = {r["name"]: r for r in rows}
            got = run_litert_many({f"{n}/{v}": job for (n, v), job in lite_jobs.items()})
            for (n, v), (path, x) in lite_jobs.items():
                row, y = by_name[n], got[f"{n}/{v}"]
                if not isinstance(y, np.ndarray):
                    row["litert_error"] = str(y)[:1000]
                    if v == "int8":
                        row["litert_int8_runs"] = False
                elif v == "float32":
                    want = np.load(os.path.join(workdir, f"{n}-keras.npy"))
                    row["litert_max_abs_diff"] = float(np.max(np.abs(y - want)))
                    row["litert_rel_diff"] = row["litert_max_abs_diff"] / row["output_scale"]
                else:
                    row["litert_int8_runs"] = bool(np.all(np.isfinite(y)))
                    row["litert_int8_max_abs_diff"] = float(np.max(np.abs(
                        y - np.load(os.path.join(workdir, f"{n}-int8.npy")))))
        if jobs:
            jobs_path = os.path.join(workdir, "jobs.json")
            result_path = os.path.join(workdir, "served.json")
            with open(jobs_path, "w") as f:
                json.dump(jobs, f)
            proc = subprocess.run([sys.executable, "-c", _CHILD, jobs_path, result_path],
                                  env=child_env(), capture_output=True, text=True,
                                  timeout=timeout, cwd=workdir)
            if proc.returncode != 0 or not os.path.isfile(result_path):
                raise RuntimeError("the SavedModel check process failed (exit code "
                                   f"{proc.returncode}):\n{proc.stderr[-3000:]}")
            with open(result_path) as f:
                served = json.load(f)
            by_name = {r["name"]: r for r in rows}
            for job in jobs:
                res = served["results"].get(job["name"], {"ok": False, "error": "missing"})
                row = by_name[job["name"]]
                row["keras_cnns_loaded_in_child"] = served["keras_cnns_loaded"]
                row["custom_op_loaded_in_child"] = served["custom_op_loaded"]
                if not res["ok"]:
                    row["saved_model_error"] = res["error"]
                    continue
                got = np.load(job["outputs"])
                want = np.load(os.path.join(workdir, f"{job['name']}-keras.npy"))
                row["saved_model_max_abs_diff"] = float(np.max(np.abs(got - want)))
                row["saved_model_rel_diff"] = row["saved_model_max_abs_diff"] / row["output_scale"]
                exact_path = os.path.join(workdir, f"{job['name']}-float64.npy")
                if os.path.isfile(exact_path):  # float64_reference
                    row["saved_model_float64_rel_err"] = float(np.max(np.abs(
                        got - np.load(exact_path)))) / row["output_scale"]
                if job["output"] == "logits" and want.ndim == 2:
                    # what a client reads from the ``probabilities`` output
                    row["saved_model_prob_abs_diff"] = float(np.max(np.abs(
                        _softmax(got) - _softmax(want))))
                row["saved_model_outputs"] = res["outputs"]
    finally:
        if own_tmp:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return rows



def _softmax(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _float64_outputs(model, x) -> np.ndarray:
    """``model``'s outputs on ``x`` computed by a float64 clone with the same weights (every
    layer and sublayer built under the float64 policy; stock TF ops)."""
    import keras

    from keras_cnns.ops import stock_ops_only

    def as_float64(layer):
        config = layer.get_config()
        config["dtype"] = "float64"
        return layer.__class__.from_config(config)

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        with stock_ops_only():
            clone = keras.models.clone_model(model, clone_function=as_float64)
            narrow = [v.path for v in clone.weights
                      if "float" in str(v.dtype) and v.dtype != "float64"]
            if narrow:  # (integer variables, e.g. Normalization's count, stay integers)
                raise TypeError(f"the float64 clone kept {len(narrow)} float variable(s) "
                                f"narrower than float64, e.g. {narrow[0]!r}")
            clone.set_weights([np.asarray(w, np.float64) if np.issubdtype(np.asarray(w).dtype,
                                                                          np.floating)
                               else np.asarray(w) for w in model.get_weights()])
            return np.asarray(clone(x.astype(np.float64), training=False), np.float64)
    finally:
        keras.config.set_dtype_policy(previous)


def _floor_variances(model, fraction: float = 0.1) -> None:
    """Raise each BatchNorm channel's moving variance to at least ``fraction`` of its layer's
    mean: on random weights and images some channels barely vary, and dividing by their tiny
    standard deviation would multiply float32 rounding (which any two correct implementations
    differ by) by 1e3 or more."""
    from keras_cnns.layers.precise_bn import batch_norm_layers

    for layer in batch_norm_layers(model):
        var = np.asarray(layer.moving_variance)
        layer.moving_variance.assign(np.maximum(var, fraction * float(var.mean())))


def _he_normal(model, rng) -> None:
    """Every convolution / dense kernel drawn He-normal (std sqrt(2 / fan_in)), biases 0."""
    for layer in model._flatten_layers(include_self=False):
        for v in layer.weights:
            name = v.path.split("/")[-1]
            shape = tuple(v.shape)
            if name in ("kernel", "depthwise_kernel") and len(shape) >= 2:
                fan_in = int(np.prod(shape[:-1])) if name == "kernel" else int(np.prod(shape[:2]))
                v.assign(rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape).astype("float32"))
            elif name == "bias":
                v.assign(np.zeros(shape, "float32"))
