"""TFLite export: float32, float16, dynamic-range and full-integer int8.

The model goes through a temporary SavedModel traced inside
:func:`keras_cnns.ops.stock_ops_only` (stock TF ops only, checked), then
``tf.lite.TFLiteConverter.from_saved_model``. The ``.tflite`` file is written next to its
destination under a temporary name and hard-linked into place, which fails if the destination
exists: an existing file is never overwritten.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import uuid
import warnings
from typing import Optional

import numpy as np

from keras_cnns._checks import fail

__all__ = ["QUANTIZATIONS", "UnsupportedByTFLiteError", "export_tflite", "run_tflite", "tflite"]

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")



class UnsupportedByTFLiteError(ValueError):
    """The model has a layer whose TensorFlow ops TFLite's builtin op set does not have."""

    def __init__(self, message, ops=(), layers=()):
        super().__init__(message)
        self.ops = tuple(ops)
        self.layers = tuple(layers)


_NEEDS_OP_RE = re.compile(r"'(tf\.[A-Za-z0-9_]+)' op is neither a custom op nor a flex op")
_LOC_RE = re.compile(r'fused\["([A-Za-z0-9_]+):", "([^"@]+)@')


def _unsupported(exc, model):
    """``(ops, layer names)`` TFLite's builtins lack, read from a converter error."""
    text = str(exc)
    ops = sorted(set(_NEEDS_OP_RE.findall(text)))
    if not ops:
        return [], []
    names = {layer.name for layer in model._flatten_layers(include_self=False)}
    bare = {op.split(".", 1)[1] for op in ops}
    found = []
    for op_type, scope in _LOC_RE.findall(text):
        if op_type not in bare:
            continue
        for part in scope.split("/")[1:]:  # the first part is the model's own scope
            candidates = [part, re.sub(r"_[0-9]+$", "", part)]
            hit = next((c for c in candidates if c in names), None)
            if hit is not None:
                if hit not in found:
                    found.append(hit)
                break
    return ops, found


def _single_examples(representative_dataset, limit):
    """Yield ``[x]`` with ``x`` one float32 example of shape ``(1, ...)``, at most ``limit``."""
    import tensorflow as tf

    def batches():
        if isinstance(representative_dataset, np.ndarray):
            yield representative_dataset
            return
        for element in representative_dataset:
            if isinstance(element, (tuple, list)):
                element = element[0]  # (x, y) or [x]
            yield element.numpy() if isinstance(element, tf.Tensor) else np.asarray(element)

    count = 0
    for batch in batches():
        batch = np.asarray(batch, dtype=np.float32)
        for i in range(batch.shape[0]):
            if count >= limit:
                return
            yield [batch[i:i + 1]]
            count += 1


