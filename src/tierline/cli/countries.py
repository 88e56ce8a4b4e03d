"""``tierline country`` and ``tierline tiers``."""

from __future__ import annotations

from typing import Optional

import typer

from tierline.answers import country_answer, tiers_answer
from tierline.cli.output import AS_OF, JSON, SCENARIO, VINTAGE, console, context, emit_json, stamp_line, table


def country_command(
    code: str = typer.Argument(..., help="ISO2, ISO3 or name (case-insensitive; aliases such as Burma, UAE)."),
    as_json: bool = JSON,
    as_of: Optional[str] = AS_OF,
    vintage: str = VINTAGE,
    scenario: Optional[str] = SCENARIO,
) -> None:
    """A destination's Country Groups and AI Diffusion tier on a date, with its dated changes."""
    ctx = context(vintage, as_of, scenario)
    answer = country_answer(code, ctx)
    if as_json:
        emit_json(answer)
        return
    rows = [
        ["destination", f"{answer['name']} ({answer['iso2']}/{answer['iso3']})"],
        ["Country Groups", ", ".join(answer["groups"]) or "none"],
        ["AI Diffusion tier", f"Tier {answer['tier']} — {answer['tier_reason']}"],
        ["tier citation", answer["tier_citation"]],
        ["confidence", answer["confidence"]],
    ]
    if "treated_as" in answer:
        rows.insert(1, ["treated as", f"{answer['treated_as']}: {answer['treated_as_note']}"])
    console.print(table(None, ["", ""], rows))
    if answer["history"]:
        hist = [
            [h["effective"], h["group"], h["change"], h["confidence"], h["citation"][:90]] for h in answer["history"]
        ]
        console.print(table("Dated changes", ["effective", "group", "change", "confidence", "citation"], hist))
    for key in ("tier_note", "territory_hint"):
        if key in answer:
            console.print(f"[yellow]! {answer[key]}[/yellow]")
    console.print(stamp_line(ctx.stamp()))


def tiers_command(
    tier: Optional[int] = typer.Option(None, "--tier", min=1, max=3, help="Only this tier."),
    as_json: bool = JSON,
    as_of: Optional[str] = AS_OF,
    vintage: str = VINTAGE,
    scenario: Optional[str] = SCENARIO,
) -> None:
    """Tier counts and members on a date (Hong Kong counted under Tier 3 as part of China)."""
    ctx = context(vintage, as_of, scenario)
    answer = tiers_answer(ctx, tier)
    if as_json:
        emit_json(answer)
        return
    for t, members in answer["members"].items():
        names = ", ".join(f"{c['name']} ({c['iso2']})" for c in members)
        console.print(f"[bold]Tier {t}[/bold] — {len(members)} destinations\n{names}\n")
    console.print(stamp_line(ctx.stamp()))
