"""Argument checks shared by the layer library (private)."""

from __future__ import annotations

from keras_cnns._checks import check_pair, check_positive_int

__all__ = ["check_pair", "check_positive_int", "check_float", "sub"]


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
