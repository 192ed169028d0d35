"""The callback that moves scheduled drop-path along with training (Zoph et al. 2018,
"ScheduledDropPath": the drop probability rises linearly over training).

TF-slim's ``NasNetABaseCell._apply_drop_path`` scales each cell's drop rate by
``min(1, global_step / total_training_steps)``; here every
:class:`keras_cnns.layers.drop_path_schedule.ScheduledDropPath` layer holds that ratio as a
weight, and :class:`DropPathSchedule` sets it before each training step from the optimizer's
step counter (so a resumed run, whose optimizer restored its ``iterations``, continues where it
stopped). :func:`keras_cnns.training.train` attaches one to every model that holds such layers
(:func:`drop_path_schedule_for`), with the run's total steps.
"""

from __future__ import annotations

from typing import Optional

import keras

from keras_cnns._checks import check_positive_int
from keras_cnns.layers.drop_path_schedule import scheduled_drop_path_layers

__all__ = ["DropPathSchedule", "drop_path_schedule_for"]


class DropPathSchedule(keras.callbacks.Callback):
    """Set ``progress = min(1, step / total_steps)`` on every scheduled drop-path layer of the
    model before each training batch (``step``: the optimizer's ``iterations``, the steps taken
    so far).

    Args:
        total_steps: the steps of the whole training run (TF-slim's
            ``total_training_steps``), a positive integer.
    """

    def __init__(self, total_steps):
        super().__init__()
        self.total_steps = check_positive_int("total_steps", total_steps)
        self._layers = []
        self._value = None

    def on_train_begin(self, logs=None):
        self._layers = scheduled_drop_path_layers(self.model)
        self._value = None

    def _step(self):
        optimizer = getattr(self.model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        return 0 if iterations is None else int(keras.ops.convert_to_numpy(iterations))

    def on_train_batch_begin(self, batch, logs=None):
        value = min(1.0, self._step() / self.total_steps)
        if value != self._value:  # unchanged once it reaches 1 (or with a fixed step count)
            for layer in self._layers:
                layer.progress.assign(value)
            self._value = value


def drop_path_schedule_for(model, total_steps) -> Optional[DropPathSchedule]:
    """A :class:`DropPathSchedule` over ``total_steps`` if ``model`` holds scheduled drop-path
    layers, else ``None``."""
    if not scheduled_drop_path_layers(model):
        return None
    return DropPathSchedule(total_steps)
