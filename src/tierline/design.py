"""Threshold headroom for a chip design: where a design sits against every line that matters, how far
it is from each, the largest rate that stays below a chosen line, and the smallest single change that
flips its classification.

The lines are read from policy data through the context (never literals here): the 3A090.a/.b TPP
and density lines and Note 2, the 3A090.c memory-bandwidth-density line (stand-alone HBM) and the
January 2026 China/Macau case-by-case ceilings on TPP and DRAM bandwidth. Arithmetic is exact
(fractions from the decimal figures). A flipping change is found by trying each lever (uniform rate
scale; applicable die area; memory bandwidth for the bandwidth lines) against each line, rounding
the boundary value onto a practical grid in the flipping direction, and confirming with classify()
(or the China review test) that the outcome really changes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, cast

from tierline.classification import CCL, HBM_CITATION, NOTE2_CITATION, Die, ItemSpec, StandaloneHBM, classify
from tierline.errors import TierlineError
from tierline.policy import Context
from tierline.policy.vintages import ParameterUse, get_vintage, load_vintages
from tierline.tpp import Rate, bit_lengths, exact

CHINA_CITATION = "15 CFR 742.6(b)(10)(iii)(A)(1) (91 FR 1684)"
CHINA_PROVISION = "china_case_by_case_2026"
CASE_BY_CASE, DENIAL = "case_by_case", "presumption_of_denial"

# Input ranges: outside them the figure is almost surely in another unit.
BANDWIDTH_RANGE_GBS = (1, 1_000_000)
AREA_RANGE_MM2 = (Fraction(1, 100), 100_000)
RATE_RANGE_TOPS = (Fraction(1, 1_000_000), 1_000_000_000)
CLOCK_RANGE_GHZ = (Fraction(1, 1000), 100)
MAX_MAC_UNITS = 10**12

# Grids the practical value of a lever is rounded onto (in the flipping direction).
SCALE_GRID = Fraction(1, 10_000)
AREA_GRID = Fraction(1, 10)
BANDWIDTH_GRID = Fraction(1, 10)

GOVERNS_3A090, GOVERNS_HBM, GOVERNS_CHINA = "3A090", "3A090.c", "china_2026"
LINE_CHOICES = ("a1", "a2", "b1", "b2", "note2", "c", "china-tpp", "china-bw")


@dataclass(frozen=True)
class Line:
    """One threshold: the quantity it tests, the relation the paragraph or policy requires."""

    key: str
    group: str
    parameter: str
    quantity: str  # tpp | pd | mbd | bandwidth
    relation: str  # ">=" | "<" | ">"
    label: str
    governs: str
    citation: str

    @property
    def on_line_upper(self) -> bool:
        """Whether a value exactly on the line sits with the values above it."""
        return self.relation != ">"

    def meets(self, value: Fraction, threshold: Fraction) -> bool:
        if self.relation == ">=":
            return value >= threshold
        if self.relation == ">":
            return value > threshold
        return value < threshold


def _l(key: str, quantity: str, relation: str, label: str) -> Line:
    group = key.split(".")[0]
    para = {"a1": "3A090.a.1", "a2": "3A090.a.2", "b1": "3A090.b.1", "b2": "3A090.b.2"}.get(group)
    citation = f"{CCL}, ECCN {para}" if para else NOTE2_CITATION
    return Line(key, group, f"eccn_3a090.{key}", quantity, relation, label, GOVERNS_3A090, citation)


LINES: tuple[Line, ...] = (
    _l("a1.tpp_min", "tpp", ">=", "3A090.a.1 TPP"),
    _l("a2.tpp_min", "tpp", ">=", "3A090.a.2 TPP"),
    _l("a2.pd_min", "pd", ">=", "3A090.a.2 density"),
    _l("b1.tpp_min", "tpp", ">=", "3A090.b.1 TPP floor"),
    _l("b1.tpp_max", "tpp", "<", "3A090.b.1 TPP ceiling"),
    _l("b1.pd_min", "pd", ">=", "3A090.b.1 density floor"),
    _l("b1.pd_max", "pd", "<", "3A090.b.1 density ceiling"),
    _l("b2.tpp_min", "tpp", ">=", "3A090.b.2 TPP"),
    _l("b2.pd_min", "pd", ">=", "3A090.b.2 density floor"),
    _l("b2.pd_max", "pd", "<", "3A090.b.2 density ceiling"),
    _l("note2.tpp_min", "tpp", ">=", "Note 2 TPP (not datacenter)"),
    Line(
        "c.mbd_min",
        "c",
        "eccn_3a090c.mbd_min",
        "mbd",
        ">",
        "3A090.c memory bandwidth density",
        GOVERNS_HBM,
        HBM_CITATION,
    ),
    Line(
        "china.tpp_max",
        "china-tpp",
        "china_2026.tpp_max",
        "tpp",
        "<",
        "China 2026 case-by-case TPP",
        GOVERNS_CHINA,
        CHINA_CITATION,
    ),
    Line(
        "china.dram_bandwidth_max",
        "china-bw",
        "china_2026.dram_bandwidth_max",
        "bandwidth",
        "<",
        "China 2026 case-by-case DRAM bandwidth",
        GOVERNS_CHINA,
        CHINA_CITATION,
    ),
)
LINE_BY_KEY = {line.key: line for line in LINES}
SYMBOLS = {"tpp": "TPP", "pd": "PD", "mbd": "memory bandwidth density", "bandwidth": "DRAM bandwidth (GB/s)"}
UNITS = {"tpp": "", "pd": " TPP/mm²", "mbd": " GB/s/mm²", "bandwidth": " GB/s"}
# The lines whose rate (or bandwidth) ceilings a --line choice reports.
CEILING_LINES = {
    "a1": ("a1.tpp_min",),
    "a2": ("a2.tpp_min", "a2.pd_min"),
    "b1": ("b1.tpp_min", "b1.pd_min"),
    "b2": ("b2.tpp_min", "b2.pd_min"),
    "note2": ("note2.tpp_min",),
    "c": ("c.mbd_min",),
    "china-tpp": ("china.tpp_max",),
    "china-bw": ("china.dram_bandwidth_max",),
}


# ---- inputs ------------------------------------------------------------------------------------------
def _exact_number(value: Fraction) -> float:
    """A rate or area passed on exactly: Rate and Die values go through exact(), which keeps a Fraction."""
    return cast(float, value)


def _finite(field: str, value: float, unit: str) -> Fraction:
    if not isinstance(value, (int, float, Fraction)) or value != value or value in (math.inf, -math.inf):
        raise TierlineError(field, f"{value!r} {unit} is not a finite number")
    return exact(value)


def check_bandwidth(field: str, value: float) -> Fraction:
    """A bandwidth in GB/s; refused outside 1 .. 1,000,000 GB/s, which means another unit was used."""
    low, high = BANDWIDTH_RANGE_GBS
    got = _finite(field, value, "GB/s")
    if got <= 0:
        raise TierlineError(field, f"{value:g} GB/s is not a positive bandwidth")
    if got < low:
        raise TierlineError(
            field, f"{value:g} GB/s is below {low} GB/s: give the bandwidth in GB/s (e.g. 3350 for 3.35 TB/s)"
        )
    if got > high:
        raise TierlineError(
            field, f"{value:g} GB/s is above {high:,} GB/s: give the bandwidth in GB/s (e.g. 3350, not bytes/s)"
        )
    return got


def check_area(field: str, value: float) -> Fraction:
    low, high = AREA_RANGE_MM2
    got = _finite(field, value, "mm²")
    if got <= 0:
        raise TierlineError(field, f"{value:g} mm² is not a positive area")
    if got < low or got > high:
        raise TierlineError(field, f"{value:g} mm² is outside {float(low):g} .. {high:,} mm²: give the area in mm²")
    return got


def parse_mac(text: str, ctx: Context, index: int = 0) -> Rate:
    """``UNITS@CLOCK_GHZ:BITS`` (or ``:PRECISION``) to a dense rate: 2 x units x clock (ops per MAC = 2).

    E.g. ``540672@1.83:8`` is 2 x 540,672 x 1.83 GHz = 1,978.86 TOPS at an 8-bit precision.
    """
    field = f"mac[{index}]"
    match = re.fullmatch(r"\s*([^@:\s]+)\s*@\s*([^@:\s]+)\s*:\s*([A-Za-z0-9]+)\s*", text)
    if not match:
        raise TierlineError(field, f"{text!r} is not UNITS@CLOCK_GHZ:BITS (for example 540672@1.83:8)")
    units_text, clock_text, width = match.groups()
    try:
        units = Fraction(units_text)
    except (ValueError, ZeroDivisionError):
        raise TierlineError(field, f"MAC unit count {units_text!r} is not a number") from None
    if units.denominator != 1 or units < 1 or units > MAX_MAC_UNITS:
        raise TierlineError(field, f"MAC unit count {units_text!r} is not a whole number from 1 to {MAX_MAC_UNITS:.0e}")
    try:
        clock = Fraction(clock_text)
    except (ValueError, ZeroDivisionError):
        raise TierlineError(field, f"clock {clock_text!r} is not a number of GHz") from None
    low, high = CLOCK_RANGE_GHZ
    if not low <= clock <= high:
        raise TierlineError(field, f"clock {clock_text} GHz is outside {float(low):g} .. {high} GHz: give it in GHz")
    bits, _ = bit_lengths(ctx)
    if width.isdigit():
        wanted = int(width)
        names = sorted(p for p, b in bits.items() if b == wanted)
        if not names:
            known = ", ".join(str(b) for b in sorted(set(bits.values())))
            raise TierlineError(field, f"no precision has bit length {wanted} in the policy data (one of {known})")
        precision = f"int{wanted}" if f"int{wanted}" in names else names[0]
    else:
        precision = width.lower()
        if precision not in bits:
            raise TierlineError(field, f"unknown precision {width!r}; one of {', '.join(sorted(bits))}")
    rate = 2 * units * clock / 1000  # TOPS: 2 ops per MAC x units x GHz = 10^9 ops/s -> / 10^3 for 10^12
    return Rate(precision, _exact_number(rate))


@dataclass(frozen=True)
class Design:
    """A chip design: dense rates, logic dies, memory and interconnect."""

    rates: tuple[Rate, ...]
    dies: tuple[Die, ...] = ()
    datacenter: bool = True
    memory_bandwidth_gbs: float | None = None
    stack_area_mm2: float | None = None
    interconnect_gbs: float | None = None
    name: str | None = None

    def spec(self) -> ItemSpec:
        return ItemSpec(rates=self.rates, dies=self.dies, datacenter=self.datacenter, name=self.name)

    @property
    def applicable_area(self) -> Fraction:
        return sum((exact(d.area_mm2) for d in self.dies if not d.planar), Fraction(0))

    def hbm(self) -> StandaloneHBM | None:
        if self.memory_bandwidth_gbs is None or self.stack_area_mm2 is None:
            return None
        return StandaloneHBM(self.memory_bandwidth_gbs, self.stack_area_mm2)


def build_design(
    ctx: Context,
    *,
    rates: list[Rate] | None = None,
    macs: list[str] | None = None,
    die_areas: list[float] | None = None,
    planar_die_areas: list[float] | None = None,
    memory_bandwidth_gbs: float | None = None,
    stack_area_mm2: float | None = None,
    interconnect_gbs: float | None = None,
    datacenter: bool = True,
    name: str | None = None,
) -> Design:
    """A validated design from the inputs; every refusal names the field."""
    rates, macs = rates or [], macs or []
    if rates and macs:
        raise TierlineError("rate", "give either rates (PRECISION=TOPS) or MAC units (UNITS@CLOCK_GHZ:BITS), not both")
    if not rates and not macs:
        raise TierlineError("rate", "give at least one rate (for example fp8=1979) or MAC spec (540672@1.83:8)")
    if macs:
        summed: dict[str, Fraction] = {}
        for i, text in enumerate(macs):
            rate = parse_mac(text, ctx, i)
            summed[rate.precision] = summed.get(rate.precision, Fraction(0)) + exact(rate.value)
        rates = [Rate(p, _exact_number(v)) for p, v in summed.items()]  # units of one width add up
    low, high = RATE_RANGE_TOPS
    for rate in rates:
        value = _finite(f"rate.{rate.precision}", rate.value, "TOPS")
        if value < 0:
            raise TierlineError(f"rate.{rate.precision}", f"{rate.value:g} is negative; a rate is 0 or more")
        if value and not low <= value <= high:
            raise TierlineError(
                f"rate.{rate.precision}",
                f"{float(value):g} is outside {float(low):g} .. {high:.0e}: give dense TOPS or TFLOPS",
            )
    if all(exact(r.value) == 0 for r in rates):
        raise TierlineError("rate", "every rate is zero: there is nothing to measure against the lines")
    dies = tuple(Die(_exact_number(check_area(f"die_area[{i}]", a))) for i, a in enumerate(die_areas or []))
    dies += tuple(
        Die(_exact_number(check_area(f"planar_die_area[{i}]", a)), planar=True)
        for i, a in enumerate(planar_die_areas or [])
    )
    if memory_bandwidth_gbs is not None:
        check_bandwidth("memory_bandwidth", memory_bandwidth_gbs)
    if stack_area_mm2 is not None:
        if memory_bandwidth_gbs is None:
            raise TierlineError("stack_area", "a stack area needs the memory bandwidth (GB/s) of those stacks")
        check_area("stack_area", stack_area_mm2)
    if interconnect_gbs is not None:
        check_bandwidth("interconnect", interconnect_gbs)
    design = Design(
        rates=tuple(rates),
        dies=dies,
        datacenter=datacenter,
        memory_bandwidth_gbs=memory_bandwidth_gbs,
        stack_area_mm2=stack_area_mm2,
        interconnect_gbs=interconnect_gbs,
        name=name,
    )
    classify(design.spec(), ctx)  # unknown precisions and the like fail here, naming the rate
    return design


# ---- measures ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measures:
    tpp: Fraction
    pd: Fraction | None
    mbd: Fraction | None
    bandwidth: Fraction | None

    def of(self, quantity: str) -> Fraction | None:
        value: Fraction | None = getattr(self, quantity)
        return value


def measures(design: Design, ctx: Context) -> tuple[Measures, Any]:
    result = classify(design.spec(), ctx)
    bw = exact(design.memory_bandwidth_gbs) if design.memory_bandwidth_gbs is not None else None
    mbd = bw / exact(design.stack_area_mm2) if bw is not None and design.stack_area_mm2 is not None else None
    return Measures(result.tpp, result.performance_density, mbd, bw), result


def _threshold(line: Line, ctx: Context) -> ParameterUse | None:
    """The line's parameter in force, or None (not in this vintage, not yet in force)."""
    if line.governs == GOVERNS_CHINA and not ctx.vintage.has(CHINA_PROVISION):
        return None
    use = ctx.maybe(line.parameter)
    return use if use is not None and use.value is not None else None


