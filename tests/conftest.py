"""Fixtures for the tierline test suite (helpers and case loading are in helpers.py).

Expected values never come from running tierline: they come from the reference files in
../shared/reference/ (cited in each case's ``source``) or from hand arithmetic written out in the
case itself ("1979 x 8"). Case tables a non-programmer can read live in tests/cases/*.yaml.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import AS_OF
from tierline.classification import _lines
from tierline.policy import Context
from web_server import DESKTOP, Tab


@pytest.fixture(autouse=True)
def _bundled_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests read the bundled policy data unless a test points elsewhere."""
    monkeypatch.delenv("TIERLINE_POLICY_DIR", raising=False)


@pytest.fixture(scope="session")
def ctx() -> Context:
    """AI Diffusion vintage, as of 1 June 2025."""
    return Context.make(vintage="ai-diffusion", as_of=AS_OF)


@pytest.fixture(scope="session")
def lines(ctx: Context) -> Any:
    """The 3A090 lines in force for `ctx`."""
    return _lines(ctx)


# --- the allocation ledger: every ledger test runs on SQLite and on PostgreSQL ----------------------

POSTGRES_URL_ENV = "TIERLINE_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "TIERLINE_REQUIRE_POSTGRES"


def _postgres_server() -> str | None:
    """The PostgreSQL server to create test databases on; skips (or fails when required) without one."""
    import os

    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        return url
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_URL_ENV} is not set (bash scripts/postgres.sh start)")
    pytest.skip(f"{POSTGRES_URL_ENV} is not set (start a server with: bash scripts/postgres.sh start)")
    return None


def _dispose_engine(url: str) -> None:
    """Close the pooled connections tierline holds for `url` (engine_for caches one engine per URL)."""
    from tierline.ledger.db import engine_for

    engine_for(url).dispose()
    engine_for.cache_clear()  # a dropped database's engine must never be handed out again


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """A fresh, empty ledger database URL: a SQLite file, or a new database on the PostgreSQL server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/ledger.db"
        yield url
        _dispose_engine(url)
        return
    import uuid

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    server = _postgres_server()
    assert server is not None
    name = f"t_{uuid.uuid4().hex}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        yield url
        _dispose_engine(url)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def ledger(ledger_url: str) -> Any:
    """A `tierline.ledger.Ledger` on a fresh database (SQLite and PostgreSQL)."""
    from tierline.ledger import Ledger

    return Ledger(ledger_url)


@pytest.fixture
def ledger_env(ledger_url: str, tmp_path: Any) -> dict[str, str]:
    """Environment for running the ``tierline`` CLI against the test ledger database."""
    home = tmp_path / "tierline-home"
    home.mkdir(exist_ok=True)
    return {"TIERLINE_DATABASE_URL": ledger_url, "TIERLINE_HOME": str(home)}


@pytest.fixture(scope="module")
def browser(server: Any) -> Iterator[Any]:
    """Debian's Chromium through Playwright, for the module's `server` (browser tests only)."""
    from playwright.sync_api import sync_playwright

    from web_server import ARTIFACTS, CHROMIUM

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def tab_for(browser: Any, server: Any) -> Iterator[Any]:
    tabs: list[Tab] = []

    def make(role: str | None, viewport: dict[str, int] = DESKTOP) -> Tab:
        tab = Tab(browser, server, role, viewport)
        tabs.append(tab)
        return tab

    yield make
    for tab in tabs:
        tab.close()


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The HTTP app (API and dashboard) in-process, on a fresh SQLite home."""
    from tierline.api.app import create_app

    monkeypatch.setenv("TIERLINE_HOME", str(tmp_path))
    monkeypatch.delenv("TIERLINE_DATABASE_URL", raising=False)
    return create_app(home=tmp_path)


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c
