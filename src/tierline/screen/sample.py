"""A generated, realistic order book for demos and benchmarks (``tierline sample-orders``).

Consignees in 60 destinations across the three tiers, some headquartered or owned in another
country (US and Tier 1 parents, a few in China), a few government and university buyers, some
holding a UVEU or NVEU, some Tier-1-headquartered consignees naming an LPP operating entity. Lines
are dated across 2025-2027 in date order, for catalogue chips weighted towards the common parts,
in realistic quantities (single cards to large clusters). Deterministic for a given seed.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from tierline.catalog import catalog
from tierline.errors import TierlineError
from tierline.screen.read import file_format

TIER1 = ["DE", "FR", "JP", "GB", "NL", "KR", "TW", "CA", "AU", "IE", "FI", "SE", "DK", "NO", "BE", "IT", "ES", "NZ"]
TIER2 = [
    "BR", "IN", "SG", "MX", "PL", "IL", "CH", "AT", "PT", "MY", "TH", "ID", "CL", "AR", "ZA", "TR", "AE", "SA",
    "VN", "PH", "EG", "NG", "KE", "CO", "PE", "GR", "CZ", "HU", "RO", "UA", "KZ", "PK", "BD", "LK",
]  # fmt: skip
TIER3 = ["CN", "HK", "MO", "RU", "IR", "VE", "BY", "KH"]
POPULAR = ("H100", "H200", "B200", "GB200", "H20", "L40S", "A100", "MI300X", "Gaudi 3", "RTX 4090", "L4", "B300")
QUANTITIES = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1700, 2048, 4096, 8192])
QUANTITY_WEIGHTS = np.array([10, 8, 8, 16, 10, 6, 5, 3, 2, 1, 0.5, 0.2, 0.2, 0.1, 0.05])
START, END = dt.date(2025, 1, 15), dt.date(2027, 12, 31)
END_USES = ["data_center", "other", "development", "production", "storage", "iaas_training"]
END_USE_WEIGHTS = np.array([0.55, 0.25, 0.08, 0.05, 0.04, 0.03])


def _chips() -> tuple[list[str], np.ndarray]:
    names = [chip.name for chip in catalog().values() if chip.rates]
    weights = np.array([8.0 if any(p in n for p in POPULAR) else 1.0 for n in names])
    return names, weights / weights.sum()


def _none(n: int) -> np.ndarray:
    return np.full(n, None, dtype=object)


def _pick(rng: np.random.Generator, options: list[str], n: int, p: np.ndarray | None = None) -> np.ndarray:
    return np.array(options, dtype=object)[rng.choice(len(options), size=n, p=p)]


def consignees(n: int, rng: np.random.Generator) -> pl.DataFrame:
    """`n` consignees with their country, headquarters, parent, kind, authorizations, usual end use and
    certifications on file (known from the customer, as a compliance file holds them)."""
    destinations = TIER1 + TIER2 + TIER3
    weights = np.array([3.0] * len(TIER1) + [2.0] * len(TIER2) + [0.6] * len(TIER3))
    country = _pick(rng, destinations, n, weights / weights.sum())
    country[: len(destinations)] = destinations  # every destination has a consignee
    roll = rng.random(n)
    tier1_hq = _pick(rng, ["US"] * 6 + TIER1, n)
    headquarters = np.where(roll < 0.70, country, np.where(roll < 0.92, tier1_hq, "CN"))
    parent = np.where(rng.random(n) < 0.85, headquarters, _pick(rng, ["US", "JP", "DE", "CN", "SG", "AE"], n))
    uveu = np.arange(len(destinations), len(destinations) + 3)  # three US hyperscalers abroad
    headquarters[uveu], parent[uveu] = "US", "US"
    kind = _pick(rng, ["commercial", "government", "university"], n, np.array([0.9, 0.05, 0.05]))
    in_tier1 = np.isin(headquarters, ["US", *TIER1]) & np.isin(parent, ["US", *TIER1])
    veu_roll = rng.random(n)
    veu = np.where(in_tier1 & (veu_roll < 0.08), "UVEU", np.where(veu_roll > 0.96, "NVEU", _none(n)))
    veu[uveu] = "UVEU"
    veu[uveu + 3] = "NVEU"
    end_use_usual = _pick(rng, END_USES, n, END_USE_WEIGHTS)
    end_use_usual[uveu] = "data_center"
    end_use = end_use_usual
    certified = rng.random(n)
    certifications = np.where(
        certified < 0.55,
        "aia_certification;approved_designer",
        np.where(certified < 0.7, "aia_certification", _none(n)),
    )
    operator = np.where(in_tier1 & (rng.random(n) < 0.1), np.array([f"OPS-{i:05d}" for i in range(n)]), _none(n))
    return pl.DataFrame(
        {
            "consignee_id": [f"C{i:06d}" for i in range(n)],
            "consignee_name": [f"Customer {i:06d}" for i in range(n)],
            "destination": country.tolist(),
            "consignee_headquarters": headquarters.tolist(),
            "consignee_parent_headquarters": parent.tolist(),
            "consignee_kind": kind.tolist(),
            "consignee_veu": veu.tolist(),
            "consignee_veu_destinations": np.where(veu == "NVEU", country, _none(n)).tolist(),
            "lpp_operating_entity": operator.tolist(),
            "end_use": end_use.tolist(),
            "certifications": certifications.tolist(),
        }
    )


def _lines(
    parties: pl.DataFrame, rows: int, first: int, days: tuple[int, int], rng: np.random.Generator
) -> pl.DataFrame:
    popularity = np.random.default_rng(len(parties)).zipf(1.6, size=len(parties)).astype(float)
    who = rng.choice(len(parties), size=rows, p=popularity / popularity.sum())
    if first == 0:  # the first lines visit every destination and the VEU holders once
        covered = min(rows, len(TIER1 + TIER2 + TIER3) + 6)
        who[:covered] = rng.permutation(covered)
    chips, chip_weights = _chips()
    day = np.sort(rng.integers(days[0], days[1] + 1, size=rows))
    other_use = rng.random(rows) < 0.1  # one line in ten is for another purpose than the customer's usual one
    number = np.arange(first, first + rows)
    lines = (
        parties[who]
        .with_columns(
            pl.Series("line_id", [f"SO-{i // 4 + 1:08d}-{i % 4 + 1}" for i in number.tolist()], dtype=pl.String),
            (pl.Series("date", day, dtype=pl.Int32).cast(pl.Date) + pl.lit(START - dt.date(1970, 1, 1))).alias("date"),
            pl.Series("chip", _pick(rng, chips, rows, chip_weights).tolist(), dtype=pl.String),
            pl.Series("quantity", rng.choice(QUANTITIES, size=rows, p=QUANTITY_WEIGHTS / QUANTITY_WEIGHTS.sum())),
        )
        .with_columns(
            pl.when(pl.Series(other_use))
            .then(pl.Series(_pick(rng, END_USES, rows, END_USE_WEIGHTS).tolist(), dtype=pl.String))
            .otherwise(pl.col("end_use"))
            .alias("end_use")
        )
    )
    return lines.select(COLUMN_ORDER)


COLUMN_ORDER = (
    "line_id",
    "date",
    "chip",
    "quantity",
    "destination",
    "consignee_id",
    "consignee_name",
    "consignee_headquarters",
    "consignee_parent_headquarters",
    "consignee_kind",
    "consignee_veu",
    "consignee_veu_destinations",
    "lpp_operating_entity",
    "end_use",
    "certifications",
)


def order_book(rows: int, seed: int = 2025, chunk: int = 1_000_000) -> Iterator[pl.DataFrame]:
    """`rows` order lines in date order, in chunks of `chunk` lines (one set of consignees)."""
    if rows < 1:
        raise TierlineError("rows", "generate at least one line")
    rng = np.random.default_rng(seed)
    parties = consignees(int(min(max(200, rows // 400), 25_000)), rng)
    span = (END - START).days
    parts = -(-rows // chunk)
    for j in range(parts):
        first = j * chunk
        size = min(chunk, rows - first)
        days = (span * j // parts, span * (j + 1) // parts - (1 if j + 1 < parts else 0))
        yield _lines(parties, size, first, days, rng)


def write_sample(rows: int, out: Path, seed: int = 2025, chunk: int = 1_000_000) -> int:
    """Write a generated order book of `rows` lines to `out` (format by suffix), chunk by chunk."""
    fmt = file_format(out, "out")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            files = []
            for j, part in enumerate(order_book(rows, seed, chunk)):
                files.append(Path(tmp) / f"{j:05d}.parquet")
                part.write_parquet(files[-1])
            pl.scan_parquet(files).sink_parquet(out)
        return rows
    with out.open("wb") as handle:
        for j, part in enumerate(order_book(rows, seed, chunk)):
            if fmt == "csv":
                part.write_csv(handle, include_header=j == 0)
            else:
                part.write_ndjson(handle)
    return rows
