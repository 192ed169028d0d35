"""The freeze-drop-path schedule of Fractal of FractalNet (keras_cnns.training.fractal_schedule):
each stage adds the next deeper path; the finished paths' weights do not move afterwards."""

import numpy as np
import pytest
import keras

from keras_cnns.layers.fractal import fractal_state
from keras_cnns.models.fractalnet import FractalOfFractalNet, path_layers
from keras_cnns.training.fractal_schedule import FreezeDropPath


def _weights(layers, trainable_only=False):
    return [np.array(w) for layer in layers
            for w in (layer.trainable_weights if trainable_only else layer.weights)]


def _moved(before, after):
    return [not np.array_equal(a, b) for a, b in zip(before, after)]


class _Record(keras.callbacks.Callback):
    def __init__(self, paths):
        super().__init__()
        self.paths = paths
        self.snapshots = []  # (stage, {path: all weights}, {path: trainable flags})

    def _take(self):
        return ({p: _weights(path_layers(self.model, p)) for p in range(self.paths)},
                {p: [l.trainable for l in path_layers(self.model, p)] for p in range(self.paths)})

    def on_train_begin(self, logs=None):
        self.snapshots.append(("begin",) + self._take())

    def on_epoch_end(self, epoch, logs=None):
        self.snapshots.append((epoch,) + self._take())


def test_freeze_drop_path_freezes_each_finished_path():
    keras.utils.set_random_seed(0)
    # two paths over two reductions: path 0 one block (two pools), path 1 two blocks
    model = FractalOfFractalNet(columns=2, paths=2, filters=(4, 6), input_shape=(8, 8, 1),
                                classes=3, local_drop=0.0, global_drop=0.0, seed=1)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 1)).astype("float32")
    y = np.arange(16) % 3
    schedule = FreezeDropPath((1, 1))
    record = _Record(2)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[schedule, record])

    assert schedule.stage == 1
    assert np.asarray(fractal_state(model).active).tolist() == [2, 2]
    snaps = record.snapshots
    trainable_1 = [w.trainable for l in path_layers(model, 1) for w in l.weights]
    # stage 0 (epoch 0): path 0 trains (kernels, biases, BN statistics); path 1, not yet added,
    # gets no gradient
    assert all(_moved(snaps[0][1][0], snaps[1][1][0]))
    assert not any(m for m, t in zip(_moved(snaps[0][1][1], snaps[1][1][1]), trainable_1) if t)
    # stage 1 (epoch 1): path 0 frozen (every weight, BN statistics too), path 1 trains
    assert snaps[2][2][0] == [False] * len(path_layers(model, 0))
    assert all(snaps[2][2][1])
    assert not any(_moved(snaps[1][1][0], snaps[2][1][0]))
    assert all(m for m, t in zip(_moved(snaps[1][1][1], snaps[2][1][1]), trainable_1) if t)


def test_freeze_drop_path_checks_its_arguments():
    with pytest.raises(ValueError, match="`stage_epochs`"):
        FreezeDropPath(0)
    with pytest.raises(ValueError, match="`stage_epochs`"):
        FreezeDropPath((1, 0))
    schedule = FreezeDropPath((1, 1))
    model = FractalOfFractalNet(columns=2, paths=3, filters=(4, 4, 4, 4), input_shape=(16, 16, 1))
    schedule.set_model(model)
    with pytest.raises(ValueError, match="one entry per path"):
        schedule.on_train_begin()


def test_precise_batch_norm_measures_the_network_without_drop_path(monkeypatch):
    """``recalibrate_batch_norm`` (what ``train()`` runs before each evaluation) computes the
    statistics of the inference network: with drop-path left on, its training-mode passes
    would average those of randomly truncated networks (held-out accuracy on the digits then
    swung between 0.28 and 0.97 from epoch to epoch)."""
    from keras_cnns.layers.precise_bn import batch_norm_layers, recalibrate_batch_norm
    from keras_cnns.models.fractalnet import FractalNet

    keras.utils.set_random_seed(0)
    model = FractalNet(columns=3, blocks=2, filters=(4, 8), input_shape=(8, 8, 3), classes=3,
                       local_drop=0.5, global_drop=0.5)
    x = np.random.default_rng(0).random((3, 16, 8, 8, 3), dtype=np.float32)

    def statistics():
        return [np.array(w) for bn in batch_norm_layers(model)
                for w in (bn.moving_mean, bn.moving_variance)]

    state = fractal_state(model)
    state.set_drop_path(False)  # the reference: drop-path off by hand
    recalibrate_batch_norm(model, list(x))
    want = statistics()
    state.set_drop_path(True)
    recalibrate_batch_norm(model, list(x))
    for a, b in zip(statistics(), want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(np.array(state.enabled)) == 1  # drop-path on again afterwards
    # the comparison can fail: without the context manager the same passes give other statistics
    import contextlib

    import keras_cnns.layers.precise_bn as precise_bn

    monkeypatch.setattr(precise_bn, "drop_path_disabled", lambda m: contextlib.nullcontext())
    recalibrate_batch_norm(model, list(x))
    assert any(not np.allclose(a, b, rtol=1e-3) for a, b in zip(statistics(), want))
