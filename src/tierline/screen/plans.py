"""Plans: what the scalar engine decides for one kind of order line, whatever the allowances hold.

Lines that differ only in quantity, consignee identity and date within one policy epoch get the same
answer except where an allowance check compares usage with a cap. A plan finds those checks by running
the scalar engine (the one definition of the rules) against a probing state: every usage it reads is
symbolic, so the comparison ``used + line <= cap`` records the cap and answers "fits" or "does not"
as the probe is told. The first run lets everything fit; the draw it makes is the first candidate;
the next run refuses that account, and so on until a run draws nothing. Each run's decision is the
template for its branch. The kernel then picks the branch line by line from the real usage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import polars as pl

from tierline.allowances import ShareLimit, uveu_share_limits
from tierline.determination.engine import decide
from tierline.determination.facts import line_facts, transaction_facts
from tierline.errors import TierlineError
from tierline.reforms import Reform
from tierline.screen.orders import DECISION_SCHEMA, decision_row, transaction_for
from tierline.tiers import UNITED_STATES

CONSIGNEE = "\x00consignee\x00"  # stands for the line's consignee identifier in account names
OPERATOR = "\x00operator\x00"  # and for its LPP operating entity
_BIG = Fraction(10**40)


class _Symbolic:
    """Usage of an account as the probe sees it: adding amounts keeps it symbolic; comparing the sum
    with a cap records the cap and answers as the probe decides."""

    def __init__(self, probe: _Probe, account: str, amount: Fraction) -> None:
        self.probe, self.account, self.amount = probe, account, amount

    def __add__(self, other: Fraction | int) -> _Symbolic:
        return _Symbolic(self.probe, self.account, self.amount + other)

    __radd__ = __add__

    def __le__(self, cap: Fraction) -> bool:
        self.probe.caps[self.account] = (cap, self.amount)
        return self.account not in self.probe.refused

    def __float__(self) -> float:
        return float("nan")

    def _unsupported(self, other: object) -> bool:
        raise TypeError(f"an allowance rule compared usage of {self.account} in a way screening does not know")

    __lt__ = __gt__ = __ge__ = _unsupported


class _Probe:
    """An allowance state that lets every check pass except on refused accounts."""

    def __init__(self, refused: set[str], g2g: Mapping[str, dt.date]) -> None:
        self.refused = refused
        self.g2g = g2g
        self.caps: dict[str, tuple[Fraction, Fraction]] = {}
        self.prefixes: list[str] = []

    def used(self, account: str, on: dt.date) -> Any:
        return _Symbolic(self, account, Fraction(0))

    def accounts(self, prefix: str, on: dt.date) -> dict[str, Fraction]:
        """UVEU installed base: all in the United States (shares met), or all in a country outside
        supp. no. 5(a) (shares broken) once the entity's account here is refused."""
        self.prefixes.append(prefix)
        refused = any(a.startswith(prefix) for a in self.refused)
        return {prefix + ("~" if refused else UNITED_STATES): _BIG}

    def g2g_since(self, country: str) -> dt.date | None:
        return self.g2g.get(country)


@dataclass
class Candidate:
    """A draw a line may make: on `account` (a template naming CONSIGNEE or OPERATOR) if it fits."""

    account: str
    cap: Fraction | None = None  # a cap: used + line <= cap
    limits: list[ShareLimit] = field(default_factory=list)  # else the UVEU shares
    tier1: frozenset[str] = frozenset()
    destination: str = ""


@dataclass
class Plan:
    """The candidates in the rules' order and the decision for each branch: ``rows[k]`` when
    candidate k is the first that fits, ``rows[-1]`` when none does."""

    unit_tpp: Fraction
    candidates: list[Candidate]
    rows: list[dict[str, Any]]  # moved into `Built.templates` once built
    headquarters: str  # the consignee's headquarters (EAR code), for the ledger's UVEU check

    @property
    def branches(self) -> int:
        """How many decision templates: one per candidate, and one when none fits."""
        return len(self.candidates) + 1


