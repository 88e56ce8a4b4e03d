"""The pathway calculator (tierline.pathways) and ``tierline pathways``.

Expected figures are hand arithmetic from the reference values (../shared/reference/ai-diffusion-rule.md):
Tier 2 country allocation 790,000,000 TPP for 2025-01-01..2027-12-31 (§6), doubled (x2) with a g2g
arrangement; LPP 26,900,000 TPP per consignee per calendar year (§5.3); NVEU cumulative caps
1,580,000,000 / 4,270,000,000 / 5,070,000,000 TPP through the ends of 2025 / 2026 / 2027 (§7.3);
UVEU shares >= 75 % Tier 1, <= 7 % in any single non-Tier-1 country, >= 50 % in the US for a
US-headquartered UVEU (§7.2); H100 reference 1,979 x 8 = 15,832 TPP (§10.3), so
790,000,000 / 15,832 = 49,898.94 -> 49,899 H100s (§12); the catalogue H100 SXM is 1,978.9 x 8 = 15,831.2 TPP.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import TIERLINE, run_cli
from tierline.allowances import InMemoryAllowances
from tierline.errors import TierlineError
from tierline.pathways import LedgerUsage, pathways, pathways_chart_svg, pathways_report

ALLOCATION = 790_000_000
LPP = 26_900_000
H100 = 15_832  # 1,979 x 8
H100_CATALOGUE = Fraction("1978.9") * 8  # 15,831.2
NVEU_2025, NVEU_2026, NVEU_2027 = 1_580_000_000, 4_270_000_000, 5_070_000_000
ON = dt.date(2025, 6, 1)
BUNDLED_PARAMETERS = Path(__file__).resolve().parents[1] / "src" / "tierline" / "policy" / "data" / "parameters"


def usage(**accounts: float) -> InMemoryAllowances:
    return InMemoryAllowances({k.replace("__", ":"): v for k, v in accounts.items()})


# --- country allocation ------------------------------------------------------------------------------


def test_tier2_allocation_without_usage_is_the_whole_cap() -> None:
    result = pathways("BR", ON)
    row = result.row("allocation")
    assert result.tier == 2
    assert row.available and row.why_not is None
    assert row.limit_tpp == ALLOCATION and row.used_tpp == 0 and row.remaining_tpp == ALLOCATION
    # 790,000,000 / 15,832 = 49,898.94 H100-equivalents (§12 rounds it to 49,899); whole chips round
    # down: 15,832 x 49,898 = 789,985,136 <= 790,000,000 < 15,832 x 49,899 = 790,000,968 -> 49,898
    assert row.units == 49_898
    assert row.h100_equivalents == Fraction(ALLOCATION, H100)
    assert round(float(row.h100_equivalents)) == 49_899
    assert "15 CFR 742.6(b)(10)" in row.citations
    assert {p.path for p in row.parameters} >= {
        "allocation.tier2_cumulative_tpp",
        "allocation.period_start",
        "allocation.period_end",
        "reference_chip.h100_tpp",
    }


def test_tier2_allocation_with_usage_in_memory() -> None:
    row = pathways("BR", ON, state=usage(allocation__BR=100_000_000)).row("allocation")
    # 790,000,000 - 100,000,000 = 690,000,000; 15,832 x 43,582 = 689,990,224 (9,776 left over)
    assert row.used_tpp == 100_000_000
    assert row.remaining_tpp == 690_000_000
    assert row.units == 43_582


def test_catalogue_chip_counts() -> None:
    row = pathways("BR", ON, chip="H100 SXM5").row("allocation")
    # 15,831.2 x 49,901 = 789,992,711.2 (7,288.8 left over) -> 49,901 (SemiAnalysis's figure)
    assert row.units == 49_901
    assert row.h100_equivalents == Fraction(ALLOCATION, H100)  # H100-equivalents stay at the reference


def test_whole_units_boundary_and_exhaustion() -> None:
    three = 3 * H100  # 47,496
    assert pathways("BR", ON, state=usage(allocation__BR=ALLOCATION - three)).row("allocation").units == 3
    assert pathways("BR", ON, state=usage(allocation__BR=ALLOCATION - three + 1)).row("allocation").units == 2
    spent = pathways("BR", ON, state=usage(allocation__BR=ALLOCATION)).row("allocation")
    assert not spent.available and spent.remaining_tpp == 0 and spent.units == 0
    assert spent.why_not is not None and "exhausted" in spent.why_not


def test_double_tier2_reform_doubles_the_allocation() -> None:
    row = pathways("BR", ON, reform="double-tier2").row("allocation")
    # 790,000,000 x 2 = 1,580,000,000; 15,832 x 99,797 = 1,579,986,104 (13,896 left over)
    assert row.limit_tpp == 2 * ALLOCATION
    assert row.units == 99_797
    assert pathways("BR", ON, reform="double-tier2").reform == "double-tier2"


def test_g2g_arrangement_doubles_from_its_date() -> None:
    state = InMemoryAllowances({"allocation:BR": 100_000_000}, g2g={"BR": dt.date(2025, 7, 1)})
    before = pathways("BR", dt.date(2025, 6, 30), state=state).row("allocation")
    after = pathways("BR", dt.date(2025, 7, 1), state=state).row("allocation")
    assert before.limit_tpp == ALLOCATION and before.remaining_tpp == 690_000_000
    assert after.limit_tpp == 2 * ALLOCATION and after.remaining_tpp == 1_480_000_000  # 1,580M - 100M


def test_allocation_outside_the_period() -> None:
    row = pathways("BR", dt.date(2028, 1, 1)).row("allocation")
    assert not row.available and row.why_not is not None and "outside the allocation period" in row.why_not


def test_poland_tier1_reform_moves_poland_on_its_date() -> None:
    june = pathways("PL", dt.date(2025, 6, 30), reform="poland-tier1")
    july = pathways("PL", dt.date(2025, 7, 1), reform="poland-tier1")
    assert june.tier == 2 and june.row("allocation").remaining_tpp == ALLOCATION
    assert july.tier == 1 and july.row("tier1").unlimited
    assert not july.row("allocation").available


def test_policy_data_drives_the_numbers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No regulatory number is written in the code: change the data, the answer follows."""
    policy = tmp_path / "policy"
    shutil.copytree(BUNDLED_PARAMETERS, policy)
    file = policy / "ai_diffusion.yaml"
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    data["allocation"]["tier2_cumulative_tpp"]["values"] = {dt.date(2025, 1, 13): 100_000_000}
    data["lpp"]["annual_tpp_per_consignee"]["values"] = {dt.date(2025, 1, 13): 1_000_000}
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    monkeypatch.setenv("TIERLINE_POLICY_DIR", str(policy))
    result = pathways("BR", ON, consignees=2)
    assert result.row("allocation").limit_tpp == 100_000_000
    assert result.row("lpp").limit_tpp == 2 * 1_000_000


