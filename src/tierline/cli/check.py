"""``tierline check`` (licence determinations) and ``tierline weights`` (ECCN 4E091)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
import yaml

from tierline.cli.output import AS_OF, JSON, SCENARIO, VINTAGE, console, context, emit_json, stamp_line, table
from tierline.determination import Transaction, determine
from tierline.errors import TierlineError, parse_date
from tierline.ledger.applying import apply_determination
from tierline.reforms import get_reform
from tierline.weights import ModelWeights, classify_weights

EXIT_NO_LICENCE, EXIT_LICENCE, EXIT_DENIAL = 0, 10, 11
WEIGHT_OPTIONS = {  # ModelWeights field -> the `tierline weights` option that sets it
    "training_operations": "--operations",
    "parameters": "--parameters",
    "active_parameters": "--active-parameters",
    "tokens": "--tokens",
    "additional_operations": "--derived-additional-operations",
    "synthetic_data_fraction": "--synthetic-fraction",
    "generator_operations": "--generator-operations",
    "generator_training_operations": "--generator-training-operations",
}


def exit_code(answer: dict[str, Any]) -> int:
    """0: no licence needed; 10: licence needed; 11: licence needed, presumption of denial."""
    if not answer["license_required"]:
        return EXIT_NO_LICENCE
    return EXIT_DENIAL if answer["review_policy"] == "presumption_of_denial" else EXIT_LICENCE


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TierlineError("--file", f"cannot read {path}: {exc.strerror}") from None
    is_json = path.suffix.lower() == ".json"
    try:
        return json.loads(text) if is_json else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise TierlineError("--file", f"{path.name} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise TierlineError(
            "--file", f"{path.name} is not valid YAML: {getattr(exc, 'problem', None) or exc}{where}"
        ) from None


def load_transaction(path: Path) -> Transaction:
    """A transaction from a JSON or YAML file (as for ``check --file``)."""
    data = _load(path)
    if not isinstance(data, dict):
        raise TierlineError("--file", "a transaction is a mapping of fields")
    return Transaction.model_validate(data)


def show_determination(answer: dict[str, Any]) -> None:
    verdict = "[green]No licence required[/green]" if not answer["license_required"] else "[red]Licence required[/red]"
    console.print(
        f"{verdict} — authorization [bold]{answer['authorization']}[/bold]"
        + (f", review policy [bold]{answer['review_policy']}[/bold]" if answer["review_policy"] else "")
    )
    rows = [
        [
            ln["index"],
            ln["item"],
            ln["quantity"],
            ln["paragraph"] or "not controlled",
            f"{ln['tpp']:,.0f}",
            ln["authorization"],
            ln["review_policy"] or "",
        ]
        for ln in answer["lines"]
    ]
    console.print(table("Lines", ["#", "item", "qty", "classification", "TPP", "authorization", "review"], rows))
    why = [
        [
            s["line"],
            s["rule"],
            "✓" if s["result"] is True else "✗" if s["result"] is False else s["result"],
            s["test"],
            s["citation"],
        ]
        for s in answer["trace"]
        if s["rule"] not in ("H100-equivalents",)
    ]
    console.print(table("Why (and why not)", ["#", "rule", "result", "test", "citation"], why))
    if answer["allocation_draws"]:
        console.print(
            table(
                "Allowance draws",
                ["account", "TPP"],
                [[d["account"], f"{d['tpp']:,.0f}"] for d in answer["allocation_draws"]],
            )
        )
    for o in answer["obligations"]:
        console.print(f"• {o['text']} [dim]({o['citation']})[/dim]")
    for f in answer["red_flags"]:
        console.print(f"[red]⚑ {f['text']} ({f['citation']})[/red]")
    for w in answer["warnings"]:
        console.print(f"[yellow]! {w}[/yellow]")
    console.print(stamp_line(answer))


def check_command(
    file: Optional[Path] = typer.Option(
        None, "--file", "-f", help="Transaction as JSON or YAML (docs/determinations.md)."
    ),
    chip: Optional[str] = typer.Option(None, "--chip", help="Catalogue chip (flag form)."),
    qty: int = typer.Option(1, "--qty", help="Quantity (flag form)."),
    to: Optional[str] = typer.Option(None, "--to", help="Destination (flag form)."),
    consignee: str = typer.Option("consignee", "--consignee", help="Ultimate consignee id (flag form)."),
    consignee_hq: Optional[str] = typer.Option(
        None, "--consignee-hq", help="Consignee headquarters (default: destination)."
    ),
    parent_hq: Optional[str] = typer.Option(
        None, "--parent-hq", help="Ultimate parent headquarters (default: consignee's)."
    ),
    end_use: str = typer.Option("data_center", "--end-use", help="data_center, development, production, storage, ..."),
    certification: list[str] = typer.Option(
        [], "--certification", help="aia_certification, approved_designer, g2g_arrangement."
    ),
    export_from: str = typer.Option("US", "--from", help="Country the item leaves from."),
    apply: bool = typer.Option(False, "--apply", help="Record what the determination draws in the ledger, atomically."),
    key: Optional[str] = typer.Option(
        None, "--key", help="Idempotency key for --apply (default: the transaction's hash)."
    ),
    actor: Optional[str] = typer.Option(None, "--actor", help="Who applies (recorded in the audit trail)."),
    as_json: bool = JSON,
    as_of: Optional[str] = AS_OF,
    vintage: Optional[str] = typer.Option(
        None, "--vintage", help="Rule vintage (default: the file's, else ai-diffusion)."
    ),
    scenario: Optional[str] = SCENARIO,
) -> None:
    """Determine whether a licence is needed, which authorization applies, and why.

    Exit codes: 0 no licence needed; 10 licence needed; 11 licence needed with a presumption of
    denial; 2 invalid input; 1 internal error.
    """
    if file is not None:
        data = _load(file)
        if not isinstance(data, dict):
            raise TierlineError("--file", "a transaction is a mapping of fields")
    elif chip and to:
        ctx = context("ai-diffusion", as_of)
        data = {
            "date": ctx.as_of.isoformat(),
            "destination": to,
            "export_from": export_from,
            "items": [{"chip": chip, "quantity": qty}],
            "ultimate_consignee": {
                "id": consignee,
                "name": consignee,
                "country": to,
                "headquarters": consignee_hq or to,
                "ultimate_parent_headquarters": parent_hq or consignee_hq or to,
            },
            "end_use": end_use,
            "certifications": certification,
        }
    else:
        raise TierlineError("--file", "give --file TX.json|yaml, or --chip NAME --to COUNTRY")
    if vintage:
        data["vintage"] = vintage
    if as_of and file is not None:
        data["date"] = parse_date(as_of, "--as-of").isoformat()
    tx = Transaction.model_validate(data)
    if scenario and apply:
        raise TierlineError("--scenario", "a scenario is not law: its answer cannot be applied to the ledger")
    reform = get_reform(scenario) if scenario else None
    answer = apply_determination(tx, key, actor) if apply else determine(tx, reform=reform).as_dict()
    if as_json:
        emit_json(answer)
    else:
        show_determination(answer)
    sys.exit(exit_code(answer))


def weights_command(
    operations: Optional[float] = typer.Option(None, "--operations", help="Reported training operations."),
    parameters: Optional[float] = typer.Option(None, "--parameters", help="Model parameters (for 6·N·D)."),
    active_parameters: Optional[float] = typer.Option(
        None, "--active-parameters", help="Active parameters per token (MoE)."
    ),
    tokens: Optional[float] = typer.Option(None, "--tokens", help="Training tokens (for 6·N·D)."),
    published: bool = typer.Option(False, "--published", help="The weights are published (Note 1a)."),
    derived: Optional[float] = typer.Option(
        None, "--derived-additional-operations", help="Derived from a published model: operations added (Note 1b)."
    ),
    synthetic_fraction: float = typer.Option(
        0.0, "--synthetic-fraction", help="Share of training on one model's unpublished generated data."
    ),
    generator_operations: float = typer.Option(
        0.0, "--generator-operations", help="Operations spent generating that data."
    ),
    generator_unpublished: bool = typer.Option(
        False, "--generator-unpublished", help="The generator's weights are unpublished."
    ),
    generator_training_operations: float = typer.Option(0.0, "--generator-training-operations"),
    as_json: bool = JSON,
    as_of: Optional[str] = AS_OF,
    vintage: str = VINTAGE,
) -> None:
    """Estimate training operations and classify model weights under ECCN 4E091."""
    from pydantic import ValidationError

    ctx = context(vintage, as_of)
    try:
        weights = ModelWeights(
            training_operations=operations,
            parameters=parameters,
            active_parameters=active_parameters,
            tokens=tokens,
            published=published,
            derived_from_published=derived is not None,
            additional_operations=derived,
            synthetic_data_fraction=synthetic_fraction,
            generator_operations=generator_operations,
            generator_published=not generator_unpublished,
            generator_training_operations=generator_training_operations,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        field = WEIGHT_OPTIONS.get(str(err["loc"][0]) if err["loc"] else "", "--operations")
        raise TierlineError(field, err["msg"].removeprefix("Value error, ")) from None
    result = classify_weights(weights, ctx)
    answer = {**result.as_dict(), **ctx.stamp()}
    if as_json:
        emit_json(answer)
        return
    status = "[red]4E091 — controlled[/red]" if result.controlled else "[green]not 4E091[/green]"
    console.print(
        f"{status}: {float(result.operations):.3e} training operations" + (" (estimated)" if result.estimated else "")
    )
    console.print(
        table(
            "Why",
            ["rule", "result", "test", "citation"],
            [[s.rule, s.result, s.test, s.citation] for s in result.trace],
        )
    )
    for w in result.warnings:
        console.print(f"[yellow]! {w}[/yellow]")
    console.print(stamp_line(ctx.stamp()))
