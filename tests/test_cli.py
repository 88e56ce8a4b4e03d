"""The ``tierline`` command line, run as a real process: the JSON contract and one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import TIERLINE, run_cli

BUNDLED_PARAMETERS = Path(__file__).resolve().parents[1] / "src" / "tierline" / "policy" / "data" / "parameters"

pytestmark = pytest.mark.skipif(not TIERLINE.exists(), reason="the tierline console script is not installed")

CLASSIFY_KEYS = {
    "tpp",
    "performance_density",
    "eccn",
    "paragraph",
    "controlled",
    "h100_equivalents",
    "trace",
    "vintage",
    "as_of",
}


def assert_one_line_error(result, field: str) -> None:
    """Exit code != 0, exactly one line on stderr, "error: FIELD: reason", no traceback."""
    assert result.code != 0
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert field in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""


# --- classify ---------------------------------------------------------------------------------------


def test_classify_chip_json_contract():
    r = run_cli("classify", "--chip", "H100", "--json", "--as-of", "2025-06-01")
    assert r.code == 0, r.stderr
    data = r.json()
    assert set(data) >= CLASSIFY_KEYS
    assert isinstance(data["tpp"], float)
    # chips.csv H100 SXM FP8 1,978.9 x 8 = 15,831.2 (chips-notes.md §1)
    assert data["tpp"] == pytest.approx(1978.9 * 8)
    assert data["performance_density"] == pytest.approx(1978.9 * 8 / 814)
    assert data["eccn"] == "3A090.a"
    assert data["paragraph"] == "3A090.a.1"
    assert data["controlled"] is True
    assert isinstance(data["trace"], list) and data["trace"]
    assert data["vintage"] == "ai-diffusion"
    assert data["as_of"] == "2025-06-01"


def test_classify_rates_json_contract():
    r = run_cli("classify", "--rate", "fp8=1979", "--die-area", "814", "--json", "--as-of", "2025-06-01")
    assert r.code == 0, r.stderr
    data = r.json()
    assert set(data) >= CLASSIFY_KEYS
    assert data["tpp"] == 1979 * 8
    assert data["performance_density"] == pytest.approx(15832 / 814)
    assert data["performance_density"] == pytest.approx(19.45, abs=0.005)  # classification.md §5
    assert data["eccn"] == "3A090.a"
    assert data["controlled"] is True
    assert data["h100_equivalents"] == 1.0
    assert data["nac_aca_eligible"] is False
    for step in data["trace"]:
        assert {"rule", "citation", "test", "result"} <= set(step)


def test_classify_sparse():
    # Technical Note 3: the sparse figure 3,958 halves to 1,979 dense (classification.md §5).
    r = run_cli("classify", "--rate", "fp8=3958", "--sparse", "--die-area", "814", "--json", "--as-of", "2025-06-01")
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["tpp"] == 1979 * 8
    assert any("halved" in w for w in data["warnings"])


def test_classify_consumer():
    # RTX 4090: 660.6 x 8 = 5,284.8, consumer -> 3A090.a, NAC/ACA-eligible (classification.md §5).
    r = run_cli(
        "classify", "--rate", "fp8=660.6", "--die-area", "608.5", "--consumer", "--json", "--as-of", "2025-06-01"
    )
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["tpp"] == pytest.approx(660.6 * 8)
    assert data["datacenter"] is False
    assert data["eccn"] == "3A090.a"
    assert data["nac_aca_eligible"] is True


def test_classify_consumer_below_4800():
    # RTX 4090D: 588.4 x 8 = 4,707.2, consumer -> not 3A090 (Note 2).
    r = run_cli(
        "classify", "--rate", "fp8=588.4", "--die-area", "608.5", "--consumer", "--json", "--as-of", "2025-06-01"
    )
    data = r.json()
    assert data["controlled"] is False
    assert data["eccn"] is None


def test_classify_needs_review_is_null_controlled():
    r = run_cli("classify", "--rate", "fp8=300", "--planar-die-area", "500", "--json", "--as-of", "2025-06-01")
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["status"] == "needs_review"
    assert data["controlled"] is None


def test_classify_system_and_z():
    r = run_cli(
        "classify",
        "--rate",
        "fp8=1979",
        "--die-area",
        "814",
        "--system",
        "--ic-count",
        "8",
        "--json",
        "--as-of",
        "2025-06-01",
    )
    data = r.json()
    assert data["eccn"] == "4A090.a"
    assert data["total_tpp"] == 1979 * 8 * 8
    assert data["h100_equivalents"] == 8.0
    r = run_cli(
        "classify", "--rate", "fp8=1979", "--die-area", "814", "--base-eccn", "5A992", "--json", "--as-of", "2025-06-01"
    )
    data = r.json()
    assert (data["eccn"], data["paragraph"]) == ("5A992.z", "5A992.z.1")


def test_classify_hbm():
    # 3A090.c: 3,200 GB/s on 800 mm2 = 4 GB/s/mm2 > 2 (classification.md §2.2).
    r = run_cli("classify", "--hbm-bandwidth", "3200", "--hbm-area", "800", "--json", "--as-of", "2025-06-01")
    data = r.json()
    assert data["eccn"] == "3A090.c"
    assert data["memory_bandwidth_density"] == 4.0


def test_classify_table_output():
    r = run_cli("classify", "--rate", "fp8=1979", "--die-area", "814", "--as-of", "2025-06-01")
    assert r.code == 0, r.stderr
    assert "3A090.a.1" in r.stdout
    assert "15,832" in r.stdout


# --- country, tiers, policy, chips ------------------------------------------------------------------------


def test_country_json_contract():
    r = run_cli("country", "DE", "--as-of", "2025-06-01", "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["iso2"] == "DE"
    assert data["name"] == "Germany"
    assert isinstance(data["groups"], list)
    # country-groups.csv row DE: A:1, A:5, B
    assert data["groups"] == ["A:1", "A:5", "B"]
    assert data["tier"] == 1  # ai-diffusion-rule.md §2.1
    assert data["vintage"] == "ai-diffusion"
    assert data["as_of"] == "2025-06-01"


def test_country_hong_kong_is_china():
    r = run_cli("country", "Hong Kong", "--as-of", "2025-06-01", "--json")
    data = r.json()
    assert data["iso2"] == "HK"
    assert data["treated_as"] == "CN"
    assert data["tier"] == 3
    assert "D:5" in data["groups"]


def test_tiers_json_counts():
    r = run_cli("tiers", "--as-of", "2025-06-01", "--json")
    assert r.code == 0, r.stderr
    data = r.json()
    counts = {int(k): v for k, v in data["counts"].items()}
    # Tier 1: 19 (ai-diffusion-rule.md §2.1); Tier 3: 23 D:5 + Macau + Hong Kong (README.md); Tier 2: the rest.
    assert counts[1] == 19
    assert counts[3] == 23 + 1 + 1
    assert counts[2] == 250 - 19 - 25
    assert {m["iso2"] for m in data["members"]["1"]} >= {"US", "FR", "TW"}
    assert data["as_of"] == "2025-06-01"


def test_tiers_single_tier():
    data = run_cli("tiers", "--tier", "1", "--as-of", "2025-06-01", "--json").json()
    assert data["counts"] == {"1": 19}


def test_policy_json_lists_parameters_with_reference_and_confidence():
    r = run_cli("policy", "--json", "--as-of", "2025-06-01")
    assert r.code == 0, r.stderr
    rows = {p["parameter"]: p for p in r.json()["parameters"]}
    for row in rows.values():
        assert row["reference"], row["parameter"]
        assert row["confidence"] in ("primary", "secondary", "derived", "unconfirmed")
    assert rows["lpp.annual_tpp_per_consignee"]["value"] == 26_900_000
    assert rows["eccn_3a090.a1.tpp_min"]["value"] == 4800
    assert rows["eccn_3a090.a1.tpp_min"]["in_force_from"] == "2023-11-17"


def test_policy_prefix_and_show():
    rows = run_cli("policy", "--prefix", "eccn_3a090.b1", "--json", "--as-of", "2025-06-01").json()["parameters"]
    assert {r["parameter"] for r in rows} == {
        "eccn_3a090.b1.tpp_min",
        "eccn_3a090.b1.tpp_max",
        "eccn_3a090.b1.pd_min",
        "eccn_3a090.b1.pd_max",
    }
    data = run_cli("policy", "show", "reference_chip.h100_tpp", "--json").json()
    assert [v["value"] for v in data["values"]] == [15832]
    assert data["confidence"] in ("primary", "secondary", "derived", "unconfirmed")


def test_policy_vintages():
    data = run_cli("policy", "vintages", "--json").json()
    dates = {v["name"]: (v["in_force_from"], v["compliance_from"]) for v in data["vintages"]}
    assert dates == {
        "ear-2023": ("2023-11-17", None),
        "ai-diffusion": ("2025-01-13", "2025-05-15"),
        "enforcement-posture": ("2025-05-13", None),
    }


def test_chips_list_json():
    r = run_cli("chips", "list", "--json", "--as-of", "2025-06-01")
    assert r.code == 0, r.stderr
    data = r.json()
    assert len(data["chips"]) == 61
    by_model = {(c["model"], c["variant"]): c for c in data["chips"]}
    h20 = by_model[("H20", "HGX/SXM 96GB")]
    assert h20["computed"]["tpp"] == 296 * 8
    assert h20["computed"]["controlled"] is False
    trn2 = by_model[("Trainium2", "Trn2 chip")]
    assert trn2["computed"]["tpp"] == 667 * 19
    assert any("10,672" in d for d in trn2["disagreements"])
    assert sum(1 for c in data["chips"] if c["computed"] is None) == 4


def test_chips_show_json():
    data = run_cli("chips", "show", "rtx 4090", "--json", "--as-of", "2025-06-01").json()
    assert data["model"] == "GeForce RTX 4090"
    assert data["classification"]["nac_aca_eligible"] is True


# --- Errors: one line on stderr naming the field, exit code != 0, no traceback ------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [
        pytest.param(["classify", "--rate", "fp8=-5", "--die-area", "814"], "rate.fp8", id="negative rate"),
        pytest.param(["classify", "--rate", "fp7=100"], "rate.fp7", id="unknown precision"),
        pytest.param(["classify", "--rate", "fp8=lots"], "rate.fp8", id="rate not a number"),
        pytest.param(["classify", "--rate", "fp8"], "rate", id="rate without value"),
        pytest.param(["classify", "--rate", "fp8=1979", "--as-of", "2025-13-01"], "--as-of", id="malformed date"),
        pytest.param(["classify", "--rate", "fp8=1979", "--as-of", "yesterday"], "--as-of", id="date not a date"),
        pytest.param(["classify", "--rate", "fp8=1979", "--die-area", "-3"], "die_area[0]", id="negative area"),
        pytest.param(["classify", "--rate", "fp8=1979", "--vintage", "ear-1999"], "vintage", id="unknown vintage"),
        pytest.param(["classify", "--chip", "Nvidia Z9000"], "chip", id="unknown chip"),
        pytest.param(["classify", "--chip", "MI308X"], "chip", id="chip without rates"),
        pytest.param(["classify", "--chip", "H100", "--rate", "fp8=1"], "--chip", id="chip and rate"),
        pytest.param(["classify"], "--rate", id="nothing to classify"),
        pytest.param(["classify", "--hbm-bandwidth", "100"], "--hbm-area", id="hbm without area"),
        pytest.param(["country", "Atlantis"], "country", id="unknown country"),
        pytest.param(["country", "DE", "--as-of", "2025-02-30"], "--as-of", id="country malformed date"),
        pytest.param(["policy", "show", "no.such.parameter"], "parameter", id="unknown parameter"),
        pytest.param(["classify", "--rate", "fp8=1979", "--as-of", "2020-01-01"], "eccn_3a090", id="before 3A090"),
    ],
)
def test_bad_input_is_one_line_error(args, field):
    assert_one_line_error(run_cli(*args), field)


def test_unknown_country_error_suggests():
    r = run_cli("country", "Germny")
    assert_one_line_error(r, "country")
    assert "Germany (DE)" in r.stderr


def _policy_dir(tmp_path: Path) -> Path:
    for file in BUNDLED_PARAMETERS.glob("*.yaml"):
        shutil.copy(file, tmp_path / file.name)
    return tmp_path


def test_broken_policy_yaml_is_one_line_error(tmp_path):
    policy = _policy_dir(tmp_path)
    (policy / "broken.yaml").write_text("x: [unclosed\n", encoding="utf-8")
    r = run_cli("classify", "--rate", "fp8=1979", "--json", env={"TIERLINE_POLICY_DIR": str(policy)})
    assert_one_line_error(r, "broken.yaml")


def test_broken_policy_value_is_one_line_error(tmp_path):
    policy = _policy_dir(tmp_path)
    path = policy / "eccn_3a090.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("2023-11-17: 4800", "2023-11-17: -4800", 1))
    r = run_cli("classify", "--rate", "fp8=1979", "--json", env={"TIERLINE_POLICY_DIR": str(policy)})
    assert_one_line_error(r, "eccn_3a090.yaml: eccn_3a090.a1.tpp_min.values.2023-11-17")
    assert "negative" in r.stderr


def test_policy_dir_that_does_not_exist(tmp_path):
    r = run_cli("policy", "--json", env={"TIERLINE_POLICY_DIR": str(tmp_path / "nowhere")})
    assert_one_line_error(r, "policy directory")


def test_policy_dir_override_is_used(tmp_path):
    policy = _policy_dir(tmp_path)
    path = policy / "tpp.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("2022-03-22: 15832", "2022-03-22: 15831"))
    r = run_cli(
        "classify", "--rate", "fp8=1979", "--json", "--as-of", "2025-06-01", env={"TIERLINE_POLICY_DIR": str(policy)}
    )
    assert r.code == 0, r.stderr
    assert r.json()["h100_equivalents"] == pytest.approx(15832 / 15831)


def test_impossible_date_in_policy_file_is_one_line_error(tmp_path):
    policy = _policy_dir(tmp_path)
    path = policy / "eccn_3a090.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("2023-11-17: 4800", "2023-13-17: 4800", 1))
    r = run_cli("classify", "--rate", "fp8=1979", "--json", env={"TIERLINE_POLICY_DIR": str(policy)})
    assert_one_line_error(r, "eccn_3a090.yaml")
