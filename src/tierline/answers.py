"""The answers tierline gives about reference data — countries and tiers, policy parameters and
vintages, the chip catalogue — as plain data, shared by the CLI (``--json``) and the HTTP API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tierline.catalog import catalog, classify_chip, find_chip
from tierline.classification import Classification, Die, ItemSpec, StandaloneHBM, classify
from tierline.errors import TierlineError
from tierline.groups import GROUP_CITATION, country_groups, ear_destination
from tierline.policy import Context
from tierline.policy.vintages import load_vintages
from tierline.tiers import tier_members, tier_of
from tierline.tpp import Rate


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def country_answer(query: str, ctx: Context) -> dict[str, Any]:
    """A destination's groups and tier on the context's date, with the rules applied."""
    dest = ear_destination(query, ctx.as_of)
    groups = country_groups()
    tier = tier_of(dest.country, ctx)
    answer: dict[str, Any] = {
        "iso2": dest.country.iso2,
        "iso3": dest.country.iso3,
        "name": dest.country.name,
        "groups": groups.groups_of(dest.ear.iso2, ctx.as_of),
        "groups_citation": GROUP_CITATION,
        "tier": tier.tier,
        "tier_reason": tier.reason,
        "tier_citation": tier.citation,
        "tiers_apply": ctx.vintage.has("tiers"),
        "confidence": dest.country.confidence,
        "notes": dest.country.notes,
        "history": [c.as_dict() for c in groups.history(dest.ear.iso2)],
        **ctx.stamp(),
    }
    if not ctx.vintage.has("tiers"):
        answer["tier_note"] = (
            f"vintage {ctx.vintage.name} has no tiers; the tier shown is the AI Diffusion "
            "definition applied to this date"
        )
    if dest.ear is not dest.country:
        answer["treated_as"] = dest.ear.iso2
        answer["treated_as_note"] = dest.treated_as_note
        answer["treated_as_reference"] = dest.treated_as_reference
    if dest.country.territory_hint:
        answer["territory_hint"] = (
            f"not listed separately; 15 CFR 738.3(b) may place it with "
            f"{dest.country.territory_hint} (not applied; confidence low)"
        )
    return answer


def tiers_answer(ctx: Context, tier: int | None = None) -> dict[str, Any]:
    """Tier counts and members on the context's date (Hong Kong counted under Tier 3 as China)."""
    members = tier_members(ctx)
    wanted = [tier] if tier else [1, 2, 3]
    return {
        "counts": {str(t): len(members[t]) for t in wanted},
        "members": {str(t): [{"iso2": c.iso2, "name": c.name} for c in members[t]] for t in wanted},
        "tiers_apply": ctx.vintage.has("tiers"),
        **ctx.stamp(),
    }


def parameters_answer(ctx: Context, prefix: str | None = None) -> dict[str, Any]:
    """The vintage's parameters with the value in force on the date, its reference and confidence."""
    rows = []
    for param in ctx.parameters:
        if not param.applies_to(ctx.vintage.name) or (prefix and not param.path.startswith(prefix)):
            continue
        try:
            start, value = param.entry_at(ctx.as_of)
            in_force: Any = start.isoformat()
        except TierlineError:
            start, value, in_force = None, None, None
        rows.append(
            {
                "parameter": param.path,
                "value": _plain(value),
                "in_force_from": in_force,
                "unit": param.unit,
                "description": param.description,
                "reference": param.reference.as_dict(),
                "confidence": param.confidence,
                "file": param.file,
            }
        )
    return {"parameters": rows, **ctx.stamp()}


def parameter_answer(path: str) -> dict[str, Any]:
    """Every dated value of one parameter, with its reference."""
    params = Context.make().parameters
    param = params.get(path)
    data = {
        "parameter": param.path,
        "description": param.description,
        "unit": param.unit,
        "values": [{"from": d.isoformat(), "value": _plain(v)} for d, v in param.values],
        "reference": param.reference.as_dict(),
        "confidence": param.confidence,
        "source_tag": param.source_tag,
        "vintages": list(param.vintages) if param.vintages else "all",
        "file": param.file,
    }
    return data


