"""``train(model_or_name, data, recipe, strategy=None, callbacks=(), ...)``: the training loop.

One ``model.fit`` call per epoch on that epoch's training pipeline, built from
``(seed, epoch)`` alone (shuffle, crops, flips, mixup), so a resumed run sees exactly the batches
an uninterrupted one would. After every epoch: precise BatchNorm statistics (5 batches) for the
held-out evaluation, top-1 / top-5 accuracy, a checkpoint (model + optimizer + epoch + history +
seed, written atomically; :mod:`keras_cnns.training.checkpoint`) and the best model so far. At the
end: exact BatchNorm statistics over the training split, the final evaluation, a summary and a
SavedModel export of the best epoch.

Nothing here knows a family: the model's default and paper recipes come from the registry
(``model_info(name).recipe(...)``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import numbers
import os
import time
from typing import Any, Dict, Optional, Sequence, Union

import keras

from keras_cnns._checks import fail, is_int
from keras_cnns.training.checkpoint import CheckpointError, CheckpointManager
from keras_cnns.training.distribute import is_chief, make_strategy, num_replicas
from keras_cnns.training.drop_path_schedule import drop_path_schedule_for
from keras_cnns.training.precise_bn import (PreciseBatchNorm, batch_norm_layers,
                                            recalibrate_batch_norm)
from keras_cnns.training.recipe import Recipe, resolve_recipe
from keras_cnns.training.schedules import make_schedule

__all__ = ["TrainResult", "train", "DEFAULT_MODEL", "DEFAULT_DATASET"]

DEFAULT_MODEL = "squeezenet1_1_simple_bypass"
DEFAULT_DATASET = "digits"
_RESERVED = ("input_shape", "classes", "input_tensor", "include_top")


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained ``keras.Model`` (the best epoch's weights when ``restore_best``).
        history: per-epoch ``loss``, ``accuracy``, ``top5_accuracy``, ``val_*``, ``lr``.
        val_accuracy: top-1 accuracy on the held-out split at the end.
        val_top5_accuracy: top-5 accuracy there (top-k with k = min(5, classes)).
        wall_time_s: seconds in :func:`train` (data, build, fit, evaluation, export).
        images_per_second: training images per second of ``fit`` time (this process's share
            times the replicas).
        best_epoch: the epoch (1-based) whose weights were exported.
        export_path: the published SavedModel version directory, or ``None``.
        checkpoint_dir: where the checkpoints are, or ``None``.
        run_name: the model's name.
        recipe: the resolved :class:`Recipe`.
        resumed_from: the epoch the run resumed after (0: started fresh).
    """

    model: Any
    history: Dict[str, list]
    val_accuracy: float
    val_top5_accuracy: float
    wall_time_s: float
    images_per_second: float
    best_epoch: int
    export_path: Optional[str]
    checkpoint_dir: Optional[str]
    run_name: str
    recipe: Recipe
    resumed_from: int = 0
    info: Dict[str, Any] = dataclasses.field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# The loss
# ----------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="keras_cnns")
class ClassificationLoss(keras.losses.Loss):
    """Cross-entropy on probabilities for integer labels ``[B]`` or (mixup) soft labels
    ``[B, K]``, with optional label smoothing (Szegedy et al. 2016)."""

    def __init__(self, label_smoothing=0.0, name="classification_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        ops = keras.ops
        y_pred = ops.cast(y_pred, "float32")
        k = y_pred.shape[-1]
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == k:
            target = ops.cast(y_true, "float32")
        else:
            target = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), k)
        return keras.losses.categorical_crossentropy(target, y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------

def _epoch_seed(seed: int, epoch: int) -> int:
    """The data seed of ``epoch`` (0-based): a function of ``(seed, epoch)`` only."""
    return (int(seed) * 1_000_003 + 7919 * (int(epoch) + 1)) % (2 ** 31 - 1)


def _make_optimizer(recipe: Recipe, schedule):
    kw = {} if recipe.epsilon is None else {"epsilon": recipe.epsilon}
    wd = recipe.weight_decay or None
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=schedule, **kw)
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=recipe.weight_decay,
                                      **kw)
    if recipe.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=schedule, rho=recipe.rmsprop_rho,
                                        momentum=recipe.momentum, weight_decay=wd, **kw)
    return keras.optimizers.SGD(learning_rate=schedule, momentum=recipe.momentum,
                                nesterov=recipe.nesterov, weight_decay=wd)


