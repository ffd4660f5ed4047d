"""Ledger back ends for tests: a SQLite file, or an isolated PostgreSQL schema in a throw-away database.

PostgreSQL: one fresh database per test session (``keyrevoke_test_<random>``, made through the admin
URL ``KEYREVOKE_TEST_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/test``) and one
schema per test inside it, selected with ``?options=-csearch_path=...``; all of it is dropped afterwards.
When the server cannot be reached, PostgreSQL tests are skipped with the reason, unless
``KEYREVOKE_REQUIRE_POSTGRES=1``, which makes them fail instead.

The shared fixtures in ``conftest.py`` (``pg_session``, ``ledger_url``) are built from these helpers::

    pg = postgres_session()          # in a session-scoped fixture (a generator: yields, then cleans up)
    with postgres_schema(pg) as url: # per test
        ...
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from keyrevoke.ledger import Ledger

ADMIN_URL_ENV = "KEYREVOKE_TEST_POSTGRES_URL"
REQUIRE_ENV = "KEYREVOKE_REQUIRE_POSTGRES"
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
TABLES = ("keys", "incidents", "incident_owners", "incident_keys", "events")


def postgres_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def admin_url() -> str:
    return os.environ.get(ADMIN_URL_ENV) or DEFAULT_ADMIN_URL


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def _unavailable(reason: str) -> None:
    """Skip (or, when PostgreSQL is required, fail) the current test."""
    if postgres_required():
        pytest.fail(f"PostgreSQL is required ({REQUIRE_ENV}=1) but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason} (set {ADMIN_URL_ENV} to point elsewhere)")


@dataclass
class PostgresSession:
    """The session's throw-away database, or why there is none."""

    url: str | None = None
    error: str | None = None


def postgres_session() -> Iterator[PostgresSession]:
    """Generator for a session-scoped fixture: makes the database, yields it, drops it."""
    try:
        import psycopg
    except ImportError:
        yield PostgresSession(error="psycopg is not installed (pip install keyrevoke[postgres])")
        return
    admin = admin_url()
    name = f"keyrevoke_test_{secrets.token_hex(6)}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"CREATE DATABASE {name}")
    except psycopg.Error as error:
        yield PostgresSession(error=f"cannot create a test database through {admin}: {error}".strip())
        return
    try:
        yield PostgresSession(url=_with_database(admin, name))
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def postgres_schema(session: PostgresSession) -> Iterator[str]:
    """A ledger URL whose tables land in a fresh schema of the session database (dropped afterwards)."""
    if session.url is None:
        _unavailable(session.error or "no test database")
    assert session.url is not None
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(session.url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{session.url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(session.url, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'ledger.sqlite'}"


def stored_bytes(ledger: Ledger) -> bytes:
    """Everything the ledger has stored, as bytes to scan for plaintext secrets.

    SQLite: the raw database file and its WAL (recent writes live there until a checkpoint).
    PostgreSQL: the text form of every row of every ledger table.
    """
    if ledger.db.kind == "sqlite":
        path = Path(ledger.db.url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    chunks: list[str] = []
    for table in TABLES:
        chunks.extend(str(row[0]) for row in ledger.db.query(f"SELECT t::text FROM {table} t"))  # noqa: S608
    return "\n".join(chunks).encode()
