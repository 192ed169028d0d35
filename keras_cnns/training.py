"""The training recipe behind ``keras-cnns train`` and :func:`train`.

The default job trains ``squeezenet1_1`` with simple bypass on the embedded scikit-learn digits
(:func:`keras_cnns.data.load_digits`: 1797 real 8x8 handwritten digits, stratified 80/20 split,
upsampled to 64x64, standardised with train-split statistics), reports the held-out accuracy and
exports a SavedModel in the TF Serving layout (``saved_models/<model>/<version>/``).

The recipe (all defaults, measured on a 2-core CPU; see :data:`DEFAULT_RECIPE`):

* inputs standardised (zero mean, unit variance) by the data pipeline;
* Adam, peak learning rate 1e-3, linear warm-up over the first 2 epochs, then the paper's "poly"
  decay (power 1) to 0 at the last step; batch 64; 30 epochs on digits;
* the model's own initialisation (for SqueezeNet: He-uniform Fire convolutions, ``conv10``
  started with every class map alive -- see :func:`keras_cnns.models.squeezenet.SqueezeNet`);
* no XLA (``jit_compile=False``: slower than the oneDNN kernels for these convolutions on CPU).

Why not the paper's solver (SGD, momentum 0.9, base_lr 0.04, poly, weight decay 2e-4)? With
simple bypass the four identity sums make fire9's non-negative features ~15x larger than in the
plain network, so conv10's curvature is orders of magnitude above the rest of the network's: every
SGD learning rate we tried (1e-4 ... 4e-2, with warm-up, with gradient clipping) either leaves the
backbone untrained or throws the class maps below zero within a few dozen steps (9-10 of 10
classes dead, 0.10-0.20 held-out accuracy in 8 epochs; through :func:`train`, 10 epochs, lr
0.01 / 0.04: 0.10 / 0.10 with simple bypass, 0.32 / 0.10 even without bypass). Adam's per-weight step sizes remove the
scale mismatch; the warm-up keeps its first, sign-like steps from moving whole class maps below
zero before the features discriminate. ``optimizer="sgd"`` remains available (paper solver).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import numbers
import time
from typing import Any, Dict, Optional

import keras

from keras_cnns.models._validation import fail, is_int
from keras_cnns.models.squeezenet import BYPASSES

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_RECIPE",
    "OPTIMIZERS",
    "TrainResult",
    "WarmupPolyDecay",
    "PreciseBatchNorm",
    "add_arguments",
    "recalibrate_batch_norm",
    "run",
    "train",
]

DEFAULT_MODEL = "squeezenet1_1"
DEFAULT_DATASET = "digits"
OPTIMIZERS = ("adam", "adamw", "sgd")

#: The defaults of :func:`train` (per dataset where they differ).
DEFAULT_RECIPE: Dict[str, Any] = {
    "epochs": {"digits": 30, "tfds": 10},
    "batch_size": 64,
    "image_size": 64,
    "optimizer": "adam",
    "learning_rate": {"adam": 1e-3, "adamw": 1e-3, "sgd": 0.01},
    "warmup_epochs": 2,
    "lr_decay": "poly, power 1, to 0 at the last step (the paper's Caffe lr_policy)",
    "weight_decay": {"adam": 0.0, "adamw": 2e-4, "sgd": 2e-4},
    "momentum": 0.9,
    "jit_compile": False,
    "precise_bn": "after training, BatchNorm moving statistics = exact averages over the training "
                  "split (Wu & Johnson 2021, 'Rethinking Batch in BatchNorm')",
}

# Python argument -> CLI flag, for error messages.
_FLAGS = {
    "model_name": "MODEL",
    "dataset": "--dataset",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "image_size": "--image-size",
    "learning_rate": "--lr",
    "optimizer": "--optimizer",
    "seed": "--seed",
    "export_dir": "--export-dir",
    "data_dir": "--data-dir",
    "warmup_epochs": "--warmup-epochs",
    "weight_decay": "--weight-decay",
    "bypass": "--bypass",
}


# ----------------------------------------------------------------------------------------------
# Learning-rate schedule
# ----------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="keras_cnns")
class WarmupPolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak_learning_rate``, then Caffe's "poly" decay.

    ``lr(t) = peak * (t + 1) / warmup_steps`` for ``t < warmup_steps``, then
    ``end + (peak - end) * (1 - (t - warmup_steps) / (total_steps - warmup_steps)) ** power``,
    reaching ``end_learning_rate`` at ``total_steps`` and staying there.

    Args:
        peak_learning_rate: the learning rate at the end of the warm-up.
        total_steps: optimizer steps of the whole run.
        warmup_steps: steps of the linear warm-up (0: none).
        power: exponent of the poly decay (1: linear, the SqueezeNet solver's setting).
        end_learning_rate: the final learning rate.
    """

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


