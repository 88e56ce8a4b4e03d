"""Charts as self-contained SVG strings (no JavaScript, no network), shared by the CLI, the API and,
later, the dashboard's chip explorer.

* ``tpp_density_svg``: the TPP x performance-density plane with the 3A090 regions shaded and
  labelled (boundaries from the policy data in force for the context, each cell classified by the
  engine's own paragraph_3a090), the catalogue chips plotted and labelled, and an optional
  highlighted design point.
* ``bandwidth_tpp_svg``: memory bandwidth against TPP for the catalogue chips, with lines of equal
  decode throughput (roofline upper bound) for a chosen model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from tierline.catalog import Chip, catalog, classify_chip
from tierline.classification import _lines, paragraph_3a090
from tierline.errors import TierlineError
from tierline.inference import ModelSpec, bandwidth_gbs, decode_step, model_precisions, pick_rate, usable
from tierline.policy import Context
from tierline.tpp import bit_lengths, exact, total_processing_performance

WIDTH, PLOT_BOTTOM = 980, 560  # the plot area ends at PLOT_BOTTOM; notes below set the height
LEFT, RIGHT, TOP = 80, 40, 56
FONT = "font-family='Helvetica, Arial, sans-serif'"
REGION_COLOURS = {
    "3A090.a.1": "#f6b3ae",
    "3A090.a.2": "#f9cfa0",
    "3A090.b.1": "#fbe7a1",
    "3A090.b.2": "#cde3f3",
    "review": "#e5e5e5",
    None: "#e8f3e4",
}
CHIP_COLOUR, HIGHLIGHT_COLOUR, LINE_COLOUR, CHINA_COLOUR = "#1f4e79", "#c0392b", "#555555", "#7b3fa0"
TPP_LINES = ("a1.tpp_min", "a2.tpp_min", "b1.tpp_min", "b1.tpp_max", "b2.tpp_min")
PD_LINES = ("a2.pd_min", "b1.pd_min", "b1.pd_max", "b2.pd_min", "b2.pd_max")


POINT_RANGES = {"tpp": (1e-3, 1e9), "pd": (1e-6, 1e6)}


@dataclass(frozen=True)
class DesignPoint:
    """A point to highlight on the TPP x density plane (refused outside the ranges a chart can show)."""

    tpp: float
    pd: float | None
    label: str = "design"

    def __post_init__(self) -> None:
        for field, value in (("tpp", self.tpp), ("pd", self.pd)):
            low, high = POINT_RANGES[field]
            if value is not None and not (isinstance(value, (int, float)) and low <= value <= high):
                raise TierlineError(field, f"{value!r} is outside {low:g} .. {high:g}: the chart cannot place it")


@dataclass(frozen=True)
class _LogAxis:
    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = math.log10(self.hi) - math.log10(self.lo)
        return self.start + (math.log10(value) - math.log10(self.lo)) / span * (self.end - self.start)

    def ticks(self) -> list[tuple[float, bool]]:
        """(value, major) for 1-2-5 ticks inside the range."""
        out = []
        for k in range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1):
            for m in (1, 2, 5):
                v = m * 10.0**k
                if self.lo <= v <= self.hi:
                    out.append((v, m == 1))
        return out


def _bounds(values: Iterable[float], lo: float, hi: float) -> tuple[float, float]:
    """An axis range covering the values with some room, on 1-2-5 steps."""
    vals = [v for v in values if 1e-12 < v < 1e15]
    if vals:
        lo, hi = min(lo, min(vals) / 1.4), max(hi, max(vals) * 1.4)
    steps = [
        m * 10.0**k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2) for m in (1, 2, 5)
    ]
    return max(v for v in steps if v <= lo), min(v for v in steps if v >= hi)


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3g}" if value < 1 else f"{value:g}"


def svg_text(x: float, y: float, body: str, size: int = 11, anchor: str = "start", **attrs: str) -> str:
    extra = "".join(f" {k.replace('_', '-')}={quoteattr(v)}" for k, v in attrs.items())
    return f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}'{extra}>{escape(body)}</text>"


class _Labels:
    """Greedy label placement: the nearest offset whose box stays in the plot and overlaps least."""

    def __init__(self, box: tuple[float, float, float, float]) -> None:
        self.placed: list[tuple[float, float, float, float]] = []
        self.box = box

    def block(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.placed.append((x0, y0, x1, y1))

    def place(self, x: float, y: float, text: str, size: int = 10) -> tuple[float, float, str]:
        w, h = 0.56 * size * len(text), size + 1
        offsets = []
        for ring in (0, 12, 24, 36):
            offsets += [(6, -4 - ring), (6, 10 + ring), (-6 - w, -4 - ring), (-6 - w, 10 + ring)]
            offsets += [(-w / 2, -8 - ring), (-w / 2, 16 + ring)]
        best, best_cost = offsets[0], math.inf
        for dx, dy in offsets:
            x0, y0 = x + dx, y + dy - h + 2
            box = (x0, y0, x0 + w, y0 + h)
            if not (self.box[0] <= x0 and x0 + w <= self.box[2] and self.box[1] <= y0 and y0 + h <= self.box[3]):
                continue
            cost = sum(self._overlap(box, b) for b in self.placed)
            if cost < best_cost:
                best, best_cost = (dx, dy), cost
            if cost == 0:
                break
        dx, dy = best
        self.placed.append((x + dx, y + dy - h + 2, x + dx + w, y + dy + 2))
        return x + dx, y + dy, "start"

    @staticmethod
    def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
        return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def svg_frame(title: str, subtitle: str, height: float) -> list[str]:
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height:.0f}' "
        f"viewBox='0 0 {WIDTH} {height:.0f}' {FONT} role='img'>",
        f"<title>{escape(title)}</title>",
        f"<rect x='0' y='0' width='{WIDTH}' height='{height:.0f}' fill='white'/>",
        svg_text(LEFT, 24, title, 16, font_weight="bold"),
        svg_text(LEFT, 42, subtitle, 11, fill="#444444"),
        "<defs><clipPath id='plot'>"
        f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' height='{PLOT_BOTTOM - TOP}'/>"
        "</clipPath></defs>",
    ]
    return out


def _axes(x: _LogAxis, y: _LogAxis, xlabel: str, ylabel: str) -> list[str]:
    out = [
        f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' height='{PLOT_BOTTOM - TOP}' "
        "fill='none' stroke='#333333'/>"
    ]
    bottom = PLOT_BOTTOM
    for v, major in x.ticks():
        px = x(v)
        out.append(
            f"<line x1='{px:.1f}' y1='{bottom}' x2='{px:.1f}' y2='{bottom + (6 if major else 3)}' stroke='#333'/>"
        )
        out.append(svg_text(px, bottom + 18, _fmt(v), 10 if major else 9, "middle", fill="#333333"))
    for v, major in y.ticks():
        py = y(v)
        out.append(f"<line x1='{LEFT - (6 if major else 3)}' y1='{py:.1f}' x2='{LEFT}' y2='{py:.1f}' stroke='#333'/>")
        out.append(svg_text(LEFT - 8, py + 3, _fmt(v), 10 if major else 9, "end", fill="#333333"))
    out.append(svg_text((LEFT + WIDTH - RIGHT) / 2, bottom + 36, xlabel, 12, "middle"))
    cy = (TOP + bottom) / 2
    out.append(
        f"<text x='18' y='{cy:.1f}' font-size='12' text-anchor='middle' transform='rotate(-90 18 {cy:.1f})'>"
        f"{escape(ylabel)}</text>"
    )
    return out


def svg_footer(lines: list[str], start: float) -> tuple[list[str], float]:
    """The notes under the plot, wrapped, and the height they reach."""
    out = []
    y = start
    for line in lines:
        words, current = line.split(" "), ""
        for word in words:
            if len(current) + len(word) + 1 > 150:
                out.append(svg_text(LEFT, y, current, 10, fill="#444444"))
                y += 13
                current = "  " + word
            else:
                current = f"{current} {word}" if current else word
        if current:
            out.append(svg_text(LEFT, y, current, 10, fill="#444444"))
            y += 13
    return out, y


def _short(chip: Chip) -> str:
    return chip.model


def _grouped_points(points: list[tuple[Chip, float, float]]) -> list[tuple[float, float, list[Chip]]]:
    groups: dict[tuple[float, float], list[Chip]] = {}
    for chip, px, py in points:
        groups.setdefault((round(px, 6), round(py, 6)), []).append(chip)
    return [(px, py, chips) for (px, py), chips in groups.items()]


def _group_label(chips: list[Chip]) -> str:
    return " / ".join(dict.fromkeys(_short(c) for c in chips))


# ---- TPP x performance density -------------------------------------------------------------------
def tpp_density_svg(ctx: Context, *, highlight: DesignPoint | None = None, chips: Iterable[Chip] | None = None) -> str:
    """The 3A090 plane for the context's vintage and date, the catalogue chips, an optional design."""
    lines = _lines(ctx)
    pool = list(chips) if chips is not None else list(catalog().values())
    plotted: list[tuple[Chip, float, float, str | None]] = []
    missing: list[str] = []
    for chip in pool:
        if not chip.rates or not chip.die_area_mm2:
            missing.append(_short(chip))
            continue
        result, _ = classify_chip(chip, ctx)
        if result.performance_density is None or result.tpp <= 0:
            missing.append(_short(chip))
            continue
        plotted.append((chip, float(result.tpp), float(result.performance_density), result.paragraph))
    tpp_lines = sorted({float(lines[k]) for k in TPP_LINES})
    pd_lines = sorted({float(lines[k]) for k in PD_LINES})
    china = ctx.maybe("china_2026.tpp_max") if ctx.vintage.has("china_case_by_case_2026") else None
    xs = [p[1] for p in plotted] + tpp_lines + ([float(china.value)] if china else [])
    ys = [p[2] for p in plotted] + pd_lines
    if highlight is not None:
        xs.append(highlight.tpp)
        if highlight.pd:
            ys.append(highlight.pd)
    x = _LogAxis(*_bounds(xs, 100, 20000), LEFT, WIDTH - RIGHT)
    y = _LogAxis(*_bounds(ys, 1, 20), PLOT_BOTTOM, TOP)
    title = "ECCN 3A090: total processing performance × performance density"
    subtitle = (
        f"regions from policy data, vintage {ctx.vintage.name}, as of {ctx.as_of.isoformat()} "
        "(datacenter parts; floors inclusive, ceilings exclusive)"
    )
    out: list[str] = []
    # regions: every cell between consecutive lines is classified at its lower-left corner
    xb = [x.lo, *(v for v in tpp_lines if x.lo < v < x.hi), x.hi]
    yb = [y.lo, *(v for v in pd_lines if y.lo < v < y.hi), y.hi]
    best: dict[str | None, tuple[float, float, float]] = {}
    out.append("<g class='regions' clip-path='url(#plot)'>")
    for i in range(len(xb) - 1):
        for j in range(len(yb) - 1):
            para = paragraph_3a090(exact(xb[i]), exact(yb[j]), True, lines)
            x0, x1, y0, y1 = x(xb[i]), x(xb[i + 1]), y(yb[j + 1]), y(yb[j])
            colour = REGION_COLOURS.get(para, "#eeeeee")
            label = para or "not 3A090"
            out.append(
                f"<rect x='{x0:.1f}' y='{y0:.1f}' width='{x1 - x0:.1f}' height='{y1 - y0:.1f}' "
                f"fill='{colour}' data-region={quoteattr(label)}/>"
            )
            area = (x1 - x0) * (y1 - y0)
            if para not in best or area > best[para][0]:
                best[para] = (area, (x0 + x1) / 2, (y0 + y1) / 2)
    out.append("</g>")
    labels = _Labels((LEFT, TOP, WIDTH - RIGHT, PLOT_BOTTOM))
    for para, (_, cx, cy) in best.items():
        name = para or "not 3A090"
        half = 0.3 * 15 * len(name)
        labels.block(cx - half, cy - 9, cx + half, cy + 7)
        out.append(svg_text(cx, cy + 5, name, 15, "middle", font_weight="bold", fill="#555555", opacity="0.75"))
    out.append(f"<g class='lines' stroke='{LINE_COLOUR}' stroke-dasharray='4 3' clip-path='url(#plot)'>")
    for v in tpp_lines:
        out.append(f"<line x1='{x(v):.1f}' y1='{TOP}' x2='{x(v):.1f}' y2='{PLOT_BOTTOM}'/>")
    for v in pd_lines:
        out.append(f"<line x1='{LEFT}' y1='{y(v):.1f}' x2='{WIDTH - RIGHT}' y2='{y(v):.1f}'/>")
    out.append("</g>")
    for v in tpp_lines:
        out.append(svg_text(x(v), TOP - 4, f"TPP {_fmt(v)}", 9, "middle", fill=LINE_COLOUR))
    for v in pd_lines:
        out.append(svg_text(WIDTH - RIGHT - 4, y(v) - 3, f"PD {_fmt(v)}", 9, "end", fill=LINE_COLOUR))
    if china is not None:
        cx = x(float(china.value))
        out.append(
            f"<line x1='{cx:.1f}' y1='{TOP}' x2='{cx:.1f}' y2='{PLOT_BOTTOM}' stroke='{CHINA_COLOUR}' "
            "stroke-dasharray='7 4'/>"
        )
        out.append(
            svg_text(
                cx - 4,
                TOP + 14,
                f"China 2026 case-by-case: TPP < {_fmt(float(china.value))}",
                10,
                "end",
                fill=CHINA_COLOUR,
            )
        )
    out += _axes(x, y, "total processing performance (TPP, log scale)", "performance density (TPP / mm², log scale)")
    out.append("<g class='chips'>")
    for px, py, group in _grouped_points([(c, t, p) for c, t, p, _ in plotted]):
        sx, sy = x(px), y(py)
        consumer = all(not c.datacenter for c in group)
        names = "; ".join(f"{c.name}: TPP {px:,.0f}, PD {py:.2f}" for c in group)
        ids = " ".join(c.id for c in group)
        fill = "white" if consumer else CHIP_COLOUR
        out.append(
            f"<g class='chip' data-ids={quoteattr(ids)}><title>{escape(names)}</title>"
            f"<circle cx='{sx:.1f}' cy='{sy:.1f}' r='4' fill='{fill}' stroke='{CHIP_COLOUR}' stroke-width='1.5'/>"
        )
        lx, ly, anchor = labels.place(sx, sy, _group_label(group))
        out.append(svg_text(lx, ly, _group_label(group), 10, anchor, fill=CHIP_COLOUR) + "</g>")
    out.append("</g>")
    if highlight is not None and highlight.tpp > 0:
        hx = x(highlight.tpp)
        if highlight.pd:
            hy = y(highlight.pd)
            text = f"{highlight.label}: TPP {highlight.tpp:,.0f}, PD {highlight.pd:.2f}"
        else:
            hy = PLOT_BOTTOM - 8
            text = f"{highlight.label}: TPP {highlight.tpp:,.0f} (PD unknown)"
        out.append(
            f"<g class='highlight'><title>{escape(text)}</title>"
            f"<path d='M {hx:.1f} {hy - 8:.1f} L {hx + 8:.1f} {hy:.1f} L {hx:.1f} {hy + 8:.1f} L {hx - 8:.1f} {hy:.1f} Z' "
            f"fill='{HIGHLIGHT_COLOUR}' stroke='white'/>"
        )
        lx, ly, anchor = labels.place(hx, hy, text, 11)
        out.append(svg_text(lx + 4, ly, text, 11, anchor, fill=HIGHLIGHT_COLOUR, font_weight="bold") + "</g>")
    notes = [
        "Filled dots: datacenter parts; open dots: parts not designed or marketed for datacenters, which by Note 2 "
        f"are outside 3A090 unless TPP ≥ {_fmt(float(lines['note2.tpp_min']))} (density then plays no part).",
        "Region boundaries: "
        + ", ".join(f"{k} {_fmt(float(lines[k]))}" for k in (*TPP_LINES, *PD_LINES))
        + " (15 CFR 774 Supp. 1, ECCN 3A090).",
    ]
    if missing:
        notes.append(f"Not plotted (no rates or die area in the catalogue): {', '.join(dict.fromkeys(missing))}.")
    footer, height = svg_footer(notes, PLOT_BOTTOM + 58)
    return "\n".join([*svg_frame(title, subtitle, height), *out, *footer, "</svg>"])


