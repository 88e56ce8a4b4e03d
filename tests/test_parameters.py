"""Policy parameters: dated values with references, the file loader's validation, and vintages."""

from __future__ import annotations

import datetime as dt
import shutil
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

from helpers import load_cases, params
from tierline.errors import PolicyDataError, TierlineError
from tierline.policy import Context, load_parameters
from tierline.policy.parameters import CONFIDENCES, ParameterTree, parse_parameter_file
from tierline.policy.vintages import load_vintages

BUNDLED = Path(__file__).resolve().parents[1] / "src" / "tierline" / "policy" / "data" / "parameters"


# --- Values and dates from the reference files ------------------------------------------------


@pytest.mark.parametrize("case", params(load_cases("parameters.yaml")))
def test_parameter_value_matches_reference(case):
    ctx = Context.make(vintage="ai-diffusion", as_of=case["checked_on"])
    use = ctx.use(case["parameter"])
    assert use.value == case["value"], case["source"]
    if case["in_force_from"] is not None:
        assert use.in_force_from == case["in_force_from"], case["source"]


@pytest.mark.parametrize("case", params([c for c in load_cases("parameters.yaml") if c["in_force_from"]]))
def test_parameter_not_in_force_the_day_before(case):
    """The day before its first date a parameter has no value, and the error names it."""
    day_before = case["in_force_from"] - dt.timedelta(days=1)
    ctx = Context.make(vintage="ai-diffusion", as_of=day_before)
    with pytest.raises(TierlineError) as err:
        ctx.value(case["parameter"])
    assert err.value.field == case["parameter"]
    assert case["parameter"] in str(err.value)


def test_bit_lengths_match_reference(ctx):
    # classification.md §1.1: INT4/FP4 = 4, FP6 = 6, INT8/FP8 = 8, FP16/BF16 = 16, FP32 = 32, FP64 = 64
    expected = load_cases("bit_lengths.yaml")
    table = {**ctx.value("tpp.bit_length"), **ctx.value("tpp.tf32_bit_length")}
    for precision, bits in expected.items():
        assert table[precision] == bits, precision


def test_lpp_cap_in_h100_equivalents(ctx):
    # ai-diffusion-rule.md §12: 26.9e6 / 15,832 = 1,699.09; §5.3 "~1,699 H100-equivalents"
    cap = Fraction(ctx.value("lpp.annual_tpp_per_consignee"))
    h100 = Fraction(ctx.value("reference_chip.h100_tpp"))
    assert cap == 26_900_000
    assert h100 == 1979 * 8 == 15_832
    assert round(cap / h100, 2) == Fraction("1699.09")
    assert round(cap / h100) == 1699


def test_country_allocation_in_h100_equivalents(ctx):
    # ai-diffusion-rule.md §12: 790e6 / 15,832 = 49,899 (49,898.94); doubled 1.58e9 / 15,832 ~ 99,798
    cap = Fraction(ctx.value("allocation.tier2_cumulative_tpp"))
    h100 = Fraction(ctx.value("reference_chip.h100_tpp"))
    assert cap == 790_000_000
    assert round(cap / h100, 2) == Fraction("49898.94")
    assert round(cap / h100) == 49_899
    doubled = cap * ctx.value("allocation.g2g_multiplier")
    assert doubled == 1_580_000_000
    assert round(doubled / h100) == 99_798


def test_nveu_schedule_matches_reference(ctx):
    # ai-diffusion-rule.md §12: NVEU end-2025 / 2026 / 2027 = 1.58e9 / 4.27e9 / 5.07e9 TPP
    steps = ctx.value("nveu.cumulative_cap_schedule")
    assert [(s["through"], s["tpp"]) for s in steps] == [
        (dt.date(2025, 12, 31), 1_580_000_000),
        (dt.date(2026, 12, 31), 4_270_000_000),
        (dt.date(2027, 12, 31), 5_070_000_000),
    ]


def test_every_parameter_has_reference_and_known_confidence():
    tree = load_parameters()
    assert len(tree) > 0
    for param in tree:
        ref = param.reference
        assert ref.cfr or ref.fr or ref.source, f"{param.path} has no citation"
        assert param.confidence in CONFIDENCES, param.path
        assert param.description, param.path
    # The confidence vocabulary maps the reference tags (README.md "Confidence vocabularies").
    assert set(CONFIDENCES) == {"primary", "secondary", "derived", "unconfirmed"}


def test_parameters_outside_their_vintage_are_refused():
    # LPP is a License Exception of the AI Diffusion rule (ai-diffusion-rule.md §5.3), not of Oct 2023.
    ctx = Context.make(vintage="ear-2023", as_of="2025-06-01")
    with pytest.raises(TierlineError) as err:
        ctx.value("lpp.annual_tpp_per_consignee")
    assert err.value.field == "lpp.annual_tpp_per_consignee"


