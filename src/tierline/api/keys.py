"""API keys: created and revoked by ``tierline keys`` (or an admin over HTTP), stored hashed.

A key reads ``tl_<id>_<secret>``; the database keeps the id, the SHA-256 of the secret, the role and
the dates. The secret is shown once, at creation, and never logged. Roles are ordered: a role may do
everything the roles before it may.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import DateTime, String, Table, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, mapped_column

from tierline.errors import TierlineError
from tierline.ledger.ledger import Ledger
from tierline.ledger.schema import Base

ROLES = ("viewer", "analyst", "officer", "admin")
ROLE_CAN = {
    "viewer": "read: reference data, classifications, determinations, ledger status and history",
    "analyst": "viewer, and what-if work: screenings that record nothing",
    "officer": "analyst, and ledger writes: reserve, commit, release, adjust, applying determinations and screenings",
    "admin": "officer, and API keys",
}


class ApiKey(Base):
    """An API key (the secret is kept only as its SHA-256)."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(40), default="")
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


KEYS = cast(Table, ApiKey.__table__)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id (what the audit trail records) and its role."""

    key_id: str
    role: str

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_key(ledger: Ledger, role: str, label: str = "", created_by: str = "cli") -> dict[str, Any]:
    """A new key; the returned ``key`` is the only time the secret is shown. The creation is audited
    (system chain) with who made it."""
    engine = ledger.engine
    if role not in ROLES:
        raise TierlineError("role", f"{role!r} is not a role; one of {', '.join(ROLES)}")
    key_id, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            KEYS.insert().values(
                id=key_id,
                secret_hash=_digest(secret),
                role=role,
                label=label,
                created_at=_now(),
                created_by=created_by,
                revoked_at=None,
            )
        )
    ledger.record_event(
        "key_create", {"key_id": key_id, "role": role}, actor=created_by, idempotency_key=f"key-create:{key_id}"
    )
    return {"id": key_id, "role": role, "label": label, "key": f"tl_{key_id}_{secret}"}


def revoke_key(ledger: Ledger, key_id: str, revoked_by: str = "cli") -> dict[str, Any]:
    """Revoke a key (it stops working at once); audited with who revoked it."""
    with ledger.engine.begin() as conn:
        done = conn.execute(
            update(KEYS).where(KEYS.c.id == key_id, KEYS.c.revoked_at.is_(None)).values(revoked_at=_now())
        ).rowcount
        exists = conn.execute(select(KEYS.c.id).where(KEYS.c.id == key_id)).first() is not None
    if not exists:
        raise TierlineError("key_id", f"no key {key_id!r}")
    if done:
        ledger.record_event("key_revoke", {"key_id": key_id}, actor=revoked_by, idempotency_key=f"key-revoke:{key_id}")
    return {"id": key_id, "revoked": True, "already_revoked": not done}


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(KEYS).order_by(KEYS.c.created_at, KEYS.c.id))
        return [
            {
                "id": r.id,
                "role": r.role,
                "label": r.label,
                "created_at": r.created_at.isoformat() if hasattr(r.created_at, "isoformat") else str(r.created_at),
                "created_by": r.created_by,
                "revoked": r.revoked_at is not None,
            }
            for r in rows
        ]


def authenticate(engine: Engine, presented: str) -> Caller | None:
    """The caller a presented key stands for, or None (unknown, malformed or revoked)."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != "tl" or not parts[1] or not parts[2]:
        return None
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    raw = engine.raw_connection()  # checked on every request: one statement, no ORM or compilation
    try:
        cursor = raw.cursor()
        cursor.execute(f"SELECT secret_hash, role, revoked_at FROM api_keys WHERE id = {mark}", (parts[1],))
        row = cursor.fetchone()
    finally:
        raw.close()
    if row is None or row[2] is not None:
        return None
    if not hmac.compare_digest(row[0], _digest(parts[2])):
        return None
    return Caller(parts[1], row[1])
