"""Threshold headroom of chip designs (tierline.design) against hand arithmetic.

Every expected value is written out from the regulation (classification.md §2.1-§2.2: a.1 TPP >= 4800;
a.2 TPP >= 1600 and PD >= 5.92; b.1 2400 <= TPP < 4800 and 1.6 <= PD < 5.92; b.2 TPP >= 1600 and
3.2 <= PD < 5.92; Note 2: non-datacenter parts only from TPP 4800; 3A090.c: HBM bandwidth density
> 2 GB/s/mm², strictly) and ai-diffusion-rule.md §1.2 (China/Macau case-by-case from 15 Jan 2026
for TPP < 21,000 and DRAM bandwidth < 6,500 GB/s), never from running tierline. TPP = dense rate x
bit length; PD = TPP / non-planar die area. A flipping change is rounded onto a grid in the flipping
direction: rate factors to 0.0001, die areas to 0.1 mm², bandwidths to 0.1 GB/s.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest

from tierline.design import build_design, design_answer, parse_mac
from tierline.errors import TierlineError
from tierline.policy import Context
from tierline.tpp import Rate

DAY = "2026-06-01"  # after the 15 Jan 2026 China rule and the 2 Dec 2024 HBM rule


@pytest.fixture(scope="module")
def ctx26() -> Context:
    return Context.make("ai-diffusion", DAY)


def answer(ctx: Context, rates: dict[str, float], areas: list[float] = (), line: str | None = None, **kw: Any) -> dict:
    design = build_design(ctx, rates=[Rate(p, v) for p, v in rates.items()], die_areas=list(areas), **kw)
    return design_answer(design, ctx, line)


def line_of(data: dict, key: str) -> dict:
    return next(row for row in data["lines"] if row["line"] == key)


def up(x: Fraction, grid: Fraction = Fraction(1, 10_000)) -> Fraction:
    """x rounded up onto the grid (the smallest practical factor at or above x)."""
    return math.ceil(x / grid) * grid


def down(x: Fraction, grid: Fraction = Fraction(1, 10_000)) -> Fraction:
    return math.floor(x / grid) * grid


def close(a: float, b: Fraction | float) -> bool:
    return math.isclose(a, float(b), rel_tol=1e-12, abs_tol=1e-12)


# ---- 3A090.a.1 ---------------------------------------------------------------------------------------
def test_just_below_a1_needs_a_fifth_of_a_percent(ctx26):
    # TPP 598.75 x 8 = 4,790; area 4790 / 6 mm² gives PD 6.0 (>= 5.92), so today 3A090.a.2.
    area = 4790 / 6
    data = answer(ctx26, {"fp8": 598.75}, [area])
    assert data["tpp"] == 4790
    assert math.isclose(data["performance_density"], 6.0, rel_tol=1e-12)
    assert data["classification"]["paragraph"] == "3A090.a.2"
    a1 = line_of(data, "a1.tpp_min")
    assert a1["value"] == 4790 and a1["threshold"] == 4800
    assert a1["difference"] == 4790 - 4800
    assert close(a1["ratio"], Fraction(4790, 4800))
    assert a1["side"] == "below" and a1["meets"] is False and a1["inclusive"] is True
    assert a1["confidence"] == "primary" and "3A090.a.1" in a1["parameter"]["reference"]["cfr"]
    # the smallest change: 4800 / 4790 = 1.002087... -> 1.0021 (+0.21%), reaching a.1
    change = data["smallest_change"]
    assert change["lever"] == "rate_scale"
    assert Fraction(change["boundary_exact"]) == Fraction(4800, 4790)
    assert change["boundary_reached"] is True  # a.1 is inclusive: exactly 4800 is a.1
    assert close(change["value"], up(Fraction(4800, 4790)))
    assert close(change["value"], Fraction(10021, 10000))
    assert "+0.21%" in change["change"]
    assert change["before"] == "3A090.a.2" and change["after"] == "3A090.a.1" and change["flips"]
    assert 4790 * Fraction(10021, 10000) >= 4800  # the practical factor really reaches the line
    # staying a-level is no change of control level; the smallest one leaves the a.2 density line:
    # rates x (5.92 / 6) just below -> b.1; the grid value below 0.98666... is 0.9866 (-1.34%)
    level = data["smallest_level_change"]
    assert level["after"] == "3A090.b.1"
    assert close(level["value"], down(Fraction(592, 600)))


def test_largest_rate_strictly_below_a1(ctx26):
    data = answer(ctx26, {"fp8": 598.75}, [800])
    (entry,) = data["ceilings"]["entries"]
    assert entry["strict"] is True
    rates = {r["precision"]: r for r in entry["rates"]}
    assert rates["fp8"]["exact"] == str(Fraction(4800, 8)) == "600"
    assert rates["fp16"]["exact"] == str(Fraction(4800, 16)) == "300"
    assert rates["fp4"]["rate_below"] == 4800 / 4
    assert rates["fp64"]["rate_below"] == 4800 / 64
    assert rates["fp8"]["design_rate"] == 598.75 and rates["fp8"]["margin"] == 600 - 598.75


def test_largest_rate_below_a2_density_uses_the_area(ctx26):
    # a.2 density 5.92 x 500 mm² = 2,960 TPP -> fp8 below 2960 / 8 = 370
    data = answer(ctx26, {"fp8": 300}, [500], line="a2")
    entries = {e["line"]: e for e in data["ceilings"]["entries"]}
    assert {r["precision"]: r["exact"] for r in entries["a2.tpp_min"]["rates"]}["fp8"] == "200"  # 1600 / 8
    pd_rates = {r["precision"]: Fraction(r["exact"]) for r in entries["a2.pd_min"]["rates"]}
    assert pd_rates["fp8"] == Fraction(592, 100) * 500 / 8 == 370


# ---- 3A090.a.2 ---------------------------------------------------------------------------------------
def test_just_below_a2_tpp(ctx26):
    # 99.9375 x 16 = 1,599 (< 1600); PD 1599 / 200 = 7.995 (>= 5.92): outside 3A090 only by TPP
    data = answer(ctx26, {"fp16": 99.9375}, [200])
    assert data["tpp"] == 1599
    assert data["classification"]["status"] == "not_controlled"
    row = line_of(data, "a2.tpp_min")
    assert (row["value"], row["threshold"], row["difference"], row["side"], row["meets"]) == (
        1599,
        1600,
        -1,
        "below",
        False,
    )
    change = data["smallest_change"]
    assert change["lever"] == "rate_scale" and change["after"] == "3A090.a.2"
    assert close(change["value"], up(Fraction(1600, 1599)))  # 1.000625... -> 1.0007
    assert "+0.07%" in change["change"]


def test_just_below_a2_density(ctx26):
    # 375 x 8 = 3,000; 3000 / 508 = 5.9055 (< 5.92) -> b.1 (2400 <= 3000 < 4800, 1.6 <= PD < 5.92)
    data = answer(ctx26, {"fp8": 375}, [508])
    pd = Fraction(3000, 508)
    assert data["classification"]["paragraph"] == "3A090.b.1"
    row = line_of(data, "a2.pd_min")
    assert close(row["value"], pd) and close(row["difference"], pd - Fraction(592, 100))
    assert row["side"] == "below" and row["meets"] is False
    levers = {c["lever"]: c for c in data["levers"] if "a2.pd_min" in c["lines"]}
    # rates: 5.92 x 508 / 3000 = 1.00245... -> 1.0025; area: 3000 / 5.92 = 506.756... -> 506.7 mm²
    assert close(levers["rate_scale"]["value"], up(Fraction(592, 100) * 508 / 3000))
    assert close(levers["die_area"]["value"], down(3000 / Fraction(592, 100), Fraction(1, 10)))
    assert levers["die_area"]["value"] == 506.7 and levers["die_area"]["after"] == "3A090.a.2"
    # +0.25% of rate is smaller than -0.256% of area (506.7 / 508 - 1)
    assert abs(Fraction(1, 400)) < abs(Fraction(5067, 5080) - 1)
    assert data["smallest_change"]["lever"] == "rate_scale"
    assert data["smallest_change"]["after"] == "3A090.a.2"


# ---- 3A090.b.1 and b.2 -------------------------------------------------------------------------------
def test_just_below_b1_tpp_h20_like(ctx26):
    # 149.9 x 16 = 2,398.4 (< 2400); PD 2.3984 (< 3.2, so not b.2): outside 3A090
    data = answer(ctx26, {"fp16": 149.9}, [1000])
    assert data["classification"]["status"] == "not_controlled"
    row = line_of(data, "b1.tpp_min")
    assert close(row["difference"], Fraction(23984, 10) - 2400) and row["side"] == "below"
    change = data["smallest_change"]
    assert change["after"] == "3A090.b.1"
    assert close(change["value"], up(Fraction(2400) / Fraction(23984, 10)))  # 1.000667 -> 1.0007


def test_h20_needs_a_rate_increase_of_1_36_percent(ctx26):
    # chips-notes.md §1: H20 148 x 16 = 296 x 8 = 2,368, PD 2368 / 814 = 2.91 -> not 3A090;
    # to reach b.1: 2400 / 2368 = 1.01351... -> 1.0136; to reach b.2 by area: 2368 / 3.2 = 740 mm² exactly
    data = answer(ctx26, {"fp16": 148, "fp8": 296}, [814], memory_bandwidth_gbs=4000)
    assert data["tpp"] == 2368
    change = data["smallest_change"]
    assert close(change["value"], up(Fraction(2400, 2368))) and change["after"] == "3A090.b.1"
    area = next(c for c in data["levers"] if c["lever"] == "die_area" and "b2.pd_min" in c["lines"])
    assert area["value"] == 2368 / 3.2 == 740 and area["boundary_reached"] is True
    assert area["after"] == "3A090.b.2"


def test_just_below_b2_density_prefers_the_die_area(ctx26):
    # 125 x 16 = 2,000; 2000 / 626 = 3.1949 (< 3.2), TPP < 2400 so not b.1: outside 3A090.
    # Area: 2000 / 3.2 = 625 mm² exactly (inclusive line: 625 gives PD 3.2, b.2) = -1/626 = -0.16%;
    # rates: 3.2 x 626 / 2000 = 1.0016 exactly = +0.16%; |-1/626| = 0.0015974 < 0.0016
    data = answer(ctx26, {"fp16": 125}, [626])
    assert data["classification"]["status"] == "not_controlled"
    row = line_of(data, "b2.pd_min")
    assert close(row["value"], Fraction(2000, 626)) and row["side"] == "below"
    change = data["smallest_change"]
    assert change["lever"] == "die_area" and change["value"] == 625 and change["after"] == "3A090.b.2"
    assert "shrink the non-planar die area to 625 mm²" in change["change"]
    rate = next(c for c in data["levers"] if c["lever"] == "rate_scale" and "b2.pd_min" in c["lines"])
    assert close(rate["value"], Fraction(32, 10) * 626 / 2000) and rate["after"] == "3A090.b.2"


# ---- Note 2 -----------------------------------------------------------------------------------------
def test_consumer_part_just_below_note2(ctx26):
    # not for datacenters, 4,790 TPP: outside 3A090 by Note 2 whatever the density (7.87 here)
    data = answer(ctx26, {"fp8": 598.75}, [608.5], datacenter=False)
    assert data["classification"]["status"] == "not_controlled"
    note2 = line_of(data, "note2.tpp_min")
    assert note2["applies"] is True and note2["difference"] == -10 and note2["side"] == "below"
    assert line_of(data, "a2.pd_min")["applies"] is False  # density plays no part (Note 2)
    change = data["smallest_change"]
    assert close(change["value"], up(Fraction(4800, 4790))) and change["after"] == "3A090.a.1"
    # no density lever flips a consumer part: classify() confirms nothing changes
    assert all(not c["flips"] for c in data["levers"] if c["lever"] == "die_area")


# ---- 3A090.c ---------------------------------------------------------------------------------------
def test_hbm_just_below_3a090c(ctx26):
    # 1599 GB/s over 800 mm² = 1.99875 GB/s/mm² (not > 2): the stacks are not 3A090.c
    data = answer(ctx26, {"fp8": 100}, [100], line="c", memory_bandwidth_gbs=1599, stack_area_mm2=800)
    row = line_of(data, "c.mbd_min")
    assert close(row["value"], Fraction(1599, 800)) and row["threshold"] == 2
    assert row["inclusive"] is False and row["side"] == "below" and row["meets"] is False
    assert data["by_vintage"][0]["hbm_3a090c_if_standalone"] == "not_controlled"
    (entry,) = data["ceilings"]["entries"]
    assert entry["max_bandwidth_gbs"] == 2 * 800 and entry["strict"] is False
    # the line is strict: 1600 GB/s (exactly 2) is still outside, so the next grid value 1600.1
    change = data["line_change"]
    assert change["lever"] == "memory_bandwidth" and change["value"] == 1600.1
    assert change["boundary_reached"] is False and change["after"] == "3A090.c"


def test_hbm_exactly_on_3a090c_is_outside(ctx26):
    data = answer(ctx26, {"fp8": 100}, [100], memory_bandwidth_gbs=1600, stack_area_mm2=800)
    row = line_of(data, "c.mbd_min")
    assert row["side"] == "on" and row["meets"] is False


# ---- China 2026 ------------------------------------------------------------------------------------
def test_just_below_china_tpp_ceiling(ctx26):
    # 2624.9 x 8 = 20,999.2 (< 21,000) and 4,000 GB/s (< 6,500): case-by-case; 3A090.a.1 anyway
    data = answer(ctx26, {"fp8": 2624.9}, [814], line="china-tpp", memory_bandwidth_gbs=4000)
    assert data["classification"]["paragraph"] == "3A090.a.1"
    row = line_of(data, "china.tpp_max")
    assert close(row["difference"], Fraction(209992, 10) - 21000) and row["side"] == "below"
    assert row["meets"] is True and row["inclusive"] is False and row["confidence"] == "secondary"
    by = {v["vintage"]: v for v in data["by_vintage"]}
    assert by["ai-diffusion"]["china_2026"]["review"] == "case_by_case"
    assert by["ear-2023"]["china_2026"]["in_force"] is False  # not a provision of ear-2023
    change = data["line_change"]
    assert close(change["value"], up(Fraction(21000) / Fraction(209992, 10)))  # 1.0000381 -> 1.0001
    assert change["after"] == "presumption of denial"
    assert {r["precision"]: r["exact"] for r in data["ceilings"]["entries"][0]["rates"]}["fp8"] == "2625"


def test_just_below_china_bandwidth_ceiling(ctx26):
    # H100-class 1979 x 8 = 15,832 (< 21,000) at 6,499.9 GB/s (< 6,500): case-by-case;
    # 6,500 exactly is no longer below, so raising to 6,500 GB/s (exactly) flips it
    data = answer(ctx26, {"fp8": 1979}, [814], line="china-bw", memory_bandwidth_gbs=6499.9)
    row = line_of(data, "china.dram_bandwidth_max")
    assert close(row["difference"], Fraction(64999, 10) - 6500) and row["side"] == "below"
    change = data["line_change"]
    assert change["value"] == 6500 and change["boundary_reached"] is True
    assert change["before"] == "case by case" and change["after"] == "presumption of denial"
    (entry,) = data["ceilings"]["entries"]
    assert entry["max_bandwidth_gbs"] == 6500 and entry["strict"] is True


def test_china_lines_not_in_force_before_2026():
    ctx = Context.make("ai-diffusion", "2025-06-01")
    data = answer(ctx, {"fp8": 1979}, [814], memory_bandwidth_gbs=3350)
    assert line_of(data, "china.tpp_max")["in_force"] is False
    assert all(c["governs"] != "china_2026" for c in data["levers"])


def test_every_vintage_is_reported(ctx26):
    data = answer(ctx26, {"fp8": 1979}, [814])
    assert [v["vintage"] for v in data["by_vintage"]] == ["ear-2023", "ai-diffusion", "enforcement-posture"]
    assert all(v["paragraph"] == "3A090.a.1" for v in data["by_vintage"])  # 1979 x 8 = 15,832 >= 4800


# ---- MAC units --------------------------------------------------------------------------------------
def test_mac_units_give_the_rate(ctx26):
    # 2 x 540,672 MAC units x 1.83 GHz = 1,978,859.52 x 10^9 ops/s = 1,978.85952 TOPS; x 8 bits
    rate = parse_mac("540672@1.83:8", ctx26)
    assert Fraction(rate.value) == Fraction(2 * 540672 * 183, 100 * 1000)
    design = build_design(ctx26, macs=["540672@1.83:8"], die_areas=[814])
    data = design_answer(design, ctx26)
    assert close(data["tpp"], Fraction(2 * 540672 * 183, 100 * 1000) * 8)


def test_mac_units_of_one_width_add_up(ctx26):
    # units of the same precision are aggregated: 2 x 1000 x 1 GHz = 2 TOPS plus 2 x 3000 x 1 GHz = 6 TOPS
    # -> 8 TOPS at 16 bits = 128 TPP
    design = build_design(ctx26, macs=["1000@1:16", "3000@1:16"], die_areas=[10])
    assert [(r.precision, Fraction(r.value)) for r in design.rates] == [("int16", 8)]
    assert design_answer(design, ctx26)["tpp"] == 8 * 16


# ---- refusals ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"die_areas": [0]}, "die_area[0]", "positive"),
        ({"die_areas": [-814]}, "die_area[0]", "positive"),
        ({"planar_die_areas": [0]}, "planar_die_area[0]", "positive"),
        ({"memory_bandwidth_gbs": 0.5}, "memory_bandwidth", "GB/s"),
        ({"memory_bandwidth_gbs": 3.35e12}, "memory_bandwidth", "GB/s"),
        ({"memory_bandwidth_gbs": -1}, "memory_bandwidth", "positive"),
        ({"interconnect_gbs": 2e6}, "interconnect", "GB/s"),
        ({"stack_area_mm2": 100}, "stack_area", "bandwidth"),
        ({"memory_bandwidth_gbs": 800, "stack_area_mm2": 0}, "stack_area", "positive"),
    ],
)
def test_refusals_name_the_field(ctx26, kwargs, field, words):
    with pytest.raises(TierlineError) as err:
        build_design(ctx26, rates=[Rate("fp8", 100)], **kwargs)
    assert err.value.field == field and words in err.value.reason


@pytest.mark.parametrize(
    ("mac", "words"),
    [
        ("540672", "UNITS@CLOCK_GHZ:BITS"),
        ("540672@1.83", "UNITS@CLOCK_GHZ:BITS"),
        ("abc@1.83:8", "not a number"),
        ("1.5@1.83:8", "whole number"),
        ("540672@x:8", "GHz"),
        ("540672@1830:8", "GHz"),
        ("540672@1.83:12", "bit length 12"),
        ("540672@1.83:fp7", "unknown precision"),
    ],
)
def test_malformed_mac_is_refused(ctx26, mac, words):
    with pytest.raises(TierlineError) as err:
        build_design(ctx26, macs=[mac])
    assert err.value.field == "mac[0]" and words in err.value.reason


def test_other_refusals(ctx26):
    with pytest.raises(TierlineError) as err:
        build_design(ctx26, rates=[Rate("fp8", 1)], macs=["1@1:8"])
    assert err.value.field == "rate"
    with pytest.raises(TierlineError) as err:
        build_design(ctx26, rates=[Rate("fp7", 100)])
    assert err.value.field == "rate.fp7"
    with pytest.raises(TierlineError) as err:
        build_design(ctx26, rates=[Rate("fp8", 0)])
    assert err.value.field == "rate"
    with pytest.raises(TierlineError) as err:
        build_design(ctx26, rates=[Rate("fp8", 1e300)])
    assert err.value.field == "rate.fp8"
    design = build_design(ctx26, rates=[Rate("fp8", 100)])
    with pytest.raises(TierlineError) as err:
        design_answer(design, ctx26, "a3")
    assert err.value.field == "line"


def test_no_die_area_leaves_density_lines_open(ctx26):
    # 1,000 TPP-class design without a non-planar die: density unknown, no die-area lever
    data = answer(ctx26, {"fp8": 250}, [])
    row = line_of(data, "a2.pd_min")
    assert row["value"] is None and "die area" in row["note"]
    assert all(c["lever"] != "die_area" for c in data["levers"])
