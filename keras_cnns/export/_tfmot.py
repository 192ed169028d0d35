"""Magnitude pruning and quantisation-aware training with tensorflow-model-optimization (tfmot).

Why two processes. tfmot 0.8 wraps and clones *tf_keras* (legacy Keras 2) layers only: its
pruning wrapper and quantisation registry reject Keras 3 objects, and tf_keras is what
``tf.keras`` means only when ``TF_USE_LEGACY_KERAS=1`` is set *before* TensorFlow is first
imported. The rest of keras_cnns (its layers, training loop, Keras Tuner) is Keras 3, and Keras
Tuner rejects tf_keras models. One interpreter cannot hold both views of ``tf.keras``, so this
module (Keras 3 side) describes the model as a small JSON graph spec plus an ``.npz`` of its
weights (in tf_keras' layout), and one child process
(:mod:`keras_cnns.export._tfmot_child`, run with ``TF_USE_LEGACY_KERAS=1`` and importing
neither keras_cnns nor Keras 3) rebuilds it with stock tf_keras layers, checks that the rebuilt
model reproduces the Keras 3 outputs on probe inputs, and runs the requested methods:

* ``"prune<P>"``: ``tfmot.sparsity.keras.prune_low_magnitude`` on every Conv2D /
  DepthwiseConv2D / Dense kernel with a ``PolynomialDecay`` schedule to ``P`` % sparsity,
  fine-tuning with ``UpdatePruningStep``, then ``strip_pruning`` and a float32 TFLite file whose
  gzip size shows the saving (pruning alone does not shrink the dense file). TF Model
  Optimization guide "Pruning in Keras example",
  https://www.tensorflow.org/model_optimization/guide/pruning/pruning_with_keras.
* ``"qat"``: ``tfmot.quantization.keras.quantize_model`` (layers without a default quantize
  config pass through a no-op ``QuantizeConfig`` inside ``quantize_scope``), fine-tuning, and an
  int8 TFLite file (``Optimize.DEFAULT``, representative data from ``train``) evaluated in
  ``tf.lite.Interpreter``. Guide "Quantization aware training in Keras example",
  https://www.tensorflow.org/model_optimization/guide/quantization/training_example.

The stripped pruned weights come back in Keras 3's layout; :func:`load_pruned_weights` puts them
into a copy of the Keras 3 model.

Translation (whitelist, exact): the rows of :mod:`keras_cnns.export._tfmot_table`, the one table
both processes import (Keras 3 class -> spec entry here, spec entry -> tf_keras layer in the
child), which lists them and where a new layer type is taught. Any other layer is a ValueError
naming it, raised before the child starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from keras_cnns._checks import fail, is_int
from keras_cnns.export import _tfmot_table

__all__ = ["check_translation", "graph_spec", "load_pruned_weights", "optimize_with_tfmot",
           "parse_method"]

#: Default fine-tuning learning rates (Adam); see optimize_with_tfmot.
PRUNE_LEARNING_RATE = 1e-3
QAT_LEARNING_RATE = 1e-5

CHILD_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_tfmot_child.py")
_METHOD_RE = re.compile(r"^prune(\d{1,2})$")
_N_PROBES = 4


def parse_method(method: Any) -> Tuple[str, Optional[float]]:
    """``"prune<P>"`` (``1 <= P <= 99``) -> ``("prune", P / 100)``; ``"qat"`` ->
    ``("qat", None)``; anything else a ValueError naming ``methods``."""
    if isinstance(method, str):
        if method == "qat":
            return "qat", None
        m = _METHOD_RE.match(method)
        if m and 1 <= int(m.group(1)) <= 99 and not m.group(1).startswith("0"):
            return "prune", int(m.group(1)) / 100.0
    fail("methods", "entries must be 'qat' or 'prune<P>' with an integer percentage P in 1..99 "
         "(e.g. 'prune50')", method)


# --------------------------------------------------------------------------- graph spec


def _inbound(layer):
    """``[[layer name, output index], ...]`` of the layer's single call."""
    nodes = layer._inbound_nodes
    if len(nodes) != 1:
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}) is called "
                         f"{len(nodes)} times; only layers called once are translated.")
    return [[t._keras_history.operation.name, int(t._keras_history.tensor_index)]
            for t in nodes[0].input_tensors]


