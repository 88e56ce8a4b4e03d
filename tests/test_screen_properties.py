"""The vectorized screening engine gives exactly the scalar engine's answers, line by line and field
by field, for random order books: lines exactly at, just below and just above the LPP and allocation
limits, across calendar-year and policy-date boundaries, with VEUs, operating entities, end users,
g2g arrangements and invalid lines mixed in, screened in small batches so state carries over."""

from __future__ import annotations

import datetime as dt
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierline.reforms import Reform, get_reform, parse_reform
from tierline.screen.engine import Snapshot, screen_scalar
from tierline.screen.orders import DECISION_SCHEMA
from tierline.screen.read import batches, parse
from tierline.screen.run import screen_file

H100 = "NVIDIA H100 (SXM5 80GB)"
CHIPS = [
    H100,
    "NVIDIA H20 (HGX/SXM 96GB)",
    "NVIDIA B200 (SXM (HGX/DGX B200))",
    "NVIDIA L40S (PCIe 48GB)",
    "NVIDIA GeForce RTX 4090 (PCIe consumer 24GB)",
    "AMD Instinct MI300X (OAM 192GB)",
    "NVIDIA A10 (PCIe 24GB)",
]
DESTINATIONS = ["BR", "IN", "DE", "JP", "CN", "HK", "MO", "AE", "SG", "PL", "MX", "KH", "Brazil"]
HQ = [None, "US", "DE", "CN", "BR", "SG", "MO", "KH", "AE"]
DAYS = [
    dt.date(2025, 1, 15),
    dt.date(2025, 5, 14),
    dt.date(2025, 5, 15),
    dt.date(2025, 6, 30),  # the day before poland-tier1 moves PL to Tier 1
    dt.date(2025, 7, 1),
    dt.date(2025, 12, 31),
    dt.date(2026, 1, 1),
    dt.date(2026, 1, 14),
    dt.date(2026, 1, 15),
    dt.date(2026, 2, 2),  # the day before Cambodia leaves D:5 (a change for lines naming KH only)
    dt.date(2026, 2, 3),
    dt.date(2026, 3, 31),  # the day before gulf-d5 takes China out of D:5
    dt.date(2026, 4, 1),
    dt.date(2026, 7, 10),
    dt.date(2026, 7, 11),
    dt.date(2027, 12, 31),
    dt.date(2028, 1, 1),
]
# Country Group changes in a scenario: the UAE joins D:5 on 2025-07-01 and China leaves it on
# 2026-04-01 (screening starts an epoch only for the lines naming AE, or CN or Hong Kong, which the EAR
# treats as China)
GULF_D5 = parse_reform(
    {
        "name": "gulf-d5",
        "description": "test: the UAE in Country Group D:5, China out of it",
        "countries": [
            {"country": "AE", "group": "D:5", "change": "added", "from": "2025-07-01"},
            {"country": "CN", "group": "D:5", "change": "removed", "from": "2026-04-01"},
        ],
    }
)
H100_TPP = Fraction("1978.9") * 8  # the catalogue's dense FP8 rate, 1,978.9 TFLOPS, x 8 bits = 15,831.2 TPP
LPP = Fraction(26_900_000)  # 15 CFR 740.29(a)
ALLOCATION = Fraction(790_000_000)  # 15 CFR 742.6(b)(10), Tier 2 cumulative 2025-2027

consignees = st.sampled_from(["c1", "c2", "c3", "c4"])
dates = st.one_of(st.sampled_from(DAYS), st.dates(dt.date(2025, 1, 15), dt.date(2028, 2, 1)))


@st.composite
def order_line(draw: st.DrawFn) -> dict[str, Any]:
    destination = draw(st.sampled_from(DESTINATIONS))
    line: dict[str, Any] = {
        "date": draw(dates).isoformat(),
        "chip": draw(st.sampled_from(CHIPS)),
        "quantity": str(
            draw(st.one_of(st.integers(1, 6), st.sampled_from([1698, 1699, 1700, 49_898, 49_899, 50_000])))
        ),
        "destination": destination,
        "consignee_id": draw(consignees),
        "consignee_headquarters": draw(st.sampled_from(HQ)),
        "consignee_parent_headquarters": draw(st.sampled_from(HQ)),
        "consignee_kind": draw(st.sampled_from([None, "commercial", "government"])),
        "consignee_veu": draw(st.sampled_from([None, None, "UVEU", "NVEU"])),
        "consignee_veu_destinations": draw(st.sampled_from([None, destination, "IN;BR", "DE"])),
        "lpp_operating_entity": draw(st.sampled_from([None, None, "ops-1"])),
        "end_use": draw(st.sampled_from([None, "data_center", "development", "iaas_training", "training_4e091"])),
        "certifications": draw(
            st.sampled_from([None, "aia_certification", "aia_certification;approved_designer", "g2g_arrangement"])
        ),
        "end_user_country": None,
        "end_user_headquarters": None,
        "system": draw(st.sampled_from([None, "false", "true"])),
        "ics_per_unit": draw(st.sampled_from([None, "1", "8"])),
        "kind": None,
        "export_from": draw(st.sampled_from([None, None, "US", "SG"])),
        "vintage": draw(st.sampled_from([None, None, "ear-2023", "enforcement-posture", "ai-diffusion"])),
    }
    if draw(st.booleans()) and draw(st.booleans()):
        line["end_user_country"] = destination
        line["end_user_headquarters"] = draw(st.sampled_from(HQ))
    if draw(st.integers(0, 19)) == 0:  # an invalid value now and then
        field, value = draw(
            st.sampled_from([("quantity", "0"), ("date", "2025-13-01"), ("destination", "Atlantis"), ("chip", "X9")])
        )
        line[field] = value
    return line


