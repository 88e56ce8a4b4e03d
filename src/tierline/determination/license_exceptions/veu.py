"""Data Center Validated End User authorizations — 15 CFR 748.15; supp. no. 10 to part 748.

UVEU: an entity headquartered (and ultimately owned) in supp. no. 5(a); data centers anywhere but
Macau/D:5; at least 75% of its AI compute in supp. no. 5(a), at most 7% in any single other country,
and for a US-headquartered UVEU at least 50% in the United States (para. 6).
NVEU: per destination; entities not headquartered in Macau/D:5; cumulative installed base within
the phased schedule (figures unconfirmed).
"""

from __future__ import annotations

from fractions import Fraction

from tierline.allowances import PendingDraws, nveu_account, nveu_cap, uveu_account, uveu_share_checks
from tierline.determination.facts import Facts, LineFacts, _ear_code
from tierline.determination.model import VEU, EndUse
from tierline.determination.outcome import Conditions, Draw, Obligation, Outcome

CITATION = "15 CFR 748.15"
SHARES = "15 CFR 748 Supp. 10, para. 6"
REPORTING = Obligation(
    "veu_reporting",
    "Report the installation to BIS and keep the Data Center VEU records "
    "(semi-annual reports; 60 days' notice before moving chips between countries)",
    "15 CFR 748 Supp. 10, paras. 5, 10, 11",
)


def _common(check: Conditions, line: LineFacts, facts: Facts, veu: VEU) -> bool:
    """The conditions both VEU kinds share; False when the consignee does not hold this authorization."""
    consignee = facts.parties[0].party
    if not check.require(
        f"ultimate consignee holds a {veu.value} authorization",
        consignee.veu is veu,
        CITATION,
        veu=consignee.veu.value if consignee.veu else None,
    ):
        return False
    check.require("a 3A090/4A090/.z commodity", line.level in ("a", "b") and line.commodity, CITATION, level=line.level)
    check.require(
        "end use is data center deployment",
        facts.tx.end_use is EndUse.data_center,
        CITATION,
        end_use=facts.tx.end_use.value,
    )
    check.require(
        "data center not in Macau or D:5", not facts.destination_d5_or_macau, CITATION, destination=facts.destination
    )
    return True


def consider_uveu(line: LineFacts, facts: Facts, state: PendingDraws) -> Outcome | None:
    if not facts.ctx.vintage.has("data_center_veu"):
        return None
    check = Conditions("UVEU", CITATION)
    if not _common(check, line, facts, VEU.UVEU):
        return Outcome("UVEU", check)
    consignee = facts.parties[0]
    check.require(
        "UVEU headquartered, and ultimately owned, in supp. no. 5(a)",
        consignee.tier1_entity,
        CITATION,
        headquarters=consignee.headquarters,
        ultimate_parent=consignee.parent,
    )
    prefix = f"uveu:{consignee.party.key}:"
    installed = {k.removeprefix(prefix): v for k, v in state.accounts(prefix, facts.tx.date).items()}
    installed[facts.destination] = installed.get(facts.destination, Fraction(0)) + line.tpp_total
    checks, uses = uveu_share_checks(installed, consignee.headquarters, facts.tier1, facts.ctx)
    check.uses(*uses)
    for text, met, values in checks:
        check.require(f"after the shipment, {text}", met, SHARES, **values)
    outcome = Outcome("UVEU", check, draws=[Draw(uveu_account(consignee.party.key, facts.destination), line.tpp_total)])
    outcome.obligations.append(REPORTING)
    outcome.warnings.append(
        "UVEU shares are measured on the recorded installed base; the measurement basis is unconfirmed"
    )
    return outcome


def consider_nveu(line: LineFacts, facts: Facts, state: PendingDraws) -> Outcome | None:
    if not facts.ctx.vintage.has("data_center_veu"):
        return None
    check = Conditions("NVEU", CITATION)
    if not _common(check, line, facts, VEU.NVEU):
        return Outcome("NVEU", check)
    consignee = facts.parties[0]
    authorized = {
        _ear_code(d, facts.tx.date, "ultimate_consignee.veu_destinations") for d in consignee.party.veu_destinations
    }
    check.require(
        "NVEU authorized for this destination", facts.destination in authorized, CITATION, authorized=sorted(authorized)
    )
    check.require(
        "NVEU not headquartered or ultimately owned in Macau/D:5",
        consignee.headquarters not in facts.d5_or_macau and consignee.parent not in facts.d5_or_macau,
        CITATION,
    )
    cap, schedule = nveu_cap(facts.ctx)
    check.uses(schedule)
    account = nveu_account(consignee.party.key, facts.destination)
    used = state.used(account, facts.tx.date)
    check.require(
        "installed base in the destination with this line within the phased allowance",
        used + line.tpp_total <= cap,
        "15 CFR 748 Supp. 10, para. 6 (schedule unconfirmed)",
        account=account,
        used=float(used),
        line_tpp=float(line.tpp_total),
        cap=float(cap),
    )
    outcome = Outcome("NVEU", check, draws=[Draw(account, line.tpp_total)])
    outcome.obligations.append(REPORTING)
    outcome.warnings.append(
        "NVEU allowance uses the reported year-end figures (unconfirmed); the IFR's quarterly schedule is not available"
    )
    return outcome
