"""keras_cnns.data.load: the papers' pipelines, offline (tfds.testing.mock_data, a temp folder).

References are independent of the pipeline: NumPy crops of the same padded image, TF's own
resize, the published normalisation constants.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_cnns import data
from keras_cnns.data import augment as aug

CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def _all(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def _raw_cifar(split="train"):
    raw = tfds.load("cifar10", split=split, as_supervised=True)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in raw])
    return np.stack(xs), np.array(ys)


def test_cifar10_mock_train_and_test_shapes_dtypes_and_augmentation():
    with tfds.testing.mock_data(num_examples=24):
        info = data.info("cifar10")
        train_x, train_y = _all(data.load("cifar10", "train", batch_size=8, shuffle=False))
        plain_x, plain_y = _all(data.load("cifar10", "train", batch_size=8, shuffle=False,
                                          augment=False))
        test_x, test_y = _all(data.load("cifar10", "test", batch_size=8))
        raw_train, raw_train_y = _raw_cifar("train")
        raw_test, raw_test_y = _raw_cifar("test")
    assert info.num_classes == 10 and info.input_shape == (32, 32, 3)
    assert (info.train_size, info.test_size) == (24, 24)
    assert train_x.shape == (24, 32, 32, 3) and train_x.dtype == np.float32
    assert train_y.dtype == np.int32 and set(train_y) <= set(range(10))
    np.testing.assert_array_equal(train_y, raw_train_y)
    # evaluation: no augmentation, exactly the normalised source images (published statistics)
    np.testing.assert_allclose(test_x, (raw_test / 255.0 - CIFAR_MEAN) / CIFAR_STD, atol=1e-5)
    np.testing.assert_array_equal(test_y, raw_test_y)
    np.testing.assert_allclose(plain_x, (raw_train / 255.0 - CIFAR_MEAN) / CIFAR_STD, atol=1e-5)
    # training: each image is a 32x32 window of the zero-padded (pad 4) image, possibly mirrored
    padded = np.pad(raw_train / 255.0, [(0, 0), (4, 4), (4, 4), (0, 0)])
    padded = (padded - CIFAR_MEAN) / CIFAR_STD
    changed = 0
    for i, got in enumerate(train_x):
        candidates = [img[dy:dy + 32, dx:dx + 32] for img in (padded[i], padded[i][:, ::-1])
                      for dy in range(9) for dx in range(9)]
        errors = [np.abs(c - got).max() for c in candidates]
        assert min(errors) < 1e-4, i
        changed += int(np.abs(got - plain_x[i]).max() > 1e-4)
    assert changed >= 18  # 1/162 of windows is the identity: nearly every image moved


def test_cifar_epochs_are_reproducible_from_the_shuffle_seed():
    with tfds.testing.mock_data(num_examples=32):
        a = _all(data.load("cifar10", batch_size=8, shuffle_seed=5))
        b = _all(data.load("cifar10", batch_size=8, shuffle_seed=5))
        c = _all(data.load("cifar10", batch_size=8, shuffle_seed=6))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert sorted(a[1]) == sorted(c[1])  # the same examples, another order and other crops


def test_imagenet2012_mock_random_resized_crop_in_training_centre_crop_in_evaluation():
    with tfds.testing.mock_data(num_examples=6):
        info = data.info("imagenet2012", image_size=64)
        x, y = next(iter(data.load("imagenet2012", "train", batch_size=6, image_size=64)))
        x2, _ = next(iter(data.load("imagenet2012", "train", batch_size=6, image_size=64,
                                    shuffle=False, shuffle_seed=1)))
        x3, _ = next(iter(data.load("imagenet2012", "train", batch_size=6, image_size=64,
                                    shuffle=False, shuffle_seed=2)))
        ev, ey = next(iter(data.load("imagenet2012", "test", batch_size=6, image_size=64)))
        raw = [im.numpy() for im, _ in tfds.load("imagenet2012", split="validation",
                                                 as_supervised=True).take(6)]
    assert info.num_classes == 1000 and info.input_shape == (64, 64, 3)
    assert info.class_names[0] == "n01440764"
    assert x.shape == (6, 64, 64, 3) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert ev.shape == (6, 64, 64, 3) and ey.dtype == tf.int32
    assert not np.allclose(x2.numpy(), x3.numpy())  # random crops differ between epochs
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    for img, got in zip(raw, ev.numpy()):  # reference: shorter side to 64/0.875=74, centre 64
        h, w = img.shape[:2]
        s = 74 / min(h, w)
        nh, nw = max(64, round(h * s)), max(64, round(w * s))
        ref = tf.image.resize(img.astype(np.float32) / 255.0, [nh, nw]).numpy()
        top, left = (nh - 64) // 2, (nw - 64) // 2
        ref = (np.clip(ref[top:top + 64, left:left + 64], 0, 1) - mean) / std
        np.testing.assert_allclose(got, ref, atol=1e-4)


def test_random_resized_crop_window_statistics_and_jpeg_path():
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    jpeg = tf.io.encode_jpeg(img)
    decoded = tf.io.decode_jpeg(jpeg, channels=3)
    areas = []
    for i in range(64):
        seed = tf.constant([7, i], tf.int64)
        y, x, h, w = [int(v) for v in aug._crop_window(tf.shape(img), seed, (0.08, 1.0),
                                                       (3 / 4, 4 / 3))]
        assert 0 <= y and 0 <= x and y + h <= 120 and x + w <= 160
        areas.append(h * w / (120 * 160))
        a = aug.random_resized_crop(decoded, 32, seed)
        b = aug.random_resized_crop(jpeg, 32, seed)  # decode_and_crop_jpeg: the same window
        assert a.shape == b.shape == (32, 32, 3)
        assert float(tf.reduce_mean(tf.abs(a - b))) < 0.004  # chroma upsampling at the edge
    assert 0.07 <= min(areas) < 0.5 and max(areas) > 0.5  # the 8%-100% area range is used


def test_mixup_mixes_images_and_labels_with_one_lambda():
    images = tf.constant(np.random.default_rng(1).normal(size=(4, 5, 5, 3)), tf.float32)
    labels = tf.constant([0, 1, 2, 3])
    mixed, soft = aug.mixup(images, labels, tf.constant([3, 4], tf.int64), 0.4, 5)
    lam = float(soft[0, 0])
    assert 0.0 <= lam <= 1.0
    np.testing.assert_allclose(soft.numpy().sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(mixed.numpy(), lam * images.numpy()
                               + (1 - lam) * images.numpy()[::-1], atol=1e-5)
    with tfds.testing.mock_data(num_examples=8):
        x, y = next(iter(data.load("cifar10", batch_size=8, mixup=0.2)))
    assert y.shape == (8, 10) and y.dtype == tf.float32


def test_mnist_is_resized_and_replicated_to_rgb_without_flips():
    spec = data.DATASETS["mnist"]
    assert spec.flip is False and data.DATASETS["svhn_cropped"].flip is False
    with tfds.testing.mock_data(num_examples=8):
        x, _ = next(iter(data.load("mnist", "test", batch_size=8, image_size=32, channels=3)))
    assert x.shape == (8, 32, 32, 3)
    np.testing.assert_array_equal(x[..., 0].numpy(), x[..., 2].numpy())


def test_digits_through_load_keeps_the_split_and_varies_the_order(tmp_path):
    a = _all(data.load("digits", batch_size=100, image_size=16, shuffle_seed=1))
    b = _all(data.load("digits", batch_size=100, image_size=16, shuffle_seed=2))
    assert a[0].shape == (1437, 16, 16, 3)
    assert not np.array_equal(a[1], b[1])
    assert sorted(a[0].sum(axis=(1, 2, 3)).round(3)) == sorted(b[0].sum(axis=(1, 2, 3)).round(3))
    test = _all(data.load("digits", "test", batch_size=100, image_size=16))
    assert test[0].shape == (360, 16, 16, 3)
    assert data.info("digits").input_shape == (64, 64, 3)


def test_a_folder_of_images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "owl"):
        (tmp_path / name).mkdir()
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), np.uint8)).save(
                tmp_path / name / f"{i}.png")
    info = data.info(f"folder:{tmp_path}", image_size=24)
    assert info.class_names == ("cat", "dog", "owl") and info.num_classes == 3
    assert info.train_size + info.test_size == 15 and info.test_size == 3
    train = _all(data.load(f"folder:{tmp_path}", batch_size=4, image_size=24))
    test = _all(data.load("folder", "test", batch_size=4, image_size=24, data_dir=str(tmp_path)))
    assert train[0].shape == (12, 24, 24, 3) and test[0].shape == (3, 24, 24, 3)


@pytest.mark.parametrize("kwargs,arg", [
    ({"name": "cifar11"}, "name"),
    ({"name": ""}, "name"),
    ({"name": "digits", "batch_size": 0}, "batch_size"),
    ({"name": "digits", "batch_size": -3}, "batch_size"),
    ({"name": "digits", "mixup": -1.0}, "mixup"),
    ({"name": "digits", "channels": 2}, "channels"),
    ({"name": "digits", "split": "train[:10%]"}, "split"),
    ({"name": "folder"}, "data_dir"),
])
def test_bad_arguments_name_the_argument(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        data.load(**kwargs)


def test_missing_data_is_a_clear_error_saying_how_to_prepare_it(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(data.DatasetUnavailableError, match="data_dir") as err:
        data.load("cifar10", data_dir=missing)
    assert "tfds build cifar10" in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DatasetUnavailableError) as err:
        data.load("imagenet2012", data_dir=str(empty))
    assert "downloads/manual" in str(err.value) and "ILSVRC2012_img_train.tar" in str(err.value)
    with pytest.raises(data.DatasetUnavailableError, match="sub-directory"):
        data.load(f"folder:{missing}")
    assert not os.path.exists(missing)  # nothing created
