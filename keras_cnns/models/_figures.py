"""The reference figures of the registered models, read from ``reference_figures.csv``.

Each row gives, for one registered name, the exact parameter count a correct build reproduces,
its multiply-accumulates and the parameter count printed in its paper, each with its source
(torchvision's weights metadata, keras.applications, the paper's table, the authors' code or a
hand count written out in the row). The registry fills ``ModelInfo`` from this file, and the
tests compare built models against it, so no figure is typed twice.

Quoted figures (``"0.714e9"``, ``"0.27e6"``) match a measured value within half a unit of their
last quoted digit, so a count written in full (``"1248424"``) matches only exactly.
"""

from __future__ import annotations

import csv
import dataclasses
import decimal
import functools
import io
from typing import Dict, Optional

__all__ = ["Quoted", "ReferenceFigures", "reference_figures"]

_FILE = "reference_figures.csv"
_COLUMNS = ("name", "params", "params_kind", "params_source", "macs", "macs_rel_tol",
            "macs_source", "paper_params", "paper_counts", "paper_source")


@dataclasses.dataclass(frozen=True)
class Quoted:
    """A figure as a source quotes it: its text (``"4.089e9"``) and the tolerance that the
    quoted digits imply (half a unit of the last one), or a relative tolerance the row gives."""

    text: str
    rel_tol: Optional[float] = None

    @property
    def value(self) -> float:
        return float(self.text)

    @property
    def tolerance(self) -> float:
        """The largest absolute difference that still matches the figure."""
        if self.rel_tol is not None:
            return self.rel_tol * abs(self.value)
        # "0.714e9" = 714e6: half a unit of the 6th power; "1248424": 0.5, i.e. exact for counts
        return 0.5 * 10.0 ** decimal.Decimal(self.text).as_tuple().exponent

    def matches(self, measured: float) -> bool:
        return abs(float(measured) - self.value) <= self.tolerance * (1 + 1e-12)


@dataclasses.dataclass(frozen=True)
class ReferenceFigures:
    """One row of ``reference_figures.csv``."""

    name: str
    params: Optional[int]
    params_kind: str
    params_source: str
    macs: Optional[Quoted]
    macs_source: str
    paper_params: Optional[Quoted]
    paper_counts: str  # "trainable" or "weights" (without BatchNorm's gamma and beta)
    paper_source: str

    def note(self) -> str:
        """The sources in one line (``ModelInfo.reference_note``)."""
        parts = []
        if self.params is not None:
            parts.append(f"params ({self.params_kind}): {self.params_source}")
        if self.macs is not None:
            parts.append(f"MACs {self.macs.text}: {self.macs_source}")
        if self.paper_params is not None:
            parts.append(f"paper: {self.paper_params.text} params, {self.paper_source}")
        return "; ".join(parts)


def _parse(text: str) -> Dict[str, ReferenceFigures]:
    rows = csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#"))
    if tuple(rows.fieldnames or ()) != _COLUMNS:
        raise ValueError(f"{_FILE}: columns must be {_COLUMNS}, found {rows.fieldnames}")
    table = {}
    for row in rows:
        name = row["name"].strip()
        if name in table:
            raise ValueError(f"{_FILE}: {name!r} appears twice")
        if row["params_kind"] not in ("trainable", "total"):
            raise ValueError(f"{_FILE}: {name}: params_kind must be trainable or total")
        if row["paper_counts"] not in ("", "trainable", "weights"):
            raise ValueError(f"{_FILE}: {name}: paper_counts must be blank, trainable or weights")
        rel = float(row["macs_rel_tol"]) if row["macs_rel_tol"] else None
        for value, source, what in ((row["params"], row["params_source"], "params"),
                                    (row["macs"], row["macs_source"], "macs"),
                                    (row["paper_params"], row["paper_source"], "paper_params")):
            if value and not source:
                raise ValueError(f"{_FILE}: {name}: {what} is given without its source")
        table[name] = ReferenceFigures(
            name=name,
            params=int(row["params"]) if row["params"] else None,
            params_kind=row["params_kind"],
            params_source=row["params_source"],
            macs=Quoted(row["macs"], rel) if row["macs"] else None,
            macs_source=row["macs_source"],
            paper_params=Quoted(row["paper_params"]) if row["paper_params"] else None,
            paper_counts=row["paper_counts"] or "trainable",
            paper_source=row["paper_source"],
        )
    return table


@functools.lru_cache(maxsize=1)
def reference_figures() -> Dict[str, ReferenceFigures]:
    """``{name: ReferenceFigures}`` for every row of the packaged ``reference_figures.csv``."""
    from importlib import resources

    return _parse(resources.files(__package__).joinpath(_FILE).read_text(encoding="utf-8"))
