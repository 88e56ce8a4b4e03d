"""Screening a file: stream the order book, validate, screen, write decisions, summarize, apply."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tierline.allowances import AllowanceState
from tierline.errors import TierlineError
from tierline.reforms import Reform
from tierline.screen.engine import BadRow, BatchRows, Planning, Screener, Snapshot, profile_hashes
from tierline.screen.orders import DECISION_COLUMNS, DECISION_SCHEMA
from tierline.screen.read import BAD_SCHEMA, batches, file_format, parse
from tierline.screen.workers import Pending, start_workers, submit_plans

CHUNK = 250_000
KEPT_BAD = 1000  # invalid lines a result holds in memory (the report file has every one)
EARLY_WORKERS_BYTES = 20_000_000  # books this large get their plan workers forked before reading
Progress = Callable[[int], None]


@dataclass
class Result:
    """What a screening found: counts, the summary, bad rows, and the draws to apply."""

    lines: int = 0
    screened: int = 0
    bad: list[BadRow] = field(default_factory=list)
    bad_count: int = 0
    summary: dict[str, Any] = field(default_factory=dict)
    draws: dict[tuple[str, dt.date], Fraction] = field(default_factory=dict)
    headquarters: dict[str, str] = field(default_factory=dict)
    vintage: str = ""
    reform: str | None = None
    first_date: dt.date | None = None
    out: Path | None = None
    rejects: Path | None = None

    @property
    def refused(self) -> bool:
        return self.bad_count > 0 and self.out is None


class FileWriter:
    """Decisions written batch by batch to a temporary file, moved into place only on success."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.fmt = file_format(out, "out")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=".tierline-", dir=out.parent))
        self.parts: list[Path] = []
        self.handle = None if self.fmt == "parquet" else (self.tmp / "out").open("wb")
        self.first = True

    def write(self, frame: pl.DataFrame) -> None:
        if self.fmt == "parquet":
            self.parts.append(self.tmp / f"{len(self.parts):06d}.parquet")
            frame.write_parquet(self.parts[-1])
        elif self.fmt == "csv":
            frame.write_csv(self.handle, include_header=self.first)
        else:
            frame.write_ndjson(self.handle)
        self.first = False

    def finish(self, schema: dict[str, Any]) -> None:
        if self.handle is not None:
            if self.first and self.fmt == "csv":
                pl.DataFrame(schema=schema).write_csv(self.handle)
            self.handle.close()
            os.replace(self.tmp / "out", self.out)
        elif self.parts:
            pl.scan_parquet(self.parts).sink_parquet(self.out)
        else:
            pl.DataFrame(schema=schema).write_parquet(self.out)
        self.discard()

    def discard(self) -> None:
        if self.handle is not None and not self.handle.closed:
            self.handle.close()
        for path in self.tmp.iterdir():
            path.unlink()
        self.tmp.rmdir()


def rejects_path(out: Path | None, orders: Path) -> Path:
    base = out if out is not None else orders
    return base.with_name(base.stem + ".rejects.csv")


def early_workers(orders: Path) -> None:
    """Fork the plan workers of a large book before the book is read: memory Polars has used
    before a fork is shared with the workers, and the screening process would then copy it page by
    page as it reads (about half a second on a 1,000,000-line book)."""
    if orders.is_file() and orders.stat().st_size >= EARLY_WORKERS_BYTES:
        start_workers()


def first_date(orders: Path) -> dt.date | None:
    """The first valid date in the order book (the as-of date of the starting allowance state)."""
    early_workers(orders)
    for batch in batches(orders, 10_000):
        typed, _bad = parse(batch.select(["line", "date"]))
        dates = typed["date"].drop_nulls()
        if len(dates):
            return dates[0]  # type: ignore[no-any-return]
    return None


def starting_snapshot(state: AllowanceState | None, orders: Path) -> Snapshot:
    first = first_date(orders)
    if state is None or first is None:
        return Snapshot(as_of=first)
    return Snapshot.of(state, first)


def screen_file(
    orders: Path,
    out: Path | None,
    *,
    vintage: str,
    reform: Reform | None = None,
    state: AllowanceState | None = None,
    start: Snapshot | None = None,
    skip_invalid: bool = False,
    collect_draws: bool = False,
    chunk_size: int = CHUNK,
    progress: Progress | None = None,
) -> Result:
    """Screen `orders` into `out`, starting from `start` (or from `state` as of the book's first
    date). Invalid rows refuse the whole file (no output, a report beside it) unless `skip_invalid`,
    which screens the valid rows and writes the rejects beside the output. A `reform` screens under a
    scenario (its name is in every decision and the summary); such results are never applied."""
    if reform is not None and collect_draws:
        raise TierlineError("scenario", "a scenario is not law: its draws cannot be applied to the ledger")
    snapshot = start if start is not None else starting_snapshot(state, orders)
    screener = Screener(snapshot, vintage, reform=reform, collect_draws=collect_draws)
    result = Result(vintage=vintage, reform=reform.name if reform else None, first_date=snapshot.as_of)
    writer = FileWriter(out) if out is not None else None
    rejects = screen_batches(
        orders,
        [screener],
        [writer.write] if writer is not None else [lambda _frame: None],
        result,
        skip_invalid=skip_invalid,
        chunk_size=chunk_size,
        progress=progress,
        writer=writer,
    )
    result.rejects = write_rejects(rejects, out, orders, result)
    if writer is not None:
        if result.bad_count and not skip_invalid:
            writer.discard()
        else:
            writer.finish(DECISION_SCHEMA)
            result.out = out
    if not (result.bad_count and not skip_invalid):
        result.summary = summary(screener, result)
        if collect_draws:
            result.draws, result.headquarters = screener.draws, screener.uveu_hq
    return result


