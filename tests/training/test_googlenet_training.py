"""GoogLeNet trains with its auxiliary classifiers (Szegedy et al. 2015, Sec. 5: "their loss gets
added to the total loss of the network with a discount weight ... 0.3"): the loss ``train()``
optimises on a fixed batch is main + 0.3 aux1 + 0.3 aux2 (computed here with Keras' sparse
categorical cross-entropy from the three outputs), and the exported SavedModel serves the main
output only; ``keras-cnns train googlenet`` does the same from the command line.

The full run (held-out accuracy >= 0.95 on the embedded digits) takes minutes on 2 cores and is
not a test; its command and measured figure are in keras_cnns/models/googlenet.py's docstring.
"""

import json

import keras
import numpy as np
import tensorflow as tf

import keras_cnns
from keras_cnns import cli
from keras_cnns.models.heads import output_specs
from keras_cnns.training import train
from keras_cnns.training.checkpoint import load_checkpoint_model

SIDE = 32  # googlenet's minimum size: 16, 8, 4, 2, 1 at P1..P5; the aux heads pool 2x2 globally
QUICK = dict(image_size=SIDE, epochs=1, steps_per_epoch=2, batch_size=16, verbose=0)
AUX_WEIGHT = 0.3


def _digits(n):
    data = keras_cnns.data.load_digits(image_size=SIDE, batch_size=n, shuffle=False)
    x, y = next(iter(data.val))
    return x.numpy(), y.numpy()


def test_train_loss_is_the_weighted_sum_of_the_three_outputs():
    # The paper layout has no BatchNorm; with its dropouts at 0 a training-mode forward pass is
    # deterministic and equals the inference one, so the loss can be recomputed outside. (SGD:
    # the loss does not depend on the optimizer, whose per-variable update graph Adam makes
    # slower to trace.)
    result = train("googlenet", "digits", model_kwargs=dict(dropout=0.0, aux_dropout=0.0),
                   seed=1, optimizer="sgd", learning_rate=0.01, **QUICK)
    model = result.model
    specs = output_specs(model)
    assert [(s.name, s.loss_weight, s.served) for s in specs] == [
        ("predictions", 1.0, True), ("aux1", AUX_WEIGHT, False), ("aux2", AUX_WEIGHT, False)]
    for key in ("loss", "accuracy", "val_accuracy", "aux1_accuracy", "aux2_accuracy",
                "predictions_loss", "aux1_loss", "aux2_loss"):
        assert len(result.history[key]) == 1, key

    x, y = _digits(32)
    main, aux1, aux2 = (np.asarray(p) for p in model(x, training=False))

    # the loss of a training step of the compiled model on a fixed batch, before its update
    ce = [float(np.mean(keras.ops.convert_to_numpy(
        keras.losses.sparse_categorical_crossentropy(y, p)))) for p in (main, aux1, aux2)]
    expected = ce[0] + AUX_WEIGHT * ce[1] + AUX_WEIGHT * ce[2]
    assert abs(expected - sum(ce)) > 1e-3  # the weights matter
    for p, q in zip(model(x, training=True), (main, aux1, aux2)):
        np.testing.assert_allclose(np.asarray(p), q, rtol=1e-5, atol=1e-7)
    logs = model.train_on_batch(x, (y, y, y), return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-4)
    for key, value in zip(("predictions_loss", "aux1_loss", "aux2_loss"), ce):
        np.testing.assert_allclose(logs[key], value, rtol=1e-4)


def test_cli_trains_googlenet_and_its_savedmodel_serves_the_main_output(tmp_path, capsys):
    argv = ["train", "googlenet", "--epochs", "1", "--steps-per-epoch", "2", "--image-size",
            str(SIDE), "--batch-size", "16", "--optimizer", "sgd", "--lr", "0.01",
            "--export-dir", str(tmp_path / "export"),
            "--checkpoint-dir", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert len(lines) == 1
    assert all(k in lines[0] for k in ("val_accuracy:", "aux1_accuracy:", "aux2_accuracy:"))
    assert "held-out top-1:" in out

    # the run's final model (what was evaluated and exported), rebuilt from its checkpoint
    model, _ = load_checkpoint_model(str(tmp_path / "run"))
    x, _ = _digits(8)
    main, aux1, aux2 = (np.asarray(p) for p in model(x, training=False))
    assert np.abs(main - aux1).max() > 1e-3 and np.abs(main - aux2).max() > 1e-3

    path = tmp_path / "export" / "googlenet" / "1"
    loaded = tf.saved_model.load(str(path))
    assert sorted(loaded.signatures) == ["serve", "serving_default"]
    served = loaded.signatures["serving_default"](images=tf.constant(x))
    np.testing.assert_allclose(served["probabilities"].numpy(), main, atol=1e-5)
    forward = loaded.signatures["serve"](inputs=tf.constant(x))  # the forward pass: main only
    assert len(forward) == 1
    np.testing.assert_allclose(next(iter(forward.values())).numpy(), main, atol=1e-5)
    with open(path / "assets.extra" / "keras_cnns.json") as f:
        serving = json.load(f)["serving"]
    assert serving["output"] == "predictions" and list(serving["signatures"]) == [
        "serving_default"]
