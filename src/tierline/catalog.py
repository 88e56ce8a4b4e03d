"""The chip catalogue (`chips.csv`, with its sources) and tierline's classification of each part
next to the reported figures, disagreements flagged."""

from __future__ import annotations

import csv
import difflib
import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tierline.classification import Classification, Die, ItemSpec, classify
from tierline.errors import TierlineError
from tierline.policy import Context
from tierline.tpp import Rate, exact

DATA = Path(str(resources.files("tierline") / "data" / "chips"))
RATE_COLUMNS = {
    "dense_tflops_fp64": "fp64",
    "dense_tflops_tf32": "tf32",
    "dense_tflops_fp16_bf16": "fp16",
    "dense_tflops_fp8": "fp8",
    "dense_tops_int8": "int8",
    "dense_tflops_fp4": "fp4",
}


def _num(text: str) -> float | None:
    return float(text) if text.strip() else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class Chip:
    """A catalogued accelerator with its dense rates, die area, memory and sources."""

    id: str
    vendor: str
    model: str
    variant: str
    release_year: int | None
    rates: tuple[Rate, ...]
    die_area_mm2: float | None
    transistors_billion: float | None
    memory_gb: float | None
    memory_type: str
    memory_bandwidth_tbs: float | None
    interconnect_gbs: float | None
    tdp_w: float | None
    tpp_reported: float | None
    eccn_reported: str
    sources: tuple[str, ...]
    datacenter: bool
    datacenter_confidence: str
    datacenter_evidence: str
    die_area_note: str

    @property
    def name(self) -> str:
        return f"{self.vendor} {self.model} ({self.variant})"

    def spec(self, *, system: bool = False, ic_count: int = 1, base_eccn: str | None = None) -> ItemSpec:
        dies = (Die(self.die_area_mm2),) if self.die_area_mm2 else ()
        return ItemSpec(
            rates=self.rates,
            dies=dies,
            datacenter=self.datacenter,
            base_eccn=base_eccn,
            system=system,
            ic_count=ic_count,
            name=self.name,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "vendor": self.vendor,
            "model": self.model,
            "variant": self.variant,
            "release_year": self.release_year,
            "dense_rates": {r.precision: r.value for r in self.rates},
            "die_area_mm2": self.die_area_mm2,
            "transistors_billion": self.transistors_billion,
            "memory_gb": self.memory_gb,
            "memory_type": self.memory_type,
            "memory_bandwidth_tbs": self.memory_bandwidth_tbs,
            "interconnect_gbs": self.interconnect_gbs,
            "tdp_w": self.tdp_w,
            "tpp_reported": self.tpp_reported,
            "eccn_reported": self.eccn_reported,
            "datacenter": self.datacenter,
            "datacenter_confidence": self.datacenter_confidence,
            "datacenter_evidence": self.datacenter_evidence,
            "sources": list(self.sources),
        }


