"""EfficientNet B0-B7 and ``efficientnet(phi)``: keras.applications equality (random weights
copied), the compound-scaling formula, drop connect, the Normalization fold, errors.

Parameter counts and multiply-adds of the registered variants are checked against
``reference_figures.csv`` by the generic matrix; the torchvision layout against torchvision in
tests/models/test_torchvision_bridge.py.
"""

import math

import keras
import numpy as np
import pytest

import keras_cnns
from keras_cnns.layers import DropPath, GroupedDepthwiseConv2D, InputNormalization
from keras_cnns.models import shapes_only
from keras_cnns.bridges import from_keras_applications, weighted_layers
from keras_cnns.models.efficientnet import VARIANTS, EfficientNet, efficientnet

from test_keras_apps import (  # noqa: E402  (tests/models on sys.path)
    _assert_same_layout, _outputs, _randomize, _x)

ATOL = 1e-4


def _set_source_normalization(model, mean, variance):
    """keras.applications' stock Normalization snapshots its statistics: set and refresh them."""
    (norm,) = [l for l in model.layers if isinstance(l, keras.layers.Normalization)]
    norm.adapt_mean.assign(np.asarray(mean, "float32"))
    norm.adapt_variance.assign(np.asarray(variance, "float32"))
    norm.finalize_state()


#: B4-B7 only scale B3's stages deeper and wider (the same MBConv blocks, ``round_filters`` /
#: ``round_repeats``): their structure is compared with keras.applications' (every weighted
#: layer's name and weight sizes, in order, both built without allocating weights), their
#: outputs on B0-B3. The four forward comparisons took 78 s of the suite.
STRUCTURE_ONLY = ("b4", "b5", "b6", "b7")


def test_structure_only_variants_are_registered():
    assert set(STRUCTURE_ONLY) < set(VARIANTS)


@pytest.mark.parametrize("variant", STRUCTURE_ONLY)
def test_deep_variants_have_keras_applications_layers(variant):
    kw = dict(input_shape=(64, 64, 3), classes=7, classifier_activation=None)
    with shapes_only():
        src = getattr(keras.applications, f"EfficientNet{variant.upper()}")(weights=None, **kw)
        dst = keras_cnns.create_model(f"efficientnet_{variant}", **kw)
    _assert_same_layout(dst, src)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v not in STRUCTURE_ONLY])
def test_outputs_match_keras_applications(variant):
    shape = (64, 64, 3)
    kw = dict(input_shape=shape, classes=7, classifier_activation=None)
    src = getattr(keras.applications, f"EfficientNet{variant.upper()}")(weights=None, **kw)
    dst = keras_cnns.create_model(f"efficientnet_{variant}", **kw)
    src_names = [l.name for l in weighted_layers(src)]
    assert src_names == [l.name for l in weighted_layers(dst)]  # keras.applications' names
    _randomize(src, seed=len(variant) + int(variant[1]))
    _set_source_normalization(src, [0.4, 0.5, 0.6], [0.05, 0.06, 0.07])
    x = _x(shape) * 40 + 127  # pixels: Rescaling(1/255) then Normalization on both sides
    expected = _outputs(src, x)
    assert np.abs(expected).max() > 1e-2
    assert not np.allclose(_outputs(dst, x), expected, atol=1e-3)
    from_keras_applications(src, dst)
    np.testing.assert_allclose(_outputs(dst, x), expected, atol=ATOL, rtol=1e-4)


def test_headless_matches_keras_applications():
    shape = (48, 56, 3)  # non-square, odd strided sides on the way: correct_pad both ways
    src = keras.applications.EfficientNetB0(weights=None, include_top=False, input_shape=shape)
    dst = EfficientNet(include_top=False, input_shape=shape)
    _randomize(src, seed=3)
    _set_source_normalization(src, [0.5, 0.4, 0.3], [0.04, 0.05, 0.06])
    x = _x(shape) * 40 + 127
    from_keras_applications(src, dst)
    np.testing.assert_allclose(_outputs(dst, x), _outputs(src, x), atol=ATOL, rtol=1e-4)


