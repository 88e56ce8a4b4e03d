"""Ledger throughput: committed reservations per second (reserve, then commit: two audited,
idempotent transactions), next to a bare transaction (one-row update plus one insert) on the same
database in the same run.

SQLite: one writer. PostgreSQL (TIERLINE_BENCH_POSTGRES_URL, or start one with
``bash scripts/postgres.sh start``): 16 concurrent client processes.
Run: ``.venv/bin/python benchmarks/ledger.py [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import tempfile
import time
import uuid

from sqlalchemy import create_engine, text

from tierline.ledger import Ledger

DAY = dt.date(2025, 6, 1)
# one account per client, as the bare transaction updates one row per client
COUNTRIES = ["BR", "IN", "SG", "MX", "PL", "IL", "CH", "AT", "PT", "MY", "TH", "ID", "CL", "AR", "ZA", "TR"]


def reservations(url: str, seconds: float, worker: int) -> int:
    ledger = Ledger(url)
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        key = uuid.uuid4().hex
        hold = ledger.reserve(f"allocation:{COUNTRIES[worker % 16]}", 1, effective_date=DAY, idempotency_key=f"r-{key}")
        ledger.commit(hold["hold_id"], idempotency_key=f"c-{key}")
        done += 1
    return done


def direct(url: str, seconds: float, worker: int) -> int:
    ledger = Ledger(url)
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        ledger.direct_commit(
            f"allocation:{COUNTRIES[worker % 16]}",
            1,
            effective_date=DAY,
            idempotency_key=f"d-{uuid.uuid4().hex}",
        )
        done += 1
    return done


def bare_sqlalchemy(url: str, seconds: float, worker: int) -> int:
    """One-row update plus one insert per transaction through SQLAlchemy (an engine with the ledger's
    SQLite settings, a pooled connection per transaction): what a typical SQLAlchemy app pays."""
    from tierline.ledger.db import make_engine

    engine = make_engine(url)
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        with engine.connect() as conn:
            conn = conn.execution_options(tierline_write=True)
            with conn.begin():
                conn.execute(text("UPDATE bench_counter SET n = n + 1 WHERE id = :id"), {"id": worker % 16})
                conn.execute(
                    text("INSERT INTO bench_log (worker, at) VALUES (:w, :t)"), {"w": worker, "t": time.time()}
                )
        done += 1
    return done


def bare(url: str, seconds: float, worker: int) -> int:
    """The floor: one-row update plus one insert per transaction on one driver connection."""
    engine = create_engine(url)
    sqlite = url.startswith("sqlite")
    param = (lambda name: f":{name}") if sqlite else (lambda name: f"%({name})s")
    update = f"UPDATE bench_counter SET n = n + 1 WHERE id = {param('id')}"
    insert = f"INSERT INTO bench_log (worker, at) VALUES ({param('w')}, {param('t')})"
    done, end = 0, time.perf_counter() + seconds
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        if sqlite:  # the ledger's settings: WAL, synchronous=NORMAL, explicit transactions
            raw.isolation_level = None
            raw.execute("PRAGMA synchronous=NORMAL")
        cursor = raw.cursor()
        while time.perf_counter() < end:
            if sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            cursor.execute(update, {"id": worker % 16})
            cursor.execute(insert, {"w": worker, "t": time.time()})
            if sqlite:
                cursor.execute("COMMIT")
            else:
                raw.commit()
            done += 1
    return done


def _setup_bare(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_counter"))
        conn.execute(text("DROP TABLE IF EXISTS bench_log"))
        conn.execute(text("CREATE TABLE bench_counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)"))
        conn.execute(
            text(
                "CREATE TABLE bench_log (id SERIAL PRIMARY KEY, worker INTEGER, at DOUBLE PRECISION)"
                if not url.startswith("sqlite")
                else "CREATE TABLE bench_log (id INTEGER PRIMARY KEY AUTOINCREMENT, worker INTEGER, at REAL)"
            )
        )
        for i in range(16):
            conn.execute(text("INSERT INTO bench_counter (id, n) VALUES (:i, 0)"), {"i": i})
    if url.startswith("sqlite"):
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def _run(func: str, url: str, seconds: float, clients: int) -> float:
    target = {"reservations": reservations, "direct": direct, "bare": bare, "bare_sqlalchemy": bare_sqlalchemy}[func]
    if clients == 1:
        start = time.perf_counter()
        n = target(url, seconds, 0)
        return n / (time.perf_counter() - start)
    with mp.get_context("spawn").Pool(clients) as pool:
        start = time.perf_counter()
        counts = pool.starmap(target, [(url, seconds, i) for i in range(clients)])
        return sum(counts) / (time.perf_counter() - start)


def measure(name: str, url: str, seconds: float, clients: int) -> None:
    Ledger(url)  # create and migrate
    _setup_bare(url)
    two_step = _run("reservations", url, seconds, clients)
    one_step = _run("direct", url, seconds, clients)
    bare_rate = _run("bare", url, seconds, clients)
    stack_rate = _run("bare_sqlalchemy", url, seconds, clients)
    who = f"{name} ({clients} client{'s' if clients > 1 else ''})"
    print(
        f"{who}: bare update+insert: {bare_rate:,.0f} tx/s on the raw driver (the ledger's write path), "
        f"{stack_rate:,.0f} tx/s through a SQLAlchemy connection per transaction"
    )
    for label, rate in (
        ("committed draws in one transaction (direct commit)", one_step),
        ("committed reservations (reserve, then commit: two transactions)", two_step),
    ):
        print(
            f"{who}: {label}: {rate:,.0f}/s; ratio {rate / bare_rate:.2f} to the raw-driver bare, "
            f"{rate / stack_rate:.2f} to the SQLAlchemy bare"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure("SQLite", f"sqlite:///{tmp}/bench.db", args.seconds, 1)
    pg = os.environ.get("TIERLINE_BENCH_POSTGRES_URL")
    if pg:
        measure("PostgreSQL", pg, args.seconds, 16)
    else:
        print("PostgreSQL: skipped (set TIERLINE_BENCH_POSTGRES_URL, e.g. from scripts/postgres.sh start)")


if __name__ == "__main__":
    main()
