"""Image-classification datasets from tensorflow-datasets (CIFAR-10/100, SVHN, MNIST, ImageNet...).

``tfds.load(name, split=[train_split, val_split], as_supervised=True, with_info=True)``, then
resize (when asked), convert channels (grey -> RGB by replication, RGB -> grey by luminance),
scale to [0, 1] float32, batch, prefetch. Images are NOT mean/std-normalised unless
``normalize=True`` (one pass over the training split computes per-channel statistics).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from keras_cnns._checks import fail, is_int
from keras_cnns.data.splits import DatasetSplits, DatasetUnavailableError

__all__ = ["load_tfds"]




def _validate(name, image_size, channels, batch_size, train_split, val_split, shuffle, seed,
              download, cache, normalize, shuffle_buffer):
    if not isinstance(name, str) or not name.strip():
        fail("name", "must be a non-empty tensorflow-datasets name, e.g. 'cifar10'", name)
    if image_size is not None and (not is_int(image_size) or image_size < 1):
        fail("image_size", "must be None (native size) or an integer >= 1", image_size)
    if channels is not None and (not is_int(channels) or channels not in (1, 3)):
        fail("channels", "must be None (native), 1 or 3", channels)
    if not is_int(batch_size) or batch_size < 1:
        fail("batch_size", "must be an integer >= 1", batch_size)
    for arg, value in (("train_split", train_split), ("val_split", val_split)):
        if not isinstance(value, str) or not value:
            fail(arg, "must be a tensorflow-datasets split string, e.g. 'train[:90%]'", value)
    for arg, value in (("shuffle", shuffle), ("download", download), ("cache", cache),
                       ("normalize", normalize)):
        if not isinstance(value, bool):
            fail(arg, "must be True or False", value)
    if not is_int(seed):
        fail("seed", "must be an integer", seed)
    if not is_int(shuffle_buffer) or shuffle_buffer < 1:
        fail("shuffle_buffer", "must be an integer >= 1", shuffle_buffer)


def _tfds_load(name, splits, data_dir, download, shuffle, seed, prepare=None):
    import tensorflow_datasets as tfds

    read_config = tfds.ReadConfig(shuffle_seed=seed)
    try:
        return tfds.load(name, split=list(splits), as_supervised=True, with_info=True,
                         data_dir=data_dir, download=download, shuffle_files=shuffle,
                         read_config=read_config)
    except tfds.core.registered.DatasetNotFoundError as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"`name` is not a tensorflow-datasets dataset ({first_line}). "
                         f"Received: name={name!r}") from None
    except ValueError:  # a bad split, or not a supervised dataset: not an availability problem
        raise
    except ImportError as exc:  # e.g. etils' epath needs `importlib_resources` to download
        raise DatasetUnavailableError(
            f"tensorflow-datasets could not load {name!r}: a dependency it needs to download or "
            f"prepare data is missing ({type(exc).__name__}: {exc}). Install it (pip install "
            f"{getattr(exc, 'name', None) or '<module>'}) or pass data_dir= with the prepared "
            "dataset and download=False."
        ) from exc
    except Exception as exc:  # download / missing-data / network failures of every kind
        where = (f"data_dir={data_dir!r}" if data_dir
                 else "the default tensorflow-datasets directory")
        raise DatasetUnavailableError(
            f"tensorflow-datasets could not load {name!r} from {where}"
            f"{' and could not download it' if download else ' (download=False)'}: "
            f"{type(exc).__name__}: {exc}\n"
            + (prepare or "This machine may have no network access. Prepare the dataset where "
               f"there is network (`tfds build {name}` or tfds.load({name!r}, data_dir=DIR)), "
               "copy DIR here and pass data_dir=DIR")
            + "; or use the embedded dataset ('digits')."
        ) from exc


def _num_examples(ds, info, split) -> Optional[int]:
    n = int(ds.cardinality())
    if n >= 0:
        return n
    try:
        return int(info.splits[split].num_examples)
    except Exception:  # unknown / not generated
        return None


def load_tfds(name: str, image_size: Optional[int] = None, channels: Optional[int] = None,
              batch_size: int = 64, data_dir: Optional[str] = None, train_split: str = "train",
              val_split: str = "test", shuffle: bool = True, seed: int = 0,
              download: bool = True, cache: bool = False, normalize: bool = False,
              shuffle_buffer: int = 10_000) -> DatasetSplits:
    """A supervised image-classification dataset from tensorflow-datasets.

    Args:
        name: the tensorflow-datasets name (``"cifar10"``, ``"mnist"``, ``"svhn_cropped"``...).
        image_size: resize to ``image_size x image_size`` (bilinear); ``None`` keeps the native
            size (required for datasets whose images vary in size).
        channels: 1 or 3 to convert (grey -> RGB replicates, RGB -> grey by luminance); ``None``
            keeps the native channels.
        batch_size: examples per batch.
        data_dir: where the prepared dataset lives (tensorflow-datasets' default when ``None``).
        train_split, val_split: split expressions (``"train[:90%]"``, ``"train[90%:]"``...).
        shuffle: shuffle the training files and examples each epoch.
        seed: seed of the file and example shuffles.
        download: let tensorflow-datasets download and prepare the data when it is missing.
        cache: cache the decoded training and held-out images in memory (small datasets).
        normalize: standardise with per-channel mean/std of the training split (one extra pass
            over it); otherwise images stay in [0, 1] (``mean = 0, std = 1``).
        shuffle_buffer: examples in the shuffle buffer.

    Returns:
        DatasetSplits with ``train``/``val`` yielding ``(float32 [B, H, W, C], int32 [B])``.

    Raises:
        ValueError: an invalid argument, an unknown dataset name, a dataset that is not an image
            classification dataset, or variable-size images with ``image_size=None``.
        DatasetUnavailableError: the data is not here and could not be downloaded (no network).
    """
    _validate(name, image_size, channels, batch_size, train_split, val_split, shuffle, seed,
              download, cache, normalize, shuffle_buffer)
    (train_raw, val_raw), info = _tfds_load(name, (train_split, val_split), data_dir, download,
                                           shuffle, seed)
    image_key, label_key = info.supervised_keys or (None, None)
    label_feature = info.features[label_key] if label_key else None
    num_classes = getattr(label_feature, "num_classes", None)
    image_feature = info.features[image_key] if image_key else None
    native_shape = tuple(getattr(image_feature, "shape", ()) or ())
    if num_classes is None or len(native_shape) != 3:
        raise ValueError(f"`name` must be an image-classification dataset with supervised keys "
                         f"(image [H, W, C], class label). Received: name={name!r}")
    h, w, c = native_shape
    out_c = channels if channels is not None else c
    out_h, out_w = (image_size, image_size) if image_size is not None else (h, w)
    if out_h is None or out_w is None:
        raise ValueError(f"{name!r} has images of varying size: pass `image_size`. "
                         f"Received: image_size={image_size!r}")
    if out_c is None:
        raise ValueError(f"{name!r} has an unknown number of channels: pass `channels`. "
                         f"Received: channels={channels!r}")

    def to01(image):
        """Source images (uint8, [..., H, W, C]) -> float32 [..., out_h, out_w, out_c] in [0, 1]."""
        x = tf.convert_to_tensor(image)
        x = tf.image.convert_image_dtype(x, tf.float32)  # integer dtypes scale to [0, 1]
        if (image_size is not None) and (h != out_h or w != out_w):
            x = tf.clip_by_value(tf.image.resize(x, [out_h, out_w], method="bilinear"), 0.0, 1.0)
        src_c = x.shape[-1]
        if src_c != out_c:
            if src_c == 1:
                x = tf.tile(x, [1] * (x.shape.rank - 1) + [out_c])
            elif src_c == 3 and out_c == 1:
                x = tf.image.rgb_to_grayscale(x)
            else:
                raise ValueError(f"cannot convert {src_c} channels to {out_c}. "
                                 f"Received: channels={channels!r}")
        return x

    def pipeline(ds, training):
        ds = ds.map(lambda img, lab: (to01(img), tf.cast(lab, tf.int32)),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if cache:
            ds = ds.cache()
        if training and shuffle:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return ds

    train = pipeline(train_raw, training=True)
    val = pipeline(val_raw, training=False)
    mean, std = np.zeros(out_c), np.ones(out_c)
    if normalize:
        mean, std = _channel_statistics(train.batch(256), out_c)
        m, s = tf.constant(mean, tf.float32), tf.constant(std, tf.float32)
        train = train.map(lambda x, y: ((x - m) / s, y), num_parallel_calls=tf.data.AUTOTUNE)
        val = val.map(lambda x, y: ((x - m) / s, y), num_parallel_calls=tf.data.AUTOTUNE)
    train = train.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    val = val.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    mean_t = tuple(float(v) for v in mean)
    std_t = tuple(float(v) for v in std)

    def preprocess(images):
        """Source images (as stored: uint8 ``[N, H, W, C]``) -> model inputs."""
        return (to01(images) - np.asarray(mean_t, np.float32)) / np.asarray(std_t, np.float32)

    names = getattr(label_feature, "names", None) or [str(i) for i in range(num_classes)]
    return DatasetSplits(
        train=train,
        val=val,
        num_classes=int(num_classes),
        input_shape=(int(out_h), int(out_w), int(out_c)),
        train_size=_num_examples(train_raw, info, train_split),
        val_size=_num_examples(val_raw, info, val_split),
        class_names=tuple(names),
        name=name,
        mean=mean_t,
        std=std_t,
        preprocess=preprocess,
    )


def _channel_statistics(batches, channels):
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    count = 0
    for x, _ in batches:
        x = x.numpy().astype(np.float64).reshape(-1, channels)
        total += x.sum(0)
        total_sq += np.square(x).sum(0)
        count += x.shape[0]
    if count == 0:
        raise ValueError("the training split is empty: cannot compute normalisation statistics. "
                         "Received: normalize=True")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    return mean, np.maximum(std, 1e-6)
