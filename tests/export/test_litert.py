"""run_litert: .tflite files in LiteRT (ai-edge-litert), in a process without TensorFlow.

The family sweep (test_export_every_family.py) runs every family's float32 and int8 files there;
these tests cover the function itself: one call, several files, int8 (de)quantization, and what
a file LiteRT cannot run, a missing file or a missing package give.
"""

import numpy as np
import pytest

from keras_cnns.export import LiteRTError, export_tflite, run_litert, \
    run_litert_many, run_tflite
from keras_cnns.export import _litert
from tests.export._litert_support import require_litert


@pytest.fixture(scope="module", autouse=True)
def _litert_installed():
    require_litert()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import keras

    init = keras.initializers.RandomNormal(stddev=1.0, seed=0)  # decisive logits
    inputs = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", kernel_initializer=init)(inputs)
    h = keras.layers.DepthwiseConv2D(3, depthwise_initializer=init)(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inputs, keras.layers.Dense(5, kernel_initializer=init)(h), name="tiny")
    d = tmp_path_factory.mktemp("litert")
    x = np.random.default_rng(0).random((8, 12, 12, 3)).astype("float32")
    f32 = export_tflite(model, d / "f32.tflite")
    int8 = export_tflite(model, d / "int8.tflite", quantization="int8",
                         representative_dataset=np.random.default_rng(1).random(
                             (32, 12, 12, 3)).astype("float32"))
    bad = d / "garbage.tflite"
    bad.write_bytes(b"not a flatbuffer" * 8)
    return model, x, f32, int8, str(bad)


def test_float32_and_int8_equal_tf_lite_in_one_process(files):
    model, x, f32, int8, _ = files
    got = run_litert_many({"f32": (f32, x), "int8": (int8, x)})
    np.testing.assert_allclose(got["f32"], np.asarray(model(x)), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got["f32"], run_tflite(f32, x), atol=1e-6)
    assert got["int8"].dtype == np.float32  # dequantized
    np.testing.assert_array_equal(got["int8"], run_tflite(int8, x))
    np.testing.assert_array_equal(run_litert(int8, x[:3]), run_tflite(int8, x[:3]))  # resized


def test_a_file_litert_cannot_load_is_reported_and_the_others_still_run(files):
    _, x, f32, _, bad = files
    got = run_litert_many({"bad": (bad, x), "good": (f32, x)})
    assert isinstance(got["bad"], LiteRTError) and "bad" in str(got["bad"])
    assert isinstance(got["good"], np.ndarray) and got["good"].shape == (8, 5)
    with pytest.raises(LiteRTError, match="model"):
        run_litert(bad, x)


def test_missing_file_empty_jobs_and_missing_package(files, tmp_path, monkeypatch):
    _, x, _, _, _ = files
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        run_litert(tmp_path / "missing.tflite", x)
    with pytest.raises(ValueError, match="`jobs`"):
        run_litert_many({})
    monkeypatch.setattr(_litert, "litert_available", lambda: False)
    with pytest.raises(ModuleNotFoundError, match="pip install"):
        run_litert(files[2], x)
