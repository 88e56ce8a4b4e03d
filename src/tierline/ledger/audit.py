"""The hash-chained audit trail. Each account is its own chain (its row holds the head, so the lock
that serializes the account's balance also serializes its chain; different accounts never wait
for each other); events without an account go to the ``system`` chain."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from tierline.ledger.schema import ACCOUNTS, AUDIT, ENTRIES, GENESIS

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical(event: dict[str, Any]) -> str:
    """The event as compact JSON with sorted keys (what json.dumps gives with those settings)."""
    return _CANONICAL.encode(event)


def chain_hash(prev_hash: str, event_text: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{event_text}".encode()).hexdigest()


def append(conn: Connection, chain: str, head_seq: int, head_hash: str, event: dict[str, Any]) -> tuple[int, str]:
    """Append an event to `chain` (whose row the caller has locked); returns the new head."""
    seq = head_seq + 1
    text = canonical({**event, "chain": chain, "seq": seq})
    digest = chain_hash(head_hash, text)
    conn.execute(AUDIT.insert().values(chain=chain, seq=seq, event=text, prev_hash=head_hash, hash=digest))
    conn.execute(ACCOUNTS.update().where(ACCOUNTS.c.id == chain).values(head_seq=seq, head_hash=digest))
    return seq, digest


@dataclass(frozen=True)
class Problem:
    kind: str  # edited | deleted | inserted | reordered
    chain: str
    row_id: int | None
    seq: int | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chain": self.chain, "row_id": self.row_id, "seq": self.seq, "detail": self.detail}


def verify_chain(chain: str, head_seq: int, head_hash: str, rows: list[Any]) -> list[Problem]:
    """Check one chain: every hash, every link, the sequence, insertion order and the recorded head."""
    problems: list[Problem] = []
    by_hash = {row.hash: row for row in rows}
    prev, expected_seq, last_id = GENESIS, 1, 0
    for row in sorted(rows, key=lambda r: r.seq):
        try:
            event = json.loads(row.event)
        except ValueError:
            event = {}
        if chain_hash(row.prev_hash, row.event) != row.hash:
            problems.append(Problem("edited", chain, row.id, row.seq, "the row's content does not match its hash"))
        elif event.get("seq") != row.seq or event.get("chain") != row.chain:
            problems.append(
                Problem(
                    "reordered",
                    chain,
                    row.id,
                    row.seq,
                    f"the row sits at seq {row.seq} but was written as seq {event.get('seq')}",
                )
            )
        elif row.seq > expected_seq:
            problems.append(
                Problem("deleted", chain, row.id, row.seq, f"row(s) with seq {expected_seq}..{row.seq - 1} are missing")
            )
        elif row.seq < expected_seq:
            problems.append(Problem("inserted", chain, row.id, row.seq, f"a second row with seq {row.seq}"))
        elif row.prev_hash != prev:
            kind = "reordered" if row.prev_hash in by_hash else "inserted"
            problems.append(Problem(kind, chain, row.id, row.seq, "the row does not follow the previous row's hash"))
        if row.id < last_id:
            problems.append(Problem("reordered", chain, row.id, row.seq, "rows are out of insertion order"))
        prev, expected_seq, last_id = row.hash, max(expected_seq, row.seq + 1), max(last_id, row.id)
    if expected_seq - 1 < head_seq:
        problems.append(
            Problem(
                "deleted",
                chain,
                None,
                head_seq,
                f"the chain ends at seq {expected_seq - 1} but its head records seq {head_seq}",
            )
        )
    elif expected_seq - 1 > head_seq or (rows and prev != head_hash and not problems):
        problems.append(
            Problem(
                "inserted",
                chain,
                None,
                expected_seq - 1,
                f"rows after the recorded head (seq {head_seq}) were added outside the ledger",
            )
        )
    return problems


def verify(conn: Connection) -> tuple[int, list[Problem]]:
    """Verify every chain; returns (rows checked, problems)."""
    heads = {r.id: r for r in conn.execute(select(ACCOUNTS.c.id, ACCOUNTS.c.head_seq, ACCOUNTS.c.head_hash))}
    rows_by_chain: dict[str, list[Any]] = {}
    count = 0
    for row in conn.execute(select(AUDIT).order_by(AUDIT.c.chain, AUDIT.c.seq)):
        rows_by_chain.setdefault(row.chain, []).append(row)
        count += 1
    problems: list[Problem] = []
    for chain in sorted(set(heads) | set(rows_by_chain)):
        head = heads.get(chain)
        if head is None:
            problems.append(Problem("inserted", chain, None, None, "audit rows for a chain with no account"))
            continue
        problems += verify_chain(chain, head.head_seq, head.head_hash, rows_by_chain.get(chain, []))
    return count, problems


def reconcile(conn: Connection) -> list[Problem]:
    """Balances and entries must agree with the audited history: each account's committed total equals
    the sum of its entries and the committed total its last audit event recorded (likewise holds)."""
    sums = dict(
        conn.execute(
            select(ENTRIES.c.account_id, func.sum(ENTRIES.c.amount_micro)).group_by(ENTRIES.c.account_id)
        ).all()
    )
    problems = []
    for account in conn.execute(select(ACCOUNTS)):
        last = conn.execute(
            select(AUDIT.c.event).where(AUDIT.c.chain == account.id, AUDIT.c.seq == account.head_seq)
        ).scalar()
        if last is None and account.head_seq > 0:
            continue  # the head row itself is gone: verify_chain reports the deletion
        try:
            event = json.loads(last) if last else {"committed_micro": 0, "held_micro": 0}
        except ValueError:
            continue  # an unreadable event: verify_chain reports the edit
        entries = int(sums.get(account.id) or 0)
        if account.committed_micro != event.get("committed_micro", account.committed_micro):
            problems.append(
                Problem(
                    "edited",
                    account.id,
                    None,
                    account.head_seq,
                    f"balance {account.committed_micro} differs from the audited {event.get('committed_micro')}",
                )
            )
        if account.held_micro != event.get("held_micro", account.held_micro):
            problems.append(
                Problem(
                    "edited",
                    account.id,
                    None,
                    account.head_seq,
                    f"holds {account.held_micro} differ from the audited {event.get('held_micro')}",
                )
            )
        if account.kind != "system" and entries != event.get("committed_micro", entries):
            problems.append(
                Problem(
                    "edited",
                    account.id,
                    None,
                    None,
                    f"entries sum to {entries}, the audited balance is {event.get('committed_micro')}",
                )
            )
    return problems
