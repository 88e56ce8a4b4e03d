"""32 worker processes race for the last units of a country allocation and of an LPP allowance.

On SQLite (BEGIN IMMEDIATE on one file) and PostgreSQL (row locks): the committed total never passes
the limit, equals exactly what the workers were told they committed (no lost or phantom draw), every
worker gets a definite answer (a commit, or a TierlineError about headroom), and the audit verifies.

Hand arithmetic: allocation:BR is pre-filled to 790,000,000 - 10 x 1,000,000 = 780,000,000, so exactly
10 draws of 1,000,000 fit; lpp:acme:2025 is pre-filled to 26,900,000 - 10 x 1,000,000 = 16,900,000,
so exactly 10 fit too. 32 workers x 2 attempts = 64 attempts per account.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import select
import subprocess
import sys
import time
from typing import Any

from tierline.ledger import Ledger

WORKERS = 32
ATTEMPTS = 2
DRAW = 1_000_000
FIT = 10
D = dt.date(2025, 6, 1)
ACCOUNTS = {"allocation:BR": 790_000_000, "lpp:acme:2025": 26_900_000}
TIMEOUT = 90.0

WORKER = r"""
import json, sys, datetime as dt
from tierline.errors import TierlineError
from tierline.ledger import Ledger

url, tag, accounts, attempts, tpp = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4]), int(sys.argv[5])
ledger = Ledger(url)
ledger.status(as_of=dt.date(2025, 6, 1))  # connect before the start signal
print("ready", flush=True)
sys.stdin.readline()
out = []
for i in range(attempts):
    for account in accounts:
        try:
            hold = ledger.reserve(account, tpp, effective_date=dt.date(2025, 6, 1), idempotency_key=f"{tag}-{account}-r{i}")
        except TierlineError as exc:
            out.append({"account": account, "ok": False, "stage": "reserve", "field": exc.field, "reason": exc.reason})
            continue
        try:
            done = ledger.commit(hold["hold_id"], idempotency_key=f"{tag}-{account}-c{i}")
        except TierlineError as exc:
            out.append({"account": account, "ok": False, "stage": "commit", "field": exc.field, "reason": exc.reason})
            continue
        out.append({"account": account, "ok": True, "tpp": done["tpp"], "replayed": done["replayed"]})
print(json.dumps(out), flush=True)
"""


def _start_workers(url: str) -> list[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if k != "TIERLINE_POLICY_DIR"}
    return [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, f"w{n}", ",".join(ACCOUNTS), str(ATTEMPTS), str(DRAW)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(WORKERS)
    ]


def _wait_ready(workers: list[subprocess.Popen[str]], deadline: float) -> None:
    waiting = {w.stdout.fileno(): w for w in workers if w.stdout}
    while waiting:
        left = deadline - time.monotonic()
        assert left > 0, f"{len(waiting)} worker(s) never became ready"
        readable, _, _ = select.select(list(waiting), [], [], left)
        for fd in readable:
            worker = waiting.pop(fd)
            line = worker.stdout.readline() if worker.stdout else ""
            assert line.strip() == "ready", (
                f"worker failed to start: {line!r} {worker.stderr.read() if worker.stderr else ''}"
            )


def _race(url: str) -> list[dict[str, Any]]:
    """Start the workers, release them together, collect every worker's answers (or fail on a hang/crash)."""
    workers = _start_workers(url)
    deadline = time.monotonic() + TIMEOUT
    try:
        _wait_ready(workers, deadline)
        for w in workers:  # the start signal, as close together as possible
            assert w.stdin
            w.stdin.write("go\n")
            w.stdin.flush()
        results = []
        for n, w in enumerate(workers):
            out, err = w.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert w.returncode == 0, f"worker {n} crashed (exit {w.returncode}):\n{err}"
            assert "Traceback" not in err, err
            answers = json.loads(out.strip().splitlines()[-1])
            assert len(answers) == ATTEMPTS * len(ACCOUNTS), f"worker {n} gave {answers}"
            results += [{**a, "worker": n} for a in answers]
        return results
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()


def _committed_micro(ledger: Ledger, account: str) -> int:
    return sum(e["amount_micro"] for e in ledger.entries() if e["account_id"] == account)


