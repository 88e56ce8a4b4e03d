"""``tierline ledger``: allowance accounts, holds, commits, adjustments, audit verification."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from tierline.cli.output import JSON, console, emit_json, table
from tierline.errors import TierlineError, parse_date
from tierline.ledger import Ledger
from tierline.ledger.export import write_entries_csv

ledger_app = typer.Typer(
    help="The allocation ledger (SQLite at $TIERLINE_HOME/tierline.db, or $TIERLINE_DATABASE_URL).",
    no_args_is_help=True,
)
KEY = typer.Option(..., "--key", help="Idempotency key: a retry with the same key never counts twice.")
ACTOR = typer.Option(None, "--actor", help="Who makes the change (recorded in the audit trail).")
DATE = typer.Option(..., "--date", help="Shipment (effective) date, YYYY-MM-DD.")
EXIT_TAMPERED = 3


def _ledger() -> Ledger:
    return Ledger()


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _out(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(result)
    else:
        console.print(table(None, ["", ""], [[k, v] for k, v in result.items()]))


@ledger_app.command("status")
def status(
    country: Optional[str] = typer.Option(None, "--country", help="Only accounts of this destination (ISO2)."),
    consignee: Optional[str] = typer.Option(None, "--consignee", help="Only accounts of this consignee or entity."),
    as_of: Optional[str] = typer.Option(
        None, "--as-of", help="Usage counting shipments up to this date (default today)."
    ),
    as_json: bool = JSON,
) -> None:
    """Usage, live holds, limit and headroom per account."""
    day = parse_date(as_of, "--as-of") if as_of else dt.date.today()
    rows = _ledger().status(country=country.upper() if country else None, consignee=consignee, as_of=day)
    if as_json:
        emit_json({"accounts": rows, "as_of": day.isoformat()})
        return
    console.print(
        table(
            f"Ledger as of {day}",
            ["account", "used", "held", "limit", "headroom", "note"],
            [
                [r["account"], fmt(r["used"]), fmt(r["held"]), fmt(r["limit"]), fmt(r["headroom"]), r.get("note", "")]
                for r in rows
            ],
        )
    )


@ledger_app.command("history")
def history(account: str = typer.Argument(..., help="Account, e.g. allocation:BR."), as_json: bool = JSON) -> None:
    """Every audited event on an account."""
    events = _ledger().history(account)
    if as_json:
        emit_json({"account": account, "events": events})
        return
    console.print(
        table(
            account,
            ["seq", "op", "amount (TPP)", "date", "actor", "at"],
            [
                [
                    e["seq"],
                    e["op"],
                    f"{e.get('amount_micro', 0) / 1e6:,.6g}",
                    e.get("effective_date", ""),
                    e.get("actor") or "",
                    e["at"],
                ]
                for e in events
            ],
        )
    )


@ledger_app.command("reserve")
def reserve(
    account: str,
    tpp: float,
    date: str = DATE,
    key: str = KEY,
    actor: Optional[str] = ACTOR,
    ttl_hours: float = typer.Option(24.0, "--ttl-hours", help="Hold lifetime in hours."),
    headquarters: Optional[str] = typer.Option(None, "--headquarters", help="UVEU: the entity's headquarters."),
    as_json: bool = JSON,
) -> None:
    """Hold TPP on an account until it is committed, released or expires."""
    if ttl_hours <= 0:
        raise TierlineError("--ttl-hours", "must be positive")
    _out(
        _ledger().reserve(
            account,
            tpp,
            effective_date=parse_date(date, "--date"),
            idempotency_key=key,
            ttl=dt.timedelta(hours=ttl_hours),
            actor=actor,
            headquarters=headquarters,
        ),
        as_json,
    )


@ledger_app.command("commit")
def commit(hold_id: str, key: str = KEY, actor: Optional[str] = ACTOR, as_json: bool = JSON) -> None:
    """Commit a live hold."""
    _out(_ledger().commit(hold_id, idempotency_key=key, actor=actor), as_json)


@ledger_app.command("release")
def release(hold_id: str, key: str = KEY, actor: Optional[str] = ACTOR, as_json: bool = JSON) -> None:
    """Release a live hold."""
    _out(_ledger().release(hold_id, idempotency_key=key, actor=actor), as_json)


@ledger_app.command("direct")
def direct(
    account: str,
    tpp: float,
    date: str = DATE,
    key: str = KEY,
    actor: Optional[str] = ACTOR,
    headquarters: Optional[str] = typer.Option(None, "--headquarters"),
    as_json: bool = JSON,
) -> None:
    """Commit TPP without a hold."""
    _out(
        _ledger().direct_commit(
            account,
            tpp,
            effective_date=parse_date(date, "--date"),
            idempotency_key=key,
            actor=actor,
            headquarters=headquarters,
        ),
        as_json,
    )


@ledger_app.command("adjust")
def adjust(
    account: str,
    tpp: float = typer.Option(..., "--tpp", help="Signed TPP correction, e.g. --tpp -5000."),
    date: str = DATE,
    reason: str = typer.Option("", "--reason", help="Why (mandatory)."),
    key: str = KEY,
    actor: Optional[str] = ACTOR,
    as_json: bool = JSON,
) -> None:
    """Correct an account by a signed amount, with a mandatory reason."""
    _out(
        _ledger().adjust(
            account, tpp, reason=reason, effective_date=parse_date(date, "--date"), idempotency_key=key, actor=actor
        ),
        as_json,
    )


@ledger_app.command("g2g")
def g2g(
    country: str,
    since: str = typer.Option(..., "--since"),
    reason: str = typer.Option("", "--reason"),
    key: str = KEY,
    actor: Optional[str] = ACTOR,
    as_json: bool = JSON,
) -> None:
    """Record a government-to-government arrangement (the country's allocation doubles from --since)."""
    from tierline.countries import lookup

    code = lookup(country).iso2
    _out(
        _ledger().record_g2g(code, parse_date(since, "--since"), reason=reason, idempotency_key=key, actor=actor),
        as_json,
    )


@ledger_app.command("license")
def license_(
    license_id: str,
    country: str = typer.Option(..., "--country"),
    holder: str = typer.Option(..., "--holder"),
    tpp: float = typer.Option(..., "--tpp"),
    issued: str = typer.Option(..., "--issued"),
    key: str = KEY,
    actor: Optional[str] = ACTOR,
    as_json: bool = JSON,
) -> None:
    """Record an issued licence; draw against it with the account license:<id>."""
    from tierline.countries import lookup

    _out(
        _ledger().record_license(
            license_id,
            country=lookup(country).iso2,
            holder=holder,
            tpp=tpp,
            issued=parse_date(issued, "--issued"),
            idempotency_key=key,
            actor=actor,
        ),
        as_json,
    )


@ledger_app.command("verify")
def verify(as_json: bool = JSON) -> None:
    """Verify the hash-chained audit trail; exit 3 when a row was edited, deleted, inserted or reordered."""
    result = _ledger().verify()
    if as_json:
        emit_json(result)
    elif result["ok"]:
        console.print(f"[green]audit trail intact[/green]: {result['rows']} rows verified")
    else:
        console.print(f"[red]audit trail broken[/red]: {len(result['problems'])} problem(s) in {result['rows']} rows")
        console.print(
            table(
                None,
                ["kind", "chain", "row", "seq", "detail"],
                [[p["kind"], p["chain"], p["row_id"], p["seq"], p["detail"]] for p in result["problems"]],
            )
        )
    if not result["ok"]:
        sys.exit(EXIT_TAMPERED)


@ledger_app.command("export")
def export(out: Optional[Path] = typer.Option(None, "--out", help="CSV file (default: standard output).")) -> None:
    """Every ledger entry as CSV."""
    handle = out.open("w", newline="", encoding="utf-8") if out else sys.stdout
    count = write_entries_csv(_ledger(), handle)
    if out:
        handle.close()
        console.print(f"wrote {count} entries to {out}")
