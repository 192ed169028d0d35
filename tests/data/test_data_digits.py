"""keras_cnns.data.load_digits: scikit-learn's real digits as a normalised CNN pipeline."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits as sk_load_digits
from sklearn.model_selection import train_test_split

from keras_cnns.data import DatasetSplits, load_dataset, load_digits


def _collect(ds):
    xs, ys = [], []
    for x, y in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def sk():
    bunch = sk_load_digits()
    return bunch.images, bunch.target


@pytest.fixture(scope="module")
def small():
    """16x16 grey digits, the defaults otherwise (fast to iterate)."""
    return load_digits(image_size=16, channels=1, batch_size=128)


def test_default_shapes_dtypes_and_metadata():
    s = load_digits()
    assert isinstance(s, DatasetSplits)
    assert s.name == "digits" and s.num_classes == 10
    assert s.input_shape == (64, 64, 3)
    assert s.class_names == tuple("0123456789")
    x, y = next(iter(s.train))
    assert x.shape == (64, 64, 64, 3) and x.dtype == tf.float32
    assert y.shape == (64,) and y.dtype == tf.int32
    # the grey channel is replicated
    np.testing.assert_array_equal(x[..., 0].numpy(), x[..., 2].numpy())
    assert len(s.mean) == 3 and len(s.std) == 3
    meta = s.metadata()
    assert meta["mean"] == list(s.mean) and meta["input_shape"] == [64, 64, 3]


def test_sizes_add_up(small, sk):
    assert small.train_size + small.val_size == len(sk[1]) == 1797
    assert small.val_size == int(np.ceil(0.2 * 1797))
    xt, yt = _collect(small.train)
    xv, yv = _collect(small.val)
    assert (len(yt), len(yv)) == (small.train_size, small.val_size)
    assert xt.shape[1:] == (16, 16, 1) and yv.max() == 9 and yv.min() == 0


def test_stratified_split(small, sk):
    _, yv = _collect(small.val)
    counts = np.bincount(sk[1], minlength=10)
    val_counts = np.bincount(yv, minlength=10)
    expected = counts * small.val_size / counts.sum()
    assert np.all(np.abs(val_counts - expected) <= 1), (val_counts, expected)


def test_split_and_preprocess_match_sklearn(small, sk):
    """The held-out split is sklearn's stratified split; ``preprocess`` reproduces the pipeline."""
    images, labels = sk
    _, idx_val = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels,
                                  random_state=0, shuffle=True)
    xv, yv = _collect(small.val)
    np.testing.assert_array_equal(yv, labels[idx_val])
    np.testing.assert_allclose(small.preprocess(images[idx_val]).numpy(), xv, atol=1e-6)


def test_normalised_with_train_statistics_only(small):
    xt, _ = _collect(small.train)
    xv, _ = _collect(small.val)
    assert abs(xt.mean()) < 1e-4 and abs(xt.std() - 1.0) < 1e-4
    assert abs(xv.mean()) > 1e-4  # statistics were not computed on (or with) the held-out split
    # undoing the normalisation gives images in [0, 1] containing both extremes
    raw = xt * small.std[0] + small.mean[0]
    assert raw.min() > -1e-5 and raw.max() < 1 + 1e-5
    assert raw.min() < 1e-3 and raw.max() > 0.99
    np.testing.assert_allclose(small.normalize(raw), xt, atol=1e-5)


def test_upsampling_is_bilinear(sk):
    """At image_size=8 the pipeline is just (img / 16 - mean) / std; upsampled images are smooth."""
    images, _ = sk
    s8 = load_digits(image_size=8, channels=1, shuffle=False)
    xv8 = s8.preprocess(images[:4]).numpy()[..., 0]
    np.testing.assert_allclose(xv8 * s8.std[0] + s8.mean[0], images[:4] / 16.0, atol=1e-6)
    s32 = load_digits(image_size=32, channels=1)
    up = s32.preprocess(images[:1]).numpy()[0, ..., 0] * s32.std[0] + s32.mean[0]
    assert len(np.unique(np.round(up, 5))) > 30  # nearest would give at most 17 levels


def test_deterministic_for_a_seed_and_different_for_another():
    a = load_digits(image_size=8, channels=1, seed=3)
    b = load_digits(image_size=8, channels=1, seed=3)
    c = load_digits(image_size=8, channels=1, seed=4)
    xa, ya = _collect(a.train)
    xb, yb = _collect(b.train)
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(xa, xb)
    assert a.mean == b.mean
    va, vc = _collect(a.val), _collect(c.val)
    assert not np.array_equal(va[1], vc[1]) or not np.array_equal(va[0], vc[0])
    # same stratified class counts, different examples
    np.testing.assert_array_equal(np.bincount(va[1]), np.bincount(vc[1]))


def test_train_reshuffled_each_epoch_val_not():
    s = load_digits(image_size=8, channels=1)
    _, y1 = _collect(s.train)
    _, y2 = _collect(s.train)
    assert not np.array_equal(y1, y2)
    np.testing.assert_array_equal(np.sort(y1), np.sort(y2))
    np.testing.assert_array_equal(_collect(s.val)[1], _collect(s.val)[1])
    unshuffled = load_digits(image_size=8, channels=1, shuffle=False)
    np.testing.assert_array_equal(_collect(unshuffled.train)[1], _collect(unshuffled.train)[1])


def test_augment_translates_train_only_deterministically():
    plain = load_digits(image_size=16, channels=1, shuffle=False)
    aug = load_digits(image_size=16, channels=1, shuffle=False, augment=True)
    aug2 = load_digits(image_size=16, channels=1, shuffle=False, augment=True)
    xp, yp = _collect(plain.train)
    xa, ya = _collect(aug.train)
    np.testing.assert_array_equal(yp, ya)
    assert xa.shape == xp.shape
    assert np.mean(np.any(xa != xp, axis=(1, 2, 3))) > 0.5  # most images moved
    np.testing.assert_array_equal(xa, _collect(aug2.train)[0])
    # a translation keeps the pixel values: the 2-pixel-shifted content, background elsewhere
    background = (0.0 - plain.mean[0]) / plain.std[0]
    assert xa.min() >= min(xp.min(), background) - 1e-6
    np.testing.assert_array_equal(_collect(aug.val)[0], _collect(plain.val)[0])


def test_load_dataset_dispatches_to_digits():
    s = load_dataset("digits", image_size=8, channels=1, batch_size=32)
    assert s.name == "digits" and s.input_shape == (8, 8, 1)
    with pytest.raises(ValueError, match="`name`"):
        load_dataset("")


@pytest.mark.parametrize("arg,value", [
    ("image_size", 7), ("image_size", 16.0), ("image_size", True),
    ("channels", 2), ("channels", 0),
    ("validation_split", 0), ("validation_split", 1.0), ("validation_split", 1.5),
    ("validation_split", 0.001), ("validation_split", "0.2"),
    ("batch_size", 0), ("batch_size", 2.5),
    ("seed", 1.5), ("shuffle", "yes"), ("augment", 1), ("resize_method", "lanczos7"),
])
def test_bad_arguments_raise_value_error_naming_them(arg, value):
    with pytest.raises(ValueError, match=rf"`{arg}`.*Received: {arg}="):
        load_digits(**{arg: value})
