"""Allowance state: what the engine reads of LPP, country allocation and VEU usage.

Accounts: ``allocation:<CC>`` (Tier 2 country allocation, cumulative 2025-2027),
``lpp:<consignee or operating entity>:<year>``, ``nveu:<entity>:<CC>``, ``uveu:<entity>:<CC>``.
The durable ledger implements the same protocol; ``InMemoryAllowances`` serves the Python API and tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from fractions import Fraction
from typing import Protocol


def allocation_account(country: str) -> str:
    return f"allocation:{country}"


def lpp_account(entity: str, year: int) -> str:
    return f"lpp:{entity}:{year}"


def nveu_account(entity: str, country: str) -> str:
    return f"nveu:{entity}:{country}"


def uveu_account(entity: str, country: str) -> str:
    return f"uveu:{entity}:{country}"


class AllowanceState(Protocol):
    """Read-only view of allowance usage as of a date."""

    def used(self, account: str, on: dt.date) -> Fraction:
        """TPP drawn on `account` up to and including `on`."""
        ...

    def accounts(self, prefix: str, on: dt.date) -> Mapping[str, Fraction]:
        """Usage of every account whose name starts with `prefix`."""
        ...

    def g2g_since(self, country: str) -> dt.date | None:
        """The date a government-to-government arrangement was recorded for `country`, if any."""
        ...


class InMemoryAllowances:
    """Usage held in memory (undated: every recorded draw counts on any date)."""

    def __init__(
        self, used: Mapping[str, float | int | Fraction] | None = None, g2g: Mapping[str, dt.date] | None = None
    ) -> None:
        self._used = {k: Fraction(str(v)) if not isinstance(v, Fraction) else v for k, v in (used or {}).items()}
        self._g2g = dict(g2g or {})

    def used(self, account: str, on: dt.date) -> Fraction:
        return self._used.get(account, Fraction(0))

    def accounts(self, prefix: str, on: dt.date) -> dict[str, Fraction]:
        return {k: v for k, v in self._used.items() if k.startswith(prefix)}

    def g2g_since(self, country: str) -> dt.date | None:
        return self._g2g.get(country)

    def draw(self, account: str, tpp: Fraction) -> None:
        """Record a draw (what ``check --apply`` does against the durable ledger)."""
        self._used[account] = self._used.get(account, Fraction(0)) + tpp


class PendingDraws:
    """The state seen by later lines of one transaction: the base state plus earlier lines' draws."""

    def __init__(self, base: AllowanceState) -> None:
        self.base = base
        self.draws: dict[str, Fraction] = {}

    def used(self, account: str, on: dt.date) -> Fraction:
        return self.base.used(account, on) + self.draws.get(account, Fraction(0))

    def accounts(self, prefix: str, on: dt.date) -> dict[str, Fraction]:
        out = dict(self.base.accounts(prefix, on))
        for k, v in self.draws.items():
            if k.startswith(prefix):
                out[k] = out.get(k, Fraction(0)) + v
        return out

    def g2g_since(self, country: str) -> dt.date | None:
        return self.base.g2g_since(country)

    def add(self, account: str, tpp: Fraction) -> None:
        self.draws[account] = self.draws.get(account, Fraction(0)) + tpp
