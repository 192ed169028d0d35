"""``load(name, split, batch_size, image_size, augment, ...)``: the input pipelines of the papers.

One catalogue (:data:`DATASETS`) says, per dataset, where it comes from (the embedded digits,
tensorflow-datasets, or a folder of images), its splits, its per-channel normalisation and its
papers' augmentation:

=================  ==============================  ==========================================
dataset            source                          training augmentation (evaluation: none)
=================  ==============================  ==========================================
``digits``         scikit-learn (embedded)         none (``augment=True``: 1-pixel shifts)
``cifar10/100``    tfds ``cifar10`` / ``cifar100``  pad 4, random 32x32 crop, flip
``svhn_cropped``   tfds                             pad 4, random crop (no flip)
``mnist``          tfds                             pad 2, random crop (no flip)
``fashion_mnist``  tfds                             pad 2, random crop, flip
``imagenette``     tfds ``imagenette/320px-v2``     Inception random-resized crop, flip;
``imagenet2012``   tfds, manual download            eval: resize to size/0.875, centre crop
``folder:PATH``    ``image_dataset_from_directory``
=================  ==============================  ==========================================

Every random choice is a stateless op seeded from ``(shuffle_seed, example index)``
(:mod:`keras_cnns.data.augment`): the same seeds give the same batches in any process, which is
what lets :func:`keras_cnns.training.train` resume an interrupted epoch exactly. Maps run with
``num_parallel_calls=AUTOTUNE`` (deterministic order) and the pipeline ends with ``prefetch``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from keras_cnns._checks import fail, is_int
from keras_cnns.data import augment as aug
from keras_cnns.data.splits import DatasetSplits, DatasetUnavailableError, _ExportMetadata

__all__ = ["DATASETS", "DatasetSpec", "DatasetInfo", "build_pipeline", "info", "list_datasets",
           "load", "load_splits"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's / keras.applications' "torch" mode
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the catalogue.

    Attributes:
        name: the name :func:`load` takes.
        source: ``"digits"``, ``"tfds"`` or ``"folder"``.
        tfds_name: the tensorflow-datasets name (and config).
        train_split, test_split: its training and held-out splits.
        style: augmentation family: ``"digits"``, ``"cifar"`` (pad-crop) or ``"imagenet"``
            (random-resized crop / centre crop).
        pad, flip: the pad-crop padding and whether to mirror (``"cifar"`` style).
        mean, std: per-channel normalisation of [0, 1] images (the usual published statistics).
        native_size: the side of its images (``None``: they vary).
        prepare: how to get the data onto a machine, for the error when it is missing.
    """

    name: str
    source: str
    tfds_name: Optional[str] = None
    train_split: str = "train"
    test_split: str = "test"
    style: str = "cifar"
    pad: int = 4
    flip: bool = True
    mean: Tuple[float, ...] = (0.5,)
    std: Tuple[float, ...] = (0.5,)
    native_size: Optional[int] = None
    prepare: str = ""


def _tfds_prepare(name):
    return (f"On a machine with network: `tfds build {name} --data_dir DIR` (or "
            f"tfds.load({name!r}, data_dir=DIR)); copy DIR here and pass data_dir=DIR "
            "(--data-dir DIR)")


DATASETS = {spec.name: spec for spec in (
    DatasetSpec("digits", "digits", style="digits", native_size=8,
                prepare="embedded in scikit-learn: nothing to prepare"),
    DatasetSpec("cifar10", "tfds", "cifar10", mean=(0.4914, 0.4822, 0.4465),
                std=(0.2470, 0.2435, 0.2616), native_size=32, prepare=_tfds_prepare("cifar10")),
    DatasetSpec("cifar100", "tfds", "cifar100", mean=(0.5071, 0.4865, 0.4409),
                std=(0.2673, 0.2564, 0.2762), native_size=32,
                prepare=_tfds_prepare("cifar100")),
    DatasetSpec("svhn_cropped", "tfds", "svhn_cropped", flip=False,
                mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970), native_size=32,
                prepare=_tfds_prepare("svhn_cropped")),
    DatasetSpec("mnist", "tfds", "mnist", pad=2, flip=False, mean=(0.1307,), std=(0.3081,),
                native_size=28, prepare=_tfds_prepare("mnist")),
    DatasetSpec("fashion_mnist", "tfds", "fashion_mnist", pad=2, mean=(0.2860,),
                std=(0.3530,), native_size=28, prepare=_tfds_prepare("fashion_mnist")),
    DatasetSpec("imagenette", "tfds", "imagenette/320px-v2", test_split="validation",
                style="imagenet", mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
                prepare=_tfds_prepare("imagenette/320px-v2")),
    DatasetSpec("imagenet2012", "tfds", "imagenet2012", test_split="validation",
                style="imagenet", mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
                prepare=("ImageNet cannot be downloaded automatically: download "
                         "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from "
                         "https://image-net.org into DIR/downloads/manual, run `tfds build "
                         "imagenet2012 --data_dir DIR --manual_dir DIR/downloads/manual`, then "
                         "pass data_dir=DIR (--data-dir DIR)")),
    DatasetSpec("folder", "folder", test_split="validation", style="imagenet",
                mean=_IMAGENET_MEAN, std=_IMAGENET_STD,
                prepare="a directory with one sub-directory of images per class"),
)}

