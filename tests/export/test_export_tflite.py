"""export_tflite: float32 / float16 / dynamic / int8 run in the TFLite interpreter like Keras."""

import os

import keras
import numpy as np
import pytest

from keras_cnns.export import export_tflite, run_tflite
from keras_cnns.layers import GroupedDepthwiseConv2D


@pytest.fixture
def model():
    init = keras.initializers.RandomNormal(stddev=1.0, seed=0)  # decisive logits
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu",
                            kernel_initializer=init)(inputs)
    x = GroupedDepthwiseConv2D(kernel_size=3, kernel_initializer=init)(x)
    x = GroupedDepthwiseConv2D(filters=8, kernel_size=1, groups=2, shuffle_groups=2,
                               kernel_initializer=init)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5, activation="softmax", kernel_initializer=init)(x)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.fixture
def x():
    return np.random.default_rng(0).random((32, 12, 12, 3)).astype("float32")


def test_float32_matches_keras(model, x, tmp_path):
    path = export_tflite(model, tmp_path / "m.tflite")
    assert path == str(tmp_path / "m.tflite") and os.path.getsize(path) > 0
    assert os.listdir(tmp_path) == ["m.tflite"]
    np.testing.assert_allclose(run_tflite(path, x), model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("quantization,atol", [("float16", 2e-2), ("dynamic", 5e-2)])
def test_float16_and_dynamic_run(model, x, tmp_path, quantization, atol):
    path = export_tflite(model, tmp_path / f"{quantization}.tflite", quantization=quantization)
    y = run_tflite(path, x)
    expected = model.predict(x, verbose=0)
    assert y.shape == expected.shape and np.all(np.isfinite(y))
    np.testing.assert_allclose(y, expected, atol=atol)


def test_int8_full_integer(model, x, tmp_path):
    import tensorflow as tf

    calibration = np.random.default_rng(1).random((64, 12, 12, 3)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((calibration, np.zeros(64, "int32"))).batch(16)
    path = export_tflite(model, tmp_path / "int8.tflite", quantization="int8",
                         representative_dataset=dataset)
    interpreter = tf.lite.Interpreter(model_path=path)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    y = run_tflite(path, x)
    expected = model.predict(x, verbose=0)
    agreement = np.mean(y.argmax(1) == expected.argmax(1))
    assert agreement >= 0.8
    # an array works as the representative dataset too
    export_tflite(model, tmp_path / "int8b.tflite", quantization="int8",
                  representative_dataset=calibration)


def test_int8_needs_a_representative_dataset(model, tmp_path):
    with pytest.raises(ValueError, match="`representative_dataset`"):
        export_tflite(model, tmp_path / "m.tflite", quantization="int8")
    assert os.listdir(tmp_path) == []


def test_never_overwrites(model, tmp_path):
    target = tmp_path / "m.tflite"
    target.write_bytes(b"existing")
    with pytest.raises(FileExistsError):
        export_tflite(model, target)
    assert target.read_bytes() == b"existing" and os.listdir(tmp_path) == ["m.tflite"]


@pytest.mark.parametrize("kwargs,arg", [
    ({"quantization": "int4"}, "quantization"), ({"path": ""}, "path"),
    ({"model": object()}, "model"), ({"num_calibration_examples": 0}, "num_calibration_examples"),
])
def test_bad_arguments(model, tmp_path, kwargs, arg):
    args = {"model": model, "path": tmp_path / "m.tflite"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"`{arg}`.*Received: {arg}="):
        export_tflite(**args)


@pytest.mark.parametrize("layer_kwargs", [
    dict(kernel_size=5, strides=(2, 1)),                                   # depthwise, unequal strides
    dict(kernel_size=3, strides=2, dilation_rate=2),                       # depthwise, stride + dilation
    dict(filters=12, kernel_size=3, groups=3, shuffle_groups=3),           # grouped 3x3 + shuffle
    dict(filters=6, kernel_size=3, groups=3, strides=(1, 2), dilation_rate=(2, 1)),  # grouped, both
], ids=["dw_s21", "dw_s2_d2", "grouped_shuffle", "grouped_s12_d21"])
def test_oneDNN_only_convolutions_export_and_train_on_every_cpu(layer_kwargs, tmp_path):
    # These are the convolutions TF's stock kernels run only with oneDNN (unequal depthwise
    # strides, grouped or dilated conv2d gradients). The stock lowering must export them to
    # TFLite and train them (the no-compiler fallback) with oneDNN on and off alike.
    import tensorflow as tf

    from keras_cnns import ops

    init = keras.initializers.RandomNormal(stddev=1.0, seed=0)
    inputs = keras.Input((11, 10, 6))
    x = GroupedDepthwiseConv2D(kernel_initializer=init, **layer_kwargs)(inputs)
    outputs = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).random((4, 11, 10, 6)).astype("float32")
    path = export_tflite(model, tmp_path / "m.tflite")
    np.testing.assert_allclose(run_tflite(path, x), model.predict(x, verbose=0), atol=1e-5)
    with ops.stock_ops_only(), tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    with tf.GradientTape() as tape:
        loss_op = tf.reduce_sum(model(x, training=True) ** 2)
    grads_op = tape.gradient(loss_op, model.trainable_variables)
    for g, g_op in zip(grads, grads_op):
        assert np.all(np.isfinite(g.numpy())) and np.abs(g.numpy()).sum() > 0
        np.testing.assert_allclose(g.numpy(), g_op.numpy(), rtol=1e-4, atol=1e-4)


def test_a_layer_tflite_cannot_take_is_named_and_nothing_is_written(tmp_path):
    import tensorflow as tf

    from keras_cnns.export import UnsupportedByTFLiteError, tflite

    class InverseErf(keras.layers.Layer):  # tf.math.erfinv has no TFLite builtin
        def call(self, x):
            return tf.math.erfinv(tf.tanh(x) * 0.5)

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = InverseErf(name="inverse_erf")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(x), name="odd")
    with pytest.raises(UnsupportedByTFLiteError, match="layer 'inverse_erf'.*tf.Erfinv") as err:
        tflite(model, tmp_path / "odd.tflite")
    assert err.value.layers == ("inverse_erf",) and err.value.ops == ("tf.Erfinv",)
    assert os.listdir(tmp_path) == []