@st.composite
def boundary_line(draw: st.DrawFn) -> dict[str, Any]:
    """A Tier 2 H100 line that reaches LPP and then the allocation: a few units against little room."""
    line = {k: None for k in draw(order_line())}
    line.update(
        {
            "date": draw(st.sampled_from(DAYS[:-1])).isoformat(),
            "chip": H100,
            "quantity": str(draw(st.integers(1, 4))),
            "destination": draw(st.sampled_from(["BR", "IN", "PL"])),
            "consignee_id": draw(st.sampled_from(["c1", "c2"])),
            "end_use": "data_center",
        }
    )
    return line


@st.composite
def starting_state(draw: st.DrawFn) -> Snapshot:
    """Usage that leaves exactly k H100s of room (k = -1..3) on some LPP and allocation accounts."""
    used: dict[str, Fraction] = {}
    for entity in ("c1", "c2", "ops-1"):
        for year in (2025, 2026, 2027):
            room = draw(st.sampled_from([None, -1, 0, 1, 2, 3]))
            if room is not None:
                used[f"lpp:{entity}:{year}"] = LPP - room * H100_TPP
    for country in ("BR", "IN", "AE", "PL", "MX"):
        room = draw(st.sampled_from([None, 0, 1, 2, 3, 4]))
        if room is not None:
            used[f"allocation:{country}"] = ALLOCATION - room * H100_TPP
    if draw(st.booleans()):
        used["uveu:c3:US"] = Fraction(draw(st.sampled_from([1, 100_000, 10_000_000])))
        used["uveu:c3:BR"] = Fraction(draw(st.sampled_from([0, 7_000, 700_000])))
    g2g = {"BR": draw(st.sampled_from(DAYS))} if draw(st.booleans()) else {}
    return Snapshot({k: v for k, v in used.items() if v}, g2g)


def _write(lines: list[dict[str, Any]], path: Path, fmt: str) -> None:
    frame = pl.DataFrame(lines, schema={k: pl.String for k in lines[0]})
    if fmt == "csv":
        frame.write_csv(path)
    elif fmt == "parquet":
        frame.write_parquet(path)
    else:
        frame.write_ndjson(path)


def _scalar(
    path: Path, snapshot: Snapshot, reform: Reform | None, vintage: str
) -> tuple[pl.DataFrame, set[tuple[int, str]]]:
    state = snapshot.state()
    rows: list[dict[str, Any]] = []
    bad: set[tuple[int, str]] = set()
    for batch in batches(path, 1000):
        typed, wrong = parse(batch)
        bad |= {(r["line"], r["column"]) for r in wrong.iter_rows(named=True)}
        ok = typed.filter(~pl.col("line").is_in(wrong["line"].implode()))
        found, failed = screen_scalar(ok, state, vintage, reform)
        rows += found
        bad |= {(b.line, b.column) for b in failed}
    return pl.DataFrame(rows, schema=DECISION_SCHEMA), bad


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.one_of(order_line(), boundary_line()), min_size=1, max_size=40),
    snapshot=starting_state(),
    fmt=st.sampled_from(["csv", "parquet", "jsonl"]),
    chunk=st.sampled_from([3, 7, 1000]),
    scenario=st.sampled_from([None, None, "poland-tier1", "lpp-10m", "double-tier2", "gulf-d5"]),
    vintage=st.sampled_from(["ai-diffusion", "ai-diffusion", "ear-2023", "enforcement-posture"]),
)
def test_vectorized_equals_scalar(
    lines: list[dict[str, Any]], snapshot: Snapshot, fmt: str, chunk: int, scenario: str | None, vintage: str
) -> None:
    """Also under a scenario: the reform reaches the vectorized engine's plans and epochs exactly as
    it reaches the scalar engine (poland-tier1 and lpp-10m change facts mid-book). The lines name
    vintages of their own now and then, other than the screening's."""
    reform = GULF_D5 if scenario == "gulf-d5" else get_reform(scenario) if scenario else None
    with tempfile.TemporaryDirectory() as tmp:
        orders, out = Path(tmp) / f"orders.{fmt}", Path(tmp) / "decisions.parquet"
        _write(lines, orders, fmt)
        expected, expected_bad = _scalar(orders, snapshot, reform, vintage)
        result = screen_file(
            orders,
            out,
            state=snapshot.state(),
            vintage=vintage,
            reform=reform,
            skip_invalid=True,
            chunk_size=chunk,
        )
        got = pl.read_parquet(out)
        report = pl.read_csv(result.rejects, infer_schema=False) if result.rejects else None
    got_bad = {(int(r["line"]), r["column"]) for r in report.iter_rows(named=True)} if report is not None else set()
    assert got_bad == expected_bad
    assert got.columns == expected.columns
    assert len(got) == len(expected)
    for mine, theirs in zip(got.iter_rows(named=True), expected.iter_rows(named=True), strict=True):
        assert mine == theirs, {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}
