"""Explained answers: each step names the rule, its citation, the numbers it tested and the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tierline.policy.vintages import ParameterUse


@dataclass
class TraceStep:
    """One rule tested: what it asks, with which values and parameters, and what it answered."""

    rule: str
    citation: str
    test: str
    result: bool | str | None
    values: dict[str, Any] = field(default_factory=dict)
    parameters: list[ParameterUse] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "citation": self.citation,
            "test": self.test,
            "result": self.result,
            "values": self.values,
            "parameters": [p.as_dict() for p in self.parameters],
        }
