"""The builder contract's argument checks: the arguments every family shares
(:func:`check_common_args`) and the input shape a builder uses (:func:`resolve_input_shape`).

The generic checks they use live in :mod:`keras_cnns._checks`, the library's one module of them.
Every check runs before any layer is built and raises ``ValueError`` whose message names the
argument, says what is allowed, and ends with ``Received: arg=value`` (the keras.applications
convention).
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Optional, Sequence, Tuple

import keras

from keras_cnns._checks import check_bool, check_choice, check_positive_int, fail

__all__ = ["check_common_args", "resolve_input_shape"]


def check_common_args(
    *,
    include_top: Any,
    weights: Any,
    input_tensor: Any,
    pooling: Any,
    classes: Any,
    classifier_activation: Any,
    name: Any,
) -> None:
    """Checks of the builder contract shared by every family."""
    check_bool("include_top", include_top)
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            fail("weights", "must be None (random initialisation) or the path of a weights file", weights)
        path = os.fspath(weights)
        if path == "imagenet":
            fail(
                "weights",
                "must be None or a path to a weights file: keras_cnns ships no pretrained "
                "weights (train with `keras-cnns train` or load your own file)",
                weights,
            )
        if not os.path.isfile(path):
            fail("weights", "must be None or the path of an existing weights file", weights)
    if input_tensor is not None and not keras.backend.is_keras_tensor(input_tensor):
        fail("input_tensor", "must be None or a Keras tensor (e.g. the output of keras.Input)", input_tensor)
    check_choice("pooling", pooling, [None, "avg", "max"])
    check_positive_int("classes", classes)
    if classifier_activation is not None and not (
        isinstance(classifier_activation, str) or callable(classifier_activation)
    ):
        fail("classifier_activation", "must be None, an activation name or a callable", classifier_activation)
    if isinstance(classifier_activation, str):
        try:
            keras.activations.get(classifier_activation)
        except ValueError:
            fail("classifier_activation", "must be None, a known Keras activation name or a callable",
                 classifier_activation)
    if name is not None and (not isinstance(name, str) or not name):
        fail("name", "must be None or a non-empty string", name)


def resolve_input_shape(
    input_shape: Optional[Sequence[Optional[int]]],
    input_tensor: Any,
    *,
    default_shape: Tuple[int, int, int],
    min_size: int,
    require_static: bool = False,
    arg: str = "input_shape",
) -> Tuple[Optional[int], Optional[int], int]:
    """The ``(H, W, C)`` a builder uses, checked against the architecture's minimum size.

    ``input_shape`` wins; else the shape of ``input_tensor``; else ``default_shape``.

    Args:
        require_static: the architecture has a Flatten+FC head, so H and W must be known.

    Raises:
        ValueError: wrong rank, non-positive sizes, a side below ``min_size``, unknown sides when
            ``require_static``, or an ``input_tensor`` whose shape disagrees with ``input_shape``.
    """
    tensor_shape = None
    if input_tensor is not None:
        tensor_shape = tuple(input_tensor.shape[1:])
        if len(tensor_shape) != 3:
            fail("input_tensor", "must be a 4-D image tensor (batch, height, width, channels)",
                 tuple(input_tensor.shape))
    if input_shape is None:
        shape = tensor_shape if tensor_shape is not None else tuple(default_shape)
        arg = "input_shape" if tensor_shape is None else "input_tensor"
    else:
        if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__"):
            fail(arg, "must be a tuple (height, width, channels)", input_shape)
        shape = tuple(input_shape)
        if tensor_shape is not None and tuple(tensor_shape) != shape:
            fail("input_shape", f"must agree with the shape of `input_tensor` {tensor_shape}", input_shape)
    if len(shape) != 3:
        fail(arg, "must be a tuple (height, width, channels) of length 3", shape)
    h, w, c = shape
    for v in (h, w):
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0):
            fail(arg, "must have positive integer (or None) height and width", shape)
    if c is None or isinstance(c, bool) or not isinstance(c, numbers.Integral) or c <= 0:
        fail(arg, "must have a known, positive number of channels", shape)
    if require_static and (h is None or w is None):
        fail(arg, "must have static height and width: this architecture's head flattens its "
                  "feature map (use include_top=False for variable-size inputs)", shape)
    for v in (h, w):
        if v is not None and v < min_size:
            fail(arg, f"must have height and width >= {min_size} for this architecture", shape)
    return (None if h is None else int(h), None if w is None else int(w), int(c))
