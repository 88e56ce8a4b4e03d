"""Database connection: a SQLite file (WAL) by default, PostgreSQL when TIERLINE_DATABASE_URL says so.

The default file is ``$TIERLINE_HOME/tierline.db`` (``TIERLINE_HOME`` defaults to ``~/.tierline``);
it is created, and migrated to the current schema, on first use.
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event

DATABASE_URL_ENV = "TIERLINE_DATABASE_URL"
HOME_ENV = "TIERLINE_HOME"


def default_url() -> str:
    """The database URL in force: TIERLINE_DATABASE_URL, else the SQLite file under TIERLINE_HOME."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    home = Path(os.environ.get(HOME_ENV) or Path.home() / ".tierline")
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'tierline.db'}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    dbapi_connection.isolation_level = None  # transactions are begun explicitly (BEGIN IMMEDIATE for writes)


def _sqlite_begin(conn: Any) -> None:
    """Writes (and migrations) take the database's write lock up front; reads begin deferred."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("tierline_write") else "BEGIN")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # a pool as large as the service's worker threads, so connections (and their PRAGMAs) are reused
        engine = create_engine(
            url, connect_args={"timeout": 60, "check_same_thread": False}, pool_size=20, max_overflow=40
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_size=5, max_overflow=20)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("tierline.ledger") / "migrations"))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the current revision."""
    config = _alembic_config()
    with engine.connect() as connection:
        connection = connection.execution_options(tierline_write=True)
        with connection.begin():
            if engine.dialect.name == "postgresql":  # one migrator at a time; the others then find it done
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7211845)")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


def current_revision(engine: Engine) -> tuple[str | None, str | None]:
    """(database revision, code head revision) — equal when migrations are current."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision(), head


@functools.lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """A migrated engine per URL (created on first use)."""
    engine = make_engine(url)
    migrate(engine)
    return engine
