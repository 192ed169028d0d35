"""``keras-cnns export``: a trained run (or a ``.keras`` file, or a registered name) to a TF
Serving SavedModel and/or TFLite variants, with a side-by-side report.

Examples::

    keras-cnns train --checkpoint-dir runs/sq            # the main job, keeping its checkpoints
    keras-cnns export runs/sq --format tflite --quantize float32,float16,dynamic,int8,prune50,prune80,qat
    keras-cnns export runs/sq --format savedmodel --input-dtype uint8
    keras-cnns export mobilenet_0_50 --image-size 96 --classes 10 --format tflite  # random weights

It lives in the ``cli`` layer, not in :mod:`keras_cnns.export`: it reads a ``keras-cnns train``
run (:func:`keras_cnns.training.load_checkpoint_model`, the ``--model-arg`` syntax of
:func:`keras_cnns.training.parse_model_args`), and training sits above export (``train()`` writes
its SavedModel with :func:`keras_cnns.export.export_saved_model`), so export itself never imports
training.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np

__all__ = ["add_arguments", "load_source", "run"]

FORMATS = ("savedmodel", "tflite", "both")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Export a model for serving: a TF Serving SavedModel (named signature, never over an "
        "existing version) and/or TFLite variants (float32, float16, dynamic, int8, pruned, QAT "
        "int8), with a table of size, gzip size, batch-1 latency, held-out accuracy and top-1 "
        "agreement with Keras. SOURCE is a `keras-cnns train --checkpoint-dir` directory, a "
        ".keras file or a registered model name (random weights).")
    parser.add_argument("source", metavar="MODEL_OR_CHECKPOINT",
                        help="checkpoint directory, .keras file or registered model name")
    parser.add_argument("--format", default="savedmodel", choices=FORMATS,
                        help="what to write (default: %(default)s)")
    parser.add_argument("--quantize", default="float32",
                        help="TFLite variants, comma-separated: float32, float16, dynamic, int8, "
                             "prune<PERCENT> (e.g. prune50), qat (default: %(default)s)")
    parser.add_argument("--output", default=None,
                        help="TFLite output directory (default: exports/<model>)")
    parser.add_argument("--export-dir", default="saved_models",
                        help="SavedModel repository root (default: %(default)s)")
    parser.add_argument("--version", type=int, default=None,
                        help="SavedModel version (default: the next free integer)")
    parser.add_argument("--input-dtype", default="float32", choices=("float32", "uint8"),
                        help="SavedModel input: preprocessed float32, or uint8 pixels with the "
                             "normalisation inside the graph")
    parser.add_argument("--dataset", default=None,
                        help="held-out/calibration data (default: the run's dataset; none for a "
                             "model name unless given)")
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data directory")
    parser.add_argument("--seed", type=int, default=None,
                        help="data split seed (default: the run's)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input side for a model name (default: its native size)")
    parser.add_argument("--classes", type=int, default=None,
                        help="classes for a model name (default: the dataset's, else the "
                             "model's)")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        dest="model_args", help="builder argument for a model name, repeatable")
    parser.add_argument("--max-examples", type=int, default=5000,
                        help="at most this many held-out and fine-tuning images (default: "
                             "%(default)s)")
    parser.add_argument("--fine-tune-epochs", type=int, default=15,
                        help="epochs of pruning fine-tuning (default: %(default)s; SqueezeNet 1.1 "
                             "at 80%% sparsity on the digits recovered 0.94-0.96 held-out top-1 "
                             "after 15, 0.63 after 6)")
    parser.add_argument("--qat-epochs", type=int, default=1,
                        help="epochs of QAT fine-tuning (default: %(default)s)")
    parser.add_argument("--latency-runs", type=int, default=50,
                        help="timed batch-1 TFLite invocations per variant (default: %(default)s)")


def _arrays(ds, limit) -> Tuple[np.ndarray, np.ndarray]:
    xs, ys, n = [], [], 0
    for x, y in ds:
        xs.append(np.asarray(x, np.float32))
        ys.append(np.asarray(y).reshape(-1))
        n += len(xs[-1])
        if n >= limit:
            break
    if not xs:
        return np.zeros((0,), np.float32), np.zeros((0,), np.int64)
    return np.concatenate(xs)[:limit], np.concatenate(ys)[:limit].astype(np.int64)


def load_source(source: str, *, image_size: Optional[int] = None,
                classes: Optional[int] = None, model_kwargs: Optional[Dict[str, Any]] = None,
                dataset: Optional[str] = None):
    """``(model, facts)`` for a checkpoint directory, a ``.keras`` file or a registered name;
    ``facts`` holds ``kind``, ``name``, ``dataset`` and ``seed`` where the source says them."""
    import keras

    if not isinstance(source, str) or not source.strip():
        raise ValueError("MODEL_OR_CHECKPOINT must be a checkpoint directory, a .keras file or a "
                         f"registered model name. Received: MODEL_OR_CHECKPOINT={source!r}")
    if os.path.isdir(source):
        from keras_cnns.training.checkpoint import load_checkpoint_model

        model, meta = load_checkpoint_model(source)
        fp = meta["fingerprint"]
        return model, {"kind": "checkpoint", "path": meta["path"],
                       "name": meta.get("run_name") or fp["model"], "dataset": fp.get("dataset"),
                       "seed": meta.get("seed", 0)}
    if source.endswith(".keras"):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"no such .keras file: {source!r}")
        import keras_cnns  # noqa: F401  (registers the custom layers for deserialisation)

        model = keras.saving.load_model(source)
        return model, {"kind": "keras", "path": source, "name": model.name, "dataset": dataset,
                       "seed": 0}
    if os.path.sep in source or os.path.exists(source):
        raise ValueError("MODEL_OR_CHECKPOINT must be a checkpoint directory, a .keras file or a "
                         f"registered model name. Received: MODEL_OR_CHECKPOINT={source!r}")
    from keras_cnns.models import create_model, model_info

    info = model_info(source)
    h, w, c = info.default_input_shape
    if image_size is not None:
        h = w = int(image_size)
    kwargs = dict(model_kwargs or {})
    if classes is not None:
        kwargs["classes"] = int(classes)
    model = create_model(info.name, input_shape=(h, w, c), **kwargs)
    return model, {"kind": "name", "name": info.name, "dataset": dataset, "seed": 0}


def run(args: argparse.Namespace) -> int:
    from keras_cnns.export._report import format_report, parse_variants, tflite_report
    from keras_cnns.training.cli import parse_model_args

    variants = parse_variants(args.quantize)
    for flag, value in (("--max-examples", args.max_examples),
                        ("--fine-tune-epochs", args.fine_tune_epochs),
                        ("--qat-epochs", args.qat_epochs),
                        ("--latency-runs", args.latency_runs)):
        if value < 1:
            raise ValueError(f"`{flag}` must be a positive integer. Received: {flag}={value}")
    classes = args.classes
    if classes is None and args.dataset and not os.path.isdir(args.source):
        from keras_cnns.data import info as data_info

        classes = data_info(args.dataset, data_dir=args.data_dir).num_classes
    model, facts = load_source(args.source, image_size=args.image_size, classes=classes,
                               model_kwargs=parse_model_args(args.model_args),
                               dataset=args.dataset)
    dataset = args.dataset or facts.get("dataset")
    seed = facts.get("seed", 0) if args.seed is None else args.seed
    print(f"model:     {facts['name']} ({model.count_params():,} parameters, input "
          f"{tuple(model.inputs[0].shape[1:])}) from {facts['kind']} {facts.get('path', '')}")

    train = test = None
    metadata: Dict[str, Any] = {"model": facts["name"], "source": facts.get("path")}
    if dataset:
        from keras_cnns.data import load_splits

        h, _, c = model.inputs[0].shape[1:]
        splits = load_splits(dataset, batch_size=128, image_size=int(h), channels=int(c),
                             seed=int(seed), data_dir=args.data_dir, shuffle=False)
        metadata.update(splits.metadata())
        test = _arrays(splits.val, args.max_examples)
        train = _arrays(splits.train, args.max_examples)
        print(f"data:      {dataset} (seed {seed}): {len(test[0])} held-out images, "
              f"{len(train[0])} training images for calibration / fine-tuning")

    if args.format in ("savedmodel", "both"):
        from keras_cnns.export import saved_model

        path = saved_model(model, base_dir=args.export_dir, version=args.version,
                           model_name=facts["name"], input_dtype=args.input_dtype,
                           metadata=metadata if dataset else None)
        print(f"SavedModel: {path}")
    if args.format in ("tflite", "both"):
        output = args.output or os.path.join("exports", facts["name"])
        print(f"TFLite:    {', '.join(variants)} -> {output}/")
        rows = tflite_report(model, output, variants, test=test, train=train,
                             name=facts["name"], latency_runs=args.latency_runs,
                             fine_tune_epochs=args.fine_tune_epochs,
                             qat_epochs=args.qat_epochs)
        keras_acc = rows[0].get("keras_accuracy") if rows else None
        print()
        print(format_report(rows, keras_accuracy=keras_acc))
        print(f"\n(batch-1 latency: median of {args.latency_runs} invocations, 1 thread, "
              "tf.lite.Interpreter with its default XNNPACK delegate; report.json in "
              f"{output}/)")
    return 0
