"""3A090.a/.b/.c, 4A090 and .z classification against the reference oracles and boundary tables."""

from __future__ import annotations

from fractions import Fraction

import pytest

from helpers import load_cases, num, params
from tierline.classification import Die, ItemSpec, StandaloneHBM, classify, paragraph_3a090
from tierline.errors import TierlineError
from tierline.policy import Context
from tierline.tpp import Rate, parse_rate, total_processing_performance


def spec_of(case: dict, **extra) -> ItemSpec:
    rates = tuple(Rate(p, v) for p, v in case["rates"].items())
    dies = tuple(Die(a) for a in case.get("die_areas") or ())
    return ItemSpec(rates=rates, dies=dies, datacenter=case["datacenter"], **extra)


def warnings_about(result, word: str) -> list[str]:
    return [w for w in result.warnings if word in w]


# --- Worked examples (classification.md §5, chips-notes.md §1) ----------------------------------


@pytest.mark.parametrize("case", params(load_cases("oracles.yaml")))
def test_worked_example(case, ctx):
    r = classify(spec_of(case), ctx)
    tpp = num(case["tpp"])
    assert r.tpp == tpp, case["source"]
    areas = case["die_areas"]
    if areas:
        assert r.performance_density == tpp / sum(num(a) for a in areas)
        tolerance = case.get("pd_tolerance", 0.005)
        assert abs(float(r.performance_density) - case["pd_about"]) <= tolerance, case["source"]
    else:
        assert r.performance_density is None
    assert r.paragraph == case["paragraph"], case["source"]
    assert r.eccn == case["eccn"], case["source"]
    assert r.controlled is case["controlled"], case["source"]
    assert r.nac_aca_eligible is case["nac_aca_eligible"], case["source"]


# --- Boundary table on exact (TPP, PD) pairs -------------------------------------------------------


@pytest.mark.parametrize("case", params(load_cases("classification_boundaries.yaml")))
def test_paragraph_boundary(case, lines):
    pd = None if case["pd"] is None else num(case["pd"])
    got = paragraph_3a090(num(case["tpp"]), pd, case["datacenter"], lines)
    assert got == case["expected"], case["source"]


@pytest.mark.parametrize("case", params(load_cases("classify_boundaries.yaml")))
def test_classify_boundary_from_rates(case, ctx):
    r = classify(spec_of(case), ctx)
    assert r.tpp == num(case["tpp"])
    assert r.paragraph == case["paragraph"], case["source"]
    assert r.status == case["status"], case["source"]
    expected_controlled = {"controlled": True, "not_controlled": False, "needs_review": None}[case["status"]]
    assert r.controlled is expected_controlled


# --- TPP: dense rates, the maximum over precisions, sparsity --------------------------------------


def test_tpp_is_rate_times_bit_length(ctx):
    # ai-diffusion-rule.md §10.3: H100 SXM = 1,979 x 8 = 15,832
    r = classify(ItemSpec(rates=(Rate("fp8", 1979),), dies=(Die(814),)), ctx)
    assert r.tpp == 1979 * 8
    assert r.tpp_precision == "fp8"
    assert r.h100_equivalents == 1


def test_tpp_is_the_maximum_over_precisions(ctx):
    # chips-notes.md §1: MI210 FP64 45.3 x 64 = 2,899.2 beats FP16 181 x 16 = 2,896
    result = total_processing_performance([Rate("fp16", 181), Rate("fp64", 45.3)], ctx)
    assert result.tpp == Fraction("45.3") * 64 == Fraction("2899.2")
    assert result.precision == "fp64"
    assert result.per_precision == {"fp16": 181 * 16, "fp64": Fraction("2899.2")}


def test_sparse_rates_are_halved_with_a_warning(ctx):
    # classification.md §1.1 / Technical Note 3: dense values; H100 SXM FP8 3,958 sparse = 1,979 dense
    r = classify(ItemSpec(rates=(Rate("fp8", 3958, sparse=True),), dies=(Die(814),)), ctx)
    assert r.tpp == 3958 // 2 * 8 == 15_832
    assert r.paragraph == "3A090.a.1"
    [warning] = warnings_about(r, "sparse")
    assert "halved" in warning
    assert "fp8" in warning


