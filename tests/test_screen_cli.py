"""``tierline screen`` and ``tierline sample-orders`` run as real processes: file formats, the summary,
refused files, --skip-invalid, --apply on SQLite and PostgreSQL, and the generated order book.

Hand arithmetic (never from running tierline): an H100 SXM5 is 1,978.9 dense FP8 TFLOPS x 8 bits =
15,831.2 TPP (chips.csv). LPP allows 26,900,000 TPP per consignee per calendar year (15 CFR 740.29(a)):
1,000 + 699 = 1,699 units = 26,897,208.8 TPP fit, one more unit (26,913,040) does not. The Tier 2
allocation is 790,000,000 TPP (ai-diffusion-rule.md §6), far from reached here.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
from concurrent.futures import Future, ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from helpers import TIERLINE, CliResult, run_cli
from tierline.screen.orders import DECISION_COLUMNS

pytestmark = pytest.mark.skipif(not TIERLINE.exists(), reason="the tierline console script is not installed")

H100 = "H100 SXM5"
H100_TPP = Fraction("1978.9") * 8  # 15,831.2 TPP per unit
EXIT_REFUSED = 2
SUMMARY_KEYS = {
    "lines",
    "screened",
    "rejected",
    "by_outcome",
    "needs_license",
    "with_warnings",
    "drawn",
    "out",
    "applied",
    "batch_key",
    "vintage",
    "starting_state_as_of",
}
DRAWN_KINDS = {"allocation", "lpp", "nveu", "uveu"}
APPROVAL, DENIAL = "presumption_of_approval", "presumption_of_denial"

_POOL = ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 4))


def order(
    quantity: Any,
    *,
    date: str = "2025-06-01",
    consignee: str = "acme-br",
    destination: str = "BR",
    chip: str = H100,
    **extra: Any,
) -> dict[str, Any]:
    """An order line for data center deployment (AIA, ACM and NAC/ACA do not apply to an H100 there)."""
    row = {
        "line_id": None,
        "date": date,
        "chip": chip,
        "quantity": quantity,
        "destination": destination,
        "consignee_id": consignee,
        "consignee_headquarters": destination,
        "end_use": "data_center",
        "certifications": None,
        "consignee_veu": None,
        "consignee_veu_destinations": None,
    }
    row.update(extra)
    return row


# The book the round trips and --apply use, with the decision each line must get:
# (authorization, review policy, draw account, draw in H100 units)
BOOK: list[tuple[dict[str, Any], tuple[str, str | None, str | None, int]]] = [
    (order(1000, line_id="SO-1"), ("LPP", None, "lpp:acme-br:2025", 1000)),
    (order(699, line_id="SO-2"), ("LPP", None, "lpp:acme-br:2025", 699)),  # 1,699 units: 26,897,208.8 <= 26.9M
    (order(1, line_id="SO-3", date="2025-06-02"), ("LICENSE", APPROVAL, "allocation:BR", 1)),  # 26,913,040 > 26.9M
    (order(1700, line_id="SO-4", date="2025-06-02", consignee="big-br"), ("LICENSE", APPROVAL, "allocation:BR", 1700)),
    (
        order(
            4, line_id="SO-5", destination="DE", consignee="de-1", certifications="aia_certification;approved_designer"
        ),
        ("AIA", None, None, 0),
    ),
    (order(2, line_id="SO-6", destination="CN", consignee="cn-1"), ("LICENSE", DENIAL, None, 0)),  # Tier 3
    (
        order(2, line_id="SO-7", consignee="nv", consignee_veu="NVEU", consignee_veu_destinations="BR"),
        ("NVEU", None, "nveu:nv:BR", 2),
    ),
]
# Hand totals: LPP acme-br 1,699 units; allocation:BR 1 + 1,700 = 1,701 units; NVEU 2 units.
BOOK_DRAWN = {
    "allocation": {"allocation:BR": float(1701 * H100_TPP)},  # 26,928,871.2
    "lpp": {"lpp:acme-br:2025": float(1699 * H100_TPP)},  # 26,897,208.8
    "nveu": {"nveu:nv:BR": float(2 * H100_TPP)},  # 31,662.4
    "uveu": {},
}
BOOK_OUTCOMES = {
    ("LPP", None): 2,
    ("LICENSE", APPROVAL): 2,
    ("LICENSE", DENIAL): 1,
    ("AIA", None): 1,
    ("NVEU", None): 1,
}


def book_rows() -> list[dict[str, Any]]:
    return [dict(row) for row, _ in BOOK]


# ---- files ----------------------------------------------------------------------------------------


def write_orders(path: Path, rows: list[dict[str, Any]], *, typed: bool = True) -> Path:
    """An order book in the format of `path`'s suffix. CSV is text; Parquet has typed date and
    quantity columns when `typed` (else every column is text); JSON Lines has numbers as numbers."""
    names = list(dict.fromkeys(k for r in rows for k in r))
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: "" if r.get(k) is None else r[k] for k in names})
    elif path.suffix == ".parquet":
        columns = {n: [None if r.get(n) is None else str(r[n]) for r in rows] for n in names}
        frame = pl.DataFrame(columns, schema=dict.fromkeys(names, pl.String))
        if typed:
            frame = frame.with_columns(pl.col("date").str.to_date(), pl.col("quantity").cast(pl.Int64))
        frame.write_parquet(path)
    else:
        with path.open("w", encoding="utf-8") as handle:
            for r in rows:
                handle.write(json.dumps({k: v for k, v in r.items() if v is not None}) + "\n")
    return path


def read_decisions(path: Path) -> list[dict[str, Any]]:
    """The decisions file, after checking it really is in the format its suffix names."""
    if path.suffix == ".csv":
        header = path.read_text(encoding="utf-8").splitlines()[0]
        assert header == ",".join(DECISION_COLUMNS)
        frame = pl.read_csv(path, schema_overrides={"line_id": pl.String})
    elif path.suffix == ".parquet":
        assert path.read_bytes()[:4] == b"PAR1"
        frame = pl.read_parquet(path)
    else:
        for text in path.read_text(encoding="utf-8").splitlines():
            assert list(json.loads(text)) == list(DECISION_COLUMNS)
        frame = pl.read_ndjson(path)
    assert frame.columns == list(DECISION_COLUMNS)
    return frame.to_dicts()


def read_rejects(path: Path) -> list[tuple[int, str, str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [] or list(rows[0]) == ["line", "column", "value", "reason"]
    return [(int(r["line"]), r["column"], r["value"], r["reason"]) for r in rows]


def home_env(directory: Path) -> dict[str, str]:
    """A TIERLINE_HOME of its own; the ledger is the default SQLite file in it."""
    home = directory / "tierline-home"
    home.mkdir(parents=True, exist_ok=True)
    return {"TIERLINE_HOME": str(home), "TIERLINE_DATABASE_URL": f"sqlite:///{home / 'tierline.db'}"}


def screen(*args: str, env: dict[str, str]) -> CliResult:
    return run_cli("screen", *args, "--no-progress", env=env)


def ok_json(result: CliResult) -> Any:
    assert result.code == 0, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.json()


# ---- the ledger -----------------------------------------------------------------------------------


def seed(url: str) -> None:
    """An earlier draw, so that "unchanged" means something."""
    from tierline.ledger import Ledger

    Ledger(url).direct_commit("allocation:BR", 1000, effective_date=dt.date(2025, 5, 1), idempotency_key="seed")


def ledger_rows(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(entries, status as of the end of 2027) read through the Ledger API."""
    from tierline.ledger import Ledger

    ledger = Ledger(url)
    return ledger.entries(), ledger.status(as_of=dt.date(2027, 12, 31))