def screen_batches(
    orders: Path,
    screeners: list[Screener],
    sinks: list[Callable[[pl.DataFrame], None]],
    result: Result,
    *,
    skip_invalid: bool,
    chunk_size: int = CHUNK,
    progress: Progress | None = None,
    prepare: Callable[[pl.DataFrame], pl.DataFrame] | None = None,
    writer: FileWriter | None = None,
    columns: Sequence[str] = DECISION_COLUMNS,
) -> list[pl.DataFrame]:
    """Read and parse `orders` once, batch by batch, and screen every batch with each screener (one
    per side of a comparison), passing its decisions (`columns` of them) to its sink; counts go to `result`. A line
    invalid under any screener is rejected for all, so the sides stay line-aligned. Returns the
    reports of bad rows; with bad rows and not `skip_invalid`, nothing more is screened. `writer`
    (the sinks' output file) is discarded if the screening fails."""
    try:
        return _screen_batches(orders, screeners, sinks, result, skip_invalid, chunk_size, progress, prepare, columns)
    except BaseException:
        if writer is not None:
            writer.discard()
        raise


def write_rejects(rejects: list[pl.DataFrame], out: Path | None, orders: Path, result: Result) -> Path | None:
    """The report of every bad row, written beside the output (or the book) when there are any; the
    first `KEPT_BAD` also go to `result.bad`."""
    report = pl.concat(rejects) if rejects else pl.DataFrame(schema=BAD_SCHEMA)
    result.bad = [BadRow(**r) for r in report.head(KEPT_BAD).iter_rows(named=True)]
    if not len(report):
        return None
    path = rejects_path(out, orders)
    report.write_csv(path)
    return path


@dataclass
class _Planned:
    """A parsed batch whose plans are being built while the previous batch is screened."""

    lines: int
    ok: pl.DataFrame
    bad_values: pl.DataFrame
    plannings: list[Planning]
    pending: Pending


def _screen_batches(
    orders: Path,
    screeners: list[Screener],
    sinks: list[Callable[[pl.DataFrame], None]],
    result: Result,
    skip_invalid: bool,
    chunk_size: int,
    progress: Progress | None,
    prepare: Callable[[pl.DataFrame], pl.DataFrame] | None,
    columns: Sequence[str],
) -> list[pl.DataFrame]:
    """A pipeline: batch k+1 is read, parsed and its new plans started in worker processes, then
    batch k (whose plans were started before) is screened; decisions leave in file order."""
    rejects: list[pl.DataFrame] = []
    previous: _Planned | None = None
    early_workers(orders)
    for batch in batches(orders, chunk_size):
        typed, bad_values = parse(batch)
        if prepare is not None:
            typed = prepare(typed)
        result.lines += len(typed)
        ok = typed.filter(~pl.col("line").is_in(bad_values["line"].implode()))
        hashes = profile_hashes(ok)
        rows = BatchRows(ok)
        plannings = [screener.new_plans(ok, hashes, rows) for screener in screeners]
        pending = submit_plans([task for planning in plannings for task in planning.tasks])
        if previous is not None:
            _screen_planned(previous, screeners, sinks, result, skip_invalid, progress, rejects, columns)
        previous = _Planned(len(typed), ok, bad_values, plannings, pending)
    if previous is not None:
        _screen_planned(previous, screeners, sinks, result, skip_invalid, progress, rejects, columns)
    return rejects


def _screen_planned(
    batch: _Planned,
    screeners: list[Screener],
    sinks: list[Callable[[pl.DataFrame], None]],
    result: Result,
    skip_invalid: bool,
    progress: Progress | None,
    rejects: list[pl.DataFrame],
    columns: Sequence[str],
) -> None:
    ok = batch.ok
    built = batch.pending.result().split([len(planning.tasks) for planning in batch.plannings])
    planned = [
        screener.planned(ok, planning, plans)
        for screener, planning, plans in zip(screeners, batch.plannings, built, strict=True)
    ]
    bad_plans = [b.as_dict() for _pid, found in planned for b in found]
    bad = pl.concat([batch.bad_values, pl.DataFrame(bad_plans, schema=BAD_SCHEMA).unique(maintain_order=True)])
    if len(bad):
        rejects.append(bad.sort("line", maintain_order=True))
        result.bad_count += bad["line"].n_unique()
    if not (result.bad_count and not skip_invalid):  # refused: keep validating, screen nothing more
        keep = np.logical_and.reduce(
            [screener.valid(pid) for screener, (pid, _) in zip(screeners, planned, strict=True)]
        )
        valid = ok.filter(pl.Series(keep))
        for screener, (pid, _), sink in zip(screeners, planned, sinks, strict=True):
            sink(screener.screen(valid, pid[keep], columns))
        result.screened += len(valid)
    if progress:
        progress(batch.lines)


