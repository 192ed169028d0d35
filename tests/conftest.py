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
    keras.backend.clear_session(free_memory=False)
    gc.collect()
    # What survives this test (modules imported lazily, caches, module-scoped fixtures) is not
    # walked again by the next test's collection: without this, every teardown re-scanned
    # everything the suite had created so far (0.22 s a test, 510 s of the suite).
    gc.freeze()


@pytest.fixture(scope="module", autouse=True)
def _full_collection_per_module():
    yield
    # module-scoped fixtures are released now: collect everything once, then freeze again
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
