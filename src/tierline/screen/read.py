"""Reading order books (CSV, Parquet, JSON Lines) in streamed batches, and parsing each batch's
columns into typed values with a report of every value that is not what its column needs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from tierline.determination.model import IDENTIFIER_REASON
from tierline.errors import TierlineError
from tierline.screen.orders import BY_NAME, COLUMNS, LIST_SEPARATOR, MAX_QUANTITY, REQUIRED

FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
TRUE = ("true", "1", "yes", "y", "t")
FALSE = ("false", "0", "no", "n", "f")


def file_format(path: Path, field: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise TierlineError(field, f"{path.name}: use a .csv, .parquet or .jsonl file")
    return fmt


def scan(path: Path) -> pl.LazyFrame:
    """The order book as a lazy frame with its columns checked (missing or unknown ones refused)."""
    if not path.is_file():
        raise TierlineError("orders", f"{path} does not exist")
    fmt = file_format(path, "orders")
    try:
        if fmt == "csv":
            frame = pl.scan_csv(path, infer_schema=False, raise_if_empty=False)
        elif fmt == "parquet":
            frame = pl.scan_parquet(path)
        else:
            names = _jsonl_columns(path)
            frame = pl.scan_ndjson(path, schema={n: pl.String for n in names})
        names = frame.collect_schema().names()
    except TierlineError:
        raise
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise TierlineError("orders", f"{path.name} is not a readable {fmt} file: {_first_line(exc)}") from None
    missing = [c for c in REQUIRED if c not in names]
    unknown = [c for c in names if c not in BY_NAME]
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}")
    if problems:
        raise TierlineError("orders", f"{path.name}: {'; '.join(problems)} (columns: docs/screening.md)")
    return frame


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _jsonl_columns(path: Path) -> list[str]:
    """Every key used anywhere in a JSON Lines file (Polars reads the whole file to infer them); a line
    that is not a JSON object is named."""
    try:
        return pl.scan_ndjson(path, infer_schema_length=None).collect_schema().names()
    except pl.exceptions.PolarsError:
        raise TierlineError("orders", f"{path.name} {_bad_json_line(path)}") from None


def _bad_json_line(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                return f"line {number} is not JSON: {exc.msg}"
            if not isinstance(obj, dict):
                return f"line {number} is not a JSON object"
    return "is not readable JSON Lines"


def batches(path: Path, chunk_size: int) -> Iterator[pl.DataFrame]:
    """The order book in batches of about `chunk_size` lines, numbered from 1 in column ``line``."""
    frame = scan(path)
    start = 1
    try:
        for batch in frame.collect_batches(chunk_size=chunk_size):
            yield batch.with_row_index("line", offset=start).with_columns(pl.col("line").cast(pl.Int64))
            start += len(batch)
    except (pl.exceptions.PolarsError, OSError) as exc:
        where = _bad_json_line(path) if file_format(path, "orders") == "jsonl" else f"reading stopped near line {start}"
        raise TierlineError("orders", f"{path.name}: {where}: {_first_line(exc)}") from None


TEXT = "\x00text:"  # prefix of the trimmed-text copy of each column while a batch is parsed


def _as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    text = expr if dtype == pl.String else expr.cast(pl.String)
    return text.str.strip_chars().replace("", None)


def parse(batch: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(typed lines, bad values) for a batch: the lines have every column of the order-book schema
    (absent optional ones null); the report has line, column, value and reason for each bad value."""
    schema = batch.schema
    present = [c for c in COLUMNS if c.name in schema]
    # each value as trimmed text (null when empty), computed once: the checks below read it
    batch = batch.with_columns(_as_text(pl.col(c.name), schema[c.name]).alias(TEXT + c.name) for c in present)
    out: list[pl.Expr] = [pl.col("line")]
    checks: list[tuple[str, pl.Expr, pl.Expr, str]] = []  # column, raw text, failed, reason
    with_choices = [c for c in present if c.choices]
    distincts = batch.select(  # the distinct values of the columns with choices (few), in one pass
        pl.col(TEXT + c.name).unique().implode().alias(c.name) for c in with_choices
    )
    for column in COLUMNS:
        name = column.name
        if name not in schema:
            out.append(pl.lit(None, dtype=_dtype(column.kind)).alias(name))
            continue
        dtype = schema[name]
        raw = pl.col(TEXT + name)
        value, failed, reason = _typed(column.kind, name, dtype, raw)
        if column.choices:  # checked on the distinct values
            distinct = [v for v in distincts[name][0].to_list() if v is not None]
            wrong = [v for v in distinct if not _allowed(v, column.choices, column.kind == "list")]
            failed = failed | raw.is_in(wrong)
            reason = f"not one of {', '.join(column.choices)}"
        if column.required:
            checks.append((name, raw, raw.is_null(), "is required"))
        checks.append((name, raw, raw.is_not_null() & failed.fill_null(False), reason))
        out.append(value.alias(name))
    flags = [f"\x00bad{i}" for i in range(len(checks))]
    both = batch.select(
        *out, *(failed.fill_null(False).alias(f) for f, (_, _, failed, _) in zip(flags, checks, strict=True))
    )
    typed = both.drop(flags)
    found = both.select(pl.col(f).any() for f in flags).row(0) if flags else ()
    reports = [  # only for the checks that failed somewhere (usually none: one pass over the batch)
        batch.select(
            pl.col("line"),
            pl.lit(name).alias("column"),
            raw.alias("value"),
            failed.fill_null(False).alias("_bad"),
            pl.lit(reason).alias("reason"),
        )
        .filter(pl.col("_bad"))
        .drop("_bad")
        for (name, raw, failed, reason), any_bad in zip(checks, found, strict=True)
        if any_bad
    ]
    bad = pl.concat(reports) if reports else pl.DataFrame(schema=BAD_SCHEMA)
    return typed, bad.sort("line", maintain_order=True)


