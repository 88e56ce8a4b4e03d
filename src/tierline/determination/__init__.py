"""Licence determinations for advanced-computing items and model weights (docs/determinations.md)."""

from tierline.allowances import AllowanceState, InMemoryAllowances
from tierline.determination.engine import Determination, LineDetermination, determine
from tierline.determination.model import LineItem, Party, Transaction

__all__ = [
    "AllowanceState",
    "Determination",
    "InMemoryAllowances",
    "LineDetermination",
    "LineItem",
    "Party",
    "Transaction",
    "determine",
]