def test_imagenet_checkpoint_rescaling_is_folded_into_the_variance():
    # keras.applications' ImageNet models: Normalization holds the std as its variance and a
    # Rescaling(1 / sqrt(std)) follows it. A copy into our single Normalization must divide
    # by the std, as the source does.
    std = np.array([0.229, 0.224, 0.225], "float32")
    mean = np.array([0.485, 0.456, 0.406], "float32")
    inp = keras.Input((8, 8, 3))
    norm = keras.layers.Normalization(axis=-1)
    t = norm(inp)
    t = keras.layers.Rescaling([1.0 / math.sqrt(s) for s in std])(t)
    src = keras.Model(inp, keras.layers.Conv2D(4, 3, name="c")(t))
    _set_source_normalization(src, mean, std)
    inp2 = keras.Input((8, 8, 3))
    dst = keras.Model(inp2, keras.layers.Conv2D(4, 3, name="c")(InputNormalization()(inp2)))
    x = np.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3)).astype("float32")
    from_keras_applications(src, dst)
    np.testing.assert_allclose(dst.layers[1].adapt_variance.numpy(), std ** 2, rtol=1e-6)
    np.testing.assert_allclose(_outputs(dst, x), _outputs(src, x), atol=1e-5, rtol=1e-5)


def test_default_normalization_is_imagenet_statistics():
    model = EfficientNet(input_shape=(32, 32, 3), include_top=False)
    norm = model.get_layer("normalization")
    assert isinstance(norm, InputNormalization)
    x = np.full((1, 32, 32, 3), 255.0 * 0.485, "float32")
    sub = keras.Model(model.input, norm.output)
    np.testing.assert_allclose(_outputs(sub, x)[..., 0], 0.0, atol=1e-5)
    np.testing.assert_allclose(norm.adapt_variance.numpy(), np.square([0.229, 0.224, 0.225]),
                               rtol=1e-6)
    # the statistics are read at call time: assigning them changes the output
    norm.adapt_mean.assign(np.zeros(3, "float32"))
    assert float(np.abs(_outputs(sub, x)[..., 0]).min()) > 1.0


def test_compound_scaling_formula():
    # phi = 0 is B0; phi = 2 scales depth 1.44, width 1.21, side round(224 * 1.3225) = 296
    with shapes_only():
        b0 = efficientnet(0)
        two = efficientnet(2)
        ref = EfficientNet(width=1.1 ** 2, depth=1.2 ** 2, input_shape=(296, 296, 3))
    assert b0.count_params() == keras_cnns.create_model("efficientnet_b0").count_params()
    assert two.input_shape == (None, 296, 296, 3) and two.name == "efficientnet_phi2"
    assert two.count_params() == ref.count_params()
    dws = [l for l in two.layers if isinstance(l, GroupedDepthwiseConv2D)]
    # repeats ceil(1.44 * n) for n = 1, 2, 2, 3, 3, 4, 1
    assert len(dws) == sum(math.ceil(1.44 * n) for n in (1, 2, 2, 3, 3, 4, 1)) == 26
    # channels make_divisible(c * 1.21, 8): the stem 32 -> 40, the top 1280 -> 1552
    assert two.get_layer("stem_conv").filters == 40
    assert two.get_layer("top_conv").filters == 1552


def test_drop_connect_rates_grow_with_the_block_index():
    model = EfficientNet(input_shape=(32, 32, 3), drop_connect_rate=0.2)
    drops = {l.name: l.rate for l in model.layers if isinstance(l, DropPath)}
    total = 16  # B0's blocks; the skip blocks (stride 1, same width) carry the drop
    skip_blocks = {"block2b": 2, "block3b": 4, "block4b": 6, "block4c": 7, "block5b": 9,
                   "block5c": 10, "block6b": 12, "block6c": 13, "block6d": 14}
    assert drops == pytest.approx({f"{k}_drop": 0.2 * i / total for k, i in skip_blocks.items()})
    x = _x((32, 32, 3)) * 40 + 127
    np.testing.assert_array_equal(_outputs(model, x), _outputs(model, x))  # off at inference
    none = EfficientNet(input_shape=(32, 32, 3), drop_connect_rate=0.0)
    assert not any(isinstance(l, DropPath) for l in none.layers)


@pytest.mark.parametrize("call, arg", [
    (lambda: EfficientNet(width=0), "width"), (lambda: EfficientNet(depth=-1), "depth"),
    (lambda: EfficientNet(layout="caffe"), "layout"),
    (lambda: EfficientNet(include_preprocessing="yes"), "include_preprocessing"),
    (lambda: EfficientNet(dropout=1.0), "dropout"),
    (lambda: EfficientNet(drop_connect_rate=-0.1), "drop_connect_rate"),
    (lambda: efficientnet(-1), "phi"), (lambda: efficientnet(1, alpha=0.9), "alpha"),
    (lambda: efficientnet(1, gamma=float("nan")), "gamma"),
    (lambda: efficientnet(1, width=2.0), "width"),
])
def test_invalid_arguments(call, arg):
    with pytest.raises(ValueError, match=f"`{arg}`"):
        call()