def dispose(url: str) -> None:
    from tierline.ledger.db import engine_for

    engine_for(url).dispose()


def status(env: dict[str, str], as_of: str) -> dict[str, dict[str, Any]]:
    """``tierline ledger status --json`` by account."""
    data = ok_json(run_cli("ledger", "status", "--as-of", as_of, "--json", env=env))
    assert data["as_of"] == as_of
    return {row["account"]: row for row in data["accounts"]}


def api_status(url: str, as_of: str) -> dict[str, dict[str, Any]]:
    """The same through the Ledger API (no process to start)."""
    from tierline.ledger import Ledger

    return {row["account"]: row for row in Ledger(url).status(as_of=dt.date.fromisoformat(as_of))}


# ---- round trips ----------------------------------------------------------------------------------

ROUND_TRIPS = [
    ("csv", None),
    ("parquet", None),
    ("jsonl", None),
    ("csv", "parquet"),
    ("jsonl", "csv"),
]


@pytest.fixture(scope="module")
def round_trips(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str | None], Future[Any]]:
    """Every round trip, started together (each its own directory and empty ledger)."""
    runs = {}
    for source, target in ROUND_TRIPS:
        directory = tmp_path_factory.mktemp(f"trip-{source}-{target}")
        orders = write_orders(directory / f"orders.{source}", book_rows())
        args = [str(orders), "--json"] + (["--out", str(directory / "out" / f"decided.{target}")] if target else [])
        runs[(source, target)] = (orders, _POOL.submit(screen, *args, env=home_env(directory)))
    return runs


