"""keras_cnns.training: recipes, schedules, the loop, checkpoints, ``keras-cnns train``.

Small settings keep this file short on 2 CPU cores: 32x32 digits, a few steps per epoch.
"""

import json
import math
import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnns import cli
from keras_cnns.models import model_info
from keras_cnns.training import (CheckpointError, CheckpointManager, Recipe, WarmupSchedule,
                                 make_schedule, recalibrate_batch_norm, resolve_recipe, train)

QUICK = dict(image_size=32, epochs=2, steps_per_epoch=3, batch_size=32, verbose=0)


# -- recipes -----------------------------------------------------------------------------------

def test_paper_recipes_come_from_the_registry_with_their_sources():
    cifar = resolve_recipe("paper", model_info("resnet20"))
    # He et al. 2016, sec. 4.2
    assert (cifar.optimizer, cifar.learning_rate, cifar.momentum, cifar.weight_decay) == (
        "sgd", 0.1, 0.9, 1e-4)
    assert cifar.schedule == "step" and cifar.milestones == (0.5, 0.75) and cifar.gamma == 0.1
    assert cifar.batch_size == 128 and cifar.augment is True and "He et al." in cifar.source
    mobilenet = resolve_recipe("paper", model_info("mobilenet"))
    assert mobilenet.optimizer == "rmsprop" and mobilenet.source
    default = resolve_recipe(None, model_info("squeezenet1_1_simple_bypass"))
    assert (default.optimizer, default.learning_rate, default.epochs) == ("adam", 1e-3, 30)
    assert default.augment is None
    # MobileNet v1 (every width) defaults to the longer, augmented small-data recipe; v2 does not
    for name in ("mobilenet", "mobilenet_0_50", "mobilenet_0_25"):
        r = resolve_recipe(None, model_info(name))
        assert (r.optimizer, r.learning_rate, r.epochs, r.augment) == ("adam", 1e-3, 60, True)
        assert r.warmup_epochs == 2 and "MobileNet 0.5" in r.source
    assert resolve_recipe(None, model_info("mobilenetv2")).epochs == 30
    assert resolve_recipe("small_data_mobilenet", None).epochs == 60


def test_recipe_overrides_and_the_warmup_share_of_a_shorter_run():
    r = resolve_recipe("default", None, epochs=2, batch_size=16)
    assert (r.epochs, r.batch_size) == (2, 16)
    assert r.warmup_epochs == pytest.approx(2 * 2 / 30)  # 2 of 30 epochs -> the same share
    assert resolve_recipe("default", None, epochs=5).warmup_epochs == 2
    sgd = resolve_recipe("default", None, optimizer="sgd")
    assert sgd.optimizer == "sgd" and sgd.learning_rate == 0.01


@pytest.mark.parametrize("fields,arg", [
    ({"optimizer": "lbfgs"}, "optimizer"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"learning_rate": float("nan")}, "learning_rate"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -8}, "batch_size"),
    ({"epochs": 0}, "epochs"),
    ({"schedule": "triangle"}, "schedule"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"precision": "float8"}, "precision"),
    ({"jit_compile": "maybe"}, "jit_compile"),
    ({"milestones": (0.8, 0.5)}, "milestones"),
])
def test_recipe_rejects_bad_fields_by_name(fields, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        Recipe(**fields)


def test_unknown_recipe_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="`recipe`") as err:
        resolve_recipe("imagenet-recipe-9000", None)
    assert "cifar" in str(err.value) or "resnet" in str(err.value)


# -- schedules: against the closed forms -------------------------------------------------------