def _jit(recipe: Recipe):
    if recipe.jit_compile == "on":
        return True
    if recipe.jit_compile == "off":
        return False
    import tensorflow as tf

    # CPU: XLA's depthwise convolution is far slower than TF's kernels. Elsewhere Keras' "auto"
    # (which also stays off for models with the custom op: its layers declare supports_jit=False)
    return "auto" if tf.config.list_physical_devices("GPU") else False


class _EpochProgbar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, showing ``Epoch e/E`` of the whole run across per-epoch ``fit``."""

    def __init__(self, total_epochs):
        super().__init__()
        self._total = int(total_epochs)

    def set_params(self, params):
        super().set_params(params)
        self.epochs = self._total


class _EpochLines(keras.callbacks.Callback):
    """One line per epoch, for a run without a terminal (a CI log, ``nohup``), where a progress
    bar cannot redraw: ``Epoch e/E - 12.3s - loss: ... - accuracy: ... - val_accuracy: ...``
    (Keras' ``verbose=2`` format)."""

    def __init__(self, total_epochs, rename=None, stream=None):
        super().__init__()
        self._total = int(total_epochs)
        self._rename = rename
        self._stream = stream

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        import sys

        logs = self._rename(logs or {}) if self._rename else (logs or {})
        items = " - ".join(f"{k}: {v:.4f}" for k, v in sorted(logs.items())
                           if isinstance(v, numbers.Real))
        print(f"Epoch {epoch + 1}/{self._total} - {time.perf_counter() - self._t:.1f}s"
              + (f" - {items}" if items else ""), file=self._stream or sys.stdout, flush=True)


def _progress_callback(total_epochs, rename=None):
    """A progress bar on a terminal, else one line per epoch (its logs passed through
    ``rename``)."""
    import sys

    isatty = getattr(sys.stdout, "isatty", None)
    return (_EpochProgbar(total_epochs) if isatty and isatty()
            else _EpochLines(total_epochs, rename))


class _ImagesPerSecond(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self.batches = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds += time.perf_counter() - self._t
        self.batches += 1


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    return str(obj)


# ----------------------------------------------------------------------------------------------
# The data a run reads
# ----------------------------------------------------------------------------------------------

class _Source:
    """The training split per epoch and the held-out split, from a dataset name or splits."""

    def __init__(self, data, *, image_size, channels, batch_size, seed, data_dir, recipe,
                 steps_per_epoch=None, min_size=None):
        from keras_cnns import data as data_lib

        self.batch_size = batch_size
        self.limit = steps_per_epoch
        self._recipe = recipe
        self._seed = seed
        if isinstance(data, data_lib.DatasetSplits):
            self._splits = data
            self.name = data.name
            self.num_classes = int(data.num_classes)
            self.input_shape = tuple(data.input_shape)
            self.train_size = data.train_size
            self.val_size = data.val_size
            self.metadata = data.metadata()
            self.deterministic = False
            return
        if not isinstance(data, str) or not data.strip():
            fail("data", "must be a dataset name (see keras_cnns.data.DATASETS) or a "
                 "keras_cnns.data.DatasetSplits", data)
        self._splits = None
        self.name = data.strip()
        if not self.name.lower().startswith("folder:"):
            self.name = self.name.lower()
            if self.name not in data_lib.DATASETS:
                fail("data", f"must be one of {data_lib.list_datasets()} or a "
                     "keras_cnns.data.DatasetSplits", data)
        self._kw = dict(image_size=image_size, channels=channels, data_dir=data_dir)
        meta = data_lib.info(self.name, data_dir=data_dir, image_size=image_size,
                             channels=channels, seed=seed)
        if image_size is None and min_size and min(meta.input_shape[:2]) < min_size:
            image_size = int(min_size)  # the dataset's default side is below the model's minimum
            self._kw["image_size"] = image_size
            meta = data_lib.info(self.name, data_dir=data_dir, image_size=image_size,
                                 channels=channels, seed=seed)
        self.num_classes = int(meta.num_classes)
        self.input_shape = tuple(meta.input_shape)
        self.train_size = meta.train_size
        self.val_size = meta.test_size
        self.metadata = meta.metadata()
        self.deterministic = True

    def train(self, epoch: int):
        if self._splits is not None:
            ds = self._splits.train
        else:
            from keras_cnns import data as data_lib

            ds = data_lib.load(self.name, split="train", batch_size=self.batch_size,
                               augment=self._recipe.augment, mixup=self._recipe.mixup,
                               seed=self._seed, shuffle_seed=_epoch_seed(self._seed, epoch),
                               **self._kw)
        # a step cap goes to fit(steps_per_epoch=...), not ds.take(): under
        # MultiWorkerMirroredStrategy, auto-sharding rebatches to the per-worker batch, and a
        # take() after the batch would then count per-worker batches
        return ds

    def val(self):
        if self._splits is not None:
            ds = self._splits.val
        else:
            from keras_cnns import data as data_lib

            ds = data_lib.load(self.name, split="test", batch_size=self.batch_size,
                               augment=False, seed=self._seed, **self._kw)
        if self._recipe.mixup:  # the compiled metrics see soft labels in training
            import tensorflow as tf

            k = self.num_classes
            ds = ds.map(lambda x, y: (x, tf.one_hot(tf.cast(y, tf.int32), k)))
        return ds

    def steps_per_epoch(self) -> Optional[int]:
        steps = None
        if self.train_size:
            steps = int(math.ceil(self.train_size / self.batch_size))
        if self.limit:
            steps = min(steps, self.limit) if steps else self.limit
        return steps


# ----------------------------------------------------------------------------------------------
# The model a run trains
# ----------------------------------------------------------------------------------------------

def _resolve_model(model_or_name, model_kwargs, source: _Source, image_size):
    """``(ModelInfo or None, build() -> keras.Model, run name, fingerprint)``."""
    from keras_cnns.models import model_info

    if isinstance(model_or_name, keras.Model):
        if model_kwargs:
            fail("model_kwargs", "only apply to a model given by name", model_kwargs)
        model = model_or_name
        fingerprint = dict(model=model.name, input_shape=list(model.input_shape[1:]),
                           outputs=(list(model.output_shape[1:]) if len(model.outputs) == 1
                                    else [list(t.shape[1:]) for t in model.outputs]),
                           params=int(model.count_params()))
        return None, (lambda: model), model.name, fingerprint
    if not isinstance(model_or_name, str) or not model_or_name.strip():
        fail("model_or_name", "must be a registered model name (see `keras-cnns list`) or a "
             "keras.Model", model_or_name)
    info = model_info(model_or_name)
    kwargs = dict(model_kwargs or {})
    for key in _RESERVED:
        if key in kwargs:
            fail(key, "is set by train() from the data", kwargs[key])
    run_name = kwargs.pop("name", None) or info.name
    h, w, c = source.input_shape
    if image_size is None and (h is None or min(h, w) < info.min_input_size):
        fail("image_size", f"must be given: the data's images are {h}x{w}, {info.name} needs "
             f">= {info.min_input_size}", image_size)
    if min(h, w) < info.min_input_size:
        fail("image_size", f"must be >= {info.min_input_size}, the smallest input {info.name} "
             "accepts", image_size)
    config = {**info.kwargs, **kwargs}
    import inspect

    params = inspect.signature(info.builder).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        for key in kwargs:
            if key not in params:
                allowed = sorted(k for k in params if k not in _RESERVED + ("name",))
                fail(key, f"is not an argument of {info.name!r} (its arguments: {allowed})",
                     kwargs[key])

    def build():
        return info.builder(**config, name=run_name, input_shape=(h, w, c),
                            classes=source.num_classes)

    fingerprint = dict(model=info.name, kwargs=_jsonable(kwargs), input_shape=[h, w, c],
                       classes=source.num_classes)
    return info, build, run_name, fingerprint


# ----------------------------------------------------------------------------------------------
# The task: what each output is trained and scored with
# ----------------------------------------------------------------------------------------------

class _Task:
    """The losses, loss weights and metrics of a model's outputs, read from its
    :class:`~keras_cnns.models.heads.OutputSpec` (``output_specs``): the main output gets the
    recipe's classification loss with weight 1 and top-1 / top-5 accuracy, an auxiliary
    classifier the same loss with its own weight (GoogLeNet's 0.3) and top-1. With one output
    the metrics are ``accuracy`` / ``top5_accuracy``; with several, Keras names them
    ``<output>_accuracy`` and :meth:`main_keys` adds the main output's as ``accuracy``,
    ``top5_accuracy``, ``val_accuracy`` ..., so the loop, the history and the checkpoints read
    the main output the same way."""

    def __init__(self, specs, recipe, num_classes):
        self.specs = tuple(specs)
        k = min(5, num_classes)
        main = next(s for s in self.specs if s.served and s.trained)
        self.main = main.name

        def classification_loss():
            return (ClassificationLoss(recipe.label_smoothing)
                    if (recipe.label_smoothing or recipe.mixup)
                    else keras.losses.SparseCategoricalCrossentropy())

        def metrics(spec):
            dense = bool(recipe.mixup)
            out = [(keras.metrics.CategoricalAccuracy if dense
                    else keras.metrics.SparseCategoricalAccuracy)(name="accuracy")]
            if spec.name == self.main:
                out.append((keras.metrics.TopKCategoricalAccuracy if dense
                            else keras.metrics.SparseTopKCategoricalAccuracy)(
                    k=k, name="top5_accuracy"))
            return out

        if len(self.specs) == 1:
            self.compile_kwargs = dict(loss=classification_loss(), metrics=metrics(main))
        else:
            self.compile_kwargs = dict(loss=[classification_loss() for _ in self.specs],
                                       loss_weights=[float(s.loss_weight) for s in self.specs],
                                       metrics=[metrics(s) for s in self.specs])

    def data(self, ds):
        """The dataset with its label given to every output."""
        n = len(self.specs)
        if n == 1:
            return ds
        return ds.map(lambda x, y: (x, tuple(y for _ in range(n))))

    def epoch_logs(self, logs):
        """What a run prints per epoch: the main output's metrics under their single-output
        names, the other outputs' under theirs."""
        logs = self.main_keys(logs)
        if len(self.specs) > 1:
            logs = {k: v for k, v in logs.items()
                    if not (k.startswith(f"{self.main}_") or k.startswith(f"val_{self.main}_"))
                    or k.endswith("_loss")}
        return logs

    def main_keys(self, logs):
        """``logs`` plus the main output's metrics under their single-output names."""
        logs = dict(logs)
        if len(self.specs) > 1:
            for key, value in list(logs.items()):
                for prefix in ("", "val_"):
                    if key.startswith(f"{prefix}{self.main}_"):
                        name = key[len(prefix) + len(self.main) + 1:]
                        if name in ("accuracy", "top5_accuracy"):
                            logs[f"{prefix}{name}"] = value
        return logs


def _training_task(model, recipe, num_classes, model_or_name):
    """``(model, task)``: the model to compile (the outputs train() puts a loss on, cast to
    float32 under mixed precision) and its :class:`_Task`."""
    from keras_cnns.models.heads import attach_output_specs, output_name, output_specs

    specs = output_specs(model)
    trained = [(i, s) for i, s in enumerate(specs) if s.trained]
    if not any(s.served for _, s in trained):
        fail("model_or_name", "must have a classification output to train (its outputs: "
             f"{[(s.name, s.kind) for s in specs]}; build it with include_top=True)",
             model_or_name if isinstance(model_or_name, str) else model.name)
    outputs = [model.outputs[i] for i, _ in trained]
    rebuild = len(trained) != len(specs)
    if recipe.precision != "float32" and any(o.dtype != "float32" for o in outputs):
        # the softmax in float32 (Keras' mixed-precision guide): the loss, top-k metrics
        # and exported probabilities see float32
        outputs = [keras.layers.Activation("linear", dtype="float32",
                                           name="predictions_float32" if j == 0 else
                                           f"{s.name}_float32")(o)
                   for j, (o, (_, s)) in enumerate(zip(outputs, trained))]
        rebuild = True
    specs = [dataclasses.replace(s, name=output_name(o)) for o, (_, s) in zip(outputs, trained)]
    if rebuild:
        model = keras.Model(model.inputs, outputs if len(outputs) > 1 else outputs[0],
                            name=model.name)
        attach_output_specs(model, specs)
    return model, _Task(specs, recipe, num_classes)


# ----------------------------------------------------------------------------------------------
# train()
# ----------------------------------------------------------------------------------------------

def train(model_or_name: Union[str, "keras.Model"] = DEFAULT_MODEL,
          data: Any = DEFAULT_DATASET, recipe: Union[None, str, dict, Recipe] = None,
          strategy=None, callbacks: Sequence[keras.callbacks.Callback] = (), *,
          model_kwargs: Optional[Dict[str, Any]] = None, image_size: Optional[int] = None,
          seed: int = 0, data_dir: Optional[str] = None, checkpoint_dir: Optional[str] = None,
          resume: bool = False, tensorboard_dir: Optional[str] = None,
          export_dir: Optional[str] = None, restore_best: bool = True,
          steps_per_epoch: Optional[int] = None, verbose: int = 1,
          **recipe_overrides) -> TrainResult:
    """Train a model on a dataset with a recipe; evaluate, checkpoint and export it.

    Args:
        model_or_name: a registered model name (``keras_cnns.list_models()``) or a built
            ``keras.Model`` (then ``model_kwargs`` must be empty).
        data: a dataset name of :func:`keras_cnns.data.load` (``"digits"``, ``"cifar10"``,
            ``"imagenet2012"``, ``"folder:/path"``...) or a :class:`keras_cnns.data.DatasetSplits`
            (then resuming cannot replay its shuffles exactly).
        recipe: ``None``/``"default"`` (the model's default recipe), ``"paper"`` (its paper's,
            from the registry), a recipe name, a dict of :class:`Recipe` fields, or a ``Recipe``.
        strategy: a ``tf.distribute.Strategy``, or ``"mirrored"`` / ``"multiworker"`` /
            ``"tpu"`` / ``None``. The recipe's batch size is the global batch.
        callbacks: extra Keras callbacks, passed to every epoch's ``fit``.
        model_kwargs: builder arguments (``{"alpha": 0.5}``, ``{"bypass": "complex"}``...).
        image_size: square input side the data is resized to (e.g. a MobileNet ``rho`` x 224);
            default the dataset's native size, at least the model's minimum.
        seed: seeds the initialisation and every epoch's data order and augmentation.
        data_dir: tensorflow-datasets data directory (or the image folder).
        checkpoint_dir: write a checkpoint every epoch there (and ``best``); a directory that
            already holds checkpoints needs ``resume=True``.
        resume: continue from the newest valid checkpoint in ``checkpoint_dir`` (none there:
            start fresh).
        tensorboard_dir: TensorBoard logs (default ``<checkpoint_dir>/logs`` when checkpointing).
        export_dir: export the best epoch's model as a SavedModel in the TF Serving layout
            (``<export_dir>/<name>/<version>/``); ``None``: no export.
        restore_best: end with the best epoch's weights (by held-out top-1) rather than the last.
        steps_per_epoch: cap the steps of every epoch (quick runs, tests).
        verbose: 1 progress bar and summary lines, 0 silent.
        **recipe_overrides: :class:`Recipe` fields on top of ``recipe`` (``epochs=3``,
            ``batch_size=32``, ``learning_rate=0.01``...; ``None`` values ignored).

    Returns:
        TrainResult.

    Raises:
        ValueError: an invalid argument (the message names it), an unknown model, dataset or
            recipe, a checkpoint directory of another run or one that needs ``resume=True``.
        keras_cnns.data.DatasetUnavailableError: the dataset is not on this machine.
    """
    start = time.perf_counter()
    if not is_int(seed) or seed < 0:
        fail("seed", "must be an integer >= 0", seed)
    if not isinstance(resume, bool):
        fail("resume", "must be True or False", resume)
    if resume and not checkpoint_dir:
        fail("resume", "needs a checkpoint_dir to resume from", resume)
    if image_size is not None and (not is_int(image_size) or image_size < 1):
        fail("image_size", "must be None or a positive integer", image_size)
    if steps_per_epoch is not None and (not is_int(steps_per_epoch) or steps_per_epoch < 1):
        fail("steps_per_epoch", "must be None or a positive integer", steps_per_epoch)
    for arg, value in (("checkpoint_dir", checkpoint_dir), ("export_dir", export_dir),
                       ("tensorboard_dir", tensorboard_dir), ("data_dir", data_dir)):
        if value is not None and (not isinstance(value, (str, os.PathLike)) or not str(value)):
            fail(arg, "must be None or a directory path", value)
    if isinstance(strategy, str) or strategy is None:
        strategy = make_strategy(strategy)
    if strategy is not None:
        from keras_cnns.training.distribute import patch_keras_for_multiworker

        patch_keras_for_multiworker()
    chief = is_chief(strategy)
    replicas = num_replicas(strategy)

    info = None
    if isinstance(model_or_name, str) and model_or_name.strip():
        from keras_cnns.models import model_info

        info = model_info(model_or_name)
    recipe = resolve_recipe(recipe, info, **recipe_overrides)
    if recipe.batch_size % replicas:
        fail("batch_size", f"must be a multiple of the {replicas} replicas of the strategy",
             recipe.batch_size)

    channels = info.default_input_shape[-1] if info is not None else None
    source = _Source(data, image_size=image_size, channels=channels,
                     batch_size=recipe.batch_size, seed=seed, data_dir=data_dir, recipe=recipe,
                     steps_per_epoch=steps_per_epoch,
                     min_size=info.min_input_size if info is not None else None)
    info, build, run_name, fingerprint = _resolve_model(model_or_name, model_kwargs, source,
                                                        image_size)
    fingerprint["dataset"] = source.name

    manager = None
    if checkpoint_dir:
        manager = CheckpointManager(checkpoint_dir, fingerprint, is_chief=chief)
        latest = manager.latest() if (resume or manager.has_checkpoints()) else None
        if not resume and manager.has_checkpoints():
            fail("checkpoint_dir", "already holds checkpoints of a run: pass resume=True "
                 "(--resume) to continue it, or choose an empty directory (nothing was "
                 "overwritten)", os.fspath(checkpoint_dir))
    else:
        latest = None

    keras.utils.set_random_seed(seed)
    steps = source.steps_per_epoch()
    if steps is None:
        fail("data", "must have a known size (or pass steps_per_epoch)", data)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    policy = keras.config.dtype_policy()
    with scope:
        if recipe.precision != "float32":
            keras.config.set_dtype_policy(recipe.precision)
        try:
            model = build()
        finally:
            keras.config.set_dtype_policy(policy)
        model, task = _training_task(model, recipe, source.num_classes, model_or_name)
        schedule = make_schedule(recipe, steps)
        optimizer = _make_optimizer(recipe, schedule)
        model.compile(optimizer=optimizer, jit_compile=_jit(recipe), **task.compile_kwargs)
        optimizer = model.optimizer  # LossScaleOptimizer under mixed_float16
        optimizer.build(model.trainable_variables)

    history: Dict[str, list] = {}
    first_epoch, best = 0, {"epoch": 0, "val_accuracy": -1.0}
    if latest is not None:
        path, meta = latest
        manager.restore(path, model, optimizer)
        first_epoch = int(meta["epoch"])
        history = {k: list(v) for k, v in meta["history"].items()}
        best = dict(meta.get("best", best))
        if verbose:
            print(f"Resuming {run_name} after epoch {first_epoch} from {path}", flush=True)
    resumed_from = first_epoch

    if verbose:
        print(f"Training {run_name} ({model.count_params():,} parameters) on {source.name} "
              f"({source.train_size} train / {source.val_size} held-out images at "
              f"{source.input_shape[0]}x{source.input_shape[1]}): {recipe.optimizer}, peak lr "
              f"{recipe.learning_rate:g}, {recipe.schedule} schedule"
              f"{f' after a {recipe.warmup_epochs:g}-epoch warm-up' if recipe.warmup_epochs else ''}"
              f", batch {recipe.batch_size}{f' on {replicas} replicas' if replicas > 1 else ''}"
              f", {recipe.epochs} epochs, {recipe.precision}, seed {seed}", flush=True)

    fit_callbacks = list(callbacks)
    speed = _ImagesPerSecond()
    fit_callbacks.append(speed)
    drop_path = drop_path_schedule_for(model, steps * recipe.epochs)  # ScheduledDropPath
    if drop_path is not None:
        fit_callbacks.append(drop_path)
    if verbose:
        fit_callbacks.append(_progress_callback(recipe.epochs, task.epoch_logs))
    if tensorboard_dir is None and checkpoint_dir:
        tensorboard_dir = os.path.join(os.fspath(checkpoint_dir), "logs")
    if tensorboard_dir and chief:
        fit_callbacks.append(keras.callbacks.TensorBoard(log_dir=os.fspath(tensorboard_dir)))
    use_precise_bn = bool(batch_norm_layers(model)) and replicas == 1
    val_ds = task.data(source.val())
    for epoch in range(first_epoch, recipe.epochs):
        train_ds = task.data(source.train(epoch))
        epoch_callbacks = list(fit_callbacks)
        if use_precise_bn:  # per-epoch evaluation with recalibrated BN statistics
            epoch_callbacks.append(PreciseBatchNorm(train_ds, max_batches=5))
        h = model.fit(train_ds, epochs=epoch + 1, initial_epoch=epoch, validation_data=val_ds,
                      steps_per_epoch=steps if source.limit else None, verbose=0,
                      shuffle=False, callbacks=epoch_callbacks)
        for key, values in task.main_keys(h.history).items():
            history.setdefault(key, []).extend(float(v) for v in values)
        history.setdefault("lr", []).append(float(keras.ops.convert_to_numpy(
            schedule(optimizer.iterations))))
        val_acc = history["val_accuracy"][-1]
        if val_acc > best["val_accuracy"]:
            best = {"epoch": epoch + 1, "val_accuracy": val_acc}
            if manager is not None:
                manager.save_best(epoch + 1, model, {"history": history, "seed": seed})
            else:
                best["weights"] = [keras.ops.convert_to_numpy(v) for v in model.variables]
        if manager is not None:
            state = {"history": history, "seed": seed, "data_seed": _epoch_seed(seed, epoch),
                     "best": {k: v for k, v in best.items() if k != "weights"},
                     "recipe": recipe.as_dict(), "run_name": run_name}
            manager.save(epoch + 1, model, optimizer, state)

    if restore_best and best["epoch"] and best["epoch"] != len(history.get("loss", [])):
        if manager is not None:
            found = manager.best()
            if found is not None:
                manager.restore(found[0], model, None)
        elif "weights" in best:
            for v, value in zip(model.variables, best["weights"]):
                v.assign(value)
    if use_precise_bn:
        recalibrate_batch_norm(model, task.data(source.train(max(recipe.epochs - 1, 0))),
                               max_batches=steps)
    results = task.main_keys(model.evaluate(val_ds, verbose=0, return_dict=True))
    val_accuracy = float(results["accuracy"])
    val_top5 = float(results["top5_accuracy"])
    if manager is not None:  # what was evaluated (and is exported): `keras-cnns export DIR`
        manager.save_final(model, {"epoch": int(best["epoch"]), "seed": seed,
                                   "val_accuracy": val_accuracy, "val_top5_accuracy": val_top5,
                                   "run_name": run_name, "recipe": recipe.as_dict()})
    ips = (speed.batches * recipe.batch_size / replicas / speed.seconds * replicas
           if speed.seconds else 0.0)

    export_path = None
    if export_dir and chief:
        from keras_cnns.export import export_saved_model

        metadata = dict(source.metadata)
        metadata.update(model=info.name if info else run_name, run_name=run_name,
                        val_accuracy=val_accuracy, val_top5_accuracy=val_top5,
                        best_epoch=best["epoch"], seed=seed, recipe=recipe.as_dict())
        export_path = export_saved_model(model, base_dir=os.fspath(export_dir),
                                         model_name=run_name, metadata=_jsonable(metadata),
                                         print_commands=False)
    wall = time.perf_counter() - start
    result = TrainResult(model=model, history=history, val_accuracy=val_accuracy,
                         val_top5_accuracy=val_top5, wall_time_s=wall, images_per_second=ips,
                         best_epoch=int(best["epoch"]), export_path=export_path,
                         checkpoint_dir=os.fspath(checkpoint_dir) if checkpoint_dir else None,
                         run_name=run_name, recipe=recipe, resumed_from=resumed_from,
                         info=dict(dataset=source.name, train_size=source.train_size,
                                   val_size=source.val_size, replicas=replicas,
                                   input_shape=list(source.input_shape)))
    return result
