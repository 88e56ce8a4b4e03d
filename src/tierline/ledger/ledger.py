"""The allocation ledger: reserve, commit, release, direct commit, adjust — idempotent, atomic,
concurrent-safe (row locks on PostgreSQL, BEGIN IMMEDIATE on SQLite) and audited.

Writes run on a driver connection the Ledger keeps for itself (one per process and thread), with the
transaction begun and ended on the driver. On PostgreSQL a write takes two round trips: BEGIN, the
row locks, the reads the checks need and the idempotency lookup in one pipeline; then every write and
the COMMIT in a second one."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from fractions import Fraction
from select import POLLIN, poll
from typing import Any

import psycopg
from sqlalchemy import Engine, func, select

from tierline.allowances import uveu_share_checks
from tierline.countries import lookup
from tierline.errors import TierlineError
from tierline.ledger import audit
from tierline.ledger.accounts import (
    LEDGER_VINTAGE,
    MICRO,
    AccountRef,
    allocation_steps,
    from_micro,
    limit_micro,
    nveu_schedule,
    parse_account,
    to_micro,
)
from tierline.ledger.db import default_url, engine_for
from tierline.ledger.schema import ACCOUNTS, AUDIT, ENTRIES, G2G, GENESIS, HOLDS, LICENSES
from tierline.policy import Context
from tierline.tiers import tier1_codes

SYSTEM = "system"
MAX_MICRO = 10**18  # 10^12 TPP: far above any allowance, inside a 64-bit integer of micro-TPP
MAX_BALANCE = 2**63 - 1  # a balance must stay inside a signed 64-bit integer of micro-TPP
DEFAULT_HOLD = dt.timedelta(hours=24)

Row = dict[str, Any]
Rows = dict[str, Row]
Stmt = tuple[str, tuple[Any, ...]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Draw:
    """One movement of an atomic batch: `tpp` on `account`, for a shipment dated `effective_date`."""

    account: str
    tpp: Fraction | float | int
    effective_date: dt.date


class _Found(Exception):
    """The idempotency key is already stored: the request's hash and the stored response."""

    def __init__(self, request_hash: str, response: str) -> None:
        super().__init__(request_hash)
        self.request_hash, self.response = request_hash, response


class _Create(Exception):
    """An account to lock does not exist yet: the write starts over, creating its accounts in order."""


class _Session:
    """A driver connection kept for writes, detached from the engine's pool: the engine's connect-time
    setup applies, but no pool checkout, reset or SQLAlchemy event runs per transaction."""

    sqlite = False

    def __init__(self, engine: Engine) -> None:
        self.proxy = engine.raw_connection()
        raw: Any = self.proxy.driver_connection
        self.proxy.detach()
        self.raw = raw
        self.pid = os.getpid()
        # closed with the session: when its thread ends, its Ledger goes, or the process exits
        self.close = weakref.finalize(self, _close_connection, self.proxy, self.pid)

    def usable(self) -> bool:
        return self.pid == os.getpid()


class _SqliteSession(_Session):
    sqlite = True

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.cursor: Any = self.raw.cursor()


