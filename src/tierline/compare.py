"""Compare: a transaction or an order book under two or more rule vintages or reforms.

A *side* is a rule vintage, optionally with a scenario reform (``ai-diffusion+poland-tier1``). The
first side is the baseline; every other side is compared with it. A line *changes* when its licence
requirement, authorization, review policy or the allowance it draws on differs; each change names
the rule (and citation) that decided the line on both sides, and for a single transaction the first
step of the trace where the two explanations part. Book comparisons screen the file once per side
with the vectorized engine (each side accumulates its own allowances from the same starting state)
and stream: changed lines go to a file, aggregates by country and by outcome are kept.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from tierline.allowances import AllowanceState
from tierline.determination.engine import Determination, LineDetermination, determine
from tierline.determination.model import Transaction
from tierline.errors import TierlineError
from tierline.policy.vintages import get_vintage
from tierline.reforms import Reform, get_reform
from tierline.screen.engine import Screener, Snapshot
from tierline.screen.read import BAD_SCHEMA
from tierline.screen.run import CHUNK, FileWriter, Progress, Result, rejects_path, screen_batches, starting_snapshot
from tierline.trace import TraceStep

OUTCOME = ("license_required", "authorization", "review_policy", "draw_account")
LINE_KEYS = ("line", "line_id", "date", "destination", "tier", "chip", "quantity")
SIDE_FIELDS = (*OUTCOME, "needs_license", "draw_tpp", "rule", "citation")
CHANGED_SCHEMA: dict[str, Any] = {
    "line": pl.Int64,
    "line_id": pl.String,
    "date": pl.Date,
    "destination": pl.String,
    "chip": pl.String,
    "quantity": pl.Int64,
    "baseline": pl.String,
    "side": pl.String,
    **{
        f"{end}_{name}": kind
        for name, kind in (
            ("tier", pl.Int64),
            ("license_required", pl.Boolean),
            ("authorization", pl.String),
            ("review_policy", pl.String),
            ("draw_account", pl.String),
            ("draw_tpp", pl.Float64),
            ("rule", pl.String),
            ("citation", pl.String),
        )
        for end in ("from", "to")
    },
}


@dataclass(frozen=True)
class Side:
    """A rule vintage, optionally under a scenario reform."""

    vintage: str
    reform: Reform | None = None

    @property
    def label(self) -> str:
        return f"{self.vintage}+{self.reform.name}" if self.reform is not None else self.vintage

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "vintage": self.vintage, "reform": self.reform.name if self.reform else None}


def parse_side(text: str, field_name: str = "side") -> Side:
    """``VINTAGE`` or ``VINTAGE+SCENARIO`` (a stored or bundled reform), each checked."""
    vintage, _, scenario = text.strip().partition("+")
    try:
        get_vintage(vintage)
    except TierlineError as exc:
        raise TierlineError(field_name, f"{text!r}: {exc.reason}") from None
    try:
        return Side(vintage, get_reform(scenario) if scenario else None)
    except TierlineError as exc:
        raise TierlineError(field_name, f"{text!r}: {exc.reason}") from None


def _sides(sides: list[Side]) -> list[Side]:
    if len(sides) < 2:
        raise TierlineError("sides", "a comparison needs at least two sides (vintages or VINTAGE+SCENARIO)")
    labels = [s.label for s in sides]
    if len(set(labels)) != len(labels):
        raise TierlineError("sides", f"a side is listed twice: {', '.join(labels)}")
    return sides


# ---- one transaction ------------------------------------------------------------------------------
def _outcome(line: LineDetermination) -> dict[str, Any]:
    last = line.trace[-1]
    return {
        "license_required": line.license_required,
        "authorization": line.authorization,
        "review_policy": line.review_policy,
        "draw_account": line.draws[0].account if line.draws else None,
        "draw_tpp": float(line.draws[0].tpp) if line.draws else None,
        "rule": last.rule,
        "citation": last.citation,
    }


def _step(step: TraceStep | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {"rule": step.rule, "citation": step.citation, "test": step.test, "result": step.result}


def divergence(a: list[TraceStep], b: list[TraceStep]) -> dict[str, Any] | None:
    """The first step where two explanations part: a different rule, or the same rule answering
    differently (None when the traces agree step for step)."""
    for i in range(max(len(a), len(b))):
        x, y = (a[i] if i < len(a) else None), (b[i] if i < len(b) else None)
        if x is None or y is None or (x.rule, x.result) != (y.rule, y.result):
            return {"step": i + 1, "from": _step(x), "to": _step(y)}
    return None


def compare_transaction(tx: Transaction, sides: list[Side], state: AllowanceState | None = None) -> dict[str, Any]:
    """`tx` determined under each side (the transaction's own vintage is replaced by the side's), and
    per line what changed against the first side and which rule made the difference."""
    sides = _sides(sides)
    dets: list[Determination] = [
        determine(tx.model_copy(update={"vintage": side.vintage}), state, side.reform) for side in sides
    ]
    lines = []
    for i in range(len(tx.items)):
        base = dets[0].lines[i]
        outcomes = [_outcome(det.lines[i]) for det in dets]
        changes = []
        for side, det, outcome in zip(sides[1:], dets[1:], outcomes[1:], strict=True):
            fields = {k: [outcomes[0][k], outcome[k]] for k in OUTCOME if outcomes[0][k] != outcome[k]}
            if fields:
                changes.append(
                    {"side": side.label, "fields": fields, "difference": divergence(base.trace, det.lines[i].trace)}
                )
        lines.append(
            {
                "index": i,
                "item": base.as_dict()["item"],
                "outcomes": {s.label: o for s, o in zip(sides, outcomes, strict=True)},
                "changed": bool(changes),
                "changes": changes,
            }
        )
    return {
        "kind": "transaction",
        "as_of": tx.date.isoformat(),
        "baseline": sides[0].label,
        "sides": [s.as_dict() for s in sides],
        "changed_lines": sum(1 for line in lines if line["changed"]),
        "lines": lines,
        "determinations": {s.label: d.as_dict() for s, d in zip(sides, dets, strict=True)},
    }


# ---- an order book --------------------------------------------------------------------------------
@dataclass
class BookComparison:
    """What changed between the sides over a whole book."""

    sides: list[Side]
    result: Result
    first_date: dt.date | None = None
    window_start: dt.date | None = None  # lines dated before it are outside the comparison
    outside: int = 0
    changed_lines: int = 0  # lines that change under at least one side
    changed: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CHANGED_SCHEMA))  # first `keep`
    by_country: pl.DataFrame | None = None
    transitions: pl.DataFrame | None = None
    by_rule: pl.DataFrame | None = None
    per_side: pl.DataFrame | None = None
    out: Path | None = None
    rejects: Path | None = None

    @property
    def refused(self) -> bool:
        return self.result.bad_count > 0 and self.result.screened == 0

    def as_dict(self, rows: int = 100) -> dict[str, Any]:
        def records(frame: pl.DataFrame | None) -> list[dict[str, Any]]:
            return [] if frame is None else frame.to_dicts()

        return {
            "kind": "order_book",
            "baseline": self.sides[0].label,
            "sides": [s.as_dict() for s in self.sides],
            "starting_state_as_of": self.first_date.isoformat() if self.first_date else None,
            "lines": self.result.lines + self.outside,
            "compared_from": self.window_start.isoformat() if self.window_start else None,
            "outside_window": self.outside,
            "screened": self.result.screened,
            "rejected": self.result.bad_count,
            "changed_lines": self.changed_lines,
            "per_side": records(self.per_side),
            "by_country": records(self.by_country),
            "transitions": records(self.transitions),
            "by_rule": records(self.by_rule),
            "changed": records(self.changed.head(rows)),
            "out": str(self.out) if self.out else None,
            "rejects": str(self.rejects) if self.rejects else None,
        }


class _Differ:
    """Receives each side's decisions batch by batch (all sides of a batch in turn) and keeps the
    changed lines and the aggregates."""

    def __init__(self, sides: list[Side], writer: FileWriter | None, keep: int) -> None:
        self.sides = sides
        self.writer = writer
        self.keep = keep
        self.pending: list[pl.DataFrame] = []
        self.kept: list[pl.DataFrame] = []
        self.kept_rows = 0
        self.changed_lines = 0
        self.parts: dict[str, list[pl.DataFrame]] = {"country": [], "transitions": [], "rules": [], "side": []}

    def sink(self, frame: pl.DataFrame) -> None:
        self.pending.append(frame)
        if len(self.pending) == len(self.sides):
            self._batch(self.pending)
            self.pending = []

    def _batch(self, frames: list[pl.DataFrame]) -> None:
        base = frames[0]
        for side, frame in zip(self.sides, frames, strict=True):
            self.parts["side"].append(
                frame.group_by("authorization", "review_policy")
                .agg(pl.len().alias("lines"))
                .with_columns(pl.lit(side.label).alias("side"))
            )
            self.parts["country"].append(
                frame.group_by("destination").agg(
                    pl.lit(side.label).alias("side"),
                    pl.len().alias("lines"),
                    pl.col("needs_license").sum().alias("needs_license"),
                    pl.col("draw_tpp").sum().alias("draw_tpp"),
                )
            )
        changed_any = None
        for side, frame in zip(self.sides[1:], frames[1:], strict=True):
            differs = functools.reduce(operator.or_, (base[c].ne_missing(frame[c]) for c in OUTCOME))
            diff = pl.DataFrame(
                {
                    **{k: base[k] for k in ("line", "line_id", "date", "destination", "chip", "quantity")},
                    "baseline": pl.repeat(self.sides[0].label, len(base), eager=True),
                    "side": pl.repeat(side.label, len(base), eager=True),
                    **{
                        f"from_{c}": base[c]
                        for c in (*OUTCOME[:3], "tier", "draw_account", "draw_tpp", "rule", "citation")
                    },
                    **{
                        f"to_{c}": frame[c]
                        for c in (*OUTCOME[:3], "tier", "draw_account", "draw_tpp", "rule", "citation")
                    },
                }
            ).filter(differs)
            changed_any = differs if changed_any is None else changed_any | differs
            if len(diff) == 0:
                continue
            diff = diff.select(list(CHANGED_SCHEMA))
            if self.writer is not None:
                self.writer.write(diff)
            if self.kept_rows < self.keep:
                self.kept.append(diff.head(self.keep - self.kept_rows))
                self.kept_rows += len(self.kept[-1])
            self.parts["transitions"].append(
                diff.group_by(
                    "side", "from_authorization", "to_authorization", "from_review_policy", "to_review_policy"
                ).agg(pl.len().alias("lines"))
            )
            self.parts["rules"].append(
                diff.group_by("side", "from_rule", "from_citation", "to_rule", "to_citation").agg(
                    pl.len().alias("lines")
                )
            )
            self.parts["country"].append(
                diff.group_by("destination").agg(pl.col("side").first(), pl.len().alias("changed"))
            )
        if changed_any is not None:
            self.changed_lines += int(changed_any.sum())

    def frames(self) -> dict[str, pl.DataFrame | None]:
        def total(parts: list[pl.DataFrame], keys: list[str], sort: list[str]) -> pl.DataFrame | None:
            if not parts:
                return None
            return (
                pl.concat(parts, how="diagonal_relaxed")
                .group_by(keys)
                .agg(pl.exclude(keys).sum())
                .sort(sort, descending=[True] + [False] * (len(sort) - 1), nulls_last=True)
            )

        countries = total(self.parts["country"], ["destination", "side"], ["lines", "destination", "side"])
        if countries is not None:
            if "changed" not in countries.columns:
                countries = countries.with_columns(pl.lit(0).alias("changed"))
            countries = countries.with_columns(pl.col("changed").fill_null(0)).sort(
                ["changed", "destination", "side"], descending=[True, False, False]
            )
        return {
            "by_country": countries,
            "transitions": total(
                self.parts["transitions"],
                ["side", "from_authorization", "to_authorization", "from_review_policy", "to_review_policy"],
                ["lines", "side"],
            ),
            "by_rule": total(
                self.parts["rules"], ["side", "from_rule", "from_citation", "to_rule", "to_citation"], ["lines", "side"]
            ),
            "per_side": total(self.parts["side"], ["side", "authorization", "review_policy"], ["lines", "side"]),
        }


class _Window:
    """Lines every side can answer: dated on or after the latest vintage's entry into force (a line
    before it is counted as outside the comparison, not refused). Each side sets the vintage, so a
    line's own vintage column is ignored."""

    def __init__(self, sides: list[Side]) -> None:
        self.start = max(get_vintage(s.vintage).in_force_from for s in sides)
        self.outside = 0

    def __call__(self, typed: pl.DataFrame) -> pl.DataFrame:
        inside = typed.filter(pl.col("date").is_null() | (pl.col("date") >= self.start))
        self.outside += len(typed) - len(inside)
        return inside.with_columns(pl.lit(None, dtype=typed.schema["vintage"]).alias("vintage"))


