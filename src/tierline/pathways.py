"""Pathway calculator: how much advanced compute can still reach a destination, by authorization.

One row per pathway, each computed the way the determination engine decides (``determination/``):

* **Country allocation** (15 CFR 742.6(b)(10)): Tier 2 only, within the allocation period; the cap
  from the policy data, doubled from a recorded government-to-government arrangement; remaining =
  cap - usage of ``allocation:CC`` on the date. Only licensed a-level exports draw it
  (``determination/review.py``): LPP and Data Center VEU flows do not.
* **License Exception LPP** (15 CFR 740.29(a)): per ultimate consignee and calendar year; remaining =
  sum over the consignees of (cap - that consignee's ``lpp:ID:YEAR`` usage); N unnamed consignees = N x cap.
  Not for Macau/D:5 destinations (15 CFR 740.2(a)(9)(ii)).
* **NVEU** (15 CFR 748.15; supp. no. 10 to part 748): the entity's phased cumulative allowance for
  the destination on the date - usage of ``nveu:ENTITY:CC``.
* **UVEU** (15 CFR 748.15; supp. no. 10 to part 748, para. 6): the largest further deployment in the
  destination that keeps the entity's installed base (``uveu:ENTITY:*``) within the geographic
  share limits of ``allowances.uveu_share_limits``.
* **Tier 1** (15 CFR 740.27, supp. no. 5(a)): no quantity limit; **Tier 3** (Macau/D:5): no pathway,
  licences are reviewed under a presumption of denial (15 CFR 742.6(b)(10)).

Every number comes from the dated policy data through the `Context` (vintage, as-of date, reform);
each row carries the parameter values it used and the CFR paragraphs it rests on.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from tierline.allowances import (
    AllowanceState,
    InMemoryAllowances,
    allocation_account,
    allocation_cap,
    lpp_account,
    lpp_cap,
    nveu_account,
    nveu_cap,
    uveu_share_checks,
    uveu_share_limits,
)
from tierline.catalog import classify_chip, find_chip
from tierline.charts import LEFT, RIGHT, WIDTH, svg_footer, svg_frame, svg_text
from tierline.countries import lookup
from tierline.errors import TierlineError, parse_date
from tierline.groups import ear_destination
from tierline.policy import Context
from tierline.policy.vintages import DEFAULT_VINTAGE, ParameterUse
from tierline.reforms import Reform, get_reform
from tierline.reports.model import Chart, Citation, Report, Section, Stamp, Table
from tierline.tiers import (
    SUPP5A_CITATION,
    TIER3_CITATION,
    UNITED_STATES,
    d5_or_macau,
    tier1_codes,
    tier3_codes,
    tier_of,
)
from tierline.tpp import exact
from tierline.web.svg import fmt_tpp

if TYPE_CHECKING:
    from tierline.ledger import Ledger

REFERENCE_CHIP_PARAMETER = "reference_chip.h100_tpp"
REFERENCE_CHIP_NAMES = frozenset({"h100e", "h100-equivalent", "h100-equivalents", "reference", "h100-reference"})
ALLOCATION_CITATION = "15 CFR 742.6(b)(10)"
LPP_CITATION = "15 CFR 740.29(a)"
LPP_EXCLUSION_CITATION = "15 CFR 740.2(a)(9)(ii)"
AIA_CITATION = "15 CFR 740.27"
VEU_CITATION = "15 CFR 748.15"
VEU_SHARES_CITATION = "15 CFR 748 Supp. 10, para. 6"
CHINA_2026_CITATION = "15 CFR 742.6(b)(10)(iii)(A)(1) (91 FR 1684)"
LABELS = {
    "tier1": "Tier 1 (AIA / no licence)",
    "tier3": "Tier 3 (Macau/D:5)",
    "allocation": "Country allocation",
    "lpp": "License Exception LPP",
    "nveu": "NVEU (national Data Center VEU)",
    "uveu": "UVEU (universal Data Center VEU)",
}


# ---- usage from the durable ledger ------------------------------------------------------------------
class LedgerUsage:
    """A ledger read as of each date asked: committed entries plus live holds dated on or before it
    (`Ledger.used(account, on)`), and its recorded g2g arrangements."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def used(self, account: str, on: dt.date) -> Fraction:
        committed, held = self.ledger.used(account, on)
        return committed + held

    def accounts(self, prefix: str, on: dt.date) -> dict[str, Fraction]:
        return {a: self.used(a, on) for a in self.ledger.account_ids(prefix)}

    def g2g_since(self, country: str) -> dt.date | None:
        return self.ledger.g2g_since(country)