def china_review(m: Measures, ctx: Context) -> dict[str, Any]:
    """The 15 January 2026 China/Macau review policy for a licensable export from the US."""
    tpp_use = _threshold(LINE_BY_KEY["china.tpp_max"], ctx)
    bw_use = _threshold(LINE_BY_KEY["china.dram_bandwidth_max"], ctx)
    if tpp_use is None or bw_use is None:
        return {"in_force": False, "review": None}
    if m.bandwidth is None:
        review = None if m.tpp < exact(tpp_use.value) else DENIAL
    else:
        below = m.tpp < exact(tpp_use.value) and m.bandwidth < exact(bw_use.value)
        review = CASE_BY_CASE if below else DENIAL
    return {
        "in_force": True,
        "review": review,
        "citation": CHINA_CITATION,
        "note": "exports from the US to China or Macau that need a licence; with certifications"
        + ("" if m.bandwidth is not None or review else "; give the memory bandwidth to decide"),
    }


def _hbm_status(design: Design, ctx: Context, bandwidth: Fraction | None = None) -> str | None:
    hbm = design.hbm()
    if hbm is None:
        return None
    if bandwidth is not None:
        hbm = StandaloneHBM(_exact_number(bandwidth), hbm.area_mm2)
    return classify(ItemSpec(hbm=hbm), ctx).status


