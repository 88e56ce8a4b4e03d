"""Policy epochs: the dates on which any dated fact changes (a parameter value, a date inside a value,
a vintage's start, a Country Group change). Between two consecutive change dates every rule reads the
same facts, so bulk screening evaluates each distinct line once per epoch instead of once per date.

A Country Group change is a change for one country: the rules test a group's membership only for
the countries a line names (its destination, parties' locations and headquarters, VEU destinations,
the country it leaves from; each also as the country the EAR treats it as). So such a change starts
an epoch only for the lines that name its country (`country_changes`). The exception is a group a
rule reads as a whole (`WHOLE_GROUPS`): the UVEU shares weigh the installed base in every Tier 1
country, so a change to supp. no. 5(a) starts an epoch for every line. A rule that reads another
group as a whole must add it there. Likewise a parameter that is a list of countries (unit
``country_list``: the destinations named in the b-level licence requirement, those of the 2026
China rule) is tested against a line's destination only: a new value is a change for the countries
it adds or removes."""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Iterable, Iterator
from typing import Any

from tierline.groups import GroupChange, country_groups
from tierline.policy.parameters import load_parameters
from tierline.policy.vintages import POLICY_DIR_ENV, load_vintages

DAY = dt.timedelta(days=1)
WHOLE_GROUPS = frozenset({"SUPP5A"})  # groups a rule reads as a whole (the UVEU shares: every Tier 1 country)
COUNTRY_UNITS = frozenset({"country_list"})  # parameters a rule tests a line's destination against


def dates_in(value: Any) -> Iterator[dt.date]:
    if isinstance(value, dt.date):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from dates_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from dates_in(item)


def _policy_dates(policy_dir: str | None, vintage: str | None) -> Iterator[tuple[dt.date, bool]]:
    """(date, whether rules may also change the day after). A value takes effect on its start date
    (`Parameter.entry_at`: start <= day), as do vintages (day < in_force_from, compliance_from) and
    Country Group changes (effective <= day): those change on the date only. A date inside a value
    (a period's end, a schedule step) may be compared either way: the day after counts too."""
    for param in load_parameters(policy_dir):
        if vintage is not None and not param.applies_to(vintage):
            continue  # a rule of `vintage` cannot read it (Context.parameter refuses)
        if param.unit in COUNTRY_UNITS:
            continue  # a change for the countries it adds or removes (`country_changes`)
        for start, value in param.values:
            yield start, False
            yield from ((day, True) for day in dates_in(value))
    for regime in load_vintages().values():
        yield regime.in_force_from, False
        if regime.compliance_from:
            yield regime.compliance_from, False
    yield from ((day, False) for day in whole_group_dates(country_groups().changes))


@functools.lru_cache(maxsize=16)
def _bundled_boundaries(policy_dir: str | None, vintage: str | None) -> tuple[dt.date, ...]:
    out: set[dt.date] = set()
    for day, either_way in _policy_dates(policy_dir, vintage):
        out.update(boundaries([day]) if either_way else (day,))
    return tuple(sorted(out))


def whole_group_dates(changes: Iterable[GroupChange]) -> list[dt.date]:
    """The dates of the changes to groups read as a whole: an epoch for every line."""
    return [c.effective for c in changes if c.group in WHOLE_GROUPS]


def country_changes(changes: Iterable[GroupChange], vintage: str | None = None) -> tuple[tuple[dt.date, str], ...]:
    """The (date, country) of each change of a group not read as a whole, and of each country added
    to or removed from a list-of-countries parameter (one `vintage` can read; by default any);
    sorted and distinct."""
    out = {(c.effective, c.iso2) for c in changes if c.group not in WHOLE_GROUPS}
    out.update(_list_changes(os.environ.get(POLICY_DIR_ENV) or None, vintage))
    return tuple(sorted(out))


@functools.lru_cache(maxsize=16)
def _list_changes(policy_dir: str | None, vintage: str | None) -> frozenset[tuple[dt.date, str]]:
    out: set[tuple[dt.date, str]] = set()
    for param in load_parameters(policy_dir):
        if param.unit not in COUNTRY_UNITS or (vintage is not None and not param.applies_to(vintage)):
            continue
        before: set[str] = set()
        for start, value in param.values:
            now = set(value or ())
            out.update((start, code) for code in before ^ now)
            before = now
    return frozenset(out)


def boundaries(dates: Iterable[dt.date]) -> tuple[dt.date, ...]:
    """Each date and the day after (a rule may compare with ``<`` or ``<=``), sorted."""
    out: set[dt.date] = set()
    for day in dates:
        out.add(day)
        if day < dt.date.max:
            out.add(day + DAY)
    return tuple(sorted(out))


def change_dates(extra: Iterable[dt.date] = (), vintage: str | None = None) -> tuple[dt.date, ...]:
    """The epoch boundaries of the policy data in force for every line, plus those of `extra` dates
    (for example the dates of recorded government-to-government arrangements). With `vintage`, only
    the parameters that vintage can read count (every vintage's dates always do). Changes of groups
    not read as a whole are not included: see `country_changes`.
    Calendar years are not included: a caller that keys anything by year adds the year itself."""
    base = _bundled_boundaries(os.environ.get(POLICY_DIR_ENV) or None, vintage)
    more = boundaries(extra)
    return tuple(sorted(set(base) | set(more))) if more else base
