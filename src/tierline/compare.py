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
from tierline.reports.model import Chart, Citation, Report, Section, Stamp, Table
from tierline.screen.engine import Screener, Snapshot
from tierline.screen.run import CHUNK, FileWriter, Progress, Result, screen_batches, starting_snapshot, write_rejects
from tierline.trace import TraceStep

OUTCOME = ("license_required", "authorization", "review_policy", "draw_account")
LINE_KEYS = ("line", "line_id", "date", "destination", "tier", "chip", "quantity")
SIDE_FIELDS = (*OUTCOME, "needs_license", "draw_tpp", "rule", "citation")
COMPARED = (*LINE_KEYS, *SIDE_FIELDS)  # the decision columns a comparison reads
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
    rejects = screen_batches(
        orders,
        screeners,
        [differ.sink] * len(sides),
        result,
        skip_invalid=skip_invalid,
        chunk_size=chunk_size,
        progress=progress,
        prepare=window,
        writer=writer,
        columns=COMPARED,
    )
    comparison = BookComparison(sides, result, snapshot.as_of, window.start, window.outside)
    comparison.rejects = write_rejects(rejects, out, orders, result)
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


# ---- the comparison as a report -------------------------------------------------------------------

OUTCOME_ORDER = ("NLR", "AIA", "ACM", "NAC", "ACA", "UVEU", "NVEU", "LPP", "LICENSE")
REVIEW_SHORT = {
    "presumption_of_approval": "approval",
    "case_by_case": "case-by-case",
    "presumption_of_denial": "denial",
}
SIDE_COLOURS = ("#1f4e79", "#c0392b", "#2e8b57", "#b8860b", "#6a3d9a", "#138d90", "#7f7f7f")
REPORT_ROWS = 20
CHANGE_MEANING = (
    "A line changes when its licence requirement, authorization, review policy or the allowance it draws "
    "on differs from the baseline's. Each side is screened from the same starting allowances and draws as "
    "it goes, so an earlier change can move a later line's outcome too."
)


def outcome_label(authorization: str | None, review_policy: str | None) -> str:
    """``LPP``, ``LICENSE (approval)``: an authorization and, for a licence, its review policy."""
    if authorization is None:
        return "—"
    return f"{authorization} ({REVIEW_SHORT.get(review_policy, review_policy)})" if review_policy else authorization


def outcome_key(label: str) -> tuple[int, str]:
    """Sorts outcome labels in the order of `OUTCOME_ORDER` (unknown ones last)."""
    authorization, _, _ = label.partition(" (")
    rank = OUTCOME_ORDER.index(authorization) if authorization in OUTCOME_ORDER else len(OUTCOME_ORDER)
    return rank, label


