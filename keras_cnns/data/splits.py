"""``DatasetSplits``: what every loader of :mod:`keras_cnns.data` returns."""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Tuple

import numpy as np

__all__ = ["DatasetSplits", "DatasetUnavailableError"]


class DatasetUnavailableError(RuntimeError):
    """A dataset exists but cannot be read here (not downloaded, and no network to fetch it)."""


class _ExportMetadata:
    """The ``metadata()`` of :class:`DatasetSplits` and :class:`~keras_cnns.data.DatasetInfo`
    (both have ``name``, ``input_shape``, ``num_classes``, ``class_names``, ``mean``, ``std``)."""

    def metadata(self) -> dict:
        """JSON-serialisable facts an exported model needs (input shape, normalisation, classes)."""
        return {
            "dataset": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": int(self.num_classes),
            "class_names": list(self.class_names),
            "input_scale": "images scaled to [0, 1], then (x - mean) / std per channel",
            "mean": [float(m) for m in self.mean],
            "std": [float(s) for s in self.std],
        }


@dataclasses.dataclass
class DatasetSplits(_ExportMetadata):
    """A training and a held-out split, batched and prefetched, with what a model needs to know.

    Attributes:
        train: ``tf.data.Dataset`` of ``(images, labels)`` batches: images ``float32`` NHWC,
            labels ``int32`` class indices. Shuffled each epoch when the loader was asked to.
        val: the held-out split, same structure, never shuffled.
        num_classes: number of classes.
        input_shape: ``(H, W, C)`` of one image, as a model's ``input_shape``.
        train_size: examples in ``train`` (``None`` when unknown).
        val_size: examples in ``val`` (``None`` when unknown).
        class_names: one name per class index.
        name: the dataset's name (``"digits"``, ``"cifar10"``, ...).
        mean, std: per-channel statistics the pipeline normalised with, ``x = (x01 - mean) /
            std`` where ``x01`` is the image scaled to [0, 1]. ``mean = 0, std = 1`` means the
            images are simply in [0, 1]. Record them with an exported model: serving inputs must be
            normalised the same way.
        preprocess: maps images as the source stores them (digits: ``(N, 8, 8)`` values 0..16;
            tensorflow-datasets: ``uint8`` ``(N, H, W, C)``) to exactly what the model was fed
            (resize, channels, scale, normalise). Use it at inference time.
    """

    train: object
    val: object
    num_classes: int
    input_shape: Tuple[int, int, int]
    train_size: Optional[int]
    val_size: Optional[int]
    class_names: Tuple[str, ...]
    name: str
    mean: Tuple[float, ...] = (0.0,)
    std: Tuple[float, ...] = (1.0,)
    preprocess: Optional[Callable] = dataclasses.field(default=None, repr=False, compare=False)

    def normalize(self, images01):
        """Apply this dataset's normalisation to images already resized and scaled to [0, 1]."""
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return (np.asarray(images01, dtype=np.float32) - mean) / std
