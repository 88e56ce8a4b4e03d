"""Destinations, EAR Country Groups as dated sets, and AI Diffusion tiers."""

from __future__ import annotations

import csv
import datetime as dt
import filecmp
from pathlib import Path

import pytest

from helpers import REFERENCE, TABLE_DATE, load_cases, needs_reference
from tierline.countries import all_countries, lookup
from tierline.errors import TierlineError
from tierline.groups import GROUPS, country_groups, ear_destination
from tierline.policy import Context
from tierline.tiers import tier_members, tier_of

CASES = load_cases("countries.yaml")
BUNDLED = Path(__file__).resolve().parents[1] / "src" / "tierline" / "data" / "countries"


def reference_rows() -> list[dict[str, str]]:
    if not REFERENCE.is_dir():
        return []
    with (REFERENCE / "country-groups.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


ROWS = reference_rows()
BY_ISO2 = {r["iso2"]: r for r in ROWS}


def row_groups(row: dict[str, str]) -> list[str]:
    """The groups a row of country-groups.csv marks 1, in table order (A1 -> "A:1")."""
    return [g for g in GROUPS if row[g.replace(":", "")] == "1"]


def ctx_on(day: str | dt.date, vintage: str = "ai-diffusion") -> Context:
    return Context.make(vintage=vintage, as_of=day)


# --- Destinations -------------------------------------------------------------------------------


def test_250_destinations():
    # README.md: one row per ISO 3166-1 alpha-2 code (249) plus XK (Kosovo).
    countries = all_countries()
    assert len(countries) == 250
    assert "XK" in countries


@needs_reference
def test_destinations_are_the_reference_rows():
    assert len(ROWS) == 250
    assert set(all_countries()) == set(BY_ISO2)


@pytest.mark.parametrize("case", [pytest.param(c, id=c["query"]) for c in CASES["lookups"]])
def test_lookup(case):
    assert lookup(case["query"]).iso2 == case["iso2"], case["source"]


@needs_reference
def test_every_reference_row_is_found_by_code_and_name():
    for row in ROWS:
        assert lookup(row["iso2"]).iso2 == row["iso2"]
        assert lookup(row["iso2"].lower()).iso2 == row["iso2"]
        assert lookup(row["name"]).iso2 == row["iso2"], row["name"]
        assert lookup(row["name"].upper()).iso2 == row["iso2"], row["name"]


@pytest.mark.parametrize("query", ["Atlantis", "Germny", "Narnia"])
def test_unknown_country_is_an_error(query):
    with pytest.raises(TierlineError) as err:
        lookup(query)
    assert err.value.field == "country"
    assert query in str(err.value)


def test_unknown_country_suggests_the_closest():
    with pytest.raises(TierlineError) as err:
        lookup("Germny")
    assert "did you mean" in str(err.value)
    assert "Germany (DE)" in str(err.value)


@pytest.mark.parametrize(("query", "iso2"), [("Côte d’Ivoire", "CI"), ("Lao People’s Democratic Republic", "LA")])
def test_lookup_with_typographic_apostrophe(query, iso2):
    assert lookup(query).iso2 == iso2


# --- Country Groups as dated sets ------------------------------------------------------------------


@needs_reference
@pytest.mark.parametrize("iso2", sorted(BY_ISO2))
def test_groups_on_table_date_match_reference_row(iso2):
    """Each row's 1/0 group columns as of 15 Jan 2025 (README.md "Conventions in the CSV files")."""
    groups = country_groups()
    row = BY_ISO2[iso2]
    assert groups.groups_of(iso2, TABLE_DATE) == row_groups(row)
    # Hong Kong is mapped to China before any group is read (README.md).
    ear = ear_destination(iso2, TABLE_DATE).ear.iso2
    if iso2 == "HK":
        assert ear == "CN"
        assert groups.groups_of(ear, TABLE_DATE) == row_groups(BY_ISO2["CN"])


@needs_reference
@pytest.mark.parametrize("iso2", sorted(BY_ISO2))
def test_tier_on_table_date_matches_reference_row(iso2):
    """tier_ai_diffusion column (README.md: 1 = US + supp. 5(a); 3 = D:5 + Macau + HK; 2 = others)."""
    assert tier_of(iso2, ctx_on(TABLE_DATE)).tier == int(BY_ISO2[iso2]["tier_ai_diffusion"])


@pytest.mark.parametrize("case", [pytest.param(c, id=c["group"]) for c in CASES["group_counts"]])
def test_group_sizes_on_table_date(case):
    assert len(country_groups().members(case["group"], TABLE_DATE)) == case["count"], case["source"]


def test_named_group_members():
    groups = country_groups()
    assert groups.members("A:6", TABLE_DATE) == set(CASES["a6_members"])
    assert groups.members("E:1", TABLE_DATE) == set(CASES["e1_members"])
    assert groups.members("E:2", TABLE_DATE) == set(CASES["e2_members"])


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=f"{c['iso2']} {c['group']} {c['date']}") for c in CASES["dated_membership"]]
)
def test_dated_membership(case):
    members = country_groups().members(case["group"], case["date"])
    assert (case["iso2"] in members) is case["member"], case["source"]


