"""Residual blocks and stochastic depth (keras_cnns.blocks)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnns.blocks import (
    PadChannels,
    StochasticDepth,
    basic_block,
    bottleneck_block,
    bottleneck_width,
    preact_basic_block,
    preact_bottleneck_block,
)


def _model(fn, shape=(8, 8, 16)):
    inp = keras.Input(shape)
    return keras.Model(inp, fn(inp))


def _x(shape, batch=2, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, *shape)).astype("float32")


class _CallCounter(keras.layers.Layer):
    """Identity that counts its executions in a variable (a side effect that runs only when the
    op runs, in eager mode and inside a tf.function alike)."""

    def build(self, input_shape):
        self.count = self.add_weight(shape=(), initializer="zeros", trainable=False, name="count")

    def call(self, x):
        self.count.assign_add(1.0)
        return x


def _counting_wrapper(survival_prob, seed=3, shape=(4, 4, 3)):
    inner = keras.Input(shape)
    counter = _CallCounter(name="counter")
    y = keras.layers.Conv2D(shape[-1], 1, name="conv")(counter(inner))
    branch = keras.Model(inner, y, name="branch")
    return StochasticDepth(branch, survival_prob, seed=seed), counter


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf_function"])
def test_dropped_branch_is_not_executed(graph):
    shape = (4, 4, 3)
    layer, counter = _counting_wrapper(0.5, shape=shape)
    x = tf.constant(_x(shape))
    shortcut = tf.constant(_x(shape, seed=1))
    step = (lambda a, b: layer([a, b], training=True))
    if graph:
        step = tf.function(step)
    kept = 0
    calls = 40
    for _ in range(calls):
        before = float(counter.count.numpy())
        y = step(x, shortcut).numpy()
        dropped = np.array_equal(y, shortcut.numpy())
        executed = float(counter.count.numpy()) - before
        # the branch ran exactly when the block was kept
        assert executed == (0.0 if dropped else 1.0)
        kept += not dropped
    # one Bernoulli(0.5) per call: both outcomes occur (a multiply-by-zero implementation would
    # run the counter on every call and fail the check above)
    assert 0 < kept < calls


def test_dropped_block_leaves_its_batch_norm_statistics_alone():
    shape = (8, 8, 16)
    m = _model(lambda t: bottleneck_block(t, 4, survival_prob=1e-9, name="b"), shape)
    sd = m.get_layer("b_add")
    bn = sd.branch.get_layer("b_1_bn")
    before = bn.moving_mean.numpy().copy()
    x = _x(shape)
    y = tf.function(lambda a: m(a, training=True))(tf.constant(x)).numpy()
    np.testing.assert_array_equal(bn.moving_mean.numpy(), before)
    # dropped: the output is relu(identity shortcut)
    np.testing.assert_allclose(y, np.maximum(x, 0.0), atol=0)
    # kept (p = 1 builds no wrapper): the statistics move
    m2 = _model(lambda t: bottleneck_block(t, 4, name="k"), shape)
    bn2 = m2.get_layer("k_1_bn")
    m2(x, training=True)
    assert not np.allclose(bn2.moving_mean.numpy(), 0.0)


def test_inference_scales_the_branch_by_the_survival_probability():
    shape = (4, 4, 3)
    p = 0.3
    layer, _ = _counting_wrapper(p, shape=shape)
    x, shortcut = _x(shape), _x(shape, seed=1)
    y = np.asarray(layer([x, shortcut], training=False))
    branch = np.asarray(layer.branch(x))
    np.testing.assert_allclose(y, shortcut + p * branch, rtol=1e-6, atol=1e-6)
    assert not np.allclose(branch, 0.0)


def test_dropped_block_gets_no_gradient_and_kept_block_does():
    shape = (4, 4, 3)
    x, shortcut = tf.constant(_x(shape)), tf.constant(_x(shape, seed=1))
    for p, expect_grad in ((1e-9, False), (1.0, True)):
        layer, _ = _counting_wrapper(p, shape=shape)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer([x, shortcut], training=True))
        grads = tape.gradient(loss, layer.branch.trainable_weights)
        assert all((g is not None) == expect_grad for g in grads)


def test_stochastic_depth_block_round_trips_through_keras_files(tmp_path):
    shape = (8, 8, 16)
    m = _model(lambda t: preact_basic_block(t, 32, stride=2, shortcut="A", survival_prob=0.7,
                                            dropout=0.2, name="p"), shape)
    x = _x(shape)
    expected = np.asarray(m(x, training=False))
    path = tmp_path / "sd.keras"
    m.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), expected, rtol=1e-6, atol=1e-6)
    assert isinstance(loaded.get_layer("p_out"), StochasticDepth)
    assert loaded.get_layer("p_out").survival_prob == pytest.approx(0.7)


@pytest.mark.parametrize("size", [8, 7])
def test_shortcut_a_subsamples_and_appends_zero_channels(size):
    shape = (size, size, 16)
    m = _model(lambda t: basic_block(t, 32, stride=2, shortcut="A", name="b"), shape)
    assert not any("0_conv" in l.name for l in m.layers)  # parameter free
    shortcut = keras.Model(m.input, m.get_layer("b_0_pad").output)
    x = _x(shape)
    sub = x[:, ::2, ::2, :]
    reference = np.concatenate([sub, np.zeros(sub.shape, "float32")], axis=-1)
    np.testing.assert_array_equal(np.asarray(shortcut(x)), reference)
    assert m.output.shape[1:] == (-(-size // 2), -(-size // 2), 32)


def test_pad_channels_layer_and_its_config():
    layer = PadChannels(3)
    x = _x((2, 2, 1))
    np.testing.assert_array_equal(np.asarray(layer(x))[..., 1:], 0.0)
    np.testing.assert_array_equal(np.asarray(layer(x))[..., :1], x)
    assert PadChannels.from_config(layer.get_config()).channels == 3
    with pytest.raises(ValueError, match="channels"):
        PadChannels(0)


def test_shortcut_kinds():
    # B: projection only where the width changes; C: always; A: never
    m = _model(lambda t: basic_block(basic_block(t, 16, name="same"), 32, stride=2, name="wide"))
    names = [l.name for l in m.layers]
    assert "wide_0_conv" in names and "wide_0_bn" in names and "same_0_conv" not in names
    m = _model(lambda t: basic_block(t, 16, shortcut="C", name="c"))
    assert "c_0_conv" in [l.name for l in m.layers]
    # B with a resolution change alone: parameter-free subsample (keras.applications ResNetV2)
    m = _model(lambda t: preact_bottleneck_block(t, 4, stride=2, name="v2"), (8, 8, 16))
    assert "v2_0_pool" in [l.name for l in m.layers] and "v2_0_conv" not in [l.name for l in m.layers]
    with pytest.raises(ValueError, match="shortcut"):
        _model(lambda t: basic_block(t, 8, shortcut="A"))  # A cannot narrow 16 -> 8


def test_bottleneck_names_stride_placement_and_biases():
    shape = (8, 8, 16)
    m = _model(lambda t: bottleneck_block(t, 8, stride=2, name="b"), shape)  # torchvision v1.5
    assert m.get_layer("b_1_conv").strides == (1, 1) and m.get_layer("b_2_conv").strides == (2, 2)
    assert m.get_layer("b_2_pad").padding == ((1, 1), (1, 1))  # PyTorch's symmetric padding
    assert not any(getattr(l, "use_bias", False) for l in m.layers if isinstance(l, keras.layers.Conv2D))
    assert m.output.shape[1:] == (4, 4, 32)
    m = _model(lambda t: bottleneck_block(t, 8, stride=2, stride_on="1x1", use_bias=True,
                                          bn_epsilon=1.001e-5, name="k"), shape)  # keras v1
    assert m.get_layer("k_1_conv").strides == (2, 2) and m.get_layer("k_2_conv").strides == (1, 1)
    assert m.get_layer("k_2_conv").padding == "same"
    assert all(l.use_bias for l in m.layers if isinstance(l, keras.layers.Conv2D))
    assert m.get_layer("k_1_bn").epsilon == pytest.approx(1.001e-5)
    assert [l.name for l in m.layers][-2:] == ["k_add", "k_out"]
    # pre-activation: biases only on the convolutions that feed the addition
    m = _model(lambda t: preact_bottleneck_block(t, 8, use_bias=True, explicit_pad=True, name="p"), shape)
    bias = {l.name: l.use_bias for l in m.layers if isinstance(l, keras.layers.Conv2D)}
    assert bias == {"p_0_conv": True, "p_1_conv": False, "p_2_conv": False, "p_3_conv": True}
    assert isinstance(m.get_layer("p_2_pad"), keras.layers.ZeroPadding2D)
    assert m.layers[-1].name == "p_out"


def test_grouped_width_formula_and_dropout():
    assert bottleneck_width(64, 4, 32) == 128       # ResNeXt-50 32x4d, first stage
    assert bottleneck_width(64, 8, 32) == 256       # ResNeXt-101 32x8d
    assert bottleneck_width(512, 128, 1) == 1024    # WRN-50-2, last stage
    m = _model(lambda t: bottleneck_block(t, 64, groups=32, base_width=4, dropout=0.3, name="x"),
               (8, 8, 64))
    assert m.get_layer("x_2_conv").groups == 32 and m.get_layer("x_2_conv").filters == 128
    order = [l.name for l in m.layers]
    assert order.index("x_2_relu") < order.index("x_dropout") < order.index("x_3_conv")


def test_forward_backward_of_each_block_kind():
    shape = (8, 8, 16)
    for fn in (basic_block, bottleneck_block, preact_basic_block, preact_bottleneck_block):
        m = _model(lambda t: fn(t, 8, stride=2, survival_prob=0.8, dropout=0.1), shape)
        x = tf.constant(_x(shape))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(m(x, training=False) ** 2)
        grads = tape.gradient(loss, m.trainable_weights)
        assert all(g is not None and bool(tf.reduce_all(tf.math.is_finite(g))) for g in grads)


@pytest.mark.parametrize("arg, kwargs", [
    ("filters", dict(filters=0)),
    ("stride", dict(stride=0)),
    ("groups", dict(groups=2)),            # basic blocks: groups must be 1
    ("base_width", dict(base_width=128)),  # basic blocks: base_width must be 64
    ("stride_on", dict(stride_on="5x5")),
    ("shortcut", dict(shortcut="D")),
    ("dropout", dict(dropout=1.0)),
    ("survival_prob", dict(survival_prob=0.0)),
    ("survival_prob", dict(survival_prob=1.5)),
    ("bn_epsilon", dict(bn_epsilon=0)),
    ("bn_momentum", dict(bn_momentum=1.0)),
    ("use_bias", dict(use_bias="yes")),
    ("explicit_pad", dict(explicit_pad=1)),
    ("seed", dict(seed=1.5)),
    ("name", dict(name="")),
])
def test_invalid_block_arguments(arg, kwargs):
    inp = keras.Input((8, 8, 16))
    kwargs = dict(kwargs)
    filters = kwargs.pop("filters", 16)
    with pytest.raises(ValueError) as err:
        basic_block(inp, filters, **kwargs)
    assert f"`{arg}`" in str(err.value) and "Received:" in str(err.value)


def test_invalid_stochastic_depth_layer_arguments():
    inner = keras.Input((4, 4, 3))
    branch = keras.Model(inner, inner)
    with pytest.raises(ValueError, match="survival_prob"):
        StochasticDepth(branch, 0.0)
    with pytest.raises(ValueError, match="branch"):
        StochasticDepth("not a layer", 0.5)
    with pytest.raises(ValueError, match="seed"):
        StochasticDepth(branch, 0.5, seed="x")
