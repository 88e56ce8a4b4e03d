"""The allocation ledger: reserve, commit, release, direct commit, adjust — idempotent, atomic,
concurrent-safe (row locks on PostgreSQL, BEGIN IMMEDIATE on SQLite) and audited."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import IntegrityError

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


class Ledger:
    """Allowance accounts on a database (SQLite by default, PostgreSQL by URL)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.engine: Engine = engine_for(self.url)
        self.sqlite = self.engine.dialect.name == "sqlite"
        self._statements = _compile(self.sqlite)

    # ---- transactions -------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn = conn.execution_options(tierline_write=True)
            with conn.begin():
                yield conn

    def _sql(self, conn: Connection, name: str, **params: Any) -> Any:
        """Run a hot-path statement straight on the driver (compiled once per dialect). On PostgreSQL
        the writes are queued and sent in one pipelined round trip when the transaction ends."""
        if self.sqlite:
            params = {k: _sqlite_value(v) for k, v in params.items()}
        elif name in DEFERRED:
            conn.info["tierline_pending"].append((self._statements[name], params))
            return None
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(self._statements[name], params)
        return _Result(cursor)

    def _flush(self, conn: Connection) -> None:
        """Send the queued PostgreSQL writes in one pipeline (errors surface here, before COMMIT)."""
        pending = conn.info.get("tierline_pending") or []
        if not pending:
            return
        raw = conn.connection.driver_connection
        with raw.pipeline(), raw.cursor() as cursor:  # type: ignore[union-attr]
            for sql, params in pending:
                cursor.execute(sql, params)
        pending.clear()

    def _idempotent(self, key: str, request: dict[str, Any], work: Any) -> dict[str, Any]:
        """Run `work(conn)` once per key: a retry with the same request returns the stored response."""
        if not key:
            raise TierlineError("idempotency_key", "every write needs an idempotency key")
        digest = hashlib.sha256(audit.canonical(request).encode()).hexdigest()
        for _attempt in range(3):
            try:
                with self._write() as conn:
                    conn.info["tierline_pending"] = []
                    conn.info["tierline_key"] = key
                    found = self._sql(conn, "idem_get", key=key).first()
                    if found is not None:
                        if found.request_hash != digest:
                            raise TierlineError("idempotency_key", f"{key!r} was already used for a different request")
                        return {**json.loads(found.response), "replayed": True}
                    rows: dict[str, dict[str, Any]] = {}
                    response = work(conn, rows)
                    for row in rows.values():
                        self._sql(conn, "account_save", **{k: row[k] for k in SAVED})
                    self._sql(
                        conn,
                        "idem_put",
                        key=key,
                        request_hash=digest,
                        response=audit.canonical(response),
                        created_at=_now(),
                    )
                    self._flush(conn)
                    return {**response, "replayed": False}
            except (IntegrityError, psycopg.IntegrityError):
                continue  # a concurrent request with the same key won: read its response
        raise TierlineError("idempotency_key", f"{key!r} could not be completed; retry")

    def _lock(self, conn: Connection, rows: dict[str, dict[str, Any]], ids: list[str]) -> dict[str, dict[str, Any]]:
        """Lock the accounts (created when missing), in sorted order so lockers never deadlock.
        A hold past its expiry counts until its room is needed (see `_check_room`) or it is settled."""
        now = _now()
        for account in sorted(set(ids) - set(rows)):
            found = self._sql(conn, "account_lock", id=account).first()
            if found is None:
                self._sql(
                    conn, "account_new", id=account, kind=account.split(":", 1)[0], head_hash=GENESIS, created_at=now
                )
                found = self._sql(conn, "account_lock", id=account).first()
            rows[account] = dict(found)
        return rows

    def _expire_holds(self, conn: Connection, row: dict[str, Any], now: dt.datetime) -> None:
        for hold in self._sql(conn, "holds_expired", account_id=row["id"], now=now).all():
            self._sql(conn, "hold_status", id=hold.id, status="expired")
            row["held_micro"] -= hold.amount_micro
            self._event(conn, row, {"op": "expire", "hold_id": hold.id, "amount_micro": hold.amount_micro})

    def _entry(
        self,
        conn: Connection,
        row: dict[str, Any],
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
        self._sql(
            conn,
            "entry_add",
            account_id=row["id"],
            op=op,
            amount_micro=micro,
            effective_date=on,
            hold_id=hold_id,
            reason=reason,
            actor=actor,
            idempotency_key=key,
            recorded_at=_now(),
        )
        event = {"op": op, "amount_micro": micro, "effective_date": str(on), "actor": actor, "idempotency_key": key}
        self._event(
            conn, row, {**event, **({"hold_id": hold_id} if hold_id else {}), **({"reason": reason} if reason else {})}
        )

    def _event(self, conn: Connection, row: dict[str, Any], data: dict[str, Any]) -> None:
        """Append an audit event to the account's chain (its head is saved with the balances)."""
        body = {
            **data,
            "at": _now().isoformat(),
            "committed_micro": row["committed_micro"],
            "held_micro": row["held_micro"],
        }
        seq = row["head_seq"] + 1
        event_text = audit.canonical({**body, "chain": row["id"], "seq": seq})
        digest = audit.chain_hash(row["head_hash"], event_text)
        self._sql(
            conn, "audit_add", chain=row["id"], seq=seq, event=event_text, prev_hash=row["head_hash"], hash=digest
        )
        row["head_seq"], row["head_hash"] = seq, digest

    def _g2g_since(self, conn: Connection, country: str | None) -> dt.date | None:
        if not country:
            return None
        since = self._sql(conn, "g2g_since", country=country).scalar()
        return None if since is None else _date(since)

    def _check_room(
        self,
        conn: Connection,
        rows: dict[str, dict[str, Any]],
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
            self._check_uveu(conn, rows, ref, extra, on, headquarters)
            return
        license_tpp = None
        if ref.kind == "license":
            found = conn.execute(select(LICENSES).where(LICENSES.c.id == ref.entity)).first()
            if found is not None and on < _date(found.issued):
                raise TierlineError("effective_date", f"licence {ref.entity} was issued on {found.issued}")
            if found is not None and found.expires is not None and on > _date(found.expires):
                raise TierlineError("effective_date", f"licence {ref.entity} expired on {found.expires}")
            license_tpp = found.tpp_micro if found is not None else None
        g2g = self._g2g_since(conn, ref.country) if ref.kind == "allocation" else None
        steps = (
            nveu_schedule(on) if ref.kind == "nveu" else allocation_steps(on, g2g) if ref.kind == "allocation" else ()
        )
        if len(steps) > 1:  # the cap grows over time: check the cumulative use up to every step
            self._check_steps(conn, ref, row, extra, steps)
            return
        limit = limit_micro(ref, on, g2g, license_tpp)
        if limit is not None and row["committed_micro"] + row["held_micro"] + extra > limit and row["held_micro"]:
            self._expire_holds(conn, row, _now())  # expired holds are given back only when the room is needed
        if limit is not None and row["committed_micro"] + row["held_micro"] + extra > limit:
            room = limit - row["committed_micro"] - row["held_micro"]
            raise TierlineError(
                "tpp",
                f"{from_micro(extra):,.6g} TPP exceeds the headroom of {ref.id} "
                f"({from_micro(room):,.6g} of {from_micro(limit):,.6g} TPP left)",
            )

    def _check_uveu(
        self,
        conn: Connection,
        rows: dict[str, dict[str, Any]],
        ref: AccountRef,
        extra: int,
        on: dt.date,
        headquarters: str | None,
    ) -> None:
        prefix = f"uveu:{ref.entity}:"
        query = select(ACCOUNTS).where(ACCOUNTS.c.id.startswith(prefix, autoescape=True)).order_by(ACCOUNTS.c.id)
        if not self.sqlite:
            query = query.with_for_update()
        live = self._live_holds(conn, prefix)
        current = {r.id: r.committed_micro + live.get(r.id, 0) for r in conn.execute(query)}
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

    def _live_holds(self, conn: Connection, prefix: str, until: dt.date | None = None) -> dict[str, int]:
        """Unexpired holds per account (optionally those for shipments dated on or before `until`)."""
        query = (
            select(HOLDS.c.account_id, func.sum(HOLDS.c.amount_micro))
            .where(
                HOLDS.c.account_id.startswith(prefix, autoescape=True),
                HOLDS.c.status == "held",
                HOLDS.c.expires_at > _now(),
            )
            .group_by(HOLDS.c.account_id)
        )
        if until is not None:
            query = query.where(HOLDS.c.effective_date <= until)
        return {a: int(v) for a, v in conn.execute(query)}

    def _check_steps(
        self, conn: Connection, ref: AccountRef, row: dict[str, Any], extra: int, steps: tuple[tuple[dt.date, int], ...]
    ) -> None:
        """A cap that grows by date (NVEU schedule, allocation doubled from a g2g date): the use dated up
        to every step the draw reaches must fit that step's cap."""
        key = conn.info.get("tierline_key")
        for through, cap in steps:
            stored = select(func.coalesce(func.sum(ENTRIES.c.amount_micro), 0)).where(
                ENTRIES.c.account_id == ref.id,
                ENTRIES.c.effective_date <= through,
                (ENTRIES.c.idempotency_key.is_(None)) | (ENTRIES.c.idempotency_key != key),
            )
            committed = int(conn.execute(stored).scalar() or 0)  # before this transaction
            pending = sum(micro for on, micro in row.get("batch", ()) if on <= through)  # this batch, by date
            held = self._live_holds(conn, ref.id, through).get(ref.id, 0)
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
        request = {
            "op": "reserve",
            "account": account,
            "micro": micro,
            "date": str(effective_date),
            "expires_at": expires.isoformat() if expires_at else None,
            "ttl_seconds": ttl.total_seconds() if ttl else None,
            "actor": actor,
        }

        def work(conn: Connection, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
            row = self._lock(conn, rows, [account])[account]
            self._check_room(conn, rows, ref, micro, effective_date, headquarters)
            hold_id = str(uuid.uuid4())
            self._sql(
                conn,
                "hold_add",
                id=hold_id,
                account_id=account,
                amount_micro=micro,
                effective_date=effective_date,
                expires_at=expires,
                created_at=_now(),
            )
            row["held_micro"] += micro
            self._event(
                conn,
                row,
                {
                    "op": "reserve",
                    "hold_id": hold_id,
                    "amount_micro": micro,
                    "effective_date": str(effective_date),
                    "expires_at": expires.isoformat(),
                    "actor": actor,
                    "idempotency_key": idempotency_key,
                },
            )
            return {
                "hold_id": hold_id,
                "account": account,
                "tpp": from_micro(micro),
                "status": "held",
                "expires_at": expires.isoformat(),
            }

        return self._idempotent(idempotency_key, request, work)

    def _settle(self, hold_id: str, status: str, idempotency_key: str, actor: str | None) -> dict[str, Any]:
        request = {"op": status, "hold_id": hold_id, "actor": actor}

        def work(conn: Connection, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
            found = self._sql(conn, "hold_get", id=hold_id).first()
            if found is None:
                raise TierlineError("hold_id", f"no hold {hold_id!r}")
            # the account first, then the hold: the order every writer uses, so none deadlocks
            row = self._lock(conn, rows, [found.account_id])[found.account_id]
            hold = self._sql(conn, "hold_lock", id=hold_id).first()
            current = "expired" if hold.status == "held" and _aware_db(hold.expires_at) <= _now() else hold.status
            if current != "held":
                raise TierlineError("hold_id", f"hold {hold_id} is {current}, not held")
            self._sql(conn, "hold_status", id=hold_id, status=status)
            row["held_micro"] -= hold.amount_micro
            if status == "committed":
                self._entry(
                    conn,
                    row,
                    "commit",
                    hold.amount_micro,
                    _date(hold.effective_date),
                    idempotency_key,
                    actor,
                    hold_id=hold_id,
                )
            else:
                self._event(
                    conn,
                    row,
                    {
                        "op": "release",
                        "hold_id": hold_id,
                        "amount_micro": hold.amount_micro,
                        "actor": actor,
                        "idempotency_key": idempotency_key,
                    },
                )
            return {
                "hold_id": hold_id,
                "account": hold.account_id,
                "tpp": from_micro(hold.amount_micro),
                "status": status,
            }

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

        def work(conn: Connection, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
            self._lock(conn, rows, [r.id for r, _m, _on in parsed])
            totals: dict[str, int] = {}
            for ref, micro, on in parsed:
                row = rows[ref.id]
                self._check_room(conn, rows, ref, micro, on, (headquarters or {}).get(ref.entity or ""))
                row.setdefault("batch", []).append((on, micro))
                totals[ref.id] = totals.get(ref.id, 0) + micro
                self._entry(conn, row, "direct", micro, on, idempotency_key, actor, reason=note)
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

        def work(conn: Connection, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
            row = self._lock(conn, rows, [account])[account]
            if row["committed_micro"] + micro < 0:
                raise TierlineError("tpp", f"the adjustment would take {account} below zero")
            if row["committed_micro"] + micro > MAX_BALANCE:
                raise TierlineError(
                    "tpp", f"{account} would exceed what the ledger records ({MAX_BALANCE // MICRO:,} TPP)"
                )
            self._entry(conn, row, "adjust", micro, effective_date, idempotency_key, actor, reason=reason)
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

        def work(conn: Connection, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
            row = self._lock(conn, rows, [SYSTEM])[SYSTEM]
            conn.execute(G2G.delete().where(G2G.c.country == country))
            conn.execute(G2G.insert().values(country=country, since=since, reason=reason, recorded_at=_now()))
            self._event(
                conn, row, {"op": "g2g", "country": country, "since": str(since), "reason": reason, "actor": actor}
            )
            return {"country": country, "since": str(since)}

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

        def work(conn: Connection, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
            row = self._lock(conn, rows, [SYSTEM])[SYSTEM]
            if conn.execute(select(LICENSES.c.id).where(LICENSES.c.id == license_id)).first():
                raise TierlineError("license_id", f"licence {license_id!r} is already recorded")
            conn.execute(
                LICENSES.insert().values(
                    id=license_id,
                    country=country,
                    holder=holder,
                    tpp_micro=micro,
                    issued=issued,
                    expires=expires,
                    recorded_at=_now(),
                )
            )
            self._event(
                conn,
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
        """(committed, live holds) in TPP, counting draws dated on or before `on` (all when None)."""
        with self.engine.connect() as conn:
            return self._used(conn, account, on, _now())

    def _used(self, conn: Connection, account: str, on: dt.date | None, now: dt.datetime) -> tuple[Fraction, Fraction]:
        q = select(func.coalesce(func.sum(ENTRIES.c.amount_micro), 0)).where(ENTRIES.c.account_id == account)
        h = select(func.coalesce(func.sum(HOLDS.c.amount_micro), 0)).where(
            HOLDS.c.account_id == account, HOLDS.c.status == "held", HOLDS.c.expires_at > now
        )
        if on is not None:
            q, h = q.where(ENTRIES.c.effective_date <= on), h.where(HOLDS.c.effective_date <= on)
        return Fraction(int(conn.execute(q).scalar() or 0), 1_000_000), Fraction(
            int(conn.execute(h).scalar() or 0), 1_000_000
        )

    def account_ids(self, prefix: str = "") -> list[str]:
        with self.engine.connect() as conn:
            query = select(ACCOUNTS.c.id).where(ACCOUNTS.c.id != SYSTEM).order_by(ACCOUNTS.c.id)
            if prefix:
                query = query.where(ACCOUNTS.c.id.startswith(prefix, autoescape=True))
            return list(conn.execute(query).scalars())

    def g2g_since(self, country: str) -> dt.date | None:
        with self.engine.connect() as conn:
            return self._g2g_since(conn, country)

    def status(
        self, *, country: str | None = None, consignee: str | None = None, as_of: dt.date | None = None
    ) -> list[dict[str, Any]]:
        """Usage, live holds, limit and headroom per account as of a date."""
        day = as_of or dt.date.today()
        now = _now()
        out = []
        with self.engine.connect() as conn:
            licenses = {r.id: r.tpp_micro for r in conn.execute(select(LICENSES))}
            for account in self.account_ids():
                ref = parse_account(account)
                if country and ref.country != country:
                    continue
                if consignee and ref.entity != consignee:
                    continue
                committed, held = self._used(conn, account, day, now)
                note: str | None = None
                try:
                    limit = limit_micro(ref, day, self._g2g_since(conn, ref.country), licenses.get(ref.entity or ""))
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


SAVED = ("id", "committed_micro", "held_micro", "head_seq", "head_hash")
STATEMENTS = {
    "idem_get": "SELECT request_hash, response FROM idempotency WHERE key = :key",
    "idem_put": "INSERT INTO idempotency (key, request_hash, response, created_at) "
    "VALUES (:key, :request_hash, :response, :created_at)",
    "account_lock": "SELECT id, kind, committed_micro, held_micro, head_seq, head_hash FROM accounts WHERE id = :id",
    "account_new": "INSERT INTO accounts (id, kind, committed_micro, held_micro, head_seq, head_hash, created_at) "
    "VALUES (:id, :kind, 0, 0, 0, :head_hash, :created_at)",
    "account_save": "UPDATE accounts SET committed_micro = :committed_micro, held_micro = :held_micro, "
    "head_seq = :head_seq, head_hash = :head_hash WHERE id = :id",
    "holds_expired": "SELECT id, amount_micro FROM holds WHERE account_id = :account_id AND status = 'held' "
    "AND expires_at <= :now ORDER BY id",
    "hold_get": "SELECT account_id FROM holds WHERE id = :id",
    "hold_lock": "SELECT id, account_id, amount_micro, effective_date, expires_at, status FROM holds WHERE id = :id",
    "g2g_since": "SELECT since FROM g2g_arrangements WHERE country = :country",
    "hold_add": "INSERT INTO holds (id, account_id, amount_micro, effective_date, expires_at, status, created_at) "
    "VALUES (:id, :account_id, :amount_micro, :effective_date, :expires_at, 'held', :created_at)",
    "hold_status": "UPDATE holds SET status = :status WHERE id = :id",
    "entry_add": "INSERT INTO entries (account_id, op, amount_micro, effective_date, hold_id, reason, actor, "
    "idempotency_key, recorded_at) VALUES (:account_id, :op, :amount_micro, :effective_date, :hold_id, "
    ":reason, :actor, :idempotency_key, :recorded_at)",
    "audit_add": "INSERT INTO audit (chain, seq, event, prev_hash, hash) VALUES (:chain, :seq, :event, :prev_hash, :hash)",
}
DEFERRED = {"hold_add", "hold_status", "entry_add", "audit_add", "account_save", "idem_put"}
LOCKING = {"account_lock", "hold_lock"}  # FOR UPDATE on PostgreSQL (SQLite's BEGIN IMMEDIATE locks the file)


def _compile(sqlite: bool) -> dict[str, str]:
    out = {}
    for name, sql in STATEMENTS.items():
        if not sqlite:
            sql = re.sub(r":(\w+)", r"%(\1)s", sql) + (" FOR UPDATE" if name in LOCKING else "")
        out[name] = sql
    return out


class _Row(dict[str, Any]):
    """A driver row by column name, as attributes too."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _Result:
    """The little of a result the hot path needs, straight from a driver cursor."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.columns = [d[0] for d in cursor.description] if cursor.description else []

    def first(self) -> _Row | None:
        row = self.cursor.fetchone()
        return None if row is None else _Row(zip(self.columns, row, strict=True))

    def all(self) -> list[_Row]:
        return [_Row(zip(self.columns, row, strict=True)) for row in self.cursor.fetchall()]

    def scalar(self) -> Any:
        row = self.cursor.fetchone()
        return None if row is None else row[0]


def _sqlite_value(value: Any) -> Any:
    """Bind values as SQLAlchemy's SQLite types store them (naive UTC datetimes, ISO dates)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


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
