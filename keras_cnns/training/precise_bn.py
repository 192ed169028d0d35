"""Precise BatchNorm statistics (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm") during
training: :class:`PreciseBatchNorm`. The recalibration itself, :func:`recalibrate_batch_norm`, lives
in :mod:`keras_cnns.layers.precise_bn` (export uses it too) and is re-exported here."""

from __future__ import annotations

from typing import Optional

import keras

from keras_cnns.layers.precise_bn import batch_norm_layers, recalibrate_batch_norm

__all__ = ["PreciseBatchNorm", "batch_norm_layers", "recalibrate_batch_norm"]


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recalibrates BatchNormalization statistics (:func:`recalibrate_batch_norm`) on
    ``max_batches`` batches of ``dataset`` before every evaluation ``fit`` runs, so the per-epoch
    ``val_*`` figures use the statistics the network is trained with, not stale moving averages.
    """

    def __init__(self, dataset, max_batches: Optional[int] = 5):
        super().__init__()
        self.dataset = dataset
        self.max_batches = max_batches

    def on_test_begin(self, logs=None):
        recalibrate_batch_norm(self.model, self.dataset, max_batches=self.max_batches)