def _publish_noreplace(tmp: str, path: str) -> None:
    """Hard-link ``tmp`` to ``path`` (atomic; fails if ``path`` exists), then drop ``tmp``."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "refusing to overwrite an existing file",
                              path) from None
    except OSError as exc:  # a filesystem without hard links
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "refusing to overwrite an existing file",
                                  path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def export_tflite(model, path, quantization: Optional[str] = None,
                  representative_dataset=None, num_calibration_examples: int = 200) -> str:
    """Convert ``model`` to a TFLite flatbuffer at ``path``.

    Args:
        model: a built ``keras.Model``; of several outputs, the main one is converted
            (auxiliary classifiers are training-only).
        path: destination ``.tflite`` file; it must not exist.
        quantization: ``None``/``"float32"`` (no quantization), ``"float16"`` (float16 weights),
            ``"dynamic"`` (int8 weights, float activations) or ``"int8"`` (full-integer: int8
            weights, activations, input and output; needs ``representative_dataset``).
        representative_dataset: calibration inputs for ``"int8"``, preprocessed exactly like
            the model's inputs: a NumPy array ``(N, H, W, C)``, a ``tf.data.Dataset`` of batches
            (``x`` or ``(x, y)``), or a TFLite-style callable yielding ``[x]`` lists.
        num_calibration_examples: at most this many examples are drawn from an array or dataset.

    Returns:
        str: ``path``.

    Raises:
        ValueError: an invalid argument, or ``"int8"`` without a representative dataset.
        FileExistsError: ``path`` exists (it is left untouched).
        keras_cnns.export.CustomOpInGraphError: the traced graph contains a custom op.
    """
    import keras

    if quantization is None:
        quantization = "float32"
    if quantization not in QUANTIZATIONS:
        fail("quantization", f"must be None or one of {QUANTIZATIONS}", quantization)
    if not isinstance(model, keras.Model):
        fail("model", "must be a keras.Model", type(model).__name__)
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        fail("path", "must be a non-empty file path", path)
    if quantization == "int8" and representative_dataset is None:
        fail("representative_dataset", "is required for full-integer (int8) quantization",
              representative_dataset)
    if (isinstance(num_calibration_examples, bool) or not isinstance(num_calibration_examples, int)
            or num_calibration_examples < 1):
        fail("num_calibration_examples", "must be a positive integer", num_calibration_examples)
    path = os.fspath(path)
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "refusing to overwrite an existing file", path)
    export_tflite_variants(model, {path: quantization}, representative_dataset,
                           num_calibration_examples)
    return path


def export_tflite_variants(model, targets, representative_dataset=None,
                           num_calibration_examples: int = 200, *, saved_model_dir=None):
    """Write several TFLite variants of ``model`` from ONE traced SavedModel.

    ``targets`` maps destination paths to quantizations (see :func:`export_tflite`, whose
    checks the caller has made); tracing is the slow part of a conversion, so a report or a
    sweep converting to float32, float16, dynamic and int8 traces the model once.
    ``saved_model_dir``: a SavedModel of this model already written by
    :func:`keras_cnns.export.saved_model` (stock ops only), whose ``serve`` endpoint (the
    float32 forward pass of the main output) is converted instead of tracing the model again.
    """
    import tensorflow as tf

    from keras_cnns.export._savedmodel import _verify_stock_only, write_forward_saved_model
    from keras_cnns.ops import stock_ops_only

    existing = [p for p in targets if os.path.lexists(p)]
    if existing:
        raise FileExistsError(errno.EEXIST, "refusing to overwrite an existing file", existing[0])
    from keras_cnns.models.heads import served_model

    model = served_model(model)
    with tempfile.TemporaryDirectory(prefix="keras_cnns_tflite_") as workdir:
        if saved_model_dir is None:
            saved = os.path.join(workdir, "saved_model")
            with stock_ops_only():
                write_forward_saved_model(model, saved)  # one trace (model.export: five)
        else:
            saved = os.fspath(saved_model_dir)
        _verify_stock_only(saved)
        flatbuffers = {}
        for path, quantization in targets.items():
            flatbuffers[path] = _convert(tf, saved, model, quantization, representative_dataset,
                                         num_calibration_examples)

    for path, flatbuffer in flatbuffers.items():
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".tmp-{uuid.uuid4().hex}-{os.path.basename(path)}")
        try:
            with open(tmp, "wb") as f:
                f.write(flatbuffer)
            _publish_noreplace(tmp, path)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    return list(targets)


def _convert(tf, saved, model, quantization, representative_dataset, num_calibration_examples):
    # the forward pass: ``serve`` is the endpoint both Keras' export and ours write
    converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["serve"])
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        rep = representative_dataset
        if callable(rep) and not isinstance(rep, tf.data.Dataset):
            converter.representative_dataset = rep
        else:
            converter.representative_dataset = (
                lambda: _single_examples(rep, num_calibration_examples))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        flatbuffer = converter.convert()
    except Exception as exc:  # ConverterError: name what TFLite cannot take
        ops, layers = _unsupported(exc, model)
        if not ops:
            raise
        where = (f"layer{'s' if len(layers) > 1 else ''} "
                 + ", ".join(repr(n) for n in layers)) if layers else "the model"
        raise UnsupportedByTFLiteError(
            f"{where} of {model.name!r} needs TensorFlow op(s) {ops} that TFLite's builtin "
            "op set does not have, so the model cannot run in the TFLite interpreter as "
            "is: replace the layer by builtin-op equivalents (nothing was written)",
            ops=ops, layers=layers) from exc
    return flatbuffer


#: The name the library documents: ``keras_cnns.export.tflite(model, path, quantization=...)``.
tflite = export_tflite


def _interpreter(path, num_threads: Optional[int] = None):
    import tensorflow as tf

    with warnings.catch_warnings():  # "tf.lite.Interpreter is deprecated" (ai_edge_litert)
        warnings.simplefilter("ignore", UserWarning)
        return tf.lite.Interpreter(model_path=os.fspath(path), num_threads=num_threads)


def _quantize_input(x, detail) -> np.ndarray:
    """``x`` as the input tensor takes it: int8/uint8 with its scale and zero point."""
    if not np.issubdtype(detail["dtype"], np.integer):
        return x
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero), info.min, info.max).astype(detail["dtype"])


def prepared_interpreter(path, x, num_threads: Optional[int] = None):
    """``(interpreter, output detail)``: ``path`` loaded (default delegate), resized to ``x``'s
    shape, allocated, and ``x`` (float32, quantized where the input is integer) set."""
    x = np.asarray(x, dtype=np.float32)
    interpreter = _interpreter(path, num_threads)
    inp = interpreter.get_input_details()[0]
    if tuple(inp["shape"]) != x.shape:
        interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], _quantize_input(x, inp))
    return interpreter, interpreter.get_output_details()[0]


def run_tflite(path, x) -> np.ndarray:
    """Run a single-input, single-output ``.tflite`` model on a batch ``x`` (float32).

    Quantized (int8/uint8) inputs and outputs are (de)quantized with the tensors' scale and zero
    point, so every variant takes and returns float arrays.
    """
    interpreter, out = prepared_interpreter(path, x)
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])
    if np.issubdtype(out["dtype"], np.integer):
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y
