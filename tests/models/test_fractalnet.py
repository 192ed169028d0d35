"""FractalNet, its drop-path, extract_column and Fractal of FractalNet.

References: hand counts of the official generator's layout (gustavla/fractalnet
``generation/fractalnet.py``) and of iPhysicist/CNNDesignPatterns ``FoF.prototxt``; a NumPy
reimplementation of the fractal rule (convolutions, BN, ReLU, pools and mean joins written out)
with our weights copied in; the drop-path rules of the official Caffe join layer.
"""

import numpy as np
import pytest
import keras
import tensorflow as tf

import keras_cnns
from keras_cnns.layers.fractal import (FractalJoin, FractalPathState, drop_path_disabled,
                                      fractal_joins, fractal_state)
from keras_cnns.models._builder import shapes_only
from keras_cnns.models.fractalnet import FractalNet, FractalOfFractalNet, extract_column


def _x(shape, batch=3, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


# ------------------------------------------------------------------------------------------------
# Counts: hand counts of the reference layouts against reference_figures.csv and the build
# ------------------------------------------------------------------------------------------------

def _conv(cin, cout, k=3, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def _block_params(cin, width, columns):
    """A fractal block: ``C`` convolutions read the block input, ``2^C - 1 - C`` its width."""
    convs = 2 ** columns - 1
    return columns * _conv(cin, width) + (convs - columns) * _conv(width, width)


def _cifar_count(columns, filters, classes):
    total, cin = 0, 3
    for w in filters:
        total += _block_params(cin, w, columns)
        cin = w
    return total + cin * classes + classes


HAND_COUNTS = {
    "fractalnet20_cifar": _cifar_count(3, (64, 128, 256, 512, 512), 10),
    "fractalnet40_cifar": _cifar_count(4, (64, 128, 256, 512, 512), 10),
    **{f"fractalnet{5 * 2 ** (c - 1)}_w16_cifar100": _cifar_count(c, (16, 32, 64, 128, 128), 100)
       for c in range(1, 7)},
    # ResNet-34's stem (bias-free 7x7/2 conv, affine BN), four C=4 blocks, its 1000-way fc
    "fractalnet34": (_conv(3, 64, 7, bias=False) + 128 + _block_params(64, 64, 4)
                     + _block_params(64, 128, 4) + _block_params(128, 256, 4)
                     + _block_params(256, 512, 4) + 512 * 1000 + 1000),
    # FoF.prototxt: path 0 one 512 block from the image; path 1 blocks 3->128, 128->512; path 2
    # 3->64->128->256->512; C=3 blocks; InnerProduct on the 2x2x512 map
    "fractal_of_fractalnet": (_block_params(3, 512, 3) + _block_params(3, 128, 3)
                              + _block_params(128, 512, 3) + _block_params(3, 64, 3)
                              + _block_params(64, 128, 3) + _block_params(128, 256, 3)
                              + _block_params(256, 512, 3) + 2048 * 10 + 10),
}


def test_hand_counts_equal_the_reference_figures():
    assert sorted(HAND_COUNTS) == keras_cnns.list_models("fractal*")
    for name, count in HAND_COUNTS.items():
        assert keras_cnns.model_info(name).reference_params == count, name
    # the official generator's figures
    assert HAND_COUNTS["fractalnet20_cifar"] == 33_714_314
    assert HAND_COUNTS["fractalnet40_cifar"] == 76_084_554


def test_table3_widths_reproduce_the_papers_counts():
    # Larsson et al. 2017 Table 3: 0.3M 0.8M 2.1M 4.8M 10.2M 21.1M
    printed = {1: 0.3e6, 2: 0.8e6, 3: 2.1e6, 4: 4.8e6, 5: 10.2e6, 6: 21.1e6}
    for c, p in printed.items():
        count = HAND_COUNTS[f"fractalnet{5 * 2 ** (c - 1)}_w16_cifar100"]
        assert abs(count - p) <= 0.05e6, (c, count)


def test_built_counts_and_macs():
    with shapes_only():
        model = keras_cnns.create_model("fractalnet20_cifar")
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 33_714_314
    # MACs by hand at 32 px: each block at its side before the pool, then the classifier
    macs, cin, side = 0, 3, 32
    for w in (64, 128, 256, 512, 512):
        macs += side * side * 9 * (3 * cin * w + 4 * w * w)
        cin, side = w, side // 2
    macs += 512 * 10
    assert keras_cnns.profile(model).total_macs == macs
    assert abs(macs - 845.2e6) < 0.05e6


def test_feature_levels():
    levels = keras_cnns.model_info("fractalnet20_cifar").feature_levels()
    assert [(lv["level"], lv["side"], lv["channels"]) for lv in levels] == [
        ("P1", 16, 64), ("P2", 8, 128), ("P3", 4, 256), ("P4", 2, 512), ("P5", 1, 512)]
    levels = keras_cnns.model_info("fractalnet34").feature_levels()
    assert [(lv["level"], lv["side"]) for lv in levels] == [
        ("P1", 112), ("P2", 56), ("P3", 28), ("P4", 14), ("P5", 7)]


# ------------------------------------------------------------------------------------------------
# An independent NumPy FractalNet with our weights copied in
# ------------------------------------------------------------------------------------------------

def _np_conv3x3(x, kernel, bias):
    n, h, w, _ = x.shape
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, kernel.shape[-1]), np.float64)
    for i in range(3):
        for j in range(3):
            out += np.einsum("nhwc,cd->nhwd", p[:, i:i + h, j:j + w], kernel[i, j])
    return out + bias