_FOLDER_VALIDATION = 0.2


def list_datasets():
    """The dataset names :func:`load` accepts (``folder:PATH`` for a folder of images)."""
    return sorted(n for n in DATASETS if n != "folder") + ["folder:PATH"]


def _spec(name, data_dir):
    """``(spec, data_dir)`` for a dataset name; ``folder:PATH`` puts PATH into ``data_dir``."""
    if not isinstance(name, str) or not name.strip():
        fail("name", f"must be one of {list_datasets()}", name)
    key = name.strip()
    if key.lower().startswith("folder:"):
        path = key[len("folder:"):]
        if not path:
            fail("name", "folder:PATH needs a directory path", name)
        return DATASETS["folder"], path
    key = key.lower()
    if key not in DATASETS:
        fail("name", f"must be one of {list_datasets()}", name)
    spec = DATASETS[key]
    if spec.source == "folder" and not data_dir:
        fail("data_dir", "must be the image folder for name='folder' (or use 'folder:PATH')",
             data_dir)
    return spec, data_dir


def _check_data_dir(spec, data_dir):
    if data_dir is None:
        return
    if not isinstance(data_dir, (str, os.PathLike)) or not os.fspath(data_dir):
        fail("data_dir", "must be None or a directory path", data_dir)
    if not os.path.isdir(os.fspath(data_dir)):
        raise DatasetUnavailableError(
            f"`data_dir` does not exist or is not a directory: {os.fspath(data_dir)!r}. "
            f"{spec.name}: {spec.prepare}. Received: data_dir={os.fspath(data_dir)!r}")


def _split_name(spec, split):
    if not isinstance(split, str) or not split.strip():
        fail("split", "must be 'train', 'test' or a tensorflow-datasets split expression", split)
    split = split.strip()
    if split == "test":
        return spec.test_split
    if split in ("validation", "val") and spec.test_split == "validation":
        return "validation"
    return split


@dataclasses.dataclass(frozen=True)
class DatasetInfo(_ExportMetadata):
    """What a model and a training loop need to know about a dataset, without reading it."""

    name: str
    num_classes: int
    input_shape: Tuple[int, int, int]
    train_size: Optional[int]
    test_size: Optional[int]
    class_names: Tuple[str, ...] = dataclasses.field(repr=False)
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    native_size: Optional[int]


def _channels_stats(values, channels):
    values = tuple(float(v) for v in values)
    if len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    return (float(np.mean(values)),) * channels  # RGB statistics for a grey model


def _default_size(spec, image_size):
    if image_size is not None:
        if not is_int(image_size) or image_size < 1:
            fail("image_size", "must be None or a positive integer", image_size)
        return int(image_size)
    if spec.style == "digits":
        return 64  # the embedded default: 8x8 digits upsampled (see keras_cnns.data.digits)
    if spec.native_size:
        return spec.native_size
    return 224


def _check_common(batch_size, channels, seed, shuffle_seed, augment, mixup, drop_remainder):
    if not is_int(batch_size) or batch_size < 1:
        fail("batch_size", "must be a positive integer", batch_size)
    if channels is not None and (not is_int(channels) or channels not in (1, 3)):
        fail("channels", "must be None (the dataset's own), 1 or 3", channels)
    if not is_int(seed):
        fail("seed", "must be an integer", seed)
    if shuffle_seed is not None and not is_int(shuffle_seed):
        fail("shuffle_seed", "must be None or an integer", shuffle_seed)
    if augment is not None and not isinstance(augment, bool):
        fail("augment", "must be None (on for 'train'), True or False", augment)
    if isinstance(mixup, bool) or not isinstance(mixup, (int, float)) or mixup < 0:
        fail("mixup", "must be a number >= 0 (the Beta(alpha, alpha) parameter; 0 = off)", mixup)
    if not isinstance(drop_remainder, bool):
        fail("drop_remainder", "must be True or False", drop_remainder)