# ----------------------------------------------------------------------------------------------
# Results and validation
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained ``keras.Model``.
        history: ``keras.callbacks.History.history`` (per-epoch ``loss``, ``accuracy``,
            ``val_loss``, ``val_accuracy``).
        val_accuracy: top-1 accuracy on the held-out split after the last epoch.
        wall_time_s: seconds spent in :func:`train` (data, build, fit, evaluation, export).
        export_path: the published SavedModel version directory, or ``None`` (``export=False``).
        run_name: the model/directory name used (``"squeezenet1_1_simple_bypass"``).
        recipe: the resolved settings of the run.
    """

    model: Any
    history: Dict[str, list]
    val_accuracy: float
    wall_time_s: float
    export_path: Optional[str]
    run_name: str = ""
    recipe: Dict[str, Any] = dataclasses.field(default_factory=dict)


def _fail(arg: str, allowed: str, value: Any, flags: bool) -> None:
    """:func:`fail`, naming the CLI flag instead of the argument when ``flags``."""
    fail(_FLAGS.get(arg, arg) if flags else arg, allowed, value)


def _validate(values: Dict[str, Any], flags: bool = False) -> None:
    """Check :func:`train`'s arguments; messages name the argument (or the CLI flag)."""
    v = values
    if not isinstance(v["model_name"], str) or not v["model_name"].strip():
        _fail("model_name", "must be a registered model name (see `keras-cnns list`)",
              v["model_name"], flags)
    if not isinstance(v["dataset"], str) or not v["dataset"].strip():
        _fail("dataset", "must be 'digits' or a tensorflow-datasets name (e.g. mnist, cifar10)",
              v["dataset"], flags)
    if v["epochs"] is not None and (not is_int(v["epochs"]) or v["epochs"] < 1):
        _fail("epochs", "must be an integer >= 1", v["epochs"], flags)
    if not is_int(v["batch_size"]) or v["batch_size"] < 1:
        _fail("batch_size", "must be an integer >= 1", v["batch_size"], flags)
    if v["image_size"] is not None and (not is_int(v["image_size"]) or v["image_size"] < 1):
        _fail("image_size", "must be a positive integer", v["image_size"], flags)
    lr = v["learning_rate"]
    if lr is not None and (not isinstance(lr, numbers.Real) or isinstance(lr, bool)
                           or not math.isfinite(lr) or lr <= 0):
        _fail("learning_rate", "must be a finite number > 0", lr, flags)
    if v["optimizer"] not in OPTIMIZERS:
        _fail("optimizer", f"must be one of {list(OPTIMIZERS)}", v["optimizer"], flags)
    if not is_int(v["seed"]) or v["seed"] < 0:
        _fail("seed", "must be an integer >= 0", v["seed"], flags)
    we = v["warmup_epochs"]
    if we is not None and (not isinstance(we, numbers.Real) or isinstance(we, bool)
                           or not math.isfinite(we) or we < 0):
        _fail("warmup_epochs", "must be a number >= 0", we, flags)
    wd = v["weight_decay"]
    if wd is not None and (not isinstance(wd, numbers.Real) or isinstance(wd, bool)
                           or not math.isfinite(wd) or wd < 0):
        _fail("weight_decay", "must be a number >= 0", wd, flags)
    if wd and v["optimizer"] == "adam":
        _fail("weight_decay", "is not used by optimizer 'adam' (use 'adamw' or 'sgd')", wd, flags)
    if v["export"] and (not isinstance(v["export_dir"], str) or not v["export_dir"]):
        _fail("export_dir", "must be a non-empty directory path", v["export_dir"], flags)
    if v["data_dir"] is not None and (not isinstance(v["data_dir"], str) or not v["data_dir"]):
        _fail("data_dir", "must be None or a directory path", v["data_dir"], flags)
    bypass = v.get("bypass")
    if bypass is not None and bypass not in BYPASSES:
        _fail("bypass", f"must be one of {list(BYPASSES)}", bypass, flags)


