"""40 HTTP clients race for the last units of a country allocation and of an LPP allowance, through the
real service (``tierline serve``) on SQLite and on PostgreSQL.

Each client is a thread with its own httpx connection; all start together at a barrier and
reserve-then-commit 1,000,000 TPP on both accounts. The committed total never passes the limit,
exactly the draws that fit succeed, every client gets a definite answer (2xx, or a 422 problem naming
`tpp`; never a 5xx or a timeout), and the audit trail verifies afterwards.

Hand arithmetic: a Tier 2 allocation is 790,000,000 TPP; allocation:PL is pre-filled (POST
/v1/ledger/adjust) to 790,000,000 - 10 x 1,000,000 = 780,000,000, so exactly 10 draws fit. The LPP
limit is 26,900,000 TPP per consignee-year; lpp:<race>:2025 is pre-filled (``tierline ledger adjust``)
to 26,900,000 - 10 x 1,000,000 = 16,900,000, so exactly 10 fit too. 40 clients x 2 accounts = 80
attempts for 20 slots.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api_server import BACKENDS, PROBLEM, Key, Server, running_server

CLIENTS = 40
DRAW = 1_000_000
FIT = 10
DAY = "2025-06-01"
ALLOCATION = 790_000_000
LPP_LIMIT = 26_900_000
TIMEOUT = 90.0


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(request.param, tmp_path_factory.mktemp(f"race-{request.param}")) as running:
        yield running


@pytest.fixture(scope="module")
def officer(server: Server) -> Key:
    return server.create_key("officer", "race")


def _client(server: Server, key: Key, n: int) -> httpx.Client:
    """Its own connection (no pool shared between clients)."""
    return server.client(key, header="bearer" if n % 2 else "x-api-key", timeout=TIMEOUT)


def _race(server: Server, key: Key, accounts: list[str], tag: str) -> list[dict[str, Any]]:
    barrier = threading.Barrier(CLIENTS, timeout=TIMEOUT)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        out: list[dict[str, Any]] = []
        try:
            with _client(server, key, n) as client:
                assert client.get("/healthz").status_code == 200  # connect before the start
                barrier.wait()
                order = accounts if n % 2 else accounts[::-1]  # half the clients take the accounts the other way
                for account in order:
                    reserve = client.post(
                        "/v1/ledger/reserve",
                        json={"account": account, "tpp": DRAW, "effective_date": DAY},
                        headers={"Idempotency-Key": f"{tag}-{n}-{account}-r"},
                    )
                    entry: dict[str, Any] = {"client": n, "account": account, "reserve": reserve.status_code}
                    if reserve.status_code == 422:
                        entry["problem"] = (reserve.headers["content-type"], reserve.json())
                    elif reserve.status_code == 200:
                        commit = client.post(
                            f"/v1/ledger/holds/{reserve.json()['hold_id']}/commit",
                            headers={"Idempotency-Key": f"{tag}-{n}-{account}-c"},
                        )
                        entry["commit"] = commit.status_code
                        entry["body"] = commit.json()
                    out.append(entry)
        except BaseException as exc:  # noqa: BLE001 - every client must report; a timeout is a failure
            out.append({"client": n, "error": f"{type(exc).__name__}: {exc}"})
        with lock:
            results.extend(out)

    threads = [threading.Thread(target=run, args=(n,), name=f"race-{n}") for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT + 30)
    assert not any(t.is_alive() for t in threads), "a client never finished"
    return results


def test_clients_race_for_the_last_units(server: Server, officer: Key) -> None:
    tag = uuid.uuid4().hex[:8]
    allocation, lpp = "allocation:PL", f"lpp:race-{tag}:2025"
    limits = {allocation: ALLOCATION, lpp: LPP_LIMIT}

    with server.client(officer) as client:  # usage leaving room for exactly FIT draws
        filled = client.post(
            "/v1/ledger/adjust",
            json={
                "account": allocation,
                "tpp": ALLOCATION - FIT * DRAW,
                "reason": "race test: earlier shipments",
                "effective_date": DAY,
            },
            headers={"Idempotency-Key": f"{tag}-prefill"},
        )
        assert filled.status_code == 200, filled.text
    cli = server.cli(
        "ledger", "adjust", lpp, "--tpp", str(LPP_LIMIT - FIT * DRAW), "--date", DAY,
        "--reason", "race test: earlier shipments", "--key", f"{tag}-prefill-lpp", "--json",
    )  # fmt: skip
    assert cli.code == 0, cli.stderr

    results = _race(server, officer, [allocation, lpp], tag)

    errors = [r for r in results if "error" in r]
    assert not errors, errors
    assert len(results) == CLIENTS * len(limits), "a client gave no answer for an account"
    for account in limits:
        mine = [r for r in results if r["account"] == account]
        assert len(mine) == CLIENTS
        wins = [r for r in mine if r["reserve"] == 200]
        losses = [r for r in mine if r["reserve"] != 200]
        for r in losses:  # a definite refusal: a 422 problem about the headroom
            assert r["reserve"] == 422, r
            content_type, problem = r["problem"]
            assert content_type.startswith(PROBLEM) and problem["status"] == 422, r
            assert [e["field"] for e in problem["errors"]] == ["tpp"], r
            assert account in problem["detail"], r
        for r in wins:  # a hold, once taken, is always committed
            assert r["commit"] == 200, r
            assert (r["body"]["status"], r["body"]["tpp"], r["body"]["replayed"]) == ("committed", DRAW, False)
        assert len(wins) == FIT, f"{account}: {len(wins)} draws succeeded, {FIT} fit"

    with server.client(officer) as client:
        rows = {r["account"]: r for r in client.get("/v1/ledger/accounts", params={"as_of": DAY}).json()["accounts"]}
        for account, limit in limits.items():
            row = rows[account]
            assert row["used"] <= limit, f"{account} overrun"
            assert (row["used"], row["held"], row["limit"], row["headroom"]) == (limit, 0, limit, 0), row
            events = client.get(f"/v1/ledger/accounts/{account}/history").json()["events"]
            commits = [e for e in events if e["op"] == "commit"]
            assert len(commits) == FIT
            assert {e["actor"] for e in commits} == {f"key:{officer.id}"}
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        verify = client.get("/v1/ledger/verify").json()
        assert verify["ok"] is True, verify["problems"]


def test_clients_retrying_one_idempotency_key_get_one_hold(server: Server, officer: Key) -> None:
    """Every client sends the same reserve with the same Idempotency-Key at once: one hold, recorded once."""
    tag = uuid.uuid4().hex[:8]
    account = f"lpp:retry-{tag}:2025"
    barrier = threading.Barrier(CLIENTS, timeout=TIMEOUT)
    answers: list[Any] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        try:
            with _client(server, officer, n) as client:
                client.get("/healthz")
                barrier.wait()
                response = client.post(
                    "/v1/ledger/reserve",
                    json={"account": account, "tpp": DRAW, "effective_date": DAY},
                    headers={"Idempotency-Key": f"{tag}-same"},
                )
                answer: Any = (response.status_code, response.json())
        except BaseException as exc:  # noqa: BLE001
            answer = ("error", f"{type(exc).__name__}: {exc}")
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT + 30)
    assert len(answers) == CLIENTS
    assert {status for status, _ in answers} == {200}, answers
    assert len({body["hold_id"] for _, body in answers}) == 1
    assert sorted(body["replayed"] for _, body in answers) == [False] + [True] * (CLIENTS - 1)
    with server.client(officer) as client:
        [row] = client.get("/v1/ledger/accounts", params={"consignee": f"retry-{tag}", "as_of": DAY}).json()["accounts"]
        assert (row["used"], row["held"]) == (0, DRAW)
        events = client.get(f"/v1/ledger/accounts/{account}/history").json()["events"]
        assert [e["op"] for e in events] == ["reserve"]
        assert client.get("/v1/ledger/verify").json()["ok"] is True


def test_a_request_waiting_for_a_lock_does_not_stall_the_server(server: Server, officer: Key) -> None:
    """Another writer (here a plain database session standing for a second tierline process) holds the
    account's lock: the request that needs it waits, the server keeps answering, and the request
    completes once the lock is released."""
    tag = uuid.uuid4().hex[:8]
    account = f"lpp:lock-{tag}:2025"
    body = {"account": account, "tpp": DRAW, "effective_date": DAY}
    with server.client(officer) as client:
        assert client.post("/v1/ledger/reserve", json=body, headers={"Idempotency-Key": f"{tag}-0"}).status_code == 200

    other: Any
    if server.database_url:  # PostgreSQL: a row lock on the account
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(server.database_url)
        other = psycopg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
        )
        other.execute("SELECT id FROM accounts WHERE id = %s FOR UPDATE", (account,))
    else:  # SQLite: the database's write lock
        other = sqlite3.connect(server.home / "tierline.db", isolation_level=None, timeout=30)
        other.execute("BEGIN IMMEDIATE")
    answer: dict[str, Any] = {}

    def blocked() -> None:
        try:
            with server.client(officer) as client:
                response = client.post("/v1/ledger/reserve", json=body, headers={"Idempotency-Key": f"{tag}-1"})
                answer["status"] = response.status_code
        except BaseException as exc:  # noqa: BLE001
            answer["error"] = f"{type(exc).__name__}: {exc}"

    waiting = threading.Thread(target=blocked)
    try:
        waiting.start()
        time.sleep(0.5)
        assert waiting.is_alive() and not answer, f"the write did not wait for the lock: {answer}"
        with server.client(timeout=5) as client:  # the rest of the server still answers
            assert client.get("/healthz").status_code == 200
        with server.client(officer, timeout=5) as client:
            assert client.get("/v1/chips/H20").status_code == 200
    finally:
        other.commit() if server.database_url else other.execute("COMMIT")
        other.close()
        waiting.join(TIMEOUT)
    assert answer == {"status": 200}
    with server.client(officer) as client:
        [row] = client.get("/v1/ledger/accounts", params={"consignee": f"lock-{tag}", "as_of": DAY}).json()["accounts"]
        assert row["held"] == 2 * DRAW
