"""Several outputs, end to end: a small model with an auxiliary classifier (the contract GoogLeNet,
Inception-v3 and NASNet build on: Szegedy et al. 2015, section 5, loss weight 0.3) declares its
outputs, is trained by ``train()`` and by ``keras-cnns train``, and is served with its main
output only (the auxiliary one on request); its feature levels are declared, none lost."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

import keras_cnns
from keras_cnns import cli
from keras_cnns.export import saved_model
from keras_cnns.models import _registry
from keras_cnns.models._builder import family_builder, pyramid_levels, shapes_only
from keras_cnns.models.heads import (OutputSpec, auxiliary_classifier, output_specs,
                                     pooled_classifier)
from keras_cnns.training import train

NAME = "tiny_aux_net"
AUX_WEIGHT = 0.3


@family_builder(classes=10)
def TinyAuxNet(aux_weight=AUX_WEIGHT, *, ctx):
    """A three-convolution network with an auxiliary classifier on its stride-2 map.

    Args:
        aux_weight: the auxiliary classifier's loss weight.
{common_args}
    """
    x = ctx.start(default_shape=(32, 32, 3), min_size=16)
    x = p0 = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = p1 = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    ctx.auxiliary(p1, lambda t: auxiliary_classifier(t, ctx.classes, ctx.classifier_activation,
                                                     name="aux", filters=8, units=16,
                                                     dropout=0.0),
                  name="aux", loss_weight=aux_weight)
    x = p2 = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv3")(x)
    return ctx.finish(x, lambda t: pooled_classifier(t, ctx), default_name="tiny_aux_net",
                      features={"P0": p0, "P1": p1, "P2": p2})


@pytest.fixture(autouse=True, scope="module")
def registered():
    keras_cnns.list_models()  # the library's own models first
    _registry.register_model(NAME, family="TinyAuxNet", paper="(test model)",
                             builder=TinyAuxNet, default_input_shape=(32, 32, 3),
                             min_input_size=16, default_classes=10)
    yield
    _registry._REGISTRY.pop(NAME)
    _registry._OUTPUTS.clear()
    _registry._FEATURE_LEVELS.pop(NAME, None)


QUICK = dict(image_size=32, epochs=2, steps_per_epoch=4, batch_size=32, verbose=0)


def _digits(n=64):
    data = keras_cnns.data.load_digits(image_size=32, batch_size=n, shuffle=False)
    x, y = next(iter(data.val))
    return x.numpy(), y.numpy()


def test_model_info_says_what_the_model_returns():
    specs = keras_cnns.model_info(NAME).outputs()
    assert specs == [OutputSpec("predictions", "classification", 1.0, True),
                     OutputSpec("aux", "auxiliary", AUX_WEIGHT, False)]
    assert keras_cnns.model_info("resnet20").outputs() == [OutputSpec("predictions")]
    # without the head, no auxiliary output either
    assert [s.kind for s in keras_cnns.model_info(NAME).outputs(include_top=False)] == ["features"]
    model = keras_cnns.create_model(NAME)
    assert [t.shape[-1] for t in model.outputs] == [10, 10]
    assert output_specs(model) == tuple(specs)


def test_levels_are_declared_and_none_is_lost():
    """The declared levels are every level; the old shape probe, reading levels off output
    shapes, takes the auxiliary head's pooled map for a deep level (and in MobileNetV3 the
    squeeze-and-excitation 1x1 maps, dropping every level after the first)."""
    levels = keras_cnns.model_info(NAME).feature_levels()
    assert [(lv["level"], lv["layer"], lv["channels"]) for lv in levels] == [
        ("P0", "conv1", 8), ("P1", "conv2", 16), ("P2", "conv3", 32)]
    with shapes_only():
        full = keras_cnns.create_model(NAME)
        features = keras_cnns.create_model(NAME, features_only=True)
    assert sorted(features.output) == ["P0", "P1", "P2"]
    assert keras_cnns.models.feature_extractor(full).output["P2"].shape[1:] == (8, 8, 32)
    guessed = pyramid_levels(full)
    assert any(name.startswith("aux") for name in guessed.values()), guessed

    # MobileNetV3: squeeze-and-excitation in most blocks; every level declared, with its side
    info = keras_cnns.model_info("mobilenetv3_large")
    declared = info.feature_levels()
    assert [lv["level"] for lv in declared] == ["P1", "P2", "P3", "P4", "P5"]
    with shapes_only():
        model = keras_cnns.create_model("mobilenetv3_large", features_only=True)
        full = keras_cnns.create_model("mobilenetv3_large")
    for lv in declared:
        assert model.output[lv["level"]].shape[1:3] == (224 // lv["stride"],) * 2
    probed = pyramid_levels(full)
    assert sorted(probed) != [1, 2, 3, 4, 5], probed  # the probe loses levels here


def _hand_loss(model, x, y):
    """The training loss computed by hand: sparse categorical cross-entropy of each output,
    weighted by its OutputSpec, plus the model's own losses (none here)."""
    main, aux = (np.asarray(p, dtype="float64") for p in model(x, training=False))
    idx = np.arange(len(y))
    ce = lambda p: float(np.mean(-np.log(np.clip(p[idx, y], 1e-7, 1.0))))  # noqa: E731
    return ce(main) + AUX_WEIGHT * ce(aux), ce(main), ce(aux)