class _PostgresSession(_Session):
    """Every round trip is one simple-protocol message of several statements (BEGIN, EXECUTEs of
    statements prepared once per connection, COMMIT), sent and read straight through libpq: the
    server plans nothing per transaction and the client spends little per statement. Parameters
    are quoted by libpq (PQescapeLiteral) unless they are integers or plain text."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.raw.autocommit = True  # BEGIN and COMMIT are sent explicitly, in the same message as the work
        self.pgconn: Any = self.raw.pgconn
        self.escaping = psycopg.pq.Escaping(self.pgconn)
        self.poller = poll()  # waits for results without holding the GIL (libpq's own wait would)
        self.poller.register(self.pgconn.socket, POLLIN)
        setup = ["SET client_encoding = 'UTF8'", "SET datestyle = 'ISO'", "SET timezone = 'UTC'"]
        setup += [f"PREPARE {name} AS {_numbered(sql)}" for name, sql in _POSTGRES_STATEMENTS.items()]
        self.run("; ".join(setup))

    def usable(self) -> bool:
        return (
            self.pid == os.getpid()
            and not self.raw.closed
            and not self.raw.broken
            and self.pgconn.status == psycopg.pq.ConnStatus.OK
        )

    def literal(self, value: Any) -> str:
        if value is None:
            return "NULL"
        if type(value) is int:
            return str(value)
        text = value if type(value) is str else str(value)
        if "\x00" in text:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        if "'" in text or "\\" in text:
            return bytes(self.escaping.escape_literal(text.encode())).decode()
        return f"'{text}'"

    def execute(self, name: str, params: tuple[Any, ...]) -> str:
        return f"EXECUTE {name}({', '.join(map(self.literal, params))})"

    def run(self, sql: str) -> list[list[tuple[Any, ...]]]:
        """Send `sql` (statements separated by semicolons) and read every result: the rows of each
        statement (empty for commands); the first error is raised once all results are read."""
        pgconn, poll = self.pgconn, self.poller.poll
        pgconn.send_query(sql.encode())
        out: list[list[tuple[Any, ...]]] = []
        error: psycopg.Error | None = None
        while True:
            while pgconn.is_busy():  # a row lock may keep us waiting: let the process's other threads run
                poll()
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                break
            status = result.status
            if status == _TUPLES_OK:
                out.append(_pg_rows(result) if result.ntuples else [])
            elif status == _COMMAND_OK:
                out.append([])
            elif error is None:
                error = psycopg.errors.error_from_result(result, encoding="utf-8")
        if error is not None:
            raise error
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            raise psycopg.OperationalError(pgconn.get_error_message())
        return out


def _close_connection(proxy: Any, pid: int) -> None:
    if pid == os.getpid():  # never close a connection a forked parent still uses
        with suppress(Exception):
            proxy.close()


class _Tx:
    """One write transaction on a session. `query` runs statements (by name) now and returns their
    rows (the first query also looks the idempotency key up); `write` runs a statement whose result
    is not needed, or on PostgreSQL queues it for the next round trip; `commit` ends the transaction.
    Dates and timestamps are bound as text (`stamp` is this transaction's time as the database
    stores it)."""

    def __init__(self, session: Any, key: str, create: bool) -> None:
        self.session = session
        self.key = key
        self.create = create  # create missing accounts while locking
        self.now = _now()
        self.at = self.now.isoformat()
        self.stamp = _sqlite_time(self.now) if session.sqlite else self.at
        self.idem: str | None = key  # the idempotency lookup, made with the first query
        self.g2g: dict[str, dt.date | None] = {}
        self.licenses: dict[str, tuple[Any, ...] | None] = {}

    def begin(self) -> None:
        raise NotImplementedError

    def query(self, stmts: list[Stmt]) -> list[list[tuple[Any, ...]]]:
        raise NotImplementedError

    def write(self, name: str, params: tuple[Any, ...]) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def _found(self, rows: list[tuple[Any, ...]]) -> None:
        self.idem = None
        if rows:
            raise _Found(rows[0][0], rows[0][1])


class _SqliteTx(_Tx):
    session: _SqliteSession

    def begin(self) -> None:
        self.session.cursor.execute("BEGIN IMMEDIATE")  # the database's write lock, up front

    def query(self, stmts: list[Stmt]) -> list[list[tuple[Any, ...]]]:
        cursor = self.session.cursor
        if self.idem is not None:
            self._found(cursor.execute(STATEMENTS["idem_get"], (self.idem,)).fetchall())
        return [cursor.execute(STATEMENTS[name], params).fetchall() for name, params in stmts]

    def write(self, name: str, params: tuple[Any, ...]) -> None:
        self.session.cursor.execute(STATEMENTS[name], params)

    def commit(self) -> None:
        self.session.cursor.execute("COMMIT")

    def rollback(self) -> None:
        if self.session.raw.in_transaction:
            self.session.cursor.execute("ROLLBACK")


class _PostgresTx(_Tx):
    session: _PostgresSession

    def begin(self) -> None:
        self.pending = ["BEGIN"]  # sent with the first query

    def query(self, stmts: list[Stmt]) -> list[list[tuple[Any, ...]]]:
        """The queued writes, then `stmts`, then (after the locks) the idempotency lookup, in one round trip."""
        execute = self.session.execute
        sent, skip, idem = self.pending, len(self.pending), self.idem
        sent += [execute(name, params) for name, params in stmts]
        if idem is not None:
            sent.append(execute("idem_get", (idem,)))
        self.pending = []
        if not sent:
            return []
        rows = self.session.run("; ".join(sent))
        if idem is not None:
            self._found(rows.pop())
        return rows[skip:]

    def write(self, name: str, params: tuple[Any, ...]) -> None:
        self.pending.append(self.session.execute(name, params))

    def commit(self) -> None:
        self.pending.append("COMMIT")
        sent, self.pending = self.pending, []
        self.session.run("; ".join(sent))

    def rollback(self) -> None:
        self.pending = []
        if self.session.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.session.run("ROLLBACK")


Work = Callable[[_Tx, Rows], dict[str, Any]]


class Ledger:
    """Allowance accounts on a database (SQLite by default, PostgreSQL by URL)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.engine: Engine = engine_for(self.url)
        self.sqlite = self.engine.dialect.name == "sqlite"
        self._local = threading.local()  # this thread's write connection (a _Session)

    # ---- transactions -------------------------------------------------------------------------
    def _session(self) -> _Session:
        """This thread's write connection (a new one after a fork or a broken connection)."""
        session: _Session | None = getattr(self._local, "session", None)
        if session is None or not session.usable():
            if session is not None:
                self._drop(session)
            session = _SqliteSession(self.engine) if self.sqlite else _PostgresSession(self.engine)
            self._local.session = session
        return session

    def _drop(self, session: _Session) -> None:
        session.close()
        if getattr(self._local, "session", None) is session:
            self._local.session = None

    def _end(self, tx: _Tx) -> None:
        """Roll back after a failure; a connection that cannot even do that is replaced."""
        try:
            tx.rollback()
        except Exception:
            self._drop(tx.session)

    def _idempotent(self, key: str, request: dict[str, Any], work: Work) -> dict[str, Any]:
        """Run `work(tx, rows)` once per key: a retry with the same request returns the stored response."""
        if not key:
            raise TierlineError("idempotency_key", "every write needs an idempotency key")
        digest = hashlib.sha256(audit.canonical(request).encode()).hexdigest()
        create, attempts = False, 0
        while attempts < 3:
            session = self._session()
            tx: _Tx = (_SqliteTx if self.sqlite else _PostgresTx)(session, key, create)
            try:
                tx.begin()
                rows: Rows = {}
                response = work(tx, rows)
                if tx.idem is not None:
                    tx.query([])
                for row in rows.values():
                    tx.write(
                        "account_save",
                        (row["committed_micro"], row["held_micro"], row["head_seq"], row["head_hash"], row["id"]),
                    )
                tx.write("idem_put", (key, digest, audit.canonical(response), tx.stamp))
                tx.commit()
            except _Found as found:
                self._end(tx)
                if found.request_hash != digest:
                    raise TierlineError(
                        "idempotency_key", f"{key!r} was already used for a different request"
                    ) from None
                return {**json.loads(found.response), "replayed": True}
            except _Create:
                self._end(tx)
                create = True
                continue
            except (sqlite3.IntegrityError, psycopg.IntegrityError):
                self._end(tx)
                attempts += 1
                continue  # a concurrent request with the same key won: read its response
            except BaseException:
                self._end(tx)
                raise
            response["replayed"] = False
            return response
        raise TierlineError("idempotency_key", f"{key!r} could not be completed; retry")

    def _lock(
        self,
        tx: _Tx,
        rows: Rows,
        ids: Iterable[str],
        *,
        g2g: Iterable[str | None] = (),
        licenses: Iterable[str | None] = (),
    ) -> Rows:
        """Lock the accounts, in sorted order so lockers never deadlock, and read the g2g dates and
        licences the checks will need, in one round trip. A missing account starts the transaction
        over with `tx.create`, creating each account (in the same order) before locking it.
        A hold past its expiry counts until its room is needed (see `_check_room`) or it is settled."""
        need = sorted(set(ids) - rows.keys())
        stmts: list[Stmt] = []
        for account in need:
            if tx.create:
                stmts.append(("account_new", (account, account.split(":", 1)[0], GENESIS, tx.stamp)))
            stmts.append(("account_lock", (account,)))
        countries = sorted({c for c in g2g if c and c not in tx.g2g})
        ids_ = sorted({e for e in licenses if e and e not in tx.licenses})
        stmts += [("g2g_since", (c,)) for c in countries]
        stmts += [("license_get", (e,)) for e in ids_]
        results = iter(tx.query(stmts))
        for account in need:
            if tx.create:
                next(results)
            found = next(results)
            if not found:
                if tx.create:
                    raise TierlineError("account", f"{account} could not be created")
                raise _Create(account)
            rows[account] = _account(found[0])
        for country in countries:
            since = next(results)
            tx.g2g[country] = _date(since[0][0]) if since else None
        for entity in ids_:
            licence = next(results)
            tx.licenses[entity] = licence[0] if licence else None
        return rows

    def _expire_holds(self, tx: _Tx, row: Row) -> None:
        (expired,) = tx.query([("holds_expired", (row["id"], tx.stamp))])
        for hold_id, amount in expired:
            tx.write("hold_status", ("expired", hold_id))
            row["held_micro"] -= amount
            self._event(tx, row, {"op": "expire", "hold_id": hold_id, "amount_micro": amount})

    def _entry(
        self,
        tx: _Tx,
        row: Row,
        op: str,
        micro: int,
        on: dt.date,
        key: str,
        actor: str | None,
        *,
        hold_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Move the committed balance: an entry row and its audit event."""
        row["committed_micro"] += micro
        day = str(on)
        tx.write(
            "entry_add",
            (row["id"], op, micro, day, hold_id, reason, actor, key, tx.stamp),
        )
        event = {"op": op, "amount_micro": micro, "effective_date": day, "actor": actor, "idempotency_key": key}
        if hold_id:
            event["hold_id"] = hold_id
        if reason:
            event["reason"] = reason
        self._event(tx, row, event)

    def _event(self, tx: _Tx, row: Row, event: dict[str, Any]) -> None:
        """Append an audit event to the account's chain (its head is saved with the balances)."""
        seq = row["head_seq"] + 1
        event["at"] = tx.at
        event["committed_micro"] = row["committed_micro"]
        event["held_micro"] = row["held_micro"]
        event["chain"] = row["id"]
        event["seq"] = seq
        text = audit.canonical(event)
        digest = audit.chain_hash(row["head_hash"], text)
        tx.write("audit_add", (row["id"], seq, text, row["head_hash"], digest))
        row["head_seq"], row["head_hash"] = seq, digest

    def _g2g(self, tx: _Tx, country: str | None) -> dt.date | None:
        if not country:
            return None
        if country not in tx.g2g:
            self._lock(tx, {}, (), g2g=[country])
        return tx.g2g[country]

    def _check_room(
        self,
        tx: _Tx,
        rows: Rows,
        ref: AccountRef,
        extra: int,
        on: dt.date,
        headquarters: str | None = None,
    ) -> None:
        """Refuse a draw that would take the account over its limit (or a UVEU outside its shares)."""
        row = rows[ref.id]
        if row["committed_micro"] + row["held_micro"] + extra > MAX_BALANCE:
            raise TierlineError("tpp", f"{ref.id} would exceed what the ledger records ({MAX_BALANCE // MICRO:,} TPP)")
        if ref.kind == "uveu":
            self._check_uveu(tx, rows, ref, extra, on, headquarters)
            return
        license_tpp = None
        if ref.kind == "license":
            entity = ref.entity or ""
            if entity not in tx.licenses:
                self._lock(tx, {}, (), licenses=[entity])
            found = tx.licenses[entity]
            if found is not None:
                issued, expires, license_tpp = _date(found[0]), found[1], found[2]
                if on < issued:
                    raise TierlineError("effective_date", f"licence {ref.entity} was issued on {issued}")
                if expires is not None and on > _date(expires):
                    raise TierlineError("effective_date", f"licence {ref.entity} expired on {_date(expires)}")
        g2g = self._g2g(tx, ref.country) if ref.kind == "allocation" else None
        steps = (
            nveu_schedule(on) if ref.kind == "nveu" else allocation_steps(on, g2g) if ref.kind == "allocation" else ()
        )
        if len(steps) > 1:  # the cap grows over time: check the cumulative use up to every step
            self._check_steps(tx, ref, row, extra, steps)
            return
        limit = limit_micro(ref, on, g2g, license_tpp)
        if limit is not None and row["committed_micro"] + row["held_micro"] + extra > limit and row["held_micro"]:
            self._expire_holds(tx, row)  # expired holds are given back only when the room is needed
        if limit is not None and row["committed_micro"] + row["held_micro"] + extra > limit:
            room = limit - row["committed_micro"] - row["held_micro"]
            raise TierlineError(
                "tpp",
                f"{from_micro(extra):,.6g} TPP exceeds the headroom of {ref.id} "
                f"({from_micro(room):,.6g} of {from_micro(limit):,.6g} TPP left)",
            )

    def _check_uveu(
        self,
        tx: _Tx,
        rows: Rows,
        ref: AccountRef,
        extra: int,
        on: dt.date,
        headquarters: str | None,
    ) -> None:
        prefix = f"uveu:{ref.entity}:"
        like = _like_prefix(prefix)
        accounts, holds = tx.query([("uveu_accounts", (like,)), ("holds_live_like", (like, tx.stamp))])
        live = {a: int(v) for a, v in holds}
        current = {a: committed + live.get(a, 0) for a, committed in accounts}
        current.update(
            {
                k: r["committed_micro"] + live.get(k, 0) + r.get("held_in_tx", 0)
                for k, r in rows.items()
                if k.startswith(prefix)
            }
        )
        installed = {k.removeprefix(prefix): Fraction(v) for k, v in current.items()}
        installed[ref.country or ""] = installed.get(ref.country or "", Fraction(0)) + extra
        ctx = Context.make(LEDGER_VINTAGE, on)
        checks, _ = uveu_share_checks(installed, headquarters or "", tier1_codes(ctx), ctx)
        failed = [text for text, met, _values in checks if not met]
        if failed:
            raise TierlineError("tpp", f"{ref.id}: after this deployment the UVEU would break: {'; '.join(failed)}")

    def _check_steps(
        self, tx: _Tx, ref: AccountRef, row: Row, extra: int, steps: tuple[tuple[dt.date, int], ...]
    ) -> None:
        """A cap that grows by date (NVEU schedule, allocation doubled from a g2g date): the use dated up
        to every step the draw reaches must fit that step's cap."""
        stmts: list[Stmt] = []
        for through, _cap in steps:
            stmts.append(("entries_through", (ref.id, str(through), tx.key)))  # before this transaction
            stmts.append(("holds_live_through", (ref.id, tx.stamp, str(through))))
        sums = tx.query(stmts)
        for i, (through, cap) in enumerate(steps):
            committed = int(sums[2 * i][0][0] or 0)
            held = int(sums[2 * i + 1][0][0] or 0)
            pending = sum(micro for on, micro in row.get("batch", ()) if on <= through)  # this batch, by date
            if committed + pending + held + extra > cap:
                room = cap - committed - pending - held
                raise TierlineError(
                    "tpp",
                    f"{from_micro(extra):,.6g} TPP exceeds the headroom of {ref.id} through "
                    f"{through} ({from_micro(room):,.6g} of {from_micro(cap):,.6g} TPP left)",
                )

    @staticmethod
    def _positive(tpp: Fraction | float | int | str, field: str = "tpp") -> int:
        micro = to_micro(tpp, field)
        if micro <= 0:
            raise TierlineError(field, f"{tpp} is not a positive amount of TPP")
        if micro > MAX_MICRO:
            raise TierlineError(field, f"{tpp} TPP is beyond what the ledger records ({MAX_MICRO // MICRO:,} TPP)")
        return micro

    # ---- operations ---------------------------------------------------------------------------
    def reserve(
        self,
        account: str,
        tpp: Any,
        *,
        effective_date: dt.date,
        idempotency_key: str,
        expires_at: dt.datetime | None = None,
        ttl: dt.timedelta | None = None,
        actor: str | None = None,
        headquarters: str | None = None,
    ) -> dict[str, Any]:
        """Hold `tpp` on `account` until `expires_at`, or for `ttl` from now (default 24 hours).

        A retry with the same key and the same `ttl` is the same request (the hold keeps its first expiry)."""
        ref, micro = parse_account(account), self._positive(tpp)
        if ttl is not None and ttl.total_seconds() <= 0:
            raise TierlineError("ttl", "a hold's lifetime must be positive")
        expires = _aware(expires_at) if expires_at else _now() + (ttl or DEFAULT_HOLD)
        expires_iso, day = expires.isoformat(), str(effective_date)
        request = {
            "op": "reserve",
            "account": account,
            "micro": micro,
            "date": day,
            "expires_at": expires_iso if expires_at else None,
            "ttl_seconds": ttl.total_seconds() if ttl else None,
            "actor": actor,
        }

        def work(tx: _Tx, rows: Rows) -> dict[str, Any]:
            row = self._lock(tx, rows, [account], g2g=[ref.country if ref.kind == "allocation" else None])[account]
            self._check_room(tx, rows, ref, micro, effective_date, headquarters)
            hold_id = _hold_id()
            tx.write(
                "hold_add",
                (
                    hold_id,
                    account,
                    micro,
                    day,
                    _sqlite_time(expires) if self.sqlite else expires_iso,
                    tx.stamp,
                ),
            )
            row["held_micro"] += micro
            self._event(
                tx,
                row,
                {
                    "op": "reserve",
                    "hold_id": hold_id,
                    "amount_micro": micro,
                    "effective_date": day,
                    "expires_at": expires_iso,
                    "actor": actor,
                    "idempotency_key": idempotency_key,
                },
            )
            return {
                "hold_id": hold_id,
                "account": account,
                "tpp": from_micro(micro),
                "status": "held",
                "expires_at": expires_iso,
            }

        return self._idempotent(idempotency_key, request, work)

    def _settle(self, hold_id: str, status: str, idempotency_key: str, actor: str | None) -> dict[str, Any]:
        request = {"op": status, "hold_id": hold_id, "actor": actor}

        def work(tx: _Tx, rows: Rows) -> dict[str, Any]:
            # the hold's account first, then the hold: the order every writer uses, so none deadlocks
            locked, holds = tx.query([("hold_account_lock", (hold_id,)), ("hold_lock", (hold_id,))])
            if not holds:
                raise TierlineError("hold_id", f"no hold {hold_id!r}")
            account_id, amount, effective_date, expires_at, hold_status = holds[0]
            if locked:
                rows[account_id] = _account(locked[0])
            row = self._lock(tx, rows, [account_id])[account_id]
            current = "expired" if hold_status == "held" and _aware_db(expires_at) <= tx.now else hold_status
            if current != "held":
                raise TierlineError("hold_id", f"hold {hold_id} is {current}, not held")
            tx.write("hold_status", (status, hold_id))
            row["held_micro"] -= amount
            if status == "committed":
                self._entry(tx, row, "commit", amount, _date(effective_date), idempotency_key, actor, hold_id=hold_id)
            else:
                self._event(
                    tx,
                    row,
                    {
                        "op": "release",
                        "hold_id": hold_id,
                        "amount_micro": amount,
                        "actor": actor,
                        "idempotency_key": idempotency_key,
                    },
                )
            return {"hold_id": hold_id, "account": account_id, "tpp": from_micro(amount), "status": status}

        return self._idempotent(idempotency_key, request, work)

    def commit(self, hold_id: str, *, idempotency_key: str, actor: str | None = None) -> dict[str, Any]:
        """Turn a live hold into a committed draw."""
        return self._settle(hold_id, "committed", idempotency_key, actor)

    def release(self, hold_id: str, *, idempotency_key: str, actor: str | None = None) -> dict[str, Any]:
        """Give a live hold back."""
        return self._settle(hold_id, "released", idempotency_key, actor)

    def apply(
        self,
        draws: list[Draw],
        *,
        idempotency_key: str,
        actor: str | None = None,
        note: str | None = None,
        headquarters: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Commit several draws atomically (all or none): ``check --apply`` and ``screen --apply``."""
        if not draws:
            raise TierlineError("draws", "nothing to apply")
        parsed = [
            (parse_account(d.account), self._positive(d.tpp, f"draws[{i}].tpp"), d.effective_date)
            for i, d in enumerate(draws)
        ]
        request = {"op": "apply", "draws": [[r.id, m, str(on)] for r, m, on in parsed], "actor": actor, "note": note}

        def work(tx: _Tx, rows: Rows) -> dict[str, Any]:
            refs = {r.id: r for r, _m, _on in parsed}.values()
            self._lock(
                tx,
                rows,
                [r.id for r in refs],
                g2g=[r.country for r in refs if r.kind == "allocation"],
                licenses=[r.entity for r in refs if r.kind == "license"],
            )
            totals: dict[str, int] = {}
            for ref, micro, on in parsed:
                row = rows[ref.id]
                self._check_room(tx, rows, ref, micro, on, (headquarters or {}).get(ref.entity or ""))
                row.setdefault("batch", []).append((on, micro))
                totals[ref.id] = totals.get(ref.id, 0) + micro
                self._entry(tx, row, "direct", micro, on, idempotency_key, actor, reason=note)
            return {
                "applied": [{"account": a, "tpp": from_micro(t)} for a, t in sorted(totals.items())],
                "lines": len(parsed),
            }

        return self._idempotent(idempotency_key, request, work)

    def direct_commit(
        self,
        account: str,
        tpp: Any,
        *,
        effective_date: dt.date,
        idempotency_key: str,
        actor: str | None = None,
        headquarters: str | None = None,
    ) -> dict[str, Any]:
        """Commit without a hold."""
        ref = parse_account(account)
        self._positive(tpp)
        hq = {ref.entity: headquarters} if headquarters and ref.entity else None
        return self.apply(
            [Draw(account, tpp, effective_date)], idempotency_key=idempotency_key, actor=actor, headquarters=hq
        )

    def adjust(
        self,
        account: str,
        tpp: Any,
        *,
        reason: str,
        effective_date: dt.date,
        idempotency_key: str,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Correct an account by a signed amount; the reason is mandatory and audited."""
        if not (reason or "").strip():
            raise TierlineError("reason", "an adjustment needs a reason")
        parse_account(account)
        micro = to_micro(tpp)
        if micro == 0:
            raise TierlineError("tpp", "an adjustment of zero changes nothing")
        if abs(micro) > MAX_MICRO:
            raise TierlineError("tpp", f"{tpp} TPP is beyond what the ledger records ({MAX_MICRO // MICRO:,} TPP)")
        request = {
            "op": "adjust",
            "account": account,
            "micro": micro,
            "reason": reason,
            "date": str(effective_date),
            "actor": actor,
        }

        def work(tx: _Tx, rows: Rows) -> dict[str, Any]:
            row = self._lock(tx, rows, [account])[account]
            if row["committed_micro"] + micro < 0:
                raise TierlineError("tpp", f"the adjustment would take {account} below zero")
            if row["committed_micro"] + micro > MAX_BALANCE:
                raise TierlineError(
                    "tpp", f"{account} would exceed what the ledger records ({MAX_BALANCE // MICRO:,} TPP)"
                )
            self._entry(tx, row, "adjust", micro, effective_date, idempotency_key, actor, reason=reason)
            return {"account": account, "tpp": from_micro(micro), "committed": from_micro(row["committed_micro"])}

        return self._idempotent(idempotency_key, request, work)

    def record_g2g(
        self, country: str, since: dt.date, *, reason: str, idempotency_key: str, actor: str | None = None
    ) -> dict[str, Any]:
        """Record a government-to-government arrangement: the country's allocation doubles from `since`."""
        country = lookup(country, "country").iso2
        if not (reason or "").strip():
            raise TierlineError("reason", "record what the arrangement is")
        request = {"op": "g2g", "country": country, "since": str(since), "reason": reason}

        def work(tx: _Tx, rows: Rows) -> dict[str, Any]:
            row = self._lock(tx, rows, [SYSTEM])[SYSTEM]
            tx.write("g2g_delete", (country,))
            tx.write("g2g_add", (country, str(since), reason, tx.stamp))
            self._event(
                tx, row, {"op": "g2g", "country": country, "since": str(since), "reason": reason, "actor": actor}
            )
            return {"country": country, "since": str(since)}

        return self._idempotent(idempotency_key, request, work)

    def record_event(self, op: str, data: dict[str, str], *, actor: str | None, idempotency_key: str) -> dict[str, Any]:
        """Append an event with no balance to the system audit chain: writes outside the accounts (API
        keys created and revoked) are audited with whoever made them."""
        request = {"op": op, **data, "actor": actor}

        def work(tx: _Tx, rows: Rows) -> dict[str, Any]:
            row = self._lock(tx, rows, [SYSTEM])[SYSTEM]
            self._event(tx, row, {"op": op, **data, "actor": actor})
            return {"op": op, **data}

        return self._idempotent(idempotency_key, request, work)

    def record_license(
        self,
        license_id: str,
        *,
        country: str,
        holder: str,
        tpp: Any,
        issued: dt.date,
        idempotency_key: str,
        expires: dt.date | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Record an issued licence; draws against it use the account ``license:<id>``."""
        micro = self._positive(tpp)
        request = {
            "op": "license",
            "id": license_id,
            "country": country,
            "holder": holder,
            "micro": micro,
            "issued": str(issued),
        }

        def work(tx: _Tx, rows: Rows) -> dict[str, Any]:
            row = self._lock(tx, rows, [SYSTEM], licenses=[license_id])[SYSTEM]
            if tx.licenses[license_id] is not None:
                raise TierlineError("license_id", f"licence {license_id!r} is already recorded")
            tx.write(
                "license_add",
                (
                    license_id,
                    country,
                    holder,
                    micro,
                    str(issued),
                    str(expires) if expires is not None else None,
                    tx.stamp,
                ),
            )
            self._event(
                tx,
                row,
                {
                    "op": "license",
                    "license_id": license_id,
                    "country": country,
                    "holder": holder,
                    "amount_micro": micro,
                    "issued": str(issued),
                    "actor": actor,
                },
            )
            return {"license_id": license_id, "account": f"license:{license_id}", "tpp": from_micro(micro)}

        return self._idempotent(idempotency_key, request, work)

    # ---- reads --------------------------------------------------------------------------------
    def used(self, account: str, on: dt.date | None = None) -> tuple[Fraction, Fraction]:
        """(committed, live holds) in TPP, counting draws dated on or before `on` (all when None).
        One statement on a pooled driver connection: the determination engine asks this per check."""
        now = _now()
        stamp: Any = _sqlite_time(now) if self.sqlite else now
        if on is None:
            row = self._read(_USED_SQL[(self.sqlite, False)], (account, account, stamp))
        else:
            row = self._read(_USED_SQL[(self.sqlite, True)], (account, str(on), account, stamp, str(on)))
        committed, held = row if row else (0, 0)
        return Fraction(int(committed or 0), 1_000_000), Fraction(int(held or 0), 1_000_000)

    def usage(self, on: dt.date) -> dict[str, Fraction]:
        """Every account's committed entries plus live holds dated on or before `on`, in TPP, read in
        one pass (what `used` gives for one account; bulk screening starts from it)."""
        out: dict[str, Fraction] = {}
        committed = select(ENTRIES.c.account_id, func.sum(ENTRIES.c.amount_micro)).where(ENTRIES.c.effective_date <= on)
        held = select(HOLDS.c.account_id, func.sum(HOLDS.c.amount_micro)).where(
            HOLDS.c.status == "held", HOLDS.c.expires_at > _now(), HOLDS.c.effective_date <= on
        )
        with self.engine.connect() as conn:
            for query in (committed, held):
                for account, micro in conn.execute(query.group_by(query.selected_columns[0])):
                    out[account] = out.get(account, Fraction(0)) + Fraction(int(micro), 1_000_000)
        return {a: v for a, v in out.items() if v}

    def g2g_arrangements(self) -> dict[str, dt.date]:
        """Every recorded g2g arrangement: country -> the date its allocation doubles from."""
        with self.engine.connect() as conn:
            return {row.country: _date(row.since) for row in conn.execute(select(G2G))}

    def _read(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """One row of a read-only statement, on a pooled driver connection (no SQLAlchemy statement
        compilation, no transaction begun on SQLite)."""
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(sql, params)
            row = cursor.fetchone()
        finally:
            raw.close()
        return None if row is None else tuple(row)

    def account_ids(self, prefix: str = "") -> list[str]:
        with self.engine.connect() as conn:
            query = select(ACCOUNTS.c.id).where(ACCOUNTS.c.id != SYSTEM).order_by(ACCOUNTS.c.id)
            if prefix:
                query = query.where(ACCOUNTS.c.id.startswith(prefix, autoescape=True))
            return list(conn.execute(query).scalars())

    def g2g_since(self, country: str) -> dt.date | None:
        """The date a g2g arrangement was recorded for `country` (its allocation doubles from then)."""
        row = self._read(
            "SELECT since FROM g2g_arrangements WHERE country = " + ("?" if self.sqlite else "%s"), (country,)
        )
        return None if row is None or row[0] is None else _date(row[0])

    def status(
        self, *, country: str | None = None, consignee: str | None = None, as_of: dt.date | None = None
    ) -> list[dict[str, Any]]:
        """Usage, live holds, limit and headroom per account as of a date."""
        day = as_of or dt.date.today()
        out = []
        with self.engine.connect() as conn:
            licenses = {r.id: r.tpp_micro for r in conn.execute(select(LICENSES))}
            for account in self.account_ids():
                ref = parse_account(account)
                if country and ref.country != country:
                    continue
                if consignee and ref.entity != consignee:
                    continue
                committed, held = self.used(account, day)
                note: str | None = None
                try:
                    since = self.g2g_since(ref.country) if ref.country else None
                    limit = limit_micro(ref, day, since, licenses.get(ref.entity or ""))
                except TierlineError as exc:
                    limit, note = None, exc.reason
                if ref.kind == "uveu":
                    note = "limited by UVEU shares"
                limit_tpp = Fraction(limit, 1_000_000) if limit is not None else None
                out.append(
                    {
                        "account": account,
                        "kind": ref.kind,
                        "used": float(committed),
                        "held": float(held),
                        "limit": float(limit_tpp) if limit_tpp is not None else None,
                        "headroom": float(limit_tpp - committed - held) if limit_tpp is not None else None,
                        **({"note": note} if note else {}),
                    }
                )
        return out

    def history(self, account: str) -> list[dict[str, Any]]:
        """Every audited event on an account, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(AUDIT).where(AUDIT.c.chain == account).order_by(AUDIT.c.seq))
            return [{**json.loads(r.event), "hash": r.hash} for r in rows]

    def entries(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(ENTRIES).order_by(ENTRIES.c.id))]

    def verify(self) -> dict[str, Any]:
        """Verify the audit chains: an edited, deleted, inserted or reordered row is reported."""
        with self.engine.connect() as conn:
            count, problems = audit.verify(conn)
            problems += audit.reconcile(conn)
        return {"ok": not problems, "rows": count, "problems": [p.as_dict() for p in problems]}


STATEMENTS = {
    "idem_get": "SELECT request_hash, response FROM idempotency WHERE key = ?",
    "idem_put": "INSERT INTO idempotency (key, request_hash, response, created_at) VALUES (?, ?, ?, ?)",
    "account_lock": "SELECT id, kind, committed_micro, held_micro, head_seq, head_hash FROM accounts WHERE id = ?",
    "account_new": "INSERT INTO accounts (id, kind, committed_micro, held_micro, head_seq, head_hash, created_at) "
    "VALUES (?, ?, 0, 0, 0, ?, ?) ON CONFLICT (id) DO NOTHING",
    "account_save": "UPDATE accounts SET committed_micro = ?, held_micro = ?, head_seq = ?, head_hash = ? WHERE id = ?",
    "hold_account_lock": "SELECT id, kind, committed_micro, held_micro, head_seq, head_hash FROM accounts "
    "WHERE id = (SELECT account_id FROM holds WHERE id = ?)",
    "hold_lock": "SELECT account_id, amount_micro, effective_date, expires_at, status FROM holds WHERE id = ?",
    "hold_add": "INSERT INTO holds (id, account_id, amount_micro, effective_date, expires_at, status, created_at) "
    "VALUES (?, ?, ?, ?, ?, 'held', ?)",
    "hold_status": "UPDATE holds SET status = ? WHERE id = ?",
    "holds_expired": "SELECT id, amount_micro FROM holds WHERE account_id = ? AND status = 'held' "
    "AND expires_at <= ? ORDER BY id",
    "holds_live_like": "SELECT account_id, SUM(amount_micro) FROM holds WHERE account_id LIKE ? ESCAPE '/' "
    "AND status = 'held' AND expires_at > ? GROUP BY account_id",
    "holds_live_through": "SELECT SUM(amount_micro) FROM holds WHERE account_id = ? AND status = 'held' "
    "AND expires_at > ? AND effective_date <= ?",
    "entries_through": "SELECT SUM(amount_micro) FROM entries WHERE account_id = ? AND effective_date <= ? "
    "AND (idempotency_key IS NULL OR idempotency_key <> ?)",
    "entry_add": "INSERT INTO entries (account_id, op, amount_micro, effective_date, hold_id, reason, actor, "
    "idempotency_key, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "audit_add": "INSERT INTO audit (chain, seq, event, prev_hash, hash) VALUES (?, ?, ?, ?, ?)",
    "uveu_accounts": "SELECT id, committed_micro FROM accounts WHERE id LIKE ? ESCAPE '/' ORDER BY id",
    "g2g_since": "SELECT since FROM g2g_arrangements WHERE country = ?",
    "g2g_delete": "DELETE FROM g2g_arrangements WHERE country = ?",
    "g2g_add": "INSERT INTO g2g_arrangements (country, since, reason, recorded_at) VALUES (?, ?, ?, ?)",
    "license_get": "SELECT issued, expires, tpp_micro FROM licenses WHERE id = ?",
    "license_add": "INSERT INTO licenses (id, country, holder, tpp_micro, issued, expires, recorded_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)",
}
# row locks on PostgreSQL (SQLite's BEGIN IMMEDIATE locks the whole database)
LOCKING = {"account_lock", "hold_account_lock", "hold_lock", "uveu_accounts"}


_POSTGRES_STATEMENTS = {name: sql + (" FOR UPDATE" if name in LOCKING else "") for name, sql in STATEMENTS.items()}


def _used_sql(sqlite: bool, dated: bool) -> str:
    mark = "?" if sqlite else "%s"
    day = f" AND effective_date <= {mark}" if dated else ""
    return (
        f"SELECT (SELECT COALESCE(SUM(amount_micro), 0) FROM entries WHERE account_id = {mark}{day}), "
        f"(SELECT COALESCE(SUM(amount_micro), 0) FROM holds WHERE account_id = {mark} AND status = 'held' "
        f"AND expires_at > {mark}{day})"
    )


_USED_SQL = {(sqlite, dated): _used_sql(sqlite, dated) for sqlite in (True, False) for dated in (True, False)}


def _numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's $1, $2, ..."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK
_COMMAND_OK = psycopg.pq.ExecStatus.COMMAND_OK


def _pg_text(value: bytes) -> str:
    return value.decode()


def _pg_date(value: bytes) -> dt.date:
    return dt.date.fromisoformat(value.decode())


def _pg_timestamp(value: bytes) -> dt.datetime:
    return dt.datetime.fromisoformat(value.decode())


# text-format values by type oid: int2, int4, int8, numeric (sums of integers), date, timestamp(tz)
_PG_LOADERS: dict[int, Callable[[bytes], Any]] = {
    21: int,
    23: int,
    20: int,
    1700: int,
    1082: _pg_date,
    1114: _pg_timestamp,
    1184: _pg_timestamp,
}


def _pg_rows(result: Any) -> list[tuple[Any, ...]]:
    loaders = [_PG_LOADERS.get(result.ftype(col), _pg_text) for col in range(result.nfields)]
    get = result.get_value
    return [
        tuple(None if (value := get(row, col)) is None else load(value) for col, load in enumerate(loaders))
        for row in range(result.ntuples)
    ]


def _account(found: tuple[Any, ...]) -> Row:
    return {
        "id": found[0],
        "kind": found[1],
        "committed_micro": found[2],
        "held_micro": found[3],
        "head_seq": found[4],
        "head_hash": found[5],
    }


def _hold_id() -> str:
    """A new hold's id: a version 7 UUID (RFC 9562), random but ordered by time, so new holds are
    added at the end of the holds' primary-key index rather than all over it."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # the RFC 9562 variant
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern (ESCAPE '/') matching what starts with `prefix`."""
    return prefix.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"


def _sqlite_time(value: dt.datetime) -> str:
    """A timestamp as SQLite stores it: naive UTC text, as SQLAlchemy's DateTime writes it."""
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _aware_db(value: Any) -> dt.datetime:
    """A datetime read from either database as an aware UTC datetime."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value))
    return _aware(value)


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


class LedgerAllowances:
    """The ledger as the determination engine's allowance state (committed plus live holds)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def used(self, account: str, on: dt.date) -> Fraction:
        committed, held = self.ledger.used(account)
        return committed + held

    def accounts(self, prefix: str, on: dt.date) -> dict[str, Fraction]:
        return {a: self.used(a, on) for a in self.ledger.account_ids(prefix)}

    def g2g_since(self, country: str) -> dt.date | None:
        return self.ledger.g2g_since(country)
