"""Determinations per second, in-process, for a mixed set of transactions (one core).

Target (issue 3): at least 20,000 per second. Run: ``.venv/bin/python benchmarks/determine.py``.
"""

from __future__ import annotations

import time
from typing import Any

from tierline.determination import InMemoryAllowances, Transaction, determine


def party(pid: str, country: str, hq: str, parent: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "name": pid,
        "country": country,
        "headquarters": hq,
        "ultimate_parent_headquarters": parent,
        **extra,
    }


def mixed() -> list[Transaction]:
    base = {"date": "2025-09-01"}
    raw = [
        {
            "destination": "BR",
            "items": [{"chip": "H100 SXM5", "quantity": 2000}],
            "ultimate_consignee": party("br", "BR", "BR", "BR"),
            "end_use": "data_center",
        },
        {
            "destination": "IN",
            "items": [{"chip": "H100 SXM5", "quantity": 100}],
            "ultimate_consignee": party("in", "IN", "IN", "IN"),
        },
        {
            "destination": "DE",
            "items": [{"chip": "B200", "quantity": 500}],
            "ultimate_consignee": party("de", "DE", "DE", "US"),
            "certifications": ["aia_certification", "approved_designer"],
        },
        {
            "destination": "CN",
            "items": [{"chip": "H20", "quantity": 1000}],
            "ultimate_consignee": party("cn", "CN", "CN", "CN"),
        },
        {
            "destination": "CN",
            "items": [{"chip": "H200", "quantity": 10}],
            "ultimate_consignee": party("cn2", "CN", "CN", "CN"),
        },
        {
            "destination": "SG",
            "items": [{"chip": "GeForce RTX 4090", "quantity": 50}],
            "ultimate_consignee": party("sg", "SG", "SG", "SG"),
        },
        {
            "destination": "AE",
            "items": [{"chip": "MI300X", "quantity": 1000}],
            "ultimate_consignee": party("ae", "AE", "US", "US", veu="UVEU"),
            "end_use": "data_center",
        },
        {
            "destination": "SA",
            "items": [{"chip": "L40", "quantity": 64}],
            "ultimate_consignee": party("sa", "SA", "SA", "SA"),
        },
        {
            "destination": "MY",
            "items": [{"chip": "H100 SXM5", "quantity": 8, "system": True, "ics_per_unit": 8, "base_eccn": "5A992"}],
            "ultimate_consignee": party("my", "MY", "MY", "CN"),
        },
        {
            "destination": "JP",
            "items": [{"model_weights": {"training_operations": 3e26}}],
            "ultimate_consignee": party("jp", "JP", "JP", "JP"),
        },
    ]
    return [Transaction.model_validate({**base, **r}) for r in raw]


def main(rounds: int = 3000) -> None:
    transactions = mixed()
    state = InMemoryAllowances(used={"allocation:BR": 100_000_000, "uveu:ae:US": 10_000_000_000})
    determine(transactions[0], state)  # warm caches (catalogue, groups, contexts)
    start = time.perf_counter()
    for _ in range(rounds):
        for tx in transactions:
            determine(tx, state)
    elapsed = time.perf_counter() - start
    count = rounds * len(transactions)
    print(
        f"{count} determinations in {elapsed:.2f} s: {count / elapsed:,.0f} per second "
        f"(one process, {len(transactions)} mixed transactions; target 20,000)"
    )


if __name__ == "__main__":
    main()
