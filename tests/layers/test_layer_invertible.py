import keras
import numpy as np
import pytest

from keras_cnns.layers import InvertibleDownsampling, InvertibleUpsampling


def np_space_to_depth(x, b):
    n, h, w, c = x.shape
    return x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // b, w // b, b * b * c)


@pytest.mark.parametrize("b,shape", [(2, (2, 4, 6, 3)), (3, (1, 6, 9, 2)), (2, (1, 8, 8, 1))])
def test_forward_is_space_to_depth_and_inverse_is_exact(b, shape, rng):
    x = rng.normal(size=shape).astype("float32")
    layer = InvertibleDownsampling(b)
    y = np.asarray(layer(x))
    n, h, w, c = shape
    assert y.shape == (n, h // b, w // b, c * b * b)
    assert layer.compute_output_shape(shape) == y.shape
    np.testing.assert_array_equal(y, np_space_to_depth(x, b))
    # a permutation: same element count and multiset of values
    assert y.size == x.size
    np.testing.assert_array_equal(np.sort(y, axis=None), np.sort(x, axis=None))
    # exact (bitwise) inverse, by the method and by the inverse layer
    back = np.asarray(layer.inverse(y))
    assert back.tobytes() == x.tobytes()
    up = layer.inverse_layer()
    assert isinstance(up, InvertibleUpsampling)
    assert np.asarray(up(y)).tobytes() == x.tobytes()
    assert np.asarray(up.inverse(x)).tobytes() == y.tobytes()


def test_upsampling_shape():
    up = InvertibleUpsampling(2)
    assert up.compute_output_shape((None, 3, 4, 8)) == (None, 6, 8, 2)


def test_serialization(save_load, config_roundtrip, rng):
    assert config_roundtrip(InvertibleDownsampling(3)).block_size == 3
    assert config_roundtrip(InvertibleUpsampling(2)).block_size == 2
    inp = keras.Input((4, 4, 2))
    t = InvertibleDownsampling(2)(keras.layers.Conv2D(2, 1)(inp))
    m = keras.Model(inp, InvertibleUpsampling(2)(keras.layers.Conv2D(8, 1)(t)), name="inv")
    save_load(m, rng.normal(size=(2, 4, 4, 2)).astype("float32"))


@pytest.mark.parametrize("cls", [InvertibleDownsampling, InvertibleUpsampling])
@pytest.mark.parametrize("b", [0, 1, -2, 2.0, None])
def test_invalid_block_size(cls, b):
    with pytest.raises(ValueError, match=r"block_size.*Received: block_size="):
        cls(b)


def test_indivisible_spatial_size_raises_at_build():
    with pytest.raises(ValueError, match=r"W \(5\) must be divisible by `block_size`.*Received: block_size=2"):
        InvertibleDownsampling(2)(keras.Input((4, 5, 3)))
    with pytest.raises(ValueError, match=r"divisible by `block_size`\*\*2.*Received: block_size=2"):
        InvertibleUpsampling(2)(keras.Input((4, 4, 6)))
