"""Ledger tables (SQLAlchemy 2). Amounts are integer micro-TPP so sums are exact on every database."""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

GENESIS = "0" * 64


class Base(DeclarativeBase):
    pass


class Account(Base):
    """One allowance account; its row is the lock for its balance and the head of its audit chain."""

    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    committed_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    held_micro: Mapped[int] = mapped_column(BigInteger, default=0)
    head_seq: Mapped[int] = mapped_column(Integer, default=0)
    head_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Entry(Base):
    """A movement on an account: commit, direct commit, adjustment (signed), with its shipment date."""

    __tablename__ = "entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    op: Mapped[str] = mapped_column(String(16))
    amount_micro: Mapped[int] = mapped_column(BigInteger)
    effective_date: Mapped[dt.date] = mapped_column(Date)
    hold_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(200), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_entries_account_date", "account_id", "effective_date"),)


class Hold(Base):
    """A reservation: counts against headroom until committed, released or expired."""

    __tablename__ = "holds"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    amount_micro: Mapped[int] = mapped_column(BigInteger)
    effective_date: Mapped[dt.date] = mapped_column(Date)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_holds_account_status", "account_id", "status"),)


class AuditRow(Base):
    """An audit event, hash-chained within its chain (the account it touched, or "system")."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    __table_args__ = (UniqueConstraint("chain", "seq", name="uq_audit_chain_seq"),)


class Idempotency(Base):
    """A completed write: a retry with the same key returns the same response."""

    __tablename__ = "idempotency"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class G2GArrangement(Base):
    """A government-to-government arrangement recorded for a Tier 2 country (doubles its allocation)."""

    __tablename__ = "g2g_arrangements"
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    since: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class License(Base):
    """An issued licence with its TPP; its drawdown is the account ``license:<id>``."""

    __tablename__ = "licenses"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    country: Mapped[str] = mapped_column(String(2))
    holder: Mapped[str] = mapped_column(String(200))
    tpp_micro: Mapped[int] = mapped_column(BigInteger)
    issued: Mapped[dt.date] = mapped_column(Date)
    expires: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


ACCOUNTS = cast(Table, Account.__table__)
ENTRIES = cast(Table, Entry.__table__)
HOLDS = cast(Table, Hold.__table__)
AUDIT = cast(Table, AuditRow.__table__)
IDEMPOTENCY = cast(Table, Idempotency.__table__)
G2G = cast(Table, G2GArrangement.__table__)
LICENSES = cast(Table, License.__table__)
