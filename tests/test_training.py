"""The training recipe: ``keras_cnns.training.train`` and ``keras-cnns train``.

Small settings keep this file well under a minute on 2 CPU cores: 32x32 digits, 1-4 epochs.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_cnns import cli, training
from keras_cnns.training import WarmupPolyDecay, train


def test_train_smoke_exports_a_loadable_saved_model(tmp_path):
    result = train(epochs=1, image_size=32, export_dir=str(tmp_path), verbose=0)
    assert 0.0 <= result.val_accuracy <= 1.0
    assert result.run_name == "squeezenet1_1_simple_bypass"  # the main job's default bypass
    assert result.recipe["model_kwargs"]["bypass"] == "simple"
    assert len(result.history["loss"]) == 1 and "val_accuracy" in result.history
    assert result.wall_time_s > 0
    # TF Serving layout: <export_dir>/<model>/<version>/saved_model.pb
    expected = tmp_path / "squeezenet1_1_simple_bypass" / "1"
    assert os.path.samefile(result.export_path, expected)
    assert (expected / "saved_model.pb").is_file() and (expected / "variables").is_dir()
    meta = json.loads((expected / "assets.extra" / "keras_cnns.json").read_text())
    assert meta["dataset"] == "digits" and meta["input_shape"] == [32, 32, 3]
    assert meta["val_accuracy"] == pytest.approx(result.val_accuracy)

    loaded = tf.saved_model.load(str(expected))
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype("float32")
    served = loaded.serve(tf.constant(x)).numpy()
    assert served.shape == (3, 10)
    np.testing.assert_allclose(served, result.model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)

    # a second export never overwrites: it becomes version 2
    again = train(epochs=1, image_size=32, export_dir=str(tmp_path), verbose=0, seed=1)
    assert os.path.samefile(again.export_path, tmp_path / "squeezenet1_1_simple_bypass" / "2")


def test_recipe_learns_squeezenet_simple_bypass_quickly():
    """3 epochs at 32x32 (~10 s on 2 cores): well above chance (0.10), every class predicted."""
    result = train("squeezenet1_1", bypass="simple", epochs=3, image_size=32, export=False,
                   verbose=0, seed=3)
    assert result.val_accuracy > 0.6, result.history
    assert result.export_path is None
    # no dead class map: every digit is predicted for some held-out image
    from keras_cnns.data import load_digits

    val = load_digits(image_size=32, seed=3).val
    preds = np.concatenate([np.argmax(result.model.predict(x, verbose=0), -1) for x, _ in val])
    assert set(preds.tolist()) == set(range(10))


def test_warmup_poly_decay_schedule():
    s = WarmupPolyDecay(0.1, total_steps=110, warmup_steps=10, power=1.0)
    lr = [float(s(t)) for t in (0, 4, 9, 10, 60, 110, 200)]
    np.testing.assert_allclose(lr, [0.01, 0.05, 0.1, 0.1, 0.05, 0.0, 0.0], atol=1e-7)
    no_warmup = WarmupPolyDecay(1.0, total_steps=4, power=2.0)
    np.testing.assert_allclose([float(no_warmup(t)) for t in range(5)],
                               [1.0, 0.5625, 0.25, 0.0625, 0.0], atol=1e-7)
    clone = WarmupPolyDecay(**s.get_config())
    assert clone.get_config() == s.get_config()


@pytest.mark.parametrize("kwargs,arg", [
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 0}, "batch_size"),
    ({"image_size": 8}, "image_size"),  # below squeezenet1_1's minimum of 17
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"seed": -1}, "seed"),
    ({"bypass": "full"}, "bypass"),
    ({"weight_decay": 1e-4}, "weight_decay"),  # not with adam
    ({"classes": 3}, "classes"),
    ({"model_name": "squeezenet2"}, "name"),
])
def test_train_rejects_bad_arguments_before_training(kwargs, arg):
    with pytest.raises(ValueError) as err:
        train(export=False, verbose=0, **kwargs)
    assert f"`{arg}`" in str(err.value) or f"{arg}=" in str(err.value)


def test_bypass_only_for_squeezenet():
    from keras_cnns import list_models, model_info

    other = next(n for n in list_models() if model_info(n).family != "SqueezeNet")
    with pytest.raises(ValueError, match="`bypass`"):
        train(other, bypass="simple", export=False, verbose=0)


@pytest.mark.parametrize("argv,flag", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--image-size", "10"], "--image-size"),
    (["train", "--lr", "0"], "--lr"),
    (["train", "--batch-size", "-4"], "--batch-size"),
    (["train", "--bypass", "sideways"], "--bypass"),
    (["train", "--optimizer", "lbfgs"], "--optimizer"),
])
def test_cli_bad_flag_values_exit_2_naming_the_flag(argv, flag, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err and "Received:" in err


def test_cli_bypass_on_a_non_squeezenet_model_names_the_flag(capsys):
    from keras_cnns import list_models, model_info

    other = next(n for n in list_models() if model_info(n).family != "SqueezeNet")
    assert cli.main(["train", other, "--bypass", "simple"]) == 2
    assert "--bypass" in capsys.readouterr().err


def test_cli_unparseable_flag_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--epochs", "many"])
    assert exc.value.code == 2
    assert "--epochs" in capsys.readouterr().err


def test_cli_train_reports_accuracy_wall_time_and_export(tmp_path, capsys):
    argv = ["train", "--epochs", "1", "--image-size", "24", "--export-dir", str(tmp_path),
            "--quiet"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "held-out accuracy:" in out and "wall time:" in out
    assert str(tmp_path / "squeezenet1_1_simple_bypass" / "1") in out
    assert training.DEFAULT_MODEL == "squeezenet1_1"


def test_parse_model_args_reads_python_literals():
    got = training.parse_model_args(["alpha=0.5", "dropout = 0.2", "bypass=simple", "rho=1"])
    assert got == {"alpha": 0.5, "dropout": 0.2, "bypass": "simple", "rho": 1}
    with pytest.raises(ValueError, match="--model-arg"):
        training.parse_model_args(["alpha"])


def test_cli_model_arg_reaches_the_builder(tmp_path, capsys):
    argv = ["train", "mobilenet", "--model-arg", "alpha=0.25", "--epochs", "1", "--image-size",
            "32", "--no-export", "--quiet"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    # MobileNet 0.25 on 1-channel 32x32 digits, 10 classes: far fewer parameters than 1.0.
    n_params = int(out.split("model:")[1].split("(")[1].split(" ")[0].replace(",", ""))
    assert n_params < 300_000


def test_cli_unknown_model_arg_names_it(capsys):
    assert cli.main(["train", "mobilenet", "--model-arg", "widht=0.5", "--no-export"]) == 2
    err = capsys.readouterr().err
    assert "widht" in err and "alpha" in err and "Received:" in err


def _bn_model():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x))


def test_recalibrate_batch_norm_is_the_exact_average_of_batch_statistics():
    import keras

    model = _bn_model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(2.0, 3.0, (5, 8, 8, 3)).astype("float32") for _ in range(3)]
    assert training.recalibrate_batch_norm(model, batches) == 3
    conv = keras.Model(model.input, model.get_layer("conv").output)
    outs = [np.asarray(conv(b)) for b in batches]  # NumPy reference of the per-batch moments
    mean = np.mean([o.mean(axis=(0, 1, 2)) for o in outs], axis=0)
    var = np.mean([o.var(axis=(0, 1, 2)) for o in outs], axis=0)
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.99  # restored


def test_recalibrated_inference_equals_training_mode_on_the_calibration_batch():
    model = _bn_model()
    x = np.random.default_rng(1).normal(5.0, 4.0, (16, 8, 8, 3)).astype("float32")
    stale = np.asarray(model(x, training=False))
    fresh_train = np.asarray(model(x, training=True))
    assert not np.allclose(stale, fresh_train, atol=1e-3)  # moving stats start at 0 / 1
    assert training.recalibrate_batch_norm(model, [(x, np.zeros(16))], max_batches=5) == 1
    np.testing.assert_allclose(np.asarray(model(x, training=False)), fresh_train, atol=1e-4)


def test_recalibrate_batch_norm_without_bn_and_bad_arguments():
    import keras

    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert training.recalibrate_batch_norm(plain, [np.zeros((1, 4), "float32")]) == 0
    with pytest.raises(ValueError, match="max_batches"):
        training.recalibrate_batch_norm(_bn_model(), [np.zeros((1, 8, 8, 3))], max_batches=0)
    with pytest.raises(ValueError, match="dataset"):
        training.recalibrate_batch_norm(_bn_model(), [])


def test_train_uses_precise_batch_norm_for_bn_models():
    """A BN model's final statistics are the data's, not Keras' half-decayed moving averages."""
    result = train("mobilenet_0_25", epochs=1, image_size=32, export=False, verbose=0)
    bn = [l for l in result.model.layers if l.__class__.__name__ == "BatchNormalization"]
    assert len(bn) == 27
    variances = [float(l.moving_variance.numpy().mean()) for l in bn]
    # After one epoch (23 steps) Keras' EMA still holds 0.99**23 = 0.79 of the initial variance 1,
    # so without recalibration every layer's moving variance would be >= 0.79. The depthwise
    # layers' real activations vary far less than that.
    assert all(np.isfinite(variances))
    assert max(variances) < 0.79 * 0.8, variances
    assert min(variances) < 0.1, variances
