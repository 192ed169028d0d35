"""The per-shape choice between the custom op and TF's depthwise kernel (depthwise_dispatch)."""

import numpy as np
import pytest
import tensorflow as tf

from keras_cnns.ops import custom_op_available, grouped_depthwise_conv2d
from keras_cnns.ops.depthwise_dispatch import ENV_VAR, measured_rule, prefer_custom_op

needs_op = pytest.mark.skipif(not custom_op_available(), reason="custom op not built here")


def test_measured_rule():
    # oneDNN off: the custom op for every measured shape
    for shape in [(7, 7, 1152, 3, 1), (112, 112, 16, 3, 1), (14, 14, 672, 5, 1)]:
        assert measured_rule(*shape, onednn=False)
    # oneDNN on: TF's kernel for 3x3 on large maps with few channels
    assert measured_rule(7, 7, 1152, 3, 1, onednn=True)
    assert not measured_rule(113, 113, 64, 3, 2, onednn=True)
    assert not measured_rule(112, 112, 16, 3, 1, onednn=True)
    assert measured_rule(112, 112, 16, 5, 1, onednn=True)    # 5x5: always the custom op
    assert measured_rule(28, 28, 256, 3, 1, onednn=True)
    assert measured_rule(None, None, 256, 3, 1, onednn=True)  # unknown sides count as large
    assert not measured_rule(None, None, 32, 3, 1, onednn=True)


def test_environment_override(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "stock")
    assert not prefer_custom_op(28, 28, 256, 5, 1)
    monkeypatch.setenv(ENV_VAR, "custom")
    assert prefer_custom_op(112, 112, 16, 3, 1, onednn=True)
    monkeypatch.setenv(ENV_VAR, "auto")
    assert not prefer_custom_op(112, 112, 16, 3, 1, onednn=True)
    monkeypatch.setenv(ENV_VAR, "fastest")
    with pytest.raises(ValueError, match=ENV_VAR):
        prefer_custom_op(7, 7, 1152, 3, 1)


def _op_types(fn, *args):
    return {op.type for op in fn.get_concrete_function(*args).graph.get_operations()}


@needs_op
@pytest.mark.parametrize("mode", ["custom", "stock"])
def test_dispatch_picks_the_kernel_and_both_agree(monkeypatch, mode):
    monkeypatch.setenv(ENV_VAR, mode)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 9, 9, 8)).astype("float32"))
    k = tf.constant(rng.normal(size=(3, 3, 1, 8)).astype("float32"))

    @tf.function
    def f(x):
        return grouped_depthwise_conv2d(x, k, strides=2, padding="SAME")

    types = _op_types(f, tf.TensorSpec(x.shape, x.dtype))
    custom = any("GroupedDepthwise" in t for t in types)
    assert custom == (mode == "custom")
    assert ("DepthwiseConv2dNative" in types) == (mode == "stock")
    expected = tf.nn.depthwise_conv2d(x, tf.reshape(k, (3, 3, 8, 1)), (1, 2, 2, 1), "SAME")
    np.testing.assert_allclose(f(x).numpy(), expected.numpy(), atol=1e-5)


@needs_op
def test_grouped_and_shuffled_convolutions_always_use_the_custom_op(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "stock")
    x = tf.zeros((1, 6, 6, 8))

    @tf.function
    def f(x):
        return grouped_depthwise_conv2d(x, tf.ones((3, 3, 1, 8)), shuffle_groups=2)

    assert any("GroupedDepthwise" in t for t in _op_types(f, tf.TensorSpec(x.shape)))
