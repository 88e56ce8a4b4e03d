"""Acceptance cases for the licence-determination engine (tests/cases/determinations/*.yaml).

Every case is a transaction in the format of docs/determinations.md, an optional allowance state, and
the parts of the answer a compliance officer would check. Expected values never come from running
tierline: they come from the reference files in ../shared/reference/ (cited in each case's ``source``)
and from the hand arithmetic written next to each number in the case files.

Expect keys (only the keys a case gives are checked):
  license_required, authorization, review_policy      equality
  allocation_draws      exact list of {account, tpp}, order-insensitive, tpp within 1e-6 relative
  obligations_include   obligation codes that must be present
  red_flags_include     red-flag codes that must be present
  warnings_contain      case-insensitive substrings, each found in some warning
  rejected_include      exceptions the trace shows as tried and rejected (a step whose rule starts
                        with the name and whose result is False)
  lines                 per-line checks by index (a subset of each line's keys)
  error_field           the input is invalid: a TierlineError whose field contains this string
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

CASES_DIR = Path(__file__).resolve().parent / "cases" / "determinations"
EXPECT_KEYS = {
    "license_required",
    "authorization",
    "review_policy",
    "allocation_draws",
    "obligations_include",
    "red_flags_include",
    "warnings_contain",
    "rejected_include",
    "lines",
    "error_field",
}
CASE_KEYS = {"name", "source", "state", "transaction", "expect"}
MIN_CASES = 70
REL_TOL = 1e-6


def _load_all() -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            cases.append((f"{path.stem}: {case.get('name')}", case))
    return cases


ALL_CASES = _load_all()
ANSWERED_CASES = [(cid, c) for cid, c in ALL_CASES if "error_field" not in (c.get("expect") or {})]


def _params(cases: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    return [pytest.param(case, id=cid) for cid, case in cases]


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _determine(case: dict[str, Any]) -> dict[str, Any]:
    """Run the engine on one case and return the answer as a dict."""
    from tierline.determination import InMemoryAllowances, Transaction, determine

    state = case.get("state") or {}
    allowances = InMemoryAllowances(
        used=dict(state.get("used") or {}),
        g2g={str(cc): _date(day) for cc, day in (state.get("g2g") or {}).items()},
    )
    tx = Transaction.model_validate(case["transaction"])
    answer: dict[str, Any] = determine(tx, allowances).as_dict()
    return answer


def _codes(entries: list[dict[str, Any]] | None) -> list[str]:
    return [str(e.get("code")) for e in entries or []]


def _check_draws(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    got = [(str(d["account"]), float(d["tpp"])) for d in actual or []]
    want = [(str(d["account"]), float(d["tpp"])) for d in expected or []]
    assert len(got) == len(want), f"allocation draws {got} != expected {want}"
    unmatched = list(got)
    for account, tpp in want:
        match = next(
            (g for g in unmatched if g[0] == account and math.isclose(g[1], tpp, rel_tol=REL_TOL, abs_tol=1e-9)),
            None,
        )
        assert match is not None, f"expected draw {account} = {tpp:,} not found in {got}"
        unmatched.remove(match)


def _rejected(trace: list[dict[str, Any]], name: str) -> bool:
    return any(str(step.get("rule", "")).startswith(name) and step.get("result") is False for step in trace or [])


def _check(answer: dict[str, Any], expect: dict[str, Any]) -> None:
    for key in ("license_required", "authorization", "review_policy"):
        if key in expect:
            assert answer[key] == expect[key], f"{key}: got {answer[key]!r}, expected {expect[key]!r}"
    if "allocation_draws" in expect:
        _check_draws(answer["allocation_draws"], expect["allocation_draws"])
    if "obligations_include" in expect:
        codes = _codes(answer["obligations"])
        missing = [c for c in expect["obligations_include"] if c not in codes]
        assert not missing, f"obligations {codes} lack {missing}"
    if "red_flags_include" in expect:
        codes = _codes(answer["red_flags"])
        missing = [c for c in expect["red_flags_include"] if c not in codes]
        assert not missing, f"red flags {codes} lack {missing}"
    if "warnings_contain" in expect:
        warnings = [str(w).lower() for w in answer["warnings"] or []]
        missing = [s for s in expect["warnings_contain"] if not any(s.lower() in w for w in warnings)]
        assert not missing, f"no warning contains {missing}; warnings: {answer['warnings']}"
    if "rejected_include" in expect:
        missing = [n for n in expect["rejected_include"] if not _rejected(answer["trace"], n)]
        tried = [(s.get("rule"), s.get("result")) for s in answer["trace"] or []]
        assert not missing, f"trace shows no rejected step for {missing}; steps: {tried}"
    if "lines" in expect:
        lines = answer["lines"]
        assert len(lines) >= len(expect["lines"]), f"{len(lines)} lines, expected at least {len(expect['lines'])}"
        for index, want in enumerate(expect["lines"]):
            for key, value in want.items():
                assert lines[index].get(key) == value, (
                    f"lines[{index}].{key}: got {lines[index].get(key)!r}, expected {value!r}"
                )


@pytest.mark.parametrize("case", _params(ALL_CASES))
def test_determination_case(case: dict[str, Any]) -> None:
    from tierline.errors import TierlineError

    expect = case["expect"]
    if "error_field" in expect:
        with pytest.raises(TierlineError) as caught:
            _determine(case)
        field = str(getattr(caught.value, "field", "") or "")
        assert expect["error_field"] in field, f"error field {field!r} does not name {expect['error_field']!r}"
        return
    _check(_determine(case), expect)


@pytest.mark.parametrize("case", _params(ALL_CASES))
def test_case_is_well_formed(case: dict[str, Any]) -> None:
    """Every case cites the passage it checks, and uses only known keys."""
    assert str(case.get("source") or "").strip(), "case has no source"
    assert str(case.get("name") or "").strip(), "case has no name"
    assert set(case) <= CASE_KEYS, f"unknown case keys {set(case) - CASE_KEYS}"
    assert isinstance(case.get("transaction"), dict), "case has no transaction"
    assert case.get("expect"), "case expects nothing"
    assert set(case["expect"]) <= EXPECT_KEYS, f"unknown expect keys {set(case['expect']) - EXPECT_KEYS}"


def test_every_case_has_a_source() -> None:
    missing = [cid for cid, case in ALL_CASES if not str(case.get("source") or "").strip()]
    assert not missing, f"cases without a source: {missing}"


def test_case_count() -> None:
    assert len(ALL_CASES) >= MIN_CASES, f"only {len(ALL_CASES)} determination cases"


def test_case_names_are_unique() -> None:
    ids = [cid for cid, _ in ALL_CASES]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"duplicate case names: {duplicates}"


def test_every_trace_step_cites_its_paragraph() -> None:
    """Over the whole suite: every rule that fired and every exception rejected carries a citation."""
    failures: list[str] = []
    for cid, case in ANSWERED_CASES:
        try:
            answer = _determine(case)
        except Exception as exc:  # report, and keep checking the other cases
            failures.append(f"{cid}: {type(exc).__name__}: {exc}")
            continue
        if not answer.get("trace"):
            failures.append(f"{cid}: empty trace")
        for index, step in enumerate(answer.get("trace") or []):
            if not str(step.get("citation") or "").strip():
                failures.append(f"{cid}: trace[{index}] ({step.get('rule')!r}) has no citation")
    assert not failures, "\n".join(failures)


def test_every_answer_names_its_vintage_and_date() -> None:
    """Every determination states the vintage and the as-of date it used (ai-diffusion-rule.md §0.3)."""
    failures: list[str] = []
    for cid, case in ANSWERED_CASES:
        try:
            answer = _determine(case)
        except Exception as exc:  # report, and keep checking the other cases
            failures.append(f"{cid}: {type(exc).__name__}: {exc}")
            continue
        tx = case["transaction"]
        vintage = tx.get("vintage", "ai-diffusion")
        if answer.get("vintage") != vintage:
            failures.append(f"{cid}: vintage {answer.get('vintage')!r}, expected {vintage!r}")
        if str(answer.get("as_of")) != str(_date(tx["date"])):
            failures.append(f"{cid}: as_of {answer.get('as_of')!r}, expected {tx['date']}")
    assert not failures, "\n".join(failures)
