import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnns.layers import ChannelShuffle


def np_shuffle(x, g):
    """ShuffleNet definition: channels viewed as (g, C/g), transposed, flattened."""
    n, h, w, c = x.shape
    return x.reshape(n, h, w, g, c // g).transpose(0, 1, 2, 4, 3).reshape(n, h, w, c)


@pytest.mark.parametrize("c,g", [(12, 3), (12, 4), (8, 2), (6, 6), (5, 1)])
def test_matches_definition_and_is_permutation(c, g, rng):
    x = rng.normal(size=(2, 3, 4, c)).astype("float32")
    y = np.asarray(ChannelShuffle(g)(x))
    np.testing.assert_array_equal(y, np_shuffle(x, g))
    # channel-index tensor: each input channel appears exactly once
    idx = np.broadcast_to(np.arange(c, dtype="float32"), (1, 2, 2, c))
    perm = np.asarray(ChannelShuffle(g)(idx))[0, 0, 0].astype(int)
    assert sorted(perm.tolist()) == list(range(c))
    for j in range(c // g):
        for i in range(g):
            assert perm[j * g + i] == i * (c // g) + j


@pytest.mark.parametrize("c,g", [(12, 3), (12, 2), (16, 4)])
def test_shuffle_g_then_c_over_g_is_identity(c, g, rng):
    x = rng.normal(size=(1, 2, 2, c)).astype("float32")
    y = ChannelShuffle(c // g)(ChannelShuffle(g)(x))
    np.testing.assert_array_equal(np.asarray(y), x)
    assert not np.array_equal(np.asarray(ChannelShuffle(g)(x)), x)


def test_traced_graph_uses_rank_le_4_tensors_only():
    layer = ChannelShuffle(4)
    fn = tf.function(lambda t: layer(t))
    graph = fn.get_concrete_function(tf.TensorSpec([None, None, None, 16], tf.float32)).graph
    ops = graph.get_operations()
    assert any(op.type == "Transpose" for op in ops)
    for op in ops:
        for out in op.outputs:
            rank = out.shape.rank
            assert rank is not None and rank <= 4, (op.type, op.name, out.shape)
    # the 5-D reference formulation would fail this check
    fn5 = tf.function(lambda t: tf.reshape(t, [-1, 2, 2, 4, 4]))
    g5 = fn5.get_concrete_function(tf.TensorSpec([1, 2, 2, 16], tf.float32)).graph
    assert max(o.shape.rank or 0 for op in g5.get_operations() for o in op.outputs) == 5


def test_dynamic_spatial_shape_and_serialization(save_load, config_roundtrip, rng):
    layer = ChannelShuffle(3, name="shuffle")
    clone = config_roundtrip(layer)
    assert clone.groups == 3
    inp = keras.Input((None, None, 6))
    m = keras.Model(inp, ChannelShuffle(3, name="s")(keras.layers.Conv2D(6, 1)(inp)), name="shuf")
    x = rng.normal(size=(2, 5, 3, 6)).astype("float32")
    assert m(x).shape == (2, 5, 3, 6)
    save_load(m, x)


@pytest.mark.parametrize("groups", [0, -2, 1.5, True, "2"])
def test_invalid_groups(groups):
    with pytest.raises(ValueError, match=r"groups.*Received: groups="):
        ChannelShuffle(groups)


def test_indivisible_channels_raise_at_build():
    with pytest.raises(ValueError, match=r"divisible by `groups`.*Received: groups=4"):
        ChannelShuffle(4)(keras.Input((4, 4, 6)))
