"""NASNet-A: keras.applications' outputs after copying its weights (Mobile at 224, Large at 331,
Mobile for inputs of unknown size at an odd side), any input side >= 32 (forward, backward and
the serving graph at 32, 33, 97, 224 with one model; the SavedModel of a smaller NASNet-A at
those sides), the cells as TF-slim's data, scheduled drop-path and its callback, the auxiliary
head, and the knobs' errors.

The generic matrix (test_models_generic.py, test_contract.py) checks both registered models'
figures, levels and a training step at the minimum size.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_cnns
from keras_cnns.bridges import from_keras_applications, weighted_layers
from keras_cnns.layers.drop_path_schedule import (SamePadding2D, ScheduledDropPath,
                                                  scheduled_drop_path_layers)
from keras_cnns.models import feature_extractor
from keras_cnns.models.heads import output_specs, served_model
from keras_cnns.models.nasnet import NASNET_A_NORMAL, NASNET_A_REDUCTION, NASNet
from keras_cnns.training.drop_path_schedule import DropPathSchedule, drop_path_schedule_for
from tests.models.test_keras_apps import (  # random kernels, BN statistics and biases
    _assert_same_layout, _randomize)


def _x(side, batch=1, seed=1):
    return np.random.default_rng(seed).normal(size=(batch, side, side, 3)).astype("float32")


def _out(model, x, training=False):
    return keras.ops.convert_to_numpy(model(x, training=training))


def _randomize_bn(model, seed=0):
    """Random BN gamma, beta and moving statistics (the kernels keep keras.applications' own
    random initialisation: drawing 88 M new ones costs seconds)."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        kind = v.path.rsplit("/", 1)[-1]
        if kind in ("moving_variance", "gamma"):
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
        elif kind in ("moving_mean", "beta", "bias"):
            v.assign(rng.normal(0.0, 0.1, v.shape).astype("float32"))


def _copied(src, dst):
    """Copy ``src``'s weights into ``dst`` and check every weighted layer got its namesake's."""
    assert from_keras_applications(src, dst) is dst
    got = {layer.name: layer for layer in weighted_layers(dst)}
    assert sorted(got) == sorted(layer.name for layer in weighted_layers(src))
    for layer in weighted_layers(src)[::37]:
        for a, b in zip(layer.get_weights(), got[layer.name].get_weights()):
            np.testing.assert_array_equal(a, b)
    return dst


# ------------------------------------------------------------------------------------------------
# keras.applications: the same outputs after copying randomised weights
# ------------------------------------------------------------------------------------------------

def test_large_has_keras_applications_layers():
    # NASNet-A Large repeats Mobile's cells (6 per stage, wider): its layers (every weighted
    # layer's name and weight sizes, in order) against keras.applications' at 331, both built
    # without weights; the outputs are compared on Mobile at 224 and at odd sides (97 below:
    # correct_pad's (1, 1) pads). The forward comparison at 331 took 33 s of the suite.
    with keras_cnns.models.shapes_only():
        src = keras.applications.NASNetLarge(weights=None, input_shape=(331, 331, 3),
                                             include_top=True, classifier_activation=None)
        dst = keras_cnns.create_model("nasnet_large", classifier_activation=None)
    _assert_same_layout(dst, src)


@pytest.mark.parametrize("name, app, side", [
    ("nasnet_mobile", keras.applications.NASNetMobile, 224),
])
def test_outputs_match_keras_applications(name, app, side):
    src = app(weights=None, input_shape=(side, side, 3), include_top=True,
              classifier_activation=None)
    dst = keras_cnns.create_model(name, classifier_activation=None)
    assert dst.count_params() == src.count_params()
    assert sum(int(np.prod(w.shape)) for w in dst.trainable_weights) == \
        sum(int(np.prod(w.shape)) for w in src.trainable_weights)
    _randomize_bn(src)  # BN moving statistics too
    x = _x(side)
    expected = _out(src, x)
    assert np.abs(expected).max() > 0.1
    _copied(src, dst)
    # 1e-5 of the logits' scale: random weights give logits far from O(1) (NASNet-A Large's
    # reached 80), and with oneDNN off the plain convolutions on small maps run on the custom
    # op (the measured plain-conv rule), whose float32 sums round differently (2.3e-5
    # absolute on Large, 3e-7 of the scale)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(_out(dst, x), expected, atol=1e-5 * scale, rtol=1e-5)


