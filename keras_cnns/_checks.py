"""Argument checks shared by every subpackage (private; imports nothing from keras_cnns).

The one module of generic checks: ops, layers, blocks, models, data, training, export and tuning
all use these (:mod:`keras_cnns.models._validation` keeps only the builder contract's checks,
built from them). Every failure is a ``ValueError`` whose message names the argument, says what is
allowed and ends with ``Received: arg=value`` (the keras.applications convention). Integers may
be Python or NumPy integers (never bools); checked integers are returned as Python ``int``.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Optional, Tuple

__all__ = [
    "check_bool",
    "check_choice",
    "check_divisible",
    "check_float",
    "check_pair",
    "check_positive_float",
    "check_positive_int",
    "check_probability",
    "check_survival_prob",
    "fail",
    "is_int",
]


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


def check_bool(arg: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (not merely truthy), else ValueError."""
    if not isinstance(value, bool):
        fail(arg, "must be True or False", value)
    return value


def check_positive_float(arg: str, value: Any, maximum: Optional[float] = None) -> float:
    """A finite number > 0 (and <= ``maximum`` when given)."""
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and value == value  # not NaN
        and value > 0
        and value != float("inf")
        and (maximum is None or value <= maximum)
    )
    if not ok:
        upper = f" and <= {maximum}" if maximum is not None else ""
        fail(arg, f"must be a finite number > 0{upper}", value)
    return float(value)


def check_probability(arg: str, value: Any, *, allow_one: bool = False) -> float:
    """A number in ``[0, 1)`` (``[0, 1]`` with ``allow_one``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value
    if ok:
        ok = 0.0 <= value <= 1.0 if allow_one else 0.0 <= value < 1.0
    if not ok:
        fail(arg, "must be a number in [0, 1]" if allow_one else "must be a number in [0, 1)", value)
    return float(value)


def check_survival_prob(arg: str, value: Any, allow_none: bool = True) -> Optional[float]:
    """A survival probability in ``(0, 1]`` (``None`` = no stochastic depth when allowed)."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and 0.0 < value <= 1.0
    if not ok:
        fail(arg, "must be None or a survival probability in (0, 1]" if allow_none
             else "must be a survival probability in (0, 1]", value)
    return float(value)


def check_float(arg: str, value: Any, low: Optional[float] = None, high: Optional[float] = None,
                low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Return ``float(value)`` if it is a real number within the bounds, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{arg}` must be a number. Received: {arg}={value!r}")
    v = float(value)
    bad = v != v  # NaN
    if low is not None:
        bad = bad or (v < low if low_inclusive else v <= low)
    if high is not None:
        bad = bad or (v > high if high_inclusive else v >= high)
    if bad:
        lo = "" if low is None else ("[" if low_inclusive else "(") + f"{low}"
        hi = "" if high is None else f"{high}" + ("]" if high_inclusive else ")")
        raise ValueError(f"`{arg}` must be in {lo or '(-inf'}, {hi or 'inf)'}. Received: {arg}={value!r}")
    return v


def check_choice(arg: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``, else ValueError listing them."""
    choices = list(choices)
    if value not in choices:
        fail(arg, f"must be one of {choices}", value)
    return value


def check_divisible(arg: str, value: int, divisor: int, divisor_arg: str) -> None:
    """ValueError unless ``value`` (argument ``arg``) is a multiple of ``divisor`` (``divisor_arg``)."""
    if value % divisor != 0:
        raise ValueError(
            f"`{arg}` ({value}) must be divisible by `{divisor_arg}` ({divisor}). "
            f"Received: {divisor_arg}={divisor!r}"
        )
