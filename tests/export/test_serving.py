"""The TF Serving contract of export.saved_model, checked without a TF Serving binary.

TF Serving's server is not installable here, so a fresh Python process that never imports
keras_cnns (nor loads its ``.so``) does what the server does with a REST predict request: it
loads the version directory, decodes the JSON body by the REST API's rules (row format
``{"instances": [...]}``, columnar ``{"inputs": ...}``), calls the ``serving_default`` signature
and encodes the response (``{"predictions": [...]}`` / ``{"outputs": {...}}``). The parent
compares that with Keras. ``saved_model_cli show`` (the tool TF Serving's docs use to inspect a
signature) runs on the export too.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_cnns
from keras_cnns.export import output_kind, saved_model, serving_commands
from keras_cnns.export._child import child_env

# The REST API's decoding and encoding (tensorflow.org/tfx/serving/api_rest): a signature with
# one named input takes each instance as the value itself (or an object naming the input); with
# several named outputs, each prediction (row) or the outputs (columnar) are objects by name.
SERVER = textwrap.dedent("""
    import json, sys, importlib.abc
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "keras_cnns" or name.startswith("keras_cnns."):
                raise ImportError("keras_cnns must not be needed to serve the export")
    sys.meta_path.insert(0, Block())
    import numpy as np
    import tensorflow as tf

    export_dir, request_path, response_path = sys.argv[1:4]
    loaded = tf.saved_model.load(export_dir)
    body = json.load(open(request_path))
    sig = loaded.signatures[body.get("signature_name", "serving_default")]
    (name, spec), = sig.structured_input_signature[1].items()
    if "instances" in body:
        rows = [r[name] if isinstance(r, dict) else r for r in body["instances"]]
        x = np.array(rows, dtype=spec.dtype.as_numpy_dtype)
    else:
        value = body["inputs"]
        x = np.array(value[name] if isinstance(value, dict) else value,
                     dtype=spec.dtype.as_numpy_dtype)
    out = {k: v.numpy().tolist() for k, v in sig(**{name: tf.constant(x)}).items()}
    if "instances" in body:
        response = {"predictions": [{k: out[k][i] for k in out} for i in range(len(x))]}
    else:
        response = {"outputs": out}
    json.dump(response, open(response_path, "w"))
    assert not any(m == "keras_cnns" or m.startswith("keras_cnns.") for m in sys.modules)
    print("OK")