def _outcome(paragraph: str | None, status: str) -> str:
    return paragraph or {"needs_review": "needs review", "not_controlled": "not 3A090"}.get(status, status)


# ---- headroom ----------------------------------------------------------------------------------------
def _side(value: Fraction, threshold: Fraction) -> str:
    return "above" if value > threshold else "below" if value < threshold else "on"


def _condition(line: Line, threshold: Fraction) -> str:
    rel = {">=": "≥", ">": ">", "<": "<"}[line.relation]
    return f"{SYMBOLS[line.quantity]} {rel} {float(threshold):,g}{UNITS[line.quantity]}"


def _applies(line: Line, design: Design) -> tuple[bool, str]:
    if line.governs == GOVERNS_HBM:
        return True, "applies to the HBM stacks if sold stand-alone; co-packaged HBM is classified with its logic IC"
    if line.governs == GOVERNS_CHINA:
        return True, "licence review for exports from the US to China or Macau (not a classification)"
    if line.group == "note2":
        if design.datacenter:
            return False, "Note 2 concerns parts not designed or marketed for datacenters"
        return True, "not a datacenter part: outside 3A090 unless TPP reaches this line"
    if line.group != "a1" and not design.datacenter:
        return False, "Note 2: for a part not designed or marketed for datacenters only TPP ≥ the a.1 line counts"
    return True, ""