def vintages_answer() -> dict[str, Any]:
    """The named rule vintages."""
    data: list[dict[str, Any]] = [
        {
            "name": v.name,
            "title": v.title,
            "in_force_from": v.in_force_from.isoformat(),
            "compliance_from": v.compliance_from.isoformat() if v.compliance_from else None,
            "description": v.description,
            "provisions": sorted(v.provisions),
            "reference": v.reference.as_dict(),
            "confidence": v.confidence,
        }
        for v in load_vintages().values()
    ]
    return {"vintages": data}


def chips_answer(ctx: Context, vendor: str | None = None) -> dict[str, Any]:
    """Every catalogued chip with tierline's TPP, density and ECCN next to the reported ones."""
    rows = []
    for chip in catalog().values():
        if vendor and chip.vendor.lower() != vendor.lower():
            continue
        if chip.rates:
            result, flags = classify_chip(chip, ctx)
            entry = {
                **chip.as_dict(),
                "computed": {k: v for k, v in result.as_dict().items() if k != "trace"},
                "disagreements": flags,
            }
        else:
            entry = {**chip.as_dict(), "computed": None, "disagreements": [], "note": "no published dense rates"}
        rows.append(entry)
    return {"chips": rows, **ctx.stamp()}


def chip_answer(name: str, ctx: Context) -> dict[str, Any]:
    """One chip: its data, sources, classification and any disagreement with the sources."""
    match = find_chip(name)
    chip = match.chip
    result, flags = classify_chip(chip, ctx) if chip.rates else (None, [])
    return {
        **chip.as_dict(),
        "match_note": match.note,
        "classification": result.as_dict() if result else None,
        "disagreements": flags,
        **ctx.stamp(),
    }


def classify_item(
    ctx: Context,
    *,
    chip: str | None = None,
    rates: list[Rate] | None = None,
    die_areas: list[float] | None = None,
    planar_die_areas: list[float] | None = None,
    datacenter: bool | None = None,
    system: bool = False,
    ic_count: int = 1,
    base_eccn: str | None = None,
    hbm_bandwidth: float | None = None,
    hbm_area: float | None = None,
) -> tuple[Classification, list[str]]:
    """Classify a catalogue chip, a design given by its rates and dies, or stand-alone HBM; notes say
    how a fuzzy chip name was matched."""
    rate = rates or []
    die_area, planar_die_area = die_areas or [], planar_die_areas or []
    notes: list[str] = []
    if chip and rate:
        raise TierlineError("--chip", "give either --chip or --rate, not both")
    if chip:
        match = find_chip(chip)
        notes += [match.note] if match.note else []
        spec = match.chip.spec(system=system, ic_count=ic_count, base_eccn=base_eccn)
        if datacenter is not None:
            spec = ItemSpec(**{**spec.__dict__, "datacenter": datacenter})
        result = classify(spec, ctx) if spec.rates else classify_chip(match.chip, ctx)[0]
    else:
        if (hbm_bandwidth is None) != (hbm_area is None):
            raise TierlineError(
                "--hbm-area" if hbm_area is None else "--hbm-bandwidth", "give both --hbm-bandwidth and --hbm-area"
            )
        if not rate and hbm_bandwidth is None:
            raise TierlineError(
                "--rate", "give --chip NAME, at least one --rate PRECISION=VALUE, or --hbm-bandwidth and --hbm-area"
            )
        spec = ItemSpec(
            rates=tuple(rate),
            dies=tuple(Die(a) for a in die_area) + tuple(Die(a, planar=True) for a in planar_die_area),
            datacenter=True if datacenter is None else datacenter,
            base_eccn=base_eccn,
            system=system,
            ic_count=ic_count,
            hbm=StandaloneHBM(hbm_bandwidth, hbm_area) if hbm_bandwidth is not None and hbm_area is not None else None,
        )
        result = classify(spec, ctx)
    return result, notes
