"""``keras-cnns profile NAME``: build a registered model (shapes only, no weights) and print
:func:`keras_cnns.profiler.profile` of it as a table, JSON or CSV.

The profiler's engine (:mod:`keras_cnns.profiler`) profiles any Keras model and needs no registry;
this command is what joins it to :mod:`keras_cnns.models`.
"""

from __future__ import annotations

import argparse
import inspect
import json
from typing import Any, Dict

from keras_cnns.models import create_model, model_info, shapes_only
from keras_cnns.profiler import profile

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``keras-cnns profile``."""
    parser.add_argument("name", metavar="NAME", help="registered model name (see `keras-cnns list`)")
    parser.add_argument("--input-size", type=int, default=None, metavar="S",
                        help="square input side (default: the model's native size)")
    parser.add_argument("--alpha", type=float, default=None, help="width multiplier (MobileNet-like models)")
    parser.add_argument("--rho", type=float, default=None,
                        help="resolution multiplier: input side = round(native * rho) (MobileNet)")
    parser.add_argument("--classes", type=int, default=None, help="number of classes (default 1000)")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--bytes-per-element", type=int, default=4,
                        help="bytes per activation element (default 4, float32)")
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table",
                        help="output format (default: table)")


def run(args) -> int:
    """Build the named model and print its profile; returns the exit status."""
    info = model_info(args.name)
    kwargs: Dict[str, Any] = {}
    accepted = inspect.signature(info.builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    for arg, flag in (("alpha", "--alpha"), ("rho", "--rho")):
        value = getattr(args, arg, None)
        if value is None:
            continue
        if arg not in accepted and not takes_any:
            raise ValueError(f"Model {info.name!r} has no `{arg}` ({flag}). Received: {arg}={value!r}")
        kwargs[arg] = value
    if args.classes is not None:
        kwargs["classes"] = args.classes
    if args.input_size is not None:
        channels = info.default_input_shape[-1]
        kwargs["input_shape"] = (args.input_size, args.input_size, channels)
    with shapes_only():  # the profile reads shapes only: no weights are allocated
        model = create_model(info.name, **kwargs)
    p = profile(model, batch_size=args.batch_size, bytes_per_element=args.bytes_per_element)
    if args.format == "json":
        print(json.dumps(p.to_dict(), indent=2))
    elif args.format == "csv":
        print(p.to_csv(), end="")
    else:
        print(p.to_table())
    return 0