def _missing(quantity: str) -> str:
    return {
        "pd": "no non-planar logic die area given (--die-area)",
        "mbd": "needs memory bandwidth and stack area (--memory-bandwidth, --stack-area)",
        "bandwidth": "needs the memory bandwidth (--memory-bandwidth)",
    }.get(quantity, "unknown")


def headroom(design: Design, ctx: Context, m: Measures) -> list[dict[str, Any]]:
    """Distance to every line: value, threshold, difference, ratio, side, whether the condition holds."""
    rows = []
    for line in LINES:
        applies, note = _applies(line, design)
        row: dict[str, Any] = {
            "line": line.key,
            "group": line.group,
            "label": line.label,
            "quantity": line.quantity,
            "governs": line.governs,
            "citation": line.citation,
            "applies": applies,
            **({"note": note} if note else {}),
        }
        use = _threshold(line, ctx)
        if use is None:
            rows.append({**row, "in_force": False, "note": f"not in force under {ctx.vintage.name} on {ctx.as_of}"})
            continue
        threshold = exact(use.value)
        value = m.of(line.quantity)
        row.update(
            in_force=True,
            threshold=float(threshold),
            condition=_condition(line, threshold),
            inclusive=line.relation == ">=",
            parameter=use.as_dict(),
            confidence=use.confidence,
        )
        if value is None:
            rows.append({**row, "value": None, "note": _missing(line.quantity)})
            continue
        row.update(
            value=float(value),
            difference=float(value - threshold),
            ratio=float(value / threshold),
            side=_side(value, threshold),
            meets=line.meets(value, threshold),
        )
        rows.append(row)
    return rows


