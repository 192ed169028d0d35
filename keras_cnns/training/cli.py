"""``keras-cnns train``: the command-line front of :func:`keras_cnns.training.train`."""

from __future__ import annotations

import argparse
import ast
from typing import Any, Dict

from keras_cnns.training.distribute import STRATEGIES
from keras_cnns.training.loop import DEFAULT_DATASET, DEFAULT_MODEL
from keras_cnns.training.recipe import JIT, OPTIMIZERS, PRECISIONS, SCHEDULES

__all__ = ["add_arguments", "parse_model_args", "run"]

# Python argument -> CLI flag, for error messages raised by train()/Recipe.
FLAGS = {
    "model_or_name": "MODEL", "data": "--dataset", "epochs": "--epochs",
    "batch_size": "--batch-size", "image_size": "--image-size", "learning_rate": "--lr",
    "optimizer": "--optimizer", "seed": "--seed", "export_dir": "--export-dir",
    "data_dir": "--data-dir", "warmup_epochs": "--warmup-epochs",
    "weight_decay": "--weight-decay", "label_smoothing": "--label-smoothing",
    "mixup": "--mixup", "precision": "--precision", "jit_compile": "--jit",
    "schedule": "--schedule", "checkpoint_dir": "--checkpoint-dir", "resume": "--resume",
    "strategy": "--strategy", "recipe": "--recipe", "steps_per_epoch": "--steps-per-epoch",
    "augment": "--augment", "tensorboard_dir": "--tensorboard-dir",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``keras-cnns train``'s arguments to ``parser``."""
    parser.description = (
        "Train a registered model on a dataset with a recipe (the model's default, its paper's, "
        "or flags on top), checkpoint every epoch, print top-1/top-5 held-out accuracy, images/s "
        "and wall time, export the best epoch as a SavedModel. With no arguments: SqueezeNet 1.1 "
        "with simple bypass on the embedded digits.")
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL, metavar="MODEL",
                        help=f"registered model name (default: {DEFAULT_MODEL}; see "
                             "`keras-cnns list`)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET,
                        help="digits (embedded, default), cifar10, cifar100, svhn_cropped, mnist, "
                             "fashion_mnist, imagenette, imagenet2012, or folder:/path/to/images")
    parser.add_argument("--data-dir", default=None,
                        help="tensorflow-datasets data directory (prepared offline)")
    parser.add_argument("--recipe", default=None,
                        help="'default' (the model's default), 'paper' (its paper's recipe) or a "
                             "named recipe, e.g. cifar_resnet; the flags below override it")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=None, help="global batch size")
    parser.add_argument("--image-size", type=int, default=None,
                        help="square input side (default: the data's size, at least 64 for "
                             "the digits)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--optimizer", default=None, metavar="{" + ",".join(OPTIMIZERS) + "}")
    parser.add_argument("--schedule", default=None, metavar="{" + ",".join(SCHEDULES) + "}")
    parser.add_argument("--warmup-epochs", type=float, default=None,
                        help="epochs of linear learning-rate warm-up")
    parser.add_argument("--weight-decay", type=float, default=None, help="weight decay")
    parser.add_argument("--label-smoothing", type=float, default=None)
    parser.add_argument("--mixup", type=float, default=None, help="mixup alpha (0: off)")
    parser.add_argument("--augment", default=None, choices=("auto", "on", "off"),
                        help="the papers' augmentation for the dataset (default auto: on in "
                        "training, off on the digits)")
    parser.add_argument("--precision", default=None, metavar="{" + ",".join(PRECISIONS) + "}")
    parser.add_argument("--jit", default=None, metavar="{" + ",".join(JIT) + "}",
                        help="XLA (default auto: off on CPU and with the custom op)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--checkpoint-dir", default=None,
                        help="write a checkpoint every epoch (and the best) here")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --checkpoint-dir from its newest valid "
                             "checkpoint")
    parser.add_argument("--tensorboard-dir", default=None,
                        help="TensorBoard logs (default: <checkpoint-dir>/logs)")
    parser.add_argument("--strategy", default="none", metavar="{" + ",".join(STRATEGIES) + "}",
                        help="tf.distribute strategy; multiworker reads TF_CONFIG")
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="cap the steps per epoch (quick runs)")
    parser.add_argument("--export-dir", default="saved_models",
                        help="SavedModel repository root (default: %(default)s)")
    parser.add_argument("--no-export", action="store_true", help="do not export a SavedModel")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        dest="model_args",
                        help="builder argument, repeatable; VALUE is a Python literal (e.g. "
                             "--model-arg alpha=0.5 --model-arg bypass=complex)")


def parse_model_args(items) -> Dict[str, Any]:
    """``["alpha=0.5", "bypass=simple"]`` -> ``{"alpha": 0.5, "bypass": "simple"}``."""
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


def _flagged(exc: ValueError) -> ValueError:
    """The error with Python argument names replaced by the CLI flags."""
    msg = str(exc)
    for arg, flag in FLAGS.items():
        msg = msg.replace(f"`{arg}`", f"`{flag}`").replace(f"Received: {arg}=",
                                                           f"Received: {flag}=")
    return type(exc)(msg)


def run(args: argparse.Namespace) -> int:
    """Run ``keras-cnns train``; invalid flag values raise ``ValueError`` naming the flag."""
    from keras_cnns.training.distribute import make_strategy
    from keras_cnns.training.loop import train

    try:
        # first: MultiWorkerMirroredStrategy must exist before any other TensorFlow operation
        strategy = make_strategy(args.strategy)
        augment = {None: None, "auto": None, "on": True, "off": False}[args.augment]
        result = train(
            args.model, args.dataset, recipe=args.recipe, strategy=strategy,
            model_kwargs=parse_model_args(args.model_args), image_size=args.image_size,
            seed=args.seed, data_dir=args.data_dir, checkpoint_dir=args.checkpoint_dir,
            resume=args.resume, tensorboard_dir=args.tensorboard_dir,
            export_dir=None if args.no_export else args.export_dir,
            steps_per_epoch=args.steps_per_epoch, verbose=0 if args.quiet else 1,
            epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
            optimizer=args.optimizer, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
            weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
            mixup=args.mixup, augment=augment, precision=args.precision, jit_compile=args.jit)
    except ValueError as exc:
        raise _flagged(exc) from None
    r = result
    n_train = r.info.get("train_size")
    print()
    print(f"model:               {r.run_name} ({r.model.count_params():,} parameters)")
    print(f"held-out top-1:      {r.val_accuracy:.4f}   top-5: {r.val_top5_accuracy:.4f} "
          f"({r.info.get('val_size')} {r.info.get('dataset')} images never trained on)")
    print(f"best epoch:          {r.best_epoch} of {r.recipe.epochs}"
          + (f" (resumed after epoch {r.resumed_from})" if r.resumed_from else ""))
    print(f"training speed:      {r.images_per_second:.1f} images/s"
          f" ({n_train} images per epoch)")
    print(f"wall time:           {r.wall_time_s:.1f} s (data, build, {r.recipe.epochs} epochs, "
          "evaluation, export)")
    print(f"checkpoints:         {r.checkpoint_dir or '(none: pass --checkpoint-dir)'}")
    print(f"SavedModel:          {r.export_path or '(not exported)'}")
    if r.export_path:
        from keras_cnns.export import serving_commands

        print("serve it with:       " + "\n                     ".join(
            serving_commands(r.export_path)))
    return 0