def test_d5_has_23_members_in_january_2025_and_22_after_cambodia_left():
    # README.md decision 1: 23 in Jan 2025 (the 22 of the 2026 eCFR plus Cambodia, no Cyprus);
    # ai-diffusion-rule.md §2.2: the eCFR of 2026-07-23 lists 22; Cambodia removed on 3 Feb 2026.
    groups = country_groups()
    jan_2025 = groups.members("D:5", dt.date(2025, 1, 15))
    assert len(jan_2025) == 23
    assert "KH" in jan_2025 and "CY" not in jan_2025
    after = groups.members("D:5", dt.date(2026, 2, 3))
    assert len(after) == 22
    assert after == set(CASES["d5_2026"])
    assert jan_2025 - after == {"KH"}
    assert len(groups.members("D:5", dt.date(2026, 7, 23))) == 22


def test_d5_before_nicaragua_joined():
    # Nicaragua added to D:5 on 2024-03-15 (classification.md §3.1): 22 the day before, 23 that day.
    groups = country_groups()
    assert len(groups.members("D:5", dt.date(2024, 3, 14))) == 22
    assert len(groups.members("D:5", dt.date(2024, 3, 15))) == 23


def test_group_history_is_cited():
    history = country_groups().history("NI")
    assert {(c.effective, c.group, c.added) for c in history} == {
        (dt.date(2024, 3, 15), "B", False),
        (dt.date(2024, 3, 15), "D:1", True),
        (dt.date(2024, 3, 15), "D:5", True),
    }
    assert all("2024-05696" in c.citation for c in history)


def test_hong_kong_is_china_from_2020_12_23():
    # classification.md §3.1: HK treated as the PRC since 23 Dec 2020 (85 FR 83788).
    assert ear_destination("HK", dt.date(2020, 12, 22)).ear.iso2 == "HK"
    on = ear_destination("Hong Kong", dt.date(2020, 12, 23))
    assert on.ear.iso2 == "CN"
    assert on.country.iso2 == "HK"
    assert "85 FR 83788" in on.treated_as_reference["fr"]


def test_liechtenstein_is_treated_as_switzerland():
    # README.md decision 5; its own row has no groups.
    dest = ear_destination("LI", TABLE_DATE)
    assert dest.ear.iso2 == "CH"
    assert country_groups().groups_of("LI", TABLE_DATE) == []


def test_macau_is_its_own_destination():
    # README.md: Macau (MO) is its own destination and is not in D:5.
    assert ear_destination("Macau", TABLE_DATE).ear.iso2 == "MO"
    assert "MO" not in country_groups().members("D:5", TABLE_DATE)