# ---- the chip the counts are in ------------------------------------------------------------------
@dataclass(frozen=True)
class ChipBasis:
    """The chip whole-unit counts are given in: a catalogue chip, or the H100 reference chip."""

    name: str
    id: str | None  # catalogue id; None for the reference chip
    tpp: Fraction
    level: str | None  # 3A090 level ("a", "b") or None (not controlled)
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "tpp": float(self.tpp), "level": self.level, "source": self.source}


def is_reference_chip(name: str | None) -> bool:
    return name is None or name.strip().lower().replace(" ", "-") in REFERENCE_CHIP_NAMES


def chip_basis(chip: str | None, ctx: Context) -> tuple[ChipBasis, list[ParameterUse]]:
    """The chip counts are in: None (or ``H100e``) is the reference H100 (``reference_chip.h100_tpp``);
    any other name is looked up in the catalogue and its TPP computed by the classifier (15 CFR 774
    Supp. 1, ECCN 3A090 Technical Note). A part needing review is treated as a-level, as the engine does."""
    if is_reference_chip(chip):
        use = ctx.use(REFERENCE_CHIP_PARAMETER)
        return ChipBasis("H100 reference", None, exact(use.value), "a", f"parameter {use.path}"), [use]
    assert chip is not None
    match = find_chip(chip)
    result, _ = classify_chip(match.chip, ctx)
    if result.tpp <= 0:
        raise TierlineError("chip", f"{match.chip.name} has no TPP: whole-unit counts cannot be given")
    level = "a" if result.status == "needs_review" else result.level
    return ChipBasis(match.chip.name, match.chip.id, result.tpp, level, "catalogue (computed TPP)"), []


# ---- rows --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PathwayRow:
    """One pathway: whether it is open, its limit, usage and what remains, in TPP, chips and H100s.

    ``limit_tpp``/``remaining_tpp`` are None when the pathway has no quantity limit (``unlimited``)
    or is not available."""

    pathway: str
    label: str
    available: bool
    why_not: str | None
    limit_tpp: Fraction | None
    used_tpp: Fraction | None
    remaining_tpp: Fraction | None
    units: int | None
    h100_equivalents: Fraction | None
    citations: tuple[str, ...]
    parameters: tuple[ParameterUse, ...] = ()
    notes: tuple[str, ...] = ()
    unlimited: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pathway": self.pathway,
            "label": self.label,
            "available": self.available,
            "why_not": self.why_not,
            "unlimited": self.unlimited,
            "limit_tpp": _num(self.limit_tpp),
            "used_tpp": _num(self.used_tpp),
            "remaining_tpp": _num(self.remaining_tpp),
            "units": self.units,
            "h100_equivalents": _num(self.h100_equivalents),
            "citations": list(self.citations),
            "parameters": [_plain(p.as_dict()) for p in self.parameters],
            "notes": list(self.notes),
            "details": _plain(self.details),
        }


def _num(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Fraction):
        return float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class PathwayResult:
    """Every pathway to one destination on one date, under one vintage (and reform)."""

    destination: str  # EAR code (Hong Kong -> CN)
    destination_name: str
    tier: int
    tier_reason: str
    tier_citation: str
    tiers_apply: bool
    on: dt.date
    vintage: str
    reform: str | None
    chip: ChipBasis
    h100_tpp: Fraction
    entity: str | None
    headquarters: str | None
    consignees: int | tuple[str, ...]
    rows: tuple[PathwayRow, ...]
    notes: tuple[str, ...]
    stamp: Mapping[str, Any]

    def row(self, pathway: str) -> PathwayRow:
        """The row of one pathway (``allocation``, ``lpp``, ``nveu``, ``uveu``, ``tier1``, ``tier3``)."""
        for r in self.rows:
            if r.pathway == pathway:
                return r
        raise TierlineError("pathway", f"no {pathway!r} row; rows: {', '.join(r.pathway for r in self.rows)}")

    def parameters(self) -> list[ParameterUse]:
        """Every parameter value used, once."""
        seen: dict[str, ParameterUse] = {}
        for r in self.rows:
            for p in r.parameters:
                seen.setdefault(p.path, p)
        return list(seen.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "destination_name": self.destination_name,
            "tier": self.tier,
            "tier_reason": self.tier_reason,
            "tier_citation": self.tier_citation,
            "tiers_apply": self.tiers_apply,
            "chip": self.chip.as_dict(),
            "h100_tpp": float(self.h100_tpp),
            "entity": self.entity,
            "headquarters": self.headquarters,
            "consignees": self.consignees if isinstance(self.consignees, int) else list(self.consignees),
            "pathways": [r.as_dict() for r in self.rows],
            "notes": list(self.notes),
            "vintage": self.vintage,
            "reform": self.reform,
            "as_of": self.on.isoformat(),
            **{k: v for k, v in self.stamp.items() if k not in ("vintage", "as_of", "reform")},
        }