def _resolve_model(model_name: str, model_kwargs: Dict[str, Any], flags: bool):
    """``(ModelInfo, builder kwargs, run name)``; squeezenet1_1 defaults to simple bypass."""
    from keras_cnns.models import model_info

    info = model_info(model_name)
    kwargs = dict(model_kwargs)
    params = inspect.signature(info.builder).parameters
    accepts_bypass = "bypass" in params
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        allowed = sorted(k for k in params if k not in (
            "input_shape", "classes", "input_tensor", "include_top"))
        for key in kwargs:
            if key not in params and key != "bypass":  # bypass: checked below
                _fail(key, f"is not an argument of {info.name!r} (its arguments: {allowed})",
                      kwargs[key], flags)
    if "bypass" in kwargs and kwargs["bypass"] is not None and not accepts_bypass:
        _fail("bypass", f"only applies to SqueezeNet models, not {info.name!r}", kwargs["bypass"],
              flags)
    if kwargs.get("bypass") is None:
        kwargs.pop("bypass", None)
        if info.name == DEFAULT_MODEL:
            kwargs["bypass"] = "simple"  # the main job: SqueezeNet 1.1 with simple bypass
    run_name = info.name
    if "bypass" in kwargs and kwargs["bypass"] != info.kwargs.get("bypass", "none"):
        base = run_name
        for suffix in ("_simple_bypass", "_complex_bypass"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        run_name = base if kwargs["bypass"] == "none" else f"{base}_{kwargs['bypass']}_bypass"
    kwargs.setdefault("name", run_name)
    return info, kwargs, kwargs["name"]


def _load_data(dataset, image_size, channels, batch_size, seed, data_dir):
    from keras_cnns import data

    if dataset.strip().lower() == "digits":
        return data.load_digits(image_size=image_size, channels=channels, seed=seed,
                                batch_size=batch_size)
    return data.load_tfds(dataset.strip(), image_size=image_size, channels=channels,
                          batch_size=batch_size, data_dir=data_dir, seed=seed, normalize=True)


def _steps_per_epoch(splits, batch_size: int) -> Optional[int]:
    if splits.train_size:
        return int(math.ceil(splits.train_size / batch_size))
    try:
        n = int(splits.train.cardinality())
    except Exception:  # pragma: no cover - cardinality is always defined for tf.data
        n = -1
    return n if n > 0 else None


def _make_optimizer(name: str, schedule, weight_decay: float):
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=schedule)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay)
    return keras.optimizers.SGD(learning_rate=schedule, momentum=DEFAULT_RECIPE["momentum"],
                                weight_decay=weight_decay or None)


