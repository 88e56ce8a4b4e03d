"""Reforms as data (tierline.reforms): dated patches over parameters and country lists.

Expected values are hand arithmetic from the reform files and the parameter data:
LPP 26,900,000 TPP (15 CFR 740.29(a)) lowered to 10,000,000; Tier 2 allocation 790,000,000 x 2 =
1,580,000,000; H100 SXM5 fp8 1978.9 x 8 = 15,831.2 TPP per chip, so 2000 chips = 31,662,400 TPP,
above the 26.9M LPP limit (tests/cases/determinations/aia.yaml).
"""

from __future__ import annotations

import datetime as dt
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import run_cli
from tierline.allowances import lpp_cap
from tierline.errors import TierlineError
from tierline.policy import Context
from tierline.reforms import bundled_dir, get_reform, load_reform_file, parse_reform
from tierline.tiers import tier_of

POLAND = {
    "name": "poland-tier1",
    "countries": [{"country": "PL", "group": "SUPP5A", "change": "added", "from": "2025-07-01"}],
}


def test_poland_moves_to_tier1_from_the_reform_date() -> None:
    reform = parse_reform(POLAND)
    assert tier_of("PL", Context.make("ai-diffusion", "2025-07-01", reform)).tier == 1
    assert tier_of("PL", Context.make("ai-diffusion", "2025-06-30", reform)).tier == 2
    assert tier_of("PL", Context.make("ai-diffusion", "2025-07-01")).tier == 2  # no reform: unchanged
    assert tier_of("CZ", Context.make("ai-diffusion", "2025-07-01", reform)).tier == 2  # only Poland moves


def test_reform_adds_to_d5_moves_a_country_to_tier3() -> None:
    reform = parse_reform(
        {"name": "pl-d5", "countries": [{"country": "Poland", "group": "D:5", "change": "added", "from": "2025-07-01"}]}
    )
    assert tier_of("PL", Context.make("ai-diffusion", "2025-07-01", reform)).tier == 3
    assert tier_of("PL", Context.make("ai-diffusion", "2025-06-30", reform)).tier == 2


def _h100s_to_poland() -> Any:
    from tierline.determination import Transaction

    return Transaction.model_validate(
        {
            "date": "2025-08-01",
            "destination": "PL",
            "items": [{"chip": "H100 SXM5", "quantity": 2000}],
            "ultimate_consignee": {
                "id": "wisla-pl",
                "name": "Wisla Compute sp. z o.o.",
                "country": "PL",
                "headquarters": "PL",
                "ultimate_parent_headquarters": "PL",
                "kind": "commercial",
            },
            "end_use": "data_center",
            "certifications": ["aia_certification", "approved_designer"],
        }
    )


def test_determination_under_the_poland_reform_uses_aia() -> None:
    from tierline.determination import InMemoryAllowances, determine

    tx = _h100s_to_poland()
    # The law: PL is Tier 2, so AIA fails (destination and parties not Tier 1); LPP fails
    # (2000 x 15,831.2 = 31,662,400 > 26,900,000) -> licence.
    law = determine(tx, InMemoryAllowances()).as_dict()
    assert law["authorization"] == "LICENSE"
    assert law["license_required"] is True
    assert "reform" not in law
    # The reform: PL in supp. no. 5(a) from 2025-07-01; consignee headquartered and owned in PL -> AIA.
    reformed = determine(tx, InMemoryAllowances(), reform=parse_reform(POLAND)).as_dict()
    assert reformed["authorization"] == "AIA"
    assert reformed["license_required"] is False
    assert reformed["allocation_draws"] == []


def test_lpp_lowered_to_10m_from_2026() -> None:
    reform = load_reform_file(bundled_dir() / "lpp-10m.yaml")
    cap, use = lpp_cap(Context.make("ai-diffusion", "2026-01-01", reform))
    assert cap == Fraction(10_000_000)
    assert use.in_force_from == dt.date(2026, 1, 1)
    assert "reform lpp-10m" in (use.reference.source or "")
    assert use.reference.cfr == "15 CFR 740.29(a)"
    assert lpp_cap(Context.make("ai-diffusion", "2025-12-31", reform))[0] == Fraction(26_900_000)
    assert lpp_cap(Context.make("ai-diffusion", "2026-01-01"))[0] == Fraction(26_900_000)


def test_double_tier2_allocation() -> None:
    ctx = Context.make("ai-diffusion", "2025-06-01", get_reform("double-tier2"))
    assert ctx.value("allocation.tier2_cumulative_tpp") == 790_000_000 * 2
    assert ctx.stamp()["reform"] == "double-tier2"
    assert "reform" not in Context.make("ai-diffusion", "2025-06-01").stamp()


def test_reform_applies_to_other_vintages() -> None:
    reform = parse_reform(POLAND)
    # enforcement-posture has no tiers provision, but tier_of still reads the reformed list
    assert tier_of("PL", Context.make("enforcement-posture", "2025-07-01", reform)).tier == 1