def test_dense_and_sparse_rates_mixed(ctx):
    # A dense FP16 989 and a sparse FP8 3,958 (1,979 dense): FP8 1,979 x 8 = 15,832 > FP16 989 x 16 = 15,824.
    r = classify(ItemSpec(rates=(Rate("fp16", 989), Rate("fp8", 3958, sparse=True))), ctx)
    assert r.tpp == 15_832
    assert r.tpp_precision == "fp8"


def test_no_sparse_warning_for_dense_rates(ctx):
    r = classify(ItemSpec(rates=(Rate("fp8", 1979),), dies=(Die(814),)), ctx)
    assert not warnings_about(r, "sparse")


def test_parse_rate():
    assert parse_rate("fp8=1979") == Rate("fp8", 1979.0)
    assert parse_rate(" FP8 = 1979 ", sparse=True) == Rate("fp8", 1979.0, sparse=True)
    with pytest.raises(TierlineError) as err:
        parse_rate("fp8")
    assert err.value.field == "rate"
    with pytest.raises(TierlineError) as err:
        parse_rate("fp8=lots")
    assert err.value.field == "rate.fp8"


@pytest.mark.parametrize(
    ("rate", "field"),
    [
        pytest.param(Rate("fp8", -1), "rate.fp8", id="negative"),
        pytest.param(Rate("fp7", 100), "rate.fp7", id="unknown precision"),
        pytest.param(Rate("fp8", float("nan")), "rate.fp8", id="nan"),
        pytest.param(Rate("fp8", float("inf")), "rate.fp8", id="infinite"),
    ],
)
def test_bad_rate_is_named(rate, field, ctx):
    with pytest.raises(TierlineError) as err:
        classify(ItemSpec(rates=(rate,)), ctx)
    assert err.value.field == field


def test_bad_inputs_are_named(ctx):
    with pytest.raises(TierlineError) as err:
        classify(ItemSpec(rates=()), ctx)
    assert err.value.field == "rate"
    with pytest.raises(TierlineError) as err:
        classify(ItemSpec(rates=(Rate("fp8", 1979),), dies=(Die(0),)), ctx)
    assert err.value.field == "die_area[0]"
    with pytest.raises(TierlineError) as err:
        classify(ItemSpec(rates=(Rate("fp8", 1979),), system=True, ic_count=0), ctx)
    assert err.value.field == "ic_count"


# --- Performance density: planar dies, no die area -------------------------------------------------


def test_planar_dies_are_excluded_from_the_area(ctx):
    # classification.md §1.2: only non-planar logic dies count; planar dies (e.g. 28 nm) are not counted.
    spec = ItemSpec(rates=(Rate("fp8", 250),), dies=(Die(625), Die(1000, planar=True)))
    r = classify(spec, ctx)
    assert r.applicable_die_area == 625
    assert r.performance_density == Fraction(250 * 8, 625) == Fraction("3.2")
    assert r.paragraph == "3A090.b.2"


def test_no_non_planar_area_needs_review(ctx):
    # classification.md §1.2 edge case: all logic dies planar -> PD undefined -> REVIEW.
    spec = ItemSpec(rates=(Rate("fp8", 300),), dies=(Die(500, planar=True),))
    r = classify(spec, ctx)
    assert r.tpp == 300 * 8
    assert r.performance_density is None
    assert r.status == "needs_review"
    assert r.controlled is None
    assert r.paragraph is None and r.eccn is None
    assert warnings_about(r, "needs review")
    assert r.as_dict()["controlled"] is None


@pytest.mark.parametrize("tpp_rate", [200, 300, 599])  # 1,600 / 2,400 / 4,792 at FP8: between 1600 and 4800
def test_no_die_area_between_1600_and_4800_needs_review(tpp_rate, ctx):
    r = classify(ItemSpec(rates=(Rate("fp8", tpp_rate),)), ctx)
    assert 1600 <= r.tpp < 4800
    assert r.status == "needs_review"
    assert r.controlled is None