def test_train_weights_the_losses_and_reports_the_main_output(tmp_path):
    result = train(NAME, "digits", export_dir=str(tmp_path), seed=1, **QUICK)
    model = result.model
    # the history reads the main output under the single-output names, the auxiliary its own
    for key in ("loss", "accuracy", "top5_accuracy", "val_accuracy", "val_top5_accuracy",
                "aux_accuracy", "predictions_loss", "aux_loss"):
        assert len(result.history[key]) == 2, key
    assert result.history["accuracy"] == result.history["predictions_accuracy"]
    assert "aux_top5_accuracy" not in result.history

    x, y = _digits()
    total, main_ce, aux_ce = _hand_loss(model, x, y)
    logs = model.evaluate(x, (y, y), verbose=0, return_dict=True, batch_size=len(y))
    np.testing.assert_allclose(logs["predictions_loss"], main_ce, rtol=1e-4)
    np.testing.assert_allclose(logs["aux_loss"], aux_ce, rtol=1e-4)
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-4)
    assert abs(logs["loss"] - (main_ce + aux_ce)) > 1e-3  # the weight matters

    # top-1 is the main output's, on the held-out split
    data = keras_cnns.data.load_digits(image_size=32, batch_size=360, shuffle=False)
    correct = total_n = 0
    for xb, yb in data.val:
        main = np.asarray(model(xb, training=False)[0])
        correct += int(np.sum(main.argmax(-1) == yb.numpy()))
        total_n += len(yb)
    assert total_n == result.info["val_size"]
    np.testing.assert_allclose(result.val_accuracy, correct / total_n, atol=1e-6)

    # the SavedModel serves the main output only
    # (and `serve`, the forward pass, gives the main output alone)
    loaded = tf.saved_model.load(result.export_path)
    assert sorted(loaded.signatures) == ["serve", "serving_default"]
    served = loaded.signatures["serving_default"](images=tf.constant(x))
    main = np.asarray(model(x, training=False)[0])
    np.testing.assert_allclose(served["probabilities"].numpy(), main, atol=1e-5)
    forward = loaded.signatures["serve"](inputs=tf.constant(x))
    assert len(forward) == 1
    np.testing.assert_allclose(next(iter(forward.values())).numpy(), main, atol=1e-5)
    with open(os.path.join(result.export_path, "assets.extra", "keras_cnns.json")) as f:
        serving = json.load(f)["serving"]
    assert serving["output"] == "predictions" and list(serving["signatures"]) == ["serving_default"]


def test_the_auxiliary_output_is_served_on_request(tmp_path):
    model = keras_cnns.create_model(NAME)
    x, _ = _digits(8)
    path = saved_model(model, str(tmp_path), outputs=["aux"], print_commands=False)
    loaded = tf.saved_model.load(path)
    assert sorted(loaded.signatures) == ["aux", "serve", "serving_default"]
    main, aux = (np.asarray(p) for p in model(x, training=False))
    np.testing.assert_allclose(
        loaded.signatures["serving_default"](images=tf.constant(x))["probabilities"], main,
        atol=1e-5)
    np.testing.assert_allclose(
        loaded.signatures["aux"](images=tf.constant(x))["probabilities"], aux, atol=1e-5)
    # TFLite converts the main output only
    from keras_cnns.export import export_tflite, run_tflite

    tfl = export_tflite(model, str(tmp_path / "tiny.tflite"))
    np.testing.assert_allclose(run_tflite(tfl, x), main, atol=1e-5)
    with pytest.raises(ValueError, match=r"`outputs`.*Received: outputs="):
        saved_model(model, str(tmp_path), outputs=["nope"], print_commands=False)
    assert sorted(os.listdir(tmp_path / NAME)) == ["1"]  # the refused export wrote nothing


def test_cli_trains_it_and_prints_a_line_per_epoch_without_a_terminal(tmp_path, capsys):
    argv = ["train", NAME, "--epochs", "2", "--steps-per-epoch", "3", "--image-size", "32",
            "--export-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out  # captured: not a terminal
    lines = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/2", "Epoch 2/2"]
    assert all("val_accuracy:" in line and "aux_accuracy:" in line for line in lines)
    assert "held-out top-1:" in out
    loaded = tf.saved_model.load(str(tmp_path / NAME / "1"))
    assert sorted(loaded.signatures) == ["serve", "serving_default"]


def test_train_refuses_a_model_without_a_classification_output():
    features = keras_cnns.create_model(NAME, include_top=False, pooling="avg")
    with pytest.raises(ValueError, match="`model_or_name`.*classification output"):
        train(features, "digits", **QUICK)


def test_profile_counts_the_served_model_on_request():
    model = keras_cnns.create_model(NAME)
    aux_layers = [layer for layer in model.layers if layer.name.startswith("aux")]
    aux_params = sum(layer.count_params() for layer in aux_layers)
    assert aux_params > 0
    everything = keras_cnns.profile(model)
    served = keras_cnns.profile(model, outputs="served")
    assert everything.total_params == model.count_params()
    assert served.total_params == model.count_params() - aux_params
    assert served.total_macs < everything.total_macs
    with pytest.raises(ValueError, match="`outputs`"):
        keras_cnns.profile(model, outputs="main")
