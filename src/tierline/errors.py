"""Errors that name the field, key or parameter at fault and why."""

from __future__ import annotations

import datetime as dt


class TierlineError(Exception):
    """A user-facing error: `field` names what is wrong, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message

    def __reduce__(self) -> tuple[type[TierlineError], tuple[str, str]]:
        """Pickled (to and from screening workers) as a TierlineError with the same field and reason."""
        return TierlineError, (self.field, self.reason)


class PolicyDataError(TierlineError):
    """A policy data file is malformed: names the file, the key and the problem."""

    def __init__(self, file: str, key: str, message: str) -> None:
        super().__init__(f"{file}: {key}", message)
        self.file = file
        self.key = key


def parse_date(value: str | dt.date, field: str = "date") -> dt.date:
    """Parse an ISO date (YYYY-MM-DD); a malformed one is a TierlineError naming `field`."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise TierlineError(field, f"{value!r} is not a date in the form YYYY-MM-DD") from None
