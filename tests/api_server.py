"""The real tierline HTTP service in a subprocess, for the API tests (tests/test_api*.py).

`running_server(backend, folder)` starts ``tierline serve --host 127.0.0.1 --port <free port>`` with
``TIERLINE_HOME`` in `folder` (SQLite: the default ``$TIERLINE_HOME/tierline.db``; PostgreSQL: a new
database on ``TIERLINE_TEST_POSTGRES_URL``, dropped afterwards), waits for ``/readyz``, and captures
the server's stdout and stderr in ``folder/server.log``. Keys are made with the real
``tierline keys create --json`` against the same database. Every response read through
`Server.client` is checked: no stack trace in any body, and never a 5xx.

Nothing here computes an expected value; the tests write theirs from the regulation or by hand.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import CliResult, run_cli, serve_ready, stop_process

POSTGRES_URL_ENV = "TIERLINE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "TIERLINE_REQUIRE_POSTGRES"
BACKENDS = ["sqlite", "postgres"]
PROBLEM = "application/problem+json"
STARTUP_SECONDS = 60.0
TRACE_MARKERS = ("Traceback", 'File "')


@dataclass(frozen=True)
class Key:
    """An API key as ``tierline keys create --json`` (or POST /v1/keys) printed it."""

    id: str
    role: str
    key: str

    @property
    def secret(self) -> str:
        return self.key.split("_", 2)[2]


def _no_trace(response: httpx.Response) -> None:
    """Every response the tests read: no stack trace leaks, and the service never answers 5xx."""
    response.read()
    body = response.text
    for marker in TRACE_MARKERS:
        assert marker not in body, f"{response.request.method} {response.request.url} leaked a trace:\n{body[:2000]}"
    assert response.status_code < 500, (
        f"{response.request.method} {response.request.url} -> {response.status_code}: {body[:2000]}"
    )


@dataclass
class Server:
    backend: str
    base_url: str
    home: Path
    log_path: Path
    database_url: str | None
    process: subprocess.Popen[bytes]
    keys: list[Key] = field(default_factory=list)

    # ---- talking to it --------------------------------------------------------------------------
    def client(self, key: Key | str | None = None, *, header: str = "bearer", timeout: float = 60.0) -> httpx.Client:
        """An httpx client on its own connection, sending `key` as ``Authorization: Bearer`` or ``X-API-Key``."""
        headers: dict[str, str] = {}
        secret = key.key if isinstance(key, Key) else key
        if secret is not None:
            if header == "bearer":
                headers["Authorization"] = f"Bearer {secret}"
            elif header == "x-api-key":
                headers["X-API-Key"] = secret
            else:
                raise ValueError(header)
        return httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            event_hooks={"response": [_no_trace]},
        )

    # ---- the CLI on the same database -----------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        env = {"TIERLINE_HOME": str(self.home)}
        if self.database_url:
            env["TIERLINE_DATABASE_URL"] = self.database_url
        return env

    def cli(self, *args: str) -> CliResult:
        return run_cli(*args, env=self.env)

    def create_key(self, role: str, label: str = "") -> Key:
        """A key from ``tierline keys create --role ROLE --json``."""
        result = self.cli("keys", "create", "--role", role, "--label", label or f"test {role}", "--json")
        assert result.code == 0, result.stderr
        made = result.json()
        key = Key(made["id"], made["role"], made["key"])
        assert key.key.startswith(f"tl_{key.id}_") and key.role == role
        self.keys.append(key)
        return key

    def remember(self, key: Key) -> None:
        """A key made over HTTP, so the log check looks for its secret too."""
        self.keys.append(key)

    def revoke_key(self, key: Key) -> None:
        result = self.cli("keys", "revoke", key.id, "--json")
        assert result.code == 0, result.stderr
        assert result.json()["revoked"] is True

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        stop_process(self.process)


def _postgres_server_url() -> str:
    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        return url
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_URL_ENV} is not set (bash scripts/postgres.sh start)")
    pytest.skip(f"{POSTGRES_URL_ENV} is not set (start a server with: bash scripts/postgres.sh start)")
    raise AssertionError("unreachable")


@contextlib.contextmanager
def database(backend: str) -> Iterator[str | None]:
    """None for SQLite (the service's default file under TIERLINE_HOME), or a fresh PostgreSQL database URL."""
    if backend == "sqlite":
        yield None
        return
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    server = _postgres_server_url()
    name = f"t_api_{uuid.uuid4().hex}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(server).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def _start(backend: str, folder: Path, database_url: str | None) -> Server:
    home = folder / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("TIERLINE_POLICY_DIR", "TIERLINE_DEBUG")}
    env.pop("TIERLINE_DATABASE_URL", None)
    env["TIERLINE_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    if database_url:
        env["TIERLINE_DATABASE_URL"] = database_url
    process, base_url, log_path = serve_ready(folder, env, STARTUP_SECONDS)
    return Server(backend, base_url, home, log_path, database_url, process)


@contextlib.contextmanager
def running_server(backend: str, folder: Path) -> Iterator[Server]:
    """The service on a fresh database of `backend`, stopped (and its database dropped) afterwards."""
    with database(backend) as url:
        server = _start(backend, folder, url)
        try:
            yield server
        finally:
            server.stop()


def problem_of(response: httpx.Response, status: int) -> dict[str, Any]:
    """The RFC 9457 problem document of `response`, which must have `status`."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:1000]}"
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["type"], body
    return body


def fields_of(response: httpx.Response, status: int = 422) -> list[str]:
    """The `errors[].field` paths of a problem response."""
    return [e["field"] for e in problem_of(response, status).get("errors", [])]
