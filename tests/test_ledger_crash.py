"""Crash safety: a process applying a large batch is killed with SIGKILL at random moments.

After every kill the ledger holds exactly the state before the batch or exactly the state after it
(per-account committed totals, from the entries and from the account rows), never anything in
between; the audit verifies; re-running the same batch with the same idempotency key completes it
exactly once, and a further retry is a replay.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy import select as sa_select
from sqlalchemy.engine import make_url

from tierline.ledger import Draw, Ledger
from tierline.ledger.schema import ACCOUNTS

D = dt.date(2025, 6, 1)
MIN_LINES, MAX_LINES = 400, 12800
MIN_SECONDS = 0.15  # a batch must take at least this long, so kills can land inside it
APP_NAME = "tierline-crash-test"
COUNTRIES = ["BR", "MX", "IN", "SA", "AE", "SG", "IL", "PL", "CH", "TR"]

CHILD = r"""
import json, sys, time, datetime as dt
from tierline.ledger import Draw, Ledger

url, key, path = sys.argv[1:4]
draws = [Draw(a, t, dt.date.fromisoformat(d)) for a, t, d in json.loads(open(path).read())]
ledger = Ledger(url)
ledger.status(as_of=dt.date(2025, 6, 1))  # connected and migrated before the clock starts
print("ready", flush=True)
started = time.perf_counter()
result = ledger.apply(draws, idempotency_key=key, actor="crash-test", note="batch " + key)
print(json.dumps({"elapsed": time.perf_counter() - started, "replayed": result["replayed"]}), flush=True)
"""


def batch(run: int, lines: int) -> list[list[Any]]:
    """`lines` draws over 35 accounts (allocation, LPP and NVEU), amounts varying by run and line."""
    out = []
    for i in range(lines):
        cc = COUNTRIES[i % len(COUNTRIES)]
        account = [f"allocation:{cc}", f"lpp:c{i % 15}:2025", f"nveu:n{i % 10}:{cc}"][i % 3]
        out.append([account, 100 + run * 7 + i % 13 + (i % 4) / 4, D.isoformat()])
    return out


def expected_delta(draws: list[list[Any]]) -> Counter[str]:
    """Hand-summed micro-TPP per account (amounts are multiples of 1/4 TPP, exact in micro-TPP)."""
    total: Counter[str] = Counter()
    for account, tpp, _day in draws:
        total[account] += round(tpp * 4) * 250_000
    return total


def totals(ledger: Ledger) -> tuple[dict[str, int], dict[str, int]]:
    """Per-account committed micro-TPP from the entries and from the account rows (must agree)."""
    by_entries: Counter[str] = Counter()
    for e in ledger.entries():
        by_entries[e["account_id"]] += e["amount_micro"]
    with ledger.engine.connect() as conn:
        rows = {
            r.id: r.committed_micro
            for r in conn.execute(sa_select(ACCOUNTS.c.id, ACCOUNTS.c.committed_micro))
            if r.committed_micro or r.id in by_entries
        }
    return dict(by_entries), rows


def state(ledger: Ledger) -> dict[str, int]:
    by_entries, by_rows = totals(ledger)
    assert by_entries == by_rows, "entries and account balances disagree"
    return by_entries


def plus(before: dict[str, int], delta: Counter[str]) -> dict[str, int]:
    out = Counter(before)
    out.update(delta)
    return dict(out)


class Probe:
    """Tells whether the child is inside its write transaction right now."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        self.engine = None if self.sqlite else create_engine(url, isolation_level="AUTOCOMMIT")

    def in_write(self) -> bool:
        if self.sqlite:
            conn = sqlite3.connect(make_url(self.url).database, timeout=0, isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("ROLLBACK")
                return False
            except sqlite3.OperationalError:
                return True  # another writer holds the database
            finally:
                conn.close()
        assert self.engine is not None
        with self.engine.connect() as conn:
            return bool(
                conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %(app)s "
                    "AND xact_start IS NOT NULL AND state <> 'idle'",
                    {"app": APP_NAME},
                ).scalar()
            )

    def wait_gone(self, timeout: float = 30.0) -> None:
        """PostgreSQL: wait until the killed client's backend has ended (its transaction is settled)."""
        if self.sqlite:
            return
        assert self.engine is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                n = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %(app)s", {"app": APP_NAME}
                ).scalar()
            if not n:
                return
            time.sleep(0.02)
        raise AssertionError("the killed client's PostgreSQL backend did not go away")

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def child_url(url: str) -> str:
    if url.startswith("sqlite"):
        return url
    return make_url(url).update_query_dict({"application_name": APP_NAME}).render_as_string(hide_password=False)