def test_unknown_parameter_is_named(ctx):
    with pytest.raises(TierlineError) as err:
        ctx.value("no.such.parameter")
    assert "no.such.parameter" in str(err.value)


def test_parameter_use_carries_reference_and_confidence(ctx):
    use = ctx.use("eccn_3a090.a1.tpp_min")
    assert use.value == 4800
    assert use.in_force_from == dt.date(2023, 11, 17)
    assert "3A090.a.1" in use.reference.cfr
    assert use.confidence == "primary"
    record = use.as_dict()
    assert record["parameter"] == "eccn_3a090.a1.tpp_min"
    assert record["in_force_from"] == "2023-11-17"
    assert record["reference"]["cfr"] == use.reference.cfr


# --- Dated values: which value is in force on which day ----------------------------------------

DATED = textwrap.dedent(
    """\
    demo:
      line:
        description: a line that changes and then ends
        unit: tpp
        reference: {cfr: 15 CFR 999.1}
        confidence: primary
        values:
          2024-01-01: 100
          2024-07-01: 200
          2025-01-01: null
    """
)


def test_value_in_force_on_each_date():
    tree = ParameterTree(parse_parameter_file("demo.yaml", DATED))
    assert tree.value("demo.line", dt.date(2024, 1, 1)) == 100  # the first day
    assert tree.value("demo.line", dt.date(2024, 6, 30)) == 100  # the day before the change
    assert tree.value("demo.line", dt.date(2024, 7, 1)) == 200  # the day of the change
    assert tree.value("demo.line", dt.date(2024, 12, 31)) == 200


def test_no_value_before_first_date_names_parameter():
    tree = ParameterTree(parse_parameter_file("demo.yaml", DATED))
    with pytest.raises(TierlineError) as err:
        tree.value("demo.line", dt.date(2023, 12, 31))
    assert err.value.field == "demo.line"
    assert "2024-01-01" in str(err.value)


def test_null_ends_a_parameter():
    tree = ParameterTree(parse_parameter_file("demo.yaml", DATED))
    with pytest.raises(TierlineError) as err:
        tree.value("demo.line", dt.date(2025, 1, 1))
    assert err.value.field == "demo.line"


# --- Broken parameter files: PolicyDataError naming the file, the key and the problem ----------

CITE = 'reference: {cfr: "15 CFR 774 Supp. 1, ECCN 3A090.a.1"}'
GOOD = textwrap.dedent(
    """\
    eccn_3a090:
      a1:
        tpp_min:
          description: 3A090.a.1 TPP of 4800 or more
          unit: tpp
          reference: {cfr: "15 CFR 774 Supp. 1, ECCN 3A090.a.1"}
          confidence: primary
          values:
            2023-11-17: 4800
    """
)

BROKEN = [
    pytest.param(
        GOOD.replace("      confidence: primary\n", ""), "eccn_3a090.a1.tpp_min", "confidence", id="missing key"
    ),
    pytest.param(GOOD.replace("unit: tpp", "unit: furlongs"), "eccn_3a090.a1.tpp_min.unit", "furlongs", id="bad unit"),
    pytest.param(
        GOOD.replace("confidence: primary", "confidence: certain"),
        "eccn_3a090.a1.tpp_min.confidence",
        "certain",
        id="bad confidence",
    ),
    pytest.param(GOOD.replace("2023-11-17:", "soon:"), "eccn_3a090.a1.tpp_min.values", "soon", id="non-date key"),
    pytest.param(
        GOOD.replace(": 4800", ": -4800"), "eccn_3a090.a1.tpp_min.values.2023-11-17", "negative", id="negative"
    ),
    pytest.param(
        GOOD.replace(": 4800", ": lots"), "eccn_3a090.a1.tpp_min.values.2023-11-17", "unit", id="not a number"
    ),
    pytest.param(
        GOOD.replace(CITE, "reference: {url: https://example.org}"),
        "eccn_3a090.a1.tpp_min.reference",
        "citation",
        id="reference without citation",
    ),
    pytest.param(
        GOOD.replace("      values:\n        2023-11-17: 4800\n", ""), "eccn_3a090.a1.tpp_min", "values", id="no values"
    ),
]


@pytest.mark.parametrize(("text", "key", "problem"), BROKEN)
def test_broken_file_names_file_and_key(text, key, problem):
    with pytest.raises(PolicyDataError) as err:
        parse_parameter_file("eccn_3a090.yaml", text)
    assert err.value.file == "eccn_3a090.yaml"
    assert err.value.key == key
    assert problem in str(err.value)


def test_invalid_yaml_names_file_and_line():
    text = GOOD.replace(CITE, 'reference: {cfr: "15 CFR 774 Supp. 1')
    with pytest.raises(PolicyDataError) as err:
        parse_parameter_file("eccn_3a090.yaml", text)
    assert err.value.file == "eccn_3a090.yaml"
    assert err.value.key.startswith("line ")
    assert "YAML" in str(err.value)


