"""Ledger entries as CSV (``tierline ledger export`` and ``GET /v1/ledger/export``)."""

from __future__ import annotations

import csv
from typing import IO

from tierline.ledger.ledger import Ledger

COLUMNS = [
    "id",
    "account_id",
    "op",
    "amount_micro",
    "effective_date",
    "hold_id",
    "reason",
    "actor",
    "idempotency_key",
    "recorded_at",
]


def write_entries_csv(ledger: Ledger, handle: IO[str]) -> int:
    """Write every entry (with its amount in TPP) to `handle`; the number of entries."""
    rows = ledger.entries()
    writer = csv.DictWriter(handle, fieldnames=COLUMNS + ["tpp"])
    writer.writeheader()
    for row in rows:
        writer.writerow({**{c: row[c] for c in COLUMNS}, "tpp": row["amount_micro"] / 1e6})
    return len(rows)