def test_no_die_area_consumer_below_4800_is_not_controlled(ctx):
    # Note 2: PD is irrelevant for a non-datacenter item (classification.md §2.1).
    r = classify(ItemSpec(rates=(Rate("fp8", 300),), datacenter=False), ctx)
    assert r.status == "not_controlled"
    assert r.controlled is False


# --- NAC/ACA eligibility (classification.md §2.5) ----------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "area", "datacenter", "level", "eligible"),
    [
        pytest.param(1979, 814, True, "a", False, id="a datacenter: never eligible"),
        pytest.param(1979, 814, False, "a", True, id="a non-datacenter: eligible"),
        pytest.param(362, 608.5, True, "b", True, id="b datacenter: eligible"),
    ],
)
def test_nac_aca_eligibility(rate, area, datacenter, level, eligible, ctx):
    r = classify(ItemSpec(rates=(Rate("fp8", rate),), dies=(Die(area),), datacenter=datacenter), ctx)
    assert r.level == level
    assert r.nac_aca_eligible is eligible


# --- 4A090 and .z ----------------------------------------------------------------------------------


def test_system_is_4a090(ctx):
    # classification.md §2.3: 4A090.a contains ICs meeting 3A090.a. An HGX-style board of 8 H100s.
    spec = ItemSpec(rates=(Rate("fp8", 1979),), dies=(Die(814),), system=True, ic_count=8)
    r = classify(spec, ctx)
    assert r.paragraph == "4A090.a"
    assert r.eccn == "4A090.a"
    assert r.tpp == 1979 * 8
    assert r.total_tpp == 1979 * 8 * 8
    assert r.h100_equivalents == 8


def test_lpp_cap_in_h100_systems(ctx):
    # ai-diffusion-rule.md §5.3: 26,900,000 TPP ~ 1,699 H100-equivalents ("~1,700 GPUs").
    # 1,699 H100s = 1,699 x 15,832 = 26,898,568 TPP (fits); 1,700 = 26,914,400 TPP (does not).
    cap = ctx.value("lpp.annual_tpp_per_consignee")
    fits = classify(ItemSpec(rates=(Rate("fp8", 1979),), dies=(Die(814),), system=True, ic_count=1699), ctx)
    over = classify(ItemSpec(rates=(Rate("fp8", 1979),), dies=(Die(814),), system=True, ic_count=1700), ctx)
    assert fits.total_tpp == 1699 * 15_832 == 26_898_568 <= cap
    assert over.total_tpp == 1700 * 15_832 == 26_914_400 > cap
    assert fits.h100_equivalents == 1699


def test_system_with_b_level_ic_is_4a090_b(ctx):
    spec = ItemSpec(rates=(Rate("fp8", 362),), dies=(Die(608.5),), system=True, ic_count=4)
    r = classify(spec, ctx)
    assert r.eccn == "4A090.b"
    assert r.nac_aca_eligible is True


def test_system_of_note2_excluded_ics_is_not_4a090(ctx):
    # classification.md §2.3: "An item excluded from 3A090 by Note 2/3 cannot make a computer 4A090".
    spec = ItemSpec(rates=(Rate("fp8", 588.4),), dies=(Die(608.5),), datacenter=False, system=True, ic_count=8)
    r = classify(spec, ctx)
    assert r.eccn is None
    assert r.status == "not_controlled"


@pytest.mark.parametrize("base", ["5A992", "5a992"])
def test_z_routing_a_level(base, ctx):
    # classification.md §2.4: 5A992.z.1 = meets 3A090.a or 4A090.a
    r = classify(ItemSpec(rates=(Rate("fp8", 1979),), dies=(Die(814),), base_eccn=base), ctx)
    assert r.eccn == "5A992.z"
    assert r.paragraph == "5A992.z.1"
    assert r.level == "a"


def test_z_routing_b_level(ctx):
    # classification.md §2.4: 5A992.z.2 = meets 3A090.b or 4A090.b (L40: b.1)
    r = classify(ItemSpec(rates=(Rate("fp8", 362),), dies=(Die(608.5),), base_eccn="5A992"), ctx)
    assert r.eccn == "5A992.z"
    assert r.paragraph == "5A992.z.2"
    assert r.nac_aca_eligible is True


