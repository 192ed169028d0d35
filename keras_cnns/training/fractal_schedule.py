"""Freeze-drop-path: the stagewise training schedule of Fractal of FractalNet.

Smith & Topin, "Deep Convolutional Neural Network Design Patterns", 2016 (arXiv:1611.00847),
freeze-drop-path: the network is trained in stages. In the first stage every path
but the computationally simplest is dropped and that path is trained; its weights are then
frozen (their learning rate set to zero: here ``trainable = False``) and the next, deeper path
is added and trained on top of the frozen ones; and so on until every path is in, each new
path learning to correct the simpler ones. The paper notes that the first stages run faster;
here they do not: the paths not yet added are still computed, and the joins leave them out
(their weights get zero gradients). (The authors' ``freeze_drop_path.cpp`` Caffe layer samples
the stage per iteration instead; this callback is the staged schedule the paper describes.)

:class:`FreezeDropPath` works on any model with a
:class:`~keras_cnns.layers.fractal.FractalPathState` whose column group ``group`` numbers the
paths (:func:`keras_cnns.models.fractalnet.FractalOfFractalNet`: group 1, layers of path ``p``
named ``path{p}_``): at the start of stage ``s`` it keeps paths ``0 .. s`` in the network
(``FractalPathState.set_active``; every join leaves the others out, in training and inference),
sets ``trainable = False`` on the layers of paths ``0 .. s - 1`` (frozen BatchNormalization
layers also stop updating their statistics and normalise with them), and rebuilds the compiled
training step so that the optimizer only updates what is trainable. Layers on no path (the
classifier, the joins) stay trainable unless ``freeze_head``.
"""

from __future__ import annotations

from typing import Sequence, Union

import keras

from keras_cnns._checks import check_bool, check_positive_int, fail, is_int
from keras_cnns.layers.fractal import fractal_state
from keras_cnns.models.fractalnet import path_layers

__all__ = ["FreezeDropPath"]


class FreezeDropPath(keras.callbacks.Callback):
    """Train the paths of a fractal network one stage at a time, freezing the finished ones.

    Args:
        stage_epochs: the epochs of each stage, one positive integer per path (simplest
            first), or one integer for every stage. The last stage runs until training ends.
        group: the column group of the model's ``FractalPathState`` that numbers the paths
            (1 for Fractal of FractalNet).
        freeze_head: also freeze the layers on no path (the classifier) after the first stage.

    Attributes:
        stage: the current stage (``-1`` before training).

    Raises:
        ValueError: bad arguments, or (when training starts) a model without paths.
    """

    def __init__(self, stage_epochs: Union[int, Sequence[int]], group: int = 1,
                 freeze_head: bool = False):
        super().__init__()
        if is_int(stage_epochs):
            stage_epochs = check_positive_int("stage_epochs", stage_epochs)
        elif isinstance(stage_epochs, (str, bytes)) or not hasattr(stage_epochs, "__len__") \
                or not stage_epochs or not all(is_int(e) and e >= 1 for e in stage_epochs):
            fail("stage_epochs", "must be a positive integer or one per path", stage_epochs)
        else:
            stage_epochs = tuple(int(e) for e in stage_epochs)
        if not is_int(group) or group < 0:
            fail("group", "must be a non-negative integer", group)
        self.stage_epochs = stage_epochs
        self.group = int(group)
        self.freeze_head = check_bool("freeze_head", freeze_head)
        self.stage = -1
        self._state = None

    def _paths(self):
        state = fractal_state(self.model)
        if state is None or self.group >= len(state.columns):
            fail("model", f"must be a fractal network with a column group {self.group} of paths "
                          "(e.g. FractalOfFractalNet)", getattr(self.model, "name", None))
        self._state = state
        paths = state.columns[self.group]
        if not is_int(self.stage_epochs) and len(self.stage_epochs) != paths:
            fail("stage_epochs", f"must have one entry per path ({paths})", self.stage_epochs)
        return paths

    def stage_of(self, epoch: int) -> int:
        """The stage of ``epoch`` (0-based)."""
        paths = self._paths()
        per = (self.stage_epochs,) * paths if is_int(self.stage_epochs) else self.stage_epochs
        end = 0
        for s, n in enumerate(per[:-1]):
            end += n
            if epoch < end:
                return s
        return paths - 1

    def enter_stage(self, stage: int):
        """Paths ``0 .. stage`` in the network, ``0 .. stage - 1`` frozen; recompile the step."""
        paths = self._paths()
        self._state.set_active(stage + 1, group=self.group)
        on_path = set()
        for p in range(paths):
            for layer in path_layers(self.model, p):
                on_path.add(id(layer))
                layer.trainable = p >= stage
        if self.freeze_head and stage > 0:
            for layer in self.model.layers:
                if id(layer) not in on_path and layer.weights and layer is not self._state:
                    layer.trainable = False
        self.stage = stage
        if getattr(self.model, "train_function", None) is not None:
            self.model.make_train_function(force=True)

    def on_train_begin(self, logs=None):
        self._paths()
        self.stage = -1

    def on_epoch_begin(self, epoch, logs=None):
        stage = self.stage_of(epoch)
        if stage != self.stage:
            self.enter_stage(stage)