@pytest.mark.parametrize("kind", WarmupSchedule.KINDS)
def test_schedules_match_their_formulas(kind):
    peak, total, warm = 0.4, 100, 10
    s = WarmupSchedule(kind, peak, total, warmup_steps=warm, boundaries=[50, 75], gamma=0.1,
                       power=2.0, decay_steps=20, decay_rate=0.5)
    for t in (0, 5, 9, 10, 30, 50, 74, 75, 99, 100):
        if t < warm:
            want = peak * (t + 1) / warm
        else:
            frac = min((t - warm) / (total - warm), 1.0)
            want = {
                "constant": peak,
                "step": peak * 0.1 ** sum(t >= b for b in (50, 75)),
                "poly": peak * (1 - frac) ** 2,
                "cosine": peak * 0.5 * (1 + math.cos(math.pi * frac)),
                "exponential": peak * 0.5 ** ((t - warm) // 20),
            }[kind]
        assert float(s(t)) == pytest.approx(want, rel=1e-5, abs=1e-8), (kind, t)
    assert WarmupSchedule(**s.get_config()).get_config() == s.get_config()


def test_make_schedule_places_the_cifar_milestones_at_50_and_75_percent():
    recipe = resolve_recipe("paper", model_info("resnet20"), epochs=4, warmup_epochs=0.0)
    s = make_schedule(recipe, steps_per_epoch=25)  # 100 steps
    assert float(s(49)) == pytest.approx(0.1) and float(s(50)) == pytest.approx(0.01)
    assert float(s(74)) == pytest.approx(0.01) and float(s(75)) == pytest.approx(0.001)


# -- the loop ----------------------------------------------------------------------------------

def test_train_exports_the_best_epoch_as_a_servable_saved_model(tmp_path):
    result = train("squeezenet1_1_simple_bypass", "digits", export_dir=str(tmp_path), seed=2,
                   **QUICK)
    assert result.run_name == "squeezenet1_1_simple_bypass"
    assert 0.0 <= result.val_accuracy <= 1.0 and 0.0 <= result.val_top5_accuracy <= 1.0
    assert result.val_top5_accuracy >= result.val_accuracy
    assert len(result.history["loss"]) == 2 and len(result.history["val_top5_accuracy"]) == 2
    assert result.best_epoch in (1, 2) and result.images_per_second > 0
    expected = tmp_path / "squeezenet1_1_simple_bypass" / "1"  # TF Serving layout
    assert os.path.samefile(result.export_path, expected)
    meta = json.loads((expected / "assets.extra" / "keras_cnns.json").read_text())
    assert meta["dataset"] == "digits" and meta["input_shape"] == [32, 32, 3]
    assert meta["val_accuracy"] == pytest.approx(result.val_accuracy)
    assert meta["recipe"]["optimizer"] == "adam"
    loaded = tf.saved_model.load(str(expected))
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded.serve(tf.constant(x)).numpy(),
                               result.model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    again = train("squeezenet1_1_simple_bypass", "digits", export_dir=str(tmp_path), seed=3,
                  **QUICK)  # never overwrites: version 2
    assert os.path.samefile(again.export_path, tmp_path / "squeezenet1_1_simple_bypass" / "2")


def test_the_default_recipe_learns_the_digits_quickly():
    """3 epochs at 32x32 of LeNet-5: far above chance (0.10)."""
    result = train("lenet5", "digits", image_size=32, epochs=3, verbose=0, seed=3)
    assert result.val_accuracy > 0.6, result.history
    assert result.history["loss"][-1] < result.history["loss"][0]


def test_label_smoothing_mixup_and_model_kwargs_reach_the_run():
    result = train("mobilenet", "digits", model_kwargs={"alpha": 0.25}, label_smoothing=0.1,
                   mixup=0.2, **QUICK)
    assert result.recipe.label_smoothing == 0.1 and result.recipe.mixup == 0.2
    assert result.model.count_params() < 300_000  # alpha 0.25, not 1.0
    assert np.isfinite(result.history["loss"]).all()


def test_precise_batch_norm_sets_the_statistics_of_the_data():
    result = train("mobilenet_0_25", "digits", image_size=32, epochs=1, verbose=0)
    bn = [lay for lay in result.model.layers if isinstance(lay, keras.layers.BatchNormalization)]
    variances = [float(lay.moving_variance.numpy().mean()) for lay in bn]
    # one epoch (23 steps) of Keras' EMA keeps 0.99**23 = 0.79 of the initial variance 1
    assert len(bn) == 27 and all(np.isfinite(variances))
    assert max(variances) < 0.79 * 0.8 and min(variances) < 0.1, variances


def _bn_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    return keras.Model(inputs, keras.layers.Dense(4)(x))


def test_recalibrate_batch_norm_is_the_average_of_the_batch_moments():
    model = _bn_model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(2.0, 3.0, (5, 8, 8, 3)).astype("float32") for _ in range(3)]
    assert recalibrate_batch_norm(model, batches) == 3
    conv = keras.Model(model.input, model.get_layer("conv").output)
    outs = [np.asarray(conv(b)) for b in batches]  # NumPy reference
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(),
                               np.mean([o.mean(axis=(0, 1, 2)) for o in outs], 0), atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(),
                               np.mean([o.var(axis=(0, 1, 2)) for o in outs], 0), atol=1e-4)
    assert bn.momentum == 0.99
    with pytest.raises(ValueError, match="max_batches"):
        recalibrate_batch_norm(model, batches, max_batches=0)