@pytest.mark.parametrize(("source", "target"), ROUND_TRIPS, ids=[f"{s}-to-{t or s}" for s, t in ROUND_TRIPS])
def test_round_trip(round_trips: dict[Any, Any], source: str, target: str | None) -> None:
    orders, future = round_trips[(source, target)]
    data = ok_json(future.result())
    out = (
        orders.with_name(f"orders.decisions.{source}")
        if target is None
        else orders.parent / "out" / f"decided.{target}"
    )
    assert data["out"] == str(out)
    decisions = read_decisions(out)
    assert [d["line"] for d in decisions] == list(range(1, len(BOOK) + 1))
    for d, (row, (authorization, policy, account, units)) in zip(decisions, BOOK, strict=True):
        assert d["line_id"] == row["line_id"]
        assert str(d["date"]) == row["date"]
        assert d["quantity"] == row["quantity"]
        assert d["destination"] == row["destination"]
        assert d["tpp"] == float(row["quantity"] * H100_TPP)
        assert (d["authorization"], d["review_policy"], d["draw_account"]) == (authorization, policy, account), d
        assert d["draw_tpp"] == (float(units * H100_TPP) if account else None)
        assert d["needs_license"] is (authorization == "LICENSE")
        assert d["vintage"] == "ai-diffusion"
    assert [d["tier"] for d in decisions] == [2, 2, 2, 2, 1, 3, 2]
    assert not list(orders.parent.glob("*rejects*"))
    assert not list(orders.parent.glob(".tierline-*")), "temporary files left behind"


def test_json_summary(round_trips: dict[Any, Any]) -> None:
    orders, future = round_trips[("csv", None)]
    data = ok_json(future.result())
    assert set(data) >= SUMMARY_KEYS
    assert (data["lines"], data["screened"], data["rejected"]) == (len(BOOK), len(BOOK), 0)
    assert data["applied"] is None and data["batch_key"] is None
    assert data["vintage"] == "ai-diffusion"
    assert data["starting_state_as_of"] == "2025-06-01"  # the first line's date
    for outcome in data["by_outcome"]:
        assert set(outcome) == {"authorization", "review_policy", "lines"}
    assert {(o["authorization"], o["review_policy"]): o["lines"] for o in data["by_outcome"]} == BOOK_OUTCOMES
    assert sum(o["lines"] for o in data["by_outcome"]) == data["screened"]
    assert data["needs_license"] == 3
    assert set(data["drawn"]) == DRAWN_KINDS
    assert data["drawn"] == BOOK_DRAWN
    decisions = read_decisions(Path(data["out"]))
    assert data["with_warnings"] == sum(d["warnings"] is not None for d in decisions)


def test_human_summary(tmp_path: Path) -> None:
    orders = write_orders(tmp_path / "orders.csv", book_rows())
    result = screen(str(orders), env=home_env(tmp_path))
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    assert f"Screened {len(BOOK)} of {len(BOOK)} lines" in result.stdout
    assert "Lines needing a licence: 3" in result.stdout
    assert "lpp:acme-br:2025" in result.stdout and "26,897,209" in result.stdout  # 26,897,208.8 rounded
    assert "allocation:BR" in result.stdout and "26,928,871" in result.stdout  # 1,701 x 15,831.2
    assert (tmp_path / "orders.decisions.csv").exists()


# ---- refused files ---------------------------------------------------------------------------------


def ten_lines() -> list[dict[str, Any]]:
    return [order(1 + i, line_id=f"L{i + 1}", consignee=f"c{i % 3}") for i in range(10)]