@dataclass
class _Inputs:
    ctx: Context
    destination: str
    tier: int
    on: dt.date
    state: AllowanceState
    chip: ChipBasis
    h100: Fraction
    h100_use: ParameterUse


def _closed(pathway: str, why: str, citations: tuple[str, ...], *params: ParameterUse, **kw: Any) -> PathwayRow:
    return PathwayRow(pathway, LABELS[pathway], False, why, None, None, None, None, None, citations, params, **kw)


def _open(
    inp: _Inputs,
    pathway: str,
    limit: Fraction,
    used: Fraction,
    citations: tuple[str, ...],
    params: Sequence[ParameterUse],
    *,
    why_empty: str,
    units: int | None = None,
    notes: Sequence[str] = (),
    details: Mapping[str, Any] | None = None,
) -> PathwayRow:
    """A limited pathway: remaining = max(limit - used, 0); closed (with `why_empty`) when nothing remains."""
    remaining = max(limit - used, Fraction(0))
    count = math.floor(remaining / inp.chip.tpp) if units is None else units
    return PathwayRow(
        pathway,
        LABELS[pathway],
        remaining > 0,
        None if remaining > 0 else why_empty,
        limit,
        used,
        remaining,
        count,
        remaining / inp.h100,
        citations,
        (*params, inp.h100_use),
        tuple(notes),
        details=details or {},
    )


def _missing(ctx: Context, *paths: str) -> str | None:
    """Why the vintage has no value for one of `paths` on the date (None when all are in force)."""
    for path in paths:
        if ctx.maybe(path) is None:
            first = ctx.parameters.get(path).values[0][0]
            return f"no value of {path} is in force on {ctx.as_of.isoformat()} (values start {first.isoformat()})"
    return None


def _allocation_row(inp: _Inputs) -> PathwayRow:
    ctx, dest = inp.ctx, inp.destination
    cites = (ALLOCATION_CITATION,)
    if not ctx.vintage.has("country_allocations"):
        return _closed("allocation", f"vintage {ctx.vintage.name} has no Tier 2 country allocations", cites)
    if inp.tier != 2:
        why = (
            "Tier 1 destination: no country allocation (AIA, no quantity limit)"
            if inp.tier == 1
            else "Tier 3 destination (Macau/D:5): no country allocation; presumption of denial"
        )
        return _closed("allocation", why, cites)
    paths = ("allocation.tier2_cumulative_tpp", "allocation.period_start", "allocation.period_end")
    missing = _missing(ctx, *paths)
    if missing:
        return _closed("allocation", missing, cites)
    since = inp.state.g2g_since(dest)
    g2g = since is not None and since <= inp.on
    cap, params = allocation_cap(ctx, g2g)
    notes = ["only licensed a-level exports draw the allocation; LPP and Data Center VEU shipments do not"]
    if since is not None:
        notes.append(
            f"government-to-government arrangement recorded: the allocation is doubled from {since.isoformat()}"
            + ("" if g2g else " (not yet on this date)")
        )
    if cap is None:
        start, end = params[1].value, params[2].value
        return _closed(
            "allocation",
            f"{inp.on.isoformat()} is outside the allocation period {start.isoformat()}..{end.isoformat()}; "
            "licences are reviewed case-by-case (unconfirmed)",
            cites,
            *params,
            notes=tuple(notes),
        )
    account = allocation_account(dest)
    used = inp.state.used(account, inp.on)
    after = ctx.maybe("allocation_policy.after_exhaustion")
    policy = after.value if after is not None else "unconfirmed"
    return _open(
        inp,
        "allocation",
        cap,
        used,
        cites,
        params,
        why_empty=f"country allocation exhausted: licences reviewed under {policy} (unconfirmed)",
        notes=notes,
        details={"account": account, "g2g_since": since, "g2g_doubled": g2g},
    )


