"""``from_keras_applications``: weights of keras.applications models copied into ours.

Every check randomises ALL source weights first (kernels, BN gamma/beta and the moving
statistics), copies them across and compares inference outputs with keras.applications' own
model, so a mis-paired or mis-ordered weight would show.
"""

import re

import keras
import numpy as np
import pytest

import keras_cnns
from keras_cnns.layers import GroupedDepthwiseConv2D
from keras_cnns.bridges import from_keras_applications, weighted_layers
from keras_cnns.models.mobilenet import MobileNet

ATOL = 1e-5


def _randomize(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        kind = v.path.rsplit("/", 1)[-1]
        if kind in ("moving_variance", "gamma"):
            a = rng.uniform(0.5, 1.5, v.shape)
        elif kind in ("moving_mean", "beta", "bias"):
            a = rng.normal(0.0, 0.1, v.shape)
        else:  # kernels: variance-preserving scale so activations stay O(1)
            fan_in = max(1, int(np.prod(v.shape[:-1])) if len(v.shape) != 4 or v.shape[2] != 1
                         else int(np.prod(v.shape[:2])))
            a = rng.normal(0.0, 1.0, v.shape) / np.sqrt(fan_in)
        v.assign(a.astype("float32"))


def _weighted_structure(model):
    """Each weighted layer in order: its name (Keras' automatic ``_<n>`` suffix dropped) and the
    sizes of its weights. Equal for two models when they hold the same weights under the same
    names (a depthwise kernel's layout aside): the structural equality for deep variants whose
    outputs are compared on a shallower sibling."""
    return [(re.sub(r"_\d+$", "", l.name) if l.name.startswith(("normalization", "rescaling"))
             else l.name, sorted(int(np.prod(w.shape)) for w in l.weights))
            for l in weighted_layers(model)]


def _assert_same_layout(dst, src):
    """``dst`` holds ``src``'s weights under its names, in its order, and as many parameters:
    the layout check of a deep variant (both usually built under ``shapes_only()``)."""
    assert _weighted_structure(dst) == _weighted_structure(src)
    assert dst.count_params() == src.count_params()


def _x(shape, batch=2, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


def _outputs(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.mark.parametrize("alpha", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("include_top", [True, False])
def test_mobilenet_outputs_match_keras_applications(alpha, include_top):
    shape = (64, 64, 3)
    kw = dict(alpha=alpha, include_top=include_top, input_shape=shape, classes=11)
    if include_top:
        kw["classifier_activation"] = None  # compare logits
    src = keras.applications.MobileNet(weights=None, **kw)
    dst = MobileNet(**kw)
    _randomize(src)
    x = _x(shape)
    expected = _outputs(src, x)
    assert np.abs(expected).max() > 1e-2  # a non-trivial signal
    assert not np.allclose(_outputs(dst, x), expected, atol=1e-3)  # differs before the copy
    assert from_keras_applications(src, dst) is dst
    np.testing.assert_allclose(_outputs(dst, x), expected, atol=ATOL, rtol=1e-4)
    # every target weight now equals its source weight (kernels up to the depthwise reshape)
    for s, t in zip(weighted_layers(src), weighted_layers(dst)):
        for a, b in zip(s.get_weights(), t.get_weights()):
            np.testing.assert_array_equal(a.reshape(b.shape), b)


def test_mobilenet_registry_model_and_depth_multiplier():
    # depth_multiplier=2: the [3,3,C,2] -> [3,3,1,2C] reshape must keep output o = c*2 + k.
    shape = (48, 48, 3)
    src = keras.applications.MobileNet(alpha=0.25, depth_multiplier=2, weights=None, include_top=False,
                                       input_shape=shape, pooling="avg")
    dst = keras_cnns.create_model("mobilenet_0_25", depth_multiplier=2, include_top=False,
                                  input_shape=shape, pooling="avg")
    _randomize(src, seed=3)
    from_keras_applications(src, dst)
    x = _x(shape)
    np.testing.assert_allclose(_outputs(dst, x), _outputs(src, x), atol=ATOL, rtol=1e-4)


def _depthwise_pair(c=3, m=3):
    inp = keras.Input((9, 9, c))
    src = keras.Model(inp, keras.layers.DepthwiseConv2D(3, depth_multiplier=m, padding="same", name="dw")(inp))
    inp2 = keras.Input((9, 9, c))
    dst = keras.Model(inp2, GroupedDepthwiseConv2D(kernel_size=3, depth_multiplier=m, name="gdw")(inp2))
    return src, dst


def test_depthwise_kernel_order_is_c_times_m_plus_k():
    src, dst = _depthwise_pair()
    _randomize(src)
    x = _x((9, 9, 3))
    from_keras_applications(src, dst)
    np.testing.assert_allclose(_outputs(dst, x), _outputs(src, x), atol=ATOL)
    k = src.layers[-1].kernel.numpy()  # [3, 3, C, m]
    g = dst.layers[-1].kernel.numpy()  # [3, 3, 1, C*m]
    for c in range(3):
        for j in range(3):
            np.testing.assert_array_equal(g[:, :, 0, c * 3 + j], k[:, :, c, j])
    # the other order (o = k*C + c) would be wrong: the test above is sensitive to it
    dst.layers[-1].kernel.assign(np.transpose(k, (0, 1, 3, 2)).reshape(3, 3, 1, 9))
    assert not np.allclose(_outputs(dst, x), _outputs(src, x), atol=1e-3)


def test_copy_back_to_keras_applications():
    src, dst = _depthwise_pair(c=4, m=2)
    _randomize(dst, seed=5)  # ours -> keras.applications' layer
    from_keras_applications(dst, src)
    x = _x((9, 9, 4))
    np.testing.assert_allclose(_outputs(src, x), _outputs(dst, x), atol=ATOL)


def test_dense_to_fc_as_conv():
    inp = keras.Input((4, 5, 6))
    src = keras.Model(inp, keras.layers.Dense(7, name="fc")(keras.layers.Flatten()(inp)))
    inp2 = keras.Input((4, 5, 6))
    y = keras_cnns.layers.fc_as_conv(inp2, 7, name="fc")
    dst = keras.Model(inp2, keras.layers.Reshape((7,))(y))
    _randomize(src)
    from_keras_applications(src, dst)
    x = _x((4, 5, 6))
    np.testing.assert_allclose(_outputs(dst, x), _outputs(src, x), atol=ATOL, rtol=1e-5)


def test_nested_source_model_is_entered():
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="c1"),
                              keras.layers.BatchNormalization(name="bn")], name="inner")
    inp = keras.Input((8, 8, 3))
    src = keras.Model(inp, keras.layers.Dense(2, name="d")(inner(inp)))
    inp2 = keras.Input((8, 8, 3))
    y = keras.layers.BatchNormalization(name="bn2")(keras.layers.Conv2D(4, 3, name="c2")(inp2))
    dst = keras.Model(inp2, keras.layers.Dense(2, name="d2")(y))
    _randomize(src)
    from_keras_applications(src, dst)
    x = _x((8, 8, 3))
    np.testing.assert_allclose(_outputs(dst, x), _outputs(src, x), atol=ATOL)


def test_mismatches_raise_and_copy_nothing():
    shape = (32, 32, 3)
    src = keras.applications.MobileNet(alpha=0.25, weights=None, input_shape=shape, classes=10)
    _randomize(src)
    # different width: the very first pair fails, naming both layers
    other = MobileNet(alpha=0.5, input_shape=shape, classes=10)
    with pytest.raises(ValueError, match=r"'conv1' \(Conv2D\).*'conv1_conv' \(Conv2D\)"):
        from_keras_applications(src, other)
    # different classes: only the LAST pair fails -- and nothing at all is copied
    dst = MobileNet(alpha=0.25, input_shape=shape, classes=12)
    before = [w.copy() for w in dst.get_weights()]
    with pytest.raises(ValueError, match="conv_preds") as err:
        from_keras_applications(src, dst)
    assert "shape" in str(err.value)
    for a, b in zip(before, dst.get_weights()):
        np.testing.assert_array_equal(a, b)
    # different head: a different number of weighted layers
    headless = MobileNet(alpha=0.25, input_shape=shape, include_top=False)
    with pytest.raises(ValueError, match="different numbers of layers"):
        from_keras_applications(src, headless)
    with pytest.raises(ValueError, match="source"):
        from_keras_applications("not a model", dst)


def test_vgg16_outputs_match_keras_applications():
    shape = (32, 32, 3)
    src = keras.applications.VGG16(weights=None, include_top=False, input_shape=shape)
    dst = keras_cnns.create_model("vgg16", include_top=False, input_shape=shape)
    _randomize(src)
    x = _x(shape)
    from_keras_applications(src, dst)
    np.testing.assert_allclose(_outputs(dst, x), _outputs(src, x), atol=ATOL, rtol=1e-4)


def _reversed_mobilenet_pairs(target):
    """A keras_applications name map for the test: MobileNet's pairs, listed backwards."""
    src = keras.applications.MobileNet(alpha=0.25, weights=None, input_shape=(32, 32, 3),
                                       classes=10)
    return [(t.name, s.name) for s, t in zip(weighted_layers(src), weighted_layers(target))][::-1]


def test_name_maps_pair_by_name():
    # the bridges' one name-map mechanism: `names`, or a map registered for a family
    shape = (32, 32, 3)
    kw = dict(alpha=0.25, input_shape=shape, classes=10, classifier_activation=None)
    src = keras.applications.MobileNet(weights=None, **kw)
    _randomize(src, seed=7)
    x = _x(shape)
    pairs = _reversed_mobilenet_pairs(MobileNet(**kw))
    dst = MobileNet(**kw)
    assert from_keras_applications(src, dst, names=pairs) is dst
    np.testing.assert_allclose(_outputs(dst, x), _outputs(src, x), atol=ATOL, rtol=1e-4)
    keras_cnns.bridges.register_name_map("TestReversedMobileNet", "keras_applications",
                                         _reversed_mobilenet_pairs)
    assert keras_cnns.bridges.name_maps("keras_applications")["TestReversedMobileNet"] \
        is _reversed_mobilenet_pairs
    other = MobileNet(**kw)
    from_keras_applications(src, other, family="TestReversedMobileNet")
    np.testing.assert_allclose(_outputs(other, x), _outputs(src, x), atol=ATOL, rtol=1e-4)
    # errors name the layers; nothing is copied
    fresh = MobileNet(**kw)
    before = [w.copy() for w in fresh.get_weights()]
    with pytest.raises(ValueError, match=r"no layer 'nope'"):
        from_keras_applications(src, fresh, names=[("nope", "conv1")] + pairs[1:])
    with pytest.raises(ValueError, match=r"no source counterpart: \['conv1_conv'\]"):
        from_keras_applications(src, fresh, names=pairs[:-1])  # the last pair is conv1's
    with pytest.raises(ValueError, match=r"`family` has no registered keras_applications name "
                                         r"map.*Received: family='Nope'"):
        from_keras_applications(src, fresh, family="Nope")
    for a, b in zip(before, fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