# --- LPP -------------------------------------------------------------------------------------------------


def test_lpp_n_unnamed_consignees() -> None:
    row = pathways("BR", ON, consignees=3).row("lpp")
    # 3 x 26,900,000 = 80,700,000; per consignee 26,900,000 / 15,832 = 1,699.09 -> 1,699; x 3 = 5,097
    assert row.limit_tpp == 3 * LPP and row.remaining_tpp == 3 * LPP and row.used_tpp == 0
    assert row.units == 3 * 1_699
    assert "15 CFR 740.29(a)" in row.citations


def test_lpp_named_consignees_use_their_own_year() -> None:
    state = usage(lpp__acme__2025=10_000_000, lpp__acme__2024=LPP, lpp__globex__2026=LPP)
    row = pathways("BR", ON, consignees=["acme", "globex"], state=state).row("lpp")
    # acme: 26,900,000 - 10,000,000 = 16,900,000 -> 1,067 H100s (15,832 x 1,067 = 16,892,744);
    # globex: nothing in 2025 -> 26,900,000 -> 1,699. The 2024 and 2026 accounts do not count.
    assert row.limit_tpp == 2 * LPP
    assert row.used_tpp == 10_000_000
    assert row.remaining_tpp == 16_900_000 + LPP
    assert row.units == 1_067 + 1_699