def _consignee_ids(consignees: int | Sequence[str]) -> int | tuple[str, ...]:
    if isinstance(consignees, bool):
        raise TierlineError("consignees", "give a number of consignees or a list of consignee ids")
    if isinstance(consignees, int):
        if consignees < 1:
            raise TierlineError("consignees", f"{consignees} is not a number of consignees (at least 1)")
        return consignees
    ids = tuple(str(c).strip() for c in consignees)
    if not ids:
        raise TierlineError("consignees", "the list of consignee ids is empty")
    for cid in ids:
        if not cid or ":" in cid:
            raise TierlineError("consignees", f"{cid!r} is not a consignee id (non-empty, no ':')")
    if len(set(ids)) != len(ids):
        raise TierlineError("consignees", "a consignee id is listed twice")
    return ids


def _lpp_row(inp: _Inputs, consignees: int | tuple[str, ...]) -> PathwayRow:
    ctx = inp.ctx
    cites = (LPP_CITATION,)
    if not ctx.vintage.has("lpp"):
        return _closed("lpp", f"vintage {ctx.vintage.name} has no License Exception LPP", cites)
    if inp.destination in tier3_codes(ctx) or inp.destination in d5_or_macau(ctx.as_of):
        return _closed("lpp", "not available to Macau/D:5 destinations", (*cites, LPP_EXCLUSION_CITATION))
    missing = _missing(ctx, "lpp.annual_tpp_per_consignee")
    if missing:
        return _closed("lpp", missing, cites)
    cap, use = lpp_cap(ctx)
    year = inp.on.year
    notes = [
        "per ultimate consignee (or the operating entity a supp. no. 5(a)-headquartered consignee designates) "
        f"per calendar year; exports and reexports only; year {year}",
        "LPP shipments do not draw the country allocation",
    ]
    if isinstance(consignees, int):
        limit = cap * consignees
        units = consignees * math.floor(cap / inp.chip.tpp)
        notes.append(f"{consignees} unnamed consignee(s), nothing drawn yet this year")
        return _open(
            inp,
            "lpp",
            limit,
            Fraction(0),
            cites,
            [use],
            why_empty="LPP limit used up",
            units=units,
            notes=notes,
            details={"consignees": consignees, "per_consignee_tpp": cap, "year": year},
        )
    per: list[dict[str, Any]] = []
    used_total, units_total = Fraction(0), 0
    for cid in consignees:
        account = lpp_account(cid, year)
        used = inp.state.used(account, inp.on)
        left = max(cap - used, Fraction(0))
        count = math.floor(left / inp.chip.tpp)
        used_total += used
        units_total += count
        per.append({"consignee": cid, "account": account, "used_tpp": used, "remaining_tpp": left, "units": count})
    notes.append("units are counted per consignee (a chip cannot be split between two consignees' limits)")
    return _open(
        inp,
        "lpp",
        cap * len(consignees),
        used_total,
        cites,
        [use],
        why_empty=f"every listed consignee has used its {year} LPP limit",
        units=units_total,
        notes=notes,
        details={"consignees": per, "per_consignee_tpp": cap, "year": year},
    )


def _veu_closed(inp: _Inputs, pathway: str, headquarters: str | None) -> PathwayRow | None:
    ctx = inp.ctx
    cites = (VEU_CITATION,)
    if not ctx.vintage.has("data_center_veu"):
        return _closed(pathway, f"vintage {ctx.vintage.name} has no Data Center VEU", cites)
    if inp.destination in tier3_codes(ctx):
        return _closed(pathway, "no Data Center VEU data center in Macau or D:5", cites)
    if headquarters is not None and headquarters in tier3_codes(ctx):
        return _closed(pathway, f"entity headquartered in Macau/D:5 ({headquarters})", cites)
    return None