def _param(**entry: Any) -> dict[str, Any]:
    return {"name": "bad", "parameters": [{"path": "lpp.annual_tpp_per_consignee", "from": "2026-01-01", **entry}]}


@pytest.mark.parametrize(
    ("data", "named"),
    [
        pytest.param(_param(path="lpp.no_such_limit", value=1), "lpp.no_such_limit", id="unknown path"),
        pytest.param(_param(value="ten million"), "does not fit unit 'tpp'", id="wrong value for unit"),
        pytest.param(_param(value=10_000_000, unit="count"), "not 'count'", id="wrong declared unit"),
        pytest.param(_param(value=-5), "negative", id="negative"),
        pytest.param(_param(**{"from": "2025-01-01", "value": 1}), "first value (2025-01-13)", id="before first"),
        pytest.param(
            {
                "name": "bad",
                "countries": [{"country": "Atlantis", "group": "SUPP5A", "change": "added", "from": "2025-07-01"}],
            },
            "unknown country 'Atlantis'",
            id="unknown country",
        ),
        pytest.param(
            {"name": "bad", "countries": [{"country": "PL", "group": "Z:9", "change": "added", "from": "2025-07-01"}]},
            "unknown group 'Z:9'",
            id="unknown group",
        ),
        pytest.param({"name": "bad"}, "at least one", id="empty"),
        pytest.param({"name": "Bad Name!", "countries": []}, "is not a name", id="bad name"),
    ],
)
def test_invalid_reforms_are_refused(data: dict[str, Any], named: str) -> None:
    with pytest.raises(TierlineError, match=re.escape(named)):
        parse_reform(data)


def test_cli_add_list_show(tmp_path: Path) -> None:
    env = {"TIERLINE_HOME": str(tmp_path)}
    file = tmp_path / "pl.yaml"
    file.write_text(yaml.safe_dump({**POLAND, "name": "pl-now", "description": "Poland to Tier 1"}), encoding="utf-8")
    added = run_cli("scenario", "add", str(file), "--json", env=env)
    assert added.code == 0, added.stderr
    assert (tmp_path / "scenarios" / "pl-now.yaml").is_file()
    again = run_cli("scenario", "add", str(file), env=env)
    assert again.code == 2 and "already stored" in again.stderr
    listed = run_cli("scenario", "list", "--json", env=env)
    assert listed.code == 0
    origins = {r["name"]: r["origin"] for r in listed.json()["scenarios"]}
    assert origins["pl-now"] == "stored"
    assert origins["lpp-10m"] == "bundled"
    shown = run_cli("scenario", "show", "pl-now", "--json", env=env).json()
    assert shown["countries"] == [{"country": "PL", "group": "SUPP5A", "change": "added", "from": "2025-07-01"}]
    assert "PL added SUPP5A" in run_cli("scenario", "show", "pl-now", env=env).stdout


def test_cli_add_refuses_an_invalid_reform(tmp_path: Path) -> None:
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(_param(value=1, **{"from": "2024-01-01"})), encoding="utf-8")
    result = run_cli("scenario", "add", str(file), env={"TIERLINE_HOME": str(tmp_path)})
    assert result.code == 2
    assert "bad.yaml: parameters[0].from" in result.stderr and "before" in result.stderr
    assert not (tmp_path / "scenarios" / "bad.yaml").exists()
    missing = run_cli("scenario", "show", "nope", env={"TIERLINE_HOME": str(tmp_path)})
    assert missing.code == 2 and "unknown scenario 'nope'" in missing.stderr


H100_TO_PL = [
    "check", "--chip", "H100 SXM5", "--qty", "2000", "--to", "PL", "--as-of", "2025-07-01",
    "--certification", "aia_certification", "--certification", "approved_designer", "--json",
]  # fmt: skip


def test_cli_answers_under_a_scenario(tmp_path: Path) -> None:
    env = {"TIERLINE_HOME": str(tmp_path / "home")}
    # Tier 1 is the US and 18 allies (19) on 2025-07-01; the bundled poland-tier1 reform adds PL: 20
    tiers = run_cli("tiers", "--as-of", "2025-07-01", "--scenario", "poland-tier1", "--json", env=env).json()
    assert tiers["counts"]["1"] == 19 + 1 and tiers["reform"] == "poland-tier1"
    assert "PL" in {c["iso2"] for c in tiers["members"]["1"]}
    assert (
        run_cli("country", "PL", "--as-of", "2025-07-01", "--scenario", "poland-tier1", "--json", env=env).json()[
            "tier"
        ]
        == 1
    )
    # the law: Tier 2 destination, so AIA fails and 2,000 H100s (31.7M TPP > 26.9M LPP) need a licence (exit 10)
    law = run_cli(*H100_TO_PL, env=env)
    assert law.code == 10 and law.json()["authorization"] == "LICENSE" and "reform" not in law.json()
    # the scenario: PL in supp. no. 5(a), consignee headquartered there, certifications given -> AIA (exit 0)
    reformed = run_cli(*H100_TO_PL, "--scenario", "poland-tier1", env=env)
    assert reformed.code == 0 and reformed.json()["authorization"] == "AIA"
    assert reformed.json()["reform"] == "poland-tier1"


