"""Licence review policy when no exception applies — 15 CFR 742.6(b)(10) (chips), 742.6(b) (4E091).

ai-diffusion: Macau/D:5 destinations and Macau/D:5 parties: presumption of denial (from 2026-01-15
case-by-case for exports from the US to China or Macau of chips below the TPP and DRAM-bandwidth
ceilings); Tier 2 a-level: presumption of approval while the country allocation has headroom;
Tier 1 (non-AIA) and b-level to D:1/D:4: case-by-case (unconfirmed); 4E091: presumption of denial.
October 2023 scope: Macau/D:5 denial; D:1/D:4 approval, denial with a Macau/D:5 party; elsewhere
with a Macau/D:5 party case-by-case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tierline.allowances import PendingDraws, allocation_account, allocation_cap
from tierline.determination.facts import Facts, LineFacts
from tierline.determination.model import Certification, Kind
from tierline.determination.outcome import Conditions, Draw
from tierline.determination.requirements import licence_set, named_destinations
from tierline.tiers import UNITED_STATES
from tierline.tpp import exact
from tierline.trace import TraceStep

CHIPS = "15 CFR 742.6(b)(10)"
CHINA_2026 = "15 CFR 742.6(b)(10)(iii)(A)(1) (91 FR 1684)"
WEIGHTS = "15 CFR 742.6(b) (4E091 review policy; 90 FR 4544)"
APPROVAL, DENIAL, CASE = "presumption_of_approval", "presumption_of_denial", "case_by_case"


@dataclass
class Review:
    policy: str
    steps: list[TraceStep]
    draws: list[Draw] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _china_case_by_case(line: LineFacts, facts: Facts) -> TraceStep | None:
    """The 15 January 2026 rule: case-by-case for exports from the US to China/Macau below the ceilings."""
    destinations = facts.ctx.maybe("china_2026.destinations")
    tpp_max = facts.ctx.maybe("china_2026.tpp_max")
    bw_max = facts.ctx.maybe("china_2026.dram_bandwidth_max")
    if not facts.ctx.vintage.has("china_case_by_case_2026") or None in (destinations, tpp_max, bw_max):
        return None
    check = Conditions("China/Macau case-by-case review (2026)", CHINA_2026)
    assert destinations is not None and tpp_max is not None and bw_max is not None
    check.uses(destinations, tpp_max, bw_max)
    check.require(
        "an export from the United States (reexports and transfers stay denial)",
        facts.kind is Kind.export and facts.export_from == UNITED_STATES,
        CHINA_2026,
        kind=facts.kind.value,
    )
    check.require(
        "destination China (including Hong Kong) or Macau", facts.destination in destinations.value, CHINA_2026
    )
    check.require("a chip (not model weights)", line.commodity, CHINA_2026)
    check.require(
        "TPP per chip below the ceiling",
        line.tpp_per_ic < exact(tpp_max.value),
        CHINA_2026,
        tpp=float(line.tpp_per_ic),
        ceiling=tpp_max.value,
    )
    bandwidth = line.dram_bandwidth_gbs
    check.require(
        "DRAM bandwidth known and below the ceiling",
        bandwidth is not None and bandwidth < bw_max.value,
        CHINA_2026,
        dram_bandwidth_gbs=bandwidth,
        ceiling=bw_max.value,
    )
    return check.step()


def _allocation(line: LineFacts, facts: Facts, state: PendingDraws) -> Review:
    since = state.g2g_since(facts.destination)
    g2g = facts.certified(Certification.g2g_arrangement) or (since is not None and since <= facts.tx.date)
    cap, params = allocation_cap(facts.ctx, g2g)
    if cap is None:
        step = TraceStep(
            "Tier 2 country allocation",
            CHIPS,
            "shipment date within the allocation period",
            False,
            {"date": facts.tx.date.isoformat()},
            params,
        )
        return Review(
            CASE, [step], warnings=["no country allocation is defined for this date; review case-by-case (unconfirmed)"]
        )
    account = allocation_account(facts.destination)
    used = state.used(account, facts.tx.date)
    headroom = used + line.tpp_total <= cap
    step = TraceStep(
        "Tier 2 country allocation",
        CHIPS,
        "cumulative licensed TPP with this line within the country allocation",
        headroom,
        {
            "account": account,
            "used": float(used),
            "line_tpp": float(line.tpp_total),
            "cap": float(cap),
            "g2g_arrangement": g2g,
        },
        params,
    )
    if headroom:
        return Review(APPROVAL, [step], draws=[Draw(account, line.tpp_total)])
    after = facts.ctx.use("allocation_policy.after_exhaustion")
    step.parameters.append(after)
    return Review(
        after.value, [step], warnings=[f"country allocation exhausted: review policy {after.value} is unconfirmed"]
    )


def review_policy(line: LineFacts, facts: Facts, state: PendingDraws) -> Review:
    """How a licence application for the line would be reviewed, and what it would draw."""
    if line.level == "4e091":
        return Review(
            DENIAL, [TraceStep("4E091 review policy", WEIGHTS, "every licence application for 4E091 weights", DENIAL)]
        )
    d5_party = facts.d5_party
    if facts.destination_d5_or_macau or d5_party:
        china = _china_case_by_case(line, facts)
        steps = [] if china is None else [china]
        why = {
            "destination": facts.destination,
            **({"party": d5_party.party.key, "reasons": d5_party.d5_reasons} if d5_party else {}),
        }
        if china is not None and china.result:
            return Review(CASE, steps)
        if not facts.destination_d5_or_macau and not facts.ctx.vintage.has("tiers"):
            in_set = facts.destination in licence_set(facts.tx.date, named_destinations(facts), facts.ctx.reform)
            policy = DENIAL if in_set else CASE
            steps.append(
                TraceStep(
                    "Review: Macau/D:5-headquartered party",
                    CHIPS,
                    "D:1/D:4 destination: denial; any other destination: case-by-case",
                    policy,
                    why,
                )
            )
            return Review(policy, steps)
        steps.append(TraceStep("Review: Macau/D:5 destination or party", CHIPS, "presumption of denial", DENIAL, why))
        return Review(DENIAL, steps)
    if not facts.ctx.vintage.has("tiers"):
        return Review(
            APPROVAL,
            [
                TraceStep(
                    "Review: D:1/D:4 destination",
                    CHIPS,
                    "presumption of approval",
                    APPROVAL,
                    {"destination": facts.destination},
                )
            ],
        )
    if facts.tier == 2 and line.level == "a" and facts.ctx.vintage.has("country_allocations"):
        return _allocation(line, facts, state)
    reason = "Tier 1 destination, licence needed (AIA not available)" if facts.tier == 1 else "b-level item to D:1/D:4"
    return Review(
        CASE,
        [
            TraceStep(
                f"Review: {reason}",
                CHIPS,
                "case-by-case (unconfirmed)",
                CASE,
                {"destination": facts.destination, "tier": facts.tier},
            )
        ],
        warnings=[f"review policy for {reason.lower()} is unconfirmed: case-by-case assumed"],
    )
