"""The allocation ledger's operations, limits and bad-input handling, on SQLite and PostgreSQL.

Expected figures are the regulation parameters (AI Diffusion rule, 90 FR 4544) and hand arithmetic:
LPP 26,900,000 TPP per consignee per calendar year; Tier 2 country allocation 790,000,000 TPP for
2025-01-01..2027-12-31, doubled (x2 = 1,580,000,000) from a recorded g2g date; NVEU cumulative cap
1,580,000,000 through 2025-12-31 and 4,270,000,000 through 2026-12-31; UVEU shares >= 75 % in
Tier 1, <= 7 % in any single non-Tier-1 country, >= 50 % in the US for a US-headquartered UVEU.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest

from tierline.errors import TierlineError
from tierline.ledger import Draw, Ledger

D = dt.date(2025, 6, 1)
STATUS_DAY = dt.date(2026, 12, 31)
MICRO = Fraction(1, 1_000_000)  # one micro-TPP, the ledger's unit

LPP = 26_900_000
ALLOCATION = 790_000_000
ALLOCATION_G2G = 790_000_000 * 2  # 1,580,000,000
NVEU_2025 = 1_580_000_000
NVEU_2026 = 4_270_000_000


# --- helpers ---------------------------------------------------------------------------------------


def snapshot(ledger: Ledger) -> tuple[Any, ...]:
    """Everything a refused request must leave untouched: entries, balances, audit rows, chains."""
    v = ledger.verify()
    return (
        ledger.entries(),
        ledger.status(as_of=D),
        ledger.status(as_of=STATUS_DAY),
        v["rows"],
        v["ok"],
        {a: ledger.history(a) for a in [*ledger.account_ids(), "system"]},
    )


def refused(ledger: Ledger, field: str | None, call: Callable[[], Any]) -> TierlineError:
    """`call` raises a TierlineError naming `field` (any field when None), and the ledger is exactly as before."""
    before = snapshot(ledger)
    with pytest.raises(TierlineError) as info:
        call()
    assert field is None or info.value.field == field, (
        f"expected field {field!r}, got {info.value.field!r}: {info.value}"
    )
    assert snapshot(ledger) == before
    return info.value


def row(ledger: Ledger, account: str, as_of: dt.date = D) -> dict[str, Any]:
    rows = [r for r in ledger.status(as_of=as_of) if r["account"] == account]
    assert len(rows) == 1, f"{account} not in status: {ledger.status(as_of=as_of)}"
    return rows[0]


def direct(ledger: Ledger, account: str, tpp: Any, key: str, on: dt.date = D, **kw: Any) -> dict[str, Any]:
    return ledger.direct_commit(account, tpp, effective_date=on, idempotency_key=key, **kw)


def ok(ledger: Ledger) -> None:
    result = ledger.verify()
    assert result["ok"], result["problems"]


# --- reserve / commit / release / direct / adjust ------------------------------------------------


def test_reserve_then_commit_moves_the_hold_into_committed(ledger: Ledger) -> None:
    hold = ledger.reserve("allocation:BR", 1_000, effective_date=D, idempotency_key="r1", actor="alice")
    assert hold["status"] == "held" and hold["account"] == "allocation:BR" and hold["tpp"] == 1_000
    assert hold["replayed"] is False
    r = row(ledger, "allocation:BR")
    assert (r["used"], r["held"], r["limit"], r["headroom"]) == (0, 1_000, ALLOCATION, ALLOCATION - 1_000)
    assert ledger.entries() == []

    done = ledger.commit(hold["hold_id"], idempotency_key="c1", actor="alice")
    assert done["status"] == "committed" and done["tpp"] == 1_000
    r = row(ledger, "allocation:BR")
    assert (r["used"], r["held"], r["headroom"]) == (1_000, 0, ALLOCATION - 1_000)
    [entry] = ledger.entries()
    assert entry["account_id"] == "allocation:BR"
    assert entry["op"] == "commit"
    assert entry["amount_micro"] == 1_000 * 1_000_000
    assert entry["hold_id"] == hold["hold_id"]
    assert entry["actor"] == "alice"
    assert entry["idempotency_key"] == "c1"
    assert [e["op"] for e in ledger.history("allocation:BR")] == ["reserve", "commit"]
    ok(ledger)


def test_release_gives_the_hold_back_and_a_released_hold_cannot_be_committed(ledger: Ledger) -> None:
    hold = ledger.reserve("lpp:acme:2025", LPP, effective_date=D, idempotency_key="r1")
    assert row(ledger, "lpp:acme:2025")["headroom"] == 0
    released = ledger.release(hold["hold_id"], idempotency_key="x1")
    assert released["status"] == "released"
    r = row(ledger, "lpp:acme:2025")
    assert (r["used"], r["held"], r["headroom"]) == (0, 0, LPP)
    assert ledger.entries() == []
    refused(ledger, "hold_id", lambda: ledger.commit(hold["hold_id"], idempotency_key="c1"))
    refused(ledger, "hold_id", lambda: ledger.release(hold["hold_id"], idempotency_key="x2"))
    # the whole allowance is free again
    direct(ledger, "lpp:acme:2025", LPP, "d1")
    assert row(ledger, "lpp:acme:2025")["used"] == LPP
    ok(ledger)


def test_a_committed_hold_cannot_be_committed_again_or_released(ledger: Ledger) -> None:
    hold = ledger.reserve("allocation:BR", 5, effective_date=D, idempotency_key="r1")
    ledger.commit(hold["hold_id"], idempotency_key="c1")
    refused(ledger, "hold_id", lambda: ledger.commit(hold["hold_id"], idempotency_key="c2"))
    refused(ledger, "hold_id", lambda: ledger.release(hold["hold_id"], idempotency_key="x1"))
    refused(ledger, "hold_id", lambda: ledger.commit("no-such-hold", idempotency_key="c3"))
    assert row(ledger, "allocation:BR")["used"] == 5


def test_direct_commit_records_one_entry(ledger: Ledger) -> None:
    result = direct(ledger, "allocation:MX", 12_345.5, "d1", actor="bob")
    assert result["applied"] == [{"account": "allocation:MX", "tpp": 12_345.5}]
    assert result["lines"] == 1 and result["replayed"] is False
    [entry] = ledger.entries()
    assert (entry["op"], entry["amount_micro"], entry["effective_date"]) == ("direct", 12_345_500_000, D)
    assert row(ledger, "allocation:MX")["used"] == 12_345.5
    ok(ledger)


def test_adjust_corrects_by_a_signed_amount_with_a_reason(ledger: Ledger) -> None:
    direct(ledger, "allocation:BR", 1_000, "d1")
    result = ledger.adjust("allocation:BR", -5, reason="double-counted pallet", effective_date=D, idempotency_key="a1")
    assert result["tpp"] == -5 and result["committed"] == 995
    assert row(ledger, "allocation:BR")["used"] == 995  # 1,000 - 5
    adjustment = ledger.entries()[-1]
    assert (adjustment["op"], adjustment["amount_micro"], adjustment["reason"]) == (
        "adjust",
        -5_000_000,
        "double-counted pallet",
    )
    assert ledger.history("allocation:BR")[-1]["reason"] == "double-counted pallet"
    ledger.adjust("allocation:BR", 10, reason="late invoice", effective_date=D, idempotency_key="a2")
    assert row(ledger, "allocation:BR")["used"] == 1_005  # 995 + 10
    ok(ledger)


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_adjust_needs_a_reason(ledger: Ledger, reason: Any) -> None:
    direct(ledger, "allocation:BR", 1_000, "d1")
    refused(
        ledger,
        "reason",
        lambda: ledger.adjust("allocation:BR", -5, reason=reason, effective_date=D, idempotency_key="a1"),
    )


def test_adjust_cannot_go_below_zero(ledger: Ledger) -> None:
    direct(ledger, "allocation:BR", 1_000, "d1")
    refused(
        ledger,
        "tpp",
        lambda: ledger.adjust("allocation:BR", -1_000 - MICRO, reason="x", effective_date=D, idempotency_key="a1"),
    )
    refused(
        ledger, "tpp", lambda: ledger.adjust("allocation:BR", 0, reason="x", effective_date=D, idempotency_key="a2")
    )
    # exactly to zero is allowed
    ledger.adjust("allocation:BR", -1_000, reason="shipment cancelled", effective_date=D, idempotency_key="a3")
    assert row(ledger, "allocation:BR")["used"] == 0
    refused(
        ledger, "tpp", lambda: ledger.adjust("allocation:MX", -1, reason="x", effective_date=D, idempotency_key="a4")
    )


# --- limits at and just past the line ------------------------------------------------------------

LIMITS = [
    pytest.param("allocation:BR", D, ALLOCATION, id="allocation-790M"),
    pytest.param("lpp:acme:2025", D, LPP, id="lpp-26.9M"),
    pytest.param("lpp:acme:2026", dt.date(2026, 3, 1), LPP, id="lpp-2026-26.9M"),
    pytest.param("nveu:acme:BR", dt.date(2025, 12, 31), NVEU_2025, id="nveu-2025-1.58B"),
    pytest.param("nveu:acme:IN", dt.date(2026, 6, 1), NVEU_2026, id="nveu-2026-4.27B"),
]


@pytest.mark.parametrize(("account", "on", "limit"), LIMITS)
def test_exactly_the_limit_is_allowed_and_one_micro_tpp_more_is_refused(
    ledger: Ledger, account: str, on: dt.date, limit: int
) -> None:
    error = refused(ledger, "tpp", lambda: direct(ledger, account, limit + MICRO, "d0", on))
    assert account in str(error)
    refused(ledger, "tpp", lambda: direct(ledger, account, limit + 1, "d1", on))  # 1 TPP above
    direct(ledger, account, limit, "d2", on)
    r = row(ledger, account, on)
    assert (r["used"], r["limit"], r["headroom"]) == (limit, limit, 0)
    refused(ledger, "tpp", lambda: direct(ledger, account, MICRO, "d3", on))
    refused(ledger, "tpp", lambda: direct(ledger, account, 1, "d4", on))
    refused(ledger, "tpp", lambda: ledger.reserve(account, MICRO, effective_date=on, idempotency_key="r1"))
    ok(ledger)


@pytest.mark.parametrize(("account", "on", "limit"), LIMITS)
def test_draws_add_up_to_the_limit(ledger: Ledger, account: str, on: dt.date, limit: int) -> None:
    direct(ledger, account, Fraction(limit) - MICRO, "d1", on)
    assert row(ledger, account, on)["headroom"] == pytest.approx(float(MICRO))
    refused(ledger, "tpp", lambda: direct(ledger, account, 2 * MICRO, "d2", on))
    direct(ledger, account, MICRO, "d3", on)  # limit - 1 micro + 1 micro = limit exactly
    assert row(ledger, account, on)["used"] == limit


def test_nveu_cumulative_cap_rises_through_the_schedule(ledger: Ledger) -> None:
    acct = "nveu:acme:BR"
    direct(ledger, acct, NVEU_2025, "d1", dt.date(2025, 12, 31))
    refused(ledger, "tpp", lambda: direct(ledger, acct, MICRO, "d2", dt.date(2025, 12, 31)))
    # 4,270,000,000 - 1,580,000,000 = 2,690,000,000 more fit from 2026
    refused(ledger, "tpp", lambda: direct(ledger, acct, 2_690_000_000 + MICRO, "d3", dt.date(2026, 1, 1)))
    direct(ledger, acct, 2_690_000_000, "d4", dt.date(2026, 1, 1))
    assert row(ledger, acct, dt.date(2026, 12, 31))["used"] == NVEU_2026
    refused(ledger, "tpp", lambda: direct(ledger, acct, MICRO, "d5", dt.date(2026, 12, 31)))
    r25 = row(ledger, acct, dt.date(2025, 12, 31))
    assert (r25["used"], r25["limit"], r25["headroom"]) == (NVEU_2025, NVEU_2025, 0)


def test_nveu_earlier_dated_draw_fits_the_earlier_cumulative_cap(ledger: Ledger) -> None:
    acct = "nveu:acme:BR"
    direct(ledger, acct, 2_000_000_000, "d1", dt.date(2026, 3, 1))  # <= 4,270,000,000 through 2026
    # cumulative through 2025-06-01 would be 1 TPP <= 1,580,000,000; through 2026: 2,000,000,001 <= 4,270,000,000
    assert row(ledger, acct, D)["headroom"] == NVEU_2025
    direct(ledger, acct, 1, "d2", D)
    assert row(ledger, acct, D)["used"] == 1
    assert row(ledger, acct, dt.date(2026, 3, 1))["used"] == 2_000_000_001
    # and an earlier-dated draw may not break a later step: 2,000,000,001 + 2,270,000,000 > 4,270,000,000
    refused(ledger, "tpp", lambda: direct(ledger, acct, 2_270_000_000, "d3", D))
    # nor the step of its own date: 1 + 1,580,000,000 > 1,580,000,000
    refused(ledger, "tpp", lambda: direct(ledger, acct, NVEU_2025, "d4", D))
    direct(ledger, acct, NVEU_2025 - 1, "d5", D)  # 1,580,000,000 through 2025 exactly; 3,580,000,000 through 2026


def test_allocation_earlier_dated_draw_fits_before_the_g2g_date(ledger: Ledger) -> None:
    acct = "allocation:BR"
    ledger.record_g2g("BR", dt.date(2025, 7, 1), reason="BR-US", idempotency_key="g1")
    direct(ledger, acct, 1_000_000_000, "d1", dt.date(2025, 8, 1))  # <= 1,580,000,000 from 1 July
    assert row(ledger, acct, D)["headroom"] == ALLOCATION
    # through 2025-06-01: 1 <= 790,000,000; through 2025-08-01: 1,000,000,001 <= 1,580,000,000
    direct(ledger, acct, 1, "d2", D)


def test_allocation_only_counts_in_its_period(ledger: Ledger) -> None:
    # before 2025 no allocation parameter is in force at all (the error names the parameter)
    refused(ledger, None, lambda: direct(ledger, "allocation:BR", 1, "d1", dt.date(2024, 12, 31)))
    refused(ledger, "effective_date", lambda: direct(ledger, "allocation:BR", 1, "d2", dt.date(2028, 1, 1)))
    direct(ledger, "allocation:BR", 1, "d3", dt.date(2025, 1, 13))  # the rule's effective date
    direct(ledger, "allocation:BR", 1, "d4", dt.date(2027, 12, 31))
    assert row(ledger, "allocation:BR", dt.date(2027, 12, 31))["used"] == 2


def test_holds_count_against_headroom(ledger: Ledger) -> None:
    acct = "lpp:acme:2025"
    ledger.reserve(acct, LPP - 5, effective_date=D, idempotency_key="r1")
    r = row(ledger, acct)
    assert (r["used"], r["held"], r["headroom"]) == (0, LPP - 5, 5)
    refused(ledger, "tpp", lambda: direct(ledger, acct, 6, "d1"))
    refused(ledger, "tpp", lambda: ledger.reserve(acct, 5 + MICRO, effective_date=D, idempotency_key="r2"))
    direct(ledger, acct, 5, "d2")  # (26,900,000 - 5) held + 5 committed = the limit exactly
    r = row(ledger, acct)
    assert (r["used"], r["held"], r["headroom"]) == (5, LPP - 5, 0)


def test_a_hold_that_expired_in_the_past_no_longer_counts_and_cannot_be_committed(ledger: Ledger) -> None:
    acct = "lpp:acme:2025"
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    hold = ledger.reserve(acct, LPP, effective_date=D, idempotency_key="r1", expires_at=past)
    r = row(ledger, acct)
    assert (r["used"], r["held"], r["headroom"]) == (0, 0, LPP)
    refused(ledger, "hold_id", lambda: ledger.commit(hold["hold_id"], idempotency_key="c1"))
    assert ledger.entries() == []
    direct(ledger, acct, LPP, "d1")  # the whole allowance is free: the expired hold does not count
    assert row(ledger, acct)["used"] == LPP
    assert "expire" in [e["op"] for e in ledger.history(acct)]
    refused(ledger, "hold_id", lambda: ledger.commit(hold["hold_id"], idempotency_key="c2"))
    ok(ledger)


def test_a_hold_with_a_tiny_ttl_expires(ledger: Ledger) -> None:
    acct = "allocation:BR"
    direct(ledger, acct, ALLOCATION - 1_000, "d1")
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.6)
    hold = ledger.reserve(acct, 1_000, effective_date=D, idempotency_key="r1", expires_at=soon)
    refused(ledger, "tpp", lambda: direct(ledger, acct, 1, "d2"))  # the live hold fills the allocation
    time.sleep(max(0.0, (soon - dt.datetime.now(dt.UTC)).total_seconds()) + 0.3)
    assert row(ledger, acct)["held"] == 0
    refused(ledger, "hold_id", lambda: ledger.commit(hold["hold_id"], idempotency_key="c1"))
    direct(ledger, acct, 1_000, "d3")
    assert row(ledger, acct)["used"] == ALLOCATION
    ok(ledger)


# --- bad accounts and amounts ---------------------------------------------------------------------

BAD_ACCOUNTS = [
    "",
    "allocation",
    "allocation:",
    "allocation:br",
    "allocation:BRA",
    "allocation:XX",
    "lpp:acme",
    "lpp:acme:25",
    "lpp::2025",
    "nveu:acme:ZZ",
    "uveu:acme",
    "license:",
    "license:a:b",
    "system",
    "quota:BR",
]


@pytest.mark.parametrize("account", BAD_ACCOUNTS)
def test_an_unknown_or_ill_formed_account_is_refused(ledger: Ledger, account: str) -> None:
    refused(ledger, "account", lambda: ledger.reserve(account, 1, effective_date=D, idempotency_key="r1"))
    refused(ledger, "account", lambda: direct(ledger, account, 1, "d1"))
    refused(ledger, "account", lambda: ledger.adjust(account, 1, reason="x", effective_date=D, idempotency_key="a1"))
    refused(ledger, "account", lambda: ledger.apply([Draw(account, 1, D)], idempotency_key="p1"))


@pytest.mark.parametrize("tpp", [0, -1, -MICRO, "0", "-5", "abc", "", float("nan"), float("inf"), "1/0", 0.0000004])
def test_zero_negative_and_non_numeric_amounts_are_refused(ledger: Ledger, tpp: Any) -> None:
    refused(ledger, "tpp", lambda: ledger.reserve("allocation:BR", tpp, effective_date=D, idempotency_key="r1"))
    refused(ledger, "tpp", lambda: direct(ledger, "allocation:BR", tpp, "d1"))
    refused(
        ledger,
        "tpp",
        lambda: ledger.record_license("L-1", country="BR", holder="acme", tpp=tpp, issued=D, idempotency_key="l1"),
    )


# --- idempotency -------------------------------------------------------------------------------------


def test_the_same_key_and_request_is_replayed_and_counted_once(ledger: Ledger) -> None:
    first = direct(ledger, "allocation:BR", 1_000, "d1")
    second = direct(ledger, "allocation:BR", 1_000, "d1")
    assert first.pop("replayed") is False and second.pop("replayed") is True
    assert first == second
    assert row(ledger, "allocation:BR")["used"] == 1_000
    assert len(ledger.entries()) == 1

    hold = ledger.reserve("allocation:BR", 10, effective_date=D, idempotency_key="r1")
    again = ledger.reserve("allocation:BR", 10, effective_date=D, idempotency_key="r1")
    assert again["replayed"] is True and again["hold_id"] == hold["hold_id"]
    assert row(ledger, "allocation:BR")["held"] == 10

    c1 = ledger.commit(hold["hold_id"], idempotency_key="c1")
    c2 = ledger.commit(hold["hold_id"], idempotency_key="c1")
    assert (c1["replayed"], c2["replayed"]) == (False, True)
    assert row(ledger, "allocation:BR")["used"] == 1_010  # 1,000 + 10, each once

    a1 = ledger.adjust("allocation:BR", -10, reason="r", effective_date=D, idempotency_key="a1")
    a2 = ledger.adjust("allocation:BR", -10, reason="r", effective_date=D, idempotency_key="a1")
    assert (a1["replayed"], a2["replayed"]) == (False, True)
    assert row(ledger, "allocation:BR")["used"] == 1_000
    assert len(ledger.entries()) == 3  # direct, commit, adjust
    ok(ledger)


def test_the_same_amount_written_differently_is_the_same_request(ledger: Ledger) -> None:
    first = direct(ledger, "allocation:BR", 1_000, "d1")
    for same in [Fraction(1_000), "1000.000000", 1_000.0, "2000/2"]:
        assert direct(ledger, "allocation:BR", same, "d1")["replayed"] is True
    assert first["replayed"] is False
    assert row(ledger, "allocation:BR")["used"] == 1_000


def test_status_filters_by_country_and_consignee(ledger: Ledger) -> None:
    for i, account in enumerate(["allocation:BR", "lpp:acme:2025", "nveu:acme:BR", "nveu:acme:MX", "lpp:zeta:2025"]):
        direct(ledger, account, 10, f"d{i}")
    assert [r["account"] for r in ledger.status(country="BR", as_of=D)] == ["allocation:BR", "nveu:acme:BR"]
    assert [r["account"] for r in ledger.status(consignee="acme", as_of=D)] == [
        "lpp:acme:2025",
        "nveu:acme:BR",
        "nveu:acme:MX",
    ]
    assert [r["account"] for r in ledger.status(country="MX", consignee="acme", as_of=D)] == ["nveu:acme:MX"]
    assert ledger.account_ids("lpp:") == ["lpp:acme:2025", "lpp:zeta:2025"]


def test_reserve_with_an_explicit_expiry_is_replayed(ledger: Ledger) -> None:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    first = ledger.reserve("allocation:BR", 10, effective_date=D, idempotency_key="r1", expires_at=expires)
    second = ledger.reserve("allocation:BR", 10, effective_date=D, idempotency_key="r1", expires_at=expires)
    assert second["replayed"] is True and second["hold_id"] == first["hold_id"]
    assert row(ledger, "allocation:BR")["held"] == 10


def test_the_same_key_with_a_different_request_is_refused(ledger: Ledger) -> None:
    direct(ledger, "allocation:BR", 1_000, "k1")
    refused(ledger, "idempotency_key", lambda: direct(ledger, "allocation:BR", 1_001, "k1"))
    refused(ledger, "idempotency_key", lambda: direct(ledger, "allocation:MX", 1_000, "k1"))
    refused(ledger, "idempotency_key", lambda: direct(ledger, "allocation:BR", 1_000, "k1", dt.date(2025, 6, 2)))
    refused(
        ledger,
        "idempotency_key",
        lambda: ledger.reserve("allocation:BR", 1_000, effective_date=D, idempotency_key="k1"),
    )
    refused(
        ledger,
        "idempotency_key",
        lambda: ledger.adjust("allocation:BR", -1, reason="x", effective_date=D, idempotency_key="k1"),
    )
    refused(ledger, "idempotency_key", lambda: direct(ledger, "allocation:BR", 1, ""))
    assert row(ledger, "allocation:BR")["used"] == 1_000


def test_a_refused_request_does_not_use_up_its_key(ledger: Ledger) -> None:
    direct(ledger, "lpp:acme:2025", LPP, "d1")
    refused(ledger, "tpp", lambda: direct(ledger, "lpp:acme:2025", 100, "retry-me"))
    ledger.adjust("lpp:acme:2025", -100, reason="cancelled shipment", effective_date=D, idempotency_key="a1")
    result = direct(ledger, "lpp:acme:2025", 100, "retry-me")
    assert result["replayed"] is False
    assert row(ledger, "lpp:acme:2025")["used"] == LPP  # 26,900,000 - 100 + 100


# --- dated usage, per-year LPP, g2g, licences ----------------------------------------------------------


def test_status_as_of_counts_only_entries_dated_on_or_before(ledger: Ledger) -> None:
    direct(ledger, "allocation:BR", 10, "d1", dt.date(2025, 3, 1))
    direct(ledger, "allocation:BR", 20, "d2", dt.date(2025, 6, 1))
    direct(ledger, "allocation:BR", 30, "d3", dt.date(2025, 9, 1))
    ledger.reserve("allocation:BR", 5, effective_date=dt.date(2025, 10, 1), idempotency_key="r1")
    expected = {
        dt.date(2025, 2, 28): (0, 0),
        dt.date(2025, 3, 1): (10, 0),
        dt.date(2025, 5, 31): (10, 0),
        dt.date(2025, 6, 1): (30, 0),  # 10 + 20
        dt.date(2025, 9, 1): (60, 0),  # 10 + 20 + 30
        dt.date(2025, 10, 1): (60, 5),
    }
    for day, (used, held) in expected.items():
        r = row(ledger, "allocation:BR", day)
        assert (r["used"], r["held"]) == (used, held), day
        assert r["headroom"] == ALLOCATION - used - held, day
    committed, live = ledger.used("allocation:BR", dt.date(2025, 6, 1))
    assert (committed, live) == (30, 0)


def test_lpp_accounts_are_per_calendar_year(ledger: Ledger) -> None:
    direct(ledger, "lpp:acme:2025", LPP, "d1", dt.date(2025, 12, 31))
    refused(ledger, "tpp", lambda: direct(ledger, "lpp:acme:2025", 1, "d2", dt.date(2025, 12, 31)))
    # a 2026 shipment is not a draw on the 2025 account
    refused(ledger, "effective_date", lambda: direct(ledger, "lpp:acme:2025", 1, "d3", dt.date(2026, 1, 1)))
    refused(ledger, "effective_date", lambda: direct(ledger, "lpp:acme:2026", 1, "d4", dt.date(2025, 12, 31)))
    direct(ledger, "lpp:acme:2026", LPP, "d5", dt.date(2026, 1, 1))  # a fresh 26,900,000 for 2026
    direct(ledger, "lpp:other:2025", LPP, "d6", dt.date(2025, 7, 1))  # another consignee has its own limit
    assert row(ledger, "lpp:acme:2026", dt.date(2026, 1, 1))["used"] == LPP
    assert row(ledger, "lpp:acme:2025", dt.date(2025, 12, 31))["used"] == LPP


def test_g2g_doubles_the_allocation_only_from_its_date(ledger: Ledger) -> None:
    acct, since = "allocation:BR", dt.date(2025, 7, 1)
    direct(ledger, acct, ALLOCATION, "d1", dt.date(2025, 6, 1))
    refused(ledger, "tpp", lambda: direct(ledger, acct, 1, "d2", since))  # no arrangement recorded yet
    refused(ledger, "reason", lambda: ledger.record_g2g("BR", since, reason=" ", idempotency_key="g0"))
    result = ledger.record_g2g("BR", since, reason="BR-US arrangement", idempotency_key="g1")
    assert result["replayed"] is False
    assert ledger.g2g_since("BR") == since
    assert ledger.g2g_since("MX") is None
    refused(ledger, "tpp", lambda: direct(ledger, acct, 1, "d3", dt.date(2025, 6, 30)))  # before: 790,000,000
    assert row(ledger, acct, dt.date(2025, 6, 30))["limit"] == ALLOCATION
    assert row(ledger, acct, since)["limit"] == ALLOCATION_G2G
    refused(ledger, "tpp", lambda: direct(ledger, acct, ALLOCATION + MICRO, "d4", since))
    direct(ledger, acct, ALLOCATION, "d5", since)  # 790,000,000 + 790,000,000 = 1,580,000,000
    assert row(ledger, acct, since)["headroom"] == 0
    refused(ledger, "tpp", lambda: direct(ledger, acct, MICRO, "d6", dt.date(2025, 7, 2)))
    # another Tier 2 country is not doubled
    direct(ledger, "allocation:MX", ALLOCATION, "d7", since)
    refused(ledger, "tpp", lambda: direct(ledger, "allocation:MX", 1, "d8", since))
    assert [e["op"] for e in ledger.history("system")] == ["g2g"]
    ok(ledger)


@pytest.mark.parametrize("country", ["ZZ", "Atlantis", "", "B"])
def test_g2g_for_an_unknown_country_is_refused(ledger: Ledger, country: str) -> None:
    refused(ledger, "country", lambda: ledger.record_g2g(country, D, reason="x", idempotency_key="g1"))


@pytest.mark.parametrize("country", ["Brazil", "br", "BR"])
def test_g2g_country_names_are_normalised(ledger: Ledger, country: str) -> None:
    result = ledger.record_g2g(country, dt.date(2025, 7, 1), reason="x", idempotency_key="g1")
    assert result["country"] == "BR"
    assert ledger.g2g_since("BR") == dt.date(2025, 7, 1)
    direct(ledger, "allocation:BR", ALLOCATION_G2G, "d1", dt.date(2025, 7, 1))


def test_a_licence_limits_its_drawdown_to_its_tpp(ledger: Ledger) -> None:
    refused(ledger, "account", lambda: direct(ledger, "license:L-1", 1, "d0"))  # not recorded yet
    rec = ledger.record_license("L-1", country="BR", holder="acme", tpp=1_000_000, issued=D, idempotency_key="l1")
    assert rec["account"] == "license:L-1" and rec["tpp"] == 1_000_000
    refused(
        ledger,
        "license_id",
        lambda: ledger.record_license("L-1", country="BR", holder="acme", tpp=5, issued=D, idempotency_key="l2"),
    )
    refused(ledger, "tpp", lambda: direct(ledger, "license:L-1", 1_000_000 + MICRO, "d1"))
    hold = ledger.reserve("license:L-1", 400_000, effective_date=D, idempotency_key="r1")
    refused(ledger, "tpp", lambda: direct(ledger, "license:L-1", 600_000 + MICRO, "d2"))
    direct(ledger, "license:L-1", 600_000, "d3")  # 400,000 held + 600,000 = 1,000,000
    ledger.commit(hold["hold_id"], idempotency_key="c1")
    r = row(ledger, "license:L-1")
    assert (r["used"], r["held"], r["limit"], r["headroom"]) == (1_000_000, 0, 1_000_000, 0)
    refused(ledger, "tpp", lambda: direct(ledger, "license:L-1", MICRO, "d4"))
    assert [e["op"] for e in ledger.history("system")] == ["license"]
    ok(ledger)


def test_a_draw_after_the_licence_expired_is_refused(ledger: Ledger) -> None:
    ledger.record_license(
        "L-2",
        country="BR",
        holder="acme",
        tpp=1_000,
        issued=dt.date(2025, 1, 1),
        expires=dt.date(2025, 3, 31),
        idempotency_key="l1",
    )
    refused(ledger, "effective_date", lambda: direct(ledger, "license:L-2", 1, "d1", dt.date(2025, 6, 1)))
    direct(ledger, "license:L-2", 1, "d2", dt.date(2025, 3, 31))  # the last day is still covered


def test_a_draw_before_the_licence_was_issued_is_refused(ledger: Ledger) -> None:
    ledger.record_license(
        "L-3", country="BR", holder="acme", tpp=1_000, issued=dt.date(2025, 6, 1), idempotency_key="l1"
    )
    refused(ledger, "effective_date", lambda: direct(ledger, "license:L-3", 1, "d1", dt.date(2025, 1, 2)))


# --- UVEU shares --------------------------------------------------------------------------------------

M = 1_000_000  # the share tests count in millions of TPP


def test_uveu_single_non_tier1_country_at_most_7_percent(ledger: Ledger) -> None:
    direct(ledger, "uveu:acme:US", 93 * M, "d1")
    # 7 / (93 + 7) = 7 % exactly; 7.000001 / 100.000001 > 7 %
    refused(ledger, "tpp", lambda: direct(ledger, "uveu:acme:BR", 7 * M + MICRO, "d2"))
    refused(ledger, "tpp", lambda: direct(ledger, "uveu:acme:BR", 7 * M + 1, "d3"))
    direct(ledger, "uveu:acme:BR", 7 * M, "d4")
    refused(ledger, "tpp", lambda: direct(ledger, "uveu:acme:BR", MICRO, "d5"))
    refused(ledger, "tpp", lambda: ledger.reserve("uveu:acme:BR", 1, effective_date=D, idempotency_key="r1"))
    assert {r["account"]: r["used"] for r in ledger.status(as_of=D)} == {"uveu:acme:BR": 7 * M, "uveu:acme:US": 93 * M}
    assert row(ledger, "uveu:acme:BR")["limit"] is None


def test_uveu_at_least_75_percent_in_tier1(ledger: Ledger) -> None:
    direct(ledger, "uveu:acme:US", 75 * M, "d1")
    # each non-Tier-1 country stays <= 7 %: 5/80, 5/85, 5/90, 5/95
    for i, cc in enumerate(["BR", "MX", "IN", "SA"]):
        direct(ledger, f"uveu:acme:{cc}", 5 * M, f"n{i}")
    # the fifth brings Tier 1 to 75 / 100 = 75 % exactly; a micro-TPP more is 75 / 100.000001 < 75 %
    refused(ledger, "tpp", lambda: direct(ledger, "uveu:acme:AE", 5 * M + MICRO, "d2"))
    refused(ledger, "tpp", lambda: direct(ledger, "uveu:acme:AE", 5 * M + 1, "d3"))
    direct(ledger, "uveu:acme:AE", 5 * M, "d4")
    refused(ledger, "tpp", lambda: direct(ledger, "uveu:acme:SG", MICRO, "d5"))
    direct(ledger, "uveu:acme:DE", 1, "d6")  # more Tier 1 is always fine


def test_uveu_us_headquartered_keeps_half_in_the_us(ledger: Ledger) -> None:
    direct(ledger, "uveu:acme:US", 50 * M, "d1", headquarters="US")
    # 50 / (50 + 50) = 50 % exactly; 50 / 100.000001 < 50 %
    refused(ledger, "tpp", lambda: direct(ledger, "uveu:acme:DE", 50 * M + MICRO, "d2", headquarters="US"))
    refused(ledger, "tpp", lambda: direct(ledger, "uveu:acme:DE", 50 * M + 1, "d3", headquarters="US"))
    direct(ledger, "uveu:acme:DE", 50 * M, "d4", headquarters="US")
    refused(ledger, "tpp", lambda: direct(ledger, "uveu:acme:GB", MICRO, "d5", headquarters="US"))
    # the US rule applies only to a US-headquartered UVEU: the same deployment for a German one is fine
    direct(ledger, "uveu:acme:GB", MICRO, "d6", headquarters="DE")
    direct(ledger, "uveu:acme:US", 1, "d7", headquarters="US")


def test_uveu_shares_count_earlier_draws_of_the_same_batch(ledger: Ledger) -> None:
    direct(ledger, "uveu:acme:US", 93 * M, "d1")
    # two 7M draws on BR in one batch: BR 14 / 107 = 13.1 % > 7 %, though each alone would be 7 / 100
    refused(
        ledger,
        "tpp",
        lambda: ledger.apply([Draw("uveu:acme:BR", 7 * M, D), Draw("uveu:acme:BR", 7 * M, D)], idempotency_key="p1"),
    )
    # 93 US + 7 BR + 7 DE: BR 7 / 107 = 6.5 %, Tier 1 100 / 107 = 93.5 %: fine together
    ledger.apply([Draw("uveu:acme:BR", 7 * M, D), Draw("uveu:acme:DE", 7 * M, D)], idempotency_key="p2")
    assert row(ledger, "uveu:acme:BR")["used"] == 7 * M


def test_uveu_shares_ignore_expired_holds_on_other_accounts(ledger: Ledger) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    ledger.reserve("uveu:acme:US", 93 * M, effective_date=D, idempotency_key="r1", expires_at=past)
    refused(ledger, "tpp", lambda: direct(ledger, "uveu:acme:BR", 7 * M, "d1"))


# --- atomic batches ----------------------------------------------------------------------------------


def test_apply_commits_every_draw(ledger: Ledger) -> None:
    result = ledger.apply(
        [
            Draw("allocation:BR", 100, D),
            Draw("lpp:acme:2025", 200, D),
            Draw("allocation:BR", 50, D),
            Draw("nveu:acme:MX", 300, D),
        ],
        idempotency_key="p1",
        actor="carol",
        note="shipment 7",
    )
    assert result["lines"] == 4
    assert result["applied"] == [
        {"account": "allocation:BR", "tpp": 150},  # 100 + 50
        {"account": "lpp:acme:2025", "tpp": 200},
        {"account": "nveu:acme:MX", "tpp": 300},
    ]
    assert {r["account"]: r["used"] for r in ledger.status(as_of=D)} == {
        "allocation:BR": 150,
        "lpp:acme:2025": 200,
        "nveu:acme:MX": 300,
    }
    assert {e["reason"] for e in ledger.entries()} == {"shipment 7"}
    ok(ledger)


@pytest.mark.parametrize(
    ("draws", "field"),
    [
        pytest.param(
            [Draw("allocation:BR", 100, D), Draw("lpp:acme:2025", 200, D), Draw("allocation:MX", ALLOCATION + 1, D)],
            "tpp",
            id="last-over-limit",
        ),
        pytest.param(
            [Draw("allocation:BR", 100, D), Draw("lpp:acme:2025", LPP, D), Draw("nveu:acme:MX", 300, D)],
            "tpp",
            id="middle-over-limit",
        ),
        pytest.param(
            [Draw("lpp:acme:2025", LPP - 100, D), Draw("allocation:BR", 100, D), Draw("lpp:acme:2025", 101, D)],
            "tpp",
            id="same-account-sum-over-limit",
        ),
        pytest.param(
            [Draw("allocation:BR", 100, D), Draw("lpp:acme:2025", 1, dt.date(2026, 1, 1))],
            "effective_date",
            id="wrong-year",
        ),
        pytest.param([Draw("allocation:BR", 100, D), Draw("allocation:XX", 1, D)], "account", id="bad-account"),
        pytest.param([Draw("allocation:BR", 100, D), Draw("allocation:BR", -1, D)], "draws[1].tpp", id="negative"),
        pytest.param([], "draws", id="empty"),
    ],
)
def test_apply_is_all_or_none(ledger: Ledger, draws: list[Draw], field: str) -> None:
    direct(ledger, "allocation:BR", 1_000, "d1")
    direct(ledger, "lpp:acme:2025", 100, "d2")
    ledger.reserve("nveu:acme:MX", 7, effective_date=D, idempotency_key="r1")
    rows_before = ledger.verify()["rows"]
    refused(ledger, field, lambda: ledger.apply(draws, idempotency_key="p1"))
    assert ledger.verify()["rows"] == rows_before
    assert {r["account"]: (r["used"], r["held"]) for r in ledger.status(as_of=D)} == {
        "allocation:BR": (1_000, 0),
        "lpp:acme:2025": (100, 0),
        "nveu:acme:MX": (0, 7),
    }
    ok(ledger)


# --- bad input gets a clear error and loses nothing ------------------------------------------------------


@pytest.fixture
def busy(ledger: Ledger) -> dict[str, Any]:
    """A ledger with some history: draws, a live, a released, a committed and an expired hold, g2g, a licence."""
    direct(ledger, "allocation:BR", 1_000, "b-d1")
    direct(ledger, "lpp:acme:2025", LPP - 10, "b-d2")
    live = ledger.reserve("allocation:BR", 10, effective_date=D, idempotency_key="b-r1")
    released = ledger.reserve("allocation:MX", 10, effective_date=D, idempotency_key="b-r2")
    ledger.release(released["hold_id"], idempotency_key="b-x2")
    committed = ledger.reserve("allocation:MX", 20, effective_date=D, idempotency_key="b-r3")
    ledger.commit(committed["hold_id"], idempotency_key="b-c3")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    expired = ledger.reserve("nveu:acme:IN", 30, effective_date=D, idempotency_key="b-r4", expires_at=past)
    ledger.adjust("allocation:BR", -1, reason="rounding", effective_date=D, idempotency_key="b-a1")
    ledger.record_g2g("MX", dt.date(2025, 7, 1), reason="MX-US", idempotency_key="b-g1")
    ledger.record_license("L-9", country="BR", holder="acme", tpp=500, issued=D, idempotency_key="b-l1")
    direct(ledger, "license:L-9", 400, "b-d3")
    return {
        "live": live["hold_id"],
        "released": released["hold_id"],
        "committed": committed["hold_id"],
        "expired": expired["hold_id"],
    }


BAD_INPUTS: list[Any] = [
    (
        "reserve-unknown-account",
        "account",
        lambda L, h: L.reserve("allocation:ZZ", 1, effective_date=D, idempotency_key="k"),
    ),
    ("reserve-zero", "tpp", lambda L, h: L.reserve("allocation:BR", 0, effective_date=D, idempotency_key="k")),
    ("reserve-negative", "tpp", lambda L, h: L.reserve("allocation:BR", -3, effective_date=D, idempotency_key="k")),
    (
        "reserve-not-a-number",
        "tpp",
        lambda L, h: L.reserve("allocation:BR", "lots", effective_date=D, idempotency_key="k"),
    ),
    (
        "reserve-over-headroom",
        "tpp",
        lambda L, h: L.reserve("lpp:acme:2025", 11, effective_date=D, idempotency_key="k"),
    ),
    (
        "reserve-no-key",
        "idempotency_key",
        lambda L, h: L.reserve("allocation:BR", 1, effective_date=D, idempotency_key=""),
    ),
    ("direct-ill-formed-account", "account", lambda L, h: direct(L, "lpp:acme", 1, "k")),
    ("direct-over-limit", "tpp", lambda L, h: direct(L, "lpp:acme:2025", 10 + MICRO, "k")),
    ("direct-outside-period", "effective_date", lambda L, h: direct(L, "allocation:BR", 1, "k", dt.date(2028, 1, 1))),
    ("direct-lpp-wrong-year", "effective_date", lambda L, h: direct(L, "lpp:acme:2025", 1, "k", dt.date(2026, 1, 1))),
    ("direct-zero", "tpp", lambda L, h: direct(L, "allocation:BR", 0, "k")),
    ("direct-unrecorded-licence", "account", lambda L, h: direct(L, "license:L-404", 1, "k")),
    ("direct-over-licence", "tpp", lambda L, h: direct(L, "license:L-9", 101, "k")),
    ("commit-unknown-hold", "hold_id", lambda L, h: L.commit("nope", idempotency_key="k")),
    ("commit-released-hold", "hold_id", lambda L, h: L.commit(h["released"], idempotency_key="k")),
    ("commit-committed-hold", "hold_id", lambda L, h: L.commit(h["committed"], idempotency_key="k")),
    ("commit-expired-hold", "hold_id", lambda L, h: L.commit(h["expired"], idempotency_key="k")),
    ("release-committed-hold", "hold_id", lambda L, h: L.release(h["committed"], idempotency_key="k")),
    ("commit-no-key", "idempotency_key", lambda L, h: L.commit(h["live"], idempotency_key="")),
    (
        "adjust-no-reason",
        "reason",
        lambda L, h: L.adjust("allocation:BR", -1, reason="", effective_date=D, idempotency_key="k"),
    ),
    (
        "adjust-below-zero",
        "tpp",
        lambda L, h: L.adjust("allocation:BR", -1_000, reason="x", effective_date=D, idempotency_key="k"),
    ),
    (
        "adjust-zero",
        "tpp",
        lambda L, h: L.adjust("allocation:BR", 0, reason="x", effective_date=D, idempotency_key="k"),
    ),
    (
        "adjust-bad-account",
        "account",
        lambda L, h: L.adjust("allocation", -1, reason="x", effective_date=D, idempotency_key="k"),
    ),
    ("key-reused", "idempotency_key", lambda L, h: direct(L, "allocation:BR", 2, "b-d1")),
    ("key-reused-other-op", "idempotency_key", lambda L, h: L.commit(h["live"], idempotency_key="b-r1")),
    ("g2g-no-reason", "reason", lambda L, h: L.record_g2g("BR", D, reason="", idempotency_key="k")),
    (
        "licence-duplicate",
        "license_id",
        lambda L, h: L.record_license("L-9", country="BR", holder="x", tpp=1, issued=D, idempotency_key="k"),
    ),
    (
        "licence-zero",
        "tpp",
        lambda L, h: L.record_license("L-10", country="BR", holder="x", tpp=0, issued=D, idempotency_key="k"),
    ),
    ("apply-empty", "draws", lambda L, h: L.apply([], idempotency_key="k")),
    (
        "apply-one-bad",
        "tpp",
        lambda L, h: L.apply([Draw("allocation:BR", 5, D), Draw("lpp:acme:2025", 11, D)], idempotency_key="k"),
    ),
    ("uveu-share", "tpp", lambda L, h: direct(L, "uveu:acme:BR", 1, "k")),
]


@pytest.mark.parametrize(("name", "field", "call"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_a_clear_error_and_loses_nothing(
    ledger: Ledger, busy: dict[str, Any], name: str, field: str, call: Callable[..., Any]
) -> None:
    before_entries, before_status, before_rows = ledger.entries(), ledger.status(as_of=D), ledger.verify()["rows"]
    error = refused(ledger, field, lambda: call(ledger, busy))
    assert str(error).startswith(f"{field}: ") and error.reason
    assert ledger.entries() == before_entries
    assert ledger.status(as_of=D) == before_status
    assert ledger.verify()["rows"] == before_rows
    ok(ledger)
    # and the ledger still works afterwards
    direct(ledger, "allocation:BR", 1, f"after-{name}")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda L: direct(L, "uveu:acme:US", 10**13, "k"), id="uveu-direct-1e13"),
        pytest.param(
            lambda L: L.adjust("allocation:BR", 10**13, reason="x", effective_date=D, idempotency_key="k"),
            id="adjust-1e13",
        ),
        pytest.param(
            lambda L: L.record_license("L-1", country="BR", holder="x", tpp=10**13, issued=D, idempotency_key="k"),
            id="licence-1e13",
        ),
    ],
)
def test_an_absurdly_large_amount_is_a_clear_error(ledger: Ledger, call: Callable[[Ledger], Any]) -> None:
    refused(ledger, "tpp", lambda: call(ledger))


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda L, i: direct(L, "uveu:big:US", 10**12, f"k{i}"), id="uveu-direct"),
        pytest.param(
            lambda L, i: L.adjust("allocation:BR", 10**12, reason="x", effective_date=D, idempotency_key=f"k{i}"),
            id="adjust",
        ),
    ],
)
def test_a_balance_too_large_to_record_is_a_clear_error(ledger: Ledger, call: Callable[[Ledger, int], Any]) -> None:
    for i in range(9):  # 9 x 10^18 micro-TPP still fits in a signed 64-bit integer (9.22 x 10^18)
        call(ledger, i)
    refused(ledger, "tpp", lambda: call(ledger, 9))


# --- batches on caps that grow by date ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("account", "first", "second", "g2g"),
    [
        # 1,000,000,000 + 500,000,000 = 1,500,000,000 <= 1,580,000,000 through 2025
        pytest.param("nveu:acme:BR", 1_000_000_000, 500_000_000, None, id="nveu"),
        # 500,000,000 + 200,000,000 = 700,000,000 <= 790,000,000 before the g2g date
        pytest.param("allocation:MX", 500_000_000, 200_000_000, dt.date(2025, 7, 1), id="allocation-before-g2g"),
    ],
)
def test_a_batch_on_a_stepped_cap_counts_each_draw_once(
    ledger: Ledger, account: str, first: int, second: int, g2g: dt.date | None
) -> None:
    if g2g:
        ledger.record_g2g("MX", g2g, reason="MX-US", idempotency_key="g1")
    result = ledger.apply([Draw(account, first, D), Draw(account, second, D)], idempotency_key="p1")
    assert result["applied"] == [{"account": account, "tpp": first + second}]
    assert row(ledger, account)["used"] == first + second


def test_a_batch_is_judged_like_the_same_draws_made_one_by_one(ledger: Ledger) -> None:
    draws = [Draw("nveu:acme:BR", 2_000_000_000, dt.date(2026, 3, 1)), Draw("nveu:acme:BR", 1, D)]
    # one by one (on another account): through 2025: 1 <= 1,580,000,000; through 2026: 2,000,000,001 <= 4,270,000,000
    for i, d in enumerate(draws):
        direct(ledger, "nveu:solo:BR", d.tpp, f"solo{i}", d.effective_date)
    ledger.apply(draws, idempotency_key="p1")
    assert row(ledger, "nveu:acme:BR", dt.date(2026, 12, 31))["used"] == 2_000_000_001


@pytest.mark.parametrize("entity", ["a_c", "a%"])
def test_uveu_entities_with_wildcard_characters_are_kept_apart(ledger: Ledger, entity: str) -> None:
    direct(ledger, "uveu:abc:US", 93 * M, "u1")
    direct(ledger, "uveu:abc:BR", 7 * M, "u2")
    direct(ledger, f"uveu:{entity}:DE", 1 * M, "u3")  # a_c's whole installed base is in Germany (Tier 1)
    assert row(ledger, f"uveu:{entity}:DE")["used"] == 1 * M
