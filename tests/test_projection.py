"""Projection of a demand series against the Tier 2 country allocations (tierline.projection) and
``tierline project``.

Expected dates are hand arithmetic from the reference values (../shared/reference/ai-diffusion-rule.md):
allocation 790,000,000 TPP per Tier 2 country for 2025-01-01..2027-12-31 (§6), x2 = 1,580,000,000 with
a g2g arrangement or under the bundled ``double-tier2`` reform; the H100 reference chip ("H100e") is
1,979 x 8 = 15,832 TPP (§10.3); the catalogue B200 is 4,500 dense FP8 TFLOPS x 8 = 36,000 TPP (chips.csv).

Constant demand of 3,000 H100e on the 1st of every month from 2025-02-01 (35 rows to 2027-12-01):
3,000 x 15,832 = 47,496,000 TPP a month.
  790,000,000:   16 x 47,496,000 =   759,936,000 fits; 17 x = 807,432,000 does not -> 17th row, 2026-06-01.
  1,580,000,000: 33 x 47,496,000 = 1,567,368,000 fits; 34 x = 1,614,864,000 does not -> 34th row, 2027-11-01.
  at the period end: 35 x 47,496,000 = 1,662,360,000 drawn.
"""

from __future__ import annotations

import datetime as dt
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from helpers import TIERLINE, run_cli
from tierline.allowances import InMemoryAllowances
from tierline.errors import TierlineError
from tierline.projection import project, projection_chart_svg, projection_report, read_demand

ALLOCATION = 790_000_000
H100 = 15_832
MONTHLY = 3_000 * H100  # 47,496,000
HEADER = "date,country,chip,quantity"


def months(first: dt.date, last: dt.date) -> list[dt.date]:
    out, day = [], first
    while day <= last:
        out.append(day)
        day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return out


