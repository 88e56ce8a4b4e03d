"""``tierline policy``: parameters with value, date, reference and confidence; vintages."""

from __future__ import annotations

from typing import Optional

import typer

from tierline.answers import parameter_answer, parameters_answer, vintages_answer
from tierline.cli.output import AS_OF, JSON, VINTAGE, console, context, emit_json, stamp_line, table

policy_app = typer.Typer(help="Policy parameters and rule vintages.", invoke_without_command=True)


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
    rows = parameters_answer(ctx, prefix)["parameters"]
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
    data = parameter_answer(path)
    if as_json:
        emit_json(data)
        return
    console.print(table(path, ["field", "value"], [[k, v] for k, v in data.items()]))


@policy_app.command("vintages")
def policy_vintages(as_json: bool = JSON) -> None:
    """The named rule vintages."""
    data = vintages_answer()["vintages"]
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