def test_lpp_does_not_draw_the_allocation() -> None:
    """The engine's LPP draws only lpp:ENTITY:YEAR (determination/license_exceptions/lpp.py)."""
    result = pathways("BR", ON, consignees=["acme"], state=usage(lpp__acme__2025=LPP))
    assert result.row("lpp").remaining_tpp == 0 and not result.row("lpp").available
    assert result.row("allocation").remaining_tpp == ALLOCATION


def test_bad_consignees_and_entity_are_refused() -> None:
    for bad in (0, [], ["a:b"], ["x", "x"]):
        with pytest.raises(TierlineError) as info:
            pathways("BR", ON, consignees=bad)
        assert info.value.field == "consignees"
    with pytest.raises(TierlineError) as info:
        pathways("BR", ON, entity="a:b")
    assert info.value.field == "entity"
    with pytest.raises(TierlineError) as info:
        pathways("Narnia", ON)
    assert info.value.field == "destination"


# --- NVEU ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "cap"),
    [(dt.date(2025, 6, 1), NVEU_2025), (dt.date(2026, 6, 1), NVEU_2026), (dt.date(2027, 6, 1), NVEU_2027)],
)
def test_nveu_phased_allowance_minus_usage(day: dt.date, cap: int) -> None:
    row = pathways("BR", day, entity="acme", state=usage(nveu__acme__BR=80_000_000, nveu__acme__IN=10**9)).row("nveu")
    assert row.limit_tpp == cap
    assert row.used_tpp == 80_000_000  # the Indian account is another destination
    assert row.remaining_tpp == cap - 80_000_000


def test_no_entity_no_veu_rows() -> None:
    result = pathways("BR", ON)
    assert [r.pathway for r in result.rows] == ["allocation", "lpp"]


# --- UVEU ------------------------------------------------------------------------------------------------


def test_uveu_single_country_share_binds_for_a_us_headquartered_entity() -> None:
    state = usage(uveu__acme__US=800_000_000, uveu__acme__GB=100_000_000, uveu__acme__IN=30_000_000)
    row = pathways("BR", ON, entity="acme", headquarters="US", state=state).row("uveu")
    # installed 930,000,000 (Tier 1: US + GB = 900,000,000). Largest x in Brazil:
    #   Tier 1 >= 75 %:      900,000,000 / (930,000,000 + x) >= 0.75 -> x <= 1,200,000,000 - 930,000,000 = 270,000,000
    #   single <= 7 %:       x / (930,000,000 + x) <= 0.07        -> x <= 0.07 x 930,000,000 / 0.93 = 70,000,000
    #   US >= 50 % (US HQ):  800,000,000 / (930,000,000 + x) >= 0.5 -> x <= 1,600,000,000 - 930,000,000 = 670,000,000
    assert row.available
    assert row.remaining_tpp == 70_000_000
    assert row.used_tpp == 0 and row.limit_tpp == 70_000_000
    assert row.units == 4_421  # 15,832 x 4,421 = 69,993,272 (6,728 left over)


def test_uveu_with_a_base_in_the_destination() -> None:
    state = usage(uveu__acme__US=800_000_000, uveu__acme__GB=139_300_000, uveu__acme__BR=60_700_000)
    row = pathways("BR", ON, entity="acme", headquarters="US", state=state).row("uveu")
    # total 1,000,000,000; Brazil: (60,700,000 + x) / (1,000,000,000 + x) <= 0.07
    #   -> x <= (70,000,000 - 60,700,000) / 0.93 = 9,300,000 / 0.93 = 10,000,000
    assert row.used_tpp == 60_700_000
    assert row.remaining_tpp == 10_000_000
    assert row.limit_tpp == 70_700_000
    assert row.units == 631  # 15,832 x 631 = 9,989,992


def test_uveu_tier1_share_binds() -> None:
    state = usage(
        uveu__euro__GB=790_000_000, uveu__euro__IN=70_000_000, uveu__euro__MX=70_000_000, uveu__euro__SA=70_000_000
    )
    row = pathways("BR", ON, entity="euro", headquarters="GB", state=state).row("uveu")
    # total 1,000,000,000, Tier 1 790,000,000: 790,000,000 / (1,000,000,000 + x) >= 0.75
    #   -> x <= 790,000,000 / 0.75 - 1,000,000,000 = 53,333,333 1/3 (the 7 % bound is 70,000,000 / 0.93 = 75,268,817)
    assert row.remaining_tpp == Fraction(160_000_000, 3)
    assert row.units == 3_368  # 15,832 x 3,368 = 53,322,176
    assert not any("US-headquartered" in str(c["limit"]) for c in row.details["checks_after"])


