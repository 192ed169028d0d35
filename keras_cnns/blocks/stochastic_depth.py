"""The residual sum every block ends with: a plain ``Add``, or stochastic depth (Huang et al.,
"Deep Networks with Stochastic Depth", ECCV 2016, arXiv:1603.09382) that skips a dropped branch.

The layers themselves, :class:`~keras_cnns.layers.StochasticDepth` and
:class:`~keras_cnns.layers.PadChannels`, live in :mod:`keras_cnns.layers.stochastic_depth` (their
registered Keras names stay ``keras_cnns>StochasticDepth`` / ``keras_cnns>PadChannels``); they and
:func:`~keras_cnns._checks.check_survival_prob` are re-exported here for existing imports.
"""

from __future__ import annotations

import keras

from keras_cnns._checks import check_survival_prob
from keras_cnns.layers.stochastic_depth import PadChannels, StochasticDepth

__all__ = ["PadChannels", "StochasticDepth", "add_residual", "check_survival_prob"]


def add_residual(x, shortcut, branch_fn, *, name_of, add_suffix="add", survival_prob=None,
                 seed=None):
    """``shortcut + branch_fn(x)``: an ``Add`` named ``name_of(add_suffix)``, or with a survival
    probability below 1 a :class:`StochasticDepth` of that name holding ``branch_fn``'s layers as
    a functional model ``name_of("branch")`` (input ``name_of("branch_input")``).

    Every block with a residual sum (:mod:`keras_cnns.blocks.residual`,
    :mod:`keras_cnns.blocks.inverted_residual`) ends with it, so stochastic depth behaves alike
    in all of them. ``name_of(suffix)`` gives a layer name (``None`` for Keras' automatic names).
    """
    if survival_prob is None or survival_prob == 1.0:
        return keras.layers.Add(name=name_of(add_suffix))([shortcut, branch_fn(x)])
    inner = keras.Input(shape=tuple(x.shape[1:]), dtype=x.dtype, name=name_of("branch_input"))
    branch = keras.Model(inner, branch_fn(inner), name=name_of("branch"))
    return StochasticDepth(branch, survival_prob, seed=seed, name=name_of(add_suffix))([x, shortcut])
