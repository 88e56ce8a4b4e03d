"""AI Diffusion tiers (90 FR 4544): Tier 1 = the US and paragraph (a) of supp. no. 5 to part 740;
Tier 3 = Country Group D:5 plus Macau; Tier 2 = every other destination."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any

from tierline.countries import Country, all_countries
from tierline.groups import GROUP_CITATION, country_groups, ear_destination
from tierline.policy import Context

SUPP5A_CITATION = "15 CFR 740 Supp. 5, para. (a) (90 FR 4544)"
TIER3_CITATION = "15 CFR 740 Supp. 1, Country Group D:5, and Macau (90 FR 4544)"
UNITED_STATES = "US"
MACAU = "MO"


def supp5a_date(ctx: Context) -> dt.date:
    """The date Supp. 5(a) is read on: the as-of date, or the vintage's start for earlier dates."""
    return max(ctx.as_of, ctx.vintage.in_force_from) if ctx.vintage.has("tiers") else ctx.as_of


def tier1_codes(ctx: Context) -> frozenset[str]:
    on = supp5a_date(ctx)
    listed = country_groups().members("SUPP5A", on)
    if ctx.reform is not None:
        listed = ctx.reform.members("SUPP5A", listed, on)
    return listed | {UNITED_STATES}


@functools.lru_cache(maxsize=4096)
def d5_or_macau(on: dt.date) -> frozenset[str]:
    """Country Group D:5 on `on`, plus Macau (named with D:5 throughout the rule)."""
    return country_groups().members("D:5", on) | {MACAU}


def tier3_codes(ctx: Context) -> frozenset[str]:
    if ctx.reform is not None:
        return ctx.reform.members("D:5", d5_or_macau(ctx.as_of), ctx.as_of) | {MACAU}
    return d5_or_macau(ctx.as_of)


@dataclass(frozen=True)
class TierAnswer:
    tier: int
    reason: str
    citation: str

    def as_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "reason": self.reason, "citation": self.citation}


def tier_of(country: Country | str, ctx: Context) -> TierAnswer:
    """The AI Diffusion tier of a destination on the context's as-of date."""
    dest = ear_destination(country, ctx.as_of)
    code = dest.ear.iso2
    via = f" (as {dest.ear.name})" if dest.ear is not dest.country else ""
    if code in tier1_codes(ctx):
        why = "the United States" if code == UNITED_STATES else "listed in paragraph (a) of supp. no. 5 to part 740"
        return TierAnswer(1, f"{dest.country.name}{via} is {why}", SUPP5A_CITATION)
    if code == MACAU:
        return TierAnswer(3, "Macau is named with Country Group D:5 throughout the rule", TIER3_CITATION)
    if code in tier3_codes(ctx):
        return TierAnswer(3, f"{dest.country.name}{via} is in Country Group D:5 on {ctx.as_of}", TIER3_CITATION)
    return TierAnswer(2, f"{dest.country.name}{via} is neither in supp. no. 5(a) nor D:5/Macau", GROUP_CITATION)


def tier_members(ctx: Context) -> dict[int, list[Country]]:
    """Every destination by tier (Hong Kong under Tier 3 as part of China)."""
    out: dict[int, list[Country]] = {1: [], 2: [], 3: []}
    for country in all_countries().values():
        out[tier_of(country, ctx).tier].append(country)
    return out
