"""Bulk screening: order lines in, one decision per line out, allowances accumulated in line order.

The vectorized engine (`Screener`) groups lines into plans (`plans.make_plan`: the scalar engine run
once per distinct kind of line and policy epoch), runs the allowance kernel over the lines in order,
and assembles decisions from the plans' templates with Polars. `screen_scalar` is the reference: the
scalar engine one line after another. Both start from the same `Snapshot` of the allowances.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import polars as pl

from tierline.allowances import AllowanceState, InMemoryAllowances
from tierline.countries import all_countries
from tierline.determination.engine import determine
from tierline.errors import TierlineError
from tierline.groups import country_groups, ear_codes
from tierline.policy.epochs import change_dates, country_changes, whole_group_dates
from tierline.policy.vintages import load_vintages
from tierline.reforms import Reform
from tierline.screen.kernel import CAP, SHARES, accumulate
from tierline.screen.orders import (
    BY_NAME,
    COUNTRY_COLUMNS,
    DECISION_COLUMNS,
    DECISION_SCHEMA,
    PROFILE,
    column_of,
    decision_row,
    split_list,
    transaction_for,
)
from tierline.screen.plans import CONSIGNEE, OPERATOR, Built, Plan, Task
from tierline.tiers import UNITED_STATES

MAX_CANDIDATES = 8
MAX_COUNTRY_CHANGES = 62  # country changes kept per line in a 64-bit state (later ones start epochs for all)
MEASURES = {"tier1": 0, "single_non_tier1": 1, "us": 2}
EPOCH_DAY = dt.date(1970, 1, 1)
EXACT_FLOAT = 2**53


@dataclass(frozen=True)
class BadRow:
    """An order line that cannot be screened: where, what and why."""

    line: int
    column: str
    value: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "value": self.value, "reason": self.reason}


@dataclass
class Snapshot:
    """Allowance usage (TPP per account) and g2g arrangement dates that screening starts from."""

    used: dict[str, Fraction] = field(default_factory=dict)
    g2g: dict[str, dt.date] = field(default_factory=dict)
    as_of: dt.date | None = None  # the date the usage is counted to (the book's first date)

    @classmethod
    def of(cls, state: AllowanceState, on: dt.date) -> Snapshot:
        """Every account of `state` as of `on`, and its g2g dates."""
        used = {a: Fraction(v) for a, v in state.accounts("", on).items() if v}
        g2g = {c: d for c in all_countries() if (d := state.g2g_since(c)) is not None}
        return cls(used, g2g, on)

    def state(self) -> InMemoryAllowances:
        return InMemoryAllowances(self.used, self.g2g)


def profile_hashes(batch: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes of each line's profile (every column a plan depends on, not the per-line
    ones); lines of one profile in one policy epoch share a plan."""
    keyed = batch.select(
        pl.struct(*[pl.col(c) for c in PROFILE], pl.col("lpp_operating_entity").is_not_null().alias("_operator")).alias(
            "key"
        )
    ).select(pl.col("key").hash(seed=11).alias("h1"), pl.col("key").hash(seed=29).alias("h2"))
    return keyed["h1"].to_numpy(), keyed["h2"].to_numpy()


def _days(dates: pl.Series) -> np.ndarray:
    return dates.cast(pl.Int32).to_numpy()


class BatchRows:
    """Lines of a batch as dicts, converted once for all the screeners that plan them, and the
    lines' country states (`Screener._country_states`) per list of country changes."""

    def __init__(self, batch: pl.DataFrame) -> None:
        self.batch = batch
        self.rows: dict[int, dict[str, Any]] = {}
        self.states: dict[tuple[tuple[dt.date, str], ...], np.ndarray] = {}

    def get(self, index: list[int]) -> list[dict[str, Any]]:
        """Fresh copies of the lines at `index` (callers may change them)."""
        missing = [i for i in index if i not in self.rows]
        if missing:
            self.rows.update(zip(missing, self.batch[missing].to_dicts(), strict=True))
        return [dict(self.rows[i]) for i in index]


@dataclass
class Planning:
    """A batch's kinds of line (their 128-bit keys in order of first appearance, and each line's
    kind) and the plans still to build."""

    inverse: np.ndarray
    pairs: list[tuple[int, int]]
    tasks: list[Task]