def start_child(url: str, key: str, draws: list[list[Any]], tmp_path: Path) -> subprocess.Popen[str]:
    spec = tmp_path / f"{key}.json"
    spec.write_text(json.dumps(draws), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "TIERLINE_POLICY_DIR"}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, child_url(url), key, str(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready, "the child never became ready"
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"{line!r}: {proc.stderr.read() if proc.stderr else ''}"
    return proc


def rerun(ledger: Ledger, draws: list[list[Any]], key: str) -> dict[str, Any]:
    """The same batch, with the same key, actor and note as the child's."""
    return ledger.apply(
        [Draw(a, t, dt.date.fromisoformat(d)) for a, t, d in draws],
        idempotency_key=key,
        actor="crash-test",
        note="batch " + key,
    )


def kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def test_a_killed_batch_is_all_or_nothing_and_completes_once_on_retry(ledger_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    rng = random.Random(20250601)
    ledger = Ledger(ledger_url)
    ledger.direct_commit("allocation:BR", 1_000, effective_date=D, idempotency_key="seed")
    probe = Probe(ledger_url)
    try:
        # complete runs first: they must finish, and they size the batch so that it takes > MIN_SECONDS here
        expected = {"allocation:BR": 1_000_000_000}
        lines = MIN_LINES
        while True:
            draws = batch(0, lines)
            proc = start_child(ledger_url, f"size-{lines}", draws, tmp_path)
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            elapsed = json.loads(out.strip().splitlines()[-1])["elapsed"]
            expected = plus(expected, expected_delta(draws))
            assert state(ledger) == expected
            if elapsed >= MIN_SECONDS or lines >= MAX_LINES:
                break
            lines *= 2
        assert elapsed >= MIN_SECONDS, f"{lines} lines took only {elapsed:.3f}s"

        # kills spread over the batch's lifetime (jittered), one run left to finish, two at an observed open transaction
        fractions = [0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 1.05]
        plans: list[tuple[str, float]] = [("delay", f * elapsed * rng.uniform(0.9, 1.1)) for f in fractions]
        plans += [("finish", 0.0), ("in-transaction", 0.0), ("in-transaction", 0.0)]
        outcomes = []
        for run, (how, delay) in enumerate(plans, start=1):
            key = f"run-{run}"
            draws = batch(run, lines)
            before = state(ledger)
            after = plus(before, expected_delta(draws))
            proc = start_child(ledger_url, key, draws, tmp_path)
            seen_open = False
            if how == "delay":
                time.sleep(delay)
            elif how == "finish":
                assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
            else:
                deadline = time.monotonic() + 30
                while not seen_open and proc.poll() is None and time.monotonic() < deadline:
                    seen_open = probe.in_write()
            kill(proc)
            probe.wait_gone()

            now = state(ledger)
            assert now in (before, after), f"run {run} ({how} {delay:.3f}s): a partial batch is visible"
            landed = "after" if now == after and now != before else "before"
            outcomes.append((how, round(delay, 3), seen_open, landed))
            check = ledger.verify()
            assert check["ok"], check["problems"]

            retry = rerun(ledger, draws, key)
            assert retry["replayed"] is (landed == "after"), outcomes
            assert retry["lines"] == lines
            assert state(ledger) == after
            again = rerun(ledger, draws, key)
            assert again["replayed"] is True
            assert state(ledger) == after
            assert ledger.verify()["ok"]

        # kills landed inside an open write transaction (observed by the probe) and after the commit
        assert any(seen and landed == "before" for _how, _d, seen, landed in outcomes), outcomes
        assert any(landed == "after" for *_rest, landed in outcomes), outcomes
    finally:
        probe.close()
    assert time.monotonic() - started < 150


@pytest.mark.parametrize("lines", [1, 50])
def test_a_batch_killed_before_it_starts_leaves_nothing(ledger_url: str, tmp_path: Path, lines: int) -> None:
    """The degenerate case: killed right after start-up, the ledger is untouched and the key unused."""
    ledger = Ledger(ledger_url)
    ledger.direct_commit("allocation:MX", 5, effective_date=D, idempotency_key="seed")
    before = state(ledger)
    draws = batch(99, lines)
    proc = start_child(ledger_url, "early", draws, tmp_path)
    kill(proc)
    Probe(ledger_url).wait_gone()
    now = state(ledger)
    assert now in (before, plus(before, expected_delta(draws)))
    result = rerun(ledger, draws, "early")
    assert state(ledger) == plus(before, expected_delta(draws))
    assert result["replayed"] is (now != before)
    assert ledger.verify()["ok"]
