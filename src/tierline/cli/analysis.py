"""``tierline pathways`` (what can still reach a destination) and ``tierline project`` (when a demand
series exhausts the Tier 2 country allocations), both reading usage from the ledger."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer

from tierline.allowances import AllowanceState, InMemoryAllowances
from tierline.cli.output import (
    AS_OF,
    JSON,
    REPORT,
    SCENARIO,
    VINTAGE,
    console,
    context,
    emit_json,
    stamp_line,
    table,
    write_cli_report,
)
from tierline.errors import TierlineError, parse_date
from tierline.policy.vintages import DEFAULT_VINTAGE


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the ``tierline`` app."""
    app.command("pathways")(pathways_command)
    app.command("project")(project_command)


def allowance_state() -> tuple[AllowanceState, str]:
    """The ledger as of each date asked (TIERLINE_DATABASE_URL, else $TIERLINE_HOME/tierline.db, as
    ``tierline ledger status`` opens it); when no ledger file exists yet, no usage (none is created)."""
    from tierline.ledger.db import DATABASE_URL_ENV, HOME_ENV

    if not os.environ.get(DATABASE_URL_ENV):
        file = Path(os.environ.get(HOME_ENV) or Path.home() / ".tierline") / "tierline.db"
        if not file.exists():
            return InMemoryAllowances(), "no ledger yet: no usage recorded"
        where = str(file)
    else:
        where = DATABASE_URL_ENV
    from tierline.ledger import Ledger
    from tierline.pathways import LedgerUsage

    return LedgerUsage(Ledger()), f"ledger {where}"


def _write(path: Path, svg: str, option: str) -> None:
    try:
        path.write_text(svg, encoding="utf-8")
    except OSError as exc:
        raise TierlineError(option, f"cannot write {path}: {exc.strerror}") from None


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def pathways_command(
    country: str = typer.Argument(..., help="Destination: ISO2, ISO3 or name."),
    entity: Optional[str] = typer.Option(
        None, "--entity", help="Data Center VEU entity id: adds its NVEU and UVEU rows."
    ),
    headquarters: Optional[str] = typer.Option(
        None, "--headquarters", help="The entity's headquarters (the UVEU US-share limit applies to US)."
    ),
    consignees: str = typer.Option(
        "1", "--consignees", help="LPP consignees: a number (unnamed) or comma-separated ids (their usage counts)."
    ),
    chip: Optional[str] = typer.Option(
        None, "--chip", help="Catalogue chip the counts are in (default: the H100 reference)."
    ),
    as_of: Optional[str] = AS_OF,
    vintage: str = VINTAGE,
    scenario: Optional[str] = SCENARIO,
    as_json: bool = JSON,
    chart: Optional[Path] = typer.Option(
        None, "--chart", help="Write the remaining-compute chart as SVG to this file."
    ),
    report: Optional[Path] = REPORT,
) -> None:
    """What can still reach a destination, per pathway: country allocation, LPP, NVEU, UVEU (docs/pathways.md)."""
    from tierline.pathways import parse_consignees, pathways, pathways_chart_svg, pathways_report

    ctx = context(vintage, as_of, scenario)
    state, source = allowance_state()
    result = pathways(
        country,
        ctx.as_of,
        vintage=ctx.vintage.name,
        reform=ctx.reform,
        entity=entity,
        headquarters=headquarters,
        consignees=parse_consignees(consignees, "--consignees"),
        chip=chip,
        state=state,
    )
    if chart is not None:
        _write(chart, pathways_chart_svg(result), "--chart")
    if report is not None:
        write_cli_report(pathways_report(result), report)
    if as_json:
        emit_json({**result.as_dict(), "usage_source": source, **({"chart": str(chart)} if chart else {})})
        return
    console.print(
        f"[bold]{result.destination_name} ({result.destination})[/bold] — Tier {result.tier}: {result.tier_reason}"
    )
    rows = [
        [
            r.label,
            "yes" if r.available else "no",
            "no limit" if r.unlimited else _fmt(None if r.limit_tpp is None else float(r.limit_tpp)),
            _fmt(None if r.used_tpp is None else float(r.used_tpp)),
            "no limit" if r.unlimited else _fmt(None if r.remaining_tpp is None else float(r.remaining_tpp)),
            "—" if r.units is None else f"{r.units:,}",
            "—" if r.h100_equivalents is None else f"{float(r.h100_equivalents):,.1f}",
            r.why_not or "",
            "; ".join(r.citations),
        ]
        for r in result.rows
    ]
    columns = ["pathway", "open", "limit TPP", "used TPP", "remaining TPP", f"units ({result.chip.name})"]
    console.print(table(None, [*columns, "H100e", "why not", "citations"], rows))
    for note in result.notes:
        console.print(f"[yellow]! {note}[/yellow]")
    console.print(f"[dim]usage: {source}[/dim]")
    if chart is not None:
        console.print(f"[dim]chart written to {chart}[/dim]")
    console.print(stamp_line(ctx.stamp()))