def _ceiling_rates(threshold: Fraction, ctx: Context, design: Design, area: Fraction | None) -> list[dict[str, Any]]:
    bits, _ = bit_lengths(ctx)
    given = {r.precision: exact(r.value) for r in design.rates}
    out = []
    for precision, width in sorted(bits.items(), key=lambda kv: (-kv[1], kv[0])):
        limit = threshold * (area if area is not None else 1) / width
        entry: dict[str, Any] = {
            "precision": precision,
            "bits": width,
            "rate_below": float(limit),
            "exact": str(limit),
        }
        if precision in given:
            entry.update(design_rate=float(given[precision]), margin=float(limit - given[precision]))
        out.append(entry)
    return out


def ceilings(line_choice: str, design: Design, ctx: Context, m: Measures) -> dict[str, Any]:
    """The largest dense rate per precision strictly below the chosen line (TPP = rate x bits, so
    rate < line / bits; for a density line rate < line x applicable area / bits), or for the
    bandwidth lines the largest bandwidth on the uncontrolled / case-by-case side."""
    if line_choice not in CEILING_LINES:
        raise TierlineError("line", f"unknown line {line_choice!r}; one of {', '.join(LINE_CHOICES)}")
    entries = []
    for key in CEILING_LINES[line_choice]:
        line = LINE_BY_KEY[key]
        use = _threshold(line, ctx)
        if use is None:
            entries.append({"line": key, "in_force": False})
            continue
        threshold = exact(use.value)
        entry: dict[str, Any] = {
            "line": key,
            "label": line.label,
            "threshold": float(threshold),
            "parameter": use.as_dict(),
        }
        if line.quantity == "tpp":
            entry.update(rule="rate < line / bit length (strictly below)", strict=True)
            entry["rates"] = _ceiling_rates(threshold, ctx, design, None)
        elif line.quantity == "pd":
            area = design.applicable_area
            if not area:
                entries.append({**entry, "note": _missing("pd")})
                continue
            entry.update(
                rule="rate < line x applicable die area / bit length (strictly below)",
                strict=True,
                applicable_die_area=float(area),
            )
            entry["rates"] = _ceiling_rates(threshold, ctx, design, area)
        elif line.quantity == "mbd":
            if design.stack_area_mm2 is None:
                entries.append({**entry, "note": _missing("mbd")})
                continue
            limit = threshold * exact(design.stack_area_mm2)
            entry.update(
                rule="bandwidth <= line x stack area (the 3A090.c line is strict: > line is controlled)",
                strict=False,
                max_bandwidth_gbs=float(limit),
                exact=str(limit),
            )
        else:
            entry.update(
                rule="bandwidth < line (strictly below)",
                strict=True,
                max_bandwidth_gbs=float(threshold),
                exact=str(threshold),
            )
        if m.bandwidth is not None and line.quantity in ("mbd", "bandwidth"):
            entry["design_bandwidth_gbs"] = float(m.bandwidth)
        entries.append(entry)
    return {"line": line_choice, "entries": entries}


