"""Small SVG charts for the dashboard: allowance gauges, burn-down over time, a tier timeline.

Each returns a self-contained SVG string with a <title> (and text values beside it in the page), so
a chart is never the only way to read a number."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from xml.sax.saxutils import escape

TIER_FILL = {0: "#bdbdbd", 1: "#2c7bb6", 2: "#f4a340", 3: "#c8102e"}


def fmt_tpp(value: float | None) -> str:
    """TPP with thousands separators (no decimals above 100)."""
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def gauge_svg(used: float, held: float, limit: float | None, label: str) -> str:
    """A horizontal bar: used, held and what is left of `limit`."""
    width, height = 320.0, 22.0
    if not limit or limit <= 0:
        return ""
    u = min(max(used, 0.0) / limit, 1.0)
    h = min(max(held, 0.0) / limit, 1.0 - u)
    left = max(limit - used - held, 0.0)
    title = (
        f"{label}: used {fmt_tpp(used)} ({u:.1%}), held {fmt_tpp(held)}, left {fmt_tpp(left)} of {fmt_tpp(limit)} TPP"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' class='gauge' viewBox='0 0 {width:.0f} {height:.0f}' "
        f"role='img' aria-label='{escape(title, {chr(39): '&#39;'})}'><title>{escape(title)}</title>"
        f"<rect class='gauge-left' x='0' y='0' width='{width:.0f}' height='{height:.0f}' rx='3'/>"
        f"<rect class='gauge-used' x='0' y='0' width='{u * width:.1f}' height='{height:.0f}' rx='3'/>"
        f"<rect class='gauge-held' x='{u * width:.1f}' y='0' width='{h * width:.1f}' height='{height:.0f}'/>"
        f"<text x='{width - 6:.0f}' y='15' text-anchor='end' class='gauge-text'>{1 - u - h:.0%} left</text>"
        "</svg>"
    )


@dataclass(frozen=True)
class Step:
    """The cumulative committed amount from `day` on, and the limit in force then."""

    day: dt.date
    used: float
    limit: float


def burndown_svg(steps: list[Step], start: dt.date, end: dt.date, today: dt.date, title: str) -> str:
    """Remaining allowance over the period: a step line of limit minus cumulative use by shipment date."""
    width, height, left, right, top, bottom = 640.0, 260.0, 70.0, 16.0, 16.0, 36.0
    if not steps or end <= start:
        return ""
    peak = max(max(s.limit for s in steps), 1.0)
    span = (end - start).days

    def x(day: dt.date) -> float:
        return left + (min(max((day - start).days, 0), span) / span) * (width - left - right)

    def y(value: float) -> float:
        return top + (1 - max(min(value / peak, 1.0), -0.05)) * (height - top - bottom)

    points: list[tuple[float, float]] = []
    for i, step in enumerate(steps):
        remaining = step.limit - step.used
        if i:
            points.append((x(step.day), points[-1][1]))
        points.append((x(step.day), y(remaining)))
    points.append((x(end), points[-1][1]))
    line = "M" + "L".join(f"{px:.1f} {py:.1f}" for px, py in points)
    area = line + f"L{x(end):.1f} {y(0):.1f}L{points[0][0]:.1f} {y(0):.1f}Z"
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='burndown' viewBox='0 0 {width:.0f} {height:.0f}' "
        f"role='img' aria-labelledby='burndown-title'><title id='burndown-title'>{escape(title)}</title>",
        f"<path class='bd-area' d='{area}'/>",
        f"<path class='bd-line' d='{line}'/>",
    ]
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        value = peak * frac
        parts.append(
            f"<line class='bd-grid' x1='{left}' x2='{width - right}' y1='{y(value):.1f}' y2='{y(value):.1f}'/>"
            f"<text class='bd-axis' x='{left - 6}' y='{y(value) + 4:.1f}' text-anchor='end'>{short_number(value)}</text>"
        )
    for year in range(start.year, end.year + 2):
        day = dt.date(year, 1, 1)
        if start <= day <= end:
            parts.append(
                f"<line class='bd-tick' x1='{x(day):.1f}' x2='{x(day):.1f}' y1='{height - bottom}' "
                f"y2='{height - bottom + 5}'/><text class='bd-axis' x='{x(day):.1f}' y='{height - 12}' "
                f"text-anchor='middle'>{year}</text>"
            )
    if start <= today <= end:
        parts.append(
            f"<line class='bd-today' x1='{x(today):.1f}' x2='{x(today):.1f}' y1='{top}' y2='{height - bottom}'/>"
            f"<text class='bd-axis' x='{x(today) + 4:.1f}' y='{top + 10}'>{today.isoformat()}</text>"
        )
    parts.append(f"<text class='bd-axis' x='{left}' y='{height - 2}'>remaining TPP by shipment date</text></svg>")
    return "".join(parts)


def short_number(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}"


@dataclass(frozen=True)
class Period:
    start: dt.date
    end: dt.date  # inclusive
    tier: int
    groups: tuple[str, ...]


def timeline_svg(periods: list[Period], start: dt.date, end: dt.date, title: str) -> str:
    """The tier over time as coloured bands, with the years below."""
    width, height, left, right = 640.0, 64.0, 8.0, 8.0
    span = (end - start).days + 1

    def x(day: dt.date) -> float:
        return left + ((day - start).days / span) * (width - left - right)

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='timeline' viewBox='0 0 {width:.0f} {height:.0f}' "
        f"role='img' aria-labelledby='timeline-title'><title id='timeline-title'>{escape(title)}</title>"
    ]
    for p in periods:
        x0, x1 = x(p.start), x(p.end + dt.timedelta(days=1))
        name = f"Tier {p.tier}" if p.tier else "no tiers"
        tip = f"{p.start.isoformat()} to {p.end.isoformat()}: {name}; groups {', '.join(p.groups) or 'none'}"
        parts.append(
            f"<rect class='tl t{p.tier}' x='{x0:.1f}' y='6' width='{max(x1 - x0, 0.8):.1f}' height='30'>"
            f"<title>{escape(tip)}</title></rect>"
        )
        if x1 - x0 > 60:
            parts.append(f"<text class='tl-label' x='{(x0 + x1) / 2:.1f}' y='26' text-anchor='middle'>{name}</text>")
    for year in range(start.year, end.year + 1):
        day = dt.date(year, 1, 1)
        parts.append(
            f"<line class='bd-tick' x1='{x(day):.1f}' x2='{x(day):.1f}' y1='36' y2='44'/>"
            f"<text class='bd-axis' x='{x(day) + 3:.1f}' y='58'>{year}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