BAD_LINES = (2, 5, 9)
VALUE_CASES = {
    "date-feb-30": ("date", "2025-02-30"),
    "date-dd-mm-yyyy": ("date", "25/01/2025"),
    "unknown-country": ("destination", "Atlantis"),
    "unknown-chip": ("chip", "NVIDIA X9000"),
    "quantity-0": ("quantity", "0"),
    "quantity-negative": ("quantity", "-5"),
    "quantity-fraction": ("quantity", "1.5"),
    "quantity-text": ("quantity", "abc"),
}
# Several problems in one book, one with two bad values on the same line: (line, column, value).
MIXED_PROBLEMS = [
    (2, "date", "2025-02-30"),
    (4, "date", "25/01/2025"),
    (4, "quantity", "abc"),
    (7, "destination", "Atlantis"),
    (10, "chip", "NVIDIA X9000"),
]


def value_case(directory: Path, name: str) -> Path:
    column, value = VALUE_CASES[name]
    rows = ten_lines()
    for number in BAD_LINES:
        rows[number - 1][column] = value
    return write_orders(directory / "orders.csv", rows)


def mixed_case(directory: Path, suffix: str) -> Path:
    rows = ten_lines()
    for number, column, value in MIXED_PROBLEMS:
        rows[number - 1][column] = value
    return write_orders(directory / f"orders.{suffix}", rows, typed=False)


def missing_column(directory: Path) -> Path:
    rows = [{k: v for k, v in r.items() if k != "consignee_id"} for r in ten_lines()]
    return write_orders(directory / "orders.csv", rows)


def unknown_column(directory: Path) -> Path:
    rows = [{**r, "colour": "red"} for r in ten_lines()]
    return write_orders(directory / "orders.csv", rows)


def truncated_parquet(directory: Path) -> Path:
    path = write_orders(directory / "orders.parquet", ten_lines() * 20)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def not_json(directory: Path, after: int) -> Path:
    path = write_orders(directory / "orders.jsonl", [order(1, consignee=f"c{i % 7}") for i in range(after)])
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"date": "2025-06-01", "chip": \n')
        handle.write(json.dumps({k: v for k, v in order(1).items() if v is not None}) + "\n")
    return path


FILE_CASES = {
    "missing-required-column": (missing_column, "consignee_id"),
    "unknown-column": (unknown_column, "colour"),
    "truncated-parquet": (truncated_parquet, "orders.parquet"),
    "jsonl-line-2-not-json": (lambda d: not_json(d, 1), "orders.jsonl"),
    "jsonl-line-1201-not-json": (lambda d: not_json(d, 1200), "orders.jsonl"),
}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any], Future[CliResult]]]:
    """Every refused file screened with --apply against its own seeded SQLite ledger, all started together.
    Per case: the order book, the ledger (url, entries and status before) and the run."""
    cases: dict[str, Any] = {}
    makers: dict[str, Any] = {name: (lambda d, n=name: value_case(d, n)) for name in VALUE_CASES}
    makers |= {f"mixed-{s}": (lambda d, s=s: mixed_case(d, s)) for s in ("csv", "parquet", "jsonl")}
    makers |= {name: maker for name, (maker, _) in FILE_CASES.items()}
    for name, maker in makers.items():
        directory = tmp_path_factory.mktemp(f"refused-{name}")
        orders = maker(directory)
        env = home_env(directory)
        url = env["TIERLINE_DATABASE_URL"]
        seed(url)
        entries, accounts = ledger_rows(url)
        dispose(url)
        before = {"url": url, "entries": entries, "status": accounts}
        args = [str(orders), "--apply", *(["--json"] if name == "mixed-jsonl" else [])]
        if name == "mixed-parquet":  # the decisions (and so the report) go elsewhere
            args += ["--out", str(directory / "elsewhere" / "decided.csv")]
        cases[name] = (orders, before, _POOL.submit(screen, *args, env=env))
    return cases


def assert_nothing_written_or_applied(orders: Path, before: dict[str, Any]) -> None:
    leftovers = {p.name for p in orders.parent.iterdir()} - {orders.name, "tierline-home", "elsewhere"}
    assert not any("decisions" in name and "rejects" not in name for name in leftovers), leftovers
    assert not any(name.startswith(".tierline-") for name in leftovers), leftovers
    entries, accounts = ledger_rows(before["url"])
    assert entries == before["entries"]
    assert accounts == before["status"]
    assert [a["account"] for a in accounts] == ["allocation:BR"]


