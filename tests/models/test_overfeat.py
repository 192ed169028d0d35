"""OverFeat fast and accurate (keras_cnns/models/overfeat.py) against the layer tables of
Sermanet et al. 2014 (Tables 1 and 3): parameter and multiply-add hand counts
recomputed here from the tables as data, the maps of the tables, the minimum sizes, and the
fully convolutional build against the classifier with the same weights (reshaped in NumPy).

The generic matrix (test_models_generic.py, test_contract.py) runs both registered names through
the figures of reference_figures.csv, forward/backward at the minimum size and the feature levels.
"""

import numpy as np
import pytest

import keras_cnns
from keras_cnns.models import overfeat as overfeat_mod
from keras_cnns.models._builder import shapes_only
from keras_cnns.models.heads import output_specs

# The tables as data: (filters, kernel, stride, pad, pool) per convolution; FC widths; input.
# Table 1 (fast) and Table 3 (accurate) of the paper; pools are non-overlapping (size = stride).
TABLES = {
    "fast": dict(
        convs=[(96, 11, 4, 0, 2), (256, 5, 1, 0, 2), (512, 3, 1, 1, 0), (1024, 3, 1, 1, 0),
               (1024, 3, 1, 1, 2)],
        fc=[3072, 4096, 1000], side=231,
        # the output side of every convolution and pool of the table
        maps={"conv1": 56, "pool1": 28, "conv2": 24, "pool2": 12, "conv3": 12, "conv4": 12,
              "conv5": 12, "pool5": 6}),
    "accurate": dict(
        convs=[(96, 7, 2, 0, 3), (256, 7, 1, 0, 2), (512, 3, 1, 1, 0), (512, 3, 1, 1, 0),
               (1024, 3, 1, 1, 0), (1024, 3, 1, 1, 3)],
        fc=[4096, 4096, 1000], side=221,
        maps={"conv1": 108, "pool1": 36, "conv2": 30, "pool2": 15, "conv3": 15, "conv6": 15,
              "pool6": 5}),
}


def _hand_count(table):
    """``(params, macs, last_side)`` of a table: conv ``k*k*cin*cout + cout`` weights and
    ``side^2 * k*k*cin*cout`` MACs, FC ``in*out + out`` / ``in*out``."""
    side, cin, params, macs = table["side"], 3, 0, 0
    for filters, k, s, pad, pool in table["convs"]:
        side = (side + 2 * pad - k) // s + 1
        params += k * k * cin * filters + filters
        macs += side * side * k * k * cin * filters
        cin = filters
        if pool:
            side //= pool
    units = side * side * cin
    for out in table["fc"]:
        params += units * out + out
        macs += units * out
        units = out
    return params, macs, side


@pytest.mark.parametrize("model", sorted(TABLES))
def test_hand_counts_equal_the_csv_and_the_built_model(model):
    params, macs, last = _hand_count(TABLES[model])
    figures = keras_cnns.model_info(f"overfeat_{model}").figures
    assert figures.params == params and figures.macs.matches(macs) and figures.macs.value == macs
    assert params == {"fast": 145_920_872, "accurate": 144_656_488}[model]   # the hand counts of the tables above
    assert round(macs / 1e9, 3) == {"fast": 2.801, "accurate": 5.355}[model]
    with shapes_only():
        built = keras_cnns.create_model(f"overfeat_{model}")
        dense = keras_cnns.OverFeat(model, fully_convolutional=True,
                                    input_shape=(TABLES[model]["side"],) * 2 + (3,))
    for m in (built, dense):
        assert m.count_params() == params and keras_cnns.profile(m).total_macs == macs
    assert built.get_layer("flatten").input.shape[1:] == (last, last, 1024)
    for name, side in TABLES[model]["maps"].items():
        assert built.get_layer(name).output.shape[1] == side, name


@pytest.mark.parametrize("model", sorted(TABLES))
def test_min_input_size_is_tight(model):
    m = overfeat_mod.OVERFEAT_MODELS[model].min_side
    assert keras_cnns.model_info(f"overfeat_{model}").min_input_size == m
    with shapes_only():
        tiny = keras_cnns.OverFeat(model, input_shape=(m, m, 3))
    assert tiny.get_layer("flatten").input.shape[1:3] == (1, 1)
    # one pixel less would empty the last map: the builder refuses it
    with pytest.raises(ValueError, match=r"`input_shape`.*>= %d" % m):
        keras_cnns.OverFeat(model, input_shape=(m - 1, m - 1, 3))


