"""MobileNet v1 (Howard et al. 2017): family-specific behaviour.

The generic matrix (test_models_generic.py) already checks the trainable counts of reference_figures.csv,
forward/backward at the minimum size, headless pooling, serialization and the shared argument
checks. Here: the Keras total counts (BN moving statistics included), the width multiplier for
arbitrary alpha against keras.applications, the resolution multiplier rho, the layer structure
(custom-op depthwise, ReLU6, keras.applications' head) and the family's own argument checks.
"""

import keras
import numpy as np
import pytest

import keras_cnns
from keras_cnns.layers import GroupedDepthwiseConv2D
from keras_cnns.models._builder import shapes_only
from keras_cnns.models.mobilenet import MobileNet

ALPHAS = {"mobilenet": 1.0, "mobilenet_0_75": 0.75, "mobilenet_0_50": 0.5, "mobilenet_0_25": 0.25}


def _trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("name", sorted(ALPHAS))
def test_counts_equal_keras_applications_and_the_reference_file(name):
    # both built at 224 without allocating weights; the file's figure says it is
    # keras.applications' trainable count: check that claim against keras.applications itself
    with shapes_only():
        ours = keras_cnns.create_model(name)
        reference = keras.applications.MobileNet(alpha=ALPHAS[name], weights=None)
    assert ours.count_params() == reference.count_params()
    assert _trainable(ours) == _trainable(reference) == keras_cnns.model_info(name).reference_params
    info = keras_cnns.model_info(name)
    assert info.kwargs["alpha"] == ALPHAS[name] and info.min_input_size == 32


@pytest.mark.parametrize("alpha", [0.6, 1.3, 0.1])
def test_any_alpha_matches_keras_applications(alpha):
    # keras.applications' channel rounding int(filters * alpha) for alphas outside the paper's set.
    shape = (64, 64, 3)
    ours = MobileNet(alpha=alpha, input_shape=shape, classes=17)
    ref = keras.applications.MobileNet(alpha=alpha, weights=None, input_shape=shape, classes=17)
    assert ours.count_params() == ref.count_params()
    assert _trainable(ours) == _trainable(ref)
    features = MobileNet(alpha=alpha, include_top=False, input_shape=shape)
    assert features.output_shape == (None, 2, 2, int(1024 * alpha))


@pytest.mark.parametrize("rho, side", [(1.0, 224), (0.857, 192), (0.714, 160), (0.571, 128), (1.5, 336)])
def test_rho_sets_the_input_side(rho, side):
    model = MobileNet(alpha=0.25, rho=rho, include_top=False)
    assert model.input_shape == (None, side, side, 3)
    # stem: "same" stride 2 -> ceil(n / 2); four padded "valid" stride-2 depthwise -> floor(n / 2)
    out = -(-side // 2) // 16
    assert model.output_shape == (None, out, out, 256)


def test_rho_does_not_change_params():
    a = MobileNet(alpha=0.75, rho=0.714)
    assert a.input_shape == (None, 160, 160, 3)
    assert a.name == "mobilenet_0.75_160"
    assert _trainable(a) == keras_cnns.model_info("mobilenet_0_75").reference_params


def test_public_entry_point_with_rho():
    model = keras_cnns.create_model("mobilenet_0_50", rho=0.571, include_top=False, pooling="avg")
    assert model.input_shape == (None, 128, 128, 3)
    assert model.output_shape == (None, 512)


def test_structure_follows_the_paper_and_keras_applications():
    model = MobileNet(alpha=0.5, input_shape=(32, 32, 3), classes=10, dropout=0.25)
    depthwise = [l for l in model.layers if isinstance(l, GroupedDepthwiseConv2D)]
    assert len(depthwise) == 13
    assert not any(isinstance(l, keras.layers.DepthwiseConv2D) for l in model.layers)
    assert [l.strides for l in depthwise] == [(1, 1), (2, 2), (1, 1), (2, 2), (1, 1), (2, 2)] + [(1, 1)] * 5 + [
        (2, 2), (1, 1)]
    # stride 2: ZeroPadding2D(((0, 1), (0, 1))) + valid depthwise, as keras.applications
    pads = [l for l in model.layers if isinstance(l, keras.layers.ZeroPadding2D)]
    assert len(pads) == 4 and all(tuple(map(tuple, p.padding)) == ((0, 1), (0, 1)) for p in pads)
    assert all(l.padding == ("valid" if l.strides == (2, 2) else "same") for l in depthwise)
    relus = [l for l in model.layers if isinstance(l, keras.layers.ReLU)]
    assert len(relus) == 1 + 2 * 13 and all(float(l.max_value) == 6.0 for l in relus)
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) == 27
    convs = [l for l in model.layers if type(l) is keras.layers.Conv2D]
    assert not any(l.use_bias for l in convs[:-1]) and not any(l.use_bias for l in depthwise)
    # head: GAP(keepdims) -> dropout -> conv_preds -> reshape -> predictions
    head = model.layers[-5:]
    assert [type(l).__name__ for l in head] == [
        "GlobalAveragePooling2D", "Dropout", "Conv2D", "Reshape", "Activation"]
    assert head[0].keepdims and head[1].rate == 0.25
    assert head[2].name == "conv_preds" and head[2].kernel.shape == (1, 1, 512, 10)
    assert head[4].name == "predictions"
    # pointwise widths int(filters * 0.5)
    assert [l.filters for l in convs[1:-1]] == [32, 64, 64, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512]
    assert convs[0].filters == 16 and convs[0].strides == (2, 2)


