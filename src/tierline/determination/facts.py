"""What the rules need to know about a transaction and its lines, resolved once."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from fractions import Fraction

from tierline.catalog import find_chip
from tierline.classification import Classification, Die, ItemSpec, classify
from tierline.countries import lookup
from tierline.determination.model import Certification, Kind, LineItem, Party, Transaction
from tierline.errors import TierlineError
from tierline.groups import ear_destination
from tierline.policy import Context
from tierline.policy.vintages import load_vintages
from tierline.reforms import Reform
from tierline.tiers import UNITED_STATES, tier1_codes, tier3_codes, tier_of
from tierline.tpp import Rate
from tierline.trace import TraceStep
from tierline.weights import WeightsClassification, classify_weights

D5_CITATION = "15 CFR 740 Supp. 1, Country Group D:5, and Macau"
HQ_CITATION = "15 CFR 742.6(a)(6)(iii) (headquarters rule, formerly 15 CFR 744.23(a)(3))"


@functools.lru_cache(maxsize=4096)
def context_for(vintage: str, on: dt.date, reform: Reform | None = None) -> Context:
    return Context.make(vintage, on, reform)


@functools.lru_cache(maxsize=65536)
def _classify_cached(spec: ItemSpec, vintage: str, on: dt.date, reform: Reform | None = None) -> Classification:
    return classify(spec, context_for(vintage, on, reform))


@functools.lru_cache(maxsize=4096)
def _ear_code(query: str, on: dt.date, field_name: str) -> str:
    return ear_destination(lookup(query, field_name), on).ear.iso2


@dataclass
class PartyFacts:
    """A party with its EAR codes: location, headquarters and ultimate parent headquarters."""

    party: Party
    role: str
    location: str
    headquarters: str
    parent: str
    d5_reasons: list[str]
    tier1_entity: bool


@dataclass
class LineFacts:
    """One line: its classification (chips) or 4E091 answer (weights), level and TPP."""

    index: int
    item: LineItem
    level: str | None  # "a", "b", "4e091" or None (not controlled)
    classification: Classification | None = None
    weights: WeightsClassification | None = None
    tpp_total: Fraction = Fraction(0)
    tpp_per_ic: Fraction = Fraction(0)
    dram_bandwidth_gbs: float | None = None
    designer_condition: bool = False  # 3A090.a, 5A002.z, 5A992.z.1: AIA needs an approved designer
    warnings: list[str] = field(default_factory=list)
    trace: list[TraceStep] = field(default_factory=list)

    @property
    def commodity(self) -> bool:
        return self.item.model_weights is None


@dataclass
class Facts:
    """The transaction as the rules see it."""

    tx: Transaction
    ctx: Context
    kind: Kind
    export_from: str
    destination: str  # EAR code (Hong Kong -> CN)
    destination_name: str
    tier: int
    d5_or_macau: frozenset[str]
    tier1: frozenset[str]
    parties: list[PartyFacts]
    warnings: list[str]

    @property
    def destination_d5_or_macau(self) -> bool:
        return self.destination in self.d5_or_macau

    @property
    def d5_party(self) -> PartyFacts | None:
        """The first party located, headquartered or ultimately owned in Macau/D:5."""
        return next((p for p in self.parties if p.d5_reasons), None)

    @property
    def d5_hq_party(self) -> PartyFacts | None:
        """The first party headquartered or ultimately owned in Macau/D:5 (the headquarters rule)."""
        return next(
            (p for p in self.parties if p.headquarters in self.d5_or_macau or p.parent in self.d5_or_macau), None
        )

    @property
    def all_tier1_entities(self) -> bool:
        return all(p.tier1_entity for p in self.parties)

    def certified(self, certification: Certification) -> bool:
        return self.tx.has(certification)


def _party(party: Party, role: str, on: dt.date, d5: frozenset[str], tier1: frozenset[str]) -> PartyFacts:
    location = _ear_code(party.country, on, f"{role}.country")
    hq = _ear_code(party.headquarters, on, f"{role}.headquarters") if party.headquarters else location
    parent = (
        _ear_code(party.ultimate_parent_headquarters, on, f"{role}.ultimate_parent_headquarters")
        if party.ultimate_parent_headquarters
        else hq
    )
    reasons = [
        f"{label} {code}"
        for label, code in (
            ("located in", location),
            ("headquartered in", hq),
            ("ultimate parent headquartered in", parent),
        )
        if code in d5
    ]
    return PartyFacts(party, role, location, hq, parent, reasons, hq in tier1 and parent in tier1)


def transaction_facts(tx: Transaction, reform: Reform | None = None) -> Facts:
    """Resolve countries, vintage, kind and parties; errors name the field at fault."""
    vintages = load_vintages()
    if tx.vintage not in vintages:
        raise TierlineError("vintage", f"unknown vintage {tx.vintage!r}; one of {', '.join(vintages)}")
    vintage = vintages[tx.vintage]
    earliest = min(v.in_force_from for v in vintages.values())
    if tx.date < vintage.in_force_from:
        hint = f" (no vintage is in force before {earliest})" if tx.date < earliest else ""
        raise TierlineError(
            "date", f"{tx.date} is before vintage {vintage.name} took effect on {vintage.in_force_from}{hint}"
        )
    ctx = context_for(tx.vintage, tx.date, reform)
    on = tx.date
    destination = _ear_code(tx.destination, on, "destination")
    origin = _ear_code(tx.export_from, on, "export_from")
    kind = tx.kind or (
        Kind.export if origin == UNITED_STATES else Kind.in_country_transfer if origin == destination else Kind.reexport
    )
    if kind is Kind.export and origin != UNITED_STATES:
        raise TierlineError("export_from", f"an export leaves the United States, not {origin}; use kind reexport")
    if kind is Kind.in_country_transfer and origin != destination:
        raise TierlineError(
            "export_from", f"an in-country transfer stays in {destination}, but export_from is {origin}"
        )
    if kind is Kind.reexport and origin in (destination, UNITED_STATES):
        raise TierlineError(
            "export_from", f"a reexport goes from one foreign country to another, not {origin} to {destination}"
        )
    if kind is not Kind.in_country_transfer and destination == UNITED_STATES:
        raise TierlineError("destination", "a shipment to the United States is not an export, reexport or transfer")
    consignee_location = _ear_code(tx.ultimate_consignee.country, on, "ultimate_consignee.country")
    if consignee_location != destination:
        raise TierlineError(
            "ultimate_consignee.country",
            f"{tx.ultimate_consignee.country} contradicts the destination {tx.destination}: "
            "the ultimate consignee is located in the destination",
        )
    d5 = tier3_codes(ctx)  # D:5 plus Macau on `on` (ctx.as_of), with a reform's D:5 changes
    tier1 = tier1_codes(ctx)
    parties = [_party(tx.ultimate_consignee, "ultimate_consignee", on, d5, tier1)]
    if tx.end_user:
        parties.append(_party(tx.end_user, "end_user", on, d5, tier1))
    warnings = []
    if vintage.compliance_from and on < vintage.compliance_from:
        warnings.append(
            f"compliance with vintage {vintage.name} was not required before {vintage.compliance_from}; "
            "shipments from its effective date may still count against allowances (one source)"
        )
    return Facts(
        tx,
        ctx,
        kind,
        origin,
        destination,
        lookup(tx.destination).name,
        tier_of(destination, ctx).tier,
        d5,
        tier1,
        parties,
        warnings,
    )


def _item_spec(item: LineItem, index: int) -> tuple[ItemSpec, float | None]:
    if item.chip is not None:
        chip = find_chip(item.chip).chip
        if not chip.rates:
            raise TierlineError(f"items[{index}].chip", f"{chip.name} has no published dense rates")
        bandwidth = chip.memory_bandwidth_tbs * 1000 if chip.memory_bandwidth_tbs is not None else None
        return chip.spec(system=item.system, ic_count=item.ics_per_unit, base_eccn=item.base_eccn), bandwidth
    assert item.spec is not None
    spec = item.spec
    return ItemSpec(
        rates=tuple(Rate(p.lower(), v, spec.sparse) for p, v in sorted(spec.rates.items())),
        dies=tuple(Die(a) for a in spec.die_areas) + tuple(Die(a, planar=True) for a in spec.planar_die_areas),
        datacenter=spec.datacenter,
        base_eccn=item.base_eccn,
        system=item.system,
        ic_count=item.ics_per_unit,
        name=item.name,
    ), spec.memory_bandwidth_gbs


def line_facts(item: LineItem, index: int, facts: Facts) -> LineFacts:
    """Classify one line (cached per item and date)."""
    if item.model_weights is not None:
        weights = classify_weights(item.model_weights, facts.ctx)
        return LineFacts(
            index,
            item,
            "4e091" if weights.controlled else None,
            weights=weights,
            warnings=list(weights.warnings),
            trace=list(weights.trace),
        )
    try:
        spec, bandwidth = _item_spec(item, index)
        result = _classify_cached(spec, facts.tx.vintage, facts.tx.date, facts.ctx.reform)
    except TierlineError as exc:
        field_name = exc.field if exc.field.startswith("items[") else f"items[{index}].{exc.field}"
        raise TierlineError(field_name, exc.reason) from None
    warnings = list(result.warnings)
    level = result.level
    if result.status == "needs_review":
        level = "a"
        warnings.append("classification needs review: treated as 3A090.a (the most restrictive level) until resolved")
    base = (item.base_eccn or "").upper()
    designer = level == "a" and (result.eccn == "3A090.a" or base in ("5A002", "5A992"))
    return LineFacts(
        index,
        item,
        level,
        classification=result,
        tpp_total=result.total_tpp * item.quantity,
        tpp_per_ic=result.tpp,
        dram_bandwidth_gbs=bandwidth,
        designer_condition=designer,
        warnings=warnings,
        trace=list(result.trace),
    )