def _check_model(model):
    import keras

    if not isinstance(model, keras.Model):
        fail("model", "must be a Keras 3 `keras.Model` (functional; tf_keras models are not "
             "accepted)", model)
    if isinstance(model, keras.Sequential):
        fail("model", "must be a functional Keras 3 model (wrap a Sequential model: "
             "keras.Model(seq.inputs, seq.outputs))", model.name)
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs or not model.layers \
            or not isinstance(model.layers[0], keras.layers.InputLayer):
        fail("model", "must be a functional Keras 3 model", model.name)
    if len(inputs) != 1 or len(outputs) != 1:
        fail("model", f"must have one input and one output (has {len(model.inputs)} inputs, "
             f"{len(model.outputs)} outputs; keras_cnns.models.heads.served_model(model) is "
             "the main output alone)", model.name)


def graph_spec(model) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """Describe a single-input single-output Keras 3 functional model for the tf_keras child.

    Args:
        model: the Keras 3 ``keras.Model``.

    Returns:
        ``(spec, weights)``: ``spec`` is JSON-able, ``{"name", "input_shape", "output",
        "layers": [{"name", "kind", "args", "inbound": [[name, index], ...], "n_weights",
        "k3_shapes"}, ...]}`` in topological order; ``weights`` maps ``"{layer}::{i}"`` to that
        layer's ``i``-th weight in tf_keras' layout (``k3_shapes`` are the Keras 3 shapes).

    Raises:
        ValueError: ``model`` is not a one-input one-output Keras 3 model, or it has a layer
            outside the whitelist (message names the layer and its class), is called more than
            once, or uses an untranslatable option.
    """
    import keras

    _check_model(model)
    table = _tfmot_table.translators()
    layers, weights = [], {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            shape = list(layer.batch_shape[1:])
            layers.append(dict(name=layer.name, kind="InputLayer", args={"shape": shape},
                               inbound=[], n_weights=0, k3_shapes=[]))
            continue
        fn = table.get(type(layer))
        if fn is None:
            raise ValueError(f"Layer '{layer.name}' of class {type(layer).__module__}."
                             f"{type(layer).__name__} has no tf_keras translation for tfmot "
                             "(supported: " + ", ".join(sorted({c.__name__ for c in table}))
                             + ").")
        inbound = _inbound(layer)
        kind, args, ws = fn(layer, layer.get_config())
        for i, arr in enumerate(ws):
            weights[f"{layer.name}::{i}"] = np.ascontiguousarray(arr, dtype=np.float32)
        layers.append(dict(name=layer.name, kind=kind, args=args, inbound=inbound,
                           n_weights=len(ws),
                           k3_shapes=[list(v.shape) for v in layer.weights]))
    out = model.outputs[0]._keras_history
    spec = dict(name=model.name, input_shape=list(model.inputs[0].shape[1:]),
                output=[out.operation.name, int(out.tensor_index)], layers=layers)
    json.dumps(spec)  # JSON-able (raises here, not in the child)
    return spec, weights


# --------------------------------------------------------------------------- API


def _check_split(arg, data, input_shape, classes):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        fail(arg, "must be a pair (x, y) of NumPy arrays", type(data).__name__)
    x, y = np.asarray(data[0]), np.asarray(data[1])
    want = tuple(input_shape)
    if x.ndim != len(want) + 1 or any(d is not None and d != s for d, s in zip(want, x.shape[1:])):
        fail(arg, f"x must have shape (n, {', '.join(str(d) for d in want)}) for this model",
             f"x.shape={x.shape}")
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        fail(arg, "x must be a finite floating-point array", f"x.dtype={x.dtype}")
    if y.ndim != 1 or len(y) != len(x) or len(x) < 1:
        fail(arg, "y must be a 1-D array of integer labels, one per x row (n >= 1)",
             f"y.shape={y.shape}, x.shape={x.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= classes:
        fail(arg, f"y must hold integer labels in [0, {classes})",
             f"y.dtype={y.dtype}, range=[{y.min()}, {y.max()}]")
    return x.astype(np.float32), y.astype(np.int64)


def _from_logits(spec):
    last = next(l for l in spec["layers"] if l["name"] == spec["output"][0])
    kind, args = last["kind"], last["args"]
    return not (kind == "Softmax" or args.get("activation") == "softmax")


def optimize_with_tfmot(model, train, test, *,
                        methods: Sequence[str] = ("prune50", "prune80", "qat"),
                        epochs: int = 2, qat_epochs: int = 1, batch_size: int = 64,
                        learning_rate: Optional[float] = None,
                        output_dir: Optional[str] = None, timeout: float = 1800,
                        verbose: bool = False) -> List[Dict[str, Any]]:
    """Prune and/or quantisation-aware-train a Keras 3 model with tfmot in a tf_keras child.

    Args:
        model: one-input one-output Keras 3 functional ``keras.Model`` of translatable layers
            (module docstring), a classifier with a ``[n, classes]`` output.
        train, test: ``(x, y)`` NumPy arrays, ``x`` float32 preprocessed as the model expects
            (shape ``(n, *model.input_shape[1:])``), ``y`` integer labels in ``[0, classes)``.
            ``train`` fine-tunes (and is the representative data of the int8 conversion),
            ``test`` gives the held-out accuracies.
        methods: ``"prune<P>"`` (target sparsity ``P`` %, ``1 <= P <= 99``) and/or ``"qat"``.
        epochs: pruning fine-tuning epochs per method (each method starts from ``model``'s
            weights).
        qat_epochs: QAT fine-tuning epochs. QAT refines trained weights; on the 1,437 digits a
            longer fine-tuning drifted (SqueezeNet 1.1 with bypass: 0.986 with fake quantisation
            before, 0.983 after 1 epoch, 0.61 after 6).
        batch_size: fine-tuning batch size.
        learning_rate: Adam's learning rate; ``None``: 1e-3 for pruning (the network must
            re-learn around the removed weights: MobileNet 0.5 on the digits, 6 epochs, 80%
            sparsity: 0.30 held-out accuracy at 1e-4, 0.86 at 1e-3) and 1e-5 for QAT (a
            refinement of trained weights: 0.74 at 1e-4, 0.90 at 1e-5, float 0.906).
        output_dir: where the ``.tflite`` files (``{model}_{method}.tflite``) and the pruned
            weights (``{model}_{method}_weights.npz``) are kept; ``None``: nowhere (temporary).
        timeout: seconds the child may run.
        verbose: stream the child's progress (Keras fit logs) to this process's stderr.

    Returns:
        One dict per method, in order: ``method``, ``label`` ("pruned 50%" / "QAT int8"),
        ``target_sparsity`` (``None`` for QAT), ``sparsity`` (measured over the kernels
        tfmot pruned: Conv2D / Dense, all but the classifier), ``kept_dense`` (the classifier,
        the last Conv2D / Dense, left dense: pruning SqueezeNet's ReLU'd class maps 80% killed
        them), ``accuracy`` (tf_keras model after fine-tuning:
        stripped for pruning, fake-quantised for QAT), ``tflite_accuracy``, ``tflite`` (path,
        only with ``output_dir``), ``bytes``, ``gzip_bytes``, ``baseline_gzip_bytes`` (float32
        TFLite of the unmodified model), ``baseline_accuracy`` (the unmodified model on
        ``test``), ``translation_max_abs_diff`` (tf_keras rebuild vs Keras
        3 on probe inputs), ``seconds``; pruning adds ``weights`` (Keras 3 layout, for
        :func:`load_pruned_weights`), QAT ``int8_io`` and ``tflite_keras_agreement`` (argmax
        agreement of the int8 file with the QAT Keras model on ``test``) and
        ``test_predictions`` (``{"keras", "tflite"}`` argmax arrays). Pruning rows also
        carry ``probes``: ``{"inputs", "outputs"}`` of the stripped tf_keras model.

    Raises:
        ValueError: bad argument (message names it) or untranslatable layer (before any child
            starts).
        RuntimeError: the child failed or timed out (message carries its stderr tail).
    """
    _check_model(model)
    if isinstance(methods, str) or not isinstance(methods, (list, tuple)) or not methods:
        fail("methods", "must be a non-empty list or tuple of method names", methods)
    parsed = [parse_method(m) for m in methods]
    if len(set(methods)) != len(methods):
        fail("methods", "must not repeat a method", methods)
    if not is_int(epochs) or epochs < 1:
        fail("epochs", "must be a positive integer", epochs)
    if not is_int(qat_epochs) or qat_epochs < 1:
        fail("qat_epochs", "must be a positive integer", qat_epochs)
    if not is_int(batch_size) or batch_size < 1:
        fail("batch_size", "must be a positive integer", batch_size)
    if learning_rate is not None and (
            isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float))
            or not 0 < learning_rate < float("inf")):
        fail("learning_rate", "must be None or a positive number", learning_rate)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        fail("timeout", "must be a positive number of seconds", timeout)
    if output_dir is not None and not isinstance(output_dir, (str, os.PathLike)):
        fail("output_dir", "must be None or a directory path", output_dir)
    out_shape = model.outputs[0].shape
    if len(out_shape) != 2 or out_shape[-1] is None:
        fail("model", "must output class scores of shape [n, classes]", tuple(out_shape))
    classes = int(out_shape[-1])
    input_shape = tuple(model.inputs[0].shape[1:])
    if None in input_shape:
        fail("model", "must have a static input shape (build it with input_shape=...)", input_shape)
    x_train, y_train = _check_split("train", train, input_shape, classes)
    x_test, y_test = _check_split("test", test, input_shape, classes)

    spec, weights = graph_spec(model)  # ValueError for untranslatable layers, before the child
    probes = _probes(model, x_test)
    config = dict(methods=list(methods), epochs=int(epochs), batch_size=int(batch_size),
                  learning_rate=None if learning_rate is None else float(learning_rate),
                  qat_epochs=int(qat_epochs),
                  prune_learning_rate=PRUNE_LEARNING_RATE if learning_rate is None
                  else float(learning_rate),
                  qat_learning_rate=QAT_LEARNING_RATE if learning_rate is None
                  else float(learning_rate),
                  from_logits=_from_logits(spec),
                  verbose=bool(verbose), seed=0)
    workdir = tempfile.mkdtemp(prefix="keras_cnns_tfmot_")
    try:
        _write_workdir(workdir, model, spec, weights, probes, config,
                       dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test))
        result = _run_child([workdir], timeout, verbose)[0]
        if output_dir is not None:
            os.makedirs(output_dir, exist_ok=True)
        rows = []
        for method, (kind, target) in zip(methods, parsed):
            r = dict(result["methods"][method])
            r.update(method=method, target_sparsity=target,
                     label="QAT int8" if kind == "qat" else f"pruned {round(target * 100)}%",
                     baseline_gzip_bytes=result["baseline_gzip_bytes"],
                     baseline_accuracy=result["baseline_accuracy"],
                     translation_max_abs_diff=result["translation_max_abs_diff"])
            tfl = os.path.join(workdir, r.pop("tflite_file"))
            if output_dir is not None:
                dst = os.path.join(output_dir, f"{spec['name']}_{method}.tflite")
                shutil.copyfile(tfl, dst)
                r["tflite"] = dst
            if "test_predictions" in r:
                r["test_predictions"] = {k: np.asarray(v, np.int64)
                                         for k, v in r["test_predictions"].items()}
            if "probe_outputs" in r:
                r["probes"] = {"inputs": probes,
                               "outputs": np.asarray(r.pop("probe_outputs"), np.float32)}
            wfile = r.pop("weights_file", None)
            if wfile is not None:
                with np.load(os.path.join(workdir, wfile)) as z:
                    r["weights"] = _to_keras3_layout(spec, {k: z[k] for k in z.files})
                if output_dir is not None:
                    np.savez(os.path.join(output_dir, f"{spec['name']}_{method}_weights.npz"),
                             **{f"{n}::{i}": a for n, ws in r["weights"].items()
                                for i, a in enumerate(ws)})
            rows.append(r)
        return rows
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _probes(model, x=None):
    """Probe inputs: up to 4 rows of ``x`` and 2 standard-normal images (fixed seed)."""
    shape = tuple(model.inputs[0].shape[1:])
    rng = np.random.default_rng(0)
    parts = [] if x is None else [np.asarray(x[:_N_PROBES], np.float32)]
    parts.append(rng.normal(size=(2, *shape)).astype(np.float32))
    return np.concatenate(parts)


