"""The general licence requirement, before any exception (Catala-style: the rule first).

- a-level items: licence to every destination — 15 CFR 742.6(a)(6)(iii)(A) (ai-diffusion).
- b-level items (and a-level items under the October 2023 scope): licence to D:1/D:4/D:5
  destinations not in A:5/A:6, plus Macau (and named destinations) — 15 CFR 742.6(a)(6)(iii)(B).
- Headquarters rule: licence anywhere when a party is headquartered, or its ultimate parent is
  headquartered, in Macau or D:5 — 15 CFR 742.6(a)(6)(iii), formerly 744.23(a)(3).
- 4E091: licence to every destination — 15 CFR 742.6(a)(13).
"""

from __future__ import annotations

import datetime as dt
import functools

from tierline.determination.facts import HQ_CITATION, Facts, LineFacts
from tierline.groups import country_groups
from tierline.reforms import Reform
from tierline.tiers import MACAU
from tierline.trace import TraceStep

A_LEVEL = "15 CFR 742.6(a)(6)(iii)(A)"
B_LEVEL = "15 CFR 742.6(a)(6)(iii)(B)"
OCT2023 = "15 CFR 742.6(a)(6)(iii) (October 2023 destination scope; 88 FR 73458)"
WEIGHTS = "15 CFR 742.6(a)(13)"


@functools.lru_cache(maxsize=4096)
def licence_set(on: dt.date, named: tuple[str, ...], reform: Reform | None = None) -> frozenset[str]:
    """(D:1 ∪ D:4 ∪ D:5) minus (A:5 ∪ A:6), plus Macau and any named destination; a scenario's
    changes to those groups included."""
    groups = country_groups()

    def members(group: str) -> frozenset[str]:
        base = groups.members(group, on)
        return reform.members(group, base, on) if reform is not None else base

    d = members("D:1") | members("D:4") | members("D:5")
    excluded = members("A:5") | members("A:6")
    return frozenset((d - excluded) | {MACAU} | set(named))


def named_destinations(facts: Facts) -> tuple[str, ...]:
    use = facts.ctx.maybe("b_level.named_destinations")
    return tuple(use.value) if use and use.value else ()


def licence_required(line: LineFacts, facts: Facts) -> tuple[bool, list[TraceStep]]:
    """Whether the line needs a licence before exceptions, with the rules tested."""
    vintage = facts.ctx.vintage
    steps: list[TraceStep] = []
    if line.level is None:
        what = "model weights not in 4E091" if line.weights else "item not in 3A090/4A090/.z"
        steps.append(TraceStep("No licence requirement under these controls", A_LEVEL, what, False, {"level": None}))
        return False, steps
    if line.level == "4e091":
        steps.append(
            TraceStep(
                "4E091 worldwide licence requirement",
                WEIGHTS,
                "controlled model weights to any destination",
                True,
                {"destination": facts.destination},
            )
        )
        return True, steps
    destination = facts.destination
    if line.level == "a" and vintage.has("worldwide_a_level"):
        steps.append(
            TraceStep(
                "a-level worldwide licence requirement",
                A_LEVEL,
                "3A090.a / 4A090.a / .z a-level item to any destination",
                True,
                {"destination": destination},
            )
        )
        return True, steps
    named = named_destinations(facts)
    in_set = destination in licence_set(facts.tx.date, named, facts.ctx.reform)
    citation = B_LEVEL if vintage.has("worldwide_a_level") else OCT2023
    steps.append(
        TraceStep(
            "Destination licence requirement",
            citation,
            "destination in D:1, D:4 or D:5 and not A:5/A:6, or Macau"
            + (f", or named ({', '.join(named)})" if named else ""),
            in_set,
            {"destination": destination, "level": line.level},
        )
    )
    if in_set:
        return True, steps
    hq_party = facts.d5_hq_party if vintage.has("headquarters_rule") else None
    steps.append(
        TraceStep(
            "Headquarters rule",
            HQ_CITATION,
            "a party headquartered, or with its ultimate parent headquartered, in Macau or D:5",
            hq_party is not None,
            {"party": hq_party.party.key, "role": hq_party.role} if hq_party else {},
        )
    )
    return hq_party is not None, steps
