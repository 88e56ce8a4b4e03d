"""Building blocks of an answer: conditions checked with citations, obligations, draws."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from tierline.policy.vintages import ParameterUse
from tierline.trace import TraceStep


@dataclass(frozen=True)
class Obligation:
    code: str
    text: str
    citation: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "text": self.text, "citation": self.citation}


@dataclass(frozen=True)
class Draw:
    account: str
    tpp: Fraction

    def as_dict(self) -> dict[str, Any]:
        return {"account": self.account, "tpp": float(self.tpp)}


class Conditions:
    """The conditions of one rule unit, each with its citation; all are evaluated so that a
    rejection says every reason, not just the first."""

    def __init__(self, rule: str, citation: str) -> None:
        self.rule = rule
        self.citation = citation
        self.items: list[dict[str, Any]] = []
        self.parameters: list[ParameterUse] = []
        self.failed: list[str] = []

    def require(self, text: str, met: bool, citation: str | None = None, **values: Any) -> bool:
        if not met:
            self.failed.append(text)
        self.items.append(
            {
                "condition": text,
                "met": bool(met),
                "citation": citation or self.citation,
                **({"values": values} if values else {}),
            }
        )
        return bool(met)

    def uses(self, *params: ParameterUse) -> None:
        self.parameters.extend(params)

    @property
    def met(self) -> bool:
        return not self.failed

    def step(self) -> TraceStep:
        met = not self.failed
        test = "all conditions met" if met else "conditions not met: " + "; ".join(self.failed)
        return TraceStep(self.rule, self.citation, test, met, {"conditions": self.items}, self.parameters)


@dataclass
class Outcome:
    """What a licence exception or authorization decided for one line."""

    authorization: str
    conditions: Conditions
    draws: list[Draw] = field(default_factory=list)
    obligations: list[Obligation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def applies(self) -> bool:
        return self.conditions.met
