"""``tierline screen`` (bulk screening of an order book) and ``tierline sample-orders``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tierline.cli.output import JSON, SCENARIO, VINTAGE, console, emit_json, err_console, table
from tierline.errors import TierlineError

EXIT_REFUSED = 2


def _default_out(orders: Path) -> Path:
    return orders.with_name(orders.stem + ".decisions" + orders.suffix)


def _rows(path: Path) -> int | None:
    """Lines in a Parquet file (from its metadata); None for text formats (not counted up front)."""
    if path.suffix.lower() != ".parquet":
        return None
    import polars as pl

    try:
        return int(pl.scan_parquet(path).select(pl.len()).collect().item())
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the screening itself
        return None


def screen_command(
    orders: Path = typer.Argument(..., help="Order book: .csv, .parquet or .jsonl (docs/screening.md)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Decisions file (default: ORDERS.decisions.EXT)."),
    vintage: str = VINTAGE,
    scenario: Optional[str] = SCENARIO,
    apply: bool = typer.Option(False, "--apply", help="Record the batch's draws in the ledger (all or none)."),
    key: Optional[str] = typer.Option(None, "--key", help="Idempotency key of --apply (default: file + vintage)."),
    actor: Optional[str] = typer.Option(None, "--actor", help="Who applies the batch (audit trail)."),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Screen the valid lines; write invalid ones to OUT.rejects.csv."
    ),
    chunk_size: int = typer.Option(1_000_000, "--chunk-size", min=1000, help="Lines read per batch."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
    as_json: bool = JSON,
) -> None:
    """Screen every line of an order book; allowances accumulate line by line in file order."""
    from tierline.ledger import Ledger
    from tierline.reforms import get_reform
    from tierline.screen.run import applied_response, apply_result, batch_key, screen_against_ledger

    if apply and scenario:
        raise TierlineError("--scenario", "a scenario is not law: --apply is refused with --scenario")
    reform = get_reform(scenario) if scenario else None
    out = out or _default_out(orders)
    if out.resolve() == orders.resolve():
        raise TierlineError("--out", "the decisions would overwrite the order book")
    ledger = Ledger()
    batch = key or (batch_key(orders, vintage) if apply else None)
    if apply and batch is not None:
        done = applied_response(ledger, batch, orders, vintage)
        if done is not None:
            note = f"batch {batch} was already applied; nothing recorded again"
            emit_json({"applied": done, "note": note}) if as_json else console.print(f"[yellow]{note}[/yellow]")
            return
    with _progress(progress and not as_json, _rows(orders)) as advance:
        result = screen_against_ledger(
            ledger,
            orders,
            out,
            vintage=vintage,
            reform=reform,
            skip_invalid=skip_invalid,
            collect_draws=apply,
            chunk_size=chunk_size,
            progress=advance,
        )
    if result.bad_count and not skip_invalid:
        _refuse(result, as_json)
    applied = apply_result(ledger, result, orders, key=batch or "", actor=actor) if apply else None
    payload: dict[str, Any] = {**result.summary, "out": str(result.out), "applied": applied, "batch_key": batch}
    if result.rejects:
        payload["rejects"] = str(result.rejects)
    if as_json:
        emit_json(payload)
    else:
        _show(payload)


class _progress:
    """A Rich progress bar on stderr (lines screened; a total when the file says how many)."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total = total
        self.bar: Progress | None = None
        self.task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        columns = [SpinnerColumn(), TextColumn("screening"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        self.bar = Progress(*columns, console=err_console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task("screen", total=self.total)
        return lambda n: self.bar.advance(self.task, n) if self.bar else None

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def _refuse(result: Any, as_json: bool) -> None:
    problems = [b.as_dict() for b in result.bad]
    if as_json:
        emit_json(
            {
                "refused": True,
                "bad_lines": result.bad_count,
                "report": str(result.rejects),
                "first_problems": problems,
            }
        )
    else:
        err_console.print(
            f"[red]refused:[/red] {result.bad_count:,} of {result.lines:,} lines are invalid; nothing was "
            f"written or applied. Every problem is in {result.rejects}."
        )
        shown = problems[:20]
        err_console.print(
            table(
                None,
                ["line", "column", "value", "reason"],
                [[p["line"], p["column"], p["value"], p["reason"]] for p in shown],
            )
        )
        if len(problems) > len(shown) or result.bad_count > len(shown):
            err_console.print(f"… and more in {result.rejects}")
    raise typer.Exit(EXIT_REFUSED)


def _show(payload: dict[str, Any]) -> None:
    console.print(
        f"Screened [bold]{payload['screened']:,}[/bold] of {payload['lines']:,} lines → {payload['out']}"
        + (
            f" ([yellow]{payload['rejected']:,} rejected → {payload['rejects']}[/yellow])"
            if payload["rejected"]
            else ""
        )
    )
    console.print(
        table(
            "Lines by authorization and review policy",
            ["authorization", "review policy", "lines"],
            [[r["authorization"], r["review_policy"] or "", f"{r['lines']:,}"] for r in payload["by_outcome"]],
        )
    )
    console.print(f"Lines needing a licence: [bold]{payload['needs_license']:,}[/bold]")
    console.print(f"Lines with warnings: [bold]{payload['with_warnings']:,}[/bold]")
    for kind, title in (("allocation", "Tier 2 country allocations"), ("lpp", "LPP per consignee-year")):
        drawn = payload["drawn"][kind]
        if drawn:
            rows = sorted(drawn.items(), key=lambda kv: -kv[1])
            console.print(
                table(
                    f"TPP drawn: {title}" + (f" (top 20 of {len(rows)})" if len(rows) > 20 else ""),
                    ["account", "TPP"],
                    [[a, f"{v:,.0f}"] for a, v in rows[:20]],
                )
            )
    if payload["applied"]:
        console.print(f"[green]Applied to the ledger[/green] (key {payload['batch_key']})")
    console.print(f"[dim]vintage {payload['vintage']} · allowances as of {payload['starting_state_as_of']}[/dim]")


def sample_orders_command(
    rows: int = typer.Option(..., "--rows", min=1, help="Number of order lines."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write: .csv, .parquet or .jsonl."),
    seed: int = typer.Option(2025, "--seed", help="Random seed (the same seed gives the same book)."),
) -> None:
    """Generate a realistic order book for demos and benchmarks."""
    from tierline.screen.sample import write_sample

    write_sample(rows, out, seed)
    console.print(f"Wrote {rows:,} order lines to {out}")
