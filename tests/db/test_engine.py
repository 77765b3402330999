"""Engines with explicit bounds: a worker's database memory does not grow with the database."""

from __future__ import annotations

from pathlib import Path

from cmr_vault.db.engine import SQLITE_CACHE_KIB, SQLITE_POOL_SIZE, make_engine


def test_sqlite_connections_have_a_bounded_page_cache_and_pool(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'bounded.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -SQLITE_CACHE_KIB
    assert engine.pool.size() == SQLITE_POOL_SIZE  # type: ignore[attr-defined]
    engine.dispose()
