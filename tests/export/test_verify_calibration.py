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


def test_calibration_images_is_checked(tmp_path):
    import pytest

    from keras_cnns.export._verify import verify_exports

    model = _overflowing_model()
    for bad in (1, 0, True, 2.5, "64"):
        with pytest.raises(ValueError, match="calibration_images"):
            verify_exports({"m": model}, tmp_path, calibration_images=bad)


def test_int8_takes_a_bool_or_names_of_the_models(tmp_path):
    import pytest

    from keras_cnns.export._verify import verify_exports

    model = _overflowing_model()
    for bad in (["other"], "m", 1, {"m", "other"}):
        with pytest.raises(ValueError, match="int8"):
            verify_exports({"m": model}, tmp_path, int8=bad, litert=False)


def _one_by_one_stage_model():
    """Like EfficientNet's last stages at 32x32 input: BatchNorm over 1x1 feature maps, so each
    channel's batch variance comes from as many numbers as there are calibration images."""
    keras.utils.set_random_seed(5)
    x = inp = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(32, 4, padding="valid")(x)  # 1x1 from here on
    for _ in range(4):
        x = keras.layers.Conv2D(32, 1)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(10)(x))


def test_float64_columns_cover_the_served_saved_model(tmp_path):
    """With float64_reference the served SavedModel's outputs are compared with the float64
    evaluation too (the sweep's criterion for models whose own float32 result is far from it),
    and on a small model all three float32 programs are close to it."""
    from keras_cnns.export._verify import verify_exports

    (row,) = verify_exports({"onebyone": _one_by_one_stage_model()}, tmp_path, int8=False,
                            litert=False, float64_reference=True, calibrate_batch_norm=True,
                            calibration_images=32)
    assert "error" not in row and "saved_model_error" not in row, row
    for key in ("keras_float64_rel_err", "saved_model_float64_rel_err", "tflite_float64_rel_err"):
        assert 0 <= row[key] < 1e-4, (key, row)
    # the SavedModel's float64 error is measured, not copied from Keras': the two are
    # consistent with their difference
    assert row["saved_model_rel_diff"] <= (row["keras_float64_rel_err"]
                                           + row["saved_model_float64_rel_err"] + 1e-12), row
