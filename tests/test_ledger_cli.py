"""``tierline ledger`` and ``tierline check --apply`` run as real processes, on SQLite and PostgreSQL.

Hand arithmetic: an H100 SXM5 is 1,978.9 dense FP8 TFLOPS x 8 bits = 15,831.2 TPP, so 2,000 of them
are 2,000 x 1,978.9 x 8 = 31,662,400 TPP; a Tier 2 country allocation is 790,000,000 TPP
(1,580,000,000 from a recorded g2g date); a 2,000-chip shipment is above the LPP limit of 26,900,000.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from helpers import TIERLINE, CliResult, run_cli

pytestmark = pytest.mark.skipif(not TIERLINE.exists(), reason="the tierline console script is not installed")

DAY = "2025-06-01"
H100_2000 = 2000 * 1978.9 * 8  # 31,662,400 TPP
ALLOCATION = 790_000_000
CHECK = ["check", "--chip", "H100 SXM5", "--qty", "2000", "--to", "BR", "--as-of", DAY, "--apply", "--json"]
EXIT_LICENCE, EXIT_DENIAL, EXIT_TAMPERED = 10, 11, 3


def ok(result: CliResult) -> Any:
    assert result.code == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return result.json()


def one_line_error(result: CliResult, field: str) -> str:
    """Exit 2, one line "error: FIELD: reason" on stderr, nothing on stdout, no traceback."""
    assert result.code == 2, (result.code, result.stdout, result.stderr)
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {field}: "), result.stderr
    assert len(lines[0]) > len(f"error: {field}: ") + 5
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    return lines[0]


def status(env: dict[str, str], as_of: str = DAY) -> dict[str, dict[str, Any]]:
    data = ok(run_cli("ledger", "status", "--as-of", as_of, "--json", env=env))
    assert data["as_of"] == as_of
    return {row["account"]: row for row in data["accounts"]}


def export(env: dict[str, str]) -> list[dict[str, str]]:
    r = run_cli("ledger", "export", env=env)
    assert r.code == 0, r.stderr
    return list(csv.DictReader(io.StringIO(r.stdout)))


# --- the ledger commands ---------------------------------------------------------------------------


def test_ledger_commands_round_trip(ledger_env: dict[str, str], tmp_path: Path) -> None:
    env = ledger_env
    assert status(env) == {}

    hold = ok(run_cli("ledger", "reserve", "allocation:BR", "1000", "--date", DAY, "--key", "r1", "--json", env=env))
    assert (hold["account"], hold["tpp"], hold["status"], hold["replayed"]) == ("allocation:BR", 1000, "held", False)
    br = status(env)["allocation:BR"]
    assert (br["used"], br["held"], br["limit"], br["headroom"]) == (0, 1000, ALLOCATION, ALLOCATION - 1000)

    done = ok(run_cli("ledger", "commit", hold["hold_id"], "--key", "c1", "--actor", "alice", "--json", env=env))
    assert (done["status"], done["tpp"]) == ("committed", 1000)

    other = ok(run_cli("ledger", "reserve", "allocation:BR", "7", "--date", DAY, "--key", "r2", "--json", env=env))
    gone = ok(run_cli("ledger", "release", other["hold_id"], "--key", "x2", "--json", env=env))
    assert gone["status"] == "released"

    d = ok(run_cli("ledger", "direct", "allocation:BR", "5000", "--date", DAY, "--key", "d1", "--json", env=env))
    assert d["applied"] == [{"account": "allocation:BR", "tpp": 5000}] and d["replayed"] is False

    adj = ok(
        run_cli(
            "ledger",
            "adjust",
            "allocation:BR",
            "--tpp",
            "-5",
            "--date",
            DAY,
            "--reason",
            "typo",
            "--key",
            "a1",
            "--json",
            env=env,
        )
    )
    assert (adj["tpp"], adj["committed"]) == (-5, 5995)  # 1,000 + 5,000 - 5

    g = ok(
        run_cli(
            "ledger", "g2g", "Brazil", "--since", "2025-07-01", "--reason", "BR-US", "--key", "g1", "--json", env=env
        )
    )
    assert (g["country"], g["since"]) == ("BR", "2025-07-01")

    lic = ok(
        run_cli(
            "ledger", "license", "L-1", "--country", "BR", "--holder", "acme", "--tpp", "1000",
            "--issued", "2025-01-01", "--key", "l1", "--json", env=env,
        )
    )  # fmt: skip
    assert (lic["account"], lic["tpp"]) == ("license:L-1", 1000)
    ok(run_cli("ledger", "direct", "license:L-1", "1000", "--date", DAY, "--key", "d2", "--json", env=env))
    one_line_error(run_cli("ledger", "direct", "license:L-1", "1", "--date", DAY, "--key", "d3", env=env), "tpp")

    rows = status(env)
    assert (rows["allocation:BR"]["used"], rows["allocation:BR"]["held"]) == (5995, 0)
    assert rows["allocation:BR"]["limit"] == ALLOCATION
    assert (rows["license:L-1"]["used"], rows["license:L-1"]["headroom"]) == (1000, 0)
    assert status(env, "2025-07-01")["allocation:BR"]["limit"] == 2 * ALLOCATION  # g2g from 1 July
    assert status(env, "2025-05-31")["allocation:BR"]["used"] == 0  # everything is dated 1 June

    hist = ok(run_cli("ledger", "history", "allocation:BR", "--json", env=env))
    assert hist["account"] == "allocation:BR"
    assert [e["op"] for e in hist["events"]] == ["reserve", "commit", "reserve", "release", "direct", "adjust"]
    assert [e["seq"] for e in hist["events"]] == [1, 2, 3, 4, 5, 6]
    assert hist["events"][1]["actor"] == "alice"

    v = ok(run_cli("ledger", "verify", "--json", env=env))
    assert v == {"ok": True, "rows": 6 + 1 + 2, "problems": []}  # BR chain, licence chain, system (g2g, licence)

    entries = export(env)
    assert list(entries[0]) == [
        "id",
        "account_id",
        "op",
        "amount_micro",
        "effective_date",
        "hold_id",
        "reason",
        "actor",
        "idempotency_key",
        "recorded_at",
        "tpp",
    ]
    assert [(e["account_id"], e["op"], float(e["tpp"])) for e in entries] == [
        ("allocation:BR", "commit", 1000),
        ("allocation:BR", "direct", 5000),
        ("allocation:BR", "adjust", -5),
        ("license:L-1", "direct", 1000),
    ]
    assert entries[0]["hold_id"] == hold["hold_id"] and entries[0]["actor"] == "alice"
    assert entries[2]["reason"] == "typo" and entries[2]["amount_micro"] == "-5000000"
    assert {e["effective_date"] for e in entries} == {DAY}

    out = tmp_path / "entries.csv"
    r = run_cli("ledger", "export", "--out", str(out), env=env)
    assert r.code == 0, r.stderr
    assert list(csv.DictReader(out.open(encoding="utf-8"))) == entries

    # the human-readable forms
    text = run_cli("ledger", "status", "--as-of", DAY, env=env)
    assert text.code == 0 and "allocation:BR" in text.stdout and "790,000,000" in text.stdout
    text = run_cli("ledger", "history", "allocation:BR", env=env)
    assert text.code == 0 and "adjust" in text.stdout
    text = run_cli("ledger", "verify", env=env)
    assert text.code == 0 and "9 rows verified" in text.stdout


def test_the_same_key_twice_is_replayed(ledger_env: dict[str, str]) -> None:
    args = ["ledger", "direct", "lpp:acme:2025", "26900000", "--date", DAY, "--key", "k1", "--json"]
    first, second = ok(run_cli(*args, env=ledger_env)), ok(run_cli(*args, env=ledger_env))
    assert (first["replayed"], second["replayed"]) == (False, True)
    assert status(ledger_env)["lpp:acme:2025"]["used"] == 26_900_000
    assert len(export(ledger_env)) == 1
    one_line_error(
        run_cli("ledger", "direct", "lpp:acme:2025", "1", "--date", DAY, "--key", "k1", env=ledger_env),
        "idempotency_key",
    )


def test_cli_reserve_retried_with_the_same_key_is_replayed(ledger_env: dict[str, str]) -> None:
    args = ["ledger", "reserve", "allocation:BR", "5", "--date", DAY, "--key", "r1", "--json"]
    first = ok(run_cli(*args, env=ledger_env))
    second = ok(run_cli(*args, env=ledger_env))
    assert second["replayed"] is True and second["hold_id"] == first["hold_id"]


BAD = [
    (["ledger", "direct", "allocation:XX", "5", "--date", DAY, "--key", "k"], "account"),
    (["ledger", "direct", "lpp:acme", "5", "--date", DAY, "--key", "k"], "account"),
    (["ledger", "direct", "allocation:BR", "5", "--date", "2025-13-01", "--key", "k"], "--date"),
    (["ledger", "direct", "allocation:BR", "790000001", "--date", DAY, "--key", "k"], "tpp"),
    (["ledger", "direct", "allocation:BR", "0", "--date", DAY, "--key", "k"], "tpp"),
    (["ledger", "direct", "allocation:BR", "5", "--date", "2028-01-01", "--key", "k"], "effective_date"),
    (["ledger", "direct", "allocation:BR", "6", "--date", DAY, "--key", "pre"], "idempotency_key"),
    (["ledger", "reserve", "allocation:BR", "5", "--date", DAY, "--key", "k", "--ttl-hours", "0"], "--ttl-hours"),
    (["ledger", "reserve", "allocation:BR", "0", "--date", DAY, "--key", "k"], "tpp"),
    (["ledger", "commit", "no-such-hold", "--key", "k"], "hold_id"),
    (["ledger", "release", "no-such-hold", "--key", "k"], "hold_id"),
    (["ledger", "adjust", "allocation:BR", "--tpp", "-5", "--date", DAY, "--key", "k"], "reason"),
    (["ledger", "adjust", "allocation:BR", "--tpp", "-6", "--date", DAY, "--reason", "x", "--key", "k"], "tpp"),
    (["ledger", "g2g", "Atlantis", "--since", DAY, "--reason", "x", "--key", "k"], "country"),
    (["ledger", "g2g", "BR", "--since", DAY, "--key", "k"], "reason"),
    (["ledger", "status", "--as-of", "yesterday"], "--as-of"),
]


def test_bad_input_exits_2_with_one_line_and_writes_nothing(ledger_env: dict[str, str]) -> None:
    ok(run_cli("ledger", "direct", "allocation:BR", "5", "--date", DAY, "--key", "pre", "--json", env=ledger_env))
    before = (status(ledger_env), export(ledger_env), ok(run_cli("ledger", "verify", "--json", env=ledger_env)))
    for args, field in BAD:
        one_line_error(run_cli(*args, env=ledger_env), field)
    after = (status(ledger_env), export(ledger_env), ok(run_cli("ledger", "verify", "--json", env=ledger_env)))
    assert after == before


def test_the_default_database_is_a_sqlite_file_under_tierline_home(tmp_path: Path) -> None:
    env = {"TIERLINE_DATABASE_URL": "", "TIERLINE_HOME": str(tmp_path / "home")}
    ok(run_cli("ledger", "direct", "allocation:MX", "12.5", "--date", DAY, "--key", "k", "--json", env=env))
    assert (tmp_path / "home" / "tierline.db").is_file()
    assert status(env)["allocation:MX"]["used"] == 12.5


# --- check --apply ------------------------------------------------------------------------------------


def test_check_apply_records_the_allocation_draw_once(ledger_env: dict[str, str]) -> None:
    plain = run_cli(*[a for a in CHECK if a != "--apply"], env=ledger_env)
    assert plain.code == EXIT_LICENCE, plain.stderr
    assert status(ledger_env) == {}  # without --apply nothing is recorded

    r = run_cli(*CHECK, env=ledger_env)
    assert r.code == EXIT_LICENCE, (r.stdout, r.stderr)
    answer = r.json()
    assert answer["review_policy"] == "presumption_of_approval"
    assert answer["allocation_draws"] == [{"account": "allocation:BR", "tpp": pytest.approx(H100_2000)}]
    assert answer["applied"]["replayed"] is False
    assert answer["applied"]["applied"] == [{"account": "allocation:BR", "tpp": pytest.approx(H100_2000)}]
    br = status(ledger_env)["allocation:BR"]
    assert br["used"] == 31_662_400  # 2,000 x 1,978.9 x 8
    assert br["headroom"] == 758_337_600  # 790,000,000 - 31,662,400

    again = run_cli(*CHECK, env=ledger_env)
    assert again.code == EXIT_LICENCE
    assert again.json()["applied"]["replayed"] is True
    assert status(ledger_env)["allocation:BR"]["used"] == 31_662_400
    [entry] = export(ledger_env)
    assert (entry["account_id"], entry["amount_micro"], entry["effective_date"]) == (
        "allocation:BR",
        "31662400000000",
        DAY,
    )
    assert ok(run_cli("ledger", "verify", "--json", env=ledger_env))["ok"] is True


def test_check_after_the_allocation_is_nearly_used_is_a_presumption_of_denial(ledger_env: dict[str, str]) -> None:
    ok(
        run_cli(
            "ledger", "direct", "allocation:BR", str(ALLOCATION - 1_000_000), "--date", "2025-05-01", "--key", "prefill", "--json",
            env=ledger_env,
        )
    )  # fmt: skip
    r = run_cli(*CHECK, env=ledger_env)
    assert r.code == EXIT_DENIAL, (r.stdout, r.stderr)
    answer = r.json()
    assert answer["review_policy"] == "presumption_of_denial"
    assert any("unconfirmed" in w for w in answer["warnings"]), answer["warnings"]
    assert answer["applied"] is None
    assert answer["allocation_draws"] == []
    br = status(ledger_env)["allocation:BR"]
    assert (br["used"], br["headroom"]) == (789_000_000, 1_000_000)  # nothing more was recorded


def test_check_that_fills_the_allocation_exactly_is_approved(ledger_env: dict[str, str]) -> None:
    prefill = ALLOCATION - 31_662_400  # 758,337,600: the 2,000 H100s fit exactly
    ok(
        run_cli(
            "ledger", "direct", "allocation:BR", str(prefill), "--date", "2025-05-01", "--key", "prefill", "--json",
            env=ledger_env,
        )
    )  # fmt: skip
    r = run_cli(*CHECK, env=ledger_env)
    assert r.code == EXIT_LICENCE, (r.stdout, r.stderr)
    assert r.json()["review_policy"] == "presumption_of_approval"
    br = status(ledger_env)["allocation:BR"]
    assert (br["used"], br["headroom"]) == (ALLOCATION, 0)
    # 1,700 x 15,831.2 = 26,913,040 TPP: above the LPP limit, so it needs the (now exhausted) allocation
    more = ["check", "--chip", "H100 SXM5", "--qty", "1700", "--to", "BR", "--as-of", DAY, "--apply", "--json"]
    denied = run_cli(*more, env=ledger_env)
    assert denied.code == EXIT_DENIAL, denied.stderr
    assert denied.json()["applied"] is None
    assert status(ledger_env)["allocation:BR"]["used"] == ALLOCATION
