"""``tierline compare``: a transaction or an order book under two or more vintages or reforms."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from tierline.cli.output import JSON, REPORT, console, emit_json, table, write_cli_report
from tierline.errors import TierlineError

SIDES = typer.Option(
    ...,
    "--side",
    help="VINTAGE or VINTAGE+SCENARIO; give two or more (the first is the baseline).",
)


def _changed_out(orders: Path) -> Path:
    return orders.with_name(orders.stem + ".changed" + orders.suffix)


def compare_command(
    file: Path = typer.Argument(
        ..., help="A transaction (.json/.yaml, as for `check --file`) or an order book (.csv/.parquet/.jsonl)."
    ),
    side: list[str] = SIDES,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Changed lines (default: ORDERS.changed.EXT)."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Compare the valid lines of a book."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr."),
    report: Optional[Path] = REPORT,
    as_json: bool = JSON,
) -> None:
    """What changes between rule vintages or scenarios, line by line, and which rule made the difference."""
    from tierline.compare import compare_book, compare_transaction, comparison_report, parse_side

    sides = [parse_side(s, "--side") for s in side]
    if file.suffix.lower() in (".json", ".yaml", ".yml"):
        from tierline.cli.check import load_transaction

        answer = compare_transaction(load_transaction(file), sides)
        emit_json(answer) if as_json else _show_transaction(answer)
        if report is not None:
            write_cli_report(comparison_report(answer), report)
        return
    from tierline.cli.screen import _progress
    from tierline.ledger import Ledger
    from tierline.screen.run import first_date, ledger_snapshot

    if not file.is_file():
        raise TierlineError("orders", f"{file} does not exist")
    out = out or _changed_out(file)
    if out.resolve() == file.resolve():
        raise TierlineError("--out", "the changed lines would overwrite the order book")
    first = first_date(file)
    start = ledger_snapshot(Ledger(), first) if first is not None else None
    with _progress(progress and not as_json, None) as advance:
        comparison = compare_book(file, sides, out=out, start=start, skip_invalid=skip_invalid, progress=advance)
    payload = comparison.as_dict(rows=20)
    emit_json(payload) if as_json else _show_book(payload)
    if report is not None:
        write_cli_report(comparison_report(comparison), report)


def _show_transaction(answer: dict[str, Any]) -> None:
    labels = [s["label"] for s in answer["sides"]]
    rows = []
    for line in answer["lines"]:
        for label in labels:
            o = line["outcomes"][label]
            rows.append(
                [line["index"] + 1, line["item"], label, o["authorization"], o["review_policy"] or "", o["citation"]]
            )
    console.print(table("Outcome per side", ["line", "item", "side", "authorization", "review policy", "rule"], rows))
    for line in answer["lines"]:
        for change in line["changes"]:
            fields = ", ".join(f"{k}: {a} → {b}" for k, (a, b) in change["fields"].items())
            console.print(f"line {line['index'] + 1} under [bold]{change['side']}[/bold]: {fields}")
            diff = change["difference"]
            if diff:
                a, b = diff["from"], diff["to"]
                console.print(f"  first different step ({diff['step']}): {_step(a)} → {_step(b)}")
    console.print(f"[dim]baseline {answer['baseline']} · as of {answer['as_of']}[/dim]")


def _step(step: dict[str, Any] | None) -> str:
    if step is None:
        return "—"
    return f"{step['rule']} = {step['result']} [{step['citation']}]"


def _show_book(p: dict[str, Any]) -> None:
    console.print(
        f"Compared [bold]{p['screened']:,}[/bold] lines dated from {p['compared_from']} "
        f"({p['outside_window']:,} earlier lines outside the comparison, {p['rejected']:,} rejected); "
        f"[bold]{p['changed_lines']:,}[/bold] change outcome → {p['out']}"
    )
    console.print(
        table(
            "Changes against the baseline",
            ["side", "from", "to", "lines"],
            [
                [
                    r["side"],
                    f"{r['from_authorization']} {r['from_review_policy'] or ''}".strip(),
                    f"{r['to_authorization']} {r['to_review_policy'] or ''}".strip(),
                    f"{r['lines']:,}",
                ]
                for r in p["transitions"][:20]
            ],
        )
    )
    console.print(
        table(
            "Rules that decided the changed lines",
            ["side", "baseline rule", "side's rule", "lines"],
            [
                [
                    r["side"],
                    f"{r['from_rule']} ({r['from_citation']})",
                    f"{r['to_rule']} ({r['to_citation']})",
                    r["lines"],
                ]
                for r in p["by_rule"][:15]
            ],
        )
    )
    changed = [r for r in p["by_country"] if r["changed"]]
    console.print(
        table(
            "Countries with changed lines",
            ["destination", "side", "lines", "changed", "needing a licence"],
            [[r["destination"], r["side"], r["lines"], r["changed"], r["needs_license"]] for r in changed[:20]],
        )
    )
    console.print(f"[dim]baseline {p['baseline']} · allowances as of {p['starting_state_as_of']}[/dim]")