@pytest.fixture(scope="module")
def mobile_97():
    """keras.applications' NASNetMobile at 97 px (odd, not a native size) with random weights,
    and ours for inputs of unknown size with its weights."""
    src = keras.applications.NASNetMobile(weights=None, input_shape=(97, 97, 3), classes=5,
                                          classifier_activation=None)
    _randomize(src, seed=3)
    dynamic = _copied(src, keras_cnns.create_model("nasnet_mobile", input_shape=(None, None, 3),
                                                   classes=5, classifier_activation=None))
    return src, dynamic


def test_unknown_size_at_an_odd_side_matches_keras_applications(mobile_97):
    # keras.applications pads for the static side it was built at (imagenet_utils.correct_pad;
    # at an unknown side its graph assumes an even one); ours pads by the same rule when the
    # graph runs (at known sides, 224 and 331 above, as keras does).
    src, dynamic = mobile_97
    assert any(isinstance(layer, SamePadding2D) for layer in dynamic.layers)
    x = _x(97, batch=2)
    expected = _out(src, x)
    assert np.abs(expected).max() > 0.1
    np.testing.assert_allclose(_out(dynamic, x), expected, atol=1e-5, rtol=1e-5)


def test_same_padding_is_keras_correct_pad():
    from keras.src.applications.imagenet_utils import correct_pad

    layer = SamePadding2D(3, 2)
    for h, w in ((6, 6), (7, 7), (6, 9)):
        x = np.random.default_rng(0).normal(size=(1, h, w, 2)).astype("float32")
        pads = correct_pad(keras.Input((h, w, 2)), 3)
        expected = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
        traced = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, 2))])
        np.testing.assert_array_equal(traced(x).numpy(), expected)  # sides unknown
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), expected)


# ------------------------------------------------------------------------------------------------
# Any side >= 32: forward, backward, the serving graph
# ------------------------------------------------------------------------------------------------

