"""``tierline serve`` (the HTTP service) and ``tierline keys`` (its API keys)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from tierline.ledger import Ledger

from tierline.cli.output import JSON, console, emit_json, table

keys_app = typer.Typer(help="API keys for the HTTP service (stored hashed).", no_args_is_help=True)


def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless told otherwise)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level (keys never appear in logs)."),
    demo: bool = typer.Option(
        False, "--demo", help="First fill the ledger from a generated sample order book and create an admin key."
    ),
) -> None:
    """Serve the dashboard (at /), the HTTP API (/v1) and its docs (/v1/docs) on the configured database."""
    import uvicorn

    from tierline.api.app import create_app

    if demo:
        _demo()
    app = create_app()
    console.print(f"tierline dashboard: http://{host}:{port}/  ·  API: http://{host}:{port}/v1  ·  docs: /v1/docs")
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=True)


DEMO_ROWS = 20_000


def _demo() -> None:
    """A demo ledger: a generated order book screened and applied once (idempotent), and a new admin key."""
    import os
    from pathlib import Path

    from tierline.api.keys import create_key
    from tierline.ledger import Ledger
    from tierline.ledger.db import default_url
    from tierline.screen.run import applied_response, apply_result, batch_key, screen_against_ledger
    from tierline.screen.sample import write_sample

    default_url()  # creates TIERLINE_HOME
    home = Path(os.environ.get("TIERLINE_HOME") or Path.home() / ".tierline")
    orders = home / "demo-orders.csv"
    if not orders.exists():
        write_sample(DEMO_ROWS, orders)
    ledger = Ledger()
    key = batch_key(orders, "ai-diffusion")
    if applied_response(ledger, key, orders, "ai-diffusion") is None:
        result = screen_against_ledger(
            ledger, orders, home / "demo-decisions.csv", vintage="ai-diffusion", collect_draws=True
        )
        apply_result(ledger, result, orders, key=key, actor="demo")
        console.print(f"demo ledger: {result.screened:,} sample order lines screened and applied ({orders})")
    made = create_key(ledger, "admin", "demo", created_by="demo")
    console.print(f"sign in with this admin key (shown once): [bold]{made['key']}[/bold]")


def _ledger() -> Ledger:
    from tierline.ledger import Ledger

    return Ledger()


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="viewer, analyst, officer or admin."),
    label: str = typer.Option("", "--label", help="What the key is for."),
    as_json: bool = JSON,
) -> None:
    """Create a key; its secret is printed once, here, and never stored."""
    from tierline.api.keys import create_key

    made = create_key(_ledger(), role, label)
    if as_json:
        emit_json(made)
        return
    console.print(f"key {made['id']} ({made['role']}): [bold]{made['key']}[/bold]\nstore it now: it is not shown again")


@keys_app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="The key's id (the part after tl_)."), as_json: bool = JSON
) -> None:
    """Revoke a key: it stops working at once."""
    from tierline.api.keys import revoke_key

    done = revoke_key(_ledger(), key_id)
    emit_json(done) if as_json else console.print(f"key {key_id} revoked")


@keys_app.command("list")
def keys_list(as_json: bool = JSON, role: Optional[str] = typer.Option(None, "--role", help="Only this role.")) -> None:
    """The keys (never their secrets)."""
    from tierline.api.keys import list_keys

    rows = [k for k in list_keys(_ledger().engine) if not role or k["role"] == role]
    if as_json:
        emit_json({"keys": rows})
        return
    console.print(
        table(
            "API keys",
            ["id", "role", "label", "created", "revoked"],
            [[k["id"], k["role"], k["label"], k["created_at"], k["revoked"]] for k in rows],
        )
    )