# ---- levers ------------------------------------------------------------------------------------------
def _onto_grid(x: Fraction, grid: Fraction, up: bool, closed: bool) -> Fraction:
    """The grid value nearest `x` in the flipping direction (`x` itself only when the side is closed)."""
    steps = x / grid
    n = math.ceil(steps) if up else math.floor(steps)
    value = n * grid
    if value == x and not closed:
        value += grid if up else -grid
    return value


def _decimal(x: Fraction, places: int) -> str:
    text = f"{float(x):,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _pct(change: Fraction) -> str:
    pct = float(change) * 100
    places = 2 if abs(pct) >= 0.01 or pct == 0 else 4
    return f"{pct:+.{places}f}%".replace("-", "−")


def _scaled(design: Design, k: Fraction) -> Design:
    rates = tuple(Rate(r.precision, _exact_number(exact(r.value) * k), r.sparse) for r in design.rates)
    return replace(design, rates=rates)


def _resized(design: Design, area: Fraction) -> Design:
    factor = area / design.applicable_area
    dies = tuple(d if d.planar else Die(_exact_number(exact(d.area_mm2) * factor)) for d in design.dies)
    return replace(design, dies=dies)


def _outcome_of(governs: str, design: Design, ctx: Context, bandwidth: Fraction | None = None) -> str | None:
    if governs == GOVERNS_3A090:
        result = classify(design.spec(), ctx)
        return _outcome(result.paragraph, result.status)
    if governs == GOVERNS_HBM:
        status = _hbm_status(design, ctx, bandwidth)
        return None if status is None else ("3A090.c" if status == "controlled" else "not 3A090.c")
    m, _ = measures(design, ctx)
    if bandwidth is not None:
        m = Measures(m.tpp, m.pd, m.mbd, bandwidth)
    review = china_review(m, ctx)["review"]
    return None if review is None else review.replace("_", " ")