def test_oct_2023_destination_set():
    # classification.md §3.1: (D:1 u D:4 u D:5) \ (A:5 u A:6) u {Macau} = 45 countries plus MO (Jan 2025).
    g = country_groups()

    def m(group: str) -> frozenset[str]:
        return g.members(group, TABLE_DATE)

    derived = ((m("D:1") | m("D:4") | m("D:5")) - (m("A:5") | m("A:6"))) | {"MO"}
    expected = set(CASES["oct2023_destinations"]) | set(CASES["oct2023_plus"])
    assert len(CASES["oct2023_destinations"]) == 45
    assert derived == expected
    # Israel (D:4 and A:6), Cyprus (A:6) and India (A:5) are excluded (classification.md §3.1).
    assert not {"IL", "CY", "IN"} & derived


def test_oct_2023_destination_set_before_nicaragua():
    # classification.md §3.1: CSET's Oct 2023 list of 44 plus Macau; Nicaragua added in Mar 2024.
    g = country_groups()
    day = dt.date(2024, 3, 14)

    def m(group: str) -> frozenset[str]:
        return g.members(group, day)

    derived = ((m("D:1") | m("D:4") | m("D:5")) - (m("A:5") | m("A:6"))) | {"MO"}
    assert len(derived - {"MO"}) == 44
    assert "NI" not in derived


# --- Tiers ---------------------------------------------------------------------------------------


def test_tier1_has_19_destinations_including_the_us():
    # ai-diffusion-rule.md §2.1: the US and the 18 countries of supp. no. 5(a) to part 740.
    members = tier_members(ctx_on("2025-06-01"))
    assert {c.iso2 for c in members[1]} == set(CASES["tier1"])
    assert len(members[1]) == 19


def test_tier3_is_d5_plus_macau_plus_hong_kong():
    # ai-diffusion-rule.md §2.2; README.md (Tier 3 = D:5 plus Macau, and Hong Kong as part of China).
    ctx = ctx_on("2025-06-01")
    tier3 = {c.iso2 for c in tier_members(ctx)[3]}
    d5 = country_groups().members("D:5", ctx.as_of)
    assert len(d5) == 23
    assert tier3 == d5 | {"MO", "HK"}
    assert len(tier3) == 25


def test_tier2_is_everyone_else():
    # ai-diffusion-rule.md §2.3: Tier 2 is the residual (e.g. Israel, Singapore, India, UAE, Switzerland).
    members = tier_members(ctx_on("2025-06-01"))
    assert len(members[1]) + len(members[2]) + len(members[3]) == 250
    tier2 = {c.iso2 for c in members[2]}
    assert {"IL", "SG", "IN", "AE", "SA", "PL", "PT", "CH", "AT", "MX", "BR", "MY"} <= tier2


@pytest.mark.parametrize(
    ("query", "tier"),
    [
        ("US", 1),
        ("Germany", 1),
        ("Taiwan", 1),
        ("Israel", 2),
        ("Cyprus", 2),
        ("China", 3),
        ("Hong Kong", 3),
        ("Macau", 3),
        ("Cambodia", 3),
        ("Nicaragua", 3),
        ("Liechtenstein", 2),
    ],
)
def test_tier_of(query, tier):
    # ai-diffusion-rule.md §2; README.md decision 1 (Cyprus not in D:5: Tier 2).
    assert tier_of(query, ctx_on("2025-06-01")).tier == tier


def test_cambodia_leaves_tier_3_with_d5():
    # ai-diffusion-rule.md §1.2: "On a dated D:5 reading Cambodia leaves Tier 3" (3 Feb 2026).
    assert tier_of("KH", ctx_on("2026-02-02")).tier == 3
    assert tier_of("KH", ctx_on("2026-02-03")).tier == 2


def test_tier_answer_is_explained():
    answer = tier_of("HK", ctx_on("2025-06-01"))
    assert answer.tier == 3
    assert "China" in answer.reason
    assert "D:5" in answer.citation


# --- Bundled data files are the reference files -------------------------------------------------------


@needs_reference
@pytest.mark.parametrize("name", ["country-groups.csv", "country-group-changes.csv"])
def test_bundled_country_files_are_the_reference_files(name):
    assert filecmp.cmp(BUNDLED / name, REFERENCE / name, shallow=False)
