"""Training: recipes, schedules, the loop, checkpoints, strategies, ``keras-cnns train``.

* :class:`Recipe` -- every setting of a run that is not the model or the data (optimizer,
  schedule, epochs, batch size, weight decay, label smoothing, augmentation, mixup, precision,
  XLA), validated; :func:`resolve_recipe` reads a model's default or paper recipe from the
  registry (``model_info(name).recipe("paper")``: data in ``keras_cnns/models/_recipes.py``).
* :func:`make_schedule` / :class:`WarmupSchedule` -- linear warm-up, then constant, step, poly,
  cosine or exponential decay.
* :func:`train` -- ``train(model_or_name, data, recipe, strategy=None, callbacks=(), ...)``:
  per-epoch deterministic data, precise BatchNorm, top-1/top-5, atomic checkpoints and resume,
  TensorBoard, ``tf.distribute``, SavedModel export of the best epoch.
* :class:`CheckpointManager` -- the checkpoint format (verified on read, written atomically);
  :func:`load_checkpoint_model` rebuilds a run's model from its checkpoint directory.
* :func:`recalibrate_batch_norm` / :class:`PreciseBatchNorm` -- exact BatchNorm statistics.

The default job (``keras-cnns train`` with no arguments) trains ``squeezenet1_1_simple_bypass``
on the embedded digits with the library's default recipe: Adam 1e-3, a 2-epoch linear warm-up,
poly (power 1) decay to 0, batch 64, 30 epochs, 64x64 inputs, no XLA on CPU.

Why not SqueezeNet's paper solver (SGD, momentum 0.9, base_lr 0.04, poly, weight decay 2e-4;
``recipe="paper"``)? With simple bypass the four identity sums make fire9's non-negative features
~15x larger than in the plain network, so conv10's curvature is orders of magnitude above the
rest of the network's: every SGD learning rate we tried (1e-4 ... 4e-2, with warm-up, with
gradient clipping) either leaves the backbone untrained or throws the class maps below zero
within a few dozen steps (9-10 of 10 classes dead, 0.10-0.20 held-out accuracy in 8 epochs).
Adam's per-weight step sizes remove the scale mismatch; the warm-up keeps its first, sign-like
steps from moving whole class maps below zero before the features discriminate.
"""

from keras_cnns.training.checkpoint import (CheckpointError, CheckpointManager,
                                            load_checkpoint_model)
from keras_cnns.training.cli import add_arguments, parse_model_args, run
from keras_cnns.training.distribute import STRATEGIES, make_strategy
from keras_cnns.training.drop_path_schedule import DropPathSchedule, drop_path_schedule_for
from keras_cnns.training.fractal_schedule import FreezeDropPath
from keras_cnns.training.loop import (DEFAULT_DATASET, DEFAULT_MODEL, ClassificationLoss,
                                      TrainResult, train)
from keras_cnns.training.precise_bn import PreciseBatchNorm, recalibrate_batch_norm
from keras_cnns.training.recipe import (OPTIMIZERS, PRECISIONS, SCHEDULES, Recipe,
                                        resolve_recipe)
from keras_cnns.training.schedules import WarmupPolyDecay, WarmupSchedule, make_schedule

__all__ = [
    "CheckpointError", "CheckpointManager", "ClassificationLoss", "DEFAULT_DATASET",
    "DEFAULT_MODEL", "DropPathSchedule", "FreezeDropPath", "OPTIMIZERS", "PRECISIONS", "PreciseBatchNorm", "Recipe", "SCHEDULES",
    "STRATEGIES", "TrainResult", "WarmupPolyDecay", "WarmupSchedule", "add_arguments", "drop_path_schedule_for",
    "load_checkpoint_model", "make_schedule", "make_strategy", "parse_model_args", "recalibrate_batch_norm",
    "resolve_recipe", "run", "train",
]