def _kinds(k1: np.ndarray, k2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first line of each distinct (k1, k2), in order of appearance; each line's kind index)."""
    _, first, inverse = np.unique(k1, return_index=True, return_inverse=True)
    if not np.array_equal(k2, k2[first][inverse]):  # two kinds share a k1 (rare): unique on both
        _, first, inverse = np.unique(np.stack([k1, k2], axis=1), axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return first[order], rank[inverse.reshape(-1)]


class Screener:
    """The vectorized engine. Feed parsed batches in file order with `screen`; state carries over."""

    def __init__(
        self, snapshot: Snapshot, vintage: str, *, reform: Reform | None = None, collect_draws: bool = False
    ) -> None:
        self.snapshot = snapshot
        self.vintage = vintage
        self.reform = reform
        self.collect_draws = collect_draws
        self.draws: dict[tuple[str, dt.date], Fraction] = {}  # with collect_draws: per account and date
        self.uveu_hq: dict[str, str] = {}  # UVEU entities drawn on: their headquarters
        # Country Group changes start an epoch only for the lines that name the country (epochs.py)
        changes = country_changes([*country_groups().changes, *(reform.groups if reform else ())])
        self.country_changes = changes[:MAX_COUNTRY_CHANGES]
        self.country_masks: dict[tuple[str, str], int] = {}  # (column, value) -> changes it names
        extra = [
            *snapshot.g2g.values(),
            *(reform.parameter_dates() if reform else ()),
            *whole_group_dates(reform.groups if reform else ()),
            *(d for d, _ in changes[MAX_COUNTRY_CHANGES:]),
        ]
        self.extra_dates = extra
        self.bounds: dict[str, np.ndarray] = {}  # per vintage a line names: its epochs' boundaries
        self.scale = 1
        self.plan_ids: dict[tuple[int, int], int] = {}
        self.plans: list[Plan | TierlineError] = []
        self.reserved = 0  # plan ids given to kinds whose plans are still being built
        self.plan_rows: list[list[int]] = []  # per plan: the decision template of each branch
        # account slots
        self.templates: dict[str, int] = {}
        self.template_names: list[str] = []
        self.entities: dict[str, int] = {"": 0}
        self.entity_names: list[str] = [""]
        self.slot_of: dict[int, int] = {}
        self.accounts: list[str] = []
        self.used = np.zeros(0, dtype=np.int64)
        self.initial: list[Fraction] = []
        # UVEU installed base by entity and country
        self.countries = list(all_countries())
        self.country_index = {c: i for i, c in enumerate(self.countries)}
        self.uveu_rows: dict[int, int] = {}
        self.uveu = np.zeros((0, len(self.countries)), dtype=np.int64)
        # decision templates and the summary
        self.n_rows = 0  # decision templates so far (one per branch of each plan)
        self.new_frames: list[pl.DataFrame] = []  # templates not yet in rows_frame
        self.rows_frame: pl.DataFrame | None = None
        self.row_counts = np.zeros(0, dtype=np.int64)
        self._arrays: dict[str, np.ndarray] | None = None

    # ---- plans ----------------------------------------------------------------------------------
    @staticmethod
    def _yearly(vintages: pl.Series) -> dict[str, bool]:
        """Per vintage named in the batch: whether its lines are planned per calendar year (it has
        License Exception LPP, whose accounts are per consignee-year); unknown names: yes."""
        known = load_vintages()
        return {v: v not in known or known[v].has("lpp") for v in vintages.unique().to_list()}

    def _bounds(self, vintage: str) -> np.ndarray:
        """The epoch boundaries for lines under `vintage` (only the parameters it can read count; an
        unknown name, which the lines' plans refuse, gets the screening's)."""
        found = self.bounds.get(vintage)
        if found is None:
            name = vintage if vintage in load_vintages() else self.vintage
            dates = change_dates(self.extra_dates, name)
            found = self.bounds[vintage] = np.array([(d - EPOCH_DAY).days for d in dates], dtype=np.int64)
        return found

    def _epochs(self, days: np.ndarray, vintages: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """Each line's policy epoch under its own vintage (an index into that vintage's boundaries;
        lines of different vintages never share a plan) and the epoch's first day (the line's day
        before the first boundary)."""
        names = vintages.unique().to_list()
        epoch = np.empty(len(days), dtype=np.int64)
        first = np.empty(len(days), dtype=np.int64)
        for name in names:
            mask = (vintages == name).to_numpy() if len(names) > 1 else np.ones(len(days), dtype=np.bool_)
            bounds = self._bounds(name)
            e = np.searchsorted(bounds, days[mask], side="right")
            epoch[mask] = e
            first[mask] = np.where(e > 0, bounds[np.maximum(e - 1, 0)], days[mask])
        return epoch, first

    def _epoch_starts(self, start: np.ndarray, years: np.ndarray, states: np.ndarray) -> list[dt.date]:
        """The plans' dates: the first day of each line's policy epoch (`start`), within its calendar
        year where the year is part of the plan (`years` 0 where it is not) and on or after the
        country changes in its state."""
        january = (np.maximum(years, 1970) - 1970).astype("datetime64[Y]").astype("datetime64[D]").astype(np.int64)
        first = np.where(years > 0, np.maximum(start, january), start)
        for i, (day, _) in enumerate(self.country_changes):
            since = (day - EPOCH_DAY).days
            first = np.where((states >> np.uint64(i)) & np.uint64(1), np.maximum(first, since), first)
        return [EPOCH_DAY + dt.timedelta(days=int(d)) for d in first.tolist()]

    def _country_states(self, batch: pl.DataFrame, days: np.ndarray) -> np.ndarray:
        """Per line, the country changes (bit i: `country_changes[i]`) that name one of its countries
        and are in force on its date."""
        if not self.country_changes:
            return np.zeros(len(batch), dtype=np.uint64)
        distinct = batch.select(pl.col(c).drop_nulls().unique().implode() for c in COUNTRY_COLUMNS).row(0)
        masks = {
            c: {v: self._country_mask(c, v) for v in values}
            for c, values in zip(COUNTRY_COLUMNS, distinct, strict=True)
        }
        named_by = [
            pl.col(c).replace_strict(m, default=0, return_dtype=pl.Int64).fill_null(0)
            for c, m in masks.items()
            if any(m.values())
        ]
        if not named_by:
            return np.zeros(len(batch), dtype=np.uint64)
        named = batch.select(pl.reduce(operator.or_, named_by)).to_series().to_numpy()
        in_force = np.zeros(len(batch), dtype=np.int64)
        for i, (day, _) in enumerate(self.country_changes):
            in_force |= (days >= (day - EPOCH_DAY).days).astype(np.int64) << i
        return (named & in_force).astype(np.uint64)

    def _country_mask(self, column: str, value: str) -> int:
        """The country changes that name the country (or one of the countries) `value` stands for,
        or the country the EAR treats it as."""
        found = self.country_masks.get((column, value))
        if found is None:
            codes: set[str] = set()
            for part in split_list(value) if BY_NAME[column].kind == "list" else [value]:
                try:
                    codes |= ear_codes(part)
                except TierlineError:
                    continue  # an unknown country: the line's plan is an error on any date
            found = sum(1 << i for i, (_, iso2) in enumerate(self.country_changes) if iso2 in codes)
            self.country_masks[(column, value)] = found
        return found

    def _add_plan(self, plan: Plan | TierlineError) -> None:
        self.plans.append(plan)
        self.plan_rows.append([])
        if isinstance(plan, Plan):
            self._rescale(plan.unit_tpp, *(c.cap for c in plan.candidates if c.cap is not None))
            self.plan_rows[-1] = list(range(self.n_rows, self.n_rows + plan.branches))
            self.n_rows += plan.branches

    def _rescale(self, *values: Fraction) -> None:
        scale = self.scale
        for v in values:
            if scale % v.denominator:
                scale = math.lcm(scale, v.denominator)
        if scale != self.scale:
            factor = scale // self.scale
            self.used *= factor
            self.uveu *= factor
            self.scale = scale
            self._arrays = None

    def _template(self, account: str) -> tuple[int, int]:
        """(template id, whose entity fills it: 0 none, 1 consignee, 2 operator)."""
        tid = self.templates.get(account)
        if tid is None:
            tid = self.templates[account] = len(self.template_names)
            self.template_names.append(account)
        return tid, 1 if CONSIGNEE in account else 2 if OPERATOR in account else 0

    def _profile_arrays(self) -> dict[str, np.ndarray]:
        """Every plan as rows of arrays for the kernel; extended as plans are added, rebuilt when
        the amount scale changes."""
        n, k, c = len(self.plans), MAX_CANDIDATES, len(self.countries)
        a = self._arrays
        start = 0 if a is None else len(a["valid"])
        if a is not None and start == n:
            return a
        grow = {
            "ncand": np.zeros(n - start, dtype=np.int64),
            "kind": np.zeros((n - start, k), dtype=np.int64),
            "cap": np.zeros((n - start, k), dtype=np.int64),
            "template": np.full((n - start, k), -1, dtype=np.int64),
            "who": np.zeros((n - start, k), dtype=np.int64),
            "dest": np.zeros(n - start, dtype=np.int64),
            "tier1": np.zeros((n - start, c), dtype=np.bool_),
            "measures": np.zeros((n - start, 3), dtype=np.int64),
            "minimums": np.zeros((n - start, 3), dtype=np.bool_),
            "nums": np.zeros((n - start, 3), dtype=np.int64),
            "dens": np.zeros((n - start, 3), dtype=np.int64),
            "nlimits": np.zeros(n - start, dtype=np.int64),
            "unit": np.zeros(n - start, dtype=np.int64),
            "rows": np.full((n - start, k + 1), -1, dtype=np.int64),
            "valid": np.zeros(n - start, dtype=np.bool_),
            "shares": np.zeros(n - start, dtype=np.bool_),
        }
        a = grow if a is None else {name: np.concatenate([a[name], more]) for name, more in grow.items()}
        scale = self.scale
        valid, unit, ncand = [], [], []
        for p in range(start, n):
            plan = self.plans[p]
            if isinstance(plan, Plan):
                valid.append(True)
                unit.append(_scaled(plan.unit_tpp, scale))
                ncand.append(len(plan.candidates))
            else:
                valid.append(False)
                unit.append(0)
                ncand.append(0)
        a["valid"][start:], a["unit"][start:], a["ncand"][start:] = valid, unit, ncand
        for p in range(start, n):
            plan = self.plans[p]
            if not isinstance(plan, Plan):
                continue
            a["rows"][p, : len(self.plan_rows[p])] = self.plan_rows[p]
            for j, cand in enumerate(plan.candidates):
                a["template"][p, j], a["who"][p, j] = self._template(cand.account)
                if cand.cap is not None:
                    a["kind"][p, j] = CAP
                    a["cap"][p, j] = min(_scaled(cand.cap, scale), 2**63 - 1)
                    continue
                a["kind"][p, j] = SHARES
                a["shares"][p] = True
                a["dest"][p] = self.country_index[cand.destination]
                a["tier1"][p] = [code in cand.tier1 for code in self.countries]
                a["nlimits"][p] = len(cand.limits)
                for m, limit in enumerate(cand.limits):
                    a["measures"][p, m] = MEASURES[limit.measure]
                    a["minimums"][p, m] = limit.minimum
                    a["nums"][p, m] = limit.bound.numerator
                    a["dens"][p, m] = limit.bound.denominator
        self._arrays = a
        return a

    # ---- accounts -------------------------------------------------------------------------------
    def _entity_ids(self, values: pl.Series) -> np.ndarray:
        uniques = values.drop_nulls().unique().to_list()
        for name in uniques:
            if name not in self.entities:
                self.entities[name] = len(self.entity_names)
                self.entity_names.append(name)
        mapping = {name: self.entities[name] for name in uniques}
        return values.replace_strict(mapping, default=0, return_dtype=pl.Int64).fill_null(0).to_numpy()

    def _account_name(self, template: int, entity: int) -> str:
        name = self.template_names[template]
        who = self.entity_names[entity]
        return name.replace(CONSIGNEE, who).replace(OPERATOR, who)

    def _slots(self, keys: list[np.ndarray]) -> list[np.ndarray]:
        """Account slots for account keys (template << 32 | entity; -1 for none), new accounts
        starting from their snapshot usage."""
        present = np.concatenate([k[k >= 0] for k in keys]) if keys else np.zeros(0, dtype=np.int64)
        uniq = np.unique(present)
        new = [int(u) for u in uniq if int(u) not in self.slot_of]
        if new:
            start = len(self.accounts)
            extra = np.zeros(len(new), dtype=np.int64)
            for j, key in enumerate(new):
                name = self._account_name(key >> 32, key & 0xFFFFFFFF)
                self.slot_of[key] = start + j
                self.accounts.append(name)
                initial = self.snapshot.used.get(name, Fraction(0))
                self._rescale(initial)
                self.initial.append(initial)
                extra[j] = int(initial * self.scale)
            self.used = np.concatenate([self.used, extra])
        uniq_slots = np.array([self.slot_of[int(u)] for u in uniq], dtype=np.int64)
        out = []
        for k in keys:
            slot = np.full(len(k), -1, dtype=np.int64)
            mask = k >= 0
            slot[mask] = uniq_slots[np.searchsorted(uniq, k[mask])]
            out.append(slot)
        return out

    def _uveu_rows(self, entities: np.ndarray, mask: np.ndarray) -> np.ndarray:
        rows = np.zeros(len(entities), dtype=np.int64)
        if not mask.any():
            return rows
        for entity in np.unique(entities[mask]).tolist():
            if entity in self.uveu_rows:
                continue
            self.uveu_rows[entity] = len(self.uveu_rows)
            installed = np.zeros((1, len(self.countries)), dtype=np.int64)
            prefix = f"uveu:{self.entity_names[entity]}:"
            for account, value in self.snapshot.used.items():
                code = account.removeprefix(prefix)
                if account.startswith(prefix) and code in self.country_index:
                    self._rescale(value)
                    installed[0, self.country_index[code]] = int(value * self.scale)
            self.uveu = np.vstack([self.uveu, installed])
        lookup = np.vectorize(self.uveu_rows.__getitem__, otypes=[np.int64])
        rows[mask] = lookup(entities[mask])
        return rows

    # ---- screening ------------------------------------------------------------------------------
    def new_plans(
        self,
        batch: pl.DataFrame,
        hashes: tuple[np.ndarray, np.ndarray] | None = None,
        rows: BatchRows | None = None,
    ) -> Planning:
        """The kinds of line in a parsed batch, and the plans this screener has yet to build for
        them (as tasks for `screen.workers.submit_plans`). `hashes` (from `profile_hashes`) may be
        shared by several screeners of the same batch. New kinds get their plan ids now, so the
        next batch can be planned before this one's plans are back; `planned` must then be called
        for the plannings in the order they were made."""
        h1, h2 = hashes if hashes is not None else profile_hashes(batch)
        days = _days(batch["date"])
        vintages = batch["vintage"].fill_null(self.vintage)
        epochs, epoch_first = self._epochs(days, vintages)
        epoch = epochs.astype(np.uint64)
        # LPP accounts are per calendar year: under a vintage with LPP a kind of line is planned per
        # year; under others only the policy epochs matter
        yearly = vintages.replace_strict(self._yearly(vintages), return_dtype=pl.Boolean).to_numpy()
        year = np.where(yearly, batch["date"].dt.year().to_numpy(), 0).astype(np.uint64)
        rows = rows or BatchRows(batch)
        states = rows.states.get(self.country_changes)
        if states is None:
            states = rows.states[self.country_changes] = self._country_states(batch, days)
        with np.errstate(over="ignore"):  # mixing the epoch, year and country state into the 128-bit profile hash
            k1 = h1 ^ (epoch * np.uint64(0x9E3779B97F4A7C15) + year + states * np.uint64(0xD6E8FEB86659FD93))
            k2 = h2 ^ (year * np.uint64(0xC2B2AE3D27D4EB4F) + epoch + states * np.uint64(0xA0761D6478BD642F))
        first, inverse = _kinds(k1, k2)
        pairs = list(zip(k1[first].tolist(), k2[first].tolist(), strict=True))
        new = [j for j, pair in enumerate(pairs) if pair not in self.plan_ids]
        tasks: list[Task] = []
        if new:
            index = first[new]
            starts = self._epoch_starts(epoch_first[index], year[index].astype(np.int64), states[index])
            for row, start in zip(rows.get(index.tolist()), starts, strict=True):
                row["date"] = start  # one date per epoch: the rules' caches hit
                tasks.append((row, self.vintage, self.snapshot.g2g, self.reform))
            for j in new:
                self.plan_ids[pairs[j]] = len(self.plans) + self.reserved
                self.reserved += 1
        return Planning(inverse, pairs, tasks)

    def planned(self, batch: pl.DataFrame, planning: Planning, built: Built) -> tuple[np.ndarray, list[BadRow]]:
        """The plan of every line of the batch, given the plans built for `planning`'s tasks, and
        the lines whose plan is an error."""
        if len(built.plans) != len(planning.tasks):
            raise AssertionError("a plan for every task")
        for plan in built.plans:  # in the order their ids were reserved
            self._add_plan(plan)
        self.new_frames.append(built.templates)
        self.reserved -= len(built.plans)
        ids = np.array([self.plan_ids[pair] for pair in planning.pairs], dtype=np.int64)
        pid = ids[planning.inverse]
        bad: list[BadRow] = []
        valid = self._profile_arrays()["valid"]
        for i in np.flatnonzero(~valid[pid]).tolist():
            bad.append(self._bad_line(batch.row(i, named=True), self.plans[pid[i]]))
        return pid, bad

    def _bad_line(self, row: dict[str, Any], error: Plan | TierlineError) -> BadRow:
        assert isinstance(error, TierlineError)
        if error.field in ("date", "vintage"):  # the reason names the line's own date
            error = _scalar_error(row, self.vintage, self.reform) or error
        column = column_of(error.field)
        value = row.get(column)
        return BadRow(row["line"], column, None if value is None else str(value), error.reason)

    def screen(self, batch: pl.DataFrame, pid: np.ndarray, columns: Sequence[str] = DECISION_COLUMNS) -> pl.DataFrame:
        """Decisions for a parsed batch of valid lines (their plans from `planned`), in order; only
        `columns` of them (a comparison needs fewer than a decisions file)."""
        n = len(batch)
        if n == 0:
            return pl.DataFrame(schema={c: DECISION_SCHEMA[c] for c in columns})
        a = self._profile_arrays()
        quantity = batch["quantity"].to_numpy().astype(np.int64)
        consignee = self._entity_ids(batch["consignee_id"])
        operator = self._entity_ids(batch["lpp_operating_entity"])
        keys = []
        for k in range(int(a["ncand"].max(initial=0))):
            template, who = a["template"][pid, k], a["who"][pid, k]
            entity = np.where(who == 1, consignee, np.where(who == 2, operator, 0))
            keys.append(np.where(template >= 0, (template << 32) | entity, -1))
        slots = self._slots(keys)
        uveu_rows = self._uveu_rows(consignee, a["shares"][pid])
        a = self._profile_arrays()  # new accounts may have rescaled the amounts: the arrays follow
        unit = a["unit"][pid]
        if np.any(quantity > (2**62) // np.maximum(unit, 1)):
            raise TierlineError("quantity", "a line's TPP is too large to screen exactly")
        amount = unit * quantity
        slot_matrix = np.full((n, MAX_CANDIDATES), -1, dtype=np.int64)
        for k, s in enumerate(slots):
            slot_matrix[:, k] = s
        branch = np.zeros(n, dtype=np.int64)
        failed = accumulate(
            pid,
            amount,
            slot_matrix,
            uveu_rows,
            a["ncand"],
            a["kind"],
            a["cap"],
            a["dest"],
            a["tier1"],
            a["measures"],
            a["minimums"],
            a["nums"],
            a["dens"],
            a["nlimits"],
            np.int64(self.country_index[UNITED_STATES]),
            self.used,
            self.uveu,
            branch,
        )
        if failed >= 0:
            raise TierlineError("quantity", f"line {batch['line'][int(failed)]}: amounts too large to screen exactly")
        row_ids = a["rows"][pid, branch]
        if self.collect_draws:
            self._collect(batch, pid, branch, slot_matrix, amount)
        self.row_counts = np.concatenate([self.row_counts, np.zeros(self.n_rows - len(self.row_counts), np.int64)])
        self.row_counts += np.bincount(row_ids, minlength=self.n_rows)
        return self._decisions(batch, row_ids, branch, slot_matrix, amount, columns)

    def _rows_frame(self) -> pl.DataFrame:
        """The decision templates as a frame, extended with the ones added since the last call."""
        if self.rows_frame is None or self.new_frames:
            frames = [self.rows_frame] if self.rows_frame is not None else [pl.DataFrame(schema=DECISION_SCHEMA)]
            self.rows_frame = pl.concat([*frames, *self.new_frames], rechunk=True)
            self.new_frames = []
        return self.rows_frame

    def _decisions(
        self,
        batch: pl.DataFrame,
        row_ids: np.ndarray,
        branch: np.ndarray,
        slots: np.ndarray,
        amount: np.ndarray,
        columns: Sequence[str],
    ) -> pl.DataFrame:
        wanted = [c for c in columns if c not in PER_LINE_OUT]
        fixed = self._rows_frame().select(list(dict.fromkeys([*wanted, "draw_account"])))[row_ids]
        drew = fixed["draw_account"].is_not_null().to_numpy()
        chosen = np.where(drew, slots[np.arange(len(branch)), np.minimum(branch, MAX_CANDIDATES - 1)], 0)
        tpp = _to_float(amount, self.scale)
        names = pl.Series("draw_account", self.accounts or [""], dtype=pl.String)
        return fixed.with_columns(
            batch["line"],
            batch["line_id"],
            batch["date"],
            batch["quantity"].cast(pl.Int64),
            pl.Series("tpp", tpp),
            pl.when(pl.Series(drew)).then(names.gather(chosen)).otherwise(None).alias("draw_account"),
            pl.when(pl.Series(drew)).then(pl.Series(tpp)).otherwise(None).alias("draw_tpp"),
        ).select(columns)

    def valid(self, pid: np.ndarray) -> np.ndarray:
        """Which lines have a plan (not an error)."""
        return self._profile_arrays()["valid"][pid]  # type: ignore[no-any-return]

    def _collect(
        self, batch: pl.DataFrame, pid: np.ndarray, branch: np.ndarray, slots: np.ndarray, amount: np.ndarray
    ) -> None:
        a = self._profile_arrays()
        drew = branch < a["ncand"][pid]
        lines = np.flatnonzero(drew)
        chosen = slots[lines, branch[lines]]
        frame = pl.DataFrame(
            {"slot": chosen, "date": batch["date"].gather(lines), "amount": amount[lines]},
            schema={"slot": pl.Int64, "date": pl.Date, "amount": pl.Int64},
        )
        sums = frame.group_by("slot", "date").agg(pl.col("amount").cast(pl.Int128).sum())
        for slot, day, total in sums.iter_rows():
            key = (self.accounts[slot], day)
            self.draws[key] = self.draws.get(key, Fraction(0)) + Fraction(int(total), self.scale)
        shares = lines[a["kind"][pid[lines], branch[lines]] == SHARES]
        for i in shares.tolist():
            plan = self.plans[pid[i]]
            assert isinstance(plan, Plan)
            self.uveu_hq[batch["consignee_id"][i]] = plan.headquarters

    def drawn(self) -> dict[str, Fraction]:
        """TPP drawn per account by the lines screened so far."""
        out = {}
        for slot, name in enumerate(self.accounts):
            delta = Fraction(int(self.used[slot]), self.scale) - self.initial[slot]
            if delta:
                out[name] = delta
        return out

    def outcome_counts(self) -> pl.DataFrame:
        """Lines per decision template (authorization, review policy, licence, warnings)."""
        frame = self._rows_frame()
        counts = np.concatenate([self.row_counts, np.zeros(self.n_rows - len(self.row_counts), np.int64)])
        return frame.with_columns(pl.Series("lines", counts, dtype=pl.Int64))


PER_LINE_OUT = ["line", "line_id", "date", "quantity", "tpp", "draw_tpp"]


def _scaled(value: Fraction, scale: int) -> int:
    """value × scale, exactly (`scale` is a multiple of the value's denominator)."""
    return value.numerator * (scale // value.denominator)


def _to_float(amount: np.ndarray, scale: int) -> np.ndarray:
    """amount / scale as the float nearest the exact quotient (what float(Fraction) gives)."""
    out = amount / np.float64(scale)
    big = np.flatnonzero(amount >= EXACT_FLOAT)
    for i in big.tolist():
        out[i] = int(amount[i]) / scale
    return out


def _scalar_error(row: Mapping[str, Any], vintage: str, reform: Reform | None) -> TierlineError | None:
    try:
        determine(transaction_for(row, vintage), reform=reform)
    except TierlineError as exc:
        return exc
    return None


def screen_scalar(
    batch: pl.DataFrame, state: InMemoryAllowances, vintage: str, reform: Reform | None = None
) -> tuple[list[dict[str, Any]], list[BadRow]]:
    """The reference: the scalar engine on each parsed line in order, drawing into `state` as it goes."""
    rows: list[dict[str, Any]] = []
    bad: list[BadRow] = []
    for row in batch.iter_rows(named=True):
        try:
            det = determine(transaction_for(row, vintage), state, reform)
        except TierlineError as exc:
            column = column_of(exc.field)
            value = row.get(column)
            bad.append(BadRow(row["line"], column, None if value is None else str(value), exc.reason))
            continue
        for draw in det.lines[0].draws:
            state.draw(draw.account, draw.tpp)
        rows.append(decision_row(det, row["line"], row["line_id"]))
    return rows, bad
