"""keras_cnns.data.load_tfds, offline: tfds.testing.mock_data generates data from real metadata."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_cnns.data import DatasetUnavailableError, load_dataset, load_tfds


def _first(ds):
    return next(iter(ds))


def test_mnist_resized_to_rgb():
    with tfds.testing.mock_data(num_examples=20):
        s = load_tfds("mnist", image_size=32, channels=3, batch_size=8)
        x, y = _first(s.train)
        xv, yv = _first(s.val)
    assert s.name == "mnist" and s.num_classes == 10 and s.input_shape == (32, 32, 3)
    assert (s.train_size, s.val_size) == (20, 20)
    assert s.class_names == tuple(str(i) for i in range(10))
    for images, labels in ((x, y), (xv, yv)):
        assert images.shape == (8, 32, 32, 3) and images.dtype == tf.float32
        assert labels.dtype == tf.int32 and np.all(labels.numpy() < 10)
        assert np.all(labels.numpy() >= 0)
        assert images.numpy().min() >= 0.0 and images.numpy().max() <= 1.0
        np.testing.assert_array_equal(images[..., 0].numpy(), images[..., 1].numpy())
    assert s.mean == (0.0, 0.0, 0.0) and s.std == (1.0, 1.0, 1.0)


def test_cifar10_native_and_grey():
    with tfds.testing.mock_data(num_examples=20):
        native = load_tfds("cifar10", batch_size=8)
        x, _ = _first(native.train)
        grey = load_tfds("cifar10", channels=1, batch_size=8, shuffle=False)
        xg, yg = _first(grey.train)
        raw = next(iter(tfds.load("cifar10", split="train", as_supervised=True).batch(8)))
    assert native.input_shape == (32, 32, 3) and x.shape == (8, 32, 32, 3)
    assert len(native.class_names) == native.num_classes == 10
    assert grey.input_shape == (32, 32, 1) and xg.shape == (8, 32, 32, 1)
    assert xg.numpy().min() >= 0.0 and xg.numpy().max() <= 1.0
    # preprocess reproduces the pipeline from source uint8 images (mock data is deterministic)
    np.testing.assert_allclose(grey.preprocess(raw[0]).numpy(), xg.numpy(), atol=1e-6)
    np.testing.assert_array_equal(raw[1].numpy(), yg.numpy())


def test_normalize_uses_train_statistics():
    with tfds.testing.mock_data(num_examples=40):
        s = load_tfds("cifar10", batch_size=16, normalize=True)
        xt = np.concatenate([x.numpy() for x, _ in s.train])
    assert xt.shape == (40, 32, 32, 3)
    np.testing.assert_allclose(xt.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(xt.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    assert len(s.mean) == 3 and all(0.0 < m < 1.0 for m in s.mean)


def test_load_dataset_dispatches_to_tfds():
    with tfds.testing.mock_data(num_examples=10):
        s = load_dataset("mnist", image_size=16, batch_size=4)
    assert s.name == "mnist" and s.input_shape == (16, 16, 1)


def test_download_failure_gives_a_clear_error(monkeypatch):
    cause = tfds.download.DownloadError("Failed to get url https://example/mnist: no route")

    def offline_load(*args, **kwargs):
        raise cause

    monkeypatch.setattr(tfds, "load", offline_load)
    with pytest.raises(DatasetUnavailableError, match="data_dir") as info:
        load_tfds("mnist", data_dir="/nonexistent/tfds")
    message = str(info.value)
    assert "network" in message and "'mnist'" in message and "no route" in message
    assert info.value.__cause__ is cause


def test_other_errors_are_not_disguised(monkeypatch):
    def bad_split(*args, **kwargs):
        raise ValueError("Unknown split 'validation'")

    monkeypatch.setattr(tfds, "load", bad_split)
    with pytest.raises(ValueError, match="Unknown split") as info:
        load_tfds("mnist", val_split="validation")
    assert not isinstance(info.value, DatasetUnavailableError)

    def missing_dependency(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'importlib_resources'",
                                  name="importlib_resources")

    monkeypatch.setattr(tfds, "load", missing_dependency)
    with pytest.raises(DatasetUnavailableError, match="pip install importlib_resources"):
        load_tfds("cifar10")


def test_missing_data_without_download(tmp_path):
    """Real tensorflow-datasets, no network needed: an empty data_dir and download=False."""
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        load_tfds("mnist", data_dir=str(tmp_path), download=False)


def test_unknown_dataset_is_a_value_error():
    with pytest.raises(ValueError, match="`name`.*Received: name='no_such_dataset_xyz'"):
        load_tfds("no_such_dataset_xyz", download=False)


@pytest.mark.parametrize("arg,value", [
    ("name", ""), ("image_size", 0), ("image_size", 3.5), ("channels", 2), ("channels", 3.0),
    ("batch_size", 0), ("train_split", ""), ("val_split", None), ("shuffle", "no"),
    ("seed", None), ("download", 1), ("normalize", "yes"), ("shuffle_buffer", 0),
])
def test_bad_arguments_raise_value_error_naming_them(arg, value):
    kwargs = {"name": "mnist", arg: value}
    with pytest.raises(ValueError, match=rf"`{arg}`.*Received: {arg}="):
        load_tfds(**kwargs)