def _np_unit(model, name, x):
    kernel, bias = (np.float64(v) for v in model.get_layer(f"{name}_conv").get_weights())
    mean, var = (np.float64(v) for v in model.get_layer(f"{name}_bn").get_weights())
    y = (_np_conv3x3(x, kernel, bias) - mean) / np.sqrt(var + 1e-5)
    return np.maximum(y, 0.0)


def _np_pool(x):
    n, h, w, c = x.shape
    return x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _np_fractalnet(model, x, columns, blocks):
    """The official generator's network written out column by column: column ``c`` of a block
    is a chain of ``2^c`` units; after depth ``d`` the columns whose unit ends there are joined by
    their mean; each column is pooled before the last join; GAP, dense, softmax."""
    for b in range(blocks):
        prefix = f"block{b + 1}"
        lasts = [x] * columns
        count = [0] * columns
        length = 2 ** (columns - 1)
        for d in range(length):
            ended = [c for c in range(columns) if (d + 1) % 2 ** (columns - 1 - c) == 0]
            for c in ended:
                count[c] += 1
                lasts[c] = _np_unit(model, f"{prefix}_col{c}_{count[c]}", lasts[c])
            if d == length - 1:
                lasts = [_np_pool(t) for t in lasts]
            mean = np.mean([lasts[c] for c in ended], axis=0)
            for c in ended:
                lasts[c] = mean
        x = lasts[0]
    kernel, bias = model.get_layer("predictions").get_weights()
    logits = x.mean(axis=(1, 2)) @ kernel + bias
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _randomise_bn(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            mean, var = layer.get_weights()[-2:]
            layer.set_weights([w for w in layer.get_weights()[:-2]]
                              + [rng.normal(0, 0.2, mean.shape).astype("float32"),
                                 rng.uniform(0.5, 2.0, var.shape).astype("float32")])


@pytest.mark.parametrize("columns", [2, 3])
def test_inference_equals_a_numpy_fractalnet(columns):
    model = FractalNet(columns=columns, blocks=2, filters=(8, 12), input_shape=(8, 8, 3),
                       classes=5, seed=3)
    _randomise_bn(model)
    x = _x((8, 8, 3))
    got = np.asarray(model(x, training=False))
    want = _np_fractalnet(model, np.float64(x), columns, 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Drop-path
# ------------------------------------------------------------------------------------------------

def _state_row(state, training, x=np.zeros((2, 4, 4, 1), "float32")):
    return state(x, training=training)


def test_local_drop_path_keeps_at_least_one_input_and_drops_at_rate_p():
    p, n, trials = 0.3, 3, 400
    state = FractalPathState(n, global_drop=0.0, seed=1)
    join = FractalJoin([0, 1, 2], drop_rate=p, seed=2)
    xs = [np.full((1, 1, 1, 1), v, "float32") for v in (1.0, 10.0, 100.0)]
    row = _state_row(state, True)
    # a subset's mean identifies the subset
    means = {}
    for mask in range(1, 8):
        kept = [v for i, v in enumerate((1.0, 10.0, 100.0)) if mask >> i & 1]
        means[round(sum(kept) / len(kept), 4)] = mask

    @tf.function
    def step():
        return join(xs + [row], training=True)

    dropped = np.zeros(n)
    for _ in range(trials):
        out = round(float(np.asarray(step()).ravel()[0]), 4)
        assert out in means, out  # never empty (the mean of an empty set would not be finite)
        mask = means[out]
        dropped += [not (mask >> i & 1) for i in range(n)]
    # each input dropped with p, less the restored third of the all-dropped draws
    expected = p - p ** n / n
    np.testing.assert_allclose(dropped / trials, expected, atol=0.08)
    # inference: the plain mean
    got = float(np.asarray(join(xs + [_state_row(state, False)], training=False)).ravel()[0])
    assert got == pytest.approx(37.0)


def test_global_drop_path_picks_one_column_for_every_join():
    model = FractalNet(columns=4, blocks=2, filters=(4, 4), input_shape=(8, 8, 1), classes=3,
                       local_drop=0.15, global_drop=0.5, seed=5)
    state, joins = fractal_state(model), fractal_joins(model)
    assert len(joins) == 2 * 4 and len({id(j) for j in joins}) == 8  # depths 2, 4, 6, 8

    @tf.function
    def draw():  # one training step's draw, in graph mode, for every join of the network
        row = state(tf.zeros((2, 8, 8, 1)), training=True)
        return row, [j.allowed(row, training=True) for j in joins]

    n_global, picked = 0, set()
    for _ in range(120):
        row, allowed = draw()
        row = np.asarray(row)
        assert (row == row[0]).all()  # one draw for the whole batch
        flag, mask = row[0, -1], row[0, :-1]
        if flag == 0:  # a global batch: one column, and every join holding it keeps only it
            n_global += 1
            assert mask.sum() == 1
            c = int(mask.argmax())
            picked.add(c)
            for j, a in zip(joins, allowed):
                a = np.asarray(a)
                if c in j.input_columns:
                    assert a.tolist() == [float(col == c) for col in j.input_columns]
        else:
            assert mask.tolist() == [1, 1, 1, 1]
            for a in allowed:
                assert np.asarray(a).sum() >= 1
    assert 35 <= n_global <= 85  # half of the batches (binomial, n = 120)
    assert picked == {0, 1, 2, 3}
    # inference: every join takes the plain mean
    row = state(tf.zeros((2, 8, 8, 1)), training=False)
    for j in joins:
        assert np.asarray(j.allowed(row, training=False)).tolist() == [1.0] * len(j.input_columns)


def test_drop_path_disabled_gives_the_full_network_in_training_mode():
    model = FractalNet(columns=3, blocks=1, filters=(4,), input_shape=(4, 4, 1), classes=3,
                       local_drop=0.5, global_drop=0.5, seed=3)
    plain = FractalNet(columns=3, blocks=1, filters=(4,), input_shape=(4, 4, 1), classes=3,
                       local_drop=0.0, global_drop=0.0)
    plain.set_weights(model.get_weights())
    x = _x((4, 4, 1))
    state = fractal_state(model)
    with drop_path_disabled(model, keras.Sequential()):
        assert np.asarray(state(x, training=True))[0].tolist() == [1, 1, 1, 0]
        for _ in range(3):  # BN on batch statistics, every column kept
            np.testing.assert_allclose(np.asarray(model(x, training=True)),
                                       np.asarray(plain(x, training=True)), atol=1e-6)
    assert int(np.asarray(state.enabled)) == 1  # restored
    with pytest.raises(ValueError, match="`enabled`"):
        state.set_drop_path(1)


def test_drop_path_is_seeded():
    def outputs(seed):
        model = FractalNet(columns=3, blocks=1, filters=(4,), input_shape=(4, 4, 1), classes=3,
                           seed=seed)
        keras.utils.set_random_seed(0)
        weights = [np.random.default_rng(i).normal(size=w.shape).astype(w.dtype)
                   if w.dtype == "float32" else np.asarray(w) for i, w in enumerate(model.weights)]
        model.set_weights(weights)
        x = _x((4, 4, 1))
        return [np.asarray(model(x, training=True)) for _ in range(6)]

    a, b = outputs(11), outputs(11)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


# ------------------------------------------------------------------------------------------------
# extract_column
# ------------------------------------------------------------------------------------------------

def test_extract_column_equals_the_forced_full_model():
    model = FractalNet(columns=3, blocks=2, filters=(6, 8), input_shape=(8, 8, 3), classes=4,
                       seed=2)
    _randomise_bn(model)
    state = fractal_state(model)
    x = _x((8, 8, 3), batch=4)
    for c in range(3):
        column = extract_column(model, c)
        convs = [l for l in column.layers if isinstance(l, keras.layers.Conv2D)]
        assert len(convs) == 2 * 2 ** c  # 2^c layers per block
        for layer in column.layers[1:]:  # the same layer objects: the weights are shared
            assert model.get_layer(layer.name) is layer
        assert not any(isinstance(l, (FractalJoin, FractalPathState)) for l in column.layers)
        state.force_column(c)
        try:
            # training mode: the column's BNs see the same batch as in the full model
            full_train = np.asarray(model(x, training=True))
            col_train = np.asarray(column(x, training=True))
            np.testing.assert_allclose(full_train, col_train, rtol=0, atol=1e-6)
            np.testing.assert_allclose(np.asarray(model(x, training=False)),
                                       np.asarray(column(x, training=False)), rtol=0, atol=1e-6)
        finally:
            state.force_column(None)
    assert column.name == f"{model.name}_column2"


def test_extract_column_of_a_fractal_of_fractalnet():
    model = FractalOfFractalNet(columns=2, paths=2, filters=(4, 6), input_shape=(8, 8, 3),
                                classes=3, seed=4)
    state = fractal_state(model)
    x = _x((8, 8, 3))
    for c in range(2):
        for p in range(2):
            column = extract_column(model, (c, p))
            state.force_column(c, group=0)
            state.force_column(p, group=1)
            try:
                np.testing.assert_allclose(np.asarray(model(x, training=True)),
                                           np.asarray(column(x, training=True)), atol=1e-6)
            finally:
                state.force_column(None, group=0)
                state.force_column(None, group=1)
            assert all(l.name.startswith(f"path{p}_") for l in column.layers
                       if isinstance(l, keras.layers.Conv2D))


def test_extract_column_refuses_bad_arguments():
    model = FractalNet(columns=2, blocks=1, filters=(4,), input_shape=(4, 4, 1), classes=3)
    with pytest.raises(ValueError, match=r"`column`.*Received: column=2"):
        extract_column(model, 2)
    with pytest.raises(ValueError, match="`model`"):
        extract_column(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), 0)


# ------------------------------------------------------------------------------------------------
# Training, serialization, knobs
# ------------------------------------------------------------------------------------------------

def test_fit_and_keras_round_trip(tmp_path):
    model = FractalNet(columns=3, blocks=1, filters=(4,), input_shape=(4, 4, 1), classes=3,
                       dropout=0.1, seed=7)
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = _x((4, 4, 1), batch=16), np.arange(16) % 3
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # graph mode, drop-path on
    assert np.isfinite(history.history["loss"][0])
    fractal_state(model).force_column(1)
    path = tmp_path / "fractal.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    state = fractal_state(loaded)
    assert isinstance(state, FractalPathState) and state.get_config()["global_drop"] == 0.5
    assert np.asarray(state.forced).tolist() == [1]  # the forced column is saved with the model
    assert [j.get_config()["input_columns"] for j in fractal_joins(loaded)] == \
        [j.get_config()["input_columns"] for j in fractal_joins(model)]
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    clone = keras.Model.from_config(model.get_config())
    assert len(fractal_joins(clone)) == len(fractal_joins(model))


@pytest.mark.parametrize("kwargs, arg", [
    (dict(columns=0), "columns"),
    (dict(columns=2.5), "columns"),
    (dict(local_drop=1.0), "local_drop"),
    (dict(local_drop=-0.1), "local_drop"),
    (dict(global_drop=1.0), "global_drop"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=(0.1, 0.2)), "dropout"),
    (dict(blocks=0), "blocks"),
    (dict(blocks=6), "blocks"),  # 2^6 > the 32-px default input
    (dict(filters=(8, 8)), "filters"),
    (dict(input_shape=(16, 16, 3)), "input_shape"),  # 5 blocks need 32 px
    (dict(seed=1.5), "seed"),
])
def test_bad_knobs(kwargs, arg):
    with pytest.raises(ValueError) as err:
        with shapes_only():
            FractalNet(**kwargs)
    message = str(err.value)
    assert f"`{arg}`" in message and f"Received: {arg}=" in message, message


@pytest.mark.parametrize("kwargs, arg", [
    (dict(paths=0), "paths"),
    (dict(filters=(8, 8, 8)), "filters"),
    (dict(global_drop=1.5), "global_drop"),
])
def test_bad_fof_knobs(kwargs, arg):
    with pytest.raises(ValueError, match=f"`{arg}`.*Received: {arg}="):
        with shapes_only():
            FractalOfFractalNet(**kwargs)