def _transaction_payload(answer: dict[str, Any], rows: int) -> dict[str, Any]:
    """compare_transaction's answer in the shape of `BookComparison.as_dict` (the lines of one transaction
    as a small book), each changed line with the first step where the explanations part."""
    labels = [s["label"] for s in answer["sides"]]
    baseline = answer["baseline"]
    dets = answer["determinations"]
    per_side: dict[tuple[str, str, str | None], int] = {}
    countries: dict[tuple[str, str], dict[str, Any]] = {}
    transitions: dict[tuple[str, str, str, str | None, str | None], int] = {}
    rules: dict[tuple[str, str, str, str, str], int] = {}
    changed: list[dict[str, Any]] = []
    for line in answer["lines"]:
        for label in labels:
            o = line["outcomes"][label]
            key = (label, o["authorization"], o["review_policy"])
            per_side[key] = per_side.get(key, 0) + 1
            destination = dets[label]["destination"]
            row = countries.setdefault(
                (destination, label),
                {"destination": destination, "side": label, "lines": 0, "needs_license": 0, "draw_tpp": 0.0},
            )
            row["lines"] += 1
            row["needs_license"] += int(o["authorization"] == "LICENSE")
            row["draw_tpp"] += o["draw_tpp"] or 0.0
            row.setdefault("changed", 0)
        base = line["outcomes"][baseline]
        for change in line["changes"]:
            side = change["side"]
            o = line["outcomes"][side]
            move = (side, base["authorization"], o["authorization"], base["review_policy"], o["review_policy"])
            transitions[move] = transitions.get(move, 0) + 1
            rule = (side, base["rule"], base["citation"], o["rule"], o["citation"])
            rules[rule] = rules.get(rule, 0) + 1
            countries[(dets[side]["destination"], side)]["changed"] += 1
            item = dets[baseline]["lines"][line["index"]]
            changed.append(
                {
                    "line": line["index"] + 1,
                    "line_id": None,
                    "date": answer["as_of"],
                    "destination": dets[baseline]["destination"],
                    "chip": line["item"],
                    "quantity": item["quantity"],
                    "baseline": baseline,
                    "side": side,
                    "from_tier": dets[baseline]["tier"],
                    "to_tier": dets[side]["tier"],
                    **{f"from_{k}": v for k, v in base.items()},
                    **{f"to_{k}": v for k, v in o.items()},
                    "difference": change["difference"],
                }
            )
    return {
        "kind": "transaction",
        "baseline": baseline,
        "sides": answer["sides"],
        "as_of": answer["as_of"],
        "lines": len(answer["lines"]),
        "screened": len(answer["lines"]),
        "changed_lines": answer["changed_lines"],
        "per_side": [
            {"side": s, "authorization": a, "review_policy": r, "lines": n} for (s, a, r), n in per_side.items()
        ],
        "by_country": list(countries.values()),
        "transitions": [
            {
                "side": s,
                "from_authorization": fa,
                "to_authorization": ta,
                "from_review_policy": fr,
                "to_review_policy": tr,
                "lines": n,
            }
            for (s, fa, ta, fr, tr), n in sorted(transitions.items(), key=lambda kv: (-kv[1], kv[0][0]))
        ],
        "by_rule": [
            {"side": s, "from_rule": a, "from_citation": b, "to_rule": c, "to_citation": d, "lines": n}
            for (s, a, b, c, d), n in sorted(rules.items(), key=lambda kv: (-kv[1], kv[0][0]))
        ],
        "changed": changed[:rows],
    }