def test_impossible_date_key_is_a_policy_data_error():
    with pytest.raises(PolicyDataError) as err:
        parse_parameter_file("eccn_3a090.yaml", GOOD.replace("2023-11-17:", "2023-13-17:"))
    assert err.value.file == "eccn_3a090.yaml"


def test_nan_value_is_refused():
    with pytest.raises(PolicyDataError):
        parse_parameter_file("eccn_3a090.yaml", GOOD.replace(": 4800", ": .nan"))


def test_duplicate_parameter_across_files_names_both(tmp_path):
    (tmp_path / "one.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "two.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(PolicyDataError) as err:
        load_parameters(tmp_path)
    assert err.value.file == "two.yaml"
    assert err.value.key == "eccn_3a090.a1.tpp_min"
    assert "one.yaml" in str(err.value)


def test_broken_file_in_directory_is_named(tmp_path):
    for file in BUNDLED.glob("*.yaml"):
        shutil.copy(file, tmp_path / file.name)
    (tmp_path / "zz_broken.yaml").write_text(GOOD.replace("unit: tpp", "unit: furlongs").replace("eccn_3a090", "x"))
    with pytest.raises(PolicyDataError) as err:
        load_parameters(tmp_path)
    assert err.value.file == "zz_broken.yaml"
    assert err.value.key == "x.a1.tpp_min.unit"


def test_policy_dir_env_is_used_by_context(tmp_path, monkeypatch):
    for file in BUNDLED.glob("*.yaml"):
        shutil.copy(file, tmp_path / file.name)
    (tmp_path / "tpp.yaml").write_text(
        (BUNDLED / "tpp.yaml").read_text(encoding="utf-8").replace("2022-03-22: 15832", "2022-03-22: 15831")
    )
    monkeypatch.setenv("TIERLINE_POLICY_DIR", str(tmp_path))
    # SemiAnalysis uses 15,831 (ai-diffusion-rule.md §10.3): the override must be read.
    assert Context.make(as_of="2025-06-01").value("reference_chip.h100_tpp") == 15831


def test_bundled_files_load():
    tree = load_parameters(BUNDLED)
    assert {p.file for p in tree} == {f.name for f in BUNDLED.glob("*.yaml")}


# --- Vintages ------------------------------------------------------------------------------------


def test_vintages_and_their_dates():
    vintages = load_vintages()
    assert set(vintages) == {"ear-2023", "ai-diffusion", "enforcement-posture"}
    # classification.md §3: the October 2023 IFR effective 17 Nov 2023.
    assert vintages["ear-2023"].in_force_from == dt.date(2023, 11, 17)
    # ai-diffusion-rule.md §1.1 and README.md decision 8: effective 13 Jan 2025, compliance 15 May 2025.
    assert vintages["ai-diffusion"].in_force_from == dt.date(2025, 1, 13)
    assert vintages["ai-diffusion"].compliance_from == dt.date(2025, 5, 15)
    # ai-diffusion-rule.md §1.2 and README.md decision 8: non-enforcement announced 13 May 2025.
    assert vintages["enforcement-posture"].in_force_from == dt.date(2025, 5, 13)
    for v in vintages.values():
        assert v.confidence in CONFIDENCES
        assert v.reference.cite()


def test_vintage_provisions():
    v = load_vintages()
    # ai-diffusion-rule.md §1.3: the codified regime has tiers and LPP; the enforcement posture does not,
    # and both keep the headquarters rule.
    assert v["ai-diffusion"].has("tiers") and v["ai-diffusion"].has("lpp")
    assert not v["enforcement-posture"].has("tiers")
    assert not v["enforcement-posture"].has("eccn_4e091")
    assert all(x.has("headquarters_rule") for x in v.values())


def test_context_stamp_and_counterfactual_warning():
    ctx = Context.make(vintage="ai-diffusion", as_of="2025-01-12")
    stamp = ctx.stamp()
    assert stamp["vintage"] == "ai-diffusion"
    assert stamp["as_of"] == "2025-01-12"
    assert any("2025-01-13" in w for w in stamp["vintage_warnings"])
    assert "vintage_warnings" not in Context.make(vintage="ai-diffusion", as_of="2025-01-13").stamp()


def test_unknown_vintage_and_bad_date_are_named():
    with pytest.raises(TierlineError) as err:
        Context.make(vintage="ear-1999", as_of="2025-06-01")
    assert err.value.field == "vintage"
    with pytest.raises(TierlineError) as err:
        Context.make(as_of="2025-02-30")
    assert err.value.field == "as_of"


def test_broken_vintage_file(tmp_path):
    good = (BUNDLED.parent / "vintages.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "vintages.yaml"
    bad.write_text(good.replace("in_force_from: 2023-11-17", "in_force_from: someday"), encoding="utf-8")
    with pytest.raises(PolicyDataError) as err:
        load_vintages(bad)
    assert err.value.file == "vintages.yaml"
    assert err.value.key == "ear-2023.in_force_from"
