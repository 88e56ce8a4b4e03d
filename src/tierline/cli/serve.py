"""``tierline serve`` (the HTTP service) and ``tierline keys`` (its API keys)."""

from __future__ import annotations

from typing import Optional

import typer
from sqlalchemy import Engine

from tierline.cli.output import JSON, console, emit_json, table

keys_app = typer.Typer(help="API keys for the HTTP service (stored hashed).", no_args_is_help=True)


def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless told otherwise)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level (keys never appear in logs)."),
) -> None:
    """Serve the HTTP API (and its docs at /v1/docs) on the configured database."""
    import uvicorn

    from tierline.api.app import create_app

    app = create_app()
    console.print(f"tierline API on http://{host}:{port}/v1 (docs: http://{host}:{port}/v1/docs)")
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=True)


def _engine() -> Engine:
    from tierline.ledger import Ledger

    return Ledger().engine


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="viewer, analyst, officer or admin."),
    label: str = typer.Option("", "--label", help="What the key is for."),
    as_json: bool = JSON,
) -> None:
    """Create a key; its secret is printed once, here, and never stored."""
    from tierline.api.keys import create_key

    made = create_key(_engine(), role, label)
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

    done = revoke_key(_engine(), key_id)
    emit_json(done) if as_json else console.print(f"key {key_id} revoked")


@keys_app.command("list")
def keys_list(as_json: bool = JSON, role: Optional[str] = typer.Option(None, "--role", help="Only this role.")) -> None:
    """The keys (never their secrets)."""
    from tierline.api.keys import list_keys

    rows = [k for k in list_keys(_engine()) if not role or k["role"] == role]
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
