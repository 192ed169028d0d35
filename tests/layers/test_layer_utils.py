import keras
import numpy as np
import pytest

import keras_cnns
from keras_cnns import layers as L
from keras_cnns.layers import DropPath, drop_path, make_divisible


def ref_make_divisible(v, divisor, min_value=None):  # TF models' mobilenet/_make_divisible
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@pytest.mark.parametrize("v,d,m,expected", [(32 * 0.75, 8, None, 24), (4, 8, None, 8), (91, 8, None, 88),
                                            (67.5, 8, None, 64), (10, 16, None, 16), (3, 1, None, 3),
                                            (12, 8, 4, 16), (4, 8, 4, 8)])
def test_make_divisible(v, d, m, expected):
    assert make_divisible(v, d, m) == expected == ref_make_divisible(v, d, m)


def test_make_divisible_properties():
    for v in np.linspace(1, 500, 301):
        out = make_divisible(float(v), 8)
        assert out % 8 == 0 and out >= 8 and out >= 0.9 * v


@pytest.mark.parametrize("kwargs,arg", [({"v": 0}, "v"), ({"divisor": 0}, "divisor"),
                                        ({"min_value": 0}, "min_value")])
def test_make_divisible_invalid(kwargs, arg):
    args = {"v": 10, "divisor": 8}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"{arg}.*Received: {arg}="):
        make_divisible(**args)


def test_drop_path_training_and_inference():
    x = np.ones((2000, 2, 2, 3), "float32")
    layer = DropPath(0.25, seed=3)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)
    y = np.asarray(layer(x, training=True))
    per_sample = y.reshape(2000, -1)
    # whole samples are dropped or kept (scaled by 1 / keep)
    kept = per_sample[per_sample != 0]
    np.testing.assert_allclose(kept, 1 / 0.75, rtol=1e-6)
    assert np.all(per_sample.min(1) == per_sample.max(1))
    assert abs((per_sample[:, 0] == 0).mean() - 0.25) < 0.05
    assert abs(y.mean() - 1.0) < 0.1


def test_drop_path_function_and_serialization(save_load, config_roundtrip):
    inp = keras.Input((4, 4, 2))
    assert drop_path(inp, 0.0) is inp
    m = keras.Model(inp, drop_path(keras.layers.Conv2D(2, 1)(inp), 0.2, name="dp"), name="dpm")
    assert isinstance(m.get_layer("dp"), DropPath)
    save_load(m, np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype("float32"))
    clone = config_roundtrip(DropPath(0.1, seed=5))
    assert clone.rate == 0.1 and clone.seed == 5


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.1"])
def test_drop_path_invalid(rate):
    with pytest.raises(ValueError, match=r"rate.*Received: rate="):
        DropPath(rate)
    with pytest.raises(ValueError, match=r"rate.*Received: rate="):
        drop_path(keras.Input((2, 2, 1)), rate)


def test_public_exports():
    expected = {"BatchNormalization", "CeilModeMaxPooling2D", "ChannelShuffle", "ChannelSplit", "ConvFC", "DropPath", "GroupedDepthwiseConv2D", "HardSigmoid", "HardSwish",
                "InputNormalization",
                "InvertibleDownsampling", "InvertibleUpsampling", "LocalResponseNormalization",
                "PadChannels", "StochasticDepth", "DenseLayer", "HyperConv2D",
                "HyperKernelGenerator", "hyper_kernel", "SamePadding2D", "ScheduledDropPath",
                "SeparableConv2D", "FractalJoin", "FractalPathState", "drop_path_disabled",
                "fractal_joins", "fractal_state", "InjectivePad",
                "activation_layer", "conv_bn_act", "dense_to_conv_kernel", "depthwise_separable_block",
                "dispatch_plain_convolutions",
                "drop_path", "fc_as_conv", "fire_module", "hard_sigmoid", "hard_swish", "make_divisible",
                "max_pool_ceil", "squeeze_excite"}
    assert set(L.__all__) == expected
    for name in expected:
        assert getattr(keras_cnns.layers, name) is getattr(L, name)
    from keras_cnns.layers.grouped_conv import GroupedDepthwiseConv2D
    assert L.GroupedDepthwiseConv2D is GroupedDepthwiseConv2D


def test_custom_layers_are_registered():
    for cls in (L.BatchNormalization, L.ChannelShuffle, L.ChannelSplit, L.ConvFC, L.DropPath, L.HardSigmoid, L.HardSwish, L.InvertibleDownsampling,
                L.InvertibleUpsampling, L.LocalResponseNormalization, L.GroupedDepthwiseConv2D):
        name = keras.saving.get_registered_name(cls)
        assert name == f"keras_cnns>{cls.__name__}"
        assert keras.saving.get_registered_object(name) is cls


def test_moved_layers_keep_their_registered_names():
    """StochasticDepth / PadChannels (from keras_cnns.blocks) and CeilModeMaxPooling2D (from
    keras_cnns.models.squeezenet) moved to keras_cnns.layers under the same registered names, so
    saved .keras files still load; the old import paths still give the same classes."""
    import keras_cnns.blocks as B
    from keras_cnns.models import squeezenet

    for cls in (L.StochasticDepth, L.PadChannels, L.CeilModeMaxPooling2D):
        assert keras.saving.get_registered_name(cls) == f"keras_cnns>{cls.__name__}"
    assert B.StochasticDepth is L.StochasticDepth and B.PadChannels is L.PadChannels
    assert squeezenet.CeilModeMaxPooling2D is L.CeilModeMaxPooling2D