@pytest.mark.parametrize("name", list(VALUE_CASES))
def test_invalid_values_refuse_the_file(refusals: dict[str, Any], name: str) -> None:
    orders, before, future = refusals[name]
    result = future.result()
    column, value = VALUE_CASES[name]
    assert result.code == EXIT_REFUSED, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "refused" in result.stderr and "Traceback" not in result.stderr
    assert "3 of 10 lines are invalid" in result.stderr.replace("\n", " ")
    assert_nothing_written_or_applied(orders, before)
    report = read_rejects(orders.with_name("orders.decisions.rejects.csv"))
    assert [(line, col, val) for line, col, val, _ in report] == [(n, column, value) for n in BAD_LINES]
    assert all(reason for *_, reason in report)
    assert value in result.stderr  # the first problems are printed


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_every_bad_row_is_reported(refusals: dict[str, Any], suffix: str) -> None:
    orders, before, future = refusals[f"mixed-{suffix}"]
    result = future.result()
    assert result.code == EXIT_REFUSED, (result.stdout, result.stderr)
    assert_nothing_written_or_applied(orders, before)
    rejects = orders.with_name("orders.decisions.rejects.csv")
    if suffix == "parquet":  # --out elsewhere/decided.csv: the report is beside it
        assert not rejects.exists()
        assert [p.name for p in (orders.parent / "elsewhere").iterdir()] == ["decided.rejects.csv"]
        rejects = orders.parent / "elsewhere" / "decided.rejects.csv"
    report = read_rejects(rejects)
    assert sorted((line, col, val) for line, col, val, _ in report) == sorted(MIXED_PROBLEMS)
    assert [line for line, *_ in report] == sorted(line for line, *_ in report)
    if suffix == "jsonl":  # run with --json: the refusal as JSON on stdout
        data = result.json()
        assert data["refused"] is True
        assert data["bad_lines"] == 4  # four lines, five bad values
        assert data["report"] == str(orders.with_name("orders.decisions.rejects.csv"))
        problems = sorted((p["line"], p["column"], p["value"]) for p in data["first_problems"])
        assert problems == sorted(MIXED_PROBLEMS)
    else:
        assert "4 of 10 lines are invalid" in result.stderr.replace("\n", " ")


@pytest.mark.parametrize("name", list(FILE_CASES))
def test_unreadable_files_are_one_line_errors(refusals: dict[str, Any], name: str) -> None:
    orders, before, future = refusals[name]
    result = future.result()
    assert result.code == EXIT_REFUSED, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: orders: "), result.stderr
    assert FILE_CASES[name][1] in lines[0]
    assert_nothing_written_or_applied(orders, before)
    assert not list(orders.parent.glob("*rejects*"))


def test_late_non_json_line_is_named(refusals: dict[str, Any]) -> None:
    _orders, _before, future = refusals["jsonl-line-1201-not-json"]
    assert "1201" in future.result().stderr


def test_first_20_problems_on_stderr(tmp_path: Path) -> None:
    rows = [order(f"bad{i:02d}", consignee="c") for i in range(1, 26)]
    orders = write_orders(tmp_path / "orders.csv", rows)
    result = screen(str(orders), env=home_env(tmp_path))
    assert result.code == EXIT_REFUSED
    shown = [f"bad{i:02d}" for i in range(1, 26) if f"bad{i:02d}" in result.stderr]
    assert shown == [f"bad{i:02d}" for i in range(1, 21)]
    report = read_rejects(tmp_path / "orders.decisions.rejects.csv")
    assert [(line, col, val) for line, col, val, _ in report] == [(i, "quantity", f"bad{i:02d}") for i in range(1, 26)]
    assert not (tmp_path / "orders.decisions.csv").exists()


