"""Data Center Validated End User authorizations — 15 CFR 748.15; supp. no. 10 to part 748.

UVEU: an entity headquartered (and ultimately owned) in supp. no. 5(a); data centers anywhere but
Macau/D:5; at least 75% of its AI compute in supp. no. 5(a), at most 7% in any single other country,
and for a US-headquartered UVEU at least 50% in the United States (para. 6).
NVEU: per destination; entities not headquartered in Macau/D:5; cumulative installed base within
the phased schedule (figures unconfirmed).
"""

from __future__ import annotations

from fractions import Fraction

from tierline.determination.allowances import PendingDraws, nveu_account, uveu_account
from tierline.determination.facts import Facts, LineFacts, _ear_code
from tierline.determination.model import VEU, EndUse
from tierline.determination.outcome import Conditions, Draw, Obligation, Outcome
from tierline.policy.vintages import ParameterUse
from tierline.tiers import UNITED_STATES
from tierline.tpp import exact

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
    uses = [
        facts.ctx.use(p)
        for p in ("uveu.min_share_tier1", "uveu.max_share_single_non_tier1", "uveu.min_share_us_for_us_hq")
    ]
    check.uses(*uses)
    min_tier1, max_single, min_us = (exact(u.value) for u in uses)
    prefix = f"uveu:{consignee.party.key}:"
    installed: dict[str, Fraction] = {
        k.removeprefix(prefix): v for k, v in state.accounts(prefix, facts.tx.date).items()
    }
    installed[facts.destination] = installed.get(facts.destination, Fraction(0)) + line.tpp_total
    total = sum(installed.values(), Fraction(0))
    share = {c: v / total for c, v in installed.items()} if total else {}
    tier1_share = sum((s for c, s in share.items() if c in facts.tier1), Fraction(0))
    check.require(
        "after the shipment at least the minimum share of AI compute in supp. no. 5(a)",
        tier1_share >= min_tier1,
        SHARES,
        tier1_share=float(tier1_share),
        minimum=float(min_tier1),
    )
    worst = max(((c, s) for c, s in share.items() if c not in facts.tier1), key=lambda cs: cs[1], default=None)
    check.require(
        "after the shipment no single non-supp. 5(a) country above the maximum share",
        worst is None or worst[1] <= max_single,
        SHARES,
        country=worst[0] if worst else None,
        share=float(worst[1]) if worst else 0.0,
        maximum=float(max_single),
    )
    if consignee.headquarters == UNITED_STATES:
        us = share.get(UNITED_STATES, Fraction(0))
        check.require(
            "US-headquartered UVEU keeps at least the minimum share in the United States",
            us >= min_us,
            SHARES,
            us_share=float(us),
            minimum=float(min_us),
        )
    outcome = Outcome("UVEU", check, draws=[Draw(uveu_account(consignee.party.key, facts.destination), line.tpp_total)])
    outcome.obligations.append(REPORTING)
    outcome.warnings.append(
        "UVEU shares are measured on the recorded installed base; the measurement basis is unconfirmed"
    )
    return outcome


def _nveu_cap(facts: Facts) -> tuple[Fraction, ParameterUse]:
    schedule = facts.ctx.use("nveu.cumulative_cap_schedule")
    steps = schedule.value
    step = next((s for s in steps if facts.tx.date <= s["through"]), steps[-1])
    return exact(step["tpp"]), schedule


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
    cap, schedule = _nveu_cap(facts)
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
