"""Allowances: the accounts, their limits from the dated policy data, and the state the engine reads.

Accounts: ``allocation:<CC>`` (Tier 2 country allocation, cumulative 2025-2027),
``lpp:<consignee or operating entity>:<year>``, ``nveu:<entity>:<CC>``, ``uveu:<entity>:<CC>``.
The durable ledger implements the same protocol; ``InMemoryAllowances`` serves the Python API and tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

from tierline.policy import Context
from tierline.policy.vintages import ParameterUse
from tierline.tiers import UNITED_STATES
from tierline.tpp import exact


def allocation_account(country: str) -> str:
    return f"allocation:{country}"


def lpp_account(entity: str, year: int) -> str:
    return f"lpp:{entity}:{year}"


def nveu_account(entity: str, country: str) -> str:
    return f"nveu:{entity}:{country}"


def uveu_account(entity: str, country: str) -> str:
    return f"uveu:{entity}:{country}"


def allocation_cap(ctx: Context, g2g: bool) -> tuple[Fraction | None, list[ParameterUse]]:
    """Tier 2 country allocation in force (None outside the 2025-2027 period), doubled with a g2g arrangement."""
    cap, start, end = (
        ctx.use(p) for p in ("allocation.tier2_cumulative_tpp", "allocation.period_start", "allocation.period_end")
    )
    params = [cap, start, end]
    if not start.value <= ctx.as_of <= end.value:
        return None, params
    if g2g:
        multiplier = ctx.use("allocation.g2g_multiplier")
        params.append(multiplier)
        return exact(cap.value) * exact(multiplier.value), params
    return exact(cap.value), params


def lpp_cap(ctx: Context) -> tuple[Fraction, ParameterUse]:
    """LPP limit per ultimate consignee (or operating entity) per calendar year."""
    use = ctx.use("lpp.annual_tpp_per_consignee")
    return exact(use.value), use


def nveu_cap(ctx: Context) -> tuple[Fraction, ParameterUse]:
    """Cumulative NVEU allowance per destination on the as-of date (the year-end figure of that year)."""
    use = ctx.use("nveu.cumulative_cap_schedule")
    step = next((s for s in use.value if ctx.as_of <= s["through"]), use.value[-1])
    return exact(step["tpp"]), use


@dataclass(frozen=True)
class ShareLimit:
    """One UVEU geographic limit: the share `measure` of the installed base against `bound`.

    `measure` is ``tier1`` (supp. no. 5(a) countries together), ``single_non_tier1`` (the largest
    single other country) or ``us`` (the United States); `minimum` says whether the share must be at
    least (True) or at most (False) the bound. The scalar check and the bulk screening kernel both
    evaluate these, so the limits are defined once."""

    text: str
    measure: str
    minimum: bool
    bound: Fraction


def uveu_share_limits(headquarters: str, ctx: Context) -> tuple[list[ShareLimit], list[ParameterUse]]:
    """The UVEU geographic limits (supp. no. 10 to part 748, para. 6) for an entity headquartered in
    `headquarters`: >= 75% in supp. no. 5(a), <= 7% in any single other country, and >= 50% in the
    United States for a US-headquartered UVEU."""
    uses = [
        ctx.use(p) for p in ("uveu.min_share_tier1", "uveu.max_share_single_non_tier1", "uveu.min_share_us_for_us_hq")
    ]
    min_tier1, max_single, min_us = (exact(u.value) for u in uses)
    limits = [
        ShareLimit("at least the minimum share of AI compute in supp. no. 5(a)", "tier1", True, min_tier1),
        ShareLimit("no single non-supp. 5(a) country above the maximum share", "single_non_tier1", False, max_single),
    ]
    if headquarters == UNITED_STATES:
        limits.append(
            ShareLimit(
                "a US-headquartered UVEU keeps at least the minimum share in the United States", "us", True, min_us
            )
        )
    return limits, uses


def uveu_share_checks(
    installed: Mapping[str, Fraction], headquarters: str, tier1: frozenset[str], ctx: Context
) -> tuple[list[tuple[str, bool, dict[str, Any]]], list[ParameterUse]]:
    """The UVEU geographic shares of an installed base by country, checked against `uveu_share_limits`."""
    limits, uses = uveu_share_limits(headquarters, ctx)
    total = sum(installed.values(), Fraction(0))
    share = {c: v / total for c, v in installed.items()} if total else {}
    worst = max(((c, s) for c, s in share.items() if c not in tier1), key=lambda cs: cs[1], default=None)
    tier1_share = sum((s for c, s in share.items() if c in tier1), Fraction(0))
    us_share = share.get(UNITED_STATES, Fraction(0))
    measured: dict[str, tuple[Fraction, dict[str, Any]]] = {
        "tier1": (tier1_share, {"tier1_share": float(tier1_share)}),
        "single_non_tier1": (
            worst[1] if worst else Fraction(0),
            {"country": worst[0] if worst else None, "share": float(worst[1]) if worst else 0.0},
        ),
        "us": (us_share, {"us_share": float(us_share)}),
    }
    checks: list[tuple[str, bool, dict[str, Any]]] = []
    for limit in limits:
        value, values = measured[limit.measure]
        met = value >= limit.bound if limit.minimum else value <= limit.bound
        checks.append((limit.text, met, {**values, ("minimum" if limit.minimum else "maximum"): float(limit.bound)}))
    return checks, uses


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
