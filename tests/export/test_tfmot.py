"""tfmot pruning / QAT through the tf_keras child process (keras_cnns.export._tfmot).

Two child processes in all (module fixtures): one checks the tf_keras translation of five
families against their Keras 3 outputs, one prunes and QAT-trains a small model built from the
library's layers (the conversions of a full family take ~10 s each on 2 cores).
"""

import gzip
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnns
from keras_cnns.export import _tfmot, _tfmot_table
from keras_cnns.export._tfmot import (check_translation, graph_spec, load_pruned_weights,
                                      optimize_with_tfmot)
from keras_cnns.layers import BatchNormalization, ChannelShuffle, GroupedDepthwiseConv2D
from keras_cnns.models.squeezenet import CeilModeMaxPooling2D

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:tensorflow.lite.python.interpreter")


def _randomize(model, seed=0):
    """Random kernels / biases / BN statistics, so every layer's translation shows in the output
    (SqueezeNet's conv10 starts at zero and gives the same output for every input)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, mu, var = ws
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.01, b.shape),
                               rng.normal(0, 0.01, mu.shape), rng.uniform(0.5, 2.0, var.shape)])
        elif ws:
            fan_in = int(np.prod(ws[0].shape[:-1]))
            layer.set_weights([rng.normal(0, (2.0 / fan_in) ** 0.5, w.shape) if i == 0
                               else rng.normal(0, 0.01, w.shape) for i, w in enumerate(ws)])
    return model


FAMILIES = [("mobilenet_0_50", (64, 64, 3)), ("squeezenet1_1_simple_bypass", (32, 32, 3)),
            # mixed parity (16x17 / 17x16 at pool1): the edge-repeat pooling, rows and columns
            ("squeezenet1_1_simple_bypass", (33, 36, 3)),
            ("squeezenet1_1_simple_bypass", (36, 33, 3)),
            ("mobilenetv2", (32, 32, 3)), ("shufflenet", (32, 32, 3)),
            ("shufflenet_g8", (32, 32, 3)), ("shufflenetv2", (32, 32, 3))]


@pytest.fixture(scope="module")
def family_models():
    return [_randomize(keras_cnns.create_model(n, input_shape=s, classes=10,
                                               classifier_activation=None)) for n, s in FAMILIES]


@pytest.fixture(scope="module")
def translation_diffs(family_models):
    return check_translation(*family_models)


@pytest.mark.parametrize("index", range(len(FAMILIES)),
                         ids=[f"{n}-{s[0]}x{s[1]}" for n, s in FAMILIES])
def test_translation_matches_keras3(family_models, translation_diffs, index):
    model = family_models[index]
    probes = _tfmot._probes(model)
    out = np.asarray(model(probes, training=False))
    scale = float(np.max(np.abs(out)))
    assert np.max(np.ptp(out, axis=0)) > 0.02 * scale  # outputs that depend on the input
    assert translation_diffs[index] <= 1e-5 * max(1.0, scale), (FAMILIES[index],
                                                               translation_diffs[index], scale)


def test_spec_uses_the_intended_rebuilds(family_models):
    kinds = {}
    for model in family_models:
        spec, weights = graph_spec(model)
        for layer in spec["layers"]:
            kinds.setdefault(layer["kind"], []).append((model.name, layer))
    edge = [(m, l["args"]["pads"]) for m, l in kinds["EdgePadMaxPool"]]
    assert all(m.startswith("squeezenet") for m, _ in edge)
    assert sorted(p for _, p in edge) == [[0, 1], [1, 0]]
    grouped = [l["args"] for _, l in kinds["GroupedConv"]]
    assert any(a["shuffle_groups"] > 1 for a in grouped)
    assert any(a["conv"] == "Conv2D" and 1 < a["groups"] for a in grouped)
    assert any(a["conv"] == "DepthwiseConv2D" for a in grouped)
    assert "ChannelShuffle" in kinds and "ChannelSplit" in kinds
    # a depthwise GroupedDepthwiseConv2D's kernel [kh, kw, 1, C] becomes [kh, kw, C, 1]
    mobilenet = family_models[0]
    spec, weights = graph_spec(mobilenet)
    k3 = mobilenet.get_layer("conv_1_dw").kernel.numpy()
    np.testing.assert_array_equal(weights["conv_1_dw::0"], np.transpose(k3, (0, 1, 3, 2)))


def test_one_table_for_both_processes():
    """The parent's translations and the child's builders come from one table, which the child
    imports without Keras 3, keras_cnns or TensorFlow (it is loaded before tf_keras is)."""
    classes = _tfmot_table.translators()
    assert {CeilModeMaxPooling2D, BatchNormalization, keras.layers.BatchNormalization,
            GroupedDepthwiseConv2D, ChannelShuffle, keras.layers.Conv2D} <= set(classes)
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import _tfmot_table; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('keras', 'keras_cnns', 'tensorflow', 'tf_keras')]; "
            "print(json.dumps([sorted(_tfmot_table.builders()), bad]))")
    proc = subprocess.run([sys.executable, "-c", code, os.path.dirname(_tfmot_table.__file__)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kinds, imported = json.loads(proc.stdout)
    assert imported == []
    # every kind a translation produces has a child builder
    produced = {"Conv2D", "DepthwiseConv2D", "BatchNormalization", "GroupedConv", "ChannelShuffle",
                "ChannelSplit", "ReLU", "Activation", "ZeroPadding2D", "MaxPooling2D",
                "AveragePooling2D", "GlobalAveragePooling2D", "Dropout", "Reshape", "Flatten",
                "Dense", "Concatenate", "Add", "Softmax", "Rescaling", "EdgePadMaxPool"}
    assert set(kinds) == produced


# --------------------------------------------------------------------------- prune + QAT


def _small_model(size=16):
    """Conv-BN-ReLU, depthwise GroupedDepthwiseConv2D with a fused shuffle, ChannelShuffle, a
    grouped 1x1 convolution, ceil-mode pooling, Dense softmax head: the library's layers in few
    ops."""
    inp = keras.Input((size, size, 3), name="input")
    x = keras.layers.Conv2D(24, 3, strides=2, padding="same", use_bias=False, name="stem")(inp)
    x = BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = GroupedDepthwiseConv2D(kernel_size=3, shuffle_groups=3, use_bias=False, name="dw")(x)
    x = BatchNormalization(momentum=0.9, name="dw_bn")(x)
    x = keras.layers.ReLU(6.0, name="dw_relu")(x)
    x = ChannelShuffle(2, name="shuffle")(x)
    # ShuffleNet's grouped 1x1: the child's GroupConv, which must fine-tune with oneDNN off too
    x = GroupedDepthwiseConv2D(filters=48, kernel_size=1, groups=3, use_bias=False, name="pw")(x)
    x = BatchNormalization(momentum=0.9, name="pw_bn")(x)
    x = keras.layers.ReLU(name="pw_relu")(x)
    x = CeilModeMaxPooling2D(3, 2, name="pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(10, name="logits")(x)
    out = keras.layers.Activation("softmax", name="predictions")(x)
    return keras.Model(inp, out, name="small")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits as sk_digits

    splits = keras_cnns.data.load_digits(image_size=16, channels=3)
    bunch = sk_digits()
    x = np.asarray(splits.preprocess(bunch.images[:320].astype(np.float32)), np.float32)
    y = bunch.target[:320].astype(np.int64)
    return (x[:256], y[:256]), (x[256:], y[256:])


@pytest.fixture(scope="module")
def tfmot_run(digits, tmp_path_factory):
    # a trained model (81% on the 64 held-out digits): argmax margins that mean something
    keras.utils.set_random_seed(0)
    model = _small_model()
    (x, y), test = digits
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=20, verbose=0)
    before = [w.copy() for w in model.get_weights()]
    out_dir = str(tmp_path_factory.mktemp("tfmot"))
    rows = optimize_with_tfmot(model, (x, y), test, methods=("prune50", "qat"), epochs=1,
                               batch_size=32, output_dir=out_dir)
    return model, before, rows


def test_rows_describe_each_method(tfmot_run, digits):
    model, before, rows = tfmot_run
    assert [r["method"] for r in rows] == ["prune50", "qat"]
    assert [r["label"] for r in rows] == ["pruned 50%", "QAT int8"]
    assert rows[0]["target_sparsity"] == 0.5 and rows[1]["target_sparsity"] is None
    for r in rows:
        assert r["translation_max_abs_diff"] <= 1e-5
        assert os.path.getsize(r["tflite"]) == r["bytes"]
        with open(r["tflite"], "rb") as f:
            assert len(gzip.compress(f.read(), 9)) == r["gzip_bytes"]
        assert 0.0 <= r["accuracy"] <= 1.0 and r["seconds"] > 0
    # the child's unmodified tf_keras rebuild scores what the Keras 3 model scores
    x_test, y_test = digits[1]
    k3_acc = np.mean(np.argmax(np.asarray(model(x_test, training=False)), -1) == y_test)
    assert k3_acc > 0.6
    assert r["baseline_accuracy"] == pytest.approx(k3_acc)
    assert "TF_USE_LEGACY_KERAS" not in os.environ
    # the caller's model is untouched
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_prune50_sparsity_and_compression(tfmot_run):
    model, _, rows = tfmot_run
    r = rows[0]
    assert r["sparsity"] >= 0.49
    # independent count on the returned Keras 3 weights: Conv2D and Dense kernels but the
    # classifier (the last of them), which stays dense
    dense = [layer for layer in model.layers
             if type(layer) in (keras.layers.Conv2D, keras.layers.Dense)]
    assert r["kept_dense"] == [dense[-1].name]
    assert np.mean(r["weights"][dense[-1].name][0] == 0) < 0.05
    zeros = total = 0
    for layer in dense[:-1]:
        k = r["weights"][layer.name][0]
        zeros, total = zeros + int(np.sum(k == 0)), total + k.size
    assert zeros / total == pytest.approx(r["sparsity"])
    assert r["gzip_bytes"] < r["baseline_gzip_bytes"]
    # the float32 TFLite file reproduces the pruned model's accuracy
    assert r["tflite_accuracy"] == pytest.approx(r["accuracy"], abs=1 / 64)


def test_pruned_weights_load_into_keras3(tfmot_run):
    model, before, rows = tfmot_run
    r = rows[0]
    pruned = load_pruned_weights(model, r)
    assert pruned is not model
    got = np.asarray(pruned(r["probes"]["inputs"], training=False))
    np.testing.assert_allclose(got, r["probes"]["outputs"], atol=1e-5)
    assert np.mean(pruned.get_layer("pw").kernel.numpy() == 0) >= 0.49
    # and they differ from the original model's outputs (fine-tuned and pruned)
    orig = np.asarray(model(r["probes"]["inputs"], training=False))
    assert np.max(np.abs(orig - got)) > 1e-3


def _run_int8(path, x):
    interp = tf.lite.Interpreter(model_path=path)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = inp["quantization"]
    interp.set_tensor(inp["index"], np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8))
    interp.invoke()
    return interp.get_tensor(out["index"])


def test_qat_int8_tflite_agrees_with_qat_keras(tfmot_run, digits):
    _, _, rows = tfmot_run
    r = rows[1]
    assert r["int8_io"] is True
    x_test, y_test = digits[1]
    with open(r["tflite"], "rb") as f:
        content = f.read()
    interp = tf.lite.Interpreter(model_content=content)
    assert interp.get_input_details()[0]["dtype"] == np.int8
    assert interp.get_output_details()[0]["dtype"] == np.int8
    pred = np.argmax(_run_int8(r["tflite"], x_test), -1)  # run here, independently of the child
    np.testing.assert_array_equal(pred, r["test_predictions"]["tflite"])
    assert r["tflite_accuracy"] == pytest.approx(np.mean(pred == y_test))
    keras_pred = r["test_predictions"]["keras"]
    assert len(np.unique(keras_pred)) >= 3  # not a constant classifier
    assert np.mean(pred == keras_pred) >= 0.8
    assert r["bytes"] < rows[0]["bytes"]  # int8 weights vs float32 (tiny model: the
    # flatbuffer overhead dominates, so not 4x)


# --------------------------------------------------------------------------- errors


@pytest.fixture
def no_child(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a child process was started")

    monkeypatch.setattr(subprocess, "run", refuse)


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return _small_model(), (np.zeros((4, 16, 16, 3), np.float32), np.arange(4))


@pytest.mark.parametrize("methods", [("prune0",), ("prune100",), ("prune",), ("quant",),
                                     ("prune050",), "qat", (), ("qat", "qat")])
def test_bad_methods(tiny, no_child, methods):
    model, data = tiny
    with pytest.raises(ValueError, match="`methods`"):
        optimize_with_tfmot(model, data, data, methods=methods)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(epochs=0), "epochs"), (dict(batch_size=1.5), "batch_size"),
    (dict(learning_rate=-1.0), "learning_rate"), (dict(timeout=0), "timeout")])
def test_bad_numbers(tiny, no_child, kwargs, arg):
    model, data = tiny
    with pytest.raises(ValueError, match=f"`{arg}`"):
        optimize_with_tfmot(model, data, data, **kwargs)


def test_bad_arrays(tiny, no_child):
    model, (x, y) = tiny
    with pytest.raises(ValueError, match="`train`"):
        optimize_with_tfmot(model, (x[:, :8], y), (x, y))
    with pytest.raises(ValueError, match="`test`"):
        optimize_with_tfmot(model, (x, y), (x, y[:3]))
    with pytest.raises(ValueError, match="`train`"):
        optimize_with_tfmot(model, (x, y + 10), (x, y))
    with pytest.raises(ValueError, match="`train`"):
        optimize_with_tfmot(model, x, (x, y))


def test_not_a_keras3_model(tiny, no_child):
    _, data = tiny
    with pytest.raises(ValueError, match="`model`"):
        optimize_with_tfmot("mobilenet", data, data)
    seq = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(),
                            keras.layers.Dense(10)])
    with pytest.raises(ValueError, match="`model`.*functional"):
        optimize_with_tfmot(seq, data, data)
    with pytest.raises(ValueError, match="`models`"):
        check_translation()


def test_child_failure_is_a_runtime_error(tiny, monkeypatch):
    """A child that fails (here: a script that exits 3 without a result) -> RuntimeError with
    its stderr; no real child runs."""
    model, data = tiny
    real_run = subprocess.run

    def fake(cmd, **kwargs):
        assert kwargs["env"]["TF_USE_LEGACY_KERAS"] == "1"  # set for the child only
        assert cmd[1].endswith("_tfmot_child.py")
        return real_run([cmd[0], "-c", "import sys; sys.stderr.write('boom from child'); "
                         "sys.exit(3)"], **kwargs)

    monkeypatch.setattr(subprocess, "run", fake)
    with pytest.raises(RuntimeError, match="(?s)exit code 3.*boom from child"):
        optimize_with_tfmot(model, data, data, methods=("qat",))


def test_unsupported_layer_is_named(no_child):
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="c")(inp)
    x = keras.layers.Lambda(lambda t: t * 2.0, name="my_lambda")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(10)(x))
    data = (np.zeros((4, 16, 16, 3), np.float32), np.arange(4))
    with pytest.raises(ValueError, match="my_lambda.*Lambda"):
        optimize_with_tfmot(model, data, data)
    with pytest.raises(ValueError, match="my_lambda.*Lambda"):
        check_translation(model)
