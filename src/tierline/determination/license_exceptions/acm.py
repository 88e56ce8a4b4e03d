"""License Exception ACM, Advanced Compute Manufacturing — 15 CFR 740.28.

(a) Export, reexport and transfer to private sector end users for development, production, or
storage before onward shipment, for items ultimately destined to customers outside Macau and D:5;
the end user is not located in, headquartered in, or owned from Macau/D:5. Not 4E091. No TPP cap.
"""

from __future__ import annotations

from tierline.allowances import PendingDraws
from tierline.determination.facts import Facts, LineFacts
from tierline.determination.model import EndUse, PartyKind
from tierline.determination.outcome import Conditions, Outcome

CITATION = "15 CFR 740.28"
PURPOSES = (EndUse.development, EndUse.production, EndUse.storage)


def consider(line: LineFacts, facts: Facts, state: PendingDraws) -> Outcome | None:
    if not facts.ctx.vintage.has("acm"):
        return None
    check = Conditions("ACM", CITATION)
    end_user = next(p for p in reversed(facts.parties))
    check.require(
        "a 3A090/4A090/.z commodity (not 4E091)",
        line.level in ("a", "b") and line.commodity,
        "15 CFR 740.28(a); ECCN 4E091 (ACM: No)",
        level=line.level,
    )
    check.require(
        "end use is development, production or storage before onward shipment",
        facts.tx.end_use in PURPOSES,
        "15 CFR 740.28(a)",
        end_use=facts.tx.end_use.value,
    )
    check.require(
        "end user not located, headquartered or ultimately owned in Macau/D:5",
        not end_user.d5_reasons,
        "15 CFR 740.28(a)",
        reasons=end_user.d5_reasons,
    )
    check.require(
        "end user is a private sector end user (not a government)",
        end_user.party.kind is not PartyKind.government,
        "15 CFR 740.28(a); 15 CFR 772.1 (definition unconfirmed)",
        kind=end_user.party.kind.value,
    )
    outcome = Outcome("ACM", check)
    outcome.warnings.append("ACM: the 'private sector end user' definition and any notification duties are unconfirmed")
    return outcome
