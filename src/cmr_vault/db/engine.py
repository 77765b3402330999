"""Database engines with the durability the vault promises.

SQLite runs in WAL mode with `synchronous=FULL` (an acknowledged write survives power loss) and
every transaction starts with `BEGIN IMMEDIATE`: the audit chain's head is read and advanced in
the same transaction, and a deferred SQLite transaction that reads and then writes fails with
SQLITE_BUSY_SNAPSHOT under concurrency instead of waiting its turn.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.pool import QueuePool

from cmr_vault.settings import UnsafeSettingsError

IMMEDIATE_OPTION = "cmr_vault_immediate"
# PostgreSQL: requests get POOL_SIZE connections (`DatabaseGate`); the overflow is for the audit
# appender, the checkpoint signer and the in-process worker, which never wait at the gate.
POOL_SIZE = 10
POOL_OVERFLOW = 10
# SQLite: read-only requests at once (each holds one pooled connection and one thread); the
# pool keeps 8 and lends 16 more to writers, the audit appender and the health check.
# Connections are cheap to keep but each holds its own page cache, so both are bounded
# explicitly: at most SQLITE_POOL_SIZE + SQLITE_POOL_OVERFLOW connections of SQLITE_CACHE_KIB
# each (96 MiB in all at worst), whatever the size of the database.
SQLITE_READ_TURNS = 8
SQLITE_POOL_SIZE = SQLITE_READ_TURNS
SQLITE_POOL_OVERFLOW = 16
SQLITE_CACHE_KIB = 4096


def make_engine(url: str, *, immediate: bool = True) -> Engine:
    """An engine for `url`; SQLite files and their folders are created on first use."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        # A request that cannot get a connection within 10 s gets a 503 rather than hanging.
        return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE,
                             max_overflow=POOL_OVERFLOW, pool_timeout=10)
    if parsed.database and parsed.database != ":memory:":
        private_directory(Path(parsed.database).parent)
        private_sqlite_file(Path(parsed.database))
    # Pooled: opening a connection and setting its PRAGMAs costs more than a whole read.
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, poolclass=QueuePool,
        pool_size=SQLITE_POOL_SIZE, max_overflow=SQLITE_POOL_OVERFLOW,
    )
    _configure_sqlite(engine, immediate=immediate)
    return engine


def private_directory(path: Path) -> None:
    """Create `path` and its missing parents with mode 0700: the data directory holds the
    keyring and the databases, and nobody else on the machine needs to list it."""
    missing: list[Path] = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)


def private_sqlite_file(path: Path) -> None:
    """Make the database file 0600 before SQLite opens it (SQLite would create it 0644 under
    the usual umask); SQLite gives its -wal and -shm files the database file's mode. Files left
    open to others by an older version are narrowed."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
        if file.exists() and stat.S_IMODE(file.stat().st_mode) & 0o077:
            file.chmod(0o600)


def _configure_sqlite(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (SQLAlchemy's
        # documented pysqlite recipe), so BEGIN IMMEDIATE below is the only BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # A negative cache_size is in KiB (https://sqlite.org/pragma.html#pragma_cache_size).
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY, no
        # waiting) when another writer committed in between; a writer asks for IMMEDIATE.
        wanted = conn.get_execution_options().get(IMMEDIATE_OPTION, immediate)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if wanted else "BEGIN")


def check_durability(engine: Engine) -> None:
    """Refuse to run on a database that may lose acknowledged writes (checklist R4)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            if str(mode).lower() != "wal" or int(sync or 0) < 2:
                raise UnsafeSettingsError(
                    f"SQLite runs with journal_mode={mode}, synchronous={sync}; the vault needs "
                    "WAL and synchronous=FULL (2). Use a file on a local disk."
                )
            return
        checks = {
            "fsync": lambda v: v == "on",
            "synchronous_commit": lambda v: v != "off",
            "full_page_writes": lambda v: v == "on",
        }
        for name, ok in checks.items():
            value = conn.execute(text(f"SHOW {name}")).scalar()
            if not ok(str(value)):
                raise UnsafeSettingsError(
                    f"PostgreSQL runs with {name}={value}: acknowledged writes could be lost "
                    "after a crash. Fix the server configuration."
                )