def test_workers_race_for_the_last_units(ledger_url: str) -> None:
    started = time.monotonic()
    ledger = Ledger(ledger_url)
    for account, limit in ACCOUNTS.items():
        ledger.direct_commit(account, limit - FIT * DRAW, effective_date=D, idempotency_key=f"prefill-{account}")
    results = _race(ledger_url)

    for account, limit in ACCOUNTS.items():
        mine = [r for r in results if r["account"] == account]
        assert len(mine) == WORKERS * ATTEMPTS
        wins = [r for r in mine if r["ok"]]
        losses = [r for r in mine if not r["ok"]]
        # every loss is a definite, headroom answer at reserve time (a reserved hold is always committable)
        for r in losses:
            assert (r["stage"], r["field"]) == ("reserve", "tpp"), r
            assert "exceeds the headroom" in r["reason"] and account in r["reason"], r
        assert all(r["tpp"] == DRAW and r["replayed"] is False for r in wins)

        committed = _committed_micro(ledger, account)
        prefill = (limit - FIT * DRAW) * 1_000_000
        assert committed <= limit * 1_000_000, "the limit was overrun"
        assert committed == prefill + len(wins) * DRAW * 1_000_000, "a draw was lost or counted twice"
        # holds always end committed and only refusals are at the line, so exactly the 10 that fit were taken
        assert len(wins) == FIT
        [row] = [r for r in ledger.status(as_of=D) if r["account"] == account]
        assert (row["used"], row["held"], row["headroom"]) == (limit, 0, 0)
        events = ledger.history(account)
        assert [e["op"] for e in events].count("commit") == FIT
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    result = ledger.verify()
    assert result["ok"], result["problems"]
    assert time.monotonic() - started < 90


def test_workers_with_the_same_keys_count_once(ledger_url: str) -> None:
    """Every worker retries the same idempotent direct commit at once: it is recorded exactly once."""
    ledger = Ledger(ledger_url)
    ledger.direct_commit("allocation:MX", 1, effective_date=D, idempotency_key="create")
    snippet = r"""
import json, sys, datetime as dt
from tierline.ledger import Ledger
ledger = Ledger(sys.argv[1])
ledger.status(as_of=dt.date(2025, 6, 1))
print("ready", flush=True)
sys.stdin.readline()
r = ledger.direct_commit("allocation:MX", 1000, effective_date=dt.date(2025, 6, 1), idempotency_key="same-key")
print(json.dumps(r), flush=True)
"""
    env = {k: v for k, v in os.environ.items() if k != "TIERLINE_POLICY_DIR"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", snippet, ledger_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(8)
    ]
    try:
        _wait_ready(workers, time.monotonic() + TIMEOUT)
        for w in workers:
            assert w.stdin
            w.stdin.write("go\n")
            w.stdin.flush()
        answers = []
        for w in workers:
            out, err = w.communicate(timeout=TIMEOUT)
            assert w.returncode == 0, err
            answers.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert sorted(a["replayed"] for a in answers) == [False] + [True] * 7
    assert {json.dumps(a["applied"]) for a in answers} == {json.dumps([{"account": "allocation:MX", "tpp": 1000.0}])}
    assert _committed_micro(ledger, "allocation:MX") == (1 + 1000) * 1_000_000
    assert ledger.verify()["ok"]


FIRST_USE = r"""
import json, sys, datetime as dt
from tierline.ledger import Ledger
print("ready", flush=True)
sys.stdin.readline()
ledger = Ledger(sys.argv[1])  # the first use of an empty database creates the schema
r = ledger.direct_commit("allocation:BR", 1, effective_date=dt.date(2025, 6, 1), idempotency_key=sys.argv[2])
print(json.dumps(r), flush=True)
"""


def test_processes_using_a_new_database_at_once_all_succeed(ledger_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TIERLINE_POLICY_DIR"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_USE, ledger_url, f"first-{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(12)
    ]
    failures = []
    try:
        _wait_ready(workers, time.monotonic() + TIMEOUT)
        for w in workers:
            assert w.stdin
            w.stdin.write("go\n")
            w.stdin.flush()
        for w in workers:
            _out, err = w.communicate(timeout=TIMEOUT)
            if w.returncode != 0:
                errors = [line for line in err.splitlines() if "Error" in line]
                failures.append(errors[-1] if errors else f"exit {w.returncode}: {err[-300:]}")
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
    assert failures == []
    ledger = Ledger(ledger_url)
    assert _committed_micro(ledger, "allocation:BR") == 12 * 1_000_000
