"""The fused-kernel BatchNormalization against Keras' own layer: training-mode output,
gradients and moving statistics; inference and the fallbacks are Keras' code."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_cnns.layers import BatchNormalization


def _pair(shape, **kwargs):
    ours, theirs = BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    ours.build(shape)
    theirs.build(shape)
    rng = np.random.default_rng(1)
    for a, b in zip(ours.weights, theirs.weights):
        v = rng.uniform(0.5, 1.5, a.shape).astype("float32")
        a.assign(v)
        b.assign(v)
    return ours, theirs


def _step(layer, x, up, training=True):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        loss = tf.reduce_sum(y * up)
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return (y.numpy(), [g.numpy() for g in grads], layer.moving_mean.numpy(),
            layer.moving_variance.numpy())


@pytest.mark.parametrize("shape, kwargs", [
    ((2, 2, 2, 5), dict(epsilon=1e-5, momentum=0.9)),               # n = 8: (n-1)/n matters
    ((8, 7, 9, 16), dict(epsilon=1e-3, momentum=0.99)),
    ((3, 4, 4, 6), dict(epsilon=1e-5, momentum=0.9, center=False, scale=False)),
])
def test_training_step_equals_keras(shape, kwargs):
    ours, theirs = _pair(shape, **kwargs)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2, 3, shape).astype("float32"))
    up = tf.constant(rng.normal(size=shape).astype("float32"))
    for _ in range(2):  # the moving statistics accumulate alike
        a, b = _step(ours, x, up), _step(theirs, x, up)
    np.testing.assert_allclose(a[0], b[0], atol=1e-5)
    for ga, gb in zip(a[1], b[1]):
        np.testing.assert_allclose(ga, gb, atol=1e-4 * max(1.0, np.abs(gb).max()))
    np.testing.assert_allclose(a[2], b[2], atol=1e-6)
    np.testing.assert_allclose(a[3], b[3], atol=1e-5)
    assert not np.allclose(a[3], 1.0)  # the statistics did move


def test_training_runs_the_fused_kernel_and_inference_does_not():
    layer = BatchNormalization()
    layer.build((2, 4, 4, 3))
    x = tf.zeros((2, 4, 4, 3))
    ops = lambda training: {op.type for op in tf.function(  # noqa: E731
        lambda t: layer(t, training=training)).get_concrete_function(x).graph.get_operations()}
    assert "FusedBatchNormV3" in ops(True)
    assert not any(t.startswith("FusedBatchNorm") for t in ops(False))


@pytest.mark.parametrize("case", ["2d", "axis1", "frozen"])
def test_other_cases_fall_back_to_keras(case):
    shape = (4, 6) if case == "2d" else (2, 3, 4, 5)
    kwargs = {"axis": 1} if case == "axis1" else {}
    ours, theirs = _pair(shape, **kwargs)
    if case == "frozen":
        ours.trainable = theirs.trainable = False   # Keras: inference mode when frozen
    x = tf.constant(np.random.default_rng(2).normal(size=shape).astype("float32"))
    np.testing.assert_allclose(ours(x, training=True).numpy(), theirs(x, training=True).numpy(),
                               atol=1e-5)
    np.testing.assert_allclose(ours.moving_variance.numpy(), theirs.moving_variance.numpy(),
                               atol=1e-6)


def test_serializes_as_its_own_class():
    layer = BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(again) is BatchNormalization and again.epsilon == 1e-5
    assert isinstance(again, keras.layers.BatchNormalization)