def test_z_routing_needs_a_z_family(ctx):
    # 3A991 has no .z paragraph (classification.md §2.4 lists nine ECCNs): stays 3A090.
    r = classify(ItemSpec(rates=(Rate("fp8", 1979),), dies=(Die(814),), base_eccn="3A991"), ctx)
    assert r.eccn == "3A090.a"


def test_z_routing_not_for_uncontrolled_items(ctx):
    # H20 is not 3A090, so it cannot be 5A992.z (classification.md §2.4: "also meets or exceeds").
    r = classify(ItemSpec(rates=(Rate("fp8", 296),), dies=(Die(814),), base_eccn="5A992"), ctx)
    assert r.eccn is None
    assert r.status == "not_controlled"


def test_z_routing_every_family_a_level(ctx):
    # Every one of the nine .z families (classification.md §2.4) gives <ECCN>.z at the same level.
    for base in ["3A001", "4A003", "4A004", "4A005", "5A002", "5A004", "5A992", "5D002", "5D992"]:
        r = classify(ItemSpec(rates=(Rate("fp8", 1979),), dies=(Die(814),), base_eccn=base), ctx)
        assert r.eccn == f"{base}.z", base
        assert r.level == "a"


# --- 3A090.c stand-alone HBM ------------------------------------------------------------------------


@pytest.mark.parametrize("case", params(load_cases("hbm_boundaries.yaml")))
def test_hbm(case):
    ctx = Context.make(vintage=case.get("vintage", "ai-diffusion"), as_of=case["as_of"])
    r = classify(ItemSpec(hbm=StandaloneHBM(case["bandwidth"], case["area"])), ctx)
    assert r.memory_bandwidth_density == num(case["mbd"])
    assert r.controlled is case["controlled"], case["source"]
    assert r.eccn == ("3A090.c" if case["controlled"] else None)
    exception = [s for s in r.trace if s.rule == "License Exception HBM"]
    if case["hbm_exception"] is None:
        assert not exception
    else:
        assert [s.result for s in exception] == [case["hbm_exception"]], case["source"]


def test_hbm_bad_inputs_are_named(ctx):
    with pytest.raises(TierlineError) as err:
        classify(ItemSpec(hbm=StandaloneHBM(0, 100)), ctx)
    assert err.value.field == "hbm_bandwidth"
    with pytest.raises(TierlineError) as err:
        classify(ItemSpec(hbm=StandaloneHBM(100, -1)), ctx)
    assert err.value.field == "hbm_area"


# --- Near-threshold warnings (classification.md §1.1 rounding, §6 item 7: within about 1 %) --------


@pytest.mark.parametrize(
    ("tpp_fp8", "warns"),
    [
        pytest.param(Fraction(4790, 8), True, id="TPP 4790: 10 below 4800 (0.2 %)"),
        pytest.param(Fraction(4810, 8), True, id="TPP 4810: 10 above 4800 (0.2 %)"),
        pytest.param(Fraction(4800, 8), True, id="TPP 4800: on the line"),
        pytest.param(Fraction(4700, 8), False, id="TPP 4700: 100 below 4800 (2.1 %)"),
        pytest.param(Fraction(4900, 8), False, id="TPP 4900: 100 above 4800 (2.1 %)"),
        pytest.param(Fraction(2390, 8), True, id="TPP 2390: 10 below 2400 (0.4 %)"),
        pytest.param(Fraction(1590, 8), True, id="TPP 1590: 10 below 1600 (0.6 %)"),
        pytest.param(Fraction(1500, 8), False, id="TPP 1500: 100 below 1600 (6 %)"),
    ],
)
def test_near_tpp_line_warning(tpp_fp8, warns, ctx):
    r = classify(ItemSpec(rates=(Rate("fp8", tpp_fp8),), dies=(Die(1000),)), ctx)
    assert bool(warnings_about(r, "within 1% of")) is warns


