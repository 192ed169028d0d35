"""Datasets for training and evaluating keras_cnns models.

* :func:`load` -- ``load(name, split="train", batch_size=..., image_size=..., augment=...)``: a
  batched ``tf.data.Dataset`` of ``(images, labels)`` with the papers' augmentation, for every
  dataset of :data:`DATASETS` (digits, CIFAR-10/100, SVHN, MNIST, Fashion-MNIST, Imagenette,
  ImageNet, ``folder:PATH``); :func:`info` its classes and sizes; :func:`load_splits` both
  splits as a :class:`DatasetSplits`.

* :func:`load_digits` -- the embedded default: scikit-learn's 1797 real handwritten digits (no
  download), upsampled and normalised for CNNs.
* :func:`load_tfds` -- any tensorflow-datasets image-classification dataset (CIFAR-10/100, SVHN,
  MNIST, ImageNet...), which must be downloadable or already prepared in ``data_dir``.
* :func:`load_dataset` -- ``"digits"`` or a tensorflow-datasets name.
* :func:`top_k_accuracy` -- top-1 / top-K accuracy (the ILSVRC definition).
"""

from __future__ import annotations

from keras_cnns.data.digits import load_digits
from keras_cnns.data.pipelines import (DATASETS, DatasetInfo, DatasetSpec, build_pipeline, info,
                                       list_datasets, load, load_splits)
from keras_cnns.data.metrics import top_k_accuracy
from keras_cnns.data.splits import DatasetSplits, DatasetUnavailableError
from keras_cnns.data.tfds_loader import load_tfds

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DatasetSpec",
    "build_pipeline",
    "info",
    "list_datasets",
    "load",
    "load_splits",
    "DatasetSplits",
    "DatasetUnavailableError",
    "load_dataset",
    "load_digits",
    "load_tfds",
    "top_k_accuracy",
]


def load_dataset(name: str = "digits", **kwargs) -> DatasetSplits:
    """``"digits"`` -> :func:`load_digits`, any other name -> :func:`load_tfds` (``name`` passed).

    Raises:
        ValueError: ``name`` is not a non-empty string, or an invalid keyword for the loader.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"`name` must be 'digits' or a tensorflow-datasets name. "
                         f"Received: name={name!r}")
    if name.strip().lower() == "digits":
        return load_digits(**kwargs)
    return load_tfds(name, **kwargs)
