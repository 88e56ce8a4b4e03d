"""License Exception LPP, Low Processing Performance — 15 CFR 740.29.

(a) Export and reexport (not in-country transfer) of up to 26,900,000 cumulative TPP of advanced
computing ICs per calendar year directly to a single ultimate consignee; a consignee headquartered in
supp. no. 5(a) may count toward the limit of a different entity that will operate the items.
Not for Macau/D:5 destinations or parties (15 CFR 740.2(a)(9)(ii)). Does not draw a country allocation.
"""

from __future__ import annotations

from tierline.allowances import PendingDraws, lpp_account, lpp_cap
from tierline.determination.facts import Facts, LineFacts
from tierline.determination.model import Kind
from tierline.determination.outcome import Conditions, Draw, Obligation, Outcome

CITATION = "15 CFR 740.29"


def lpp_entity(facts: Facts) -> str:
    """Whose limit counts: the consignee, or the operating entity it designates if it is Tier-1-headquartered."""
    consignee = facts.parties[0]
    if consignee.party.lpp_operating_entity and consignee.headquarters in facts.tier1:
        return consignee.party.lpp_operating_entity
    return consignee.party.key


def consider(line: LineFacts, facts: Facts, state: PendingDraws) -> Outcome | None:
    if not facts.ctx.vintage.has("lpp"):
        return None
    check = Conditions("LPP", CITATION)
    cap, cap_use = lpp_cap(facts.ctx)
    check.uses(cap_use)
    check.require(
        "an advanced computing commodity (a-level; no software, technology or weights)",
        line.level == "a" and line.commodity,
        "15 CFR 740.29(a)",
        level=line.level,
    )
    check.require(
        "an export or reexport (no in-country transfer)",
        facts.kind is not Kind.in_country_transfer,
        "15 CFR 740.29(a)",
        kind=facts.kind.value,
    )
    check.require(
        "destination not Macau or D:5",
        not facts.destination_d5_or_macau,
        "15 CFR 740.2(a)(9)(ii)",
        destination=facts.destination,
    )
    party = facts.d5_party
    check.require(
        "no party located, headquartered or ultimately owned in Macau/D:5",
        party is None,
        "15 CFR 740.2(a)(9)(ii)",
        reasons=party.d5_reasons if party else [],
    )
    account = lpp_account(lpp_entity(facts), facts.tx.date.year)
    used = state.used(account, facts.tx.date)
    total = used + line.tpp_total
    check.require(
        "calendar-year total with this line within the LPP limit",
        total <= cap,
        "15 CFR 740.29(a)",
        account=account,
        used=float(used),
        line_tpp=float(line.tpp_total),
        total=float(total),
        limit=float(cap),
    )
    outcome = Outcome("LPP", check, draws=[Draw(account, line.tpp_total)])
    consignee = facts.parties[0]
    if consignee.party.lpp_operating_entity and consignee.headquarters not in facts.tier1:
        outcome.warnings.append(
            "the designated LPP operating entity is ignored: only a consignee headquartered in "
            "supp. no. 5(a) may count toward another entity's limit (15 CFR 740.29(a))"
        )
    outcome.obligations.append(
        Obligation(
            "lpp_notification", "Notify BIS of the LPP shipment (content and timing unconfirmed)", "15 CFR 740.29"
        )
    )
    if (line.item.base_eccn or "").upper() == "5A002":
        outcome.warnings.append("LPP for 5A002.z: the LPP commodity list may omit 5A002.z although the CCL flags it")
    return outcome