def _batch_norm_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recalibrate_batch_norm(model, dataset, max_batches: Optional[int] = None) -> int:
    """Set every BatchNormalization layer's moving mean/variance to exact training statistics.

    "Precise BN" (Wu & Johnson 2021): with the weights fixed, run the model in training mode over
    ``dataset`` and average each layer's per-batch mean and variance with equal weights (momentum
    ``1 - 1/i`` at batch ``i``). Keras' exponential moving averages (momentum 0.99) need several
    hundred steps to forget their initial values (mean 0, variance 1); on a short schedule they
    are still far from the statistics the network was trained with, and inference collapses
    (measured: MobileNet 0.5 on the digits, 10 epochs = 230 steps, 0.998 training accuracy but
    0.10 held-out accuracy with the moving averages; see README).

    Args:
        model: a built ``keras.Model``; models without BatchNormalization are left untouched.
        dataset: an iterable of ``(images, labels)`` or ``images`` batches (e.g. a ``tf.data``
            training pipeline).
        max_batches: use at most this many batches (``None``: the whole dataset).

    Returns:
        The number of batches used (0 when the model has no BatchNormalization).
    """
    layers = _batch_norm_layers(model)
    if not layers:
        return 0
    if max_batches is not None and (not is_int(max_batches) or max_batches < 1):
        raise ValueError(f"`max_batches` must be None or an integer >= 1. "
                         f"Received: max_batches={max_batches!r}")
    saved = [layer.momentum for layer in layers]
    used = 0
    try:
        for batch in dataset:
            if max_batches is not None and used >= max_batches:
                break
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            used += 1
            for layer in layers:  # moving = moving * (1 - 1/i) + batch / i
                layer.momentum = 1.0 - 1.0 / used
            model(images, training=True)
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    if used == 0:
        raise ValueError("`dataset` yielded no batches to recalibrate BatchNormalization with.")
    return used


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recalibrates BatchNormalization statistics (:func:`recalibrate_batch_norm`) on
    ``max_batches`` batches of ``dataset`` before every evaluation ``fit`` runs, so the per-epoch
    ``val_*`` figures use the statistics the network is trained with, not stale moving averages.
    """

    def __init__(self, dataset, max_batches: Optional[int] = 5):
        super().__init__()
        self.dataset = dataset
        self.max_batches = max_batches

    def on_test_begin(self, logs=None):
        recalibrate_batch_norm(self.model, self.dataset, max_batches=self.max_batches)


# ----------------------------------------------------------------------------------------------
# The Python API
# ----------------------------------------------------------------------------------------------

def train(model_name: str = DEFAULT_MODEL, dataset: str = DEFAULT_DATASET,
          epochs: Optional[int] = None, batch_size: int = DEFAULT_RECIPE["batch_size"],
          image_size: Optional[int] = None, learning_rate: Optional[float] = None,
          optimizer: str = DEFAULT_RECIPE["optimizer"], seed: int = 0,
          export_dir: str = "saved_models", export: bool = True, verbose: int = 1,
          data_dir: Optional[str] = None, warmup_epochs: Optional[float] = None,
          weight_decay: Optional[float] = None, **model_kwargs) -> TrainResult:
    """Train a registered model with the library's recipe, evaluate it, export it.

    Args:
        model_name: a registered name (``keras_cnns.list_models()``). ``"squeezenet1_1"``
            trains with ``bypass="simple"`` unless ``bypass`` is given (the main job).
        dataset: ``"digits"`` (embedded, no download) or a tensorflow-datasets name
            (``"mnist"``, ``"cifar10"``, ...; its "test" split is the held-out split).
        epochs: passes over the training split; default 30 on digits, 10 otherwise.
        batch_size: examples per step.
        image_size: square input side; default 64 (at least the model's minimum input size).
        learning_rate: peak learning rate; default 1e-3 (adam/adamw) or 0.01 (sgd).
        optimizer: ``"adam"`` (default), ``"adamw"`` or ``"sgd"`` (momentum 0.9, the paper's
            solver). All use the warm-up + poly schedule (:class:`WarmupPolyDecay`).
        seed: seeds the split, the shuffles and the initialisation.
        export_dir: TF Serving model repository root.
        export: export a SavedModel (``<export_dir>/<run_name>/<version>/``).
        verbose: Keras ``fit`` verbosity (1: progress bar, 0: silent).
        data_dir: tensorflow-datasets data directory.
        warmup_epochs: epochs of linear learning-rate warm-up (default 2).
        weight_decay: decoupled weight decay for adamw/sgd (default 2e-4, the paper's value);
            not available with adam.
        **model_kwargs: builder arguments (``bypass``, ``dropout``, ``version``...).

    Returns:
        TrainResult.

    Raises:
        ValueError: an invalid argument (the message names it), an unknown model or dataset.
    """
    start = time.perf_counter()
    values = dict(model_name=model_name, dataset=dataset, epochs=epochs, batch_size=batch_size,
                  image_size=image_size, learning_rate=learning_rate, optimizer=optimizer,
                  seed=seed, export_dir=export_dir, export=export, data_dir=data_dir,
                  warmup_epochs=warmup_epochs, weight_decay=weight_decay,
                  bypass=model_kwargs.get("bypass"))
    flags = bool(model_kwargs.pop("_flags", False))
    _validate(values, flags=flags)
    info, builder_kwargs, run_name = _resolve_model(model_name, model_kwargs, flags)
    for reserved in ("input_shape", "classes", "input_tensor", "include_top"):
        if reserved in builder_kwargs:
            _fail(reserved, "is set by train() from the dataset", builder_kwargs[reserved], flags)

    is_digits = dataset.strip().lower() == "digits"
    if epochs is None:
        epochs = DEFAULT_RECIPE["epochs"]["digits" if is_digits else "tfds"]
    if image_size is None:
        image_size = max(DEFAULT_RECIPE["image_size"], info.min_input_size)
    if image_size < info.min_input_size:
        _fail("image_size", f"must be >= {info.min_input_size}, the smallest input "
              f"{info.name} accepts", image_size, flags)
    if learning_rate is None:
        learning_rate = DEFAULT_RECIPE["learning_rate"][optimizer]
    if warmup_epochs is None:
        warmup_epochs = DEFAULT_RECIPE["warmup_epochs"]
    if weight_decay is None:
        weight_decay = DEFAULT_RECIPE["weight_decay"][optimizer]

    from keras_cnns.models import create_model

    keras.utils.set_random_seed(seed)
    splits = _load_data(dataset, image_size, info.default_input_shape[-1], batch_size, seed,
                        data_dir)
    # create_model(name, ...) reserves `name` for the registry name: call the builder with the
    # variant's fixed arguments, ours on top (the run name, e.g. "squeezenet1_1_simple_bypass").
    model = info.builder(**{**info.kwargs, **builder_kwargs,
                            "input_shape": tuple(splits.input_shape),
                            "classes": int(splits.num_classes)})

    steps = _steps_per_epoch(splits, batch_size)
    if steps is None:  # unknown dataset length: warm-up over 100 steps, then constant
        schedule = WarmupPolyDecay(learning_rate, total_steps=10**12, warmup_steps=100)
    else:
        schedule = WarmupPolyDecay(learning_rate, total_steps=steps * epochs,
                                   warmup_steps=min(int(round(warmup_epochs * steps)),
                                                    steps * epochs // 2))
    model.compile(optimizer=_make_optimizer(optimizer, schedule, weight_decay),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"], jit_compile=False)
    recipe = dict(model=info.name, run_name=run_name, dataset=splits.name, epochs=epochs,
                  batch_size=batch_size, image_size=image_size, optimizer=optimizer,
                  learning_rate=learning_rate, warmup_epochs=warmup_epochs,
                  weight_decay=weight_decay, seed=seed, train_size=splits.train_size,
                  val_size=splits.val_size,
                  model_kwargs={k: v for k, v in builder_kwargs.items() if k != "name"})
    if verbose:
        print(f"Training {run_name} on {splits.name} ({splits.train_size} train / "
              f"{splits.val_size} held-out images at {image_size}x{image_size}): {optimizer}, "
              f"peak lr {learning_rate:g}, {warmup_epochs:g}-epoch warm-up + poly decay, "
              f"batch {batch_size}, {epochs} epochs, seed {seed}", flush=True)
    callbacks = []
    if _batch_norm_layers(model):  # per-epoch validation with recalibrated BN statistics
        callbacks.append(PreciseBatchNorm(splits.train, max_batches=5))
    history = model.fit(splits.train, epochs=epochs, validation_data=splits.val, verbose=verbose,
                        shuffle=False,  # the pipeline reshuffles every epoch itself
                        callbacks=callbacks)
    recalibrate_batch_norm(model, splits.train, max_batches=steps)  # the final, full pass
    results = model.evaluate(splits.val, verbose=0, return_dict=True)
    val_accuracy = float(results["accuracy"])

    export_path = None
    if export:
        from keras_cnns.export import export_saved_model

        metadata = dict(splits.metadata())
        metadata.update(model=info.name, run_name=run_name, val_accuracy=val_accuracy,
                        recipe={k: v for k, v in recipe.items()
                                if k not in ("model", "run_name", "dataset")})
        export_path = export_saved_model(model, base_dir=export_dir, model_name=run_name,
                                         metadata=_jsonable(metadata))
    return TrainResult(model=model, history={k: [float(x) for x in v]
                                             for k, v in history.history.items()},
                       val_accuracy=val_accuracy, wall_time_s=time.perf_counter() - start,
                       export_path=export_path, run_name=run_name, recipe=recipe)


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
# The CLI (``keras-cnns train``)
# ----------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``keras-cnns train``'s arguments to ``parser``."""
    parser.description = (
        "Train a model with the keras_cnns recipe (Adam, warm-up + poly decay, standardised "
        "inputs), print its held-out accuracy and wall time, export a SavedModel. With no "
        "arguments: SqueezeNet 1.1 with simple bypass on the embedded digits.")
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL, metavar="MODEL",
                        help=f"registered model name (default: {DEFAULT_MODEL}, with simple "
                             "bypass unless --bypass is given)")
    parser.add_argument("--bypass", default=None, metavar="{none,simple,complex}",
                        help="SqueezeNet bypass (default for squeezenet1_1: simple)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help="'digits' (embedded, default) or a tensorflow-datasets name, e.g. "
                             "mnist, cifar10 (its test split is held out)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: 30 on digits, 10 otherwise)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_RECIPE["batch_size"],
                        help="batch size (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="square input side (default: 64)")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate (default: 1e-3 for adam/adamw, 0.01 for sgd)")
    parser.add_argument("--optimizer", default=DEFAULT_RECIPE["optimizer"],
                        metavar="{adam,adamw,sgd}", help="optimizer (default: %(default)s)")
    parser.add_argument("--warmup-epochs", type=float, default=None,
                        help="epochs of linear learning-rate warm-up (default: 2)")
    parser.add_argument("--weight-decay", type=float, default=None,
                        help="weight decay for adamw/sgd (default: 2e-4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--export-dir", default="saved_models",
                        help="SavedModel repository root (default: %(default)s)")
    parser.add_argument("--no-export", action="store_true", help="do not export a SavedModel")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress bar")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        dest="model_args",
                        help="extra builder argument, repeatable; VALUE is a Python literal "
                             "(e.g. --model-arg alpha=0.5 --model-arg dropout=0.2)")