# -- checkpoints -------------------------------------------------------------------------------

def _small_model(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    opt = keras.optimizers.Adam(1e-2)
    opt.build(model.trainable_variables)
    return model, opt


def test_a_corrupt_or_half_written_checkpoint_falls_back_to_the_previous_one(tmp_path):
    fp = {"model": "tiny"}
    model, opt = _small_model(0)
    manager = CheckpointManager(str(tmp_path), fp)
    saved = []
    for epoch in (1, 2, 3):
        for v in model.trainable_variables:
            v.assign(v + 1.0)
        manager.save(epoch, model, opt, {"history": {"loss": [0.0] * epoch}})
        saved.append([v.numpy().copy() for v in model.weights])
    # epoch 3: a flipped byte in the arrays (the recorded sha256 no longer matches)
    npz = tmp_path / "ckpt-0003" / "state.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    # a run killed while writing epoch 4 leaves only a temporary directory
    (tmp_path / ".tmp-ckpt-0004").mkdir()
    (tmp_path / ".tmp-ckpt-0004" / "state.npz").write_bytes(b"partial")
    fresh, fresh_opt = _small_model(1)
    with pytest.warns(RuntimeWarning, match="ckpt-0003"):
        path, meta = CheckpointManager(str(tmp_path), fp).latest()
    assert os.path.basename(path) == "ckpt-0002" and meta["epoch"] == 2
    CheckpointManager(str(tmp_path), fp).restore(path, fresh, fresh_opt)
    for got, want in zip(fresh.weights, saved[1]):
        np.testing.assert_array_equal(got.numpy(), want)
    # a truncated state.json of epoch 2 as well: epoch 1
    (tmp_path / "ckpt-0002" / "state.json").write_text('{"epoch": 2, "variab')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        path, meta = CheckpointManager(str(tmp_path), fp).latest()
    assert os.path.basename(path) == "ckpt-0001"


def test_resume_dir_of_another_model_is_an_error_and_nothing_is_overwritten(tmp_path):
    train("lenet5", "digits", checkpoint_dir=str(tmp_path), **QUICK)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()
              and "logs" not in p.parts}
    with pytest.raises(ValueError, match="checkpoint") as err:
        train("mobilenet_0_25", "digits", checkpoint_dir=str(tmp_path), resume=True, **QUICK)
    assert "lenet5" in str(err.value)
    with pytest.raises(ValueError, match="resume"):  # the same model, without --resume
        train("lenet5", "digits", checkpoint_dir=str(tmp_path), **QUICK)
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()
             and "logs" not in p.parts}
    assert after == before


