"""tf_keras side of :mod:`keras_cnns.export._tfmot` (run as a script, never imported by it).

``python _tfmot_child.py WORKDIR [WORKDIR ...]`` (one per model) with
``TF_USE_LEGACY_KERAS=1``. Imports only TensorFlow, tf_keras, tensorflow_model_optimization,
NumPy, the standard library and the translation table next to it (``_tfmot_table.py``, as a
top-level module: not keras_cnns, not Keras 3), whose builders turn each spec entry into tf_keras
layers, this module's own among them (``GroupConv``, ``EdgePad``, ``ChannelSplit``). Reads
``spec.json``, ``weights.npz``, ``data.npz`` and ``config.json`` from WORKDIR, rebuilds the model
with tf_keras layers, checks it against the Keras 3 probe outputs, runs the pruning / QAT methods
and writes ``result.json`` plus its ``.tflite`` / ``.npz`` files there. On failure
``result.json`` holds ``{"error": ...}`` and the exit code is 1.
"""

import gzip
import json
import os
import sys
import time
import traceback

if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    sys.stderr.write("_tfmot_child.py must run with TF_USE_LEGACY_KERAS=1\n")
    sys.exit(2)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # the script's directory (absent with python -P / PYTHONSAFEPATH)
    sys.path.insert(0, _HERE)
import _tfmot_table  # noqa: E402  (keras_cnns/export/_tfmot_table.py, without keras_cnns)

L = tf_keras.layers


class EdgePad(L.Layer):
    """Repeat the last row ``pads[0]`` times and the last column ``pads[1]`` times (SqueezeNet's
    ceil-mode pooling; keras_cnns' CeilModeMaxPooling2D)."""

    def __init__(self, pads, **kwargs):
        super().__init__(**kwargs)
        self.pads = [int(p) for p in pads]

    def call(self, x):
        ph, pw = self.pads
        if ph:
            x = tf.concat([x] + [x[:, -1:]] * ph, axis=1)
        if pw:
            x = tf.concat([x] + [x[:, :, -1:]] * pw, axis=2)
        return x

    def get_config(self):
        return dict(super().get_config(), pads=self.pads)


