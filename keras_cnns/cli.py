"""The ``keras-cnns`` command (also ``python -m keras_cnns``).

Subcommands:
    train [MODEL]    train a model (default: squeezenet1_1, simple bypass) on the embedded digits
                     data or a tensorflow-datasets dataset, report held-out accuracy, export a
                     SavedModel under saved_models/<model>/<version>/
    export SOURCE    a run's checkpoint, a .keras file or a model name to a TF Serving SavedModel
                     and/or TFLite variants (float32, float16, dynamic, int8, pruned, QAT int8)
                     with a size / latency / accuracy / agreement table
    profile NAME     per-layer output shape, parameters, multiply-adds and activation memory
    list [PATTERN]   registered model names
    info NAME        what the registry knows about a model
    info --env       the environment for a bug report (TF/Keras versions, oneDNN on/off, CPU
                     model and vector ISA, custom op compiled and loaded, CUDA visible)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence


def _quiet_tf(verbose: bool = False) -> None:
    """TensorFlow without its start-up noise unless ``verbose`` (see :mod:`keras_cnns._startup`;
    usually already done when the package was imported)."""
    if not verbose:
        from keras_cnns._startup import quiet_tensorflow_start

        quiet_tensorflow_start(force=True)


def _cmd_list(args) -> int:
    from keras_cnns import list_models

    for name in list_models(args.pattern):
        print(name)
    return 0


def _cmd_info(args) -> int:
    if args.env:
        from keras_cnns.environment import format_environment

        print(format_environment())
        if args.name is None:
            return 0
    if args.name is None:
        raise ValueError("`info` needs a model NAME (see `keras-cnns list`) or --env")
    from keras_cnns import model_info

    print(json.dumps(model_info(args.name).as_dict(feature_levels=True), indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from keras_cnns import training

    parser = argparse.ArgumentParser(
        prog="keras-cnns",
        description="Classic CNN architectures as Keras models: train, tune, export, profile, list. "
                    "--verbose (anywhere) shows TensorFlow's start-up log lines.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p_train = sub.add_parser("train", help="train a model and export a SavedModel")
    training.add_arguments(p_train)
    p_train.set_defaults(func=training.run)

    from keras_cnns.tuning import cli as tuning_cli

    p_tune = sub.add_parser("tune", help="search width/resolution multipliers under a budget")
    tuning_cli.add_arguments(p_tune)
    p_tune.set_defaults(func=tuning_cli.run)

    from keras_cnns.commands import export as export_cli

    p_export = sub.add_parser("export", help="SavedModel / TFLite variants with a size, "
                                             "latency and accuracy report")
    export_cli.add_arguments(p_export)
    p_export.set_defaults(func=export_cli.run)

    from keras_cnns.commands import profile as profile_cli

    p_prof = sub.add_parser("profile", help="per-layer params, mult-adds and activation memory")
    profile_cli.add_arguments(p_prof)
    p_prof.set_defaults(func=profile_cli.run)

    p_list = sub.add_parser("list", help="list registered model names")
    p_list.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'vgg*'")
    p_list.set_defaults(func=_cmd_list)

    p_info = sub.add_parser("info", help="registry facts about one model, or the environment")
    p_info.add_argument("name", nargs="?", default=None, help="a registered model name")
    p_info.add_argument("--env", action="store_true",
                        help="print the environment for a bug report (versions, oneDNN, CPU ISA, "
                             "custom op, CUDA)")
    p_info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    if verbose:
        argv.remove("--verbose")
    _quiet_tf(verbose)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:  # bad arguments: a message, not a traceback
        print(f"keras-cnns {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # e.g. a dataset that cannot be loaded offline
        from keras_cnns.data import DatasetUnavailableError

        if not isinstance(exc, DatasetUnavailableError):
            raise
        print(f"keras-cnns {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
