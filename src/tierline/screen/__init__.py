"""Bulk screening of order books (docs/screening.md)."""
