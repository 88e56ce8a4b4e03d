"""The determination: general requirement, then the exceptions in order, then review policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from tierline.allowances import AllowanceState, InMemoryAllowances, PendingDraws
from tierline.determination.facts import Facts, LineFacts, line_facts, transaction_facts
from tierline.determination.license_exceptions import ORDER
from tierline.determination.model import EndUse, Transaction
from tierline.determination.outcome import Draw, Obligation, Outcome
from tierline.determination.requirements import licence_required
from tierline.determination.review import review_policy
from tierline.reforms import Reform
from tierline.trace import TraceStep

AUTHORIZATION_RANK = ["NLR", "AIA", "ACM", "ACA", "UVEU", "NVEU", "LPP", "NAC", "LICENSE"]
REVIEW_RANK = [None, "presumption_of_approval", "case_by_case", "presumption_of_denial"]
RECORDS = Obligation(
    "recordkeeping", "Keep the export records, certifications and notifications for five years", "15 CFR 762.6"
)
LICENCE = Obligation("license_application", "Apply to BIS for a licence (SNAP-R) before shipment", "15 CFR 748.1")
RED_FLAG_28 = "15 CFR 732 Supp. 3, Red Flag 28"


@dataclass
class LineDetermination:
    """The answer for one line."""

    facts: LineFacts
    license_required: bool
    authorization: str
    review_policy: str | None
    draws: list[Draw]
    obligations: list[Obligation]
    warnings: list[str]
    trace: list[TraceStep]
    considered: list[str]

    def as_dict(self) -> dict[str, Any]:
        f = self.facts
        c = f.classification
        return {
            "index": f.index,
            "item": f.item.chip or f.item.name or ("model weights" if f.item.model_weights else "chip spec"),
            "quantity": f.item.quantity,
            "eccn": c.eccn if c else (f.weights.eccn if f.weights else None),
            "paragraph": c.paragraph if c else (f.weights.eccn if f.weights else None),
            "level": f.level,
            "tpp": float(f.tpp_total),
            "training_operations": float(f.weights.operations) if f.weights else None,
            "license_required": self.license_required,
            "authorization": self.authorization,
            "review_policy": self.review_policy,
            "draws": [d.as_dict() for d in self.draws],
            "obligations": [o.as_dict() for o in self.obligations],
            "exceptions_considered": self.considered,
            "warnings": self.warnings,
            "trace": [s.as_dict() for s in self.trace],
        }


@dataclass
class Determination:
    """The answer for the whole transaction."""

    facts: Facts
    lines: list[LineDetermination]
    red_flags: list[Obligation] = field(default_factory=list)

    @property
    def license_required(self) -> bool:
        return any(line.license_required and line.authorization == "LICENSE" for line in self.lines)

    @property
    def authorization(self) -> str:
        return max((line.authorization for line in self.lines), key=AUTHORIZATION_RANK.index)

    @property
    def review_policy(self) -> str | None:
        return max((line.review_policy for line in self.lines), key=REVIEW_RANK.index)

    @property
    def draws(self) -> list[Draw]:
        total: dict[str, Fraction] = {}
        for line in self.lines:
            for d in line.draws:
                total[d.account] = total.get(d.account, Fraction(0)) + d.tpp
        return [Draw(k, v) for k, v in total.items()]

    @property
    def obligations(self) -> list[Obligation]:
        seen: dict[str, Obligation] = {}
        for line in self.lines:
            for o in line.obligations:
                seen.setdefault(o.code, o)
        return list(seen.values())

    @property
    def warnings(self) -> list[str]:
        return list(dict.fromkeys(self.facts.warnings + [w for line in self.lines for w in line.warnings]))

    def as_dict(self) -> dict[str, Any]:
        trace = []
        for line in self.lines:
            for step in line.trace:
                trace.append({"line": line.facts.index, **step.as_dict()})
        trace += [
            {
                "line": None,
                "rule": f.code,
                "citation": f.citation,
                "test": f.text,
                "result": True,
                "values": {},
                "parameters": [],
            }
            for f in self.red_flags
        ]
        return {
            "license_required": self.license_required,
            "authorization": self.authorization,
            "review_policy": self.review_policy,
            "allocation_draws": [d.as_dict() for d in self.draws],
            "obligations": [o.as_dict() for o in self.obligations],
            "red_flags": [f.as_dict() for f in self.red_flags],
            "warnings": self.warnings,
            "kind": self.facts.kind.value,
            "destination": self.facts.destination,
            "tier": self.facts.tier if self.facts.ctx.vintage.has("tiers") else None,
            "lines": [line.as_dict() for line in self.lines],
            "trace": trace,
            **self.facts.ctx.stamp(),
        }


def _determine_line(line: LineFacts, facts: Facts, state: PendingDraws) -> LineDetermination:
    required, steps = licence_required(line, facts)
    trace = line.trace + steps
    warnings = list(line.warnings)
    if not required:
        if line.level is None:
            warnings.append(
                "not controlled under 3A090/4A090/.z/4E091 here; other controls (15 CFR 744.23 end uses, "
                "the Entity List, is-informed letters) are not assessed"
            )
        obligations = [RECORDS] if line.level else []
        return LineDetermination(line, False, "NLR", None, [], obligations, warnings, trace, [])
    chosen: Outcome | None = None
    considered = []
    for consider in ORDER:
        outcome = consider(line, facts, state)
        if outcome is None:
            continue
        considered.append(outcome.authorization)
        trace.append(outcome.conditions.step())
        if outcome.applies:
            chosen = outcome
            break
    if chosen is not None:
        for d in chosen.draws:
            state.add(d.account, d.tpp)
        return LineDetermination(
            line,
            True,
            chosen.authorization,
            None,
            chosen.draws,
            chosen.obligations + [RECORDS],
            warnings + chosen.warnings,
            trace,
            considered,
        )
    review = review_policy(line, facts, state)
    for d in review.draws:
        state.add(d.account, d.tpp)
    return LineDetermination(
        line,
        True,
        "LICENSE",
        review.policy,
        review.draws,
        [LICENCE, RECORDS],
        warnings + review.warnings,
        trace + review.steps,
        considered,
    )


def _red_flags(facts: Facts) -> list[Obligation]:
    end_use = facts.tx.end_use
    if not facts.ctx.vintage.has("eccn_4e091") or end_use not in (EndUse.iaas_training, EndUse.training_4e091):
        return []
    if facts.all_tier1_entities:
        return []
    return [
        Obligation(
            "red_flag_28",
            "Computing services to train a 4E091 model for an entity headquartered (or "
            "ultimately owned) outside supp. no. 5(a): ask whether the customer will export the model; "
            "apply for a licence or inform the customer of its obligation",
            RED_FLAG_28,
        )
    ]


def decide(facts: Facts, lines: list[LineFacts], state: AllowanceState | None = None) -> Determination:
    """The determination for resolved facts (bulk screening resolves them once and decides many times)."""
    pending = PendingDraws(state if state is not None else InMemoryAllowances())
    results = [_determine_line(line, facts, pending) for line in lines]
    return Determination(facts, results, _red_flags(facts))


def determine(tx: Transaction, state: AllowanceState | None = None, reform: Reform | None = None) -> Determination:
    """Determine licence requirements for a transaction against the allowance state (pure: reads only).

    `reform` evaluates the transaction under a scenario (tierline.reforms) instead of the law."""
    facts = transaction_facts(tx, reform)
    return decide(facts, [line_facts(item, i, facts) for i, item in enumerate(tx.items)], state)
