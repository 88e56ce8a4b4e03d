"""License Exception AIA, Artificial Intelligence Authorization — 15 CFR 740.27.

(a) Export, reexport and transfer of the (a)(1) commodities and (a)(2)(i) software and technology to
entities located in supp. no. 5(a) destinations, unless the entity is headquartered, or has an
ultimate parent headquartered, outside them; not to train a 4E091 model for an entity outside them.
(a)(1): 3A090.a only if designed by an approved or authorized IC designer (Note 1 to 3A090.a; so too
5A002.z and 5A992.z.1). (a)(3): 4E091 to entities headquartered in supp. no. 5(a) and located outside
Macau/D:5. (b)(2): the certification must be obtained and submitted to BIS before the export.
"""

from __future__ import annotations

from tierline.allowances import PendingDraws
from tierline.determination.facts import Facts, LineFacts
from tierline.determination.model import Certification, EndUse
from tierline.determination.outcome import Conditions, Obligation, Outcome

CITATION = "15 CFR 740.27"


def consider(line: LineFacts, facts: Facts, state: PendingDraws) -> Outcome | None:
    if not facts.ctx.vintage.has("aia"):
        return None
    check = Conditions("AIA", CITATION)
    tier1 = facts.tier1
    if line.level == "4e091":
        check.require(
            "(a)(3): every party headquartered (and ultimately owned) in supp. no. 5(a)",
            facts.all_tier1_entities,
            "15 CFR 740.27(a)(3)",
        )
        check.require(
            "(a)(3): every party located outside Macau/D:5",
            all(p.location not in facts.d5_or_macau for p in facts.parties),
            "15 CFR 740.27(a)(3)",
        )
        outcome = Outcome("AIA", check)
        outcome.warnings.append("AIA (a)(3) for model weights carries security conditions that are unconfirmed")
        return outcome
    check.require(
        "item is an (a)(1) commodity (a-level)",
        line.level == "a" and line.commodity,
        "15 CFR 740.27(a)(1)",
        level=line.level,
    )
    check.require(
        "ultimate consignee located in supp. no. 5(a) or the United States",
        facts.destination in tier1,
        "15 CFR 740.27(a); 15 CFR 740 Supp. 5(a)",
        destination=facts.destination,
    )
    for p in facts.parties:
        check.require(
            f"{p.role} headquartered, and its ultimate parent headquartered, in supp. no. 5(a)",
            p.tier1_entity,
            "15 CFR 740.27(a)",
            headquarters=p.headquarters,
            ultimate_parent=p.parent,
        )
    if line.designer_condition:
        check.require(
            "IC designed by an approved or authorized IC designer (attested)",
            facts.certified(Certification.approved_designer),
            "15 CFR 740.27(a)(1); Note 1 to ECCN 3A090.a",
        )
    if facts.tx.end_use is EndUse.training_4e091:
        check.require(
            "not to train a 4E091 model for an entity headquartered or located outside supp. no. 5(a)",
            all(p.tier1_entity and p.location in tier1 for p in facts.parties),
            "15 CFR 740.27(a)",
        )
    check.require(
        "§740.27(b)(2) certification obtained and submitted to BIS before export (attested)",
        facts.certified(Certification.aia_certification),
        "15 CFR 740.27(b)(2)",
    )
    obligations = [
        Obligation(
            "aia_certification", "Keep the §740.27(b)(2) certification submitted to BIS on file", "15 CFR 740.27(b)(2)"
        )
    ]
    return Outcome("AIA", check, obligations=obligations)