def levers(design: Design, ctx: Context, m: Measures) -> list[dict[str, Any]]:
    """Every (lever, line) crossing, its exact boundary, the practical value and what classify() says."""
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, Fraction], dict[str, Any]] = {}
    area = design.applicable_area
    for line in LINES:
        use = _threshold(line, ctx)
        value = m.of(line.quantity)
        if use is None or value is None or value == 0:
            continue
        threshold = exact(use.value)
        upper = value > threshold or (value == threshold and line.on_line_upper)
        target_upper = not upper
        closed = target_upper == line.on_line_upper
        options: list[tuple[str, Fraction, bool, Fraction]] = []  # lever, boundary, increasing, grid
        if line.quantity in ("tpp", "pd"):
            options.append(("rate_scale", threshold / value, True, SCALE_GRID))
        if line.quantity == "pd" and area > 0:
            options.append(("die_area", m.tpp / threshold, False, AREA_GRID))
        if line.quantity == "mbd" and design.stack_area_mm2 is not None:
            options.append(("memory_bandwidth", threshold * exact(design.stack_area_mm2), True, BANDWIDTH_GRID))
        if line.quantity == "bandwidth":
            options.append(("memory_bandwidth", threshold, True, BANDWIDTH_GRID))
        before = _outcome_of(line.governs, design, ctx)
        for lever, boundary, increasing, grid in options:
            dedupe = (lever, line.governs, boundary)
            if dedupe in seen:
                seen[dedupe]["lines"].append(line.key)
                continue
            up = target_upper == increasing
            practical = _onto_grid(boundary, grid, up, closed)
            if practical <= 0:
                continue
            if lever == "rate_scale":
                changed, bandwidth, current = _scaled(design, practical), None, Fraction(1)
                relative = practical - 1
                action = f"scale all rates by {_decimal(practical, 4)} ({_pct(relative)})"
            elif lever == "die_area":
                changed, bandwidth, current = _resized(design, practical), None, area
                relative = practical / area - 1
                verb = "grow" if practical > area else "shrink"
                action = f"{verb} the non-planar die area to {_decimal(practical, 1)} mm² ({_pct(relative)})"
            else:
                assert m.bandwidth is not None
                changed, bandwidth, current = design, practical, m.bandwidth
                relative = practical / m.bandwidth - 1
                verb = "raise" if practical > m.bandwidth else "lower"
                action = f"{verb} the memory bandwidth to {_decimal(practical, 1)} GB/s ({_pct(relative)})"
            if lever == "memory_bandwidth" and bandwidth is not None:
                changed = replace(design, memory_bandwidth_gbs=_exact_number(bandwidth))
            after = _outcome_of(line.governs, changed, ctx, bandwidth)
            entry = {
                "lever": lever,
                "lines": [line.key],
                "governs": line.governs,
                "direction": "up" if practical > current else "down",
                "boundary": float(boundary),
                "boundary_exact": str(boundary),
                "boundary_reached": closed,
                "value": float(practical),
                "current": float(current),
                "relative_change": float(relative),
                "change": action,
                "before": before,
                "after": after,
                "flips": None not in (before, after) and after != before,
                "_size": abs(relative),
            }
            seen[dedupe] = entry
            out.append(entry)
    out.sort(key=lambda e: (e["governs"], not e["flips"], e["_size"]))
    return out