def _sides(vintages: list[str], scenarios: list[str]) -> list[tuple[str, Any]]:
    """Each --vintage is a side without reform (default: the default vintage); each --scenario adds a
    side: the first vintage with that reform."""
    from tierline.reforms import get_reform

    base = vintages or [DEFAULT_VINTAGE]
    return [(v, None) for v in base] + [(base[0], get_reform(s)) for s in scenarios]


def project_command(
    demand: Path = typer.Argument(..., help="Demand series CSV: date,country,chip,quantity (docs/pathways.md)."),
    vintage: list[str] = typer.Option([], "--vintage", help="A side per vintage (default: ai-diffusion)."),
    scenario: list[str] = typer.Option([], "--scenario", help="Adds a side: the first vintage with this reform."),
    until: Optional[str] = typer.Option(None, "--until", help="Leave out demand dated after this day."),
    as_json: bool = JSON,
    chart_dir: Optional[Path] = typer.Option(
        None, "--chart-dir", help="Write one SVG chart per country (projection-CC.svg) here."
    ),
    report: Optional[Path] = REPORT,
) -> None:
    """When a demand series exhausts each Tier 2 country allocation, per scenario (docs/pathways.md)."""
    from tierline.projection import project, projection_chart_svg, projection_report

    sides = _sides(vintage, scenario)
    state, source = allowance_state()
    result = project(demand, sides, state=state, until=parse_date(until, "--until") if until else None)
    if report is not None:
        write_cli_report(projection_report(result), report)
    charts: list[str] = []
    if chart_dir is not None:
        try:
            chart_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TierlineError("--chart-dir", f"cannot create {chart_dir}: {exc.strerror}") from None
        for code in result.countries:
            file = chart_dir / f"projection-{code}.svg"
            _write(file, projection_chart_svg(result, code), "--chart-dir")
            charts.append(str(file))
    if as_json:
        emit_json({**result.as_dict(), "usage_source": source, **({"charts": charts} if chart_dir else {})})
        return
    rows = [
        [
            f"{p.country_name} ({p.country})",
            p.side.label,
            ", ".join(str(t) for t in p.tiers),
            p.binding,
            p.runs_out_on.isoformat() if p.runs_out_on else p.headline,
            _fmt(None if p.cap_at_period_end is None else float(p.cap_at_period_end)),
            _fmt(float(p.drawn_tpp)),
            "—" if p.fraction_used_at_period_end is None else f"{float(p.fraction_used_at_period_end):.1%}",
        ]
        for p in result.projections
    ]
    console.print(
        table(
            f"Projection of {demand.name} ({result.rows} rows)",
            ["country", "scenario", "tiers", "binding", "runs out on", "cap at period end", "demand TPP", "at end"],
            rows,
        )
    )
    for note in result.notes:
        console.print(f"[yellow]! {note}[/yellow]")
    console.print(f"[dim]usage: {source}[/dim]")
    for path in charts:
        console.print(f"[dim]chart written to {path}[/dim]")
    sides_text = " vs ".join(s.label for s in result.sides)
    console.print(f"[dim]{sides_text} · through {result.as_of.isoformat()}[/dim]")