def _nveu_row(inp: _Inputs, entity: str, headquarters: str | None) -> PathwayRow:
    closed = _veu_closed(inp, "nveu", headquarters)
    if closed:
        return closed
    cites = (VEU_CITATION, f"{VEU_SHARES_CITATION} (schedule unconfirmed)")
    missing = _missing(inp.ctx, "nveu.cumulative_cap_schedule")
    if missing:
        return _closed("nveu", missing, cites)
    cap, use = nveu_cap(inp.ctx)
    account = nveu_account(entity, inp.destination)
    used = inp.state.used(account, inp.on)
    return _open(
        inp,
        "nveu",
        cap,
        used,
        cites,
        [use],
        why_empty=f"{entity}'s NVEU allowance for {inp.destination} is used up on this date",
        notes=[
            f"assumes {entity} holds an NVEU authorization for {inp.destination}",
            "cumulative installed-base allowance on the date (reported year-end figures; quarterly steps unconfirmed)",
            "NVEU deployments do not draw the country allocation",
        ],
        details={"account": account},
    )


def _uveu_bounds(
    installed: Mapping[str, Fraction], destination: str, headquarters: str, tier1: frozenset[str], ctx: Context
) -> tuple[Fraction, Fraction | None, bool, list[ParameterUse]]:
    """The further TPP x in `destination` that keeps every UVEU share limit: (low, high, feasible),
    high None when nothing bounds x from above. Each limit is linear in x:
    share = (a + b·x) / (T + x) with b = 1 when the destination is in the measured set."""
    limits, uses = uveu_share_limits(headquarters, ctx)
    total = sum(installed.values(), Fraction(0))
    low, high, feasible = Fraction(0), None, True

    def bound(a: Fraction, b: int, limit: Fraction, minimum: bool) -> None:
        nonlocal low, high, feasible
        k, r = b - limit, limit * total - a  # minimum: k·x >= r; maximum: k·x <= r
        if k == 0:
            feasible = feasible and (r <= 0 if minimum else r >= 0)
        elif (k > 0) == minimum:
            low = max(low, r / k)
        else:
            high = r / k if high is None else min(high, r / k)

    for limit in limits:
        if limit.measure == "tier1":
            a = sum((v for c, v in installed.items() if c in tier1), Fraction(0))
            bound(a, int(destination in tier1), limit.bound, limit.minimum)
        elif limit.measure == "us":
            bound(
                installed.get(UNITED_STATES, Fraction(0)), int(destination == UNITED_STATES), limit.bound, limit.minimum
            )
        elif limit.measure == "single_non_tier1":
            for country in sorted({*installed, destination} - tier1):
                bound(installed.get(country, Fraction(0)), int(country == destination), limit.bound, limit.minimum)
        else:  # pragma: no cover - a new measure must be taught here
            raise TierlineError("uveu", f"unknown UVEU share measure {limit.measure!r}")
    if high is not None and high < low:
        feasible = False
    return low, high, feasible, uses


