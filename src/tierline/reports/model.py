"""The document model every report is built from: renderer-independent, plain data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

Cell = str | int | float | None


@dataclass(frozen=True)
class Stamp:
    """What an answer rests on: one (vintage, reform) per side compared, and the as-of date."""

    vintages: tuple[str, ...]
    reforms: tuple[str | None, ...]
    as_of: dt.date

    def sides(self) -> list[str]:
        return [f"{v} + reform {r}" if r else v for v, r in zip(self.vintages, self.reforms, strict=True)]

    def line(self) -> str:
        """The line printed on every page."""
        reforms = ", ".join(r for r in self.reforms if r) or "none"
        vintages = " vs ".join(dict.fromkeys(self.vintages))
        return f"Vintage {vintages} · reform {reforms} · as of {self.as_of.isoformat()}"

    def as_dict(self) -> dict[str, Any]:
        return {"vintages": list(self.vintages), "reforms": list(self.reforms), "as_of": self.as_of.isoformat()}


@dataclass(frozen=True)
class Table:
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    numeric: tuple[bool, ...] = ()  # per column: right-aligned number (default: inferred from the cells)


@dataclass(frozen=True)
class Chart:
    """A self-contained SVG document (no external references, no scripts)."""

    title: str
    svg: str


@dataclass(frozen=True)
class Citation:
    cite: str  # e.g. "15 CFR 740.27(b)" or "90 FR 4544"
    used_for: str  # what the report used it for


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    charts: tuple[Chart, ...] = ()


@dataclass(frozen=True)
class Report:
    kind: str  # "comparison", "pathways" or "projection"
    title: str
    stamp: Stamp
    summary: tuple[str, ...] = ()
    sections: tuple[Section, ...] = ()
    citations: tuple[Citation, ...] = ()
    generated: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(microsecond=0))
