"""The stochastic-depth layer that skips a dropped residual branch, and shortcut A's zero channels.

(:func:`keras_cnns.blocks.stochastic_depth.add_residual` ends residual blocks with them;
:mod:`keras_cnns.profiler` counts a :class:`StochasticDepth`'s multiply-adds as its branch's.)

Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016 (arXiv:1603.09382), eq. (2)-(5):
in training a residual block ``H_l = ReLU(b_l f_l(H_{l-1}) + id(H_{l-1}))`` draws one Bernoulli
``b_l`` with survival probability ``p_l`` *per mini-batch* (the whole block, every sample); when
``b_l = 0`` the block is the identity and ``f_l`` is not computed, which is where the paper's
training speed-up comes from. At test time every block is kept and its branch is scaled by
``p_l``: ``H_l = ReLU(p_l f_l(H_{l-1}) + id(H_{l-1}))``.

:class:`StochasticDepth` implements exactly that: it holds the branch as a model of its own and
computes ``shortcut + branch(x)`` or just ``shortcut`` under ``keras.ops.cond`` (``tf.cond`` in
TensorFlow), so in a dropped step none of the branch's operations run, in eager mode and in a
``tf.function`` / XLA graph alike (BatchNormalization statistics inside a dropped branch are not
updated either). It differs from :class:`keras_cnns.layers.DropPath` (timm's per-sample drop path:
every sample drawn separately, survivors scaled by ``1 / p`` in training, identity at test time,
the branch always computed).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_cnns._checks import check_survival_prob, fail, is_int

__all__ = ["PadChannels", "StochasticDepth", "model_layers"]


@keras.saving.register_keras_serializable(package="keras_cnns")
class StochasticDepth(keras.layers.Layer):
    """``shortcut + branch(x)``, with the branch dropped (not computed) per mini-batch in training.

    Called on ``[x, shortcut]``. In training one uniform draw per call decides: with probability
    ``survival_prob`` it returns ``shortcut + branch(x)``, otherwise ``shortcut`` without running
    ``branch`` (``keras.ops.cond``). At inference it returns ``shortcut + survival_prob *
    branch(x)`` (Huang et al. 2016, eq. (5)).

    Args:
        branch: the residual branch, a Keras layer or model taking ``x`` (in keras_cnns a
            functional model built by the block, holding the block's branch layers).
        survival_prob: ``p_l`` in ``(0, 1]``.
        seed: optional int seed of the draws.
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: ``branch`` not a Keras layer, ``survival_prob`` outside ``(0, 1]`` or a
            non-integer ``seed``.
    """

    def __init__(self, branch, survival_prob, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(branch, dict):
            branch = keras.saving.deserialize_keras_object(branch)
        if not isinstance(branch, keras.layers.Layer):
            fail("branch", "must be a Keras layer or model", branch)
        if seed is not None and not is_int(seed):
            fail("seed", "must be None or an integer", seed)
        self.branch = branch
        self.survival_prob = check_survival_prob("survival_prob", survival_prob, allow_none=False)
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build(self, input_shape):
        if not self.branch.built:
            self.branch.build(input_shape[0])
        self.built = True

    def call(self, inputs, training=None):
        x, shortcut = inputs
        if training:
            keep = keras.random.uniform((), seed=self.seed_generator) < self.survival_prob
            return ops.cond(keep, lambda: shortcut + self.branch(x, training=True), lambda: shortcut)
        return shortcut + self.survival_prob * self.branch(x, training=False)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update({
            "branch": keras.saving.serialize_keras_object(self.branch),
            "survival_prob": self.survival_prob,
            "seed": self.seed,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["branch"] = keras.saving.deserialize_keras_object(config["branch"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_cnns")
class PadChannels(keras.layers.Layer):
    """Append ``channels`` zero channels (the parameter-free shortcut A of He et al. 2015).

    Args:
        channels: how many zero channels to append after the input's (channels last).
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: ``channels`` not a positive integer.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        if not is_int(channels) or channels < 1:
            fail("channels", "must be a positive integer", channels)
        self.channels = int(channels)

    def call(self, inputs):
        pad = [[0, 0]] * (len(inputs.shape) - 1) + [[0, self.channels]]
        return ops.pad(inputs, pad)

    def compute_output_shape(self, input_shape):
        c = input_shape[-1]
        return tuple(input_shape[:-1]) + (None if c is None else c + self.channels,)

    def get_config(self):
        config = super().get_config()
        config["channels"] = self.channels
        return config


def model_layers(model):
    """Every layer of ``model``, entering nested models and stochastic-depth branches (the
    layers whose names a weight bridge's name map reads)."""
    for layer in model.layers:
        if isinstance(layer, StochasticDepth):
            yield from model_layers(layer.branch)
        elif isinstance(layer, keras.Model):
            yield from model_layers(layer)
        else:
            yield layer
