"""Applying a determination: decide against the ledger and record its draws atomically
(``tierline check --apply`` and ``POST /v1/determinations/apply``)."""

from __future__ import annotations

import hashlib
from typing import Any

from tierline.determination import Transaction, determine
from tierline.ledger.audit import canonical
from tierline.ledger.ledger import Draw, Ledger, LedgerAllowances


def apply_determination(
    tx: Transaction, key: str | None, actor: str | None, ledger: Ledger | None = None
) -> dict[str, Any]:
    """Determine against the ledger and record the draws atomically (idempotent on `key`)."""
    ledger = ledger or Ledger()
    result = determine(tx, LedgerAllowances(ledger))
    answer = result.as_dict()
    draws = [Draw(d.account, d.tpp, tx.date) for d in result.draws]
    if draws:
        key = key or "check:" + hashlib.sha256(canonical(tx.model_dump(mode="json")).encode()).hexdigest()
        headquarters = {p.party.key: p.headquarters for p in result.facts.parties}
        answer["applied"] = ledger.apply(
            draws, idempotency_key=key, actor=actor, note=f"check {tx.destination}", headquarters=headquarters
        )
    else:
        answer["applied"] = None
    return answer
