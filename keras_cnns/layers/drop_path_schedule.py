"""Scheduled drop-path, and TensorFlow's "SAME" zero padding for inputs of any side: the two
layers NASNet-A's cells need that stock Keras lacks.

:class:`ScheduledDropPath` -- Zoph, Vasudevan, Shlens, Le, "Learning Transferable Architectures
for Scalable Image Recognition", CVPR 2018 (arXiv:1707.07012), introduce "ScheduledDropPath", a
modified DropPath (Larsson et al. 2017) in which each path of a cell is dropped with a probability
that increases linearly over the course of training. The reference is TF-slim's
``nets/nasnet/nasnet_utils.py`` (``drop_path`` and ``NasNetABaseCell._apply_drop_path``, the
default ``drop_connect_version="v3"``): every operation's output in a cell (not the identity
ones) is dropped per sample with keep probability

    keep = 1 - progress * (1 - keep_prob_at_cell),
    keep_prob_at_cell = 1 - (cell_num + 1) / total_num_cells * (1 - drop_path_keep_prob),

``progress = min(1, global_step / total_training_steps)``, and the kept samples are divided by
``keep``. The layer holds the cell-scaled rate ``rate = 1 - keep_prob_at_cell`` (fixed when the
model is built) and the training progress as a non-trainable scalar weight that a callback moves
(:class:`keras_cnns.training.drop_path_schedule.DropPathSchedule`, which ``train()`` attaches to
any model that holds these layers); the drop probability of a training call is
``progress * rate``. At progress 0 the layer is the identity; at inference it always is.

:class:`SamePadding2D` -- the zero padding TensorFlow's ``"SAME"`` rule gives a strided window,
``max(0, (ceil(n / s) - 1) * s + k - n)`` split with the smaller half before, computed from the
map's side when the graph runs. keras.applications' NASNet pads with ``imagenet_utils.
correct_pad`` before its strided "valid" pools and convolutions, which is exactly this padding
for a known side but assumes an even side when the side is unknown (``None``), so its graph
depends on the input's parity and breaks on odd sides of unknown-size inputs (keras issue
14170, keras-applications#62/#164). A zero-padded "valid" max or average pool is not a "SAME"
pool (which pads with -inf, or leaves the padding out of the average), so the padding has to be
its own layer.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_cnns._checks import check_float, check_positive_int, fail, is_int

__all__ = ["SamePadding2D", "ScheduledDropPath", "same_padding", "scheduled_drop_path_layers"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class ScheduledDropPath(keras.layers.Layer):
    """Per-sample drop-path whose drop probability rises with the training progress.

    In training each sample's tensor is zeroed with probability ``p = progress * rate`` and the
    survivors are divided by ``1 - p`` (TF-slim's ``drop_path``: ``floor(keep + U[0, 1))``
    masks); at inference, and at ``progress = 0``, it is the identity.

    Args:
        rate: the drop probability at the end of training (``progress = 1``), in ``[0, 1)``.
        seed: optional int seed of the draws.
        **kwargs: standard Layer arguments.

    Attributes:
        progress: the non-trainable float32 scalar weight, the training progress in ``[0, 1]``
            (:meth:`set_progress`; saved with the weights, so a resumed run continues it).

    Raises:
        ValueError: ``rate`` outside ``[0, 1)`` or a non-integer ``seed``.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_float("rate", rate, 0.0, 1.0, high_inclusive=False)
        if seed is not None and not is_int(seed):
            fail("seed", "must be None or an integer", seed)
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.supports_masking = True

    def build(self, input_shape):
        self.progress = self.add_weight(name="progress", shape=(), initializer="zeros",
                                        trainable=False, dtype="float32")
        self.built = True

    def set_progress(self, value):
        """Set the training progress (clipped to ``[0, 1]``)."""
        self.progress.assign(min(1.0, max(0.0, float(value))))

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - ops.cast(self.progress, "float32") * self.rate
        shape = ops.shape(inputs)
        noise_shape = (shape[0],) + (1,) * (len(inputs.shape) - 1)
        draw = keras.random.uniform(noise_shape, seed=self.seed_generator, dtype="float32")
        scale = ops.floor(keep + draw) / keep  # 1 / keep for the kept samples, 0 for the dropped
        return inputs * ops.cast(scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


def scheduled_drop_path_layers(model):
    """The :class:`ScheduledDropPath` layers of ``model`` (nested models entered), in order."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, ScheduledDropPath)]


def same_padding(side, kernel_size, stride):
    """TensorFlow's "SAME" zero padding ``(before, after)`` of one axis of known ``side``."""
    out = -(-side // stride)
    total = max(0, (out - 1) * stride + kernel_size - side)
    return total // 2, total - total // 2


@keras.saving.register_keras_serializable(package="keras_cnns")
class SamePadding2D(keras.layers.Layer):
    """Zero padding of a channels-last map as TensorFlow's "SAME" rule pads it for a window of
    ``kernel_size`` and ``strides``, computed from the map's sides when it runs (so it works
    for inputs of unknown size, odd sides included). A "valid" window op after it gives
    ``ceil(n / strides)`` outputs per axis.

    For a known side it equals ``ZeroPadding2D(same_padding(side, kernel_size, strides))`` and
    keras.applications' ``imagenet_utils.correct_pad``.

    Args:
        kernel_size: the window's side (positive integer).
        strides: the window's stride (positive integer).
        **kwargs: standard Layer arguments.
    """

    def __init__(self, kernel_size, strides, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.strides = check_positive_int("strides", strides)

    def _pads(self, side):
        k, s = self.kernel_size, self.strides
        out = (side + s - 1) // s
        total = ops.maximum((out - 1) * s + k - side, 0)
        return total // 2, total - total // 2

    def call(self, inputs):
        static = inputs.shape[1:3]
        if all(v is not None for v in static):
            pads = [same_padding(int(v), self.kernel_size, self.strides) for v in static]
        else:
            shape = ops.shape(inputs)
            pads = [self._pads(shape[1]), self._pads(shape[2])]
        return ops.pad(inputs, [[0, 0], list(pads[0]), list(pads[1]), [0, 0]])

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        sides = [None if v is None else v + sum(same_padding(v, self.kernel_size, self.strides))
                 for v in (h, w)]
        return (n, sides[0], sides[1], c)

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size, "strides": self.strides})
        return config