def write(tmp_path: Path, lines: list[str], name: str = "demand.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def constant(tmp_path: Path, country: str = "BR", quantity: int = 3_000, chip: str = "H100e") -> Path:
    days = months(dt.date(2025, 2, 1), dt.date(2027, 12, 1))
    assert len(days) == 35
    return write(tmp_path, [f"{d.isoformat()},{country},{chip},{quantity}" for d in days])


# --- exhaustion dates ------------------------------------------------------------------------------------


def test_constant_demand_runs_out_on_the_hand_computed_date(tmp_path: Path) -> None:
    result = project(constant(tmp_path))
    br = result.get("BR")
    assert br.status == "runs_out"
    assert br.runs_out_on == dt.date(2026, 6, 1)  # the 17th row
    assert br.runs_out_line == 18  # the header is line 1
    assert br.binding == "Tier 2 country allocation"
    assert br.cap_at_period_end == ALLOCATION
    assert br.drawn_tpp == 35 * MONTHLY
    assert br.fraction_used_at_period_end == Fraction(35 * MONTHLY, ALLOCATION)  # 1,662,360,000 / 790,000,000
    fits = [p.fits for p in br.points]
    assert fits[:16] == [True] * 16 and fits[16] is False


def test_doubling_the_allocations_moves_the_date(tmp_path: Path) -> None:
    result = project(constant(tmp_path), [("ai-diffusion", None), ("ai-diffusion", "double-tier2")])
    assert result.get("BR", 0).runs_out_on == dt.date(2026, 6, 1)
    doubled = result.get("BR", 1)
    assert doubled.side.reform is not None and doubled.side.reform.name == "double-tier2"
    assert doubled.runs_out_on == dt.date(2027, 11, 1)  # the 34th row
    assert doubled.cap_at_period_end == 2 * ALLOCATION
    assert doubled.fraction_used_at_period_end == Fraction(35 * MONTHLY, 2 * ALLOCATION)


def test_doubling_pushes_exhaustion_past_the_period_end(tmp_path: Path) -> None:
    # 2,000 x 15,832 = 31,664,000 a month. 790,000,000: 24 x = 759,936,000 fits, 25 x = 791,600,000 does
    # not -> the 25th row, 2027-02-01. 1,580,000,000: all 35 rows, 35 x = 1,108,240,000, fit -> none
    # within the period; 1,108,240,000 / 1,580,000,000 = 70.1 % used at 2027-12-31.
    result = project(constant(tmp_path, quantity=2_000), [("ai-diffusion", None), ("ai-diffusion", "double-tier2")])
    assert result.get("BR", 0).runs_out_on == dt.date(2027, 2, 1)
    doubled = result.get("BR", 1)
    assert doubled.status == "fits" and doubled.runs_out_on is None
    assert doubled.fraction_used_at_period_end == Fraction(35 * 2_000 * H100, 2 * ALLOCATION)
    assert "does not run out" in doubled.headline


@pytest.mark.parametrize(
    ("since", "runs_out"),
    [
        # doubled before the 17th row (2026-06-01): the cap is 1,580,000,000 then -> the 34th row
        (dt.date(2026, 1, 1), dt.date(2027, 11, 1)),
        (dt.date(2026, 6, 1), dt.date(2027, 11, 1)),  # doubled on that very day
        # doubled only from 2026-07-01: on 2026-06-01, 807,432,000 > 790,000,000 already
        (dt.date(2026, 7, 1), dt.date(2026, 6, 1)),
    ],
)
def test_g2g_doubles_from_its_date(tmp_path: Path, since: dt.date, runs_out: dt.date) -> None:
    state = InMemoryAllowances(g2g={"BR": since})
    br = project(constant(tmp_path), state=state).get("BR")
    assert br.runs_out_on == runs_out
    assert br.g2g_since == since
    assert (since, 2 * ALLOCATION) in br.cap_steps


def test_exactly_filling_the_cap_fits_one_more_runs_out(tmp_path: Path) -> None:
    # recorded usage 790,000,000 - 1,000 x 15,832 = 774,168,000; then 1,000 H100e fill the cap exactly
    state = InMemoryAllowances({"allocation:BR": ALLOCATION - 1_000 * H100})
    exact = project(write(tmp_path, ["2025-06-01,BR,H100e,1000"]), state=state).get("BR")
    assert exact.status == "fits" and exact.runs_out_on is None
    assert exact.points[0].cumulative_tpp == ALLOCATION
    assert exact.starting_usage_tpp == ALLOCATION - 1_000 * H100
    over = project(write(tmp_path, ["2025-06-01,BR,H100e,1001"], "over.csv"), state=state).get("BR")
    assert over.status == "runs_out" and over.runs_out_on == dt.date(2025, 6, 1) and over.runs_out_line == 2


def test_catalogue_chip_tpp(tmp_path: Path) -> None:
    # B200: 36,000 TPP; 1,000 a month = 36,000,000. 21 x = 756,000,000 fits, 22 x = 792,000,000 does not
    # -> the 22nd row from 2025-02-01, 2026-11-01.
    br = project(constant(tmp_path, quantity=1_000, chip="B200")).get("BR")
    assert br.runs_out_on == dt.date(2026, 11, 1)
    assert br.points[0].tpp == 36_000_000


def test_chips_outside_3a090a_do_not_draw(tmp_path: Path) -> None:
    br = project(constant(tmp_path, quantity=10**6, chip="H20")).get("BR")
    assert br.status == "fits" and br.drawn_tpp == 0
    assert all(not p.drawn and "3A090.a" in (p.reason or "") for p in br.points)


def test_tier1_never_and_tier3_no_pathway(tmp_path: Path) -> None:
    path = write(tmp_path, ["2025-06-01,DE,H100e,100000", "2025-06-01,CN,H100e,100000", "2025-06-01,MO,H100e,1"])
    result = project(path)
    assert result.get("DE").status == "never" and result.get("DE").runs_out_on is None
    assert result.get("CN").status == "no_pathway" and result.get("MO").status == "no_pathway"
    assert result.get("DE").fraction_used_at_period_end is None


def test_poland_tier1_reform_stops_the_draws_on_its_date(tmp_path: Path) -> None:
    result = project(constant(tmp_path, "PL"), [("ai-diffusion", None), ("ai-diffusion", "poland-tier1")])
    assert result.get("PL", 0).runs_out_on == dt.date(2026, 6, 1)
    moved = result.get("PL", 1)
    # Tier 2 for the rows of 2025-02-01..2025-06-01 (5 rows), Tier 1 from 2025-07-01
    assert moved.tiers == (2, 1)
    assert moved.drawn_tpp == 5 * MONTHLY  # 237,480,000
    assert moved.status == "never" and "2025-07-01" in moved.binding


def test_vintage_without_allocations(tmp_path: Path) -> None:
    br = project(constant(tmp_path), ["ear-2023"]).get("BR")
    assert br.status == "no_allocation" and br.runs_out_on is None


def test_until_leaves_out_later_rows(tmp_path: Path) -> None:
    result = project(constant(tmp_path), until=dt.date(2026, 5, 31))
    br = result.get("BR")
    assert len(br.points) == 16 and br.status == "fits"  # 16 x 47,496,000 = 759,936,000
    assert result.as_of == dt.date(2026, 5, 31)


def test_recorded_usage_counts_by_date(ledger: Any, tmp_path: Path) -> None:
    from tierline.pathways import LedgerUsage

    # 200,000,000 recorded for 2025-12-15: rows before it do not see it
    ledger.direct_commit("allocation:BR", 200_000_000, effective_date=dt.date(2025, 12, 15), idempotency_key="u1")
    br = project(constant(tmp_path), state=LedgerUsage(ledger)).get("BR")
    # with 200,000,000 already used, 790,000,000 - 200,000,000 = 590,000,000 remain for demand:
    # 12 x 47,496,000 = 569,952,000 fits, 13 x = 617,448,000 does not -> the 13th row, 2026-02-01
    assert br.points[10].cumulative_tpp == 11 * MONTHLY  # 2025-12-01: before the usage's date
    assert br.points[11].cumulative_tpp == 200_000_000 + 12 * MONTHLY  # 2026-01-01: 769,952,000
    assert br.runs_out_on == dt.date(2026, 2, 1)


# --- the demand file ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "column", "line", "reason"),
    [
        (["2025-13-01,BR,H100e,1"], "date", 2, "not a date"),
        (["2025-06-01,BR,H100e,1", "June 2025,BR,H100e,1"], "date", 3, "not a date"),
        (["2025-06-01,Narnia,H100e,1"], "country", 2, "unknown country 'Narnia'"),
        (["2025-06-01,BR,Quantum Widget 9,1"], "chip", 2, "unknown chip"),
        (["2025-06-01,BR,H100e,-5"], "quantity", 2, "negative"),
        (["2025-06-01,BR,H100e,1.5"], "quantity", 2, "whole number"),
        (["2025-06-01,BR,H100e,"], "quantity", 2, "empty"),
    ],
)
def test_bad_rows_are_refused_naming_line_and_column(
    tmp_path: Path, lines: list[str], column: str, line: int, reason: str
) -> None:
    with pytest.raises(TierlineError) as info:
        read_demand(write(tmp_path, lines))
    assert info.value.field == f"demand.csv: line {line}, column {column}"
    assert reason in info.value.reason