def test_resume_of_a_finished_run_trains_nothing_more(tmp_path):
    first = train("lenet5", "digits", checkpoint_dir=str(tmp_path), seed=4, **QUICK)
    again = train("lenet5", "digits", checkpoint_dir=str(tmp_path), resume=True, seed=4, **QUICK)
    assert again.resumed_from == 2 and again.history == first.history


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,arg", [
    ({"data": "cifar11"}, "data"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -2}, "batch_size"),
    ({"epochs": 0}, "epochs"),
    ({"image_size": 8}, "image_size"),  # below squeezenet1_1's minimum
    ({"seed": -1}, "seed"),
    ({"model_or_name": "squeezenet2"}, "name"),
    ({"model_kwargs": {"bypass": "full"}}, "bypass"),
    ({"model_kwargs": {"widht": 0.5}}, "widht"),
    ({"model_kwargs": {"classes": 3}}, "classes"),
    ({"resume": True}, "resume"),  # without a checkpoint_dir
    ({"strategy": "horovod"}, "strategy"),
])
def test_train_rejects_bad_arguments_before_training(kwargs, arg):
    args = dict(model_or_name="squeezenet1_1", data="digits", verbose=0)
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        train(**args)
    assert f"`{arg}`" in str(err.value) or f"{arg}=" in str(err.value)


def test_a_missing_data_directory_is_a_clear_error(tmp_path):
    from keras_cnns.data import DatasetUnavailableError

    with pytest.raises(DatasetUnavailableError, match="data_dir"):
        train("resnet20", "cifar10", data_dir=str(tmp_path / "nope"), verbose=0)


# -- the CLI -----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv,flag", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--image-size", "10"], "--image-size"),
    (["train", "--lr", "0"], "--lr"),
    (["train", "--batch-size", "-4"], "--batch-size"),
    (["train", "--optimizer", "lbfgs"], "--optimizer"),
    (["train", "--dataset", "cifar11"], "--dataset"),
    (["train", "--precision", "float8"], "--precision"),
])
def test_cli_bad_flag_values_exit_2_naming_the_flag(argv, flag, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err and "Received:" in err


def test_cli_missing_data_dir_exits_with_how_to_prepare(tmp_path, capsys):
    code = cli.main(["train", "resnet20", "--dataset", "cifar10", "--data-dir",
                     str(tmp_path / "nope")])
    assert code != 0
    assert "tfds build cifar10" in capsys.readouterr().err


def test_cli_train_checkpoints_resumes_and_summarises(tmp_path, capsys):
    argv = ["train", "lenet5", "--epochs", "2", "--steps-per-epoch", "2", "--image-size", "32",
            "--checkpoint-dir", str(tmp_path / "ck"), "--export-dir", str(tmp_path / "sm"),
            "--quiet"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    for key in ("held-out top-1:", "top-5:", "images/s", "wall time:", "best epoch:"):
        assert key in out
    assert str(tmp_path / "sm" / "lenet5" / "1") in out
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "best", "ckpt-0001", "ckpt-0002", "final", "logs"]
    assert list((tmp_path / "ck" / "logs").rglob("events.out.tfevents.*"))  # TensorBoard
    assert cli.main(argv + ["--resume"]) == 0
    assert "resumed after epoch 2" in capsys.readouterr().out


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_runs_and_keeps_float32_variables(precision):
    result = train("lenet5", "digits", precision=precision, epochs=1, steps_per_epoch=2,
                   image_size=32, batch_size=16, verbose=0)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    policies = {layer.dtype_policy.name for layer in result.model.layers if layer.weights}
    assert policies == {precision}
    assert result.model.outputs[0].dtype == "float32"
    assert all(v.dtype == "float32" for v in result.model.weights)
    assert np.isfinite(result.history["loss"]).all()


def test_mirrored_strategy_on_one_device_equals_no_strategy():
    run = dict(model_or_name="lenet5", data="digits", epochs=1, steps_per_epoch=3,
               image_size=32, batch_size=16, verbose=0, seed=5, optimizer="sgd",
               learning_rate=0.05, warmup_epochs=0.0)
    plain = train(**run)
    keras.backend.clear_session()
    mirrored = train(**run, strategy="mirrored")
    assert mirrored.info["replicas"] == 1
    for a, b in zip(plain.model.weights, mirrored.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