# ---- memory bandwidth x TPP --------------------------------------------------------------------------
def _ladder(lo: float, hi: float, most: int = 8) -> list[float]:
    values = []
    for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0**k
            if lo <= v <= hi:
                values.append(v)
    while len(values) > most:
        values = values[::2]
    return values


def bandwidth_tpp_svg(
    ctx: Context,
    model: ModelSpec,
    *,
    precision: str | None = None,
    highlight: Iterable[str] = (),
    chips: Iterable[Chip] | None = None,
) -> str:
    """Memory bandwidth against TPP for the catalogue chips, with lines of equal decode tokens/s."""
    wanted = set(highlight)
    pool = list(chips) if chips is not None else list(catalog().values())
    bits, _ = bit_lengths(ctx)
    name = model_precisions(model, ctx, precision)[0]
    width = bits[name]
    points: list[tuple[Chip, float, float, float]] = []
    for chip in pool:
        if not usable(chip):
            continue
        try:
            _, rate, _ = pick_rate(chip, model, ctx, precision)
        except TierlineError:  # a chip without the precision (or a wider one) is not plotted
            continue
        tpp = float(total_processing_performance(list(chip.rates), ctx).tpp)
        bw = bandwidth_gbs(chip)
        points.append((chip, tpp, float(bw), float(decode_step(model, rate, bw).tokens_per_s)))
    china_tpp = china_bw = None
    if ctx.vintage.has("china_case_by_case_2026"):
        china_tpp, china_bw = ctx.maybe("china_2026.tpp_max"), ctx.maybe("china_2026.dram_bandwidth_max")
    xs = [p[1] for p in points] + ([float(china_tpp.value)] if china_tpp else [])
    ys = [p[2] for p in points] + ([float(china_bw.value)] if china_bw else [])
    x = _LogAxis(*_bounds(xs, 1000, 10000), LEFT, WIDTH - RIGHT)
    y = _LogAxis(*_bounds(ys, 100, 1000), PLOT_BOTTOM, TOP)
    size = f"{float(model.parameters) / 1e9:g}B" if model.parameters >= 10**9 else f"{float(model.parameters):g}"
    active = (
        "" if model.active_parameters == model.parameters else f" ({float(model.active_parameters) / 1e9:g}B active)"
    )
    title = f"Memory bandwidth × TPP: decode upper bounds for a {size}-parameter model{active}"
    subtitle = (
        f"{float(model.bytes_per_weight):g} bytes/weight at {name}, batch {model.batch}, context {model.context_length:,}, "
        f"KV {float(model.kv_bytes_per_token):,.0f} bytes/token; vintage {ctx.vintage.name}, as of {ctx.as_of.isoformat()}"
    )
    out: list[str] = []
    out.append(
        f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' height='{PLOT_BOTTOM - TOP}' fill='#fbfbf8'/>"
    )
    # iso-throughput lines: tok/s = min(TPP/bits x 1e12 / (2A), B x bw x 1e9 / bytes)
    rates = [p[3] for p in points] or [1.0]
    data = (
        model.active_parameters * model.bytes_per_weight + model.batch * model.context_length * model.kv_bytes_per_token
    )
    out.append("<g class='iso' clip-path='url(#plot)' fill='none' stroke='#8aa17a' stroke-width='1.2'>")
    iso_labels = []
    for tau in _ladder(min(rates) / 2, max(rates) * 2):
        t = exact(tau)
        tpp_at = float(t * width * 2 * model.active_parameters / 10**12)
        bw_at = float(t * data / (model.batch * 10**9))
        left = max(tpp_at, x.lo)
        if bw_at <= 0 or left >= x.hi or bw_at >= y.hi:
            continue
        top_y, corner_y = TOP, y(max(bw_at, y.lo))
        path = f"M {x(left):.1f} {top_y} L {x(left):.1f} {corner_y:.1f} L {WIDTH - RIGHT} {corner_y:.1f}"
        out.append(f"<path d='{path}' data-tokens-per-s='{tau:g}'/>")
        if bw_at >= y.lo:
            iso_labels.append(svg_text(WIDTH - RIGHT - 4, corner_y - 3, f"{tau:g} tok/s", 9, "end", fill="#5b7a4a"))
    out.append("</g>")
    out += iso_labels
    if china_tpp is not None and china_bw is not None:
        cx, cy = x(float(china_tpp.value)), y(float(china_bw.value))
        out.append(
            f"<g stroke='{CHINA_COLOUR}' stroke-dasharray='7 4' clip-path='url(#plot)'>"
            f"<line x1='{cx:.1f}' y1='{TOP}' x2='{cx:.1f}' y2='{PLOT_BOTTOM}'/>"
            f"<line x1='{LEFT}' y1='{cy:.1f}' x2='{WIDTH - RIGHT}' y2='{cy:.1f}'/></g>"
        )
        out.append(
            svg_text(
                LEFT + 6,
                cy - 4,
                f"China 2026 case-by-case below TPP {_fmt(float(china_tpp.value))} and "
                f"{_fmt(float(china_bw.value))} GB/s",
                10,
                fill=CHINA_COLOUR,
            )
        )
    out += _axes(x, y, "total processing performance (TPP, log scale)", "memory bandwidth (GB/s, log scale)")
    labels = _Labels((LEFT, TOP, WIDTH - RIGHT, PLOT_BOTTOM))
    out.append("<g class='chips'>")
    for px, py, group in _grouped_points([(c, t, b) for c, t, b, _ in points]):
        sx, sy = x(px), y(py)
        hot = any(c.id in wanted for c in group)
        colour = HIGHLIGHT_COLOUR if hot else CHIP_COLOUR
        tok = {c.id: r for c, _, _, r in points}
        names = "; ".join(f"{c.name}: TPP {px:,.0f}, {py:,.0f} GB/s, decode ≤ {tok[c.id]:,.1f} tok/s" for c in group)
        ids = " ".join(c.id for c in group)
        out.append(
            f"<g class='chip' data-ids={quoteattr(ids)}><title>{escape(names)}</title>"
            f"<circle cx='{sx:.1f}' cy='{sy:.1f}' r='{6 if hot else 4}' fill='{colour}' stroke='white'/>"
        )
        label = _group_label(group)
        lx, ly, anchor = labels.place(sx, sy, label, 11 if hot else 10)
        weight = {"font_weight": "bold"} if hot else {}
        out.append(svg_text(lx, ly, label, 11 if hot else 10, anchor, fill=colour, **weight) + "</g>")
    out.append("</g>")
    notes = [
        "Lines of equal decode throughput (upper bound, no efficiency factors, attention FLOPs ignored): "
        "tokens/s = B / max(2·A·B / peak, (A·w + B·L·kv) / bandwidth), with the peak read off the TPP axis as "
        f"TPP / {width} bits ({name}); a chip's dot uses its own dense {name} rate, so a dot can sit off its line "
        "when its TPP is set at another precision.",
        "At small batches the lines run flat: decode is bound by memory bandwidth, which the TPP and density "
        "lines of 3A090 do not measure.",
    ]
    footer, height = svg_footer(notes, PLOT_BOTTOM + 58)
    return "\n".join([*svg_frame(title, subtitle, height), *out, *footer, "</svg>"])
