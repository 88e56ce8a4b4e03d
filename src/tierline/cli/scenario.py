"""``tierline scenario``: reforms as data, stored under ``$TIERLINE_HOME/scenarios/NAME.yaml``."""

from __future__ import annotations

from pathlib import Path

import typer

from tierline.cli.output import JSON, console, emit_json, table
from tierline.reforms import add_reform, get_reform, list_reforms

scenario_app = typer.Typer(help="Reform scenarios: dated patches over the policy parameters and country lists.")


@scenario_app.command("list")
def scenario_list(as_json: bool = JSON) -> None:
    """Stored scenarios and the bundled examples (a stored one shadows an example of the same name)."""
    rows = list_reforms()
    if as_json:
        emit_json({"scenarios": rows})
        return
    console.print(
        table(
            "Scenarios", ["name", "origin", "description"], [[r["name"], r["origin"], r["description"]] for r in rows]
        )
    )


@scenario_app.command("show")
def scenario_show(name: str = typer.Argument(..., help="Scenario name."), as_json: bool = JSON) -> None:
    """A scenario's parameter and country changes, validated against the policy data."""
    data = get_reform(name).as_dict()
    if as_json:
        emit_json(data)
        return
    rows = [["parameter", p["path"], p["value"], p["from"]] for p in data["parameters"]]
    rows += [["country", f"{c['country']} {c['change']} {c['group']}", "", c["from"]] for c in data["countries"]]
    console.print(table(f"{data['name']}: {data['description']}", ["kind", "what", "value", "from"], rows))


@scenario_app.command("add")
def scenario_add(
    file: Path = typer.Argument(..., help="A reform file (YAML or JSON)."),
    replace: bool = typer.Option(False, "--replace", help="Overwrite a stored scenario of the same name."),
    as_json: bool = JSON,
) -> None:
    """Validate a reform file and store it by its name."""
    reform, target = add_reform(file, replace)
    if as_json:
        emit_json({"name": reform.name, "file": str(target)})
        return
    console.print(f"stored scenario {reform.name} at {target}")