def _write_workdir(workdir, model, spec, weights, probes, config, arrays):
    probe_out = np.asarray(model(probes, training=False), dtype=np.float32)
    with open(os.path.join(workdir, "spec.json"), "w") as f:
        json.dump(spec, f)
    np.savez(os.path.join(workdir, "weights.npz"), **weights)
    np.savez(os.path.join(workdir, "data.npz"), probes=probes, probe_out=probe_out, **arrays)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config, f)


def _run_child(workdirs, timeout, verbose):
    """Run ONE child (``TF_USE_LEGACY_KERAS=1``) over ``workdirs``; their ``result.json``s."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("PYTHONSTARTUP", None)
    try:
        proc = subprocess.run([sys.executable, CHILD_PATH, *workdirs], env=env,
                              stdout=None if verbose else subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        tail = e.stderr or ""
        tail = tail.decode(errors="replace") if isinstance(tail, bytes) else tail
        raise RuntimeError(f"The tfmot child process timed out after {timeout} s. "
                           f"stderr tail:\n{tail[-3000:]}") from None
    if verbose and proc.stderr:
        sys.stderr.write(proc.stderr)
    results = []
    for wd in workdirs:
        path = os.path.join(wd, "result.json")
        result = None
        if os.path.exists(path):
            with open(path) as f:
                result = json.load(f)
        if proc.returncode != 0 or result is None or "error" in result:
            msg = result.get("error") if isinstance(result, dict) else None
            raise RuntimeError(f"The tfmot child process failed (exit code {proc.returncode})"
                               + (f": {msg}" if msg else "") + ". stderr tail:\n"
                               + (proc.stderr or "")[-3000:])
        results.append(result)
    return results


def check_translation(*models, timeout: float = 600) -> List[float]:
    """Max abs difference between each Keras 3 model and its tf_keras rebuild (one child).

    Each model is translated (:func:`graph_spec`), rebuilt in a single tf_keras child process
    and run on probe inputs (2 standard-normal images, seed 0) in inference mode.

    Args:
        *models: Keras 3 models (one input, one output, static input shape).
        timeout: seconds the child may run.

    Returns:
        ``max |keras3(x) - tf_keras(x)|`` per model, in order.

    Raises:
        ValueError: no model, or a model that cannot be translated (before the child starts).
        RuntimeError: the child failed.
    """
    if not models:
        fail("models", "must name at least one model", models)
    specs = []
    for m in models:
        _check_model(m)
        if None in tuple(m.inputs[0].shape[1:]):
            fail("models", "must have static input shapes", tuple(m.inputs[0].shape))
        specs.append(graph_spec(m))
    root = tempfile.mkdtemp(prefix="keras_cnns_tfmot_check_")
    try:
        dirs = []
        for i, (m, (spec, weights)) in enumerate(zip(models, specs)):
            wd = os.path.join(root, str(i))
            os.makedirs(wd)
            _write_workdir(wd, m, spec, weights, _probes(m), dict(methods=[]), {})
            dirs.append(wd)
        return [r["translation_max_abs_diff"] for r in _run_child(dirs, timeout, False)]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _to_keras3_layout(spec, flat):
    """``{"layer::i": tf_keras array}`` -> ``{layer: [Keras 3 arrays]}`` (reshape back)."""
    out = {}
    for layer in spec["layers"]:
        if layer["n_weights"]:
            out[layer["name"]] = [np.asarray(flat[f"{layer['name']}::{i}"]).reshape(shape)
                                  for i, shape in enumerate(layer["k3_shapes"])]
    return out


def load_pruned_weights(model, result, clone: bool = True):
    """Put a pruning result's stripped weights into the Keras 3 model.

    Args:
        model: the Keras 3 model given to :func:`optimize_with_tfmot`.
        result: one of its pruning rows (with ``"weights"``), or the ``{layer: [arrays]}``
            mapping itself.
        clone: load into a copy (``keras.models.clone_model``) and leave ``model`` unchanged;
            ``False`` loads in place.

    Returns:
        The Keras 3 model holding the pruned weights.

    Raises:
        ValueError: ``result`` has no weights, or they do not fit ``model``.
    """
    import keras

    _check_model(model)
    weights = result.get("weights") if isinstance(result, dict) and "method" in result else result
    if not isinstance(weights, dict) or not weights:
        fail("result", "must be a pruning row of optimize_with_tfmot (with 'weights') or a "
             "{layer name: [arrays]} mapping", type(result).__name__)
    target = model
    if clone:
        target = keras.models.clone_model(model)
        target.set_weights(model.get_weights())
    for name, arrays in weights.items():
        try:
            layer = target.get_layer(name)
        except ValueError:
            fail("result", f"names layer '{name}', which the model does not have", name)
        shapes = [tuple(v.shape) for v in layer.weights]
        if [tuple(np.shape(a)) for a in arrays] != shapes:
            fail("result", f"weights for layer '{name}' must have shapes {shapes}",
                 [tuple(np.shape(a)) for a in arrays])
        layer.set_weights(list(arrays))
    return target