def test_skip_invalid_screens_the_valid_lines(tmp_path: Path) -> None:
    orders = mixed_case(tmp_path, "csv")
    out = tmp_path / "decided.jsonl"
    data = ok_json(screen(str(orders), "--out", str(out), "--skip-invalid", "--json", env=home_env(tmp_path)))
    assert (data["lines"], data["screened"], data["rejected"]) == (10, 6, 4)
    assert data["rejects"] == str(tmp_path / "decided.rejects.csv")
    decisions = read_decisions(out)
    assert [d["line"] for d in decisions] == [1, 3, 5, 6, 8, 9]
    assert [d["line_id"] for d in decisions] == ["L1", "L3", "L5", "L6", "L8", "L9"]
    assert all(d["authorization"] == "LPP" for d in decisions)  # small lines, fresh consignees
    assert sum(o["lines"] for o in data["by_outcome"]) == 6
    report = read_rejects(tmp_path / "decided.rejects.csv")
    assert sorted((line, col, val) for line, col, val, _ in report) == sorted(MIXED_PROBLEMS)


# ---- --apply -----------------------------------------------------------------------------------------


def test_apply_records_the_draws_once(ledger_env: dict[str, str], ledger_url: str, tmp_path: Path) -> None:
    env = ledger_env
    orders = write_orders(tmp_path / "orders.csv", book_rows())
    data = ok_json(screen(str(orders), "--apply", "--actor", "tester", "--json", env=env))
    digest = hashlib.sha256(orders.read_bytes()).hexdigest()
    assert data["batch_key"] == f"screen:ai-diffusion:{digest}"  # the file's content and the vintage
    assert data["drawn"] == BOOK_DRAWN
    assert data["applied"]["replayed"] is False
    applied = {a["account"]: a["tpp"] for a in data["applied"]["applied"]}
    expected = {a: v for kind in BOOK_DRAWN.values() for a, v in kind.items()}
    assert applied == pytest.approx(expected, rel=1e-12)

    after = status(env, "2025-12-31")  # tierline ledger status --json
    assert {a: row["used"] for a, row in after.items()} == expected
    assert after["lpp:acme-br:2025"]["limit"] == 26_900_000
    assert after["lpp:acme-br:2025"]["headroom"] == pytest.approx(26_900_000 - 26_897_208.8)
    assert after["allocation:BR"]["limit"] == 790_000_000
    # each draw is dated by its line: the allocation lines are dated 2 June
    june1 = api_status(ledger_url, "2025-06-01")
    assert june1["lpp:acme-br:2025"]["used"] == float(1699 * H100_TPP)
    assert june1["allocation:BR"]["used"] == 0
    entries = ledger_rows(ledger_url)[0]
    assert len(entries) >= 3  # at least one entry per account and date: lpp and nveu on 1 June, allocation on 2 June

    replay = ok_json(screen(str(orders), "--apply", "--json", env=env))
    assert "already applied" in replay["note"]
    assert replay["applied"]["replayed"] is True
    assert api_status(ledger_url, "2025-12-31") == after
    assert ledger_rows(ledger_url)[0] == entries

    # a later book starts from the ledger: acme-br has 26,897,208.8 used, so one more unit is a licence
    later = write_orders(tmp_path / "later.csv", [order(1, date="2025-07-01"), order(1, date="2026-01-05")])
    out = ok_json(screen(str(later), "--json", env=env))
    decisions = read_decisions(Path(out["out"]))
    assert [(d["authorization"], d["draw_account"]) for d in decisions] == [
        ("LICENSE", "allocation:BR"),
        ("LPP", "lpp:acme-br:2026"),
    ]


def test_apply_with_a_key_replays_the_same_file(tmp_path: Path) -> None:
    env = home_env(tmp_path)
    orders = write_orders(tmp_path / "orders.csv", book_rows())
    first = screen(str(orders), "--apply", "--key", "batch-7", env=env)
    assert first.code == 0, first.stderr
    assert "Applied to the ledger (key batch-7)" in first.stdout
    url = env["TIERLINE_DATABASE_URL"]
    entries = ledger_rows(url)[0]
    assert {e["account_id"] for e in entries} == {"lpp:acme-br:2025", "allocation:BR", "nveu:nv:BR"}
    again = screen(str(orders), "--apply", "--key", "batch-7", env=env)
    assert again.code == 0, again.stderr
    assert "batch-7 was already applied" in again.stdout
    assert ledger_rows(url)[0] == entries


def test_apply_on_a_refused_file_records_nothing(ledger_env: dict[str, str], ledger_url: str, tmp_path: Path) -> None:
    seed(ledger_url)
    before = ledger_rows(ledger_url)
    orders = mixed_case(tmp_path, "csv")
    result = screen(str(orders), "--apply", env=ledger_env)
    assert result.code == EXIT_REFUSED
    assert ledger_rows(ledger_url) == before
    assert not (tmp_path / "orders.decisions.csv").exists()
    assert api_status(ledger_url, "2027-12-31")["allocation:BR"]["used"] == 1000