@functools.cache
def catalog() -> dict[str, Chip]:
    """Every catalogued chip by id."""
    meta = yaml.safe_load((DATA / "chips-meta.yaml").read_text(encoding="utf-8"))
    chips: dict[str, Chip] = {}
    with (DATA / "chips.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            key = f"{row['vendor']} {row['model']}"
            info = {**meta["default"], **meta["overrides"].get(key, {})}
            rates = tuple(Rate(p, v) for col, p in RATE_COLUMNS.items() if (v := _num(row[col])) is not None)
            chip_id = _slug(f"{row['vendor']} {row['model']} {row['variant']}")
            chips[chip_id] = Chip(
                id=chip_id,
                vendor=row["vendor"],
                model=row["model"],
                variant=row["variant"],
                release_year=int(row["release_year"]) if row["release_year"] else None,
                rates=rates,
                die_area_mm2=_num(row["die_area_mm2"]),
                transistors_billion=_num(row["transistors_billion"]),
                memory_gb=_num(row["memory_gb"]),
                memory_type=row["memory_type"],
                memory_bandwidth_tbs=_num(row["memory_bandwidth_tbs"]),
                interconnect_gbs=_num(row["interconnect_gbs"]),
                tdp_w=_num(row["tdp_w"]),
                tpp_reported=_num(row["tpp_reported"]),
                eccn_reported=row["eccn_reported"],
                sources=tuple(s.strip() for s in row["source_urls"].split(" ; ") if s.strip()),
                datacenter=bool(info["datacenter"]),
                datacenter_confidence=info["datacenter_confidence"],
                datacenter_evidence=info["datacenter_evidence"],
                die_area_note=" ".join(info["die_area_note"].split()),
            )
    return chips


@dataclass(frozen=True)
class Match:
    chip: Chip
    note: str | None


@functools.cache
def _index() -> tuple[dict[str, Chip], dict[str, list[Chip]]]:
    """Full names and model names (slugged) to chips."""
    names = {_slug(f"{c.vendor} {c.model} {c.variant}"): c for c in catalog().values()}
    models: dict[str, list[Chip]] = {}
    for c in catalog().values():
        for k in (_slug(c.model), _slug(f"{c.vendor} {c.model}")):
            models.setdefault(k, []).append(c)
    return names, models


@functools.lru_cache(maxsize=4096)
def find_chip(query: str) -> Match:
    """Find a chip by id, full name or model (fuzzy); the error lists the closest names."""
    chips = catalog()
    key = _slug(query)
    if key in chips:
        return Match(chips[key], None)
    names, models = _index()
    if key in models:
        found = models[key]
        others = [c.variant for c in found[1:]]
        note = f"matched {found[0].name}; other variants: {', '.join(others)}" if others else None
        return Match(found[0], note)
    prefixed = [c for k, c in names.items() if k.startswith(key) or f"-{key}-" in f"-{k}-"] if key else []
    if prefixed:
        also = f"; also {', '.join(c.name for c in prefixed[1:4])}" if len(prefixed) > 1 else ""
        return Match(prefixed[0], f"matched {prefixed[0].name}{also}")
    pool = {**{k: v[0] for k, v in models.items()}, **names}
    close = difflib.get_close_matches(key, list(pool), n=3, cutoff=0.75)
    if close and difflib.SequenceMatcher(None, key, close[0]).ratio() >= 0.85:
        return Match(pool[close[0]], f"fuzzy-matched {query!r} to {pool[close[0]].name}")
    loose = difflib.get_close_matches(key, list(pool), n=3, cutoff=0.4)
    hint = f"; closest: {', '.join(dict.fromkeys(pool[k].name for k in loose))}" if loose else ""
    raise TierlineError("chip", f"unknown chip {query!r}{hint}")


def _reported_level(text: str) -> str | None:
    """The control level a source reported: 'a', 'b', 'controlled', 'none' or None (not reported)."""
    low = text.lower()
    if not low:
        return None
    if "not 3a090" in low or "outside 3a090" in low:
        return "none"
    match = re.search(r"3a090\.([ab])", low)
    if match:
        return match.group(1)
    return "controlled" if "3a090" in low else None


def compare(chip: Chip, result: Classification, ctx: Context) -> list[str]:
    """Disagreements between tierline's figures and the reported ones."""
    out = []
    tol = exact(ctx.value("review.near_threshold_fraction"))
    if chip.tpp_reported is not None and result.tpp and abs(result.tpp - exact(chip.tpp_reported)) > tol * result.tpp:
        out.append(
            f"computed TPP {float(result.tpp):,.0f} differs from reported {chip.tpp_reported:,.0f} by more than {float(tol):.0%}"
        )
    reported = _reported_level(chip.eccn_reported)
    computed = (
        result.level if result.status == "controlled" else ("none" if result.status == "not_controlled" else None)
    )
    if reported and computed and reported != computed and not (reported == "controlled" and computed in ("a", "b")):
        out.append(f"computed {result.paragraph or 'not 3A090'} differs from reported '{chip.eccn_reported}'")
    return out


def classify_chip(chip: Chip, ctx: Context, **kwargs: Any) -> tuple[Classification, list[str]]:
    """Classify a catalogued chip; returns the classification and the disagreements with sources."""
    if not chip.rates:
        raise TierlineError("chip", f"{chip.name} has no published dense rates; it cannot be classified")
    result = classify(chip.spec(**kwargs), ctx)
    return result, compare(chip, result, ctx)
