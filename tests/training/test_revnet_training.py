"""RevNet trains through ``train()`` (model.fit in graph mode, the reconstructing backward pass)
and through ``keras-cnns train``; its paper recipe is the authors' CIFAR schedule.

The full run (RevNet-38 to >= 0.95 held-out on the embedded digits) takes minutes on 2 cores and
is not a test; its command and measured figure are in keras_cnns/models/revnet.py's docstring.
"""

import numpy as np

import keras_cnns
from keras_cnns import cli
from keras_cnns.training import train

QUICK = dict(image_size=16, epochs=1, steps_per_epoch=2, batch_size=16, verbose=0)
SMALL = dict(depth=26, filters=(8, 8, 16, 24))


def test_train_runs_the_reversible_network_in_mixed_precision():
    result = train("revnet38", "digits", model_kwargs=SMALL, seed=1, optimizer="sgd",
                   learning_rate=0.05, precision="mixed_float16", **QUICK)
    model = result.model
    layer = model.get_layer("unit_2_rev")
    assert layer.reversible_backprop and layer.compute_dtype == "float16"
    assert len(result.history["loss"]) == 1 and np.isfinite(result.history["loss"][0])
    stats = [v for v in model.non_trainable_weights if "moving_mean" in v.path]
    assert stats and all(np.any(np.asarray(v) != 0) for v in stats)  # BN statistics moved


def test_cli_trains_revnet(tmp_path, capsys):
    argv = ["train", "revnet38", "--epochs", "1", "--steps-per-epoch", "2", "--image-size", "16",
            "--batch-size", "16", "--optimizer", "sgd", "--lr", "0.05", "--no-export",
            "--model-arg", "depth=26", "--model-arg", "filters=(8, 8, 16, 24)",
            "--checkpoint-dir", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    assert "held-out top-1:" in capsys.readouterr().out


def test_paper_recipe_is_the_authors_cifar_schedule():
    recipe = keras_cnns.model_info("revnet164").recipe("paper")
    assert (recipe["optimizer"], recipe["learning_rate"], recipe["momentum"]) == ("sgd", 0.1, 0.9)
    assert (recipe["batch_size"], recipe["weight_decay"]) == (100, 2e-4)
    # 80k iterations of batch 100 over 50k images, /10 at 40k and 60k
    assert recipe["epochs"] == 80000 * 100 // 50000 and recipe["milestones"] == (0.5, 0.75)
