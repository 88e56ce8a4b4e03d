"""Projection: when does a demand series exhaust a Tier 2 country allocation, per scenario.

Input: a CSV with columns ``date,country,chip,quantity`` (one row per planned delivery). For each
country and each side (a vintage, with or without a reform), every row is evaluated on its own date:

* the destination's tier on that date (a reform may move it: ``poland-tier1``);
* Tier 2, within the allocation period, a 3A090.a chip (``determination/review.py``: only licensed
  a-level exports draw the allocation): the row draws quantity x the chip's TPP
  (15 CFR 774 Supp. 1, ECCN 3A090 Technical Note) on ``allocation:CC``;
* the cap on that date: ``allocation.tier2_cumulative_tpp`` (15 CFR 742.6(b)(10)), doubled by
  ``allocation.g2g_multiplier`` from the state's recorded g2g date.

The allocation **runs out on** the date of the first row whose cumulative draw (plus the state's
recorded usage on that date) exceeds the cap in force on that date. A Tier 1 destination never runs
out (no quantity limit, 15 CFR 740.27); a Tier 3 one has no pathway (presumption of denial).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import polars as pl

from tierline.allowances import AllowanceState, InMemoryAllowances, allocation_account, allocation_cap
from tierline.catalog import classify_chip, find_chip
from tierline.charts import LEFT, RIGHT, TOP, WIDTH, svg_footer, svg_frame, svg_text
from tierline.compare import Side
from tierline.countries import lookup
from tierline.errors import TierlineError
from tierline.groups import ear_destination
from tierline.pathways import AIA_CITATION, ALLOCATION_CITATION, ChipBasis, _plain, chip_basis
from tierline.policy import Context
from tierline.policy.vintages import DEFAULT_VINTAGE, ParameterUse, get_vintage
from tierline.reforms import Reform, get_reform
from tierline.reports.model import Chart, Citation, Report, Section, Stamp, Table
from tierline.tiers import SUPP5A_CITATION, TIER3_CITATION, tier_of
from tierline.web.svg import fmt_tpp, short_number

COLUMNS = ("date", "country", "chip", "quantity")
TPP_CITATION = "15 CFR 774 Supp. 1, ECCN 3A090 (Technical Note: TPP)"


# ---- the demand series ----------------------------------------------------------------------------
@dataclass(frozen=True)
class DemandRow:
    """One planned delivery: `quantity` chips of `chip` to `country` (EAR code) on `date`."""

    line: int  # the CSV line (the header is line 1)
    date: dt.date
    country: str
    chip: ChipBasis
    quantity: int

    @property
    def tpp(self) -> Fraction:
        return self.chip.tpp * self.quantity

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "date": self.date.isoformat(),
            "country": self.country,
            "chip": self.chip.name,
            "quantity": self.quantity,
            "tpp": float(self.tpp),
        }


def _bad(source: str, line: int, column: str, value: Any, reason: str) -> TierlineError:
    return TierlineError(f"{source}: line {line}, column {column}", f"{value!r} {reason}")


def _frame_of(source: Path | str | pl.DataFrame, name: str) -> pl.DataFrame:
    if isinstance(source, pl.DataFrame):
        return source
    path = Path(source)
    if not path.is_file():
        raise TierlineError(name, f"cannot read {path}: no such file")
    try:
        return pl.read_csv(path, infer_schema=False)
    except pl.exceptions.NoDataError:
        raise TierlineError(name, "the file is empty; expected the columns date,country,chip,quantity") from None
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TierlineError(name, f"not a readable CSV file ({first})") from None


def _quantity(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    return int(value) if value.denominator == 1 else None


def read_demand(source: Path | str | pl.DataFrame, *, name: str | None = None) -> tuple[DemandRow, ...]:
    """Read and validate a demand series (columns date, country, chip, quantity; extra columns are
    ignored). A bad row is refused with a TierlineError naming the line, the column, the value and
    the reason; an unknown country or chip is named with the closest matches."""
    label = name or (
        source.name if isinstance(source, Path) else Path(source).name if isinstance(source, str) else "demand"
    )
    frame = _frame_of(source, label)
    found = {str(c).strip().lower(): str(c) for c in frame.columns}
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        raise TierlineError(
            f"{label}: column {missing[0]}",
            f"missing; the demand needs the columns {', '.join(COLUMNS)} (found: {', '.join(frame.columns) or 'none'})",
        )
    if frame.height == 0:
        raise TierlineError(label, "no demand rows after the header")
    chips: dict[str, ChipBasis] = {}
    countries: dict[str, str] = {}
    rows: list[DemandRow] = []
    columns = [frame.get_column(found[c]).to_list() for c in COLUMNS]
    for i, (raw_date, raw_country, raw_chip, raw_qty) in enumerate(zip(*columns, strict=True)):
        line = i + 2
        values = {"date": raw_date, "country": raw_country, "chip": raw_chip, "quantity": raw_qty}
        for column, value in values.items():
            if value is None or (isinstance(value, str) and not value.strip()):
                raise _bad(label, line, column, value if value is not None else "", "is empty")
        if isinstance(raw_date, dt.datetime):
            day = raw_date.date()
        elif isinstance(raw_date, dt.date):
            day = raw_date
        else:
            try:
                day = dt.date.fromisoformat(str(raw_date).strip())
            except ValueError:
                raise _bad(label, line, "date", raw_date, "is not a date (YYYY-MM-DD)") from None
        country_text = str(raw_country).strip()
        if country_text not in countries:
            try:
                countries[country_text] = lookup(country_text, "country").iso2
            except TierlineError as exc:
                raise _bad(label, line, "country", raw_country, f"is not a known country: {exc.reason}") from None
        code = ear_destination(countries[country_text], day).ear.iso2
        chip_text = str(raw_chip).strip()
        if chip_text not in chips:
            try:
                chips[chip_text] = chip_basis(chip_text, Context.make(DEFAULT_VINTAGE, day))[0]
            except TierlineError as exc:
                raise _bad(label, line, "chip", raw_chip, f"is not a known chip: {exc.reason}") from None
        quantity = raw_qty if isinstance(raw_qty, int) and not isinstance(raw_qty, bool) else _quantity(str(raw_qty))
        if quantity is None:
            raise _bad(label, line, "quantity", raw_qty, "is not a whole number of chips")
        if quantity < 0:
            raise _bad(label, line, "quantity", raw_qty, "is negative; a quantity is a number of chips (0 or more)")
        rows.append(DemandRow(line, day, code, chips[chip_text], quantity))
    return tuple(rows)


# ---- sides -------------------------------------------------------------------------------------------
def _side(spec: Side | tuple[str | None, Reform | str | None] | str) -> Side:
    if isinstance(spec, Side):
        return spec
    vintage, reform = (spec, None) if isinstance(spec, str) else spec
    name = get_vintage(vintage or DEFAULT_VINTAGE).name
    return Side(name, get_reform(reform) if isinstance(reform, str) else reform)


class _Evaluator:
    """Contexts, tiers, chip levels and caps of one side, cached by date."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.vintage = get_vintage(side.vintage)
        self._contexts: dict[dt.date, Context] = {}
        self._levels: dict[tuple[str, dt.date], str | None] = {}

    def ctx(self, day: dt.date) -> Context:
        found = self._contexts.get(day)
        if found is None:
            found = self._contexts[day] = Context.make(self.side.vintage, day, self.side.reform)
        return found

    def rule_ctx(self, day: dt.date) -> Context:
        """The parameters on `day`, read from the vintage's start for earlier days (the allocation
        period starts before the rule's effective date)."""
        return self.ctx(max(day, self.vintage.in_force_from))

    @property
    def has_allocations(self) -> bool:
        return self.vintage.has("country_allocations")

    def tier(self, country: str, day: dt.date) -> int:
        return tier_of(country, self.ctx(day)).tier

    def level(self, chip: ChipBasis, day: dt.date) -> str | None:
        """The chip's 3A090 level on `day` (a part needing review counts as a-level, as in the engine)."""
        if chip.id is None:
            return chip.level
        key = (chip.id, day)
        if key not in self._levels:
            result, _ = classify_chip(find_chip(chip.id).chip, self.ctx(day))
            self._levels[key] = "a" if result.status == "needs_review" else result.level
        return self._levels[key]

    def period(self) -> tuple[dt.date, dt.date] | None:
        if not self.has_allocations:
            return None
        ctx = self.rule_ctx(self.vintage.in_force_from)
        start, end = ctx.maybe("allocation.period_start"), ctx.maybe("allocation.period_end")
        if start is None or end is None:
            return None
        return start.value, end.value

    def cap(self, day: dt.date, g2g_since: dt.date | None) -> tuple[Fraction | None, list[ParameterUse]]:
        """The allocation cap binding a draw dated `day` (None outside the period or without allocations)."""
        if not self.has_allocations:
            return None, []
        ctx = self.rule_ctx(day)
        if ctx.maybe("allocation.tier2_cumulative_tpp") is None:
            return None, []
        g2g = g2g_since is not None and g2g_since <= day
        cap, params = allocation_cap(ctx, g2g)
        start, end = params[1].value, params[2].value
        if not start <= day <= end:
            return None, params
        return cap, params


