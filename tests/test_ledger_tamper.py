"""Tampering: rows of the hash-chained audit trail edited, deleted, inserted or reordered with SQL.

For each, ``verify()`` reports ok False with a problem of the right kind naming the chain and the
row/seq, and ``tierline ledger verify`` exits 3 and prints the problem.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from helpers import TIERLINE, run_cli
from tierline.ledger import Ledger
from tierline.ledger.audit import canonical, chain_hash

D = dt.date(2025, 6, 1)
BR = "allocation:BR"


@pytest.fixture
def history(ledger: Ledger) -> Ledger:
    """A few operations: three direct draws on allocation:BR (seq 1..3), a held-and-committed LPP draw, a g2g."""
    for i, tpp in enumerate([1_000, 2_000, 3_000], start=1):
        ledger.direct_commit(BR, tpp, effective_date=D, idempotency_key=f"d{i}")
    hold = ledger.reserve("lpp:acme:2025", 500, effective_date=D, idempotency_key="r1")
    ledger.commit(hold["hold_id"], idempotency_key="c1")
    ledger.record_g2g("MX", dt.date(2025, 7, 1), reason="MX-US arrangement", idempotency_key="g1")
    result = ledger.verify()
    assert result["ok"], result["problems"]
    assert result["rows"] == 3 + 2 + 1
    return ledger


def sql(ledger: Ledger, statement: str, **params: Any) -> Any:
    with ledger.engine.begin() as conn:
        return conn.execute(text(statement), params)


def audit_row(ledger: Ledger, chain: str, seq: int) -> Any:
    with ledger.engine.connect() as conn:
        return conn.execute(
            text("SELECT id, chain, seq, event, prev_hash, hash FROM audit WHERE chain = :c AND seq = :s"),
            {"c": chain, "s": seq},
        ).one()


def edit_event(ledger: Ledger) -> tuple[str, int | None]:
    row = audit_row(ledger, BR, 2)
    event = json.loads(row.event)
    assert event["amount_micro"] == 2_000_000_000
    event["amount_micro"] = 2_000_000  # 2,000 TPP becomes 2 TPP
    sql(ledger, "UPDATE audit SET event = :e WHERE id = :id", e=canonical(event), id=row.id)
    return BR, 2


def edit_event_text_only(ledger: Ledger) -> tuple[str, int | None]:
    row = audit_row(ledger, "system", 1)
    sql(ledger, "UPDATE audit SET event = :e WHERE id = :id", e=row.event.replace("MX-US", "BR-US"), id=row.id)
    return "system", 1


def delete_middle(ledger: Ledger) -> tuple[str, int | None]:
    sql(ledger, "DELETE FROM audit WHERE chain = :c AND seq = 2", c=BR)
    return BR, 3  # the row after the gap


def delete_last(ledger: Ledger) -> tuple[str, int | None]:
    sql(ledger, "DELETE FROM audit WHERE chain = :c AND seq = 3", c=BR)
    return BR, 3  # the head records seq 3


def insert_forged(ledger: Ledger) -> tuple[str, int | None]:
    """A careful forger: a well-formed event, correctly hashed and linked after the head."""
    head = audit_row(ledger, BR, 3)
    event = json.loads(head.event)
    event.update({"seq": 4, "amount_micro": -6_000_000_000, "op": "adjust", "reason": "forged"})
    text_ = canonical(event)
    sql(
        ledger,
        "INSERT INTO audit (chain, seq, event, prev_hash, hash) VALUES (:c, 4, :e, :p, :h)",
        c=BR,
        e=text_,
        p=head.hash,
        h=chain_hash(head.hash, text_),
    )
    return BR, 4


def insert_junk(ledger: Ledger) -> tuple[str, int | None]:
    """A careless forger: a row whose hash does not even match."""
    sql(
        ledger,
        "INSERT INTO audit (chain, seq, event, prev_hash, hash) VALUES (:c, 4, :e, :p, :h)",
        c=BR,
        e='{"op":"direct"}',
        p="0" * 64,
        h="f" * 64,
    )
    return BR, 4


def insert_new_chain(ledger: Ledger) -> tuple[str, int | None]:
    event = canonical({"op": "direct", "amount_micro": 1, "chain": "allocation:IN", "seq": 1})
    sql(
        ledger,
        "INSERT INTO audit (chain, seq, event, prev_hash, hash) VALUES (:c, 1, :e, :p, :h)",
        c="allocation:IN",
        e=event,
        p="0" * 64,
        h=chain_hash("0" * 64, event),
    )
    return "allocation:IN", None


def swap_seq(ledger: Ledger) -> tuple[str, int | None]:
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE audit SET seq = -1 WHERE chain = :c AND seq = 1"), {"c": BR})
        conn.execute(text("UPDATE audit SET seq = 1 WHERE chain = :c AND seq = 2"), {"c": BR})
        conn.execute(text("UPDATE audit SET seq = 2 WHERE chain = :c AND seq = -1"), {"c": BR})
    return BR, 1


TAMPERS = [
    pytest.param(edit_event, "edited", id="edit-event"),
    pytest.param(edit_event_text_only, "edited", id="edit-system-event-text"),
    pytest.param(delete_middle, "deleted", id="delete-middle"),
    pytest.param(delete_last, "deleted", id="delete-last"),
    pytest.param(insert_forged, "inserted", id="insert-forged"),
    pytest.param(insert_junk, "inserted", id="insert-junk"),
    pytest.param(insert_new_chain, "inserted", id="insert-new-chain"),
    pytest.param(swap_seq, "reordered", id="swap-seq"),
]


@pytest.mark.parametrize(("tamper", "kind"), TAMPERS)
def test_verify_reports_the_tampering(history: Ledger, tamper: Callable[[Ledger], Any], kind: str) -> None:
    chain, seq = tamper(history)
    result = history.verify()
    assert result["ok"] is False
    matching = [p for p in result["problems"] if p["kind"] == kind and p["chain"] == chain]
    assert matching, result["problems"]
    if seq is not None:
        assert seq in [p["seq"] for p in matching], result["problems"]
    for p in result["problems"]:
        assert set(p) == {"kind", "chain", "row_id", "seq", "detail"}
        assert p["kind"] in {"edited", "deleted", "inserted", "reordered"}
        assert p["detail"]
    # untouched chains stay clean
    assert not [p for p in result["problems"] if p["chain"] == "lpp:acme:2025"]


def test_an_edit_names_the_row(history: Ledger) -> None:
    row_id = audit_row(history, BR, 2).id
    edit_event(history)
    [problem] = history.verify()["problems"]
    assert (problem["kind"], problem["chain"], problem["row_id"], problem["seq"]) == ("edited", BR, row_id, 2)


def test_a_deleted_last_row_is_reported_against_the_head(history: Ledger) -> None:
    delete_last(history)
    result = history.verify()
    assert result["rows"] == 5
    [problem] = result["problems"]
    assert (problem["kind"], problem["chain"], problem["seq"]) == ("deleted", BR, 3)


def test_the_ledger_keeps_working_and_verifying_when_untouched(history: Ledger) -> None:
    for i in range(5):
        history.direct_commit(BR, 1, effective_date=D, idempotency_key=f"more{i}")
    result = history.verify()
    assert result == {"ok": True, "rows": 11, "problems": []}
    assert [e["seq"] for e in history.history(BR)] == list(range(1, 9))


@pytest.mark.parametrize(
    "statement",
    [
        pytest.param("UPDATE entries SET amount_micro = 1 WHERE account_id = 'allocation:BR'", id="entries-amount"),
        pytest.param("DELETE FROM entries WHERE account_id = 'allocation:BR'", id="entries-deleted"),
        pytest.param("UPDATE accounts SET committed_micro = 0 WHERE id = 'allocation:BR'", id="account-balance"),
    ],
)
def test_verify_notices_balances_edited_outside_the_ledger(history: Ledger, statement: str) -> None:
    """The entries (what status and export report) and the balances (what the limit check uses) must agree
    with the audited history: editing them with SQL is reported too."""
    sql(history, statement)
    result = history.verify()
    assert result["ok"] is False
    assert [p for p in result["problems"] if p["kind"] == "edited" and p["chain"] == BR], result["problems"]
    assert not [p for p in result["problems"] if p["chain"] != BR], result["problems"]


@pytest.mark.skipif(not TIERLINE.exists(), reason="the tierline console script is not installed")
@pytest.mark.parametrize(
    ("tamper", "kind"),
    [
        pytest.param(edit_event, "edited", id="edit"),
        pytest.param(delete_middle, "deleted", id="delete"),
        pytest.param(insert_forged, "inserted", id="insert"),
        pytest.param(swap_seq, "reordered", id="reorder"),
    ],
)
def test_cli_verify_exits_3_and_prints_the_problem(
    history: Ledger, ledger_env: dict[str, str], tamper: Callable[[Ledger], Any], kind: str
) -> None:
    clean = run_cli("ledger", "verify", env=ledger_env)
    assert clean.code == 0, clean.stderr
    assert "6 rows verified" in clean.stdout
    chain, seq = tamper(history)
    r = run_cli("ledger", "verify", env=ledger_env)
    assert r.code == 3, (r.stdout, r.stderr)
    assert "audit trail broken" in r.stdout
    assert kind in r.stdout and chain in r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    j = run_cli("ledger", "verify", "--json", env=ledger_env)
    assert j.code == 3
    data = j.json()
    assert data["ok"] is False
    assert any(p["kind"] == kind and p["chain"] == chain and p["seq"] == seq for p in data["problems"]), data