def _allowed(value: str, choices: tuple[str, ...], is_list: bool) -> bool:
    parts = [p.strip() for p in value.split(LIST_SEPARATOR)] if is_list else [value]
    return all(p in choices for p in parts if p)


BAD_SCHEMA: dict[str, Any] = {"line": pl.Int64, "column": pl.String, "value": pl.String, "reason": pl.String}


def _dtype(kind: str) -> Any:
    return {"date": pl.Date, "int": pl.Int64, "bool": pl.Boolean}.get(kind, pl.String)


def _typed(kind: str, name: str, dtype: Any, raw: pl.Expr) -> tuple[pl.Expr, pl.Expr, str]:
    """(value, failed, reason) for one column."""
    col = pl.col(name)
    if kind == "date":
        if dtype == pl.Date:
            return col, pl.lit(False), ""
        if isinstance(dtype, pl.Datetime):
            return col.dt.date(), pl.lit(False), ""
        value = raw.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
        return value, value.is_null(), "not a date in the form YYYY-MM-DD"
    if kind == "int":
        low = 1
        high = MAX_QUANTITY if name == "quantity" else 1_000_000
        value = col.cast(pl.Int64, strict=False) if dtype.is_integer() else raw.cast(pl.Int64, strict=False)
        failed = value.is_null() | (value < low) | (value > high)
        return value, failed, f"not a whole number from {low} to {high:,}"
    if kind == "bool":
        if dtype == pl.Boolean:
            return col, pl.lit(False), ""
        lower = raw.str.to_lowercase()
        value = pl.when(lower.is_in(TRUE)).then(True).when(lower.is_in(FALSE)).then(False).otherwise(None)
        return value, value.is_null(), "not true or false"
    if kind == "id":
        return raw, raw.str.contains(":", literal=True), IDENTIFIER_REASON
    return raw, pl.lit(False), ""