def _uveu_row(inp: _Inputs, entity: str, headquarters: str | None) -> PathwayRow:
    closed = _veu_closed(inp, "uveu", headquarters)
    if closed:
        return closed
    ctx = inp.ctx
    cites = (VEU_CITATION, VEU_SHARES_CITATION)
    tier1 = tier1_codes(ctx)
    if headquarters is not None and headquarters not in tier1:
        return _closed("uveu", f"a UVEU is headquartered in supp. no. 5(a); {entity} is in {headquarters}", cites)
    missing = _missing(ctx, "uveu.min_share_tier1", "uveu.max_share_single_non_tier1", "uveu.min_share_us_for_us_hq")
    if missing:
        return _closed("uveu", missing, cites)
    hq = headquarters or ""
    prefix = f"uveu:{entity}:"
    installed = {k.removeprefix(prefix): v for k, v in inp.state.accounts(prefix, inp.on).items() if v}
    low, high, feasible, uses = _uveu_bounds(installed, inp.destination, hq, tier1, ctx)
    used = installed.get(inp.destination, Fraction(0))
    total = sum(installed.values(), Fraction(0))
    notes = [
        f"installed base of {entity}: {fmt_tpp(float(total))} TPP in {len(installed)} destination(s)",
        "shares measured on the recorded installed base (measurement basis unconfirmed)",
        "UVEU deployments do not draw the country allocation",
    ]
    if headquarters is None:
        notes.append("headquarters not given: the US-share limit for a US-headquartered UVEU is not applied")
    details: dict[str, Any] = {"installed": dict(sorted(installed.items())), "installed_total_tpp": total}
    if feasible and high is None:
        return PathwayRow(
            "uveu",
            LABELS["uveu"],
            True,
            None,
            None,
            used,
            None,
            None,
            None,
            cites,
            (*uses, inp.h100_use),
            (*notes, "no share limit bounds a further deployment in this destination"),
            unlimited=True,
            details=details,
        )
    room = high if feasible and high is not None and high > 0 else Fraction(0)
    probe = room if room > 0 else inp.chip.tpp  # with no room: what one more chip would break
    checks, _ = uveu_share_checks({**installed, inp.destination: used + probe}, hq, tier1, ctx)
    details["after_deployment_tpp"] = probe
    details["checks_after"] = [{"limit": t, "met": m, **v} for t, m, v in checks]
    broken = "; ".join(t for t, m, _ in checks if not m) or "the shares"
    if room > 0 and low > 0:
        notes.append(f"the shares also need at least {fmt_tpp(float(low))} TPP more here")
    return _open(
        inp,
        "uveu",
        used + room,
        used,
        cites,
        uses,
        why_empty=f"no room: a further deployment here would break {broken}",
        notes=notes,
        details=details,
    )


def _tier_row(inp: _Inputs) -> PathwayRow | None:
    ctx = inp.ctx
    if not ctx.vintage.has("tiers"):
        return None
    if inp.tier == 1:
        return PathwayRow(
            "tier1",
            LABELS["tier1"],
            True,
            None,
            None,
            None,
            None,
            None,
            None,
            (AIA_CITATION, SUPP5A_CITATION),
            (),
            (
                "License Exception AIA for entities located in, and headquartered (with their ultimate parent) "
                "in, supp. no. 5(a); no export authorization is needed to the United States itself",
            ),
            unlimited=True,
        )
    if inp.tier == 3:
        notes: tuple[str, ...] = ()
        destinations = ctx.maybe("china_2026.destinations")
        if ctx.vintage.has("china_case_by_case_2026") and destinations and inp.destination in destinations.value:
            notes = (
                "exports from the United States of chips below the 2026 TPP and DRAM-bandwidth ceilings are "
                f"reviewed case-by-case ({CHINA_2026_CITATION}); still no allowance",
            )
        return _closed(
            "tier3",
            "Tier 3 (Macau/D:5): licence applications reviewed under a presumption of denial",
            (ALLOCATION_CITATION, TIER3_CITATION),
            notes=notes,
        )
    return None