# ---- results -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProjectionPoint:
    """One demand row under one side: what it drew and where the cumulative total stands."""

    line: int
    date: dt.date
    tier: int
    tpp: Fraction
    drawn: bool
    reason: str | None  # why it does not draw the allocation
    cumulative_tpp: Fraction  # recorded usage on the date + the rows drawn so far
    cap_tpp: Fraction | None
    fits: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "date": self.date.isoformat(),
            "tier": self.tier,
            "tpp": float(self.tpp),
            "drawn": self.drawn,
            "reason": self.reason,
            "cumulative_tpp": float(self.cumulative_tpp),
            "cap_tpp": None if self.cap_tpp is None else float(self.cap_tpp),
            "fits": self.fits,
        }


@dataclass(frozen=True)
class CountryProjection:
    """One country under one side."""

    country: str
    country_name: str
    side: Side
    status: str  # runs_out | fits | never | no_pathway | no_allocation
    binding: str
    tiers: tuple[int, ...]
    runs_out_on: dt.date | None
    runs_out_line: int | None
    period: tuple[dt.date, dt.date] | None
    starting_usage_tpp: Fraction
    drawn_tpp: Fraction  # the demand drawn within the period
    cap_at_period_end: Fraction | None
    used_at_period_end: Fraction | None
    fraction_used_at_period_end: Fraction | None
    cap_steps: tuple[tuple[dt.date, Fraction | None], ...]
    points: tuple[ProjectionPoint, ...]
    g2g_since: dt.date | None
    parameters: tuple[ParameterUse, ...]
    citations: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def headline(self) -> str:
        if self.status == "runs_out" and self.runs_out_on is not None:
            return f"runs out on {self.runs_out_on.isoformat()} (line {self.runs_out_line})"
        if self.status == "fits":
            end = self.period[1].isoformat() if self.period else "the period end"
            return f"fits: does not run out within the allocation period (to {end})"
        return {
            "never": f"never runs out: {self.binding.removeprefix('none: ')}",
            "no_pathway": "no pathway: Tier 3, presumption of denial",
            "no_allocation": f"no country allocation under {self.side.vintage}",
        }.get(self.status, self.status)

    def as_dict(self) -> dict[str, Any]:
        def num(v: Fraction | None) -> float | None:
            return None if v is None else float(v)

        return {
            "country": self.country,
            "country_name": self.country_name,
            **self.side.as_dict(),
            "side": self.side.label,
            "status": self.status,
            "headline": self.headline,
            "binding": self.binding,
            "tiers": list(self.tiers),
            "runs_out_on": self.runs_out_on.isoformat() if self.runs_out_on else None,
            "runs_out_line": self.runs_out_line,
            "period_start": self.period[0].isoformat() if self.period else None,
            "period_end": self.period[1].isoformat() if self.period else None,
            "g2g_since": self.g2g_since.isoformat() if self.g2g_since else None,
            "starting_usage_tpp": float(self.starting_usage_tpp),
            "drawn_tpp": float(self.drawn_tpp),
            "cap_at_period_end_tpp": num(self.cap_at_period_end),
            "used_at_period_end_tpp": num(self.used_at_period_end),
            "fraction_used_at_period_end": num(self.fraction_used_at_period_end),
            "cap_steps": [{"from": d.isoformat(), "cap_tpp": num(c)} for d, c in self.cap_steps],
            "points": [p.as_dict() for p in self.points],
            "parameters": [_plain(p.as_dict()) for p in self.parameters],
            "citations": list(self.citations),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ProjectionResult:
    sides: tuple[Side, ...]
    countries: tuple[str, ...]
    projections: tuple[CountryProjection, ...]
    rows: int
    as_of: dt.date
    until: dt.date | None
    notes: tuple[str, ...] = field(default=())

    def get(self, country: str, side: int = 0) -> CountryProjection:
        """The projection of `country` (EAR code) under the `side`-th side."""
        code = ear_destination(lookup(country, "country"), self.as_of).ear.iso2
        for p in self.projections:
            if p.country == code and p.side == self.sides[side]:
                return p
        raise TierlineError("country", f"{country!r} is not in the demand series")

    def as_dict(self) -> dict[str, Any]:
        return {
            "sides": [s.as_dict() for s in self.sides],
            "countries": list(self.countries),
            "projections": [p.as_dict() for p in self.projections],
            "rows": self.rows,
            "as_of": self.as_of.isoformat(),
            "until": self.until.isoformat() if self.until else None,
            "vintages": [s.vintage for s in self.sides],
            "reforms": [s.reform.name if s.reform else None for s in self.sides],
            "notes": list(self.notes),
        }


# ---- the projection ---------------------------------------------------------------------------------
def _project_country(
    country: str, rows: Sequence[DemandRow], ev: _Evaluator, state: AllowanceState
) -> CountryProjection:
    side = ev.side
    name = lookup(country).name
    account = allocation_account(country)
    since = state.g2g_since(country)
    period = ev.period()
    params: dict[str, ParameterUse] = {}
    points: list[ProjectionPoint] = []
    drawn = Fraction(0)
    runs_out: tuple[dt.date, int] | None = None
    tiers: list[int] = []
    notes: list[str] = []
    start_usage = state.used(account, rows[0].date) if rows else Fraction(0)
    for row in rows:
        tier = ev.tier(country, row.date)
        if tier not in tiers:
            if tiers:
                notes.append(f"Tier {tiers[-1]} -> Tier {tier} by {row.date.isoformat()} (line {row.line})")
            tiers.append(tier)
        cap, used_params = ev.cap(row.date, since) if tier == 2 else (None, [])
        for p in used_params:
            params.setdefault(p.path, p)
        reason = None
        if not ev.has_allocations:
            reason = f"vintage {side.vintage} has no Tier 2 country allocations"
        elif tier == 1:
            reason = "Tier 1: no quantity limit"
        elif tier == 3:
            reason = "Tier 3: no pathway (presumption of denial)"
        elif cap is None:
            reason = "outside the allocation period"
        elif ev.level(row.chip, row.date) != "a":
            reason = "not 3A090.a: does not draw the allocation"
        base = state.used(account, row.date)
        if reason is None:
            drawn += row.tpp
        total = base + drawn
        fits = None if reason is not None or cap is None else total <= cap
        if fits is False and runs_out is None:
            runs_out = (row.date, row.line)
        points.append(ProjectionPoint(row.line, row.date, tier, row.tpp, reason is None, reason, total, cap, fits))
    # the period end: cap and usage there (only for a destination that is Tier 2 then)
    cap_end = used_end = fraction = None
    if period is not None and ev.tier(country, period[1]) == 2:
        cap_end, end_params = ev.cap(period[1], since)
        for p in end_params:
            params.setdefault(p.path, p)
        used_end = state.used(account, period[1]) + sum(
            (p.tpp for p in points if p.drawn and p.date <= period[1]), Fraction(0)
        )
        fraction = used_end / cap_end if cap_end else None
    steps = _cap_steps(country, ev, since, [r.date for r in rows], period)
    if since is not None:
        notes.append(f"a government-to-government arrangement doubles the allocation from {since.isoformat()}")
    if not ev.has_allocations:
        status, binding = "no_allocation", f"none: vintage {side.vintage} has no Tier 2 country allocations"
    elif runs_out is not None:
        status, binding = "runs_out", "Tier 2 country allocation"
    elif tiers and tiers[-1] == 1:
        moved = next((pt.date for pt in points if pt.tier == 1), None) if len(tiers) > 1 else None
        status = "never"
        binding = "none: Tier 1" + (f" from {moved.isoformat()}" if moved else "") + " (no quantity limit)"
    elif set(tiers) <= {3}:
        status, binding = "no_pathway", "none: Tier 3 (presumption of denial)"
    else:
        status, binding = "fits", "Tier 2 country allocation"
    citations = [ALLOCATION_CITATION, TPP_CITATION]
    if 1 in tiers:
        citations += [AIA_CITATION, SUPP5A_CITATION]
    if 3 in tiers:
        citations.append(TIER3_CITATION)
    for p in params.values():
        if p.reference.cfr and p.reference.cfr not in citations:
            citations.append(p.reference.cfr)
    if any(r.chip.id is None for r in rows):
        h100 = ev.ctx(rows[0].date).use("reference_chip.h100_tpp")
        params.setdefault(h100.path, h100)
    return CountryProjection(
        country=country,
        country_name=name,
        side=side,
        status=status,
        binding=binding,
        tiers=tuple(tiers),
        runs_out_on=runs_out[0] if runs_out else None,
        runs_out_line=runs_out[1] if runs_out else None,
        period=period,
        starting_usage_tpp=start_usage,
        drawn_tpp=drawn,
        cap_at_period_end=cap_end,
        used_at_period_end=used_end,
        fraction_used_at_period_end=fraction,
        cap_steps=steps,
        points=tuple(points),
        g2g_since=since,
        parameters=tuple(params.values()),
        citations=tuple(citations),
        notes=tuple(notes),
    )


def _cap_steps(
    country: str,
    ev: _Evaluator,
    since: dt.date | None,
    dates: Sequence[dt.date],
    period: tuple[dt.date, dt.date] | None,
) -> tuple[tuple[dt.date, Fraction | None], ...]:
    """The cap in force from each date it may change on (None: no cap binds the country then)."""
    if period is None:
        return ()
    candidates = {period[0], period[1] + dt.timedelta(days=1), *dates}
    if since is not None:
        candidates.add(since)
    if ev.side.reform is not None:
        candidates |= {c.effective for c in ev.side.reform.parameters} | {g.effective for g in ev.side.reform.groups}
    steps: list[tuple[dt.date, Fraction | None]] = []
    for day in sorted(candidates):
        cap = ev.cap(day, since)[0] if ev.tier(country, day) == 2 else None
        if not steps or steps[-1][1] != cap:
            steps.append((day, cap))
    return tuple(steps)


def project(
    demand: Path | str | pl.DataFrame | Sequence[DemandRow],
    sides: Sequence[Side | tuple[str | None, Reform | str | None] | str] | None = None,
    *,
    state: AllowanceState | None = None,
    until: dt.date | None = None,
) -> ProjectionResult:
    """Project a demand series against the Tier 2 country allocation (15 CFR 742.6(b)(10)) per
    country and side. `sides` are (vintage, reform or None) pairs (default: the default vintage
    without reform); `state` gives the recorded usage (``allocation:CC`` on each row's date) and
    g2g dates; rows after `until` are left out. The stamp's as-of date is the last date reached."""
    rows = tuple(demand) if isinstance(demand, Sequence) and not isinstance(demand, str) else read_demand(demand)
    if until is not None:
        rows = tuple(r for r in rows if r.date <= until)
    if not rows:
        raise TierlineError("demand", "no demand rows" + (f" on or before {until.isoformat()}" if until else ""))
    chosen = [_side(s) for s in (sides or [(DEFAULT_VINTAGE, None)])]
    if len(set(chosen)) != len(chosen):
        raise TierlineError("sides", "a side is given twice")
    allowances = state or InMemoryAllowances()
    ordered = sorted(rows, key=lambda r: (r.date, r.line))
    countries = tuple(dict.fromkeys(sorted(r.country for r in ordered)))
    out: list[CountryProjection] = []
    for side in chosen:
        ev = _Evaluator(side)
        for country in countries:
            out.append(_project_country(country, [r for r in ordered if r.country == country], ev, allowances))
    notes = []
    if any(r.chip.id is None for r in rows):
        notes.append("rows in H100e use the reference chip's TPP (parameter reference_chip.h100_tpp)")
    return ProjectionResult(
        sides=tuple(chosen),
        countries=countries,
        projections=tuple(out),
        rows=len(rows),
        as_of=until or ordered[-1].date,
        until=until,
        notes=tuple(notes),
    )


# ---- chart and report ------------------------------------------------------------------------------
SIDE_COLOURS = ("#1f4e79", "#c0392b", "#2e8b57", "#7b3fa0", "#d17a00", "#555555")
PLOT_BOTTOM = 460


def projection_chart_svg(result: ProjectionResult, country: str) -> str:
    """Cumulative demand (step line) against each side's cap (dashed) over time, exhaustion marked."""
    code = ear_destination(lookup(country, "country"), result.as_of).ear.iso2
    shown = [p for p in result.projections if p.country == code]
    if not shown:
        raise TierlineError("country", f"{country!r} is not in the demand series")
    dates = [pt.date for p in shown for pt in p.points]
    dates += [d for p in shown if p.period for d in p.period]
    start, end = min(dates), max(dates)
    if end <= start:
        end = start + dt.timedelta(days=1)
    values = [float(pt.cumulative_tpp) for p in shown for pt in p.points]
    values += [float(c) for p in shown for _, c in p.cap_steps if c is not None]
    peak = max(values, default=0.0) * 1.08 or 1.0
    right = WIDTH - RIGHT

    def x(day: dt.date) -> float:
        return LEFT + (day - start).days / (end - start).days * (right - LEFT)

    def y(value: float) -> float:
        return PLOT_BOTTOM - value / peak * (PLOT_BOTTOM - TOP)

    out = [
        f"<rect x='{LEFT}' y='{TOP}' width='{right - LEFT}' height='{PLOT_BOTTOM - TOP}' fill='none' stroke='#333333'/>"
    ]
    step = _nice_step(peak / 1.08)
    for k in range(int(peak // step) + 1):
        value = k * step
        out.append(
            f"<line x1='{LEFT}' y1='{y(value):.1f}' x2='{right}' y2='{y(value):.1f}' stroke='#dddddd'/>"
            + svg_text(LEFT - 6, y(value) + 3, short_number(value), 10, "end", fill="#333333")
        )
    for year in range(start.year, end.year + 2):
        day = dt.date(year, 1, 1)
        if start <= day <= end:
            out.append(
                f"<line x1='{x(day):.1f}' y1='{PLOT_BOTTOM}' x2='{x(day):.1f}' y2='{PLOT_BOTTOM + 5}' stroke='#333'/>"
                + svg_text(x(day), PLOT_BOTTOM + 18, str(year), 10, "middle", fill="#333333")
            )
    legend_y = PLOT_BOTTOM + 40
    labelled: set[tuple[dt.date, Fraction]] = set()
    for i, p in enumerate(shown):
        colour = SIDE_COLOURS[i % len(SIDE_COLOURS)]
        # cumulative demand: a step line, flat between rows
        path, last = [f"M {x(start):.1f} {y(float(p.starting_usage_tpp)):.1f}"], float(p.starting_usage_tpp)
        for pt in p.points:
            px = x(pt.date)
            path.append(f"L {px:.1f} {y(last):.1f} L {px:.1f} {y(float(pt.cumulative_tpp)):.1f}")
            last = float(pt.cumulative_tpp)
        path.append(f"L {x(end):.1f} {y(last):.1f}")
        out.append(
            f"<path d='{' '.join(path)}' fill='none' stroke='{colour}' stroke-width='2'>"
            f"<title>{escape(f'{p.side.label}: cumulative demand drawn on allocation:{code}')}</title></path>"
        )
        # the cap: dashed, absent where no cap binds
        for j, (day, cap) in enumerate(p.cap_steps):
            if cap is None:
                continue
            until = p.cap_steps[j + 1][0] if j + 1 < len(p.cap_steps) else end
            x0, x1 = x(max(day, start)), x(min(until, end))
            out.append(
                f"<line x1='{x0:.1f}' y1='{y(float(cap)):.1f}' x2='{x1:.1f}' y2='{y(float(cap)):.1f}' "
                f"stroke='{colour}' stroke-width='1.5' stroke-dasharray='7 4'>"
                f"<title>{escape(f'{p.side.label}: cap {fmt_tpp(float(cap))} TPP from {day.isoformat()}')}</title></line>"
            )
            if (day, cap) not in labelled:
                labelled.add((day, cap))
                out.append(svg_text(x0 + 4, y(float(cap)) - 4, f"cap {short_number(float(cap))}", 10, fill=colour))
        if p.runs_out_on is not None:
            hit = next(pt for pt in p.points if pt.line == p.runs_out_line)
            hx, hy = x(hit.date), y(float(hit.cumulative_tpp))
            label = f"runs out {p.runs_out_on.isoformat()}"
            out.append(
                f"<circle cx='{hx:.1f}' cy='{hy:.1f}' r='6' fill='white' stroke='{colour}' stroke-width='2'>"
                f"<title>{escape(f'{p.side.label}: {label} (line {p.runs_out_line})')}</title></circle>"
            )
            out.append(svg_text(hx - 8, hy - 10 - 12 * i, label, 10, "end", fill=colour, font_weight="bold"))
        out.append(
            f"<line x1='{LEFT}' y1='{legend_y - 4}' x2='{LEFT + 24}' y2='{legend_y - 4}' stroke='{colour}' stroke-width='2'/>"
            + svg_text(LEFT + 30, legend_y, f"{p.side.label}: {p.headline}", 11, fill=colour)
        )
        legend_y += 16
    title = f"Tier 2 country allocation: {shown[0].country_name} ({code})"
    subtitle = "cumulative demand drawn (solid) against the cap (dashed) per scenario; TPP"
    notes = [
        "Each row draws quantity x the chip's TPP when the destination is Tier 2 on its date, within the allocation "
        "period, for a 3A090.a chip (15 CFR 742.6(b)(10)); the cap doubles from a recorded g2g arrangement.",
    ]
    footer, height = svg_footer(notes, legend_y + 14)
    return "\n".join([*svg_frame(title, subtitle, height), *out, *footer, "</svg>"])


def _nice_step(top: float) -> float:
    """A 1-2-2.5-5 step giving at most about six gridlines up to `top`."""
    raw = max(top, 1.0) / 6
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _percent(value: Fraction | None) -> str:
    return "—" if value is None else f"{float(value):.1%}"


def projection_summary(result: ProjectionResult) -> list[str]:
    out = []
    for p in result.projections:
        extra = ""
        if p.fraction_used_at_period_end is not None and p.period:
            extra = f"; {_percent(p.fraction_used_at_period_end)} of the allocation by {p.period[1].isoformat()}"
        out.append(f"{p.country_name} ({p.country}) under {p.side.label}: {p.headline}{extra}.")
    return out


def projection_report(result: ProjectionResult) -> Report:
    """The projection as a report document (kind ``projection``): one section per country."""
    sections = []
    for code in result.countries:
        shown = [p for p in result.projections if p.country == code]
        table = Table(
            f"{shown[0].country_name} ({code})",
            (
                "scenario",
                "tiers",
                "binding allowance",
                "runs out on",
                "cap at period end (TPP)",
                "demand drawn (TPP)",
                "used at period end",
            ),
            tuple(
                (
                    p.side.label,
                    ", ".join(str(t) for t in p.tiers),
                    p.binding,
                    p.runs_out_on.isoformat() if p.runs_out_on else p.headline,
                    None if p.cap_at_period_end is None else float(p.cap_at_period_end),
                    float(p.drawn_tpp),
                    _percent(p.fraction_used_at_period_end),
                )
                for p in shown
            ),
            (False, False, False, False, True, True, True),
        )
        paragraphs = tuple(dict.fromkeys(n for p in shown for n in p.notes))
        chart = Chart(f"{shown[0].country_name}: demand against the allocation", projection_chart_svg(result, code))
        sections.append(Section(f"{shown[0].country_name} ({code})", paragraphs, (table,), (chart,)))
    citations: dict[str, str] = {}
    for p in result.projections:
        for cite in p.citations:
            citations.setdefault(cite, "allocation, tiers and TPP")
    return Report(
        kind="projection",
        title="Projection: demand against the Tier 2 country allocations",
        stamp=Stamp(
            tuple(s.vintage for s in result.sides),
            tuple(s.reform.name if s.reform else None for s in result.sides),
            result.as_of,
        ),
        summary=tuple(projection_summary(result)),
        sections=tuple(sections),
        citations=tuple(Citation(c, u) for c, u in citations.items()),
    )