def test_uveu_without_an_installed_base_has_no_room() -> None:
    row = pathways("BR", ON, entity="newco", headquarters="US").row("uveu")
    # Tier 1 share of a base that is only Brazil is 0 % < 75 %: no deployment fits
    assert not row.available and row.remaining_tpp == 0 and row.units == 0
    assert row.why_not is not None and "no room" in row.why_not


def test_uveu_refused_for_a_non_tier1_headquarters() -> None:
    row = pathways("BR", ON, entity="acme", headquarters="IN").row("uveu")
    assert not row.available and row.why_not is not None and "supp. no. 5(a)" in row.why_not


# --- Tier 1 and Tier 3 ------------------------------------------------------------------------------------


def test_tier1_row_says_no_limit() -> None:
    result = pathways("DE", ON)
    row = result.row("tier1")
    assert result.tier == 1
    assert row.available and row.unlimited and row.limit_tpp is None and row.remaining_tpp is None
    assert "15 CFR 740.27" in row.citations
    assert not result.row("allocation").available


def test_tier3_row_says_no_pathway() -> None:
    result = pathways("CN", ON, entity="acme")
    assert result.tier == 3
    tier3 = result.row("tier3")
    assert not tier3.available and tier3.why_not is not None and "presumption of denial" in tier3.why_not
    assert not result.row("allocation").available
    lpp = result.row("lpp")
    assert not lpp.available and "15 CFR 740.2(a)(9)(ii)" in lpp.citations
    assert not result.row("nveu").available and not result.row("uveu").available


def test_hong_kong_is_answered_as_china() -> None:
    result = pathways("HK", ON)
    assert result.destination == "CN" and result.tier == 3


def test_vintage_without_allocations() -> None:
    result = pathways("BR", ON, vintage="ear-2023")
    assert not result.row("allocation").available
    assert "no Tier 2 country allocations" in (result.row("allocation").why_not or "")
    assert not result.row("lpp").available


# --- the durable ledger ------------------------------------------------------------------------------------


def test_pathways_from_a_real_ledger(ledger: Any) -> None:
    ledger.direct_commit("allocation:BR", 100_000_000, effective_date=dt.date(2025, 3, 1), idempotency_key="a1")
    ledger.direct_commit("allocation:BR", 50_000_000, effective_date=dt.date(2025, 9, 1), idempotency_key="a2")
    ledger.direct_commit("lpp:acme:2025", 10_000_000, effective_date=dt.date(2025, 4, 1), idempotency_key="l1")
    ledger.direct_commit("uveu:acme:US", 800_000_000, effective_date=dt.date(2025, 2, 1), idempotency_key="u1")
    ledger.direct_commit("uveu:acme:GB", 100_000_000, effective_date=dt.date(2025, 2, 1), idempotency_key="u2")
    state = LedgerUsage(ledger)
    result = pathways("BR", ON, entity="acme", headquarters="US", consignees=["acme", "globex"], state=state)
    # 1 June: only the March draw counts: 790,000,000 - 100,000,000 = 690,000,000
    assert result.row("allocation").remaining_tpp == 690_000_000
    assert result.row("lpp").remaining_tpp == (LPP - 10_000_000) + LPP
    # UVEU base 900,000,000 all Tier 1: x / (900,000,000 + x) <= 0.07 -> x <= 63,000,000 / 0.93 = 67,741,935 15/31
    assert result.row("uveu").remaining_tpp == Fraction(63_000_000 * 100, 93)
    # 1 October: both draws: 790,000,000 - 150,000,000 = 640,000,000
    assert pathways("BR", dt.date(2025, 10, 1), state=state).row("allocation").remaining_tpp == 640_000_000
    ledger.record_g2g("BR", dt.date(2025, 10, 1), reason="test arrangement", idempotency_key="g1")
    # doubled from 1 October: 1,580,000,000 - 150,000,000 = 1,430,000,000
    assert pathways("BR", dt.date(2025, 10, 1), state=state).row("allocation").remaining_tpp == 1_430_000_000


