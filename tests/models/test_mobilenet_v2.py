"""MobileNetV2: keras.applications equality (random weights copied), layouts, rho, errors.

Parameter counts and multiply-adds of the registered variants are checked against
``reference_figures.csv`` by the generic matrix (tests/models/test_models_generic.py); the
torchvision layout against torchvision in tests/models/test_torchvision_bridge.py.
"""

import keras
import numpy as np
import pytest

import keras_cnns
from keras_cnns.blocks import StochasticDepth
from keras_cnns.layers import GroupedDepthwiseConv2D
from keras_cnns.bridges import from_keras_applications, weighted_layers
from keras_cnns.models.mobilenet_v2 import MobileNetV2

from test_keras_apps import _outputs, _randomize, _x  # noqa: E402  (tests/models on sys.path)

ATOL = 1e-4


@pytest.mark.parametrize("alpha, include_top, side", [
    (0.5, True, 64), (1.0, True, 64), (1.4, True, 64), (1.0, False, 64),
    (0.5, True, 67),   # odd side: correct_pad pads (1, 1) before the strided depthwise convs
])
def test_outputs_match_keras_applications(alpha, include_top, side):
    shape = (side, side, 3)
    kw = dict(alpha=alpha, include_top=include_top, input_shape=shape, classes=7)
    if include_top:
        kw["classifier_activation"] = None
    src = keras.applications.MobileNetV2(weights=None, **kw)
    dst = MobileNetV2(**kw)
    assert [l.name for l in weighted_layers(src)] == [l.name for l in weighted_layers(dst)]
    _randomize(src, seed=int(alpha * 10) + side)
    x = _x(shape)
    expected = _outputs(src, x)
    assert np.abs(expected).max() > 1e-2
    assert not np.allclose(_outputs(dst, x), expected, atol=1e-3)  # differs before the copy
    from_keras_applications(src, dst)
    np.testing.assert_allclose(_outputs(dst, x), expected, atol=ATOL, rtol=1e-4)


def test_depthwise_convolutions_run_on_the_custom_op():
    model = MobileNetV2(alpha=0.35, input_shape=(32, 32, 3), include_top=False)
    dw = [l for l in model.layers if isinstance(l, GroupedDepthwiseConv2D)]
    assert len(dw) == 17 and not any(isinstance(l, keras.layers.DepthwiseConv2D)
                                     for l in model.layers)


def test_layouts_share_the_parameters_but_not_the_padding():
    kw = dict(alpha=0.35, input_shape=(32, 32, 3), classes=5, classifier_activation=None)
    keras_layout = MobileNetV2(**kw)
    torch_layout = MobileNetV2(layout="torchvision", **kw)
    assert keras_layout.count_params() == torch_layout.count_params()
    _randomize(keras_layout)
    torch_layout.set_weights(keras_layout.get_weights())
    x = _x((32, 32, 3))
    assert not np.allclose(_outputs(keras_layout, x), _outputs(torch_layout, x), atol=1e-4)
    pads = {l.name: l.padding for l in torch_layout.layers
            if isinstance(l, keras.layers.ZeroPadding2D)}
    assert pads["Conv1_pad"] == ((1, 1), (1, 1)) and pads["block_1_pad"] == ((1, 1), (1, 1))
    keras_pads = {l.name: l.padding for l in keras_layout.layers
                  if isinstance(l, keras.layers.ZeroPadding2D)}
    assert "Conv1_pad" not in keras_pads and keras_pads["block_1_pad"] == ((0, 1), (0, 1))
    bn = {l.epsilon for l in torch_layout.layers if isinstance(l, keras.layers.BatchNormalization)}
    assert bn == {1e-5}


def test_rho_sets_the_input_side():
    model = keras_cnns.create_model("mobilenetv2", rho=0.571, classes=3)
    assert model.input_shape == (None, 128, 128, 3)
    with pytest.raises(ValueError, match="rho"):
        MobileNetV2(rho=0.5, input_shape=(96, 96, 3))


def test_stochastic_depth_only_on_blocks_with_a_skip():
    model = MobileNetV2(alpha=0.35, input_shape=(32, 32, 3), stochastic_depth=0.8)
    sd = [l for l in model.layers if isinstance(l, StochasticDepth)]
    # 10 of the 17 blocks keep their shape (stride 1, same channels): 1+2+3+2+2 in stages 2..6
    assert [l.name for l in sd] == [f"block_{i}_add" for i in (2, 4, 5, 7, 8, 9, 11, 12, 14, 15)]
    probs = [l.survival_prob for l in sd]
    np.testing.assert_allclose(probs, [1 - (i + 1) / 17 * 0.2 for i in (2, 4, 5, 7, 8, 9, 11, 12,
                                                                          14, 15)])


@pytest.mark.parametrize("kwargs, arg", [
    ({"alpha": 0}, "alpha"), ({"alpha": "wide"}, "alpha"), ({"rho": -1}, "rho"),
    ({"layout": "caffe"}, "layout"), ({"dropout": 1.0}, "dropout"),
    ({"stochastic_depth": 1.5}, "stochastic_depth"), ({"stochastic_depth_rule": "exp"},
                                                      "stochastic_depth_rule"),
    ({"alhpa": 1.0}, "alhpa"),
])
def test_invalid_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        MobileNetV2(input_shape=(32, 32, 3), **kwargs)


# Exports: tests/export/test_export_every_family.py runs MobileNetV2 and FBNet-A (fused shuffle +
# depthwise, grouped 1x1) through the SavedModel (stock ops only, checked before publishing; run
# in a process that cannot import keras_cnns), float32 and int8 TFLite and LiteRT.