""")


def _serve(tmp_path, export_dir, body, tag):
    request, response = tmp_path / f"{tag}_request.json", tmp_path / f"{tag}_response.json"
    request.write_text(json.dumps(body))
    env = child_env()  # no PYTHONPATH: the child cannot find this checkout
    proc = subprocess.run([sys.executable, "-c", SERVER, export_dir, str(request), str(response)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
    return json.loads(response.read_text())


def _check_classifier_outputs(out, expected, k):
    probs = np.asarray(out["probabilities"], "float32")
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    order = np.argsort(-expected, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(np.asarray(out["top_k_classes"]), order)
    np.testing.assert_allclose(np.asarray(out["top_k_scores"]),
                               np.take_along_axis(expected, order, 1), atol=1e-5)


@pytest.fixture(scope="module")
def squeezenet():
    keras.utils.set_random_seed(3)
    return keras_cnns.create_model("squeezenet1_1_simple_bypass", input_shape=(32, 32, 3),
                                   classes=10)


def test_rest_row_and_columnar_requests_in_a_process_without_keras_cnns(squeezenet, tmp_path,
                                                                       capsys):
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype("float32")
    expected = squeezenet.predict(x, verbose=0)
    path = saved_model(squeezenet, tmp_path / "repo", top_k=3)
    printed = capsys.readouterr().out
    assert path == str(tmp_path / "repo" / "squeezenet1_1_simple_bypass" / "1")
    for line in serving_commands(path):
        assert line in printed
    assert "tensorflow/serving" in printed and ":predict" in printed

    rows = _serve(tmp_path, path, {"instances": x.tolist()}, "row")["predictions"]
    assert len(rows) == 3 and sorted(rows[0]) == ["probabilities", "top_k_classes",
                                                  "top_k_scores"]
    _check_classifier_outputs({k: [r[k] for r in rows] for k in rows[0]}, expected, 3)
    named_rows = _serve(tmp_path, path, {"signature_name": "serving_default",
                                         "instances": [{"images": i} for i in x.tolist()]},
                        "named")["predictions"]
    _check_classifier_outputs({k: [r[k] for r in named_rows] for k in named_rows[0]},
                              expected, 3)
    columnar = _serve(tmp_path, path, {"inputs": {"images": x.tolist()}}, "col")["outputs"]
    _check_classifier_outputs(columnar, expected, 3)

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", path, "--tag_set", "serve",
                            "--signature_def", "serving_default"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = shown.stdout
    assert "inputs['images']" in text and "DT_FLOAT" in text and "(-1, 32, 32, 3)" in text
    for output in ("probabilities", "top_k_classes", "top_k_scores"):
        assert f"outputs['{output}']" in text
    assert "(-1, 10)" in text and "(-1, 3)" in text and "DT_INT32" in text


def test_uint8_input_has_the_normalisation_inside_and_models_config_lists_the_models(
        squeezenet, tmp_path):
    meta = {"dataset": "other", "mean": [0.9], "std": [0.1]}  # an explicit normalization wins
    mean, std = [0.25, 0.5, 0.75], [0.2, 0.3, 0.4]
    pixels = np.random.default_rng(1).integers(0, 256, size=(2, 32, 32, 3)).astype("uint8")
    expected = squeezenet.predict((pixels / 255.0 - np.array(mean)) / np.array(std), verbose=0)
    repo = tmp_path / "repo"
    path = saved_model(squeezenet, repo, model_name="digits_u8", input_dtype="uint8",
                       normalization=(mean, std), metadata=meta, print_commands=False)
    out = _serve(tmp_path, path, {"instances": pixels.tolist()}, "u8")["predictions"]
    _check_classifier_outputs({k: [r[k] for r in out] for k in out[0]}, expected, 5)
    # the metadata's own mean/std are used when no normalization is given
    second = saved_model(squeezenet, repo, model_name="digits_u8", input_dtype="uint8",
                         metadata={"mean": mean, "std": std}, print_commands=False)
    assert os.path.basename(second) == "2"
    with open(os.path.join(second, "assets.extra", "keras_cnns.json")) as f:
        serving = json.load(f)["serving"]
    assert serving["mean"] == mean and serving["std"] == std and serving["input_dtype"] == "uint8"
    saved_model(squeezenet, repo, model_name="other", print_commands=False)
    config = (repo / "models.config").read_text()
    assert config.count("config {") == 2 and config.count('model_platform: "tensorflow"') == 2
    assert 'name: "digits_u8"' in config and 'base_path: "/models/digits_u8"' in config
    assert 'name: "other"' in config and sorted(os.listdir(repo)) == ["digits_u8",
                                                                       "models.config", "other"]


def test_headless_model_returns_features_and_logits_get_a_softmax(tmp_path):
    keras.utils.set_random_seed(4)
    headless = keras_cnns.create_model("mobilenet_0_25", input_shape=(32, 32, 3),
                                       include_top=False)
    assert output_kind(headless) == "features"
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype("float32")
    path = saved_model(headless, tmp_path, print_commands=False)
    out = _serve(tmp_path, path, {"inputs": x.tolist()}, "feat")["outputs"]
    assert sorted(out) == ["features"]
    np.testing.assert_allclose(np.asarray(out["features"]), headless.predict(x, verbose=0),
                               atol=1e-5)

    logits = keras_cnns.create_model("lenet5", input_shape=(32, 32, 3), classes=7,
                                     classifier_activation=None)
    assert output_kind(logits) == "logits"
    path = saved_model(logits, tmp_path, print_commands=False)
    out = _serve(tmp_path, path, {"inputs": x.tolist()}, "logits")["outputs"]
    z = logits.predict(x, verbose=0)
    np.testing.assert_allclose(np.asarray(out["logits"]), z, atol=1e-5)
    softmax = np.exp(z - z.max(1, keepdims=True))
    _check_classifier_outputs(out, softmax / softmax.sum(1, keepdims=True), 5)