def parse_consignees(text: str, field: str = "consignees") -> int | list[str]:
    """``3`` (unnamed consignees) or ``acme,globex`` (ids whose LPP usage counts); errors name `field`."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    ids = [c.strip() for c in value.split(",")]
    if not value or any(not c for c in ids):
        raise TierlineError(field, f"{text!r} is neither a number nor a comma-separated list of ids")
    return ids


def pathways(
    destination: str,
    on: dt.date | str,
    *,
    vintage: str = DEFAULT_VINTAGE,
    reform: Reform | str | None = None,
    entity: str | None = None,
    headquarters: str | None = None,
    consignees: int | Sequence[str] = 1,
    chip: str | None = None,
    state: AllowanceState | None = None,
) -> PathwayResult:
    """What can still reach `destination` on `on`, per pathway (allocation 15 CFR 742.6(b)(10); LPP
    740.29(a); NVEU/UVEU 748.15 and supp. no. 10 to part 748; AIA 740.27), from `state`'s usage.

    `entity` adds the NVEU and UVEU rows (its ``nveu:ENTITY:CC`` / ``uveu:ENTITY:*`` accounts);
    `headquarters` (the entity's) applies the UVEU US-share limit when it is the United States.
    `consignees` is a number of unnamed LPP consignees or a list of consignee ids (their
    ``lpp:ID:YEAR`` usage counts). `chip` (catalogue name) sets the unit of the counts; default the
    H100 reference chip."""
    day = parse_date(on, "on")
    reformed = get_reform(reform) if isinstance(reform, str) else reform
    ctx = Context.make(vintage, day, reformed)
    dest = ear_destination(lookup(destination, "destination"), day)
    code = dest.ear.iso2
    tier = tier_of(dest.country, ctx)
    if entity is not None and (not entity.strip() or ":" in entity):
        raise TierlineError("entity", f"{entity!r} is not an entity id (non-empty, no ':')")
    hq = ear_destination(lookup(headquarters, "headquarters"), day).ear.iso2 if headquarters else None
    ids = _consignee_ids(consignees)
    basis, _ = chip_basis(chip, ctx)
    h100_use = ctx.use(REFERENCE_CHIP_PARAMETER)
    inp = _Inputs(ctx, code, tier.tier, day, state or InMemoryAllowances(), basis, exact(h100_use.value), h100_use)
    rows: list[PathwayRow] = []
    tier_row = _tier_row(inp)
    if tier_row is not None:
        rows.append(tier_row)
    rows += [_allocation_row(inp), _lpp_row(inp, ids)]
    if entity is not None:
        rows += [_nveu_row(inp, entity, hq), _uveu_row(inp, entity, hq)]
    notes = []
    if not ctx.vintage.has("tiers"):
        notes.append(
            f"vintage {ctx.vintage.name} has no AI Diffusion tiers or quantity allowances; "
            "the tier shown is the AI Diffusion definition applied to this date"
        )
    if dest.ear is not dest.country:
        notes.append(f"{dest.country.name} is treated as {dest.ear.name}: {dest.treated_as_note}")
    if basis.level != "a":
        notes.append(
            f"{basis.name} is not 3A090.a: the allowances above count a-level chips; units are shown for comparison"
        )
    if entity is None:
        notes.append("no entity given: NVEU and UVEU rows need --entity")
    return PathwayResult(
        destination=code,
        destination_name=dest.country.name,
        tier=tier.tier,
        tier_reason=tier.reason,
        tier_citation=tier.citation,
        tiers_apply=ctx.vintage.has("tiers"),
        on=day,
        vintage=ctx.vintage.name,
        reform=reformed.name if reformed else None,
        chip=basis,
        h100_tpp=exact(h100_use.value),
        entity=entity,
        headquarters=hq,
        consignees=ids,
        rows=tuple(rows),
        notes=tuple(notes),
        stamp=ctx.stamp(),
    )


# ---- chart and report ------------------------------------------------------------------------------
BAR_COLOUR, UNLIMITED_COLOUR, CLOSED_COLOUR = "#2c7bb6", "#a6cee3", "#888888"


def _count(value: Fraction | float | None) -> str:
    """H100-equivalents with one decimal (whole-chip counts are the `units`)."""
    return "—" if value is None else f"{float(value):,.1f}"


def pathways_chart_svg(result: PathwayResult) -> str:
    """Horizontal bars: the compute each pathway still allows, in H100-equivalents (self-contained SVG)."""
    label_w, row_h, top = 250, 34, 70
    x0, x1 = LEFT + label_w, WIDTH - RIGHT - 150
    finite = [float(r.h100_equivalents) for r in result.rows if r.available and r.h100_equivalents is not None]
    peak = max(finite, default=0.0) or 1.0
    title = f"Remaining compute by pathway: {result.destination_name} ({result.destination}), Tier {result.tier}"
    reform = f", reform {result.reform}" if result.reform else ""
    subtitle = (
        f"H100-equivalents at {float(result.h100_tpp):,.0f} TPP each; vintage {result.vintage}{reform}, "
        f"as of {result.on.isoformat()}"
    )
    out: list[str] = []
    y = float(top)
    for r in result.rows:
        cy = y + row_h / 2
        out.append(svg_text(LEFT, cy + 4, r.label, 12, fill="#222222"))
        if r.available and r.unlimited:
            out.append(
                f"<rect x='{x0}' y='{y + 6:.1f}' width='{x1 - x0:.1f}' height='{row_h - 12}' fill='{UNLIMITED_COLOUR}'>"
                f"<title>{escape(r.label)}: no quantity limit</title></rect>"
            )
            out.append(svg_text(x1 + 6, cy + 4, "no limit", 11, fill="#222222"))
        elif r.available and r.h100_equivalents is not None:
            value = float(r.h100_equivalents)
            width = max((x1 - x0) * value / peak, 1.0)
            tip = f"{r.label}: {_count(value)} H100-equivalents ({fmt_tpp(_num(r.remaining_tpp))} TPP) left"
            out.append(
                f"<rect x='{x0}' y='{y + 6:.1f}' width='{width:.1f}' height='{row_h - 12}' fill='{BAR_COLOUR}'>"
                f"<title>{escape(tip)}</title></rect>"
            )
            out.append(svg_text(x0 + width + 6, cy + 4, f"{_count(value)} H100e", 11, fill="#222222"))
        else:
            why = r.why_not or "not available"
            out.append(svg_text(x0, cy + 4, f"not available: {why[:110]}", 10, fill=CLOSED_COLOUR))
        y += row_h
    out.append(f"<line x1='{x0}' y1='{top}' x2='{x0}' y2='{y:.1f}' stroke='#333333'/>")
    notes = [
        "Bars: remaining = limit - usage recorded on the date. The pathways are separate authorizations: LPP and "
        "Data Center VEU shipments do not draw the country allocation; NVEU and UVEU rows are the named entity's.",
        f"Counts of {result.chip.name} at {float(result.chip.tpp):,.1f} TPP each are in the table.",
    ]
    footer, height = svg_footer(notes, y + 24)
    return "\n".join([*svg_frame(title, subtitle, height), *out, *footer, "</svg>"])


def _table(result: PathwayResult) -> Table:
    rows = []
    for r in result.rows:
        rows.append(
            (
                r.label,
                "yes" if r.available else "no",
                "no limit" if r.unlimited else _num(r.limit_tpp),
                _num(r.used_tpp),
                "no limit" if r.unlimited else _num(r.remaining_tpp),
                r.units,
                _num(r.h100_equivalents),
                r.why_not or "; ".join(r.notes[:1]),
                "; ".join(r.citations),
            )
        )
    return Table(
        f"Pathways to {result.destination_name} on {result.on.isoformat()}",
        (
            "pathway",
            "available",
            "limit (TPP)",
            "used (TPP)",
            "remaining (TPP)",
            f"units ({result.chip.name})",
            "H100-equivalents",
            "why not / note",
            "citations",
        ),
        tuple(rows),
        (False, False, True, True, True, True, True, False, False),
    )


def pathways_summary(result: PathwayResult) -> list[str]:
    """One sentence per pathway, for reports and the CLI."""
    out = [f"{result.destination_name} ({result.destination}) is Tier {result.tier}: {result.tier_reason}."]
    for r in result.rows:
        if r.available and r.unlimited:
            out.append(f"{r.label}: no quantity limit.")
        elif r.available:
            out.append(
                f"{r.label}: {fmt_tpp(_num(r.remaining_tpp))} TPP left = {r.units:,} x {result.chip.name} "
                f"= {_count(r.h100_equivalents)} H100-equivalents."
            )
        else:
            out.append(f"{r.label}: not available ({r.why_not}).")
    return out


def pathways_report(result: PathwayResult) -> Report:
    """The pathway analysis as a report document (kind ``pathways``)."""
    params = result.parameters()
    param_table = Table(
        "Parameter values used",
        ("parameter", "value", "in force from", "reference", "confidence"),
        tuple(
            (
                p.path,
                str(_plain(p.value)),
                p.in_force_from.isoformat(),
                p.reference.cfr or p.reference.fr or p.reference.source or "",
                p.confidence,
            )
            for p in params
        ),
    )
    citations: dict[str, str] = {result.tier_citation: "the destination's tier"}
    for r in result.rows:
        for cite in r.citations:
            citations.setdefault(cite, r.label)
    for p in params:
        if p.reference.cfr:
            citations.setdefault(p.reference.cfr, f"parameter {p.path}")
    return Report(
        kind="pathways",
        title=f"Pathways to {result.destination_name} ({result.destination})",
        stamp=Stamp((result.vintage,), (result.reform,), result.on),
        summary=tuple(pathways_summary(result)),
        sections=(
            Section(
                "Pathways",
                paragraphs=tuple(result.notes),
                tables=(_table(result),),
                charts=(Chart("Remaining compute by pathway (H100-equivalents)", pathways_chart_svg(result)),),
            ),
            Section("Parameters used", tables=(param_table,)),
        ),
        citations=tuple(Citation(c, u) for c, u in citations.items()),
    )
