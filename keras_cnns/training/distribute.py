"""``tf.distribute`` strategies by name: ``mirrored``, ``multiworker``, ``tpu``.

``multiworker`` is ``tf.distribute.MultiWorkerMirroredStrategy`` configured from ``TF_CONFIG``
(one process per worker; see the README's cluster section). It must be created before the
process runs any other TensorFlow operation, so ``keras-cnns train --strategy multiworker``
creates it first thing.
"""

from __future__ import annotations

import json
import os
from typing import Optional

__all__ = ["STRATEGIES", "is_chief", "make_strategy", "num_replicas",
           "patch_keras_for_multiworker"]

STRATEGIES = ("none", "mirrored", "multiworker", "tpu")


def make_strategy(name: Optional[str]):
    """The strategy called ``name`` (``None`` / ``"none"``: ``None``, the default strategy).

    Raises:
        ValueError: an unknown name, ``multiworker`` without a valid ``TF_CONFIG``.
        RuntimeError: ``tpu`` where no TPU can be found.
    """
    import tensorflow as tf

    if name is None or name == "none":
        return None
    if not isinstance(name, str) or name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {list(STRATEGIES)} or a "
                         f"tf.distribute.Strategy. Received: strategy={name!r}")
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        raw = os.environ.get("TF_CONFIG")
        try:
            config = json.loads(raw) if raw else None
            ok = bool(config["cluster"]["worker"]) and "index" in config["task"]
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise ValueError(
                "`strategy` 'multiworker' needs the TF_CONFIG environment variable, e.g. "
                "TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
                "\"task\": {\"type\": \"worker\", \"index\": 0}}' (one process per worker, "
                f"index 0 is the chief). Received: TF_CONFIG={raw!r}")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        patch_keras_for_multiworker()
        return strategy
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        raise RuntimeError(f"`strategy` 'tpu': no TPU found ({type(exc).__name__}: {exc}). "
                           "Run on a TPU VM, or use 'mirrored' / 'none'.") from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy) -> bool:
    """Whether this process writes checkpoints, logs and exports (worker 0 of a cluster)."""
    if strategy is None:
        return True
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type in ("chief", None) or (
        resolver.task_type == "worker" and int(resolver.task_id or 0) == 0)


def num_replicas(strategy) -> int:
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


_PATCHED = False


def patch_keras_for_multiworker() -> None:
    """Work around two Keras 3.15 bugs that stop ``fit``/``evaluate`` under
    ``MultiWorkerMirroredStrategy`` on the TF backend (applied once, idempotent; changes nothing
    for other strategies):

    1. ``TensorFlowTrainer._maybe_symbolic_build`` reduces the first distributed input batch
       with ``strategy.reduce("MEAN", batch)``, which MultiWorkerMirroredStrategy rejects
       (``Attempt to convert a value (PerReplica...)``), and takes that batch with ``next()`` on
       the epoch iterator that training then continues, so with ``steps_per_epoch`` the first
       batch of the run is never trained on (any strategy). Only the batch's shapes are needed:
       the first local replica's batch of a separate iterator is used instead.
    2. ``reduce_per_replica`` reduces the scalar logs (loss, metrics) with
       ``strategy.reduce("MEAN", v, axis=0)``: ``Invalid reduction dimension 0 for input with 0
       dimensions``. Scalars are reduced with ``axis=None``.

    Checked by ``tests/training/test_resume_and_workers.py``: two workers end with the weights of one
    worker on the same global batch.
    """
    global _PATCHED
    if _PATCHED:
        return
    import tensorflow as tf
    import keras.src.backend.tensorflow.trainer as kt

    def is_multi_worker(strategy):
        return strategy is not None and kt._collective_all_reduce_multi_worker(strategy)

    original_build = kt.TensorFlowTrainer._maybe_symbolic_build

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is None or self._distribute_strategy is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        strategy = self.distribute_strategy
        # a batch from a separate iterator: Keras' own next() on the epoch iterator's shared one
        # silently skips the first batch of the run whenever fit() has steps_per_epoch
        batch = next(iter(iterator._get_iterator()))
        data_batch = tf.nest.map_structure(
            lambda v: (strategy.experimental_local_results(v)[0]
                       if isinstance(v, tf.distribute.DistributedValues) else v), batch)
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    original_reduce = kt.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            def one(v):
                local = (strategy.experimental_local_results(v)[0]
                         if isinstance(v, tf.distribute.DistributedValues) else v)
                return strategy.reduce("MEAN", v, axis=0 if local.shape.rank else None)

            return tf.nest.map_structure(one, values)
        return original_reduce(values, strategy, reduction)

    kt.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    kt.reduce_per_replica = reduce_per_replica
    _PATCHED = True
