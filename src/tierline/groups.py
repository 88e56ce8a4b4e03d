"""EAR Country Groups (15 CFR 740 Supp. 1) as dated sets.

The table holds membership as of 15 January 2025; the change list moves it to any other date:
for a later date apply the changes dated after the base up to that date, for an earlier date undo
the changes dated after that date up to the base. Pseudo-groups (SUPP5A, AC_RS_SCOPE,
TREATED_AS_CN) hold dated lists that are not Country Groups.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tierline.countries import DATA, Country, all_countries, lookup, treated_as_policies
from tierline.errors import PolicyDataError

if TYPE_CHECKING:
    from tierline.reforms import Reform

BASE_DATE = dt.date(2025, 1, 15)
GROUPS = ("A:1", "A:5", "A:6", "B", "D:1", "D:2", "D:3", "D:4", "D:5", "E:1", "E:2")
PSEUDO_GROUPS = ("SUPP5A", "AC_RS_SCOPE", "TREATED_AS_CN")
UNTRACKED = ("A:2", "A:4")  # recorded in the history, not tabulated
GROUP_CITATION = "15 CFR 740 Supp. 1 (Country Groups)"


def _label(raw: str) -> str:
    return raw if raw in PSEUDO_GROUPS else f"{raw[0]}:{raw[1:]}" if raw[1:].isdigit() else raw


@dataclass(frozen=True)
class GroupChange:
    """A dated change of one destination's membership in one group."""

    effective: dt.date
    iso2: str
    group: str
    added: bool
    citation: str
    confidence: str

    def as_dict(self) -> dict[str, str]:
        return {
            "effective": self.effective.isoformat(),
            "iso2": self.iso2,
            "group": self.group,
            "change": "added" if self.added else "removed",
            "citation": self.citation,
            "confidence": self.confidence,
        }


class CountryGroups:
    """Group membership on any date."""

    def __init__(self, base: dict[str, frozenset[str]], changes: list[GroupChange]) -> None:
        self._base = base
        self._cache: dict[tuple[str, dt.date], frozenset[str]] = {}
        self.changes = sorted(changes, key=lambda c: (c.effective, c.iso2, c.group))

    def members(self, group: str, on: dt.date) -> frozenset[str]:
        """ISO2 codes in `group` on `on` (no Hong Kong/Liechtenstein mapping applied)."""
        key = (group, on)
        if key not in self._cache:
            self._cache[key] = self._members(group, on)
        return self._cache[key]

    def _members(self, group: str, on: dt.date) -> frozenset[str]:
        current = set(self._base.get(group, frozenset()))
        for change in self.changes:
            if change.group != group:
                continue
            if BASE_DATE < change.effective <= on:
                (current.add if change.added else current.discard)(change.iso2)
            elif on < change.effective <= BASE_DATE:
                (current.discard if change.added else current.add)(change.iso2)
        return frozenset(current)

    def groups_of(self, iso2: str, on: dt.date, reform: Reform | None = None) -> list[str]:
        """The Country Groups (not pseudo-groups) `iso2` itself is listed in on `on`, with a
        scenario's changes when given."""
        if reform is None:
            return [g for g in GROUPS if iso2 in self.members(g, on)]
        return [g for g in GROUPS if iso2 in reform.members(g, self.members(g, on), on)]

    def history(self, iso2: str) -> list[GroupChange]:
        return [c for c in self.changes if c.iso2 == iso2]


@functools.cache
def country_groups() -> CountryGroups:
    """The bundled Country Group tables, validated."""
    file = "country-groups.csv"
    base: dict[str, set[str]] = defaultdict(set)
    with (DATA / file).open(encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            for group in GROUPS:
                value = row[group.replace(":", "")]
                if value not in ("0", "1"):
                    raise PolicyDataError(file, f"line {line} {group}", f"{value!r} is not 0 or 1")
                if value == "1":
                    base[group].add(row["iso2"])
    changes = []
    file = "country-group-changes.csv"
    with (DATA / file).open(encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                effective = dt.date.fromisoformat(row["effective_date"])
            except ValueError:
                raise PolicyDataError(file, f"line {line} effective_date", "not a date") from None
            if row["change"] not in ("added", "removed"):
                raise PolicyDataError(file, f"line {line} change", f"{row['change']!r} is not added/removed")
            group = _label(row["group"])
            if group not in GROUPS + PSEUDO_GROUPS + UNTRACKED:
                raise PolicyDataError(file, f"line {line} group", f"unknown group {row['group']!r}")
            if row["iso2"] not in all_countries():
                raise PolicyDataError(file, f"line {line} iso2", f"unknown destination {row['iso2']!r}")
            changes.append(
                GroupChange(effective, row["iso2"], group, row["change"] == "added", row["citation"], row["confidence"])
            )
    # Pseudo-groups have no table column: their base is the changes up to the base date.
    for change in sorted(changes, key=lambda c: c.effective):
        if change.group in PSEUDO_GROUPS and change.effective <= BASE_DATE:
            (base[change.group].add if change.added else base[change.group].discard)(change.iso2)
    return CountryGroups({g: frozenset(m) for g, m in base.items()}, changes)


@dataclass(frozen=True)
class Destination:
    """A destination as the EAR sees it on a date: Hong Kong is China, Liechtenstein Switzerland."""

    country: Country
    ear: Country
    treated_as_note: str | None
    treated_as_reference: dict[str, str] | None


def ear_codes(query: str | Country) -> frozenset[str]:
    """The country and the one the EAR may treat it as on some date (Hong Kong: HK and CN)."""
    country = query if isinstance(query, Country) else lookup(query)
    policy = treated_as_policies().get(country.iso2)
    return frozenset((country.iso2, policy.target) if policy else (country.iso2,))


def ear_destination(query: str | Country, on: dt.date) -> Destination:
    """Resolve a destination and apply the EAR's treated-as policies in force on `on`."""
    country = query if isinstance(query, Country) else lookup(query)
    policy = treated_as_policies().get(country.iso2)
    if policy and (
        policy.while_in_group is None or country.iso2 in country_groups().members(policy.while_in_group, on)
    ):
        target = all_countries()[policy.target]
        return Destination(country, target, policy.note, policy.reference)
    return Destination(country, country, None, None)
