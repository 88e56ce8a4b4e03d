"""License Exceptions NAC (Notified Advanced Computing) and ACA — 15 CFR 740.8.

Eligible: 3A090.a items not designed or marketed for datacenters (TPP >= 4800), and 3A090.b items
designed or marketed for datacenters, with their 4A090 and .z equivalents. NAC needs a notification
at least 25 days before shipment and covers Macau/D:5 destinations and Macau/D:5-headquartered
parties; ACA needs none (AI Diffusion: every other destination; October 2023: D:1/D:4).
"""

from __future__ import annotations

from tierline.allowances import PendingDraws
from tierline.determination.facts import Facts, LineFacts
from tierline.determination.model import Kind
from tierline.determination.outcome import Conditions, Obligation, Outcome

CITATION = "15 CFR 740.8"


def consider(line: LineFacts, facts: Facts, state: PendingDraws) -> Outcome | None:
    if not facts.ctx.vintage.has("nac_aca"):
        return None
    result = line.classification
    nac = facts.destination_d5_or_macau or facts.d5_party is not None
    if nac and facts.kind is Kind.in_country_transfer and facts.destination_d5_or_macau and not facts.d5_hq_party:
        nac = False  # in-country transfers within Macau/D:5 use ACA (89 FR 23876)
    name = "NAC" if nac else "ACA"
    check = Conditions(name, CITATION)
    check.require(
        "item eligible: 3A090.a not designed for datacenters, or 3A090.b designed for datacenters",
        result is not None and result.nac_aca_eligible,
        "15 CFR 740.8(a); ECCN 3A090 NAC/ACA paragraph",
        level=line.level,
        datacenter=result.datacenter if result else None,
    )
    if not nac and not facts.ctx.vintage.has("tiers"):
        check.require(
            "ACA destination: D:1 or D:4, not D:5 or Macau (October 2023 scope)",
            not facts.destination_d5_or_macau,
            "15 CFR 740.8(b)",
        )
    outcome = Outcome(name, check)
    days = facts.ctx.use("nac.notification_days")
    check.uses(days)
    if nac:
        outcome.obligations.append(
            Obligation(
                "nac_notification",
                f"Notify BIS through SNAP-R at least {days.value} days before shipment and ship only "
                "with the NAC confirmation number (AES licence code C67)",
                "15 CFR 740.8(a)",
            )
        )
    else:
        outcome.obligations.append(
            Obligation("aes_aca", "Report AES licence code C68 (ACA)", "15 CFR 740.8(b); 15 CFR 758.1")
        )
    return outcome
