import keras
import numpy as np
import pytest

from keras_cnns.layers import LocalResponseNormalization


def np_lrn(a, r, k, alpha, beta, per_element):
    """AlexNet Sec. 3.3 over channels, written with loops; alpha/n when per_element (Caffe)."""
    c = a.shape[-1]
    n = 2 * r + 1
    coef = alpha / n if per_element else alpha
    out = np.empty_like(a, dtype="float64")
    for i in range(c):
        lo, hi = max(0, i - r), min(c - 1, i + r)
        s = (a[..., lo:hi + 1].astype("float64") ** 2).sum(-1)
        out[..., i] = a[..., i] / (k + coef * s) ** beta
    return out


@pytest.mark.parametrize("kwargs", [
    {},
    {"alpha_is_per_element": False},
    {"depth_radius": 1, "bias": 1.0, "alpha": 0.5, "beta": 0.5},
    {"depth_radius": 0, "alpha": 2.0},
    {"depth_radius": 5, "bias": 1.0, "alpha": 1e-2, "beta": 0.75},   # window wider than C
])
def test_matches_paper_formula(kwargs, rng):
    x = (rng.normal(size=(2, 3, 4, 7)) * 10).astype("float32")
    layer = LocalResponseNormalization(**kwargs)
    cfg = dict(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75, alpha_is_per_element=True)
    cfg.update(kwargs)
    ref = np_lrn(x, cfg["depth_radius"], cfg["bias"], cfg["alpha"], cfg["beta"], cfg["alpha_is_per_element"])
    y = np.asarray(layer(x))
    assert y.shape == x.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_per_element_convention_differs(rng):
    x = (rng.normal(size=(1, 2, 2, 8)) * 30).astype("float32")
    a = np.asarray(LocalResponseNormalization(alpha=1e-2)(x))
    b = np.asarray(LocalResponseNormalization(alpha=1e-2, alpha_is_per_element=False)(x))
    assert not np.allclose(a, b, rtol=1e-3)
    assert LocalResponseNormalization(alpha=1e-4).effective_alpha == pytest.approx(2e-5)


def test_float16_input(rng):
    x = rng.normal(size=(1, 2, 2, 5)).astype("float16")
    layer = LocalResponseNormalization(dtype="float16")
    y = layer(x)
    assert y.dtype == "float16"
    np.testing.assert_allclose(np.asarray(y, "float32"), np_lrn(x.astype("float32"), 2, 2.0, 1e-4, 0.75, True),
                               rtol=2e-3)


def test_serialization(save_load, config_roundtrip, rng):
    layer = LocalResponseNormalization(depth_radius=3, bias=1.5, alpha=2e-4, beta=0.5, alpha_is_per_element=False)
    clone = config_roundtrip(layer)
    assert (clone.depth_radius, clone.bias, clone.alpha, clone.beta, clone.alpha_is_per_element) == (
        3, 1.5, 2e-4, 0.5, False)
    inp = keras.Input((4, 4, 3))
    m = keras.Model(inp, LocalResponseNormalization(alpha=0.1)(keras.layers.Conv2D(6, 1)(inp)), name="lrn")
    save_load(m, (rng.normal(size=(2, 4, 4, 3)) * 5).astype("float32"))


@pytest.mark.parametrize("kwargs,arg", [
    ({"depth_radius": -1}, "depth_radius"),
    ({"depth_radius": 2.0}, "depth_radius"),
    ({"bias": -1.0}, "bias"),
    ({"alpha": -1e-4}, "alpha"),
    ({"beta": "0.75"}, "beta"),
    ({"alpha_is_per_element": 1}, "alpha_is_per_element"),
])
def test_invalid_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=rf"{arg}.*Received: {arg}="):
        LocalResponseNormalization(**kwargs)


def test_rejects_non_4d_input():
    with pytest.raises(ValueError):
        LocalResponseNormalization()(keras.Input((4, 3)))
