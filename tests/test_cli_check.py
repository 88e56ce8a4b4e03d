"""``tierline check`` and ``tierline weights`` run as a real process: JSON contract, exit codes, errors.

Expected values come from docs/determinations.md and hand arithmetic written out next to each
assertion (H100 SXM5: FP8 dense 1,978.9 x 8 bits = 15,831.2 TPP, chips.csv / chips-notes.md §1).
The transactions live in tests/cases/transactions/.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction

import pytest

from helpers import AS_OF, CASES, TIERLINE, CliResult, run_cli

pytestmark = pytest.mark.skipif(not TIERLINE.exists(), reason="the tierline console script is not installed")

TX = CASES / "transactions"

# docs/determinations.md "The answer" and "Exit codes of `tierline check`".
CHECK_KEYS = {
    "license_required",
    "authorization",
    "review_policy",
    "allocation_draws",
    "obligations",
    "red_flags",
    "warnings",
    "lines",
    "trace",
    "vintage",
    "as_of",
}
AUTHORIZATIONS = {"NLR", "LPP", "AIA", "ACM", "NAC", "ACA", "UVEU", "NVEU", "LICENSE"}
REVIEW_POLICIES = {None, "presumption_of_approval", "presumption_of_denial", "case_by_case"}
EXIT_NO_LICENCE, EXIT_LICENCE, EXIT_DENIAL, EXIT_INVALID = 0, 10, 11, 2

H100_TPP = Fraction("1978.9") * 8  # 15,831.2
LPP_LIMIT = 26_900_000  # 15 CFR 740.29(a)

# The flag form of br_h100_2000.yaml.
BR_FLAGS = ("--chip", "H100 SXM5", "--qty", "2000", "--to", "BR", "--consignee-hq", "BR", "--as-of", AS_OF)
OLDER_VINTAGES = ("ear-2023", "enforcement-posture")
HUMAN_RUNS = {
    "licence": ("check", "--file", str(TX / "br_h100_2000.yaml")),
    "no licence": ("check", "--file", str(TX / "br_h100_100_lpp.yaml")),
    "weights": ("weights", "--operations", "1e26", "--as-of", AS_OF),
}
ESTIMATE = ("--parameters", "2e12", "--tokens", "1e13")
ENFORCEMENT_POSTURE_WEIGHTS = ("--operations", "1e26", "--vintage", "enforcement-posture")


# The commands are pure (no --apply), so each distinct command runs once, in a small pool, and tests
# that need the same run share it; _prefetch starts every run of the module up front (< 30 s in all).
_POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))


@functools.cache
def _submit(args: tuple[str, ...]) -> Future[CliResult]:
    return _POOL.submit(run_cli, *args)


def cli(*args: str) -> CliResult:
    """The real console script in a subprocess (helpers.run_cli), memoised."""
    return _submit(args).result()


def file_args(name: str, *extra: str) -> tuple[str, ...]:
    return ("check", "--file", str(TX / name), "--json", *extra)


def check_file(name: str, *extra: str) -> CliResult:
    return cli(*file_args(name, *extra))


def weights_args(*args: str) -> tuple[str, ...]:
    return ("weights", "--json", "--as-of", AS_OF, *args)


def weights(*args: str) -> CliResult:
    return cli(*weights_args(*args))


def assert_contract(data: dict) -> None:
    assert set(data) >= CHECK_KEYS
    assert isinstance(data["license_required"], bool)
    assert data["authorization"] in AUTHORIZATIONS
    assert data["review_policy"] in REVIEW_POLICIES
    assert isinstance(data["allocation_draws"], list)
    for draw in data["allocation_draws"]:
        assert set(draw) >= {"account", "tpp"}
        assert isinstance(draw["account"], str)
        assert isinstance(draw["tpp"], (int, float))
    assert isinstance(data["obligations"], list)
    assert isinstance(data["warnings"], list)
    assert isinstance(data["trace"], list) and data["trace"]
    for step in data["trace"]:
        assert {"rule", "citation", "test", "result"} <= set(step)
    assert data["vintage"] in ("ear-2023", "ai-diffusion", "enforcement-posture")


def assert_one_line_error(result: CliResult, field: str) -> None:
    """Exit code 2, exactly one line on stderr, "error: ..." naming the field, no traceback."""
    assert result.code == EXIT_INVALID, (result.code, result.stderr)
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    assert field in lines[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""


def decisive(data: dict) -> tuple:
    return data["license_required"], data["authorization"], data["review_policy"], data["allocation_draws"]


# --- 1. JSON contract, from a file ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["br_h100_2000.json", "br_h100_2000.yaml"])
def test_check_file_h100_to_brazil_licence_with_allocation_draw(name):
    r = check_file(name)
    assert r.code == EXIT_LICENCE, r.stderr
    data = r.json()
    assert_contract(data)
    assert data["license_required"] is True
    assert data["authorization"] == "LICENSE"
    assert data["review_policy"] == "presumption_of_approval"
    # 2000 x 1,978.9 x 8 = 31,662,400 TPP against the Brazil (Tier 2) allocation.
    assert 2000 * H100_TPP == 31_662_400
    assert data["allocation_draws"] == [{"account": "allocation:BR", "tpp": pytest.approx(31_662_400)}]
    # 31,662,400 > 26,900,000: LPP was tried and rejected, and the trace says so.
    assert 2000 * H100_TPP > LPP_LIMIT
    lpp = [s for s in data["trace"] if s["rule"] == "LPP"]
    assert lpp and lpp[0]["result"] is False and lpp[0]["citation"] == "15 CFR 740.29"
    assert any(s["citation"] == "15 CFR 742.6(a)(6)(iii)(A)" and s["result"] is True for s in data["trace"])
    assert data["vintage"] == "ai-diffusion"
    assert data["as_of"] == "2025-06-01"


def test_check_json_and_yaml_files_agree():
    assert check_file("br_h100_2000.json").json() == check_file("br_h100_2000.yaml").json()


def test_check_file_h20_to_china_is_nlr():
    # H20: 296 x 8 = 2,368 TPP < 4,800 and not b-level -> not controlled here.
    r = check_file("cn_h20.yaml")
    assert r.code == EXIT_NO_LICENCE, r.stderr
    data = r.json()
    assert_contract(data)
    assert data["license_required"] is False
    assert data["authorization"] == "NLR"
    assert data["review_policy"] is None
    assert data["allocation_draws"] == []
    # Not controlled: other controls are not assessed "and the answer says so".
    assert any("not assessed" in w for w in data["warnings"])


def test_check_file_h100_to_china_presumption_of_denial():
    r = check_file("cn_h100.json")
    assert r.code == EXIT_DENIAL, r.stderr
    data = r.json()
    assert_contract(data)
    assert data["license_required"] is True
    assert data["authorization"] == "LICENSE"
    assert data["review_policy"] == "presumption_of_denial"
    assert data["allocation_draws"] == []


def test_check_file_lpp_within_limit_is_exit_0():
    # 100 x 15,831.2 = 1,583,120 <= 26,900,000: LPP applies, drawing the consignee's 2025 account.
    assert 100 * H100_TPP == 1_583_120 <= LPP_LIMIT
    r = check_file("br_h100_100_lpp.yaml")
    assert r.code == EXIT_NO_LICENCE, r.stderr
    data = r.json()
    assert_contract(data)
    assert data["license_required"] is False
    assert data["authorization"] == "LPP"
    assert data["review_policy"] is None
    assert data["allocation_draws"] == [{"account": "lpp:acme-br:2025", "tpp": pytest.approx(1_583_120)}]


# --- 2. Exit codes ---------------------------------------------------------------------------------------------


EXIT_CASES = [
    pytest.param(
        ("--chip", "H20", "--to", "CN", "--as-of", AS_OF), EXIT_NO_LICENCE, "NLR", None, id="0 NLR (H20 to CN)"
    ),
    pytest.param(
        ("--chip", "H100 SXM5", "--qty", "100", "--to", "BR", "--as-of", AS_OF),
        EXIT_NO_LICENCE,
        "LPP",
        None,
        id="0 LPP (100 H100 to BR)",
    ),
    pytest.param(BR_FLAGS, EXIT_LICENCE, "LICENSE", "presumption_of_approval", id="10 approval (2000 H100 to BR)"),
    pytest.param(
        # Tier 1 destination, Brazilian-headquartered consignee: AIA fails (not a Tier 1 entity), LPP
        # fails (31,662,400 > 26,900,000) -> case-by-case (docs/determinations.md rule 3, unconfirmed).
        ("--chip", "H100 SXM5", "--qty", "2000", "--to", "DE", "--consignee-hq", "BR", "--as-of", AS_OF),
        EXIT_LICENCE,
        "LICENSE",
        "case_by_case",
        id="10 case-by-case (2000 H100 to DE, BR headquarters)",
    ),
    pytest.param(
        ("--chip", "H100 SXM5", "--to", "CN", "--as-of", AS_OF),
        EXIT_DENIAL,
        "LICENSE",
        "presumption_of_denial",
        id="11 denial (H100 to CN)",
    ),
]


@pytest.mark.parametrize(("args", "code", "authorization", "review"), EXIT_CASES)
def test_check_exit_codes(args, code, authorization, review):
    r = cli("check", *args, "--json")
    assert r.code == code, r.stderr
    data = r.json()
    assert_contract(data)
    assert data["license_required"] is (code != EXIT_NO_LICENCE)
    assert (data["authorization"], data["review_policy"]) == (authorization, review)


CHECK_ERRORS = [
    pytest.param(("--file", str(TX / "unknown_chip.yaml")), "items[0].chip", id="file unknown chip"),
    pytest.param(("--file", str(TX / "unknown_country.yaml")), "destination", id="file unknown country"),
    pytest.param(("--file", str(TX / "negative_quantity.yaml")), "items[0].quantity", id="file negative quantity"),
    pytest.param(("--file", str(TX / "before_vintage.yaml")), "date", id="file date before vintage"),
    pytest.param(("--file", str(TX / "malformed.json")), "--file", id="malformed JSON"),
    pytest.param(
        ("--file", str(TX / "malformed.yaml")),
        "--file",
        id="malformed YAML",
    ),
    pytest.param(("--file", str(TX / "no_such_file.yaml")), "--file", id="missing file"),
    pytest.param(("--chip", "Quantum Zeta 9000 Turbo", "--to", "BR", "--as-of", AS_OF), "chip", id="unknown chip"),
    pytest.param(("--chip", "H100 SXM5", "--to", "Atlantis", "--as-of", AS_OF), "destination", id="unknown country"),
    pytest.param(
        ("--chip", "H100 SXM5", "--qty", "-5", "--to", "BR", "--as-of", AS_OF),
        "items[0].quantity",
        id="negative quantity",
    ),
    pytest.param(("--chip", "H100 SXM5", "--to", "BR", "--as-of", "2024-06-01"), "date", id="date before vintage"),
    pytest.param(
        ("--chip", "H100 SXM5", "--to", "BR", "--as-of", "2025-05-01", "--vintage", "enforcement-posture"),
        "date",
        id="date before enforcement-posture",
    ),
    pytest.param(("--chip", "H100 SXM5", "--to", "BR", "--as-of", "2025-13-01"), "--as-of", id="malformed date"),
    pytest.param(("--chip", "H100 SXM5", "--to", "BR", "--vintage", "ear-1999"), "vintage", id="unknown vintage"),
    pytest.param((), "--file", id="nothing to check"),
]


@pytest.mark.parametrize(("args", "field"), CHECK_ERRORS)
def test_check_invalid_input_is_exit_2_with_one_line_error(args, field):
    assert_one_line_error(cli("check", *args, "--json"), field)


def test_check_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    assert_one_line_error(run_cli("check", "--file", str(path), "--json"), "--file")


def test_check_boolean_quantity_is_invalid():
    assert_one_line_error(check_file("boolean_quantity.json"), "items[0].quantity")


def test_check_malformed_upper_case_json_suffix_says_json(tmp_path):
    path = tmp_path / "TX.JSON"
    path.write_text((TX / "malformed.json").read_text(encoding="utf-8"), encoding="utf-8")
    r = run_cli("check", "--file", str(path), "--json")
    assert_one_line_error(r, "--file")
    assert "not valid JSON" in r.stderr


# --- 3. Flag form and vintages ------------------------------------------------------------------------------


def test_flag_form_matches_file():
    flags = cli("check", *BR_FLAGS, "--json")
    file = check_file("br_h100_2000.yaml")
    assert flags.code == file.code == EXIT_LICENCE, flags.stderr
    assert decisive(flags.json()) == decisive(file.json())
    assert decisive(flags.json()) == (
        True,
        "LICENSE",
        "presumption_of_approval",
        [{"account": "allocation:BR", "tpp": pytest.approx(2000 * 1978.9 * 8)}],
    )
    assert (flags.json()["vintage"], flags.json()["as_of"]) == ("ai-diffusion", "2025-06-01")


@pytest.mark.parametrize("vintage", OLDER_VINTAGES)
def test_older_vintages_do_not_require_a_licence_for_brazil(vintage):
    # October 2023 scope: a-/b-level items need a licence only to D:1/D:4/D:5 (not A:5/A:6) plus Macau;
    # Brazil is in none of them, and no party is D:5/Macau -> NLR.
    for r in (
        cli("check", *BR_FLAGS, "--json", "--vintage", vintage),
        check_file("br_h100_2000.yaml", "--vintage", vintage),
    ):
        assert r.code == EXIT_NO_LICENCE, r.stderr
        data = r.json()
        assert_contract(data)
        assert decisive(data) == (False, "NLR", None, [])
        assert data["vintage"] == vintage
        assert data["as_of"] == "2025-06-01"


def test_as_of_overrides_the_file_date():
    # 2025-03-01: after ai-diffusion took effect (2025-01-13), before compliance (2025-05-15) -> warning.
    r = check_file("br_h100_2000.yaml", "--as-of", "2025-03-01")
    assert r.code == EXIT_LICENCE, r.stderr
    data = r.json()
    assert data["as_of"] == "2025-03-01"
    assert any("not required before 2025-05-15" in w for w in data["warnings"])


# --- 4. Human-readable output ----------------------------------------------------------------------------------


def test_check_human_output():
    r = cli(*HUMAN_RUNS["licence"])
    assert r.code == EXIT_LICENCE, r.stderr
    assert "Licence required" in r.stdout
    assert "LICENSE" in r.stdout
    assert "presumption_of_approval" in r.stdout
    assert "15 CFR 742.6(a)(6)(iii)(A)" in r.stdout
    assert "allocation:BR" in r.stdout
    assert "31,662,400" in r.stdout
    assert "vintage ai-diffusion" in r.stdout
    assert r.stderr == ""


def test_check_human_output_no_licence():
    r = cli(*HUMAN_RUNS["no licence"])
    assert r.code == EXIT_NO_LICENCE, r.stderr
    assert "No licence required" in r.stdout
    assert "LPP" in r.stdout
    assert "15 CFR 740.29" in r.stdout


# --- 5. tierline weights -------------------------------------------------------------------------------------


def test_weights_estimate_json_contract():
    r = weights(*ESTIMATE)
    assert r.code == 0, r.stderr
    data = r.json()
    assert set(data) >= {
        "training_operations",
        "estimated",
        "eccn",
        "controlled",
        "warnings",
        "trace",
        "vintage",
        "as_of",
    }
    # Technical Note 2: 6 x N x D = 6 x 2e12 x 1e13 = 1.2e26.
    expected = Fraction(6) * Fraction(2 * 10**12) * Fraction(10**13)
    assert expected == Fraction(12 * 10**25)
    assert data["training_operations"] == float(expected)
    assert data["estimated"] is True
    assert data["controlled"] is True
    assert data["eccn"] == "4E091"
    assert any(s["result"] is True and "4E091" in s["citation"] for s in data["trace"])
    assert (data["vintage"], data["as_of"]) == ("ai-diffusion", "2025-06-01")


WEIGHTS_THRESHOLDS = [
    pytest.param(("--operations", "9.99e25"), False, id="9.99e25 below 1e26"),
    pytest.param(("--operations", "1e26"), True, id="exactly 1e26 (inclusive)"),
    pytest.param(("--operations", "1e26", "--published"), False, id="published (Note 1a)"),
    # Note 1b: derived models are excluded unless the added operations exceed
    # max(2.5e25, 0.25 x 1e26 = 2.5e25) = 2.5e25.
    pytest.param(
        ("--derived-additional-operations", "2.5e25", "--operations", "1e26"), False, id="derived +2.5e25 (equal)"
    ),
    pytest.param(
        ("--derived-additional-operations", "2.6e25", "--operations", "1e26"), True, id="derived +2.6e25 (above)"
    ),
]


@pytest.mark.parametrize(("args", "controlled"), WEIGHTS_THRESHOLDS)
def test_weights_thresholds(args, controlled):
    r = weights(*args)
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["controlled"] is controlled
    assert data["eccn"] == ("4E091" if controlled else None)
    assert data["estimated"] is False


def test_weights_not_enforced_under_enforcement_posture():
    r = weights(*ENFORCEMENT_POSTURE_WEIGHTS)
    assert r.code == 0, r.stderr
    data = r.json()
    assert data["controlled"] is False
    assert data["eccn"] is None
    assert data["vintage"] == "enforcement-posture"
    assert any("enforcement-posture" in w and "4E091" in w for w in data["warnings"])


def test_weights_human_output():
    r = cli(*HUMAN_RUNS["weights"])
    assert r.code == 0, r.stderr
    assert "4E091" in r.stdout
    assert "1.000e+26" in r.stdout
    assert "15 CFR 774 Supp. 1, ECCN 4E091" in r.stdout


WEIGHTS_ERRORS = [
    pytest.param(("--tokens", "1e13"), "--operations", id="tokens alone"),
    pytest.param(("--parameters", "2e12"), "--operations", id="parameters alone"),
    pytest.param((), "--operations", id="nothing"),
    pytest.param(("--parameters", "-2", "--tokens", "1e13"), "--parameters", id="negative parameters"),
    pytest.param(("--operations", "1e26", "--vintage", "ear-1999"), "vintage", id="unknown vintage"),
    pytest.param(
        ("--operations", "-1"),
        "--operations",
        id="negative operations",
    ),
    pytest.param(
        ("--operations", "1e26", "--synthetic-fraction", "2"),
        "--synthetic-fraction",
        id="synthetic fraction above 1",
    ),
    pytest.param(
        ("--operations", "1e26", "--derived-additional-operations", "-1"),
        "--derived-additional-operations",
        id="negative derived operations",
    ),
    pytest.param(
        ("--operations", "inf"),
        "--operations",
        id="infinite operations",
    ),
]


@pytest.mark.parametrize(("args", "field"), WEIGHTS_ERRORS)
def test_weights_invalid_input_is_exit_2_with_one_line_error(args, field):
    assert_one_line_error(weights(*args), field)


def test_weights_tokens_alone_says_what_is_missing():
    r = weights("--tokens", "1e13")
    assert "parameters" in r.stderr


# --- Start every run of the module at once ------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _prefetch():
    runs = [file_args(name) for name in ("br_h100_2000.json", "br_h100_2000.yaml", "cn_h20.yaml", "cn_h100.json")]
    runs += [file_args(name) for name in ("br_h100_100_lpp.yaml", "boolean_quantity.json")]
    runs += [("check", *p.values[0], "--json") for p in EXIT_CASES + CHECK_ERRORS]
    runs += [("check", *BR_FLAGS, "--json", "--vintage", v) for v in OLDER_VINTAGES]
    runs += [file_args("br_h100_2000.yaml", "--vintage", v) for v in OLDER_VINTAGES]
    runs += [file_args("br_h100_2000.yaml", "--as-of", "2025-03-01"), *HUMAN_RUNS.values()]
    runs += [weights_args(*p.values[0]) for p in WEIGHTS_THRESHOLDS + WEIGHTS_ERRORS]
    runs += [weights_args(*ENFORCEMENT_POSTURE_WEIGHTS), weights_args(*ESTIMATE)]
    for args in runs:
        _submit(args)