class ChannelSplit(L.Layer):
    """ShuffleNet v2's channel split into ``parts`` equal parts (keras_cnns' ChannelSplit)."""

    def __init__(self, parts=2, **kwargs):
        super().__init__(**kwargs)
        self.parts = int(parts)

    def call(self, x):
        w = x.shape[-1] // self.parts
        return [x[..., i * w:(i + 1) * w] for i in range(self.parts)]

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape)
        return [shape[:-1].concatenate([shape[-1] // self.parts])] * self.parts

    def get_config(self):
        return dict(super().get_config(), parts=self.parts)


class GroupConv(L.Layer, tfmot.sparsity.keras.PrunableLayer):
    """A grouped convolution as one ``tf.nn.conv2d`` per group (split -> conv -> concat), with
    one kernel in Keras' grouped layout ``[kh, kw, C / groups, filters]`` (so weights copy as
    they are). tf_keras' ``Conv2D(groups=)`` would do, but TensorFlow's Eigen CPU kernels
    (oneDNN off, the default on AMD CPUs) have no gradient for grouped convolutions ("Gradients
    for grouped convolutions are not supported on CPU"): fine-tuning must work on every CPU.
    Prunable (``get_prunable_weights``) and quantised like a Conv2D (GroupConvQuantizeConfig)."""

    def __init__(self, filters, kernel_size, groups, strides=(1, 1), padding="valid",
                 dilation_rate=(1, 1), use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.groups = int(filters), int(groups)
        self.kernel_size = tuple(int(k) for k in np.broadcast_to(kernel_size, (2,)))
        self.strides = tuple(int(k) for k in np.broadcast_to(strides, (2,)))
        self.dilation_rate = tuple(int(k) for k in np.broadcast_to(dilation_rate, (2,)))
        self.padding, self.use_bias = str(padding), bool(use_bias)

    def build(self, input_shape):
        cin = int(input_shape[-1])
        self.kernel = self.add_weight(
            name="kernel", shape=self.kernel_size + (cin // self.groups, self.filters),
            initializer="glorot_uniform")
        self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
                     if self.use_bias else None)
        super().build(input_shape)

    def call(self, x):
        xs = tf.split(x, self.groups, axis=-1)
        ks = tf.split(self.kernel, self.groups, axis=-1)
        y = tf.concat([tf.nn.conv2d(xi, ki, self.strides, self.padding.upper(),
                                    dilations=self.dilation_rate) for xi, ki in zip(xs, ks)],
                      axis=-1)
        return y + self.bias if self.use_bias else y

    def get_prunable_weights(self):
        return [self.kernel]

    def get_config(self):
        return dict(super().get_config(), filters=self.filters, kernel_size=self.kernel_size,
                    groups=self.groups, strides=self.strides, padding=self.padding,
                    dilation_rate=self.dilation_rate, use_bias=self.use_bias)


class GroupConvQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """8-bit QAT of :class:`GroupConv` as tfmot's default config does a Conv2D: the kernel through
    a last-value quantizer, the output through a moving-average one."""

    def get_weights_and_quantizers(self, layer):
        q = tfmot.quantization.keras.quantizers
        return [(layer.kernel, q.LastValueQuantizer(num_bits=8, symmetric=True,
                                                    narrow_range=True, per_axis=False))]

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        layer.kernel = quantize_weights[0]

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        q = tfmot.quantization.keras.quantizers
        return [q.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                         narrow_range=False)]

    def get_config(self):
        return {}


class NoOpQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """Pass-through QuantizeConfig for layers without a default 8-bit config (TF MOT guide,
    "Quantization aware training comprehensive guide", modify-quantization section)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


CUSTOM = {"EdgePad": EdgePad, "ChannelSplit": ChannelSplit, "GroupConv": GroupConv,
          "NoOpQuantizeConfig": NoOpQuantizeConfig,
          "GroupConvQuantizeConfig": GroupConvQuantizeConfig}


BUILDERS = _tfmot_table.builders()


def make_layer(kind, args, name):
    """One tf_keras layer (or ``fn(inputs) -> tensor`` for composite kinds): the table's builder
    of ``kind``, given this module (``L`` and the custom layers above)."""
    build = BUILDERS.get(kind)
    if build is None:
        raise ValueError(f"unknown layer kind {kind!r} for layer {name!r}")
    return build(sys.modules[__name__], dict(args), name)


def build(spec, weights):
    """The tf_keras functional model of ``spec`` with ``weights`` loaded."""
    tensors = {}
    inp = None
    for layer in spec["layers"]:
        name, kind = layer["name"], layer["kind"]
        if kind == "InputLayer":
            inp = L.Input(shape=tuple(layer["args"]["shape"]), name=name)
            tensors[name] = [inp]
            continue
        ins = [tensors[n][i] for n, i in layer["inbound"]]
        fn = make_layer(kind, layer["args"], name)
        y = fn(ins if kind in _tfmot_table.MULTI_INPUT else ins[0])
        tensors[name] = y if isinstance(y, list) else [y]
    out_name, out_index = spec["output"]
    model = tf_keras.Model(inp, tensors[out_name][out_index], name=spec["name"])
    for layer in spec["layers"]:
        if layer["n_weights"]:
            model.get_layer(layer["name"]).set_weights(
                [weights[f"{layer['name']}::{i}"] for i in range(layer["n_weights"])])
    return model


PRUNABLE = (L.Conv2D, L.DepthwiseConv2D, L.Dense, GroupConv)


def _kernel(layer):
    return layer.depthwise_kernel if isinstance(layer, L.DepthwiseConv2D) else layer.kernel


def sparsity(model):
    """Fraction of zeros over every Conv2D / DepthwiseConv2D / Dense kernel."""
    zeros = total = 0
    for layer in model.layers:
        if isinstance(layer, PRUNABLE):
            k = _kernel(layer).numpy()
            zeros += int(np.sum(k == 0))
            total += k.size
    return zeros / max(total, 1)


def to_tflite(model, int8_data=None):
    """Float32 TFLite bytes, or (int8 with ``Optimize.DEFAULT``) ``(bytes, int8_io)``."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8_data is None:
        return conv.convert()

    def rep():
        for i in range(min(len(int8_data), 32)):
            yield [int8_data[i:i + 1]]

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    try:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return conv.convert(), True
    except Exception as e:  # noqa: BLE001 - fall back to float I/O and say so
        sys.stderr.write(f"int8 input/output conversion failed ({e}); using float I/O\n")
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        return conv.convert(), False


def run_tflite(content, x):
    """Outputs (dequantised to float) of a TFLite flatbuffer on ``x`` (default delegate)."""
    interp = tf.lite.Interpreter(model_content=content)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    xin = x
    if inp["dtype"] != np.float32:
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        xin = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
    interp.set_tensor(inp["index"], xin)
    interp.invoke()
    y = interp.get_tensor(out["index"])
    if out["dtype"] != np.float32:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y


def accuracy(pred, y):
    return float(np.mean(np.argmax(pred, axis=-1) == y))


EAGER_MAX_STEPS = int(os.environ.get("KERAS_CNNS_TFMOT_EAGER_MAX_STEPS", "8"))


def compile_model(model, cfg, run_eagerly=False):
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=cfg["from_logits"])
    model.compile(optimizer=tf_keras.optimizers.Adam(cfg["learning_rate"]), loss=loss,
                  metrics=["accuracy"], run_eagerly=run_eagerly)


T0 = time.perf_counter()


def log(msg):
    """Progress line on stderr (the parent shows it with ``verbose=True``)."""
    sys.stderr.write(f"[tfmot child {time.perf_counter() - T0:6.1f}s] {msg}\n")
    sys.stderr.flush()


def write(workdir, fname, content):
    with open(os.path.join(workdir, fname), "wb") as f:
        f.write(content)


def copy_weights(src, dst):
    """Copy ``src``'s weights into the (wrapped) layers of its clone ``dst``, by layer name."""
    for layer in dst.layers:
        inner = getattr(layer, "layer", layer)
        weights = src.get_layer(inner.name).get_weights()
        if weights:
            inner.set_weights(weights)


def predict(model, x, batch=256):
    """Inference-mode outputs, eagerly in batches (no ``predict`` trace for tiny test sets)."""
    return np.concatenate([model(x[i:i + batch], training=False).numpy()
                           for i in range(0, len(x), batch)])


def fit(model, data, cfg, callbacks=()):
    steps = int(np.ceil(len(data["x_train"]) / cfg["batch_size"])) * cfg["epochs"]
    # tracing a train step of a wrapped (pruning / fake-quant) model costs seconds: for a few
    # steps running them eagerly is faster
    compile_model(model, cfg, run_eagerly=steps <= EAGER_MAX_STEPS)
    model.fit(data["x_train"], data["y_train"], batch_size=cfg["batch_size"],
              epochs=cfg["epochs"], shuffle=True, verbose=2 if cfg["verbose"] else 0,
              callbacks=list(callbacks))


def fresh_copy(base):
    """A copy of ``base`` with its own layers and weights. tfmot's wrappers wrap the layer
    objects they are given, and a clone function that returns a layer shares it: fine-tuning a
    pruned clone of ``base`` itself would change ``base``, and the next method would start from
    the previous one's weights (measured: QAT after prune80 inherited its 0.51 accuracy)."""
    with tf_keras.utils.custom_object_scope(CUSTOM):
        copy = tf_keras.models.clone_model(base)
    copy.set_weights(base.get_weights())
    return copy


def prune(base, spec, data, cfg, target, method, workdir):
    """Magnitude pruning to ``target`` (TF MOT guide "Pruning in Keras example")."""
    base = fresh_copy(base)
    cfg = dict(cfg, learning_rate=cfg.get("prune_learning_rate", cfg["learning_rate"]))
    tf_keras.utils.set_random_seed(cfg["seed"])
    steps = int(np.ceil(len(data["x_train"]) / cfg["batch_size"])) * cfg["epochs"]
    # reach the target at 60% of the fine-tuning (mask updates every step, or 10 times on the
    # way), then train at the final sparsity: ending the ramp at the last step left no steps to
    # recover (MobileNet 0.5 at 50%: 0.17-0.28 held-out accuracy)
    ramp = max(int(0.6 * steps), 1)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=target, begin_step=0,
        end_step=ramp, frequency=1 if ramp < 20 else max(ramp // 10, 1))

    # the classifier (the last Conv2D / Dense) stays dense: SqueezeNet's conv10 feeds a ReLU
    # before global pooling, and pruning 80% of its 512 x 10 kernel left class maps negative
    # everywhere (dead, 0.34 held-out accuracy); it holds < 1% of the weights
    prunable = [layer.name for layer in base.layers if isinstance(layer, PRUNABLE)]
    keep = set(prunable[-1:]) if not cfg.get("prune_classifier", False) else set()

    def wrap(layer):
        if isinstance(layer, PRUNABLE) and layer.name not in keep:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    with tfmot.sparsity.keras.prune_scope(), tf_keras.utils.custom_object_scope(CUSTOM):
        pruned = tf_keras.models.clone_model(base, clone_function=wrap)
    copy_weights(base, pruned)
    log(f"{method}: fine-tuning {steps} steps")
    fit(pruned, data, cfg, [tfmot.sparsity.keras.UpdatePruningStep()])
    # tfmot prunes the kernels its registry names (Conv2D / Dense kernels; DepthwiseConv2D has
    # none in tfmot 0.8): measure the sparsity of exactly those
    kernels = [w for layer in pruned.layers if hasattr(layer, "pruning_vars")
               for w, _, _ in layer.pruning_vars]
    zeros = sum(int(np.sum(w.numpy() == 0)) for w in kernels)
    measured = zeros / max(sum(int(np.prod(w.shape)) for w in kernels), 1)
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    recalibrate_batch_norm(stripped, data["x_train"], cfg["batch_size"])
    acc = accuracy(predict(stripped, data["x_test"]), data["y_test"])
    log(f"{method}: converting to float32 TFLite")
    content = to_tflite(stripped)
    tfl_name = f"{method}.tflite"
    write(workdir, tfl_name, content)
    tfl_pred = run_tflite(content, data["x_test"])
    out_w = {}
    for layer in spec["layers"]:
        for i, w in enumerate(stripped.get_layer(layer["name"]).get_weights()
                              if layer["n_weights"] else []):
            out_w[f"{layer['name']}::{i}"] = w
    np.savez(os.path.join(workdir, f"{method}_weights.npz"), **out_w)
    return dict(sparsity=measured, kernel_sparsity=sparsity(stripped), kept_dense=sorted(keep),
                accuracy=acc,
                tflite_accuracy=accuracy(tfl_pred, data["y_test"]), tflite_file=tfl_name,
                weights_file=f"{method}_weights.npz",
                probe_outputs=predict(stripped, data["probes"]).tolist(), bytes=len(content),
                gzip_bytes=len(gzip.compress(content, 9)))


def recalibrate_batch_norm(model, x, batch_size):
    """Precise BatchNorm after fine-tuning, as keras_cnns' training loop does after training
    (keras_cnns.training.recalibrate_batch_norm): every BatchNorm's moving statistics become the
    equal-weight average of its batch statistics over the training images, with the weights
    fixed. A few dozen fine-tuning steps at momentum 0.99 leave them a blend of the old and the
    new weights' statistics, which collapsed pruned MobileNet 0.5 to 0.17 held-out accuracy."""
    bns = [getattr(layer, "layer", layer) for layer in model.layers]
    bns = [layer for layer in bns if isinstance(layer, L.BatchNormalization)]
    if not bns:
        return
    saved = [layer.momentum for layer in bns]
    try:
        for i, start in enumerate(range(0, len(x), batch_size), 1):
            for layer in bns:
                layer.momentum = 1.0 - 1.0 / i
            model(x[start:start + batch_size], training=True)
    finally:
        for layer, momentum in zip(bns, saved):
            layer.momentum = momentum


def init_quantization_ranges(base, qmodel, x, limit=512):
    """Start every activation fake-quant range at the float model's observed range.

    tfmot's moving-average quantizers start at [-6, 6] and move 0.1% per training step (EMA
    decay 0.999): a fine-tuning of a few hundred steps leaves activations above 6 clipped --
    SqueezeNet with bypass has fire-module outputs of 10-100, and measured on the digits its QAT
    model fell to 0.61 held-out accuracy from 0.99 that way. Initialising the ranges from the
    float model on training images (as post-training calibration does) and letting QAT refine
    them from there keeps the fine-tuning a refinement."""
    names = [layer.name for layer in base.layers
             if not isinstance(layer, L.InputLayer) and not isinstance(layer.output, list)]
    probe = tf_keras.Model(base.input, [base.get_layer(n).output for n in names])
    outs = probe.predict(x[:limit], batch_size=128, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    ranges = {n: (min(0.0, float(np.min(o))), max(0.0, float(np.max(o))))
              for n, o in zip(names, outs)}
    x_range = (min(0.0, float(np.min(x[:limit]))), max(0.0, float(np.max(x[:limit]))))
    for layer in qmodel.layers:
        inner = getattr(layer, "layer", None)
        if inner is not None and inner.name in ranges:
            lo, hi = ranges[inner.name]
            prefixes = ("output", "post_activation")
        elif type(layer).__name__ == "QuantizeLayer":
            (lo, hi), prefixes = x_range, (layer.name,)
        else:
            continue
        for v in layer.non_trainable_weights:
            short = v.name.split("/")[-1].split(":")[0]
            for prefix in prefixes:
                if short == f"{prefix}_min":
                    v.assign(lo)
                elif short == f"{prefix}_max":
                    v.assign(hi)


def qat(base, spec, data, cfg, method, workdir):
    """Quantisation-aware training, int8 TFLite (TF MOT guide "Quantization aware training in
    Keras example"); layers without a default 8-bit config pass through NoOpQuantizeConfig."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry)

    base = fresh_copy(base)
    cfg = dict(cfg, learning_rate=cfg.get("qat_learning_rate", cfg["learning_rate"]),
               epochs=cfg.get("qat_epochs", cfg["epochs"]))
    tf_keras.utils.set_random_seed(cfg["seed"])
    reg = registry.Default8BitQuantizeRegistry()
    qk = tfmot.quantization.keras

    def annotate(layer):
        if isinstance(layer, L.InputLayer):
            return layer
        if reg.supports(layer):
            return qk.quantize_annotate_layer(layer)
        if isinstance(layer, GroupConv):
            return qk.quantize_annotate_layer(layer, quantize_config=GroupConvQuantizeConfig())
        return qk.quantize_annotate_layer(layer, quantize_config=NoOpQuantizeConfig())

    with qk.quantize_scope(CUSTOM):
        annotated = tf_keras.models.clone_model(base, clone_function=annotate)
        copy_weights(base, annotated)
        qmodel = qk.quantize_apply(annotated)
    init_quantization_ranges(base, qmodel, data["x_train"])
    before = accuracy(predict(qmodel, data["x_test"]), data["y_test"])
    log(f"{method}: held-out accuracy with fake quantisation before fine-tuning {before:.4f}")
    log(f"{method}: fine-tuning")
    fit(qmodel, data, cfg)
    recalibrate_batch_norm(qmodel, data["x_train"], cfg["batch_size"])
    keras_pred = predict(qmodel, data["x_test"])
    log(f"{method}: converting to int8 TFLite")
    content, int8_io = to_tflite(qmodel, int8_data=data["x_train"])
    tfl_name = f"{method}.tflite"
    write(workdir, tfl_name, content)
    tfl_pred = run_tflite(content, data["x_test"])
    k_cls, t_cls = np.argmax(keras_pred, -1), np.argmax(tfl_pred, -1)
    return dict(sparsity=None, kernel_sparsity=None, accuracy=accuracy(keras_pred, data["y_test"]),
                tflite_accuracy=accuracy(tfl_pred, data["y_test"]),
                tflite_keras_agreement=float(np.mean(k_cls == t_cls)),
                test_predictions={"keras": k_cls.tolist(), "tflite": t_cls.tolist()},
                int8_io=int8_io, tflite_file=tfl_name, bytes=len(content),
                gzip_bytes=len(gzip.compress(content, 9)))


def main(workdir):
    with open(os.path.join(workdir, "spec.json")) as f:
        spec = json.load(f)
    with open(os.path.join(workdir, "config.json")) as f:
        cfg = json.load(f)
    with np.load(os.path.join(workdir, "weights.npz")) as z:
        weights = {k: z[k] for k in z.files}
    with np.load(os.path.join(workdir, "data.npz")) as z:
        data = {k: z[k] for k in z.files}
    with tf_keras.utils.custom_object_scope(CUSTOM):
        base = build(spec, weights)
    diff = float(np.max(np.abs(predict(base, data["probes"]) - data["probe_out"])))
    log(f"{spec['name']}: rebuilt in tf_keras, max abs diff to Keras 3 {diff:.3g}")
    result = dict(translation_max_abs_diff=diff, methods={})
    if cfg["methods"]:
        scale = max(1.0, float(np.max(np.abs(data["probe_out"]))))
        if diff > cfg.get("tolerance", 1e-3) * scale:
            raise RuntimeError(f"the tf_keras rebuild of {spec['name']!r} does not reproduce the "
                               f"Keras 3 outputs (max abs diff {diff:.3g}); not running tfmot")
        result["baseline_accuracy"] = accuracy(predict(base, data["x_test"]), data["y_test"])
        baseline = to_tflite(base)
        result["baseline_bytes"] = len(baseline)
        result["baseline_gzip_bytes"] = len(gzip.compress(baseline, 9))
    for method in cfg["methods"]:
        t0 = time.perf_counter()
        if method == "qat":
            r = qat(base, spec, data, cfg, method, workdir)
        else:
            r = prune(base, spec, data, cfg, int(method[5:]) / 100.0, method, workdir)
        r["seconds"] = time.perf_counter() - t0
        log(f"{method}: done in {r['seconds']:.1f}s")
        result["methods"][method] = r
    with open(os.path.join(workdir, "result.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    if len(sys.argv) < 2 or not all(os.path.isdir(d) for d in sys.argv[1:]):
        sys.stderr.write("usage: TF_USE_LEGACY_KERAS=1 python _tfmot_child.py WORKDIR [...]\n")
        sys.exit(2)
    status = 0
    for wd in sys.argv[1:]:  # one workdir per model
        try:
            main(wd)
        except Exception as e:  # noqa: BLE001 - reported to the parent through result.json
            traceback.print_exc()
            with open(os.path.join(wd, "result.json"), "w") as f:
                json.dump({"error": f"{type(e).__name__}: {e}"}, f)
            status = 1
    sys.exit(status)
