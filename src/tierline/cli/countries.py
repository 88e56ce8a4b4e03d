"""``tierline country`` and ``tierline tiers``."""

from __future__ import annotations

from typing import Any, Optional

import typer

from tierline.cli.output import AS_OF, JSON, VINTAGE, console, context, emit_json, stamp_line, table
from tierline.groups import GROUP_CITATION, country_groups, ear_destination
from tierline.policy import Context
from tierline.tiers import tier_members, tier_of


def country_answer(query: str, ctx: Context) -> dict[str, Any]:
    """A destination's groups and tier on the context's date, with the rules applied."""
    dest = ear_destination(query, ctx.as_of)
    groups = country_groups()
    tier = tier_of(dest.country, ctx)
    answer: dict[str, Any] = {
        "iso2": dest.country.iso2,
        "iso3": dest.country.iso3,
        "name": dest.country.name,
        "groups": groups.groups_of(dest.ear.iso2, ctx.as_of),
        "groups_citation": GROUP_CITATION,
        "tier": tier.tier,
        "tier_reason": tier.reason,
        "tier_citation": tier.citation,
        "tiers_apply": ctx.vintage.has("tiers"),
        "confidence": dest.country.confidence,
        "notes": dest.country.notes,
        "history": [c.as_dict() for c in groups.history(dest.ear.iso2)],
        **ctx.stamp(),
    }
    if not ctx.vintage.has("tiers"):
        answer["tier_note"] = (
            f"vintage {ctx.vintage.name} has no tiers; the tier shown is the AI Diffusion "
            "definition applied to this date"
        )
    if dest.ear is not dest.country:
        answer["treated_as"] = dest.ear.iso2
        answer["treated_as_note"] = dest.treated_as_note
        answer["treated_as_reference"] = dest.treated_as_reference
    if dest.country.territory_hint:
        answer["territory_hint"] = (
            f"not listed separately; 15 CFR 738.3(b) may place it with "
            f"{dest.country.territory_hint} (not applied; confidence low)"
        )
    return answer


def country_command(
    code: str = typer.Argument(..., help="ISO2, ISO3 or name (case-insensitive; aliases such as Burma, UAE)."),
    as_json: bool = JSON,
    as_of: Optional[str] = AS_OF,
    vintage: str = VINTAGE,
) -> None:
    """A destination's Country Groups and AI Diffusion tier on a date, with its dated changes."""
    ctx = context(vintage, as_of)
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
) -> None:
    """Tier counts and members on a date (Hong Kong counted under Tier 3 as part of China)."""
    ctx = context(vintage, as_of)
    members = tier_members(ctx)
    wanted = [tier] if tier else [1, 2, 3]
    if as_json:
        emit_json(
            {
                "counts": {str(t): len(members[t]) for t in wanted},
                "members": {str(t): [{"iso2": c.iso2, "name": c.name} for c in members[t]] for t in wanted},
                "tiers_apply": ctx.vintage.has("tiers"),
                **ctx.stamp(),
            }
        )
        return
    for t in wanted:
        names = ", ".join(f"{c.name} ({c.iso2})" for c in members[t])
        console.print(f"[bold]Tier {t}[/bold] — {len(members[t])} destinations\n{names}\n")
    console.print(stamp_line(ctx.stamp()))