# ----------------------------------------------------------------------------------------------
# Sources: (raw dataset of (image, label), size, class names, native channels)
# ----------------------------------------------------------------------------------------------

def _tfds_source(spec, split, data_dir, shuffle, shuffle_seed, download):
    from keras_cnns.data.tfds_loader import _tfds_load

    (raw,), tinfo = _tfds_load(spec.tfds_name, (split,), data_dir, download, shuffle,
                               shuffle_seed, prepare=spec.prepare)
    image_key, label_key = tinfo.supervised_keys
    feature = tinfo.features[label_key]
    native_c = tinfo.features[image_key].shape[-1]
    n = int(raw.cardinality())
    if n < 0:
        try:
            n = int(tinfo.splits[split].num_examples)
        except Exception:  # noqa: BLE001 - unknown size
            n = None
    names = tuple(getattr(feature, "names", None) or range(feature.num_classes))
    return raw, n, tuple(str(c) for c in names), native_c


def _folder_source(path, split, seed, size):
    if not os.path.isdir(path):
        raise DatasetUnavailableError(
            f"`data_dir` does not exist or is not a directory: {path!r}. Expected a directory "
            f"with one sub-directory of images per class. Received: data_dir={path!r}")
    subset = "training" if split == "train" else "validation"
    if split not in ("train", "validation"):
        fail("split", "must be 'train' or 'test' for a folder of images", split)
    load_size = int(np.ceil(size / aug.CROP_FRACTION))
    try:
        ds = keras_image_dataset(path, subset, seed, load_size)
    except ValueError as exc:
        raise DatasetUnavailableError(f"cannot read images from {path!r}: {exc}. Expected one "
                                      "sub-directory of images per class.") from exc
    names = tuple(ds.class_names)
    n = int(ds.cardinality())
    ds = ds.map(lambda x, y: (tf.cast(x, tf.uint8), y))
    return ds, n, names, 3


def keras_image_dataset(path, subset, seed, load_size):
    import contextlib
    import io

    import keras

    with contextlib.redirect_stdout(io.StringIO()):  # "Found N files..." despite verbose=False
        return keras.utils.image_dataset_from_directory(
            path, labels="inferred", label_mode="int", batch_size=None, image_size=(load_size,) * 2,
            crop_to_aspect_ratio=True, shuffle=True, seed=int(seed) % (2 ** 31),
            validation_split=_FOLDER_VALIDATION, subset=subset, verbose=False)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------

def info(name: str = "digits", data_dir: Optional[str] = None, image_size: Optional[int] = None,
         channels: Optional[int] = None, seed: int = 0, download: bool = False) -> DatasetInfo:
    """Classes, input shape, split sizes and normalisation of a dataset (reads no images)."""
    spec, data_dir = _spec(name, data_dir)
    _check_data_dir(spec, data_dir)
    size = _default_size(spec, image_size)
    if spec.source == "digits":
        c = channels or 3
        splits = load_splits("digits", image_size=size, channels=c, seed=seed)
        return DatasetInfo("digits", splits.num_classes, splits.input_shape, splits.train_size,
                           splits.val_size, splits.class_names, splits.mean, splits.std, 8)
    if spec.source == "folder":
        _, n_train, names, native_c = _folder_source(data_dir, "train", seed, size)
        _, n_test, _, _ = _folder_source(data_dir, "validation", seed, size)
        label = f"folder:{data_dir}"
    else:
        _, n_train, names, native_c = _tfds_source(spec, spec.train_split, data_dir, False, seed,
                                                   download)
        _, n_test, _, _ = _tfds_source(spec, spec.test_split, data_dir, False, seed, download)
        label = spec.name
    c = channels or native_c
    return DatasetInfo(label, len(names), (size, size, c), n_train, n_test, names,
                       _channels_stats(spec.mean, c), _channels_stats(spec.std, c),
                       spec.native_size)