def test_cli_refuses_to_apply_a_scenario(tmp_path: Path) -> None:
    env = {"TIERLINE_HOME": str(tmp_path / "home")}
    result = run_cli(*H100_TO_PL, "--scenario", "poland-tier1", "--apply", env=env)
    assert result.code == 2 and "--scenario" in result.stderr and "cannot be applied" in result.stderr
    assert run_cli("ledger", "status", "--json", env=env).json()["accounts"] == []
    unknown = run_cli("tiers", "--scenario", "no-such-reform", env=env)
    assert unknown.code == 2 and "no-such-reform" in unknown.stderr


@pytest.mark.parametrize(
    ("day", "scenario", "review"),
    [
        # the January 2026 rule: H200 (catalogue DRAM bandwidth 4.8 TB/s = 4,800 GB/s, TPP 15,831.2 <
        # 21,000) exported to China is reviewed case by case: 4,800 < 6,500 GB/s
        ("2026-06-30", None, "case_by_case"),
        ("2026-07-01", None, "case_by_case"),
        # the example reform lowers the ceiling to 4,000 GB/s from 2026-07-01: 4,800 is not below it
        ("2026-06-30", "china-bandwidth-4tbs", "case_by_case"),
        ("2026-07-01", "china-bandwidth-4tbs", "presumption_of_denial"),
    ],
)
def test_a_memory_bandwidth_line_moved_by_a_reform(day: str, scenario: str | None, review: str) -> None:
    from tierline.determination.engine import determine
    from tierline.determination.model import Transaction

    tx = Transaction.model_validate(
        {
            "date": day,
            "vintage": "enforcement-posture",
            "destination": "CN",
            "items": [{"chip": "H200", "quantity": 10}],
            "ultimate_consignee": {"id": "c", "name": "C", "country": "CN"},
        }
    )
    line = determine(tx, reform=get_reform(scenario) if scenario else None).lines[0]
    assert (line.authorization, line.review_policy) == ("LICENSE", review)
    china = next(s for s in line.trace if s.rule.startswith("China/Macau case-by-case"))
    bandwidth = next(c for c in china.values["conditions"] if c["condition"].startswith("DRAM bandwidth"))
    assert bandwidth["values"] == {
        "dram_bandwidth_gbs": 4800.0,
        "ceiling": 4000 if scenario and day >= "2026-07-01" else 6500,
    }


def test_a_whole_number_too_large_to_hold_exactly_is_refused() -> None:
    # 2**63 TPP cannot be held in the screening's 64-bit integers (nor in JSON exactly): refused,
    # naming the entry; 2**63 - 1 is accepted, and a float such as 5e25 operations is fine
    with pytest.raises(TierlineError, match=r"parameters\[0\]\.value.*too large"):
        parse_reform(
            {
                "name": "huge",
                "parameters": [{"path": "lpp.annual_tpp_per_consignee", "from": "2026-01-01", "value": 2**63}],
            }
        )
    parse_reform(
        {
            "name": "big",
            "parameters": [{"path": "lpp.annual_tpp_per_consignee", "from": "2026-01-01", "value": 2**63 - 1}],
        }
    )
    parse_reform(
        {"name": "ops", "parameters": [{"path": "eccn_4e091.operations_min", "from": "2025-02-01", "value": 5e25}]}
    )


@pytest.mark.parametrize(("scenario", "authorization"), [(None, "LICENSE"), ("sa-a6", "NLR")])
def test_a_country_group_change_reaches_the_destination_scope(scenario: str | None, authorization: str) -> None:
    # ear-2023 (October 2023 scope): an a-level chip to Saudi Arabia (D:4, not A:5/A:6) needs a
    # licence (15 CFR 742.6(a)(6)(iii)); a scenario adding SA to A:6 takes it out of the licence set
    from tierline.determination.engine import determine
    from tierline.determination.model import Transaction

    reform = parse_reform(
        {"name": "sa-a6", "countries": [{"country": "SA", "group": "A:6", "change": "added", "from": "2025-01-01"}]}
    )
    tx = Transaction.model_validate(
        {
            "date": "2025-06-01",
            "vintage": "ear-2023",
            "destination": "SA",
            "items": [{"chip": "H100 SXM5", "quantity": 8}],
            "ultimate_consignee": {"id": "c", "name": "C", "country": "SA"},
        }
    )
    line = determine(tx, reform=reform if scenario else None).lines[0]
    assert line.authorization == authorization
