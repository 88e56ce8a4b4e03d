"""Ledger accounts and their limits, read from the dated policy data.

``allocation:<CC>`` Tier 2 country allocation (2025-2027, doubled from a recorded g2g arrangement);
``lpp:<entity>:<year>`` LPP per consignee (or operating entity) per calendar year;
``nveu:<entity>:<CC>`` NVEU allowance per destination; ``uveu:<entity>:<CC>`` UVEU installed base
(limited by shares, not an amount); ``license:<id>`` an issued licence's drawdown.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from fractions import Fraction

from tierline.allowances import allocation_cap, lpp_cap, nveu_cap
from tierline.countries import lookup
from tierline.errors import TierlineError
from tierline.policy import Context

LEDGER_VINTAGE = "ai-diffusion"  # the vintage whose allowances the ledger keeps
MICRO = 1_000_000
PATTERNS = {
    "allocation": re.compile(r"^allocation:(?P<country>[A-Z]{2})$"),
    "lpp": re.compile(r"^lpp:(?P<entity>[^:]+):(?P<year>\d{4})$"),
    "nveu": re.compile(r"^nveu:(?P<entity>[^:]+):(?P<country>[A-Z]{2})$"),
    "uveu": re.compile(r"^uveu:(?P<entity>[^:]+):(?P<country>[A-Z]{2})$"),
    "license": re.compile(r"^license:(?P<entity>[^:]+)$"),
}


def to_micro(tpp: Fraction | float | int | str, field: str = "tpp") -> int:
    """TPP as integer micro-TPP (exact for any figure with up to six decimals)."""
    if type(tpp) is int:
        return tpp * MICRO
    try:
        value = Fraction(str(tpp)) if not isinstance(tpp, Fraction) else tpp
    except (ValueError, ZeroDivisionError):
        raise TierlineError(field, f"{tpp!r} is not a number") from None
    return round(value * MICRO)


def from_micro(micro: int) -> float:
    return micro / MICRO


@dataclass(frozen=True)
class AccountRef:
    id: str
    kind: str
    entity: str | None = None
    country: str | None = None
    year: int | None = None


@functools.lru_cache(maxsize=65536)
def parse_account(account: str) -> AccountRef:
    """Parse an account name; an unknown form is an error naming it."""
    for kind, pattern in PATTERNS.items():
        match = pattern.match(account or "")
        if match:
            parts = match.groupdict()
            country = parts.get("country")
            if country:
                lookup(country, "account")
            return AccountRef(
                account, kind, parts.get("entity"), country, int(parts["year"]) if parts.get("year") else None
            )
    raise TierlineError(
        "account",
        f"unknown account {account!r}; expected allocation:CC, lpp:ENTITY:YEAR, "
        "nveu:ENTITY:CC, uveu:ENTITY:CC or license:ID",
    )


def limit_micro(
    ref: AccountRef, on: dt.date, g2g_since: dt.date | None, license_tpp_micro: int | None = None
) -> int | None:
    """The account's limit in micro-TPP on `on`; None when it has no amount limit (UVEU: shares)."""
    if ref.kind == "license":
        if license_tpp_micro is None:
            raise TierlineError("account", f"no licence {ref.entity!r} is recorded")
        return license_tpp_micro
    if ref.kind == "lpp" and ref.year != on.year:
        raise TierlineError("effective_date", f"{on} is not in the account's calendar year {ref.year}")
    return _policy_limit(ref.kind, on, g2g_since is not None and g2g_since <= on)


@functools.lru_cache(maxsize=4096)
def allocation_steps(on: dt.date, g2g_since: dt.date | None) -> tuple[tuple[dt.date, int], ...]:
    """The allocation's cumulative caps that bind a draw dated `on`: the undoubled cap up to the day
    before a later g2g date, then the cap at the period's end."""
    ctx = Context.make(LEDGER_VINTAGE, on)
    end = ctx.value("allocation.period_end")
    if g2g_since is None or g2g_since <= on or g2g_since > end:
        return ((end, _policy_limit("allocation", on, g2g_since is not None and g2g_since <= on) or 0),)
    return (
        (g2g_since - dt.timedelta(days=1), _policy_limit("allocation", on, False) or 0),
        (end, _policy_limit("allocation", g2g_since, True) or 0),
    )


@functools.lru_cache(maxsize=4096)
def nveu_schedule(on: dt.date) -> tuple[tuple[dt.date, int], ...]:
    """The NVEU cumulative caps that bind a draw dated `on`: its own step and every later one."""
    steps = Context.make(LEDGER_VINTAGE, on).value("nveu.cumulative_cap_schedule")
    later = [(s["through"], to_micro(s["tpp"])) for s in steps if s["through"] >= on]
    return tuple(later or [(dt.date.max, to_micro(steps[-1]["tpp"]))])


@functools.lru_cache(maxsize=4096)
def _policy_limit(kind: str, on: dt.date, g2g: bool) -> int | None:
    ctx = Context.make(LEDGER_VINTAGE, on)
    if kind == "allocation":
        cap, _ = allocation_cap(ctx, g2g)
        if cap is None:
            raise TierlineError("effective_date", f"{on} is outside the country allocation period")
        return to_micro(cap)
    if kind == "lpp":
        return to_micro(lpp_cap(ctx)[0])
    if kind == "nveu":
        return to_micro(nveu_cap(ctx)[0])
    return None