# --- output --------------------------------------------------------------------------------------------------


def test_as_dict_is_json_with_numbers_and_stamp() -> None:
    result = pathways("BR", ON, reform="double-tier2", entity="acme", consignees=2)
    data = json.loads(json.dumps(result.as_dict()))
    assert data["vintage"] == "ai-diffusion" and data["reform"] == "double-tier2" and data["as_of"] == "2025-06-01"
    assert data["destination"] == "BR" and data["tier"] == 2
    alloc = next(p for p in data["pathways"] if p["pathway"] == "allocation")
    assert alloc["limit_tpp"] == 2 * ALLOCATION and isinstance(alloc["remaining_tpp"], float)
    assert alloc["units"] == 99_797
    assert {p["parameter"] for p in alloc["parameters"]} >= {"allocation.tier2_cumulative_tpp"}


def test_chart_is_self_contained_svg() -> None:
    svg = pathways_chart_svg(pathways("BR", ON, entity="acme", state=usage(uveu__acme__US=10**9)))
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<script" not in svg and "href" not in svg
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    assert "49,898.9 H100e" in svg  # 790,000,000 / 15,832 = 49,898.94


def test_report() -> None:
    report = pathways_report(pathways("BR", ON, reform="double-tier2"))
    assert report.kind == "pathways"
    assert report.stamp.vintages == ("ai-diffusion",) and report.stamp.reforms == ("double-tier2",)
    assert report.stamp.as_of == ON
    assert report.sections[0].tables[0].rows and report.sections[0].charts[0].svg.startswith("<svg")
    assert "15 CFR 742.6(b)(10)" in {c.cite for c in report.citations}
    assert report.summary


# --- the command line ------------------------------------------------------------------------------------------

cli = pytest.mark.skipif(not TIERLINE.exists(), reason="the tierline console script is not installed")


@cli
def test_cli_pathways_without_a_ledger(tmp_path: Path) -> None:
    env = {"TIERLINE_HOME": str(tmp_path)}
    chart = tmp_path / "p.svg"
    r = run_cli(
        "pathways", "BR", "--as-of", "2025-06-01", "--consignees", "3", "--json", "--chart", str(chart), env=env
    )
    assert r.code == 0, r.stderr
    data = r.json()
    rows = {p["pathway"]: p for p in data["pathways"]}
    assert rows["allocation"]["remaining_tpp"] == ALLOCATION and rows["allocation"]["units"] == 49_898
    assert rows["lpp"]["limit_tpp"] == 3 * LPP and rows["lpp"]["units"] == 3 * 1_699
    assert chart.read_text(encoding="utf-8").startswith("<svg")
    assert not (tmp_path / "tierline.db").exists()  # no ledger is created by reading


@cli
def test_cli_pathways_reads_the_ledger(tmp_path: Path) -> None:
    from tierline.ledger import Ledger
    from tierline.ledger.db import engine_for

    url = f"sqlite:///{tmp_path}/tierline.db"
    ledger = Ledger(url)
    ledger.direct_commit("allocation:BR", 100_000_000, effective_date=dt.date(2025, 3, 1), idempotency_key="a1")
    engine_for(url).dispose()
    r = run_cli("pathways", "BR", "--as-of", "2025-06-01", "--json", env={"TIERLINE_HOME": str(tmp_path)})
    assert r.code == 0, r.stderr
    alloc = next(p for p in r.json()["pathways"] if p["pathway"] == "allocation")
    assert alloc["remaining_tpp"] == 690_000_000
    table = run_cli(
        "pathways", "BR", "--as-of", "2025-06-01", "--scenario", "double-tier2", env={"TIERLINE_HOME": str(tmp_path)}
    )
    assert table.code == 0, table.stderr
    assert "Country allocation" in table.stdout and "1,480,000,000" in table.stdout  # 1,580M - 100M


@cli
def test_cli_pathways_bad_country_is_one_line(tmp_path: Path) -> None:
    r = run_cli("pathways", "Narnia", "--as-of", "2025-06-01", env={"TIERLINE_HOME": str(tmp_path)})
    assert r.code == 2
    assert r.stderr.startswith("error: destination:") and len(r.stderr.strip().splitlines()) == 1