def _tick_step(peak: int, ticks: int = 5) -> int:
    """A 1-2-5 step giving at most `ticks` intervals up to `peak` (whole lines: at least 1)."""
    import math

    raw = max(peak / ticks, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    return int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


def comparison_chart_svg(
    per_side: list[dict[str, Any]], sides: list[str], title: str = "Lines by outcome on each side"
) -> str:
    """Grouped bars: for each outcome (authorization, with the review policy of a licence), one bar per
    side with its number of lines. `per_side` rows are ``{side, authorization, review_policy, lines}``
    (``BookComparison.per_side``). A self-contained SVG document: no scripts, no external references;
    each bar's tooltip says ``SIDE: OUTCOME: N lines``."""
    from xml.sax.saxutils import escape

    counts: dict[str, dict[str, int]] = {}
    for row in per_side:
        label = outcome_label(row["authorization"], row["review_policy"])
        by_side = counts.setdefault(label, {})
        by_side[row["side"]] = by_side.get(row["side"], 0) + int(row["lines"])
    outcomes = sorted(counts, key=outcome_key)
    bar, gap, left, right, plot_h = 26, 40, 64, 24, 220
    width = max(600, left + max(len(outcomes), 1) * (len(sides) * bar + gap) + right)
    group_w = (width - left - right) / max(len(outcomes), 1)
    per_row = max(1, (width - left - right) // 280)
    top = 76 + 18 * ((len(sides) - 1) // per_row)
    base_y = top + plot_h
    height = base_y + 70
    peak = max((n for by_side in counts.values() for n in by_side.values()), default=0)
    step = _tick_step(peak)
    axis_max = max(step * -(-peak // step), step)
    font = "font-family='Helvetica, Arial, sans-serif'"

    def y(value: float) -> float:
        return base_y - plot_h * value / axis_max

    def text(x: float, y_: float, content: str, size: int, anchor: str = "start", fill: str = "#222222") -> str:
        return (
            f"<text x='{x:.1f}' y='{y_:.1f}' {font} font-size='{size}' text-anchor='{anchor}' "
            f"fill='{fill}'>{escape(content)}</text>"
        )

    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='{width}' height='{height}'>",
        f"<title>{escape(title)}</title>",
        f"<rect x='0' y='0' width='{width}' height='{height}' fill='#ffffff'/>",
        text(left, 24, title, 15),
    ]
    for i, side in enumerate(sides):  # the legend
        lx, ly = left + (i % per_row) * 280, 46 + 18 * (i // per_row)
        colour = SIDE_COLOURS[i % len(SIDE_COLOURS)]
        out.append(f"<rect x='{lx}' y='{ly - 10}' width='12' height='12' fill='{colour}'/>")
        out.append(text(lx + 18, ly, side + (" (baseline)" if i == 0 else ""), 12))
    for tick in range(0, axis_max + 1, step):
        ty = y(tick)
        out.append(f"<line x1='{left}' y1='{ty:.1f}' x2='{width - right}' y2='{ty:.1f}' stroke='#e3e7ee'/>")
        out.append(text(left - 6, ty + 4, f"{tick:,}", 11, "end", "#5b6577"))
    if not outcomes:
        out.append(text(width / 2, base_y - plot_h / 2, "no lines compared", 13, "middle", "#5b6577"))
    for g, outcome in enumerate(outcomes):
        centre = left + (g + 0.5) * group_w
        gx = centre - len(sides) * bar / 2
        for i, side in enumerate(sides):
            n = counts[outcome].get(side, 0)
            x, top_y = gx + i * bar, y(n)
            out.append(
                f"<rect class='bar' x='{x:.1f}' y='{top_y:.3f}' width='{bar - 2}' height='{base_y - top_y:.3f}' "
                f"fill='{SIDE_COLOURS[i % len(SIDE_COLOURS)]}'><title>{escape(f'{side}: {outcome}: {n:,} lines')}"
                "</title></rect>"
            )
            out.append(text(x + (bar - 2) / 2, top_y - 4, f"{n:,}", 10, "middle"))
        authorization, _, policy = outcome.partition(" (")
        out.append(text(centre, base_y + 18, authorization, 11, "middle"))
        if policy:
            out.append(text(centre, base_y + 32, f"({policy}", 10, "middle", "#5b6577"))
    out.append(f"<line x1='{left}' y1='{base_y}' x2='{width - right}' y2='{base_y}' stroke='#333333'/>")
    out.append(
        text(left, height - 12, "Lines per side; a licence is shown with its review policy.", 10, fill="#5b6577")
    )
    out.append("</svg>")
    return "\n".join(out)


def _cell(value: Any) -> str | int | float | None:
    if value is None or isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def comparison_report(comparison: BookComparison | dict[str, Any], rows: int = REPORT_ROWS) -> Report:
    """A comparison as a report document (``tierline.reports.Report``, kind ``comparison``): a book's
    `BookComparison` (or its ``as_dict()``), or the answer of `compare_transaction`. The stamp names
    every side's vintage and reform and the as-of date (a transaction's date, or the date of the book's
    starting allowances); the summary counts the changes; tables give the transitions, the rules that
    decided the changed lines (with citations), the countries with changed lines and the first `rows`
    changed lines; the chart shows the lines by outcome on each side. The citations are every rule
    that decided a changed line, each vintage's reference and each reform (a scenario, not law)."""
    if isinstance(comparison, BookComparison):
        p = comparison.as_dict(rows=rows)
    elif isinstance(comparison, dict) and comparison.get("kind") == "transaction":
        p = _transaction_payload(comparison, rows)
    elif isinstance(comparison, dict) and comparison.get("kind") == "order_book":
        p = {**comparison, "changed": comparison.get("changed", [])[:rows]}
    else:
        raise TierlineError("comparison", "expected a book comparison or the answer of compare_transaction")
    book = p["kind"] == "order_book"
    sides = [s["label"] for s in p["sides"]]
    baseline = p["baseline"]
    others = sides[1:]
    as_of_text = (p["starting_state_as_of"] or p["compared_from"]) if book else p["as_of"]
    stamp = Stamp(
        tuple(s["vintage"] for s in p["sides"]),
        tuple(s["reform"] for s in p["sides"]),
        dt.date.fromisoformat(as_of_text),
    )
    per_change: dict[str, int] = {}
    for r in p["transitions"]:
        per_change[r["side"]] = per_change.get(r["side"], 0) + int(r["lines"])

    # ---- summary
    summary = []
    if book:
        summary.append(
            f"{p['screened']:,} order line(s) compared under {len(sides)} sides, lines dated from "
            f"{p['compared_from']} on; the baseline is {baseline}."
        )
        if p["outside_window"] or p["rejected"]:
            summary.append(
                f"Not compared: {p['outside_window']:,} line(s) dated before {p['compared_from']} (outside the "
                f"comparison) and {p['rejected']:,} rejected line(s)."
            )
    else:
        summary.append(
            f"A transaction of {p['lines']} line(s) dated {p['as_of']} determined under {len(sides)} sides; "
            f"the baseline is {baseline}."
        )
    summary.append(
        f"{p['changed_lines']:,} of {p['screened']:,} line(s) change outcome under at least one side."
        if p["changed_lines"]
        else f"No line changes outcome: every side decides the {p['screened']:,} line(s) as {baseline} does."
    )
    for side in others:
        moves = [r for r in p["transitions"] if r["side"] == side]
        if not moves:
            summary.append(f"Under {side}: no line changes.")
            continue
        top = max(moves, key=lambda r: r["lines"])
        summary.append(
            f"Under {side}: {per_change[side]:,} line(s) change against {baseline}; most often "
            f"{outcome_label(top['from_authorization'], top['from_review_policy'])} → "
            f"{outcome_label(top['to_authorization'], top['to_review_policy'])} ({top['lines']:,} line(s))."
        )
    licences = {s: 0 for s in sides}
    for r in p["per_side"]:
        if r["authorization"] == "LICENSE":
            licences[r["side"]] += int(r["lines"])
    summary.append("Lines needing a licence: " + "; ".join(f"{s} {n:,}" for s, n in licences.items()) + ".")
    if not book:
        for r in p["changed"]:
            diff = r["difference"]
            if diff and diff["to"]:
                summary.append(
                    f"Line {r['line']} ({r['chip']}) under {r['side']}: the explanations part at step {diff['step']}, "
                    f"{diff['to']['rule']} ({diff['to']['citation']})."
                )

    # ---- tables and chart
    transitions = Table(
        "Transitions against the baseline",
        ("side", "baseline outcome", "side's outcome", "lines"),
        tuple(
            (
                r["side"],
                outcome_label(r["from_authorization"], r["from_review_policy"]),
                outcome_label(r["to_authorization"], r["to_review_policy"]),
                int(r["lines"]),
            )
            for r in p["transitions"]
        ),
        (False, False, False, True),
    )
    rules_table = Table(
        "Rules that decided the changed lines",
        ("side", "baseline rule", "baseline citation", "side's rule", "side's citation", "lines"),
        tuple(
            (r["side"], r["from_rule"], r["from_citation"], r["to_rule"], r["to_citation"], int(r["lines"]))
            for r in p["by_rule"]
        ),
        (False, False, False, False, False, True),
    )
    changed_here: dict[str, int] = {}
    for r in p["by_country"]:
        changed_here[r["destination"]] = changed_here.get(r["destination"], 0) + int(r.get("changed") or 0)
    order = {s: i for i, s in enumerate(sides)}
    countries = Table(
        "Countries with changed lines (every side)",
        ("destination", "side", "lines", "changed", "needing a licence", "TPP drawn"),
        tuple(
            (
                r["destination"],
                r["side"],
                int(r["lines"]),
                int(r.get("changed") or 0),
                int(r["needs_license"]),
                float(r["draw_tpp"] or 0.0),
            )
            for r in sorted(
                (r for r in p["by_country"] if changed_here[r["destination"]]),
                key=lambda r: (-changed_here[r["destination"]], r["destination"], order.get(r["side"], len(order))),
            )
        ),
        (False, False, True, True, True, True),
    )
    outcome_counts: dict[str, dict[str, int]] = {}
    for r in p["per_side"]:
        label = outcome_label(r["authorization"], r["review_policy"])
        outcome_counts.setdefault(label, {})
        outcome_counts[label][r["side"]] = outcome_counts[label].get(r["side"], 0) + int(r["lines"])
    by_outcome = Table(
        "Lines by outcome on each side",
        ("outcome", *sides),
        tuple(
            (label, *(outcome_counts[label].get(s, 0) for s in sides))
            for label in sorted(outcome_counts, key=outcome_key)
        ),
        (False, *(True for _ in sides)),
    )
    ids = any(r["line_id"] for r in p["changed"])  # a column for the books' own references, when given
    columns = ["line", *(["line id"] if ids else []), "date", "destination", "chip", "quantity", "side"]
    columns += ["baseline outcome", "side's outcome", "baseline rule", "side's rule"]
    columns += [] if book else ["first different step"]
    changed_rows = []
    for r in p["changed"]:
        cells: list[Any] = [r["line"], *([r["line_id"]] if ids else []), r["date"], r["destination"], r["chip"]]
        cells += [r["quantity"], r["side"]]
        cells += [
            outcome_label(r["from_authorization"], r["from_review_policy"]),
            outcome_label(r["to_authorization"], r["to_review_policy"]),
            f"{r['from_rule']} ({r['from_citation']})",
            f"{r['to_rule']} ({r['to_citation']})",
        ]
        if not book:
            diff = r["difference"]
            step = diff["to"] or diff["from"] if diff else None
            cells.append(f"{diff['step']}: {step['rule']} ({step['citation']})" if diff and step else None)
        changed_rows.append(tuple(_cell(c) for c in cells))
    first = Table(
        f"The first {len(changed_rows)} changed line(s)" if book else "Changed lines",
        tuple(columns),
        tuple(changed_rows),
        tuple(c in ("line", "quantity") for c in columns),
    )
    where = f"; every changed line is in {p['out']}" if book and p.get("out") else ""
    sections = [
        Section(
            "What changed",
            (CHANGE_MEANING,)
            + (
                (
                    f"Lines dated before {p['compared_from']}, the latest side's entry into force, are outside "
                    "the comparison.",
                )
                if book
                else ()
            ),
            (transitions, rules_table) if p["transitions"] else (),
        ),
        Section(
            "Lines by outcome",
            (),
            (by_outcome,),
            (Chart("Lines by outcome on each side", comparison_chart_svg(p["per_side"], sides)),),
        ),
    ]
    if countries.rows:
        sections.append(Section("Countries with changed lines", (), (countries,)))
    if changed_rows:
        sections.append(
            Section(
                "Changed lines",
                (f"{len(changed_rows)} of {sum(per_change.values()):,} changed rows (a line per side){where}.",),
                (first,),
            )
        )

    # ---- citations
    cites: dict[str, str] = {}
    for r in p["by_rule"]:
        cites.setdefault(r["from_citation"], f"{r['from_rule']}: decided changed lines under {baseline}")
        cites.setdefault(r["to_citation"], f"{r['to_rule']}: decided changed lines under {r['side']}")
    for r in p["changed"]:
        diff = r.get("difference")
        for step in (diff["from"], diff["to"]) if diff else ():
            if step:
                cites.setdefault(step["citation"], f"{step['rule']}: the first step where the explanations part")
    for vintage in dict.fromkeys(s["vintage"] for s in p["sides"]):
        v = get_vintage(vintage)
        cites.setdefault(v.reference.cite(), f"vintage {vintage}: {v.title}")
    for s in p["sides"]:
        if s["reform"]:
            cites.setdefault(f"reform {s['reform']} (scenario, not law)", f"side {s['label']}: a scenario, not law")
    title = f"Comparison: {', '.join(others)} against {baseline}"
    return Report(
        kind="comparison",
        title=title if book else f"Transaction {title[0].lower()}{title[1:]}",
        stamp=stamp,
        summary=tuple(summary),
        sections=tuple(sections),
        citations=tuple(Citation(c, u) for c, u in cites.items()),
    )