def test_apply_uveu_and_g2g_against_the_ledger(ledger_env: dict[str, str], ledger_url: str, tmp_path: Path) -> None:
    """The screening starts from the ledger's UVEU installed base and g2g arrangement, and the ledger
    accepts what it approved. BR's allocation is used up (790,000,000) and a g2g arrangement is recorded
    from 1 June 2025 (cap 1,580,000,000). hyper (US-headquartered UVEU) has 93 H100s in the US: BR lines
    of 6 and 1 units reach 7 / 100 = 7% exactly; one more (8 / 101) falls to LPP."""
    from tierline.ledger import Ledger

    ledger = Ledger(ledger_url)
    ledger.direct_commit("allocation:BR", 790_000_000, effective_date=dt.date(2025, 5, 1), idempotency_key="s1")
    ledger.direct_commit(
        "uveu:hyper:US", 93 * H100_TPP, effective_date=dt.date(2025, 5, 1), idempotency_key="s2", headquarters="US"
    )
    ledger.record_g2g("BR", dt.date(2025, 6, 1), reason="test arrangement", idempotency_key="s3")
    uveu = {"consignee": "hyper", "consignee_headquarters": "US", "consignee_veu": "UVEU"}
    rows = [
        order(1700, date="2025-05-31"),  # > LPP; before the arrangement the allocation is used up
        order(1700, date="2025-06-01"),  # from it: 790,000,000 + 26,913,040 <= 1,580,000,000
        order(6, **uveu),
        order(1, **uveu),
        order(1, **uveu),
    ]
    orders = write_orders(tmp_path / "orders.csv", rows)
    data = ok_json(screen(str(orders), "--apply", "--json", env=ledger_env))
    decisions = read_decisions(Path(data["out"]))
    assert [(d["authorization"], d["review_policy"], d["draw_account"]) for d in decisions] == [
        ("LICENSE", DENIAL, None),
        ("LICENSE", APPROVAL, "allocation:BR"),
        ("UVEU", None, "uveu:hyper:BR"),
        ("UVEU", None, "uveu:hyper:BR"),
        ("LPP", None, "lpp:hyper:2025"),
    ]
    assert data["drawn"] == {
        "allocation": {"allocation:BR": float(1700 * H100_TPP)},
        "lpp": {"lpp:hyper:2025": float(H100_TPP)},
        "nveu": {},
        "uveu": {"uveu:hyper:BR": float(7 * H100_TPP)},
    }
    after = api_status(ledger_url, "2025-12-31")
    assert after["allocation:BR"]["used"] == 790_000_000 + 26_913_040
    assert after["allocation:BR"]["limit"] == 1_580_000_000
    assert after["uveu:hyper:BR"]["used"] == float(7 * H100_TPP)  # 110,818.4
    assert after["lpp:hyper:2025"]["used"] == float(H100_TPP)


def test_consignee_id_the_ledger_cannot_name_is_a_bad_row(tmp_path: Path) -> None:
    # an LPP account is lpp:ENTITY:YEAR, so a ':' in the consignee identifier makes an account the
    # ledger cannot parse. Wanted: the line is reported like any invalid value and nothing is written.
    env = home_env(tmp_path)
    orders = write_orders(tmp_path / "orders.csv", [order(3, consignee="acme:br"), order(3, consignee="fine")])
    result = screen(str(orders), "--apply", env=env)
    assert result.code == EXIT_REFUSED, (result.stdout, result.stderr)
    assert ledger_rows(env["TIERLINE_DATABASE_URL"])[0] == []
    assert not (tmp_path / "orders.decisions.csv").exists()
    report = read_rejects(tmp_path / "orders.decisions.rejects.csv")
    assert [(line, col, val) for line, col, val, _ in report] == [(1, "consignee_id", "acme:br")]


def test_human_summary_prints_account_names_verbatim(tmp_path: Path) -> None:
    orders = write_orders(tmp_path / "orders.csv", [order(3, consignee="ok")])
    result = screen(str(orders), env=home_env(tmp_path))
    assert result.code == 0, result.stderr
    assert "lpp:ok:2025" in result.stdout