def test_depth_multiplier_widens_depthwise_outputs():
    model = MobileNet(alpha=0.25, depth_multiplier=2, input_shape=(32, 32, 3), include_top=False)
    dw = [l for l in model.layers if isinstance(l, GroupedDepthwiseConv2D)]
    assert dw[0].kernel.shape == (3, 3, 1, 16)  # 8 stem channels x 2
    ref = keras.applications.MobileNet(alpha=0.25, depth_multiplier=2, weights=None, include_top=False,
                                       input_shape=(32, 32, 3))
    assert model.count_params() == ref.count_params()


def test_logits_and_min_size_forward():
    model = MobileNet(alpha=0.25, input_shape=(32, 32, 3), classes=5, classifier_activation=None)
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype("float32")
    y = model.predict(x, verbose=0)
    assert y.shape == (3, 5) and np.all(np.isfinite(y))
    assert not np.allclose(y.sum(axis=-1), 1.0)  # logits, not probabilities
    variable = MobileNet(alpha=0.25, input_shape=(None, None, 3), include_top=False, pooling="avg")
    assert variable.predict(np.zeros((1, 70, 45, 3), "float32"), verbose=0).shape == (1, 256)


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"alpha": 0}, "alpha"),
        ({"alpha": -0.5}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"alpha": float("inf")}, "alpha"),
        ({"alpha": "1.0"}, "alpha"),
        ({"alpha": 0.02}, "alpha"),  # int(32 * 0.02) == 0 channels
        ({"rho": 0}, "rho"),
        ({"rho": -1.0}, "rho"),
        ({"rho": float("inf")}, "rho"),
        ({"rho": 0.1}, "rho"),  # round(224 * 0.1) = 22 < 32
        ({"rho": 0.714, "input_shape": (160, 160, 3)}, "rho"),
        ({"depth_multiplier": 0}, "depth_multiplier"),
        ({"depth_multiplier": 1.5}, "depth_multiplier"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"input_shape": (31, 31, 3)}, "input_shape"),
    ],
)
def test_invalid_family_arguments(kwargs, arg):
    with pytest.raises(ValueError) as err:
        MobileNet(**kwargs)
    assert f"{arg}=" in str(err.value) and "Received:" in str(err.value)


def test_rho_with_input_tensor_must_agree():
    ok = MobileNet(alpha=0.25, rho=0.714, input_tensor=keras.Input((160, 160, 3)), include_top=False)
    assert ok.input_shape == (None, 160, 160, 3)
    with pytest.raises(ValueError, match="rho="):
        MobileNet(alpha=0.25, rho=0.714, input_tensor=keras.Input((224, 224, 3)))
