"""The durable allocation ledger (SQLite by default, PostgreSQL via TIERLINE_DATABASE_URL)."""

from tierline.ledger.ledger import Draw, Ledger, LedgerAllowances

__all__ = ["Draw", "Ledger", "LedgerAllowances"]
