"""`verify_exports` calibrates BatchNorm when a random-weight model's outputs overflow.

CIFAR ResNet-1202 and pre-activation ResNet-1001 at initialisation: BatchNorm's identity
statistics (mean 0, variance 1) let hundreds of residual sums grow past float32's range, every
logit is inf or NaN, and the sweep's comparisons were NaN. This model overflows the same way
(three convolutions of std 1e13 weights, each followed by BatchNorm: 1e14, 1e28, then past
3.4e38 with identity statistics; each ~1 with calibrated ones, whose variances ~1e28 float32
holds) and is finite once its BatchNorm
statistics come from data.
"""

import keras
import numpy as np


def _overflowing_model():
    keras.utils.set_random_seed(3)
    big = keras.initializers.RandomNormal(stddev=1e13)
    x = inp = keras.Input((8, 8, 3))
    for _ in range(3):
        x = keras.layers.Conv2D(8, 3, padding="same", kernel_initializer=big)(x)
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10)(x))


def test_overflowing_outputs_get_calibrated_batch_norm(tmp_path):
    from keras_cnns.export._verify import verify_exports

    model = _overflowing_model()
    x = np.random.default_rng(0).random((4, 8, 8, 3), dtype=np.float32)
    assert not np.all(np.isfinite(model(x, training=False)))  # the failure being fixed
    (row,) = verify_exports({"overflow": model}, tmp_path, int8=False, litert=False)
    assert row.get("batch_norm_calibrated") is True, row
    assert "error" not in row, row
    assert np.isfinite(row["keras_output_std"]) and row["keras_output_std"] > 1e-3, row
    assert row["saved_model_rel_diff"] <= 1e-4, row
    assert row["tflite_rel_diff"] <= 1e-3, row
