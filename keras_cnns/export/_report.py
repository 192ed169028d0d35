"""Export report: every TFLite variant of one model side by side.

:func:`tflite_report` converts a model to each requested TFLite variant (``float32``,
``float16``, ``dynamic``, ``int8``), and -- through tensorflow-model-optimization in its own
process (:mod:`keras_cnns.export._tfmot`) -- pruned (``prune50``, ``prune80``, ...) and
quantisation-aware-trained int8 (``qat``) variants, then measures for each, in one run on the
same machine: file size and gzip-compressed size, batch-1 latency in ``tf.lite.Interpreter`` with
its default (XNNPACK) delegate, held-out top-1 accuracy, and top-1 agreement with the Keras
model on the same images. :func:`format_report` prints the table.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from keras_cnns._checks import fail

__all__ = ["REPORT_VARIANTS", "format_report", "parse_variants", "tflite_latency_ms",
           "tflite_predict", "tflite_report"]

#: The variants ``tflite_report`` knows; ``prune<P>`` takes any sparsity percentage 1..99.
REPORT_VARIANTS = ("float32", "float16", "dynamic", "int8", "prune50", "prune80", "qat")


def parse_variants(spec) -> List[str]:
    """``"float32,int8,prune80"`` (or a sequence) -> ``["float32", "int8", "prune80"]``."""
    items = spec.split(",") if isinstance(spec, str) else list(spec or ())
    out = []
    for item in items:
        v = str(item).strip().lower()
        if not v:
            continue
        if v in ("none", "fp32"):
            v = "float32"
        if v == "qat_int8":
            v = "qat"
        ok = v in ("float32", "float16", "dynamic", "int8", "qat") or (
            v.startswith("prune") and v[5:].isdigit() and 1 <= int(v[5:]) <= 99)
        if not ok:
            fail("quantize", "must be a comma-separated list of float32, float16, dynamic, "
                 "int8, prune<PERCENT> (1-99, e.g. prune50) and qat", spec)
        if v not in out:
            out.append(v)
    if not out:
        fail("quantize", "must name at least one variant", spec)
    return out


def tflite_predict(path, x, batch_size: int = 64):
    """Outputs of a ``.tflite`` model on ``x`` in batches (int8 tensors (de)quantized)."""
    from keras_cnns.export._tflite import run_tflite

    x = np.asarray(x, np.float32)
    return np.concatenate([run_tflite(path, x[i:i + batch_size])
                           for i in range(0, len(x), batch_size)])


def tflite_latency_ms(path, x1, runs: int = 50, warmup: int = 5,
                      num_threads: Optional[int] = 1) -> float:
    """Median wall time of one batch-1 ``invoke()`` (ms), default delegate, ``num_threads``."""
    from keras_cnns.export._tflite import prepared_interpreter

    interp, _ = prepared_interpreter(path, np.asarray(x1, np.float32)[:1], num_threads)
    for _ in range(warmup):
        interp.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def _gzip_bytes(path) -> int:
    with open(path, "rb") as f:
        return len(gzip.compress(f.read(), compresslevel=9))


def _keras_predict(model, x, batch_size=64):
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float32)


def tflite_report(model, output_dir, variants: Sequence[str] = ("float32", "float16", "dynamic",
                                                                 "int8"), *,
                  test: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                  representative: Optional[np.ndarray] = None,
                  train: Optional[Tuple[np.ndarray, np.ndarray]] = None,
                  name: Optional[str] = None, latency_runs: int = 50,
                  num_threads: Optional[int] = 1, fine_tune_epochs: int = 15, qat_epochs: int = 1,
                  progress: bool = True) -> List[Dict[str, Any]]:
    """Convert ``model`` to each variant under ``output_dir`` and measure them side by side.

    Args:
        model: a built single-input, single-output ``keras.Model``.
        output_dir: where ``<name>-<variant>.tflite`` files and ``report.json`` are written;
            existing files are never overwritten (``FileExistsError``, nothing written).
        variants: see :data:`REPORT_VARIANTS` / :func:`parse_variants`.
        test: held-out ``(x, y)`` (preprocessed like the training data) for accuracy and
            agreement; without it only size and latency are reported.
        representative: calibration images for ``int8`` (default: ``train``'s images).
        train: ``(x, y)`` for the pruning and QAT fine-tuning (needed for ``prune*``/``qat``).
        name: file-name stem (default ``model.name``).
        latency_runs: timed batch-1 invocations per variant (median reported).
        num_threads: interpreter threads for the latency (default 1: comparable across
            machines); accuracy runs use the interpreter's default.
        fine_tune_epochs, qat_epochs: epochs of pruning / QAT fine-tuning. Pruning needs the
            longer one: SqueezeNet 1.1 with simple bypass at 80% sparsity on the digits reached
            0.63 held-out top-1 after 6 epochs and 0.94-0.96 after 15 (two checkpoints; at 50%:
            0.96 after 6, 0.98 after 15).
        progress: print one line per variant as it is done.

    Returns:
        One dict per variant: ``variant``, ``file``, ``bytes``, ``gzip_bytes``, ``latency_ms``,
        ``accuracy`` (TFLite, held-out top-1), ``agreement`` (TFLite vs this Keras model's top-1),
        ``keras_accuracy``, ``max_abs_diff`` (vs Keras), plus ``sparsity`` for pruned variants.
    """
    import keras

    from keras_cnns.export._tflite import export_tflite_variants

    if not isinstance(model, keras.Model):
        fail("model", "must be a keras.Model", type(model).__name__)
    from keras_cnns.models.heads import served_model

    model = served_model(model)  # the main output: what TFLite converts
    variants = parse_variants(variants)
    if not isinstance(output_dir, (str, os.PathLike)) or not os.fspath(output_dir):
        fail("output_dir", "must be a directory path", output_dir)
    if isinstance(latency_runs, bool) or not isinstance(latency_runs, int) or latency_runs < 1:
        fail("latency_runs", "must be a positive integer", latency_runs)
    if test is not None:
        if (not isinstance(test, (tuple, list)) or len(test) != 2
                or len(test[0]) != len(test[1]) or len(test[0]) == 0):
            fail("test", "must be (x, y) with as many labels as images", type(test).__name__)
    if representative is None and train is not None:
        representative = train[0]
    if "int8" in variants and representative is None:
        fail("representative", "is required for the int8 variant (calibration images, or pass "
             "train=(x, y))", representative)
    tuned = [v for v in variants if v.startswith("prune") or v == "qat"]
    if tuned and train is None:
        fail("train", f"is required for {tuned} (the fine-tuning data)", train)
    output_dir = os.fspath(output_dir)
    name = name or model.name
    targets = {v: os.path.join(output_dir, f"{name}-{v}.tflite") for v in variants}
    existing = [p for p in list(targets.values()) + [os.path.join(output_dir, "report.json")]
                if os.path.lexists(p)]
    if existing:
        raise FileExistsError(f"refusing to overwrite {existing}: choose another output "
                              "directory (nothing was written)")
    os.makedirs(output_dir, exist_ok=True)

    x_test = y_test = keras_pred = None
    probe = representative
    if test is not None:
        x_test = np.asarray(test[0], np.float32)
        y_test = np.asarray(test[1]).reshape(-1).astype(np.int64)
        keras_pred = _keras_predict(model, x_test)
        probe = x_test
    if probe is None:  # latency only: any image of the right shape
        probe = np.zeros((1,) + tuple(model.inputs[0].shape[1:]), np.float32)
    keras_acc = (float(np.mean(keras_pred.argmax(-1) == y_test)) if test is not None else None)

    rows: List[Dict[str, Any]] = []
    tuned_rows: Dict[str, Dict[str, Any]] = {}
    if tuned:
        from keras_cnns.export._tfmot import optimize_with_tfmot

        t0 = time.perf_counter()
        results = optimize_with_tfmot(
            model, (np.asarray(train[0], np.float32), np.asarray(train[1])),
            (x_test, y_test) if test is not None else (np.asarray(train[0][:64], np.float32),
                                                       np.asarray(train[1][:64])),
            methods=tuned, epochs=fine_tune_epochs, qat_epochs=qat_epochs,
            output_dir=output_dir)
        for r in results:
            tuned_rows[r["method"]] = r
        if progress:
            print(f"  tensorflow-model-optimization: {', '.join(tuned)} in "
                  f"{time.perf_counter() - t0:.0f} s (its own process)", flush=True)

    plain = {targets[v]: v for v in variants if v not in tuned_rows}
    if plain:  # one trace of the model for every post-training variant
        t0 = time.perf_counter()
        export_tflite_variants(model, plain, representative_dataset=representative)
        convert_seconds = (time.perf_counter() - t0) / len(plain)
    for v in variants:
        t0 = time.perf_counter()
        row: Dict[str, Any] = {"variant": v}
        if v in tuned_rows:
            r = tuned_rows[v]
            path = r.get("tflite")
            if path and os.path.abspath(path) != os.path.abspath(targets[v]):
                os.replace(path, targets[v])
            path = targets[v]
            row.update(label=r.get("label", v), sparsity=r.get("sparsity"),
                       fine_tuned_keras_accuracy=r.get("accuracy"))
        else:
            path = targets[v]
            row["label"] = v
            t0 -= convert_seconds
        row.update(file=path, bytes=os.path.getsize(path), gzip_bytes=_gzip_bytes(path),
                   latency_ms=tflite_latency_ms(path, probe, runs=latency_runs,
                                                num_threads=num_threads))
        if test is not None:
            pred = tflite_predict(path, x_test)
            row.update(accuracy=float(np.mean(pred.argmax(-1) == y_test)),
                       agreement=float(np.mean(pred.argmax(-1) == keras_pred.argmax(-1))),
                       max_abs_diff=float(np.max(np.abs(pred - keras_pred))),
                       keras_accuracy=keras_acc)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        rows.append(row)
        if progress:
            print("  " + _row_text(row), flush=True)

    report = {"model": name, "num_threads": num_threads, "latency_runs": latency_runs,
              "test_size": None if x_test is None else int(len(x_test)),
              "keras_accuracy": keras_acc, "rows": rows}
    tmp = os.path.join(output_dir, f".tmp-report-{os.getpid()}.json")
    with open(tmp, "w") as f:
        json.dump(report, f, indent=1)
    os.replace(tmp, os.path.join(output_dir, "report.json"))
    return rows


def _row_text(row) -> str:
    acc = "" if row.get("accuracy") is None else (
        f"  top-1 {row['accuracy']:.4f}  agreement {row['agreement']:.4f}")
    return (f"{row['variant']:<9} {row['bytes'] / 1e6:7.3f} MB  gzip {row['gzip_bytes'] / 1e6:7.3f} "
            f"MB  {row['latency_ms']:7.2f} ms{acc}")


def format_report(rows, keras_accuracy=None) -> str:
    """A Markdown table of :func:`tflite_report`'s rows."""
    has_acc = any(r.get("accuracy") is not None for r in rows)
    head = ["variant", "size (MB)", "gzip (MB)", "batch-1 latency (ms)"]
    if has_acc:
        head += ["held-out top-1", "top-1 agreement with Keras", "max abs diff vs Keras"]
    if any(r.get("sparsity") is not None for r in rows):
        head.append("sparsity")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    if has_acc and keras_accuracy is not None:
        lines.append("| Keras (float32) | | | | " + f"{keras_accuracy:.4f} | | |"
                     + (" |" if "sparsity" in head else ""))
    for r in rows:
        cells = [r.get("label", r["variant"]), f"{r['bytes'] / 1e6:.3f}",
                 f"{r['gzip_bytes'] / 1e6:.3f}", f"{r['latency_ms']:.2f}"]
        if has_acc:
            cells += [f"{r['accuracy']:.4f}", f"{r['agreement']:.4f}",
                      f"{r['max_abs_diff']:.2g}"]
        if "sparsity" in head:
            cells.append("" if r.get("sparsity") is None else f"{r['sparsity']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