def _copy_into_fully_conv(classifier, dense):
    """The classifier's weights into the fully convolutional model, by layer name: fc1's Dense
    kernel ``[h*w*c, u]`` reshaped in NumPy to ``[h, w, c, u]`` (Keras flattens NHWC in
    ``(h, w, c)`` order), fc2 and the predictions to ``[1, 1, in, u]``."""
    for layer in classifier.layers:
        weights = layer.get_weights()
        if not weights or layer.name == "flatten":
            continue
        target = dense.get_layer(layer.name)
        shapes = [w.shape for w in target.get_weights()]
        target.set_weights([w.reshape(s) for w, s in zip(weights, shapes)])


# The fast network's: test_fully_conv.py (fc_to_conv at 231), whose layers are this build's
# (test_fc_to_conv_of_the_classifier_is_the_fully_convolutional_build); one big model less here.
@pytest.mark.parametrize("model", ["accurate"])
def test_fully_convolutional_equals_the_classifier_at_the_native_size(model):
    side = TABLES[model]["side"]
    classifier = keras_cnns.OverFeat(model, classes=5)
    dense = keras_cnns.OverFeat(model, classes=5, fully_convolutional=True)
    assert dense.input_shape == (None, None, None, 3)
    assert [s.kind for s in output_specs(dense)] == ["score_map"]
    assert [lay.name for lay in dense.layers if lay.weights] == \
        [lay.name for lay in classifier.layers if lay.weights]
    _copy_into_fully_conv(classifier, dense)
    x = np.random.default_rng(0).normal(size=(1, side, side, 3)).astype("float32")
    want = np.asarray(classifier(x, training=False))
    got = np.asarray(dense(x, training=False))
    assert got.shape == (1, 1, 1, 5)
    np.testing.assert_allclose(got[:, 0, 0], want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)   # softmax over the classes


@pytest.mark.parametrize("model, side, cells", [
    ("fast", 231, 1), ("fast", 231 + 32, 2), ("fast", 231 + 2 * 32 + 31, 3), ("fast", 461, 8),
    ("accurate", 221, 1), ("accurate", 221 + 36, 2), ("accurate", 221 + 4 * 36 + 35, 5),
])
def test_a_larger_image_gives_a_map_at_the_total_stride(model, side, cells):
    # stride 32 (fast: 4 * 2 * 2 * 2) and 36 (accurate: 2 * 3 * 2 * 3)
    with shapes_only():
        dense = keras_cnns.OverFeat(model, classes=5, fully_convolutional=True,
                                    input_shape=(side, side + 36, 3))
    stride = {"fast": 32, "accurate": 36}[model]
    native = TABLES[model]["side"]
    assert dense.output_shape == (None, cells, (side + 36 - native) // stride + 1, 5)


def test_fully_convolutional_refuses_inputs_below_the_native_size():
    with pytest.raises(ValueError, match=r"`input_shape`.*>= 231"):
        keras_cnns.OverFeat("fast", fully_convolutional=True, input_shape=(230, 300, 3))
    # without the head the trunk runs from the classifier's minimum
    with shapes_only():
        trunk = keras_cnns.OverFeat("fast", fully_convolutional=True, include_top=False,
                                    input_shape=(71, 71, 3))
    assert trunk.output_shape == (None, 1, 1, 1024)


@pytest.mark.parametrize("model", sorted(TABLES))
def test_fc_to_conv_of_the_classifier_is_the_fully_convolutional_build(model):
    with shapes_only():
        classifier = keras_cnns.create_model(f"overfeat_{model}", classes=7)
        dense = keras_cnns.OverFeat(model, classes=7, fully_convolutional=True)
        converted = keras_cnns.fc_to_conv(classifier)

    def layers(m):
        return [(lay.name, type(lay).__name__, [tuple(w.shape) for w in lay.weights],
                 getattr(lay, "activation", None)) for lay in m.layers]

    assert layers(converted) == layers(dense)
    assert converted.output_shape == dense.output_shape == (None, None, None, 7)


@pytest.mark.parametrize("kwargs, arg", [
    (dict(model="medium"), "model"),
    (dict(dropout=1.5), "dropout"),
    (dict(fully_convolutional="yes"), "fully_convolutional"),
    (dict(fully_convolutional=True, input_shape=(None, None)), "input_shape"),
])
def test_invalid_family_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=rf"`{arg}`.*Received: {arg}="):
        keras_cnns.OverFeat(**kwargs)