def parse_model_args(items) -> Dict[str, Any]:
    """``["alpha=0.5", "bypass=simple"]`` -> ``{"alpha": 0.5, "bypass": "simple"}``.

    Values are parsed as Python literals; anything that is not one is kept as a string.
    """
    import ast

    out: Dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError("--model-arg must look like KEY=VALUE with KEY an argument name "
                             f"(e.g. alpha=0.5). Received: --model-arg={item!r}")
        try:
            out[key] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            out[key] = raw.strip()
    return out


def run(args: argparse.Namespace) -> int:
    """Run ``keras-cnns train``; invalid flag values raise ``ValueError`` naming the flag."""
    extra = parse_model_args(getattr(args, "model_args", None))
    bypass = args.bypass
    if "bypass" in extra:
        if bypass is not None:
            raise ValueError("give the bypass once, with --bypass or --model-arg bypass=... "
                             f"Received: --bypass={bypass!r}, --model-arg bypass={extra['bypass']!r}")
        bypass = extra.pop("bypass")
    result = train(model_name=args.model, dataset=args.dataset, epochs=args.epochs,
                   batch_size=args.batch_size, image_size=args.image_size,
                   learning_rate=args.lr, optimizer=args.optimizer, seed=args.seed,
                   export_dir=args.export_dir, export=not args.no_export,
                   verbose=0 if args.quiet else 1, data_dir=args.data_dir,
                   warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay,
                   bypass=bypass, _flags=True, **extra)
    recipe = result.recipe
    print()
    print(f"model:              {result.run_name} ({result.model.count_params():,} parameters)")
    print(f"held-out accuracy:  {result.val_accuracy:.4f} "
          f"({recipe['val_size']} {recipe['dataset']} images never trained on)")
    print(f"wall time:          {result.wall_time_s:.1f} s (data, build, {recipe['epochs']} "
          "epochs, evaluation, export)")
    print(f"SavedModel:         {result.export_path if result.export_path else '(not exported)'}")
    return 0
