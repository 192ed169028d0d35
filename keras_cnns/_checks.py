"""Argument checks shared by every subpackage (private; imports nothing from keras_cnns).

Every failure is a ``ValueError`` whose message names the argument, says what is allowed and
ends with ``Received: arg=value`` (the keras.applications convention). Integers may be Python or
NumPy integers (never bools); checked integers are returned as Python ``int``.
"""

from __future__ import annotations

import numbers
from typing import Any, Optional, Tuple


def fail(arg: str, allowed: str, value: Any) -> None:
    """Raise the library's standard ``ValueError`` for argument ``arg``."""
    raise ValueError(f"`{arg}` {allowed}. Received: {arg}={value!r}")


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(arg: str, value: Any, allow_none: bool = False) -> Optional[int]:
    """``int(value)`` if it is a positive integer (or ``None`` when allowed), else ValueError."""
    if value is None and allow_none:
        return None
    if not is_int(value) or value < 1:
        fail(arg, "must be None or a positive integer" if allow_none else
             "must be a positive integer", value)
    return int(value)


def check_pair(arg: str, value: Any) -> Tuple[int, int]:
    """A positive integer or a pair of them, as a pair of ``int``; ValueError otherwise."""
    if is_int(value):
        pair: Tuple[Any, ...] = (value, value)
    else:
        try:
            pair = tuple(value)
        except TypeError:
            pair = ()
    if len(pair) != 2 or not all(is_int(v) and v >= 1 for v in pair):
        fail(arg, "must be a positive integer or a pair of positive integers", value)
    return int(pair[0]), int(pair[1])
