"""Learning-rate schedules: linear warm-up, then constant, step, poly, cosine or exponential.

One serialisable :class:`WarmupSchedule` (``keras.optimizers.schedules.LearningRateSchedule``)
covers every recipe; :func:`make_schedule` builds it from a :class:`~keras_cnns.training.Recipe`
and the steps per epoch. :class:`WarmupPolyDecay` (warm-up + poly) is kept for SavedModels and
code of earlier versions.
"""

from __future__ import annotations

from typing import Sequence

import keras

__all__ = ["WarmupPolyDecay", "WarmupSchedule", "make_schedule"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``peak * (t + 1) / warmup_steps`` for ``t < warmup_steps``, then with ``s = t -
    warmup_steps`` and ``S = total_steps - warmup_steps``:

    * ``constant``: ``peak``;
    * ``step``: ``peak * gamma ** (number of boundaries <= t)`` (``boundaries`` in steps);
    * ``poly``: ``peak * (1 - s / S) ** power`` (Caffe's "poly"; 0 at the end);
    * ``cosine``: ``peak * 0.5 * (1 + cos(pi * s / S))`` (Loshchilov & Hutter 2017, no
      restarts);
    * ``exponential``: ``peak * decay_rate ** (s / decay_steps)``, staircase (TF-slim's
      ``exponential_decay(staircase=True)``).
    """

    KINDS = ("constant", "step", "poly", "cosine", "exponential")

    def __init__(self, kind, peak_learning_rate, total_steps, warmup_steps=0,
                 boundaries: Sequence[int] = (), gamma=0.1, power=1.0, decay_steps=1,
                 decay_rate=1.0):
        if kind not in self.KINDS:
            raise ValueError(f"`kind` must be one of {list(self.KINDS)}. Received: kind={kind!r}")
        self.kind = kind
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = [int(b) for b in boundaries]
        self.gamma = float(gamma)
        self.power = float(power)
        self.decay_steps = max(int(decay_steps), 1)
        self.decay_rate = float(decay_rate)

    def __call__(self, step):
        ops = keras.ops
        t = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        warm = float(self.warmup_steps)
        span = float(max(self.total_steps - self.warmup_steps, 1))
        s = ops.maximum(t - warm, 0.0)
        frac = ops.clip(s / span, 0.0, 1.0)
        if self.kind == "constant":
            lr = ops.ones_like(t) * peak
        elif self.kind == "step":
            count = ops.zeros_like(t)
            for b in self.boundaries:
                count = count + ops.cast(t >= float(b), "float32")
            lr = peak * ops.power(self.gamma, count)
        elif self.kind == "poly":
            lr = peak * ops.power(1.0 - frac, self.power)
        elif self.kind == "cosine":
            lr = peak * 0.5 * (1.0 + ops.cos(3.141592653589793 * frac))
        else:
            lr = peak * ops.power(self.decay_rate, ops.floor(s / float(self.decay_steps)))
        if self.warmup_steps <= 0:
            return lr
        return ops.where(t < warm, peak * (t + 1.0) / warm, lr)

    def get_config(self):
        return dict(kind=self.kind, peak_learning_rate=self.peak_learning_rate,
                    total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                    boundaries=list(self.boundaries), gamma=self.gamma, power=self.power,
                    decay_steps=self.decay_steps, decay_rate=self.decay_rate)


def make_schedule(recipe, steps_per_epoch: int) -> WarmupSchedule:
    """The recipe's schedule in optimizer steps (``steps_per_epoch`` steps per epoch)."""
    steps_per_epoch = max(int(steps_per_epoch), 1)
    total = steps_per_epoch * recipe.epochs
    warmup = min(int(round(recipe.warmup_epochs * steps_per_epoch)), total // 2)
    return WarmupSchedule(
        recipe.schedule, recipe.learning_rate, total_steps=total, warmup_steps=warmup,
        boundaries=[int(round(m * total)) for m in recipe.milestones], gamma=recipe.gamma,
        power=recipe.poly_power,
        decay_steps=int(round(recipe.decay_epochs * steps_per_epoch)),
        decay_rate=recipe.decay_rate)


@keras.saving.register_keras_serializable(package="keras_cnns")
class WarmupPolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak_learning_rate``, then Caffe's "poly" decay to
    ``end_learning_rate`` at ``total_steps`` (the schedule of keras_cnns <= 0.1's recipe)."""

    def __init__(self, peak_learning_rate, total_steps, warmup_steps=0, power=1.0,
                 end_learning_rate=0.0):
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.power = float(power)
        self.end_learning_rate = float(end_learning_rate)

    def __call__(self, step):
        ops = keras.ops
        step = ops.cast(step, "float32")
        peak, end = self.peak_learning_rate, self.end_learning_rate
        span = float(max(self.total_steps - self.warmup_steps, 1))
        frac = ops.clip((step - float(self.warmup_steps)) / span, 0.0, 1.0)
        decay_lr = end + (peak - end) * ops.power(1.0 - frac, self.power)
        if self.warmup_steps <= 0:
            return decay_lr
        warmup_lr = peak * (step + 1.0) / float(self.warmup_steps)
        return ops.where(step < float(self.warmup_steps), warmup_lr, decay_lr)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "power": self.power,
            "end_learning_rate": self.end_learning_rate,
        }