def _smallest(candidates: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    hits = [c for c in candidates if c["flips"] and all(c.get(k) == v for k, v in match.items())]
    return min(hits, key=lambda c: c["_size"]) if hits else None


def _public(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if entry is None else {k: v for k, v in entry.items() if not k.startswith("_")}


def _level(outcome: str | None) -> str | None:
    if outcome and outcome.startswith("3A090."):
        return outcome.split(".")[1]
    return outcome


# ---- the answer --------------------------------------------------------------------------------------
def _vintage_row(design: Design, ctx: Context, name: str) -> dict[str, Any]:
    vctx = Context(vintage=get_vintage(name), as_of=ctx.as_of, parameters=ctx.parameters, reform=ctx.reform)
    m, result = measures(design, vctx)
    hbm = _hbm_status(design, vctx)
    return {
        "vintage": name,
        "paragraph": result.paragraph,
        "eccn": result.eccn,
        "status": result.status,
        "outcome": _outcome(result.paragraph, result.status),
        "nac_aca_eligible": result.nac_aca_eligible,
        "hbm_3a090c_if_standalone": hbm,
        "china_2026": china_review(m, vctx),
        **{k: v for k, v in vctx.stamp().items() if k == "vintage_warnings"},
    }


def design_answer(design: Design, ctx: Context, line: str | None = None) -> dict[str, Any]:
    """Headroom of a design: classification per vintage, distance to every line, rate ceilings for
    the chosen line (default a.1) and the smallest flipping change, each number cited."""
    choice = (line or "a1").lower()
    if choice not in LINE_CHOICES:
        raise TierlineError("line", f"unknown line {line!r}; one of {', '.join(LINE_CHOICES)}")
    m, result = measures(design, ctx)
    candidates = levers(design, ctx, m)
    chosen_keys = {ln.key for ln in LINES if ln.group == choice}
    line_hits = [c for c in candidates if set(c["lines"]) & chosen_keys]
    level_changes = [
        c for c in candidates if c["governs"] == GOVERNS_3A090 and _level(c["after"]) != _level(c["before"])
    ]
    h100 = ctx.use("reference_chip.h100_tpp")
    warnings = list(result.warnings)
    if design.memory_bandwidth_gbs is not None and design.memory_bandwidth_gbs < 10:
        warnings.append(f"memory bandwidth {design.memory_bandwidth_gbs:g} GB/s is very low: was it given in TB/s?")
    if design.interconnect_gbs is not None:
        warnings.append(
            "interconnect bandwidth is reported only: no 3A090 line in force tests it "
            "(the October 2023 rule dropped the 2022 interconnect test)"
        )
    return {
        **({"name": design.name} if design.name else {}),
        "design": {
            "rates": {r.precision: float(r.value) for r in design.rates},
            "dies": [{"area_mm2": float(d.area_mm2), "planar": d.planar} for d in design.dies],
            "datacenter": design.datacenter,
            "memory_bandwidth_gbs": design.memory_bandwidth_gbs,
            "stack_area_mm2": design.stack_area_mm2,
            "interconnect_gbs": design.interconnect_gbs,
        },
        "tpp": float(m.tpp),
        "tpp_precision": result.tpp_precision,
        "performance_density": None if m.pd is None else float(m.pd),
        "applicable_die_area": float(design.applicable_area) if design.dies else None,
        "memory_bandwidth_density": None if m.mbd is None else float(m.mbd),
        "h100_equivalents": float(m.tpp / exact(h100.value)),
        "h100_tpp": h100.as_dict(),
        "classification": {
            "paragraph": result.paragraph,
            "eccn": result.eccn,
            "status": result.status,
            "outcome": _outcome(result.paragraph, result.status),
        },
        "by_vintage": [_vintage_row(design, ctx, name) for name in load_vintages()],
        "lines": headroom(design, ctx, m),
        "ceilings": ceilings(choice, design, ctx, m),
        "smallest_change": _public(_smallest(candidates, governs=GOVERNS_3A090)),
        "smallest_level_change": _public(min(level_changes, key=lambda c: c["_size"]) if level_changes else None),
        "line_change": _public(min((c for c in line_hits if c["flips"]), key=lambda c: c["_size"], default=None)),
        "levers": [_public(c) for c in candidates],
        "method": (
            "each lever (uniform rate scale; applicable non-planar die area; memory bandwidth for the bandwidth "
            "lines) is moved to each line, rounded onto a grid (factor 0.0001, 0.1 mm², 0.1 GB/s) in the "
            "flipping direction, and the outcome is recomputed with classify() (3A090, 3A090.c) or the China "
            "2026 review test; `flips` says whether it really changed"
        ),
        "warnings": warnings,
        "trace": [s.as_dict() for s in result.trace],
        **ctx.stamp(),
    }
