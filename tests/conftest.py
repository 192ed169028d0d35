"""Shared pytest setup: quiet TensorFlow, deterministic seeds, free memory between tests."""

import gc
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402,F401

# TensorFlow and Keras create hundreds of thousands of long-lived objects at import; a full
# collection walks them all (~0.5 s each). Freeze them once so the per-test collection below only
# scans what tests create (it still frees the large models tests build).
gc.collect()
gc.freeze()


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()
    gc.collect()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
