"""`keras-cnns export` and export.tflite_report: a trained run's checkpoint to TFLite variants and
a SavedModel, the report checked against the files run independently in the interpreter."""

import json
import os

import numpy as np
import pytest

from keras_cnns.cli import main
from keras_cnns.export import parse_variants, tflite_report


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from keras_cnns.training import train

    path = tmp_path_factory.mktemp("run") / "ck"
    result = train("lenet5", "digits", image_size=32, epochs=2, seed=4, verbose=0,
                   checkpoint_dir=str(path))
    return str(path), result


def _interpret(path, x):
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=path)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    y = interp.get_tensor(out["index"]).astype(np.float32)
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y - zero) * scale
    return y


def test_checkpoint_rebuilds_the_evaluated_model(run_dir):
    from keras_cnns.data import load_digits
    from keras_cnns.training import load_checkpoint_model

    path, result = run_dir
    model, meta = load_checkpoint_model(path)
    assert os.path.basename(meta["path"]) == "final" and meta["seed"] == 4
    x = next(iter(load_digits(image_size=32, channels=1, seed=4).val))[0].numpy()
    np.testing.assert_array_equal(model.predict(x, verbose=0), result.model.predict(x, verbose=0))


def test_cli_tflite_report_matches_the_files(run_dir, tmp_path, capsys):
    from keras_cnns.data import load_digits
    from keras_cnns.training import load_checkpoint_model

    path, result = run_dir
    out = tmp_path / "tfl"
    rc = main(["export", path, "--format", "both", "--quantize", "float32,int8", "--output",
               str(out), "--export-dir", str(tmp_path / "sm"), "--latency-runs", "3",
               "--input-dtype", "uint8"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "| int8 |" in text and "held-out top-1" in text and "docker run" in text
    assert sorted(os.listdir(out)) == ["lenet5-float32.tflite", "lenet5-int8.tflite",
                                       "report.json"]
    assert os.path.isdir(tmp_path / "sm" / "lenet5" / "1")
    report = json.loads((out / "report.json").read_text())
    assert report["test_size"] == 360
    rows = {r["variant"]: r for r in report["rows"]}

    splits = load_digits(image_size=32, channels=1, seed=4, shuffle=False)
    x = np.concatenate([b[0].numpy() for b in splits.val])
    y = np.concatenate([b[1].numpy() for b in splits.val])
    keras_pred = load_checkpoint_model(path)[0].predict(x, verbose=0)
    assert report["keras_accuracy"] == pytest.approx(np.mean(keras_pred.argmax(1) == y))
    assert report["keras_accuracy"] == pytest.approx(result.val_accuracy, abs=1e-6)
    for variant, row in rows.items():
        pred = _interpret(row["file"], x)
        assert row["accuracy"] == pytest.approx(np.mean(pred.argmax(1) == y))
        assert row["agreement"] == pytest.approx(np.mean(pred.argmax(1) == keras_pred.argmax(1)))
        assert row["bytes"] == os.path.getsize(row["file"]) and row["gzip_bytes"] > 0
        assert row["latency_ms"] > 0
    assert rows["float32"]["max_abs_diff"] <= 1e-4
    assert rows["int8"]["agreement"] >= 0.95
    assert rows["int8"]["bytes"] < 0.5 * rows["float32"]["bytes"]


def test_parse_variants():
    assert parse_variants("float32, int8,prune80,qat_int8,int8") == [
        "float32", "int8", "prune80", "qat"]
    for bad in ("int4", "prune0", "prune100", "prunex", ""):
        with pytest.raises(ValueError, match="quantize"):
            parse_variants(bad)


@pytest.mark.parametrize("argv,needle", [
    (["--quantize", "int4"], "quantize"),
    (["--quantize", "int8"], "representative"),   # a model name, no dataset: nothing to calibrate
    (["--latency-runs", "0"], "--latency-runs"),
])
def test_cli_bad_input_is_a_clear_error_and_writes_nothing(argv, needle, tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["export", "lenet5", "--image-size", "32", "--format", "tflite", "--output",
               str(out)] + argv)
    assert rc == 2
    assert needle in capsys.readouterr().err
    assert not out.exists() or os.listdir(out) == []


def test_cli_never_overwrites_and_rejects_unknown_sources(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "lenet5-float32.tflite").write_bytes(b"keep")
    rc = main(["export", "lenet5", "--image-size", "32", "--format", "tflite", "--output",
               str(out)])
    assert rc == 2 and "overwrite" in capsys.readouterr().err
    assert os.listdir(out) == ["lenet5-float32.tflite"]
    assert (out / "lenet5-float32.tflite").read_bytes() == b"keep"
    assert main(["export", str(tmp_path / "missing.keras")]) == 2
    assert "missing.keras" in capsys.readouterr().err
    assert main(["export", str(tmp_path)]) == 2  # a directory without checkpoints
    assert "checkpoint" in capsys.readouterr().err
    assert main(["export", "not_a_model"]) == 2
    assert "Unknown model" in capsys.readouterr().err


def test_report_without_test_data_gives_size_and_latency(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="tiny")
    rows = tflite_report(model, tmp_path, ["float32", "float16"], latency_runs=2,
                         progress=False)
    assert [r["variant"] for r in rows] == ["float32", "float16"]
    assert all("accuracy" not in r and r["latency_ms"] > 0 for r in rows)
    with pytest.raises(ValueError, match="train"):
        tflite_report(model, tmp_path / "x", ["prune50"], progress=False)
    assert not (tmp_path / "x").exists()