def test_any_side_runs_forward_and_backward_in_one_graph(mobile_97):
    # One model for inputs of unknown size runs at every side; its levels have the declared
    # sides. (Its SavedModel serves the four sides: below; the export sweep,
    # tests/export/test_export_every_family.py, exports nasnet_mobile at 32 px to TFLite too.)
    model = mobile_97[1]  # input (None, None, 3)
    state = model.get_weights()  # the training passes below move the BN statistics
    levels = feature_extractor(model)
    probe = keras.Model(model.input, [model.output, levels.output])
    inputs = {side: _x(side, batch=2, seed=side) for side in (32, 33, 97, 224)}
    for side, x in inputs.items():
        with tf.GradientTape() as tape:
            y, maps = probe(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                np.array([0, 1]), y, from_logits=True))
        grads = tape.gradient(loss, model.trainable_weights)
        assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads), side
        # the declared levels: side floor((H - 3) / 2^k) + 1, odd sides included
        assert {k: tuple(v.shape) for k, v in maps.items()} == {
            f"P{k}": (2, (side - 3) // 2 ** k + 1, (side - 3) // 2 ** k + 1, c)
            for k, c in zip(range(1, 6), (32, 44, 264, 528, 1056))}, side
    # the graph a SavedModel serves, traced once for unknown sides, gives the eager outputs
    serve = tf.function(lambda x: model(x, training=False),
                        input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
    for side, x in inputs.items():
        expected = _out(model, x)
        assert expected.shape == (2, 5) and np.isfinite(expected).all()
        np.testing.assert_allclose(serve(x).numpy(), expected, atol=1e-5, rtol=1e-5)
    assert len(serve._list_all_concrete_functions()) == 1
    model.set_weights(state)


def test_saved_model_of_unknown_size_serves_every_side(mobile_97, tmp_path):
    # keras_cnns.export's SavedModel of NASNet-A Mobile for inputs of unknown size, reloaded,
    # serves the four sides with the Keras outputs (one export: the float TFLite files of the
    # static sides, ~1 min each, were checked outside the suite: <= 8.3e-7).
    from keras_cnns.export import saved_model

    model = mobile_97[1]  # input (None, None, 3), logits
    path = saved_model(model, tmp_path / "models", model_name="nasnet_mobile",
                       print_commands=False)
    served = tf.saved_model.load(path).signatures["serving_default"]
    for side in (32, 33, 97, 224):
        x = _x(side, batch=2, seed=side)
        expected = _out(model, x)
        assert np.abs(expected).max() > 1e-2
        np.testing.assert_allclose(served(images=tf.constant(x))["logits"].numpy(), expected,
                                   atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------------
# The cells are TF-slim's data
# ------------------------------------------------------------------------------------------------

def test_cells_are_tf_slim_nasnet_a():
    # nets/nasnet/nasnet_utils.py NasNetANormalCell / NasNetAReductionCell
    assert NASNET_A_NORMAL.pairs == [
        (("separable_5x5_2", 0), ("separable_3x3_2", 1)),
        (("separable_5x5_2", 1), ("separable_3x3_2", 1)),
        (("avg_pool_3x3", 0), ("none", 1)),
        (("avg_pool_3x3", 1), ("avg_pool_3x3", 1)),
        (("separable_3x3_2", 0), ("none", 0))]
    assert NASNET_A_NORMAL.concat == [1, 2, 3, 4, 5, 6]
    assert NASNET_A_REDUCTION.pairs == [
        (("separable_5x5_2", 0), ("separable_7x7_2", 1)),
        (("max_pool_3x3", 0), ("separable_7x7_2", 1)),
        (("avg_pool_3x3", 0), ("separable_5x5_2", 1)),
        (("none", 3), ("avg_pool_3x3", 2)),
        (("separable_3x3_2", 2), ("max_pool_3x3", 0))]
    assert NASNET_A_REDUCTION.concat == [3, 4, 5, 6]


# ------------------------------------------------------------------------------------------------
# Scheduled drop-path
# ------------------------------------------------------------------------------------------------

def test_scheduled_drop_path_layer():
    layer = ScheduledDropPath(0.3, seed=7)
    x = np.ones((4000, 2, 2, 3), "float32")
    layer(x)
    np.testing.assert_array_equal(_out(layer, x, training=True), x)  # progress 0: identity
    for progress in (0.5, 1.0):
        layer.set_progress(progress)
        y = _out(layer, x, training=True)
        rate = 0.3 * progress
        per_sample = y.reshape(len(x), -1)
        dropped = (per_sample == 0).all(axis=1)
        kept = np.isclose(per_sample, 1 / (1 - rate), rtol=1e-6).all(axis=1)
        assert (dropped | kept).all()  # whole samples, survivors scaled by 1 / keep
        # binomial: std sqrt(0.3 * 0.7 / 4000) = 0.0072
        assert abs(dropped.mean() - rate) < 0.03, (progress, dropped.mean())
        np.testing.assert_array_equal(_out(layer, x), x)  # inference: never drops
    layer.set_progress(3.0)
    assert float(layer.progress.numpy()) == 1.0


def _tiny(drop_path=0.0, **kwargs):
    kw = dict(penultimate_filters=96, num_cells=1, stem_filters=8, input_shape=(32, 32, 3),
              classes=3)
    kw.update(kwargs)
    return NASNet(drop_path=drop_path, **kw)


@pytest.fixture(scope="module")
def tiny_pair():
    """A NASNet-A (1 @ 96) without and with drop-path 0.3, with the same random weights."""
    plain, dropped = _tiny(), _tiny(drop_path=0.3)
    _randomize(plain, seed=5)
    by_name = {lay.name: lay for lay in dropped.layers}
    for lay in plain.layers:
        if lay.weights:
            by_name[lay.name].set_weights(lay.get_weights())
    return plain, dropped


def test_drop_path_rates_follow_tf_slim_and_progress_zero_changes_nothing(tiny_pair):
    plain, dropped = tiny_pair
    assert not scheduled_drop_path_layers(plain)
    layers = scheduled_drop_path_layers(dropped)
    # TF-slim _apply_drop_path: cell c of 3N + 4 = 7 keeps 1 - (c + 1) / 7 * (1 - 0.7); after
    # every operation but "none" (9 in a reduction cell, 8 in a normal cell)
    blocks = ["stem_1", "stem_2", "0", "reduce_1", "2", "reduce_2", "3"]
    for c, block in enumerate(blocks):
        mine = [lay for lay in layers if lay.name.endswith(f"_drop_path_{block}")]
        assert len(mine) == (8 if block[0].isdigit() else 9), block
        for lay in mine:
            assert lay.rate == pytest.approx(0.3 * (c + 1) / 7)
    x = _x(32, batch=8)
    for lay in layers:
        lay.set_progress(1.0)
    np.testing.assert_allclose(_out(dropped, x), _out(plain, x), rtol=1e-5, atol=1e-6)
    # progress 0: the training pass is the plain model's (BN in training mode, nothing dropped)
    for lay in layers:
        lay.set_progress(0.0)
    np.testing.assert_allclose(_out(dropped, x, True), _out(plain, x, True), rtol=1e-5,
                               atol=1e-6)
    for lay in layers:
        lay.set_progress(1.0)
    assert np.abs(_out(dropped, x, True) - _out(plain, x, True)).max() > 1e-3


def test_schedule_callback_moves_progress_with_the_steps(tiny_pair):
    plain, model = tiny_pair
    assert drop_path_schedule_for(plain, 10) is None  # train() attaches none
    callback = drop_path_schedule_for(model, 8)
    assert isinstance(callback, DropPathSchedule) and callback.total_steps == 8
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", run_eagerly=True)
    layers = scheduled_drop_path_layers(model)
    seen = []
    probe = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda b, logs: seen.append(float(layers[-1].progress.numpy())))
    x, y = _x(32, batch=4), np.arange(4) % 3
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[callback, probe])
    assert seen == [0.0, 1 / 8]  # step / total before each step
    assert all(float(lay.progress.numpy()) == 1 / 8 for lay in layers)
    # later steps (a resumed run: the optimizer's step counter) move it on, up to 1
    callback.on_train_begin()
    for step, expected in ((2, 2 / 8), (7, 7 / 8), (8, 1.0), (20, 1.0)):
        model.optimizer.iterations.assign(step)
        callback.on_train_batch_begin(0)
        assert all(float(lay.progress.numpy()) == expected for lay in layers), step


# ------------------------------------------------------------------------------------------------
# Auxiliary head, knobs
# ------------------------------------------------------------------------------------------------

def test_auxiliary_head_is_tf_slims():
    model = _tiny(aux_logits=True, input_shape=(96, 96, 3))
    specs = output_specs(model)
    assert [s.name for s in specs] == ["predictions", "aux_predictions"]
    assert specs[1].kind == "auxiliary" and specs[1].loss_weight == 0.4 and not specs[1].served
    # on the ReLU of the last stride-16 normal cell ("2", 6 * 8 maps, 6x6 at 96 px): pool 5 / 3
    # -> 1x1, 1x1 conv 128 + BN, 1x1 (the map's size) conv 768 + BN, FC
    assert model.get_layer("aux_relu").input.shape[1:] == (6, 6, 48)
    aux = [lay for lay in model.layers if lay.name.startswith("aux_")]
    count = sum(int(np.prod(w.shape)) for lay in aux for w in lay.trainable_weights)
    assert count == 48 * 128 + 2 * 128 + 128 * 768 + 2 * 768 + 768 * 3 + 3
    main, aux_out = model(_x(96, batch=2), training=True)
    assert main.shape == aux_out.shape == (2, 3)
    assert len(served_model(model).outputs) == 1
    with pytest.raises(ValueError, match="`input_shape`"):
        _tiny(aux_logits=True, input_shape=(None, None, 3))  # the head's conv needs its size


@pytest.mark.parametrize("kwargs, arg", [
    (dict(penultimate_filters=1000), "penultimate_filters"),       # not a multiple of 96
    (dict(penultimate_filters=72, filter_multiplier=1), "penultimate_filters"),  # 3 filters: odd
    (dict(penultimate_filters=0), "penultimate_filters"),
    (dict(num_cells=0), "num_cells"),
    (dict(num_cells=2.5), "num_cells"),
    (dict(stem_filters=-1), "stem_filters"),
    (dict(filter_multiplier=1.5), "filter_multiplier"),
    (dict(skip_reduction="yes"), "skip_reduction"),
    (dict(aux_logits=1), "aux_logits"),
    (dict(drop_path=1.0), "drop_path"),
    (dict(drop_path=-0.1), "drop_path"),
    (dict(dropout=1.0), "dropout"),
    (dict(input_shape=(31, 31, 3)), "input_shape"),
])
def test_bad_knobs_are_value_errors_naming_them(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`.*Received: {arg}="):
        NASNet(**kwargs)
