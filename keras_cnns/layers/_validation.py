"""Argument checks shared by the layer library (private)."""

from __future__ import annotations


def check_positive_int(arg, value, allow_none=False):
    """Return ``value`` if it is a positive ``int`` (or ``None`` when allowed), else raise.

    Raises:
        ValueError: ``value`` is not a positive integer. The message names ``arg``.
    """
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        kind = "None or a positive integer" if allow_none else "a positive integer"
        raise ValueError(f"`{arg}` must be {kind}. Received: {arg}={value!r}")
    return value


def check_pair(arg, value):
    """Normalise an int or a pair of positive ints to a 2-tuple.

    Raises:
        ValueError: not a positive int nor a pair of them.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        pair = tuple(value)
    except TypeError:
        pair = None
    if (pair is None or len(pair) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair)):
        raise ValueError(f"`{arg}` must be a positive integer or a pair of them. Received: {arg}={value!r}")
    return pair


def check_float(arg, value, low=None, high=None, low_inclusive=True, high_inclusive=True):
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


def sub(name, suffix):
    """``f"{name}_{suffix}"``, or ``None`` when ``name`` is ``None`` (Keras then auto-names)."""
    return None if name is None else f"{name}_{suffix}"