def summary(screener: Screener, result: Result) -> dict[str, Any]:
    """Lines by authorization and review policy, TPP drawn per allocation and LPP consignee-year,
    lines needing a licence, lines with warnings."""
    counts = screener.outcome_counts().filter(pl.col("lines") > 0)
    by_outcome = (
        counts.group_by("authorization", "review_policy")
        .agg(pl.col("lines").sum())
        .sort("lines", "authorization", descending=[True, False])
    )
    drawn = screener.drawn()
    return {
        "vintage": result.vintage,
        **({"reform": result.reform} if result.reform else {}),
        "starting_state_as_of": result.first_date.isoformat() if result.first_date else None,
        "lines": result.lines,
        "screened": result.screened,
        "rejected": result.bad_count,
        "by_outcome": by_outcome.to_dicts(),
        "needs_license": int(counts.filter(pl.col("needs_license"))["lines"].sum()),
        "with_warnings": int(counts.filter(pl.col("warnings").is_not_null())["lines"].sum()),
        "drawn": {
            kind: {a: float(v) for a, v in sorted(drawn.items()) if a.startswith(kind + ":")}
            for kind in ("allocation", "lpp", "nveu", "uveu")
        },
    }


def content_digest(orders: Path) -> str:
    """SHA-256 of the order book's bytes."""
    digest = hashlib.sha256()
    with orders.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def batch_key(orders: Path, vintage: str) -> str:
    """The default idempotency key of an applied screening: the file's content and the vintage."""
    return f"screen:{vintage}:{content_digest(orders)}"


def batch_note(orders: Path, vintage: str, lines: int) -> str:
    """What an applied batch records as the reason of its entries: which file, by content."""
    return f"screen {orders.name} sha256:{content_digest(orders)} vintage:{vintage} ({lines} lines)"


def ledger_snapshot(ledger: Any, on: dt.date) -> Snapshot:
    """The ledger's usage as of `on` and its g2g arrangements."""
    return Snapshot(ledger.usage(on), ledger.g2g_arrangements(), on)


def screen_against_ledger(
    ledger: Any,
    orders: Path,
    out: Path | None,
    *,
    vintage: str,
    reform: Reform | None = None,
    skip_invalid: bool = False,
    collect_draws: bool = False,
    chunk_size: int = CHUNK,
    progress: Progress | None = None,
) -> Result:
    """`screen_file` starting from the ledger's usage as of the book's first date."""
    first = first_date(orders) if orders.is_file() else None
    return screen_file(
        orders,
        out,
        start=ledger_snapshot(ledger, first) if first is not None else Snapshot(),
        vintage=vintage,
        reform=reform,
        skip_invalid=skip_invalid,
        collect_draws=collect_draws,
        chunk_size=chunk_size,
        progress=progress,
    )


def apply_result(
    ledger: Any, result: Result, orders: Path, *, key: str, actor: str | None, note: str = ""
) -> dict[str, Any] | None:
    """Record a screening's draws in the ledger in one transaction (None when it drew nothing)."""
    from tierline.ledger import Draw

    draws = [Draw(account, tpp, day) for (account, day), tpp in sorted(result.draws.items())]
    if not draws:
        return None
    return ledger.apply(  # type: ignore[no-any-return]
        draws,
        idempotency_key=key,
        actor=actor,
        note=batch_note(orders, result.vintage, result.screened) + note,
        headquarters=result.headquarters,
    )


def applied_response(ledger: Any, key: str, orders: Path, vintage: str) -> dict[str, Any] | None:
    """The stored response if this batch was already applied under `key`; None if `key` is unused; an
    error if `key` was used for anything else (another file, vintage or operation)."""
    import json

    from sqlalchemy import select

    from tierline.ledger.schema import ENTRIES, IDEMPOTENCY

    with ledger.engine.connect() as conn:
        found = conn.execute(select(IDEMPOTENCY.c.response).where(IDEMPOTENCY.c.key == key)).scalar()
        if found is None:
            return None
        reasons = set(conn.execute(select(ENTRIES.c.reason).where(ENTRIES.c.idempotency_key == key)).scalars())
    wanted = f"sha256:{content_digest(orders)} vintage:{vintage} "
    if not any(r and wanted in r for r in reasons):
        raise TierlineError("--key", f"{key!r} was already used for a different request; choose another key")
    return {**json.loads(found), "replayed": True}