def test_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "demand.csv"
    path.write_text("date,country,quantity\n2025-06-01,BR,1\n", encoding="utf-8")
    with pytest.raises(TierlineError) as info:
        read_demand(path)
    assert info.value.field == "demand.csv: column chip"
    assert "missing" in info.value.reason


def test_rows_read(tmp_path: Path) -> None:
    rows = read_demand(write(tmp_path, ["2025-06-01, Brazil ,H100e,10", "2025-07-01,HK,B200,0"]))
    assert [(r.line, r.date, r.country, r.quantity) for r in rows] == [
        (2, dt.date(2025, 6, 1), "BR", 10),
        (3, dt.date(2025, 7, 1), "CN", 0),  # Hong Kong is treated as China
    ]
    assert rows[0].tpp == 10 * H100 and rows[1].tpp == 0


# --- output -----------------------------------------------------------------------------------------------------


def test_as_dict_is_json(tmp_path: Path) -> None:
    result = project(constant(tmp_path), [("ai-diffusion", None), ("ai-diffusion", "double-tier2")])
    data = json.loads(json.dumps(result.as_dict()))
    assert data["reforms"] == [None, "double-tier2"]
    first = data["projections"][0]
    assert first["runs_out_on"] == "2026-06-01" and first["cap_at_period_end_tpp"] == ALLOCATION
    assert first["points"][0]["tpp"] == MONTHLY


def test_chart_and_report(tmp_path: Path) -> None:
    result = project(constant(tmp_path), [("ai-diffusion", None), ("ai-diffusion", "double-tier2")])
    svg = projection_chart_svg(result, "BR")
    assert svg.startswith("<svg") and "<script" not in svg and "href" not in svg
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert "runs out 2026-06-01" in svg and "runs out 2027-11-01" in svg
    report = projection_report(result)
    assert report.kind == "projection"
    assert report.stamp.reforms == (None, "double-tier2")
    assert report.sections[0].charts and report.sections[0].tables[0].rows
    assert "15 CFR 742.6(b)(10)" in {c.cite for c in report.citations}


# --- the command line ----------------------------------------------------------------------------------------

cli = pytest.mark.skipif(not TIERLINE.exists(), reason="the tierline console script is not installed")


@cli
def test_cli_project_sides_and_charts(tmp_path: Path) -> None:
    demand = constant(tmp_path)
    charts = tmp_path / "charts"
    env = {"TIERLINE_HOME": str(tmp_path)}
    r = run_cli("project", str(demand), "--scenario", "double-tier2", "--json", "--chart-dir", str(charts), env=env)
    assert r.code == 0, r.stderr
    data = r.json()
    assert [p["runs_out_on"] for p in data["projections"]] == ["2026-06-01", "2027-11-01"]
    assert (charts / "projection-BR.svg").read_text(encoding="utf-8").startswith("<svg")
    table = run_cli("project", str(demand), env=env)
    assert table.code == 0, table.stderr
    assert "2026-06-01" in table.stdout


@cli
def test_cli_project_bad_row_is_one_line(tmp_path: Path) -> None:
    demand = write(tmp_path, ["2025-06-01,BR,H100e,1", "2025-06-01,BR,H100e,-1"])
    r = run_cli("project", str(demand), env={"TIERLINE_HOME": str(tmp_path)})
    assert r.code == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "line 3, column quantity" in r.stderr and "Traceback" not in r.stderr
