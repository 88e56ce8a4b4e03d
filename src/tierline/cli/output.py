"""Shared CLI plumbing: context options, JSON or Rich output, one-line errors."""

from __future__ import annotations

import datetime as dt
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from tierline.policy import Context

console = Console(emoji=False)  # account names like lpp:ok:2025 must print as they are
err_console = Console(stderr=True, emoji=False)

AS_OF = typer.Option(None, "--as-of", help="Date the answer is computed for (YYYY-MM-DD; default: today).")
VINTAGE = typer.Option("ai-diffusion", "--vintage", help="Rule vintage: ear-2023, ai-diffusion, enforcement-posture.")
JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")
SCENARIO = typer.Option(
    None, "--scenario", help="A stored reform (tierline scenario list): answer as if it were in force."
)


REPORT = typer.Option(
    None, "--report", help="Also write a report: REPORT.html and REPORT.pdf (charts, citations, stamps)."
)


def write_cli_report(report: Any, out: Path) -> None:
    """Write REPORT.html and REPORT.pdf and say where (on stderr, so --json stays clean)."""
    from tierline.reports.write import write_report

    html, pdf = write_report(report, out)
    err_console.print(f"report: {html} and {pdf}")


def context(vintage: str, as_of: str | None, scenario: str | None = None) -> Context:
    from tierline.errors import parse_date
    from tierline.reforms import get_reform

    reform = get_reform(scenario) if scenario else None
    return Context.make(vintage, parse_date(as_of, "--as-of") if as_of is not None else None, reform)


def _default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, Fraction):
        return float(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, default=_default, indent=2, ensure_ascii=False) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    out = Table(title=title, title_justify="left", header_style="bold")
    for col in columns:
        out.add_column(col, overflow="fold")
    for row in rows:
        out.add_row(*["" if v is None else str(v) for v in row])
    return out


def stamp_line(stamp: dict[str, Any]) -> str:
    line = f"[dim]vintage {stamp['vintage']} · as of {stamp['as_of']}[/dim]"
    for warning in stamp.get("vintage_warnings", []):
        line += f"\n[yellow]! {warning}[/yellow]"
    return line
