"""``tierline policy``: parameters with value, date, reference and confidence; vintages."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

import typer

from tierline.cli.output import AS_OF, JSON, VINTAGE, console, context, emit_json, stamp_line, table
from tierline.errors import TierlineError
from tierline.policy.vintages import load_vintages

policy_app = typer.Typer(help="Policy parameters and rule vintages.", invoke_without_command=True)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@policy_app.callback()
def policy_list(
    typer_ctx: typer.Context,
    prefix: Optional[str] = typer.Option(None, "--prefix", help="Only parameters whose path starts with this."),
    as_json: bool = JSON,
    as_of: Optional[str] = AS_OF,
    vintage: str = VINTAGE,
) -> None:
    """List the parameters of a vintage with the value in force, its date, reference and confidence."""
    if typer_ctx.invoked_subcommand:
        return
    ctx = context(vintage, as_of)
    rows = []
    for param in ctx.parameters:
        if not param.applies_to(ctx.vintage.name) or (prefix and not param.path.startswith(prefix)):
            continue
        try:
            start, value = param.entry_at(ctx.as_of)
            in_force: Any = start.isoformat()
        except TierlineError:
            start, value, in_force = None, None, None
        rows.append(
            {
                "parameter": param.path,
                "value": _plain(value),
                "in_force_from": in_force,
                "unit": param.unit,
                "description": param.description,
                "reference": param.reference.as_dict(),
                "confidence": param.confidence,
                "file": param.file,
            }
        )
    if as_json:
        emit_json({"parameters": rows, **ctx.stamp()})
        return
    out = [
        [
            r["parameter"],
            "not in force" if r["in_force_from"] is None else r["value"],
            r["unit"],
            r["in_force_from"],
            r["confidence"],
            r["reference"].get("cfr") or r["reference"].get("source"),
        ]
        for r in rows
    ]
    console.print(table("Parameters", ["parameter", "value", "unit", "from", "confidence", "reference"], out))
    console.print(stamp_line(ctx.stamp()))


@policy_app.command("show")
def policy_show(
    path: str = typer.Argument(..., help="Parameter path, e.g. lpp.annual_tpp_per_consignee."), as_json: bool = JSON
) -> None:
    """Every dated value of one parameter, with its reference."""
    params = context("ai-diffusion", None).parameters
    param = params.get(path)
    data = {
        "parameter": param.path,
        "description": param.description,
        "unit": param.unit,
        "values": [{"from": d.isoformat(), "value": _plain(v)} for d, v in param.values],
        "reference": param.reference.as_dict(),
        "confidence": param.confidence,
        "source_tag": param.source_tag,
        "vintages": list(param.vintages) if param.vintages else "all",
        "file": param.file,
    }
    if as_json:
        emit_json(data)
        return
    console.print(table(param.path, ["field", "value"], [[k, v] for k, v in data.items()]))


@policy_app.command("vintages")
def policy_vintages(as_json: bool = JSON) -> None:
    """The named rule vintages."""
    data: list[dict[str, Any]] = [
        {
            "name": v.name,
            "title": v.title,
            "in_force_from": v.in_force_from.isoformat(),
            "compliance_from": v.compliance_from.isoformat() if v.compliance_from else None,
            "description": v.description,
            "provisions": sorted(v.provisions),
            "reference": v.reference.as_dict(),
            "confidence": v.confidence,
        }
        for v in load_vintages().values()
    ]
    if as_json:
        emit_json({"vintages": data})
        return
    console.print(
        table(
            "Rule vintages",
            ["name", "from", "title", "provisions"],
            [[d["name"], d["in_force_from"], d["title"], ", ".join(d["provisions"])] for d in data],
        )
    )
