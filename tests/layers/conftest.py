"""Fixtures for the layer-library tests."""

import keras
import numpy as np
import pytest


@pytest.fixture
def save_load(tmp_path):
    """Save a model to ``.keras`` and load it back (registered custom objects only)."""

    def _roundtrip(model, x):
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
        return loaded

    return _roundtrip


@pytest.fixture
def config_roundtrip():
    """``from_config(get_config())`` gives an equal config."""

    def _roundtrip(layer):
        config = layer.get_config()
        clone = type(layer).from_config(config)
        assert clone.get_config() == config
        # and through Keras' generic (de)serialization with the registered name
        ser = keras.saving.serialize_keras_object(layer)
        assert ser["registered_name"].startswith("keras_cnns>")
        again = keras.saving.deserialize_keras_object(ser)
        assert type(again) is type(layer)
        assert again.get_config() == config
        return clone

    return _roundtrip

