"""One code path over SQLite and PostgreSQL: a connection, its placeholder style and its schema."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from keyrevoke.errors import ConfigurationError, ServiceUnreachable
from keyrevoke.ledger.migrations import migrate
from keyrevoke.private_files import create_private_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    venue TEXT NOT NULL,
    owner TEXT NOT NULL,
    account TEXT NOT NULL,
    account_id TEXT NOT NULL DEFAULT '',
    account_name TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    method TEXT NOT NULL,
    priority INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    key_hint TEXT NOT NULL,
    content_digest TEXT NOT NULL,
    api_key_sealed TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    passphrase_sealed TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS keys_venue_fingerprint ON keys (venue, fingerprint);
CREATE TABLE IF NOT EXISTS incidents (
    incident_id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    chain_head TEXT NOT NULL,
    chain_length INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_owners (
    incident_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    PRIMARY KEY (incident_id, owner)
);
CREATE TABLE IF NOT EXISTS incident_keys (
    incident_id TEXT NOT NULL,
    key_id TEXT NOT NULL,
    venue TEXT NOT NULL,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    baseline_ok INTEGER,
    permissions TEXT NOT NULL DEFAULT '',
    baseline_at TEXT,
    revoked_at TEXT,
    ended_at TEXT,
    detail TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, key_id)
);
CREATE INDEX IF NOT EXISTS incident_keys_page ON incident_keys (incident_id, venue, seq);
CREATE TABLE IF NOT EXISTS events (
    event_id {serial} PRIMARY KEY,
    incident_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    venue TEXT NOT NULL DEFAULT '',
    key_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_chain ON events (incident_id, n);
CREATE TABLE IF NOT EXISTS venue_pace (
    venue TEXT PRIMARY KEY,
    next_free DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS events_key ON events (incident_id, key_id);
CREATE INDEX IF NOT EXISTS keys_owner ON keys (owner);
CREATE TABLE IF NOT EXISTS packet_deliveries (
    incident_id TEXT NOT NULL,
    venue TEXT NOT NULL,
    part INTEGER NOT NULL,
    digest TEXT NOT NULL,
    file TEXT NOT NULL,
    recipient TEXT NOT NULL,
    message_id TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, venue, digest)
);
CREATE TABLE IF NOT EXISTS owner_notices (
    incident_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    digest TEXT NOT NULL,
    channels TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, owner, digest)
);
CREATE TABLE IF NOT EXISTS venue_pacers (
    venue TEXT NOT NULL,
    pacer TEXT NOT NULL,
    active_until DOUBLE PRECISION NOT NULL,
    held INTEGER NOT NULL,
    wanted INTEGER NOT NULL,
    PRIMARY KEY (venue, pacer)
);
"""


# The PostgreSQL advisory lock the schema's creators take turns under (any fixed number: ours alone).
SCHEMA_LOCK = 0x6B72_6C65_6467_6572  # "krledger"


class Database:
    """A connection to SQLite or PostgreSQL behind one lock; SQL is written with ``?`` placeholders.

    Activities call the ledger from worker threads; one connection guarded by a lock keeps SQLite
    (which allows one writer) and psycopg (one connection is not for concurrent use) both correct.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        if url.startswith("sqlite:///"):
            self.kind = "sqlite"
            path = Path(url.removeprefix("sqlite:///"))
            # 0600 before SQLite opens it: its -wal and -shm files take the database file's mode.
            create_private_file(path)
            connection = sqlite3.connect(path, timeout=30.0, check_same_thread=False, isolation_level=None)
            _write_ahead_log(connection, seconds=30.0)
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=30000")
            self._connection: Any = connection
            serial = "INTEGER"  # an INTEGER PRIMARY KEY is SQLite's rowid: it counts up by itself
        elif url.startswith(("postgresql://", "postgres://")):
            self.kind = "postgresql"
            try:
                import psycopg
            except ImportError as error:
                raise ConfigurationError(
                    "KEYREVOKE_LEDGER_URL points at PostgreSQL: install keyrevoke[postgres] (psycopg)"
                ) from error
            try:
                self._connection = psycopg.connect(url, autocommit=True)
            except psycopg.OperationalError as error:
                raise ServiceUnreachable(
                    f"cannot reach the PostgreSQL ledger at {_where(url)}: start PostgreSQL or set KEYREVOKE_LEDGER_URL"
                    f" ({_first_line(error)})"
                ) from None
            serial = "BIGINT GENERATED ALWAYS AS IDENTITY"
        else:
            raise ConfigurationError(
                f"KEYREVOKE_LEDGER_URL must start with sqlite:/// or postgresql://, got {url.split(':')[0]!r}"
            )
        with self.transaction() as cursor:
            if self.kind == "postgresql":
                # Every pod of a new deployment starts at once and creates what is missing: CREATE ... IF
                # NOT EXISTS is not safe against itself in PostgreSQL (two creators collide on the catalog),
                # so the creators take turns, under a lock that ends with this transaction.
                cursor.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
            for statement in SCHEMA.format(serial=serial).split(";"):
                if statement.strip():
                    cursor.execute(statement)
            migrate(self.kind, cursor)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        """One transaction; statements inside use ``?`` placeholders on both databases."""
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN IMMEDIATE" if self.kind == "sqlite" else "BEGIN")
            try:
                yield _Tx(self, cursor)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            else:
                cursor.execute("COMMIT")
            finally:
                cursor.close()

    @contextmanager
    def read_snapshot(self) -> Iterator[_Tx]:
        """One read-only transaction that sees the database as it was at its first read, however long
        it lasts: a report paged out of it is consistent while workers go on writing."""
        with self._lock:
            cursor = self._connection.cursor()
            # SQLite (WAL): a deferred transaction reads one snapshot; PostgreSQL needs REPEATABLE READ.
            cursor.execute("BEGIN" if self.kind == "sqlite" else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield _Tx(self, cursor)
            finally:
                cursor.execute("ROLLBACK")
                cursor.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            cursor = self._connection.cursor()
            try:
                cursor.execute(self._sql(sql), tuple(params))
                return [tuple(row) for row in cursor.fetchall()]
            finally:
                cursor.close()

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class _Tx:
    def __init__(self, database: Database, cursor: Any) -> None:
        self._database = database
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(self._database._sql(sql), tuple(params))
        return int(self._cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(self._database._sql(sql), [tuple(r) for r in rows])

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(self._database._sql(sql), tuple(params))
        return [tuple(row) for row in self._cursor.fetchall()]


def _where(url: str) -> str:
    """host:port/database of a PostgreSQL URL, without its user or password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _write_ahead_log(connection: sqlite3.Connection, seconds: float) -> None:
    """Switch the database file to WAL, waiting while another process or thread switches it too.

    Processes opening a new ledger file at once all ask for WAL; SQLite answers the losers "database
    is locked" at once, without its busy handler (the switch needs the file alone), so wait here.
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)