def _representative(row: Mapping[str, Any]) -> dict[str, Any]:
    rep = dict(row)
    rep["consignee_id"] = CONSIGNEE
    rep["consignee_name"] = CONSIGNEE
    if rep.get("lpp_operating_entity"):
        rep["lpp_operating_entity"] = OPERATOR
    rep["quantity"] = 1
    rep["line_id"] = None
    return rep


def make_plan(row: Mapping[str, Any], vintage: str, g2g: Mapping[str, dt.date], reform: Reform | None = None) -> Plan:
    """The plan for lines like `row` (parsed values; its date stands for its policy epoch) under
    `vintage` and, when given, a scenario `reform`. A TierlineError when such lines are invalid."""
    tx = transaction_for(_representative(row), vintage)
    facts = transaction_facts(tx, reform)
    lines = [line_facts(tx.items[0], 0, facts)]
    refused: set[str] = set()
    candidates: list[Candidate] = []
    rows: list[dict[str, Any]] = []
    unit = Fraction(0)
    while True:
        probe = _Probe(refused, g2g)
        det = decide(facts, lines, probe)
        unit = det.lines[0].facts.tpp_total
        rows.append(decision_row(det, 0, None))
        draws = det.lines[0].draws
        if not draws:
            break
        account = draws[0].account
        if account in refused or draws[0].tpp != unit:
            raise AssertionError(f"plan for {account}: a refused account was drawn, or not the line's TPP")
        if account in probe.caps:
            cap, compared = probe.caps[account]
            if compared != unit:
                raise AssertionError(f"plan for {account}: the cap was compared with {compared}, not the line")
            candidates.append(Candidate(account, cap=cap))
        elif any(account.startswith(p) for p in probe.prefixes):
            consignee = facts.parties[0]
            limits, _ = uveu_share_limits(consignee.headquarters, facts.ctx)
            candidates.append(Candidate(account, limits=limits, tier1=facts.tier1, destination=facts.destination))
        else:
            raise AssertionError(f"plan for {account}: a draw without an allowance check")
        refused.add(account)
        if len(candidates) > 8:
            raise AssertionError("plan: more candidates than rules")
    return Plan(unit, candidates, rows, facts.parties[0].headquarters)


Task = tuple[Mapping[str, Any], str, Mapping[str, dt.date], Reform | None]  # plan_or_error's arguments


def plan_or_error(
    row: Mapping[str, Any], vintage: str, g2g: Mapping[str, dt.date], reform: Reform | None = None
) -> Plan | TierlineError:
    try:
        return make_plan(row, vintage, g2g, reform)
    except TierlineError as exc:
        return exc


@dataclass
class Built:
    """Plans (or errors) for a run of tasks, in task order, and every plan's decision templates in
    the same order as one frame (cheaper to move between processes than the rows)."""

    plans: list[Plan | TierlineError]
    templates: pl.DataFrame

    @classmethod
    def join(cls, parts: list[Built]) -> Built:
        templates = [p.templates for p in parts]
        return cls([plan for p in parts for plan in p.plans], pl.concat(templates) if templates else _no_rows())

    def split(self, counts: list[int]) -> list[Built]:
        """Consecutive runs of `counts` plans each, with their templates."""
        out, start, row = [], 0, 0
        for n in counts:
            plans = self.plans[start : start + n]
            rows = sum(p.branches for p in plans if isinstance(p, Plan))
            out.append(Built(plans, self.templates.slice(row, rows)))
            start, row = start + n, row + rows
        return out


def build(tasks: list[Task]) -> Built:
    """The plan (or the error) of each task."""
    plans = [plan_or_error(*task) for task in tasks]
    rows = [row for plan in plans if isinstance(plan, Plan) for row in plan.rows]
    for plan in plans:
        if isinstance(plan, Plan):
            plan.rows = []
    return Built(plans, pl.DataFrame(rows, schema=DECISION_SCHEMA) if rows else _no_rows())


def _no_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=DECISION_SCHEMA)