def compare_book(
    orders: Path,
    sides: list[Side],
    *,
    out: Path | None = None,
    state: AllowanceState | None = None,
    start: Snapshot | None = None,
    skip_invalid: bool = False,
    keep: int = 1000,
    chunk_size: int = CHUNK,
    progress: Progress | None = None,
) -> BookComparison:
    """Screen `orders` under every side from the same starting state (`start`, or `state` as of the
    book's first date) and report the lines whose outcome changes against the first side. Changed
    lines are written to `out` (CSV, Parquet or JSON Lines); the first `keep` are also returned."""
    sides = _sides(sides)
    snapshot = start if start is not None else starting_snapshot(state, orders)
    screeners = [Screener(snapshot, s.vintage, reform=s.reform) for s in sides]
    result = Result(vintage=sides[0].vintage, first_date=snapshot.as_of)
    writer = FileWriter(out) if out is not None else None
    differ = _Differ(sides, writer, keep)
    window = _Window(sides)
    try:
        rejects = screen_batches(
            orders,
            screeners,
            [differ.sink] * len(sides),
            result,
            skip_invalid=skip_invalid,
            chunk_size=chunk_size,
            progress=progress,
            prepare=window,
        )
    except BaseException:
        if writer is not None:
            writer.discard()
        raise
    comparison = BookComparison(sides, result, snapshot.as_of, window.start, window.outside)
    report = pl.concat(rejects) if rejects else pl.DataFrame(schema=BAD_SCHEMA)
    if len(report):
        comparison.rejects = rejects_path(out, orders)
        report.write_csv(comparison.rejects)
    if result.bad_count and not skip_invalid:
        if writer is not None:
            writer.discard()
        raise TierlineError(
            "orders",
            f"{result.bad_count} invalid line(s); nothing compared (report: {comparison.rejects}; "
            "use --skip-invalid to compare the valid lines)",
        )
    if writer is not None:
        writer.finish(CHANGED_SCHEMA)
        comparison.out = out
    comparison.changed_lines = differ.changed_lines
    if differ.kept:
        comparison.changed = pl.concat(differ.kept)
    for name, frame in differ.frames().items():
        setattr(comparison, name, frame)
    return comparison
