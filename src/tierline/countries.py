"""Destinations: every ISO 3166-1 country (pycountry) plus Kosovo, looked up by code, name or alias."""

from __future__ import annotations

import csv
import difflib
import functools
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pycountry
import yaml

from tierline.errors import TierlineError

DATA = Path(str(resources.files("tierline") / "data" / "countries"))


@dataclass(frozen=True)
class Country:
    """An export destination."""

    iso2: str
    iso3: str
    name: str
    iso_name: str
    confidence: str
    notes: str
    territory_hint: str | None


@dataclass(frozen=True)
class TreatedAs:
    """An EAR policy mapping one destination onto another (Hong Kong -> China)."""

    iso2: str
    target: str
    while_in_group: str | None
    reference: dict[str, str]
    confidence: str
    note: str


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.replace("’", "'")).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9()' ]+", " ", text.lower()).strip()


@functools.cache
def _destinations() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DATA / "destinations.yaml").read_text(encoding="utf-8"))
    return data


@functools.cache
def all_countries() -> dict[str, Country]:
    """Every destination by ISO2, in ISO order; built from pycountry and the group table."""
    rows = {r["iso2"]: r for r in csv.DictReader((DATA / "country-groups.csv").open(encoding="utf-8"))}
    out: dict[str, Country] = {}
    iso = {c.alpha_2: c for c in pycountry.countries}
    for code in sorted(set(iso) | set(rows)):
        row = rows.get(code)
        if row is None:
            raise TierlineError("country-groups.csv", f"ISO country {code} has no row")
        entry = iso.get(code)
        hint = re.search(r"treat_as=([A-Z]{2})", row["notes"])
        out[code] = Country(
            iso2=code,
            iso3=entry.alpha_3 if entry else ("XKX" if code == "XK" else code),
            name=row["name"],
            iso_name=getattr(entry, "common_name", None) or (entry.name if entry else row["name"]),
            confidence=row["confidence"],
            notes=row["notes"],
            territory_hint=hint.group(1) if hint and code not in treated_as_policies() else None,
        )
    return out


@functools.cache
def treated_as_policies() -> dict[str, TreatedAs]:
    return {
        code: TreatedAs(
            iso2=code,
            target=spec["as"],
            while_in_group=spec.get("while_in_group"),
            reference=spec["reference"],
            confidence=spec["confidence"],
            note=spec["note"],
        )
        for code, spec in _destinations()["treated_as"].items()
    }


@functools.cache
def _index() -> dict[str, str]:
    index: dict[str, str] = {}
    for c in all_countries().values():
        for key in (c.iso2, c.iso3, c.name, c.iso_name):
            index.setdefault(_fold(key), c.iso2)
        entry = pycountry.countries.get(alpha_2=c.iso2)
        for attr in ("name", "official_name", "common_name"):
            value = getattr(entry, attr, None) if entry else None
            if value:
                index.setdefault(_fold(value), c.iso2)
    for alias, code in _destinations()["aliases"].items():
        index[_fold(alias)] = code
    return index


@functools.lru_cache(maxsize=8192)
def lookup(query: str, field: str = "country") -> Country:
    """Find a destination by ISO2, ISO3, name or alias (case-insensitive).

    An unknown query raises a TierlineError naming `field`, with the closest suggestions.
    """
    key = _fold(query or "")
    code = _index().get(key)
    if code is None:
        names = {c.name: c.iso2 for c in all_countries().values()}
        aliases = {a.title(): c for a, c in _destinations()["aliases"].items()}
        candidates = {**names, **aliases}
        close = difflib.get_close_matches(query.strip().title(), list(candidates), n=3, cutoff=0.6)
        if not close:
            close = [n for n in candidates if key and _fold(n).startswith(key[:4])][:3]
        hint = f"; did you mean {', '.join(f'{n} ({candidates[n]})' for n in close)}?" if close else ""
        raise TierlineError(field, f"unknown country {query!r}{hint}")
    return all_countries()[code]