def test_near_tpp_line_warning_for_consumer_parts(ctx):
    # RTX 4090D, TPP 4,707.2: 92.8 below 4800 is 1.9 % -> no warning; 4,790 would warn.
    assert not warnings_about(classify(ItemSpec(rates=(Rate("fp8", 588.4),), datacenter=False), ctx), "within")
    r = classify(ItemSpec(rates=(Rate("fp8", Fraction(4790, 8)),), datacenter=False), ctx)
    assert warnings_about(r, "within")


@pytest.mark.parametrize(
    ("area", "warns"),
    [
        pytest.param(Fraction(2000, 1) / Fraction("5.9"), True, id="PD 5.9: 0.3 % below 5.92"),
        pytest.param(Fraction(2000, 1) / Fraction("3.19"), True, id="PD 3.19: 0.3 % below 3.2"),
        pytest.param(Fraction(2000, 1) / Fraction("4.5"), False, id="PD 4.5: far from every line"),
    ],
)
def test_near_density_line_warning(area, warns, ctx):
    # TPP 2000 (FP8 250 x 8); area chosen so PD = 2000 / area exactly.
    r = classify(ItemSpec(rates=(Rate("fp8", 250),), dies=(Die(area),)), ctx)
    assert bool(warnings_about(r, "performance density")) is warns


def test_a30_density_warning(ctx):
    # classification.md §5: the A30 PD 3.196 is "just under 3.2" -> within 1 % of the b.2 line.
    r = classify(ItemSpec(rates=(Rate("int8", 330),), dies=(Die(826),)), ctx)
    assert r.paragraph == "3A090.b.1"
    assert warnings_about(r, "3.2")


# --- TF32 bit length (classification.md §1.1; README.md decision 7) -----------------------------------


def test_tf32_conflict_is_flagged_for_trainium_like_rates(ctx):
    # chips-notes.md §3 item 16: TF32 190 x 19 = 3,610 vs 190 x 32 = 6,080 (>= 4800 -> a.1)
    r = classify(ItemSpec(rates=(Rate("tf32", 190), Rate("bf16", 190))), ctx)
    assert r.tpp == 190 * 19 == 3610
    assert r.tpp_precision == "tf32"
    [warning] = warnings_about(r, "TF32")
    assert f"{190 * 32:,}" in warning
    assert "3A090.a.1" in warning


def test_tf32_not_flagged_when_it_changes_nothing(ctx):
    # NVIDIA TF32 runs at half the FP16 rate: FP8 wins either way (chips-notes.md §3 item 16).
    rates = (Rate("tf32", 494.7), Rate("fp16", 989.4), Rate("fp8", 1979))
    r = classify(ItemSpec(rates=rates, dies=(Die(814),)), ctx)
    assert r.tpp == 1979 * 8
    assert not warnings_about(r, "TF32")


# --- The explained answer ---------------------------------------------------------------------------


def test_answer_carries_vintage_as_of_and_trace(ctx):
    r = classify(ItemSpec(rates=(Rate("fp8", 1979),), dies=(Die(814),)), ctx)
    d = r.as_dict()
    assert d["vintage"] == "ai-diffusion"
    assert d["as_of"] == "2025-06-01"
    assert d["tpp"] == 15832.0
    assert d["controlled"] is True
    rules = [s["rule"] for s in d["trace"]]
    assert rules[0] == "Total processing performance"
    assert "3A090.a.1" in rules
    step = next(s for s in d["trace"] if s["rule"] == "3A090.a.1")
    assert step["result"] is True
    [param] = step["parameters"]
    assert param["parameter"] == "eccn_3a090.a1.tpp_min"
    assert param["value"] == 4800
    assert param["confidence"] == "primary"
    assert "3A090.a.1" in param["reference"]["cfr"]


def test_classification_before_3a090_existed_is_an_error():
    # The Oct 2023 lines start on 17 Nov 2023 (classification.md §3): nothing to apply on 2023-11-16.
    ctx = Context.make(vintage="ear-2023", as_of="2023-11-16")
    with pytest.raises(TierlineError) as err:
        classify(ItemSpec(rates=(Rate("fp8", 1979),), dies=(Die(814),)), ctx)
    assert err.value.field.startswith("eccn_3a090.")
