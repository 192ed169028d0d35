"""FractalNet's join with local and global drop-path, and the network-level state the joins share.

Larsson, Maire, Shakhnarovich, "FractalNet: Ultra-Deep Neural Networks without Residuals", ICLR
2017 (arXiv:1605.07648), Sec. 2-3. A *join* merges the columns of a fractal that end at the same
depth by their element-wise mean. *Drop-path* regularises it in training:

* **local**: a join drops each of its inputs with a fixed probability ``p`` (the paper's 15%),
  keeping at least one (the official Caffe layer, gustavla/fractalnet
  ``caffe/src/caffe/layers/fractal_join_layer.cpp``: one draw per input *per mini-batch*; when
  every input is dropped, one chosen uniformly is restored; the output is the mean of the kept
  inputs);
* **global**: one column is chosen for the whole network and every join keeps only that column's
  input, so the mini-batch trains a single column, a plain chain of convolutions;

mixed per mini-batch: a batch is global with probability ``global_drop`` (the paper's 50%), else
local. At inference every input is kept (the plain mean).

The choice between local and global, and the global column, must be one draw for the whole
network per training step. :class:`FractalPathState` is that draw: one small layer of the model,
called once on the image input, whose output (a ``(batch, columns + 1)`` tensor: the mask of the
allowed columns, then a 0/1 flag "local drop-path applies") every :class:`FractalJoin` of the
network takes as its last input. It is part of the functional graph, so it is sampled once per
call in eager mode, in ``tf.function`` and in ``model.fit`` alike, and it serialises with the
model (``get_config``, ``.keras``). It also holds two non-trainable integer weights per column
group:

* ``forced``: ``-1``, or a column every join keeps (global drop-path forced to that column, in
  training and inference: :meth:`FractalPathState.force_column`; what makes
  ``keras_cnns.extract_column`` testable);
* ``active``: the number of columns in the network (columns ``0 .. active - 1``; the others are
  left out of every join, in training and inference): the freeze-drop-path schedule of Fractal of
  FractalNet (Smith & Topin 2016, ``keras_cnns.training.fractal_schedule``) adds the columns
  one at a time.

A network can have several *groups* of columns (Fractal of FractalNet: the columns of each
fractal block, and the paths of the outer fractal made of blocks); each join names its group and
the column of each of its inputs. In a global batch every group picks its own column.

Columns are numbered ``0`` (the shallowest: one unit per block) to ``C - 1`` (the deepest:
``2^(C-1)`` units), as in the official generator (``generation/fractalnet.py``).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_cnns._checks import check_probability, fail, is_int

__all__ = ["FractalJoin", "FractalPathState", "drop_path_disabled", "fractal_joins",
           "fractal_state"]


def _check_seed(seed):
    if seed is not None and not is_int(seed):
        fail("seed", "must be None or an integer", seed)
    return None if seed is None else int(seed)


def _check_groups(columns):
    if is_int(columns):
        columns = (columns,)
    if isinstance(columns, (str, bytes)) or not hasattr(columns, "__len__") or not columns \
            or not all(is_int(c) and c >= 1 for c in columns):
        fail("columns", "must be a positive integer or a sequence of them (one per column group)",
             columns)
    return tuple(int(c) for c in columns)


@keras.saving.register_keras_serializable(package="keras_cnns")
class FractalPathState(keras.layers.Layer):
    """The per-step drop-path draw every :class:`FractalJoin` of a network shares.

    Called once on the image input; returns a float32 ``(batch, sum(columns) + 1)`` tensor whose
    rows are equal: for each group of columns its mask (1 = the column's inputs may be kept),
    then the local-drop flag.

    * Training: with probability ``global_drop`` (or whenever a column is forced) a *global*
      batch: each group keeps one column (the forced one, else uniform among its active
      columns), flag 0. Otherwise a *local* batch: the active columns, flag 1.
    * Inference: the active columns (or the forced one), flag 0: the joins take the plain mean.

    Args:
        columns: the number of columns, or one number per column group.
        global_drop: the probability that a training batch uses global drop-path, in ``[0, 1)``
            (the paper: 0.5).
        seed: optional int seed of the draws.
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: a bad ``columns``, ``global_drop`` or ``seed``.
    """

    def __init__(self, columns, global_drop=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.columns = _check_groups(columns)
        self.global_drop = check_probability("global_drop", global_drop)
        self.seed = _check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        n = len(self.columns)
        self.forced = self.add_weight(name="forced", shape=(n,), dtype="int32",
                                      initializer=keras.initializers.Constant(-1),
                                      trainable=False)
        self.active = self.add_weight(name="active", shape=(n,), dtype="int32",
                                      initializer=keras.initializers.Constant(list(self.columns)),
                                      trainable=False)
        self.enabled = self.add_weight(name="enabled", shape=(), dtype="int32",
                                       initializer="ones", trainable=False)
        self.built = True

    # --- control (eager; the graph reads the weights when it runs) -----------------------------

    def _group(self, group):
        if not is_int(group) or not 0 <= group < len(self.columns):
            fail("group", f"must be a column group index in [0, {len(self.columns)})", group)
        return int(group)

    def force_column(self, column, group=0):
        """Every join of ``group`` keeps only ``column`` (``None``: stop forcing), in training
        and inference."""
        group = self._group(group)
        if column is None:
            column = -1
        elif not is_int(column) or not 0 <= column < self.columns[group]:
            fail("column", f"must be None or a column in [0, {self.columns[group]})", column)
        values = ops.convert_to_numpy(self.forced).copy()
        values[group] = int(column)
        self.forced.assign(values)

    def set_active(self, count, group=0):
        """Keep only columns ``0 .. count - 1`` of ``group`` in the network."""
        group = self._group(group)
        if not is_int(count) or not 1 <= count <= self.columns[group]:
            fail("count", f"must be an integer in [1, {self.columns[group]}]", count)
        values = ops.convert_to_numpy(self.active).copy()
        values[group] = int(count)
        self.active.assign(values)

    def set_drop_path(self, enabled):
        """Turn drop-path on (the default) or off (training-mode calls then keep the active
        columns, or the forced one, with no local drop: the inference network)."""
        if not isinstance(enabled, bool):
            fail("enabled", "must be True or False", enabled)
        self.enabled.assign(int(enabled))

    def offset(self, group):
        """Where ``group``'s mask starts in the state vector."""
        return sum(self.columns[:group])

    # --- the draw --------------------------------------------------------------------------------

    def call(self, inputs, training=None):
        forced = ops.convert_to_tensor(self.forced)
        active = ops.convert_to_tensor(self.active)
        any_forced = ops.any(forced >= 0)
        on = ops.convert_to_tensor(self.enabled) > 0
        if training:
            draws = keras.random.uniform((len(self.columns) + 1,), seed=self.seed_generator)
            is_global = ops.logical_or(ops.logical_and(on, draws[0] < self.global_drop),
                                       any_forced)
        else:
            draws = None
            is_global = any_forced
        masks = []
        for g, n in enumerate(self.columns):
            index = ops.arange(n, dtype="int32")
            allowed = ops.cast(index < active[g], "float32")
            if training:
                pick = ops.cast(ops.floor(draws[g + 1] * ops.cast(active[g], "float32")), "int32")
                pick = ops.minimum(pick, active[g] - 1)
            else:
                pick = ops.convert_to_tensor(-1, dtype="int32")
            chosen = ops.where(forced[g] >= 0, forced[g], ops.where(on, pick, -1))
            one = ops.cast(ops.equal(index, chosen), "float32")
            # in inference without forcing, a "global" batch never happens: `one` is unused
            masks.append(ops.where(ops.logical_and(is_global, chosen >= 0), one, allowed))
        flag = ops.cast(ops.logical_and(on, ops.logical_not(is_global)), "float32") \
            if training else ops.zeros((), "float32")
        row = ops.concatenate(masks + [ops.reshape(flag, (1,))], axis=0)
        batch = ops.shape(inputs)[0]
        return ops.broadcast_to(ops.expand_dims(row, 0), (batch, sum(self.columns) + 1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], sum(self.columns) + 1)

    def get_config(self):
        config = super().get_config()
        config.update(columns=list(self.columns), global_drop=self.global_drop, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="keras_cnns")
class FractalJoin(keras.layers.Layer):
    """The element-wise mean of a fractal's columns, with local and global drop-path.

    Called on ``[x_1, ..., x_n, state]`` (``state``: the output of the network's
    :class:`FractalPathState`). Input ``i`` belongs to column ``input_columns[i]`` of column
    group ``group``. The join keeps the inputs whose column the state allows; in a local batch
    it also drops each of them with probability ``drop_rate`` (one draw per input per batch),
    restoring one allowed input chosen uniformly if all were dropped; it returns the mean of the
    kept inputs. A join none of whose columns is allowed (it lies on no kept path) returns the
    plain mean: its output reaches no kept column.

    Args:
        input_columns: the column of each input (distinct, ``n >= 2``).
        drop_rate: local drop-path probability of each input, in ``[0, 1)`` (the paper: 0.15).
        group: the column group of ``input_columns`` (index into the state's ``columns``).
        group_offset: where the group's mask starts in the state vector.
        seed: optional int seed of the draws.
        **kwargs: standard Layer arguments.

    Raises:
        ValueError: bad arguments (the message names them).
    """

    def __init__(self, input_columns, drop_rate=0.15, group=0, group_offset=0, seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        cols = tuple(input_columns) if hasattr(input_columns, "__len__") else ()
        if len(cols) < 2 or not all(is_int(c) and c >= 0 for c in cols) \
                or len(set(cols)) != len(cols):
            fail("input_columns", "must be at least two distinct column indices", input_columns)
        self.input_columns = tuple(int(c) for c in cols)
        self.drop_rate = check_probability("drop_rate", drop_rate)
        if not is_int(group) or group < 0:
            fail("group", "must be a non-negative integer", group)
        if not is_int(group_offset) or group_offset < 0:
            fail("group_offset", "must be a non-negative integer", group_offset)
        self.group = int(group)
        self.group_offset = int(group_offset)
        self.seed = _check_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def allowed(self, state, training=None):
        """The ``(n,)`` float32 0/1 vector of the inputs this call keeps (never all zero)."""
        n = len(self.input_columns)
        row = state[0]
        allowed = ops.stack([row[self.group_offset + c] for c in self.input_columns])
        if training and self.drop_rate > 0:
            draws = keras.random.uniform((2 * n,), seed=self.seed_generator)
            local = row[-1] > 0.5
            kept = allowed * ops.cast(draws[:n] >= self.drop_rate, "float32")
            # every allowed input dropped: restore one of them, chosen uniformly
            scores = ops.where(allowed > 0, draws[n:], -ops.ones_like(allowed))
            restored = ops.cast(ops.equal(ops.arange(n), ops.argmax(scores)), "float32")
            kept = ops.where(ops.sum(kept) > 0, kept, restored)
            allowed = ops.where(local, kept, allowed)
        return ops.where(ops.sum(allowed) > 0, allowed, ops.ones_like(allowed))

    def call(self, inputs, training=None):
        *xs, state = inputs
        if len(xs) != len(self.input_columns):
            raise ValueError(f"{self.name}: {len(xs)} inputs for input_columns "
                             f"{self.input_columns}")
        keep = ops.cast(self.allowed(state, training), xs[0].dtype)
        total = xs[0] * keep[0]
        for i in range(1, len(xs)):
            total = total + xs[i] * keep[i]
        return total / ops.sum(keep)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(input_columns=list(self.input_columns), drop_rate=self.drop_rate,
                      group=self.group, group_offset=self.group_offset, seed=self.seed)
        return config


class drop_path_disabled:
    """Context manager: drop-path off in every fractal network among ``models`` (models without
    a :class:`FractalPathState` are left alone) while inside, e.g. around a "precise BN"
    recalibration (``keras_cnns.layers.precise_bn.recalibrate_batch_norm``), whose
    training-mode passes must compute the inference network: with drop-path on they would
    average the statistics of randomly dropped columns, which the full network never sees."""

    def __init__(self, *models):
        self.states = [s for s in (fractal_state(m) for m in models) if s is not None]

    def __enter__(self):
        self.saved = [int(ops.convert_to_numpy(s.enabled)) for s in self.states]
        for s in self.states:
            s.set_drop_path(False)
        return self

    def __exit__(self, *exc):
        for s, value in zip(self.states, self.saved):
            s.set_drop_path(bool(value))
        return False


def fractal_state(model):
    """The :class:`FractalPathState` of a model (``None`` if it has none)."""
    for layer in model.layers:
        if isinstance(layer, FractalPathState):
            return layer
    return None


def fractal_joins(model):
    """The :class:`FractalJoin` layers of a model, in graph order."""
    return [layer for layer in model.layers if isinstance(layer, FractalJoin)]
