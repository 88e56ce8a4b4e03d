"""The chip catalogue: its rows, the computed TPP and buckets, flagged disagreements, fuzzy lookup."""

from __future__ import annotations

import csv
import filecmp
from pathlib import Path

import pytest

from helpers import REFERENCE, load_cases, needs_reference, num, params
from tierline.catalog import catalog, classify_chip, find_chip
from tierline.errors import TierlineError

CASES = load_cases("catalog.yaml")
BUNDLED_CSV = Path(__file__).resolve().parents[1] / "src" / "tierline" / "data" / "chips" / "chips.csv"


def test_catalogue_has_61_chips():
    assert len(catalog()) == CASES["count"] == 61


@needs_reference
def test_catalogue_rows_are_the_reference_rows():
    with (REFERENCE / "chips.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 61
    assert sorted((c.vendor, c.model, c.variant) for c in catalog().values()) == sorted(
        (r["vendor"], r["model"], r["variant"]) for r in rows
    )


@needs_reference
def test_bundled_chips_csv_is_the_reference_file():
    assert filecmp.cmp(BUNDLED_CSV, REFERENCE / "chips.csv", shallow=False)


def test_every_chip_with_rates_classifies(ctx):
    classified = 0
    for chip in catalog().values():
        if not chip.rates:
            continue
        result, flags = classify_chip(chip, ctx)
        assert result.status in ("controlled", "not_controlled", "needs_review"), chip.id
        assert result.tpp > 0, chip.id
        assert isinstance(flags, list)
        classified += 1
    # chips-notes.md §1: four rows have no dense figures (MI308X, Gaudi 3 HL-328, MLU590, WSE-3).
    assert classified == 61 - 4


def test_chips_without_rates_are_refused_with_a_reason(ctx):
    no_rates = [c for c in catalog().values() if not c.rates]
    assert sorted(c.model for c in no_rates) == sorted(
        ["Instinct MI308X", "Gaudi 3 HL-328", "MLU590 (Siyuan 590)", "WSE-3"]
    )
    for chip in no_rates:
        with pytest.raises(TierlineError) as err:
            classify_chip(chip, ctx)
        assert err.value.field == "chip"
        assert "no published dense rates" in str(err.value)


@pytest.mark.parametrize("case", params(CASES["chips"]))
def test_computed_tpp_and_bucket(case, ctx):
    chip = find_chip(case["query"]).chip
    result, _ = classify_chip(chip, ctx)
    assert result.tpp == num(case["tpp"]), case["source"]
    assert result.paragraph == case["paragraph"], case["source"]
    assert result.status == case["status"], case["source"]


@pytest.mark.parametrize("case", params(CASES["disagreements"]))
def test_tpp_disagreement_is_flagged(case, ctx):
    chip = find_chip(case["query"]).chip
    assert chip.tpp_reported == case["reported"]
    result, flags = classify_chip(chip, ctx)
    assert result.tpp == num(case["computed"]), case["source"]
    [flag] = [f for f in flags if "TPP" in f]
    assert f"{float(num(case['computed'])):,.0f}" in flag
    assert f"{case['reported']:,}" in flag


@pytest.mark.parametrize("case", params(CASES["agreements"]))
def test_no_disagreement_when_sources_agree(case, ctx):
    chip = find_chip(case["query"]).chip
    _, flags = classify_chip(chip, ctx)
    assert flags == [], case["source"]


def test_h20_reported_not_3a090_agrees(ctx):
    # classification.md §5: H20 is not 3A090 by arithmetic; chips.csv reports "not 3A090 ...".
    chip = find_chip("nvidia-h20-hgx-sxm-96gb").chip
    assert chip.eccn_reported.lower().startswith("not 3a090")
    result, flags = classify_chip(chip, ctx)
    assert result.controlled is False
    assert flags == []


def test_consumer_parts_are_marked_non_datacenter():
    # classification.md §2.6 (RTX 4090 / 4090D consumer); chips-notes.md §1 (M4 Max consumer).
    by_model = {c.model: c for c in catalog().values()}
    for model in ["GeForce RTX 4090", "GeForce RTX 4090 D", "M4 Max"]:
        assert by_model[model].datacenter is False, model
    for model in ["H100", "H20", "A100", "Instinct MI300X"]:
        assert by_model[model].datacenter is True, model


def test_rtx_4090_is_a_and_nac_aca_eligible(ctx):
    # classification.md §5: RTX 4090, non-DC, TPP 660.6 x 8 >= 4800 -> 3A090.a, NAC/ACA-eligible.
    result, _ = classify_chip(find_chip("rtx 4090").chip, ctx)
    assert result.eccn == "3A090.a"
    assert result.nac_aca_eligible is True


def test_system_of_catalogue_chips(ctx):
    chip = find_chip("nvidia-h100-sxm5-80gb").chip
    result, _ = classify_chip(chip, ctx, system=True, ic_count=8)
    assert result.eccn == "4A090.a"
    # chips.csv lists the H100 SXM FP8 rate as 1,978.9 (chips-notes.md §1: 1,978.9 x 8 = 15,831)
    assert result.total_tpp == num("1978.9 x 8 x 8")


def test_sources_are_kept():
    for chip in catalog().values():
        assert chip.sources, chip.id
        assert all(s.startswith("http") or " " in s for s in chip.sources)


# --- find_chip -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "model"),
    [
        pytest.param("h100", "H100", id="lower-case model"),
        pytest.param("H100", "H100", id="model"),
        pytest.param("rtx 4090", "GeForce RTX 4090", id="rtx 4090 is not the 4090 D"),
        pytest.param("RTX 4090 D", "GeForce RTX 4090 D", id="rtx 4090 d"),
        pytest.param("trainium2", "Trainium2", id="trainium2"),
        pytest.param("AMD Instinct MI300X", "Instinct MI300X", id="vendor and model"),
        pytest.param("nvidia-a100-sxm4-80gb", "A100", id="id"),
    ],
)
def test_find_chip(query, model):
    assert find_chip(query).chip.model == model


def test_find_chip_h100_lists_other_variants():
    match = find_chip("h100")
    assert match.chip.model == "H100"
    assert match.note and "PCIe" in match.note


def test_find_chip_fuzzy_typo():
    match = find_chip("Trainum2")
    assert match.chip.model == "Trainium2"
    assert match.note and "fuzzy" in match.note


@pytest.mark.parametrize("query", ["Nvidia Z9000", "blorp", ""])
def test_unknown_chip_is_an_error_with_suggestions(query):
    with pytest.raises(TierlineError) as err:
        find_chip(query)
    assert err.value.field == "chip"
    assert "unknown chip" in str(err.value)
    if query:
        assert "closest:" in str(err.value)