def test_apply_with_a_key_used_for_another_file_is_refused(tmp_path: Path) -> None:
    env = home_env(tmp_path)
    first = write_orders(tmp_path / "first.csv", book_rows())
    ok_json(screen(str(first), "--apply", "--key", "batch-7", "--json", env=env))
    url = env["TIERLINE_DATABASE_URL"]
    entries = ledger_rows(url)[0]
    second = write_orders(tmp_path / "second.csv", [order(5, consignee="someone-else")])
    result = screen(str(second), "--apply", "--key", "batch-7", "--json", env=env)
    assert ledger_rows(url)[0] == entries  # nothing recorded either way
    assert result.code == EXIT_REFUSED, (result.code, result.stdout)
    assert "--key" in result.stderr and "already used" in result.stderr


# ---- sample-orders ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three 2,000-line books: the default seed twice and seed 1; then the first one screened."""
    directory = tmp_path_factory.mktemp("samples")
    paths = {"a": directory / "a.csv", "b": directory / "b.csv", "other": directory / "other.csv"}
    runs = [
        _POOL.submit(run_cli, "sample-orders", "--rows", "2000", "--out", str(paths[name]), *seed_args)
        for name, seed_args in (("a", ()), ("b", ()), ("other", ("--seed", "1")))
    ]
    for run in runs:
        result = run.result()
        assert result.code == 0, result.stderr
        assert "2,000" in result.stdout
    return paths


@pytest.fixture(scope="module", autouse=True)
def _prefetch(request: pytest.FixtureRequest) -> None:
    """Start the module's independent runs up front, so they overlap the sequential --apply tests."""
    for name in ("samples", "refusals", "round_trips"):
        request.getfixturevalue(name)


def sample(samples: dict[str, Path]) -> pl.DataFrame:
    frame = pl.read_csv(samples["a"], infer_schema=False)
    assert frame.height == 2000
    return frame


def test_sample_same_seed_same_file(samples: dict[str, Path]) -> None:
    assert samples["a"].read_bytes() == samples["b"].read_bytes()
    assert samples["a"].read_bytes() != samples["other"].read_bytes()


def test_sample_dates_in_order_within_2025_2027(samples: dict[str, Path]) -> None:
    dates = [dt.date.fromisoformat(d) for d in sample(samples)["date"].to_list()]
    assert dates == sorted(dates)
    assert dt.date(2025, 1, 15) <= dates[0] and dates[-1] <= dt.date(2027, 12, 31)


def test_sample_destinations_cover_the_three_tiers(samples: dict[str, Path]) -> None:
    from tierline.policy import Context
    from tierline.tiers import tier_of

    ctx = Context.make(vintage="ai-diffusion", as_of="2025-06-01")
    destinations = set(sample(samples)["destination"].to_list())
    assert {tier_of(code, ctx).tier for code in destinations} == {1, 2, 3}


def test_sample_has_at_least_50_destinations(samples: dict[str, Path]) -> None:
    assert sample(samples)["destination"].n_unique() >= 50


def test_sample_consignees_headquartered_elsewhere(samples: dict[str, Path]) -> None:
    frame = sample(samples)
    elsewhere = frame.filter(pl.col("consignee_headquarters") != pl.col("destination"))
    assert elsewhere.height > 0
    assert elsewhere["consignee_id"].n_unique() >= 2


def test_sample_has_uveu_and_nveu_consignees(samples: dict[str, Path]) -> None:
    veu = set(sample(samples)["consignee_veu"].drop_nulls().to_list())
    assert veu == {"UVEU", "NVEU"}


def test_sample_screens_without_rejects(samples: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "sample.decisions.parquet"
    data = ok_json(screen(str(samples["a"]), "--out", str(out), "--json", env=home_env(tmp_path)))
    assert (data["lines"], data["screened"], data["rejected"]) == (2000, 2000, 0)
    assert sum(o["lines"] for o in data["by_outcome"]) == 2000
    decisions = read_decisions(out)
    totals: dict[str, float] = {}
    for d in decisions:
        if d["draw_account"] is not None:
            totals[d["draw_account"]] = totals.get(d["draw_account"], 0.0) + d["draw_tpp"]
    drawn = {a: v for kind in data["drawn"].values() for a, v in kind.items()}
    assert drawn == pytest.approx(totals, rel=1e-12)
