"""MobileNetV3 Large / Small: keras.applications equality (random weights copied), errors.

Parameter counts and multiply-adds of the registered variants are checked against
``reference_figures.csv`` by the generic matrix; the torchvision layout against torchvision in
tests/models/test_torchvision_bridge.py.
"""

import keras
import numpy as np
import pytest

from keras_cnns.blocks import StochasticDepth
from keras_cnns.layers import GroupedDepthwiseConv2D
from keras_cnns.bridges import from_keras_applications, weighted_layers
from keras_cnns.models.mobilenet_v3 import MobileNetV3

from test_keras_apps import _outputs, _randomize, _x  # noqa: E402  (tests/models on sys.path)

ATOL = 1e-4
SOURCES = {"large": keras.applications.MobileNetV3Large, "small": keras.applications.MobileNetV3Small}


@pytest.mark.parametrize("model_size, alpha, minimalistic, include_top", [
    ("large", 1.0, False, True), ("large", 0.75, False, True), ("large", 1.0, True, True),
    ("small", 1.0, False, True), ("small", 0.75, False, True), ("small", 1.0, True, True),
    ("large", 1.0, False, False),
])
def test_outputs_match_keras_applications(model_size, alpha, minimalistic, include_top):
    shape = (64, 64, 3)
    kw = dict(alpha=alpha, minimalistic=minimalistic, include_top=include_top,
              input_shape=shape, classes=7)
    if include_top:
        kw["classifier_activation"] = None
    src = SOURCES[model_size](weights=None, **kw)
    dst = MobileNetV3(model_size=model_size, **kw)
    src_names = [l.name for l in weighted_layers(src)]
    assert len(src_names) == len(weighted_layers(dst))
    _randomize(src, seed=int(alpha * 4) + 2 * minimalistic)
    x = _x(shape) * 60 + 127  # pixels: both models start with Rescaling(1/127.5, -1)
    expected = _outputs(src, x)
    assert np.abs(expected).max() > 1e-2
    assert not np.allclose(_outputs(dst, x), expected, atol=1e-3)
    from_keras_applications(src, dst)
    np.testing.assert_allclose(_outputs(dst, x), expected, atol=ATOL, rtol=1e-4)
    # keras.applications' names, except its squeeze-and-excitation convolutions
    ours = [l.name for l in weighted_layers(dst)]
    assert [n for n in src_names if "squeeze_excite" not in n] == \
        [n for n in ours if "squeeze_excite" not in n]


def test_blocks_squeeze_excite_and_custom_op_depthwise():
    model = MobileNetV3("small", input_shape=(32, 32, 3), include_top=False)
    assert len([l for l in model.layers if isinstance(l, GroupedDepthwiseConv2D)]) == 11
    gates = [l.name for l in model.layers if l.name.endswith("_se_gate")
             or l.name.endswith("squeeze_excite_gate")]
    assert len(gates) == 9  # every Small block but blocks 1 and 2
    mini = MobileNetV3("small", minimalistic=True, input_shape=(32, 32, 3), include_top=False)
    assert not any("squeeze_excite" in l.name for l in mini.layers)


def test_stochastic_depth_on_the_skip_blocks():
    model = MobileNetV3("large", input_shape=(32, 32, 3), stochastic_depth=0.5)
    sd = [l.name for l in model.layers if isinstance(l, StochasticDepth)]
    assert sd == ["expanded_conv_add"] + [f"expanded_conv_{i}_add"
                                          for i in (2, 4, 5, 7, 8, 9, 11, 13, 14)]


@pytest.mark.parametrize("kwargs, arg", [
    ({"model_size": "medium"}, "model_size"), ({"alpha": 0}, "alpha"),
    ({"minimalistic": "yes"}, "minimalistic"), ({"layout": "caffe"}, "layout"),
    ({"include_preprocessing": None}, "include_preprocessing"), ({"dropout": -0.1}, "dropout"),
    ({"stochastic_depth": 0}, "stochastic_depth"), ({"minimalist": True}, "minimalist"),
])
def test_invalid_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        MobileNetV3(input_shape=(32, 32, 3), **kwargs)