def load(name: str = "digits", split: str = "train", batch_size: int = 64,
         image_size: Optional[int] = None, augment: Optional[bool] = None, mixup: float = 0.0,
         channels: Optional[int] = None, seed: int = 0, shuffle: Optional[bool] = None,
         shuffle_seed: Optional[int] = None, data_dir: Optional[str] = None,
         download: bool = False, drop_remainder: bool = False,
         shuffle_buffer: int = 10_000) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of ``(images, labels)`` for training or evaluation.

    Args:
        name: a dataset of :data:`DATASETS` (``list_datasets()``) or ``"folder:PATH"``.
        split: ``"train"``, ``"test"`` (the held-out split: ``test`` or ``validation``) or a
            tensorflow-datasets split expression (``"train[:90%]"``).
        batch_size: images per batch.
        image_size: the square side the model takes (e.g. ``round(rho * 224)``); default the
            dataset's native size (ImageNet-style datasets: 224; digits: 64).
        augment: the papers' training augmentation; default on for ``"train"`` (except the
            digits, whose default recipe trains without), off otherwise.
        mixup: ``alpha`` of mixup (0 = off); labels become soft ``[B, classes]``.
        channels: 1 or 3 (grey is replicated, RGB becomes luminance); default the dataset's.
        seed: fixes the dataset (digits' and folders' train/held-out split).
        shuffle: shuffle the examples; default on for ``"train"``.
        shuffle_seed: seeds the order, the crops, flips and mixup (default ``seed``); a new
            value per epoch gives a new, reproducible epoch.
        data_dir: the tensorflow-datasets directory (or the image folder).
        download: let tensorflow-datasets download a missing dataset (needs network).
        drop_remainder: drop the last, smaller batch.
        shuffle_buffer: examples in the shuffle buffer (tensorflow-datasets sources).

    Returns:
        ``tf.data.Dataset`` of ``(float32 [B, S, S, C] normalised images, int32 [B] labels)``
        (``float32 [B, classes]`` labels with mixup).

    Raises:
        ValueError: an invalid argument or an unknown dataset (the message names it).
        keras_cnns.data.DatasetUnavailableError: the data is not on this machine (the message
            says how to prepare it).
    """
    spec, data_dir = _spec(name, data_dir)
    _check_data_dir(spec, data_dir)
    _check_common(batch_size, channels, seed, shuffle_seed, augment, mixup, drop_remainder)
    if not is_int(shuffle_buffer) or shuffle_buffer < 1:
        fail("shuffle_buffer", "must be a positive integer", shuffle_buffer)
    size = _default_size(spec, image_size)
    split = _split_name(spec, split)
    training = split.startswith(spec.train_split) and split != spec.test_split
    if augment is None:  # the papers' augmentation in training; the digits' main job uses none
        augment = training and spec.style != "digits"
    shuffle = training if shuffle is None else bool(shuffle)
    shuffle_seed = seed if shuffle_seed is None else int(shuffle_seed)

    if spec.source == "digits":
        if split not in ("train", "test"):
            fail("split", "must be 'train' or 'test' for the digits", split)
        s = load_splits("digits", batch_size=batch_size, image_size=size, channels=channels or 3,
                        seed=seed, shuffle=shuffle, shuffle_seed=shuffle_seed, augment=augment,
                        reshuffle_each_iteration=False)
        ds = (s.train if split == "train" else s.val).unbatch()
        n = s.train_size if split == "train" else s.val_size
        ds = ds.apply(tf.data.experimental.assert_cardinality(n))  # lost by unbatch
        num_classes = s.num_classes
        return _finish(ds, batch_size, drop_remainder, mixup, num_classes, shuffle_seed)

    if spec.source == "folder":
        raw, _, names, native_c = _folder_source(data_dir, split, seed, size)
    else:
        raw, _, names, native_c = _tfds_source(spec, split, data_dir, shuffle, shuffle_seed,
                                               download)
    return build_pipeline(raw, spec, size, batch_size=batch_size, augment=augment,
                          native_channels=native_c, channels=channels, shuffle=shuffle,
                          shuffle_seed=shuffle_seed, shuffle_buffer=shuffle_buffer,
                          mixup=mixup, num_classes=len(names), drop_remainder=drop_remainder)


def build_pipeline(raw, spec, size, *, batch_size, augment, native_channels, channels=None,
                   shuffle=False, shuffle_seed=0, shuffle_buffer=10_000, mixup=0.0,
                   num_classes=None, drop_remainder=False):
    """The pipeline of :func:`load` on any ``tf.data.Dataset`` of ``(image, label)`` (decoded
    ``uint8`` images, or JPEG bytes for ImageNet-style specs): shuffle, per-example seeded
    augmentation or evaluation resize, channels, normalisation, batch, mixup, prefetch."""
    native_c = native_channels
    out_c = channels or native_c
    mean = tf.constant(_channels_stats(spec.mean, out_c), tf.float32)
    std = tf.constant(_channels_stats(spec.std, out_c), tf.float32)
    if shuffle:
        raw = raw.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=False)
    raw = raw.enumerate()
    base = tf.constant([shuffle_seed, 0], tf.int64)

    def prepare(index, example):
        image, label = example
        seed2 = tf.stack([base[0], tf.cast(index, tf.int64)])
        if spec.style == "imagenet":
            if augment:
                x = aug.random_resized_crop(image, size, seed2, channels=native_c)
            else:
                x = aug.center_crop(image, size, channels=native_c)
        else:
            x = tf.image.convert_image_dtype(image, tf.float32)
            if x.shape[0] != size or x.shape[1] != size:
                x = tf.clip_by_value(tf.image.resize(x, [size, size], method="bilinear"), 0., 1.)
            if augment:
                pad = max(1, round(spec.pad * size / (spec.native_size or size)))
                x = aug.pad_crop_flip(x, seed2, pad=pad, flip=spec.flip)
        x = _convert_channels(x, out_c)
        x = (x - mean) / std
        x = tf.ensure_shape(x, [size, size, out_c])
        return x, tf.cast(label, tf.int32)

    ds = raw.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _finish(ds, batch_size, drop_remainder, mixup, num_classes, shuffle_seed)


def _convert_channels(x, out_c):
    c = x.shape[-1]
    if c == out_c:
        return x
    if c == 1:
        return tf.tile(x, [1, 1, out_c])
    return tf.image.rgb_to_grayscale(x)


def _finish(ds, batch_size, drop_remainder, mixup, num_classes, shuffle_seed):
    ds = ds.batch(batch_size, drop_remainder=drop_remainder,
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if mixup:
        alpha = float(mixup)

        def mix(index, batch):
            x, y = batch
            return aug.mixup(x, y, tf.stack([tf.constant(shuffle_seed + 1, tf.int64),
                                             tf.cast(index, tf.int64)]), alpha, num_classes)

        ds = ds.enumerate().map(mix, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def load_splits(name: str = "digits", batch_size: int = 64, image_size: Optional[int] = None,
                channels: Optional[int] = None, seed: int = 0, augment: bool = False,
                data_dir: Optional[str] = None, download: bool = False,
                shuffle: bool = True, shuffle_seed: Optional[int] = None,
                reshuffle_each_iteration: bool = True) -> DatasetSplits:
    """The training and held-out splits with their metadata, as a :class:`DatasetSplits`."""
    spec, data_dir = _spec(name, data_dir)
    if spec.source == "digits":
        from keras_cnns.data.digits import load_digits

        return load_digits(image_size=_default_size(spec, image_size), channels=channels or 3,
                           seed=seed, batch_size=batch_size, shuffle=shuffle, augment=augment,
                           shuffle_seed=shuffle_seed,
                           reshuffle_each_iteration=reshuffle_each_iteration)
    meta = info(name, data_dir=data_dir, image_size=image_size, channels=channels, seed=seed,
                download=download)
    kw = dict(batch_size=batch_size, image_size=meta.input_shape[0], channels=meta.input_shape[2],
              seed=seed, data_dir=data_dir, download=download)
    train = load(name, "train", augment=augment, shuffle=shuffle, shuffle_seed=shuffle_seed, **kw)
    test = load(name, "test", augment=False, shuffle=False, **kw)
    mean = np.asarray(meta.mean, np.float32)
    std = np.asarray(meta.std, np.float32)
    size = meta.input_shape[0]
    c = meta.input_shape[2]
    style = spec.style

    def preprocess(images):
        """Source images (uint8 ``[N, H, W, C]``) -> model inputs (as evaluation sees them)."""
        images = tf.convert_to_tensor(images)
        if style == "imagenet":
            x = tf.map_fn(lambda im: aug.center_crop(im, size), images,
                          fn_output_signature=tf.float32)
        else:
            x = tf.image.convert_image_dtype(images, tf.float32)
            x = tf.clip_by_value(tf.image.resize(x, [size, size]), 0.0, 1.0)
        if x.shape[-1] != c:
            x = tf.tile(x, [1, 1, 1, c]) if x.shape[-1] == 1 else tf.image.rgb_to_grayscale(x)
        return (x - mean) / std

    return DatasetSplits(train=train, val=test, num_classes=meta.num_classes,
                         input_shape=meta.input_shape, train_size=meta.train_size,
                         val_size=meta.test_size, class_names=meta.class_names, name=meta.name,
                         mean=meta.mean, std=meta.std, preprocess=preprocess)
