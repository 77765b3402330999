"""The tree on disk as C2SP tiles: paths as the specification spells them, the same roots and
proofs as a tree held in memory, and a worker's memory that stays the same as the log grows."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlmodel import Session

from cmr_vault.audit import service as audit_service
from cmr_vault.audit.merkle import MerkleTree
from cmr_vault.audit.service import AuditEvent
from cmr_vault.audit.tiles import TileNotFound, TileRef, encode_index, parse_tile_path
from cmr_vault.audit.transparency import TreeCache
from tests.conftest import ClockUnderTest


@pytest.mark.parametrize(
    ("n", "path"),
    [
        (0, "000"),
        (7, "007"),
        (999, "999"),
        (1000, "x001/000"),
        (1234067, "x001/x234/067"),
        (10**9, "x001/x000/x000/000"),
    ],
)
def test_tile_indexes_are_three_digit_elements_led_by_x(n: int, path: str) -> None:
    assert encode_index(n) == path
    assert parse_tile_path(f"0/{path}") == TileRef(0, n)


@pytest.mark.parametrize(
    ("path", "tile"),
    [
        ("0/000", TileRef(0, 0)),
        ("2/x001/234.p/17", TileRef(2, 1234, 17)),
        ("entries/005.p/255", TileRef("entries", 5, 255)),
    ],
)
def test_tile_paths_name_level_index_and_width(path: str, tile: TileRef) -> None:
    assert parse_tile_path(path) == tile
    assert tile.path() == f"tile/{path}"


@pytest.mark.parametrize(
    "path",
    [
        "01/000",
        "64/000",
        "0/0",
        "0/0000",
        "0/x1/000",
        "0/x000/001",
        "0/000.p/0",
        "0/000.p/256",
        "0/000.p/07",
        "bogus/000",
        "0/001/002",
    ],
)
def test_malformed_tile_paths_are_refused(path: str) -> None:
    with pytest.raises(TileNotFound):
        parse_tile_path(path)


def _fill(session: Session, clock: ClockUnderTest, count: int) -> MerkleTree:
    """Append `count` entries in large batches; the same leaves in a tree held in memory."""
    for start in range(0, count, 10_000):
        audit_service.record_many(
            session,
            clock=clock,
            events=[
                AuditEvent(
                    actor="company:acme",
                    action="profile.read",
                    subject=f"s{i % 11}",
                    details={"i": i},
                )
                for i in range(start, min(count, start + 10_000))
            ],
        )
        session.commit()
    memory = MerkleTree()
    memory.extend(bytes.fromhex(e.leaf_hash) for e in audit_service.iter_entry_rows(session))
    return memory


def test_tiles_answer_as_a_tree_in_memory_while_holding_a_bounded_cache(
    db_session: Session,
    clock: ClockUnderTest,
) -> None:
    size = 256 * 256 + 300  # a full level-1 tile, and partial tiles on three levels
    memory = _fill(db_session, clock, size)
    cache = TreeCache(max_tiles=4)
    tiled = cache.synced(db_session, size)

    for tree_size in (1, 255, 256, 257, 65_535, 65_536, 65_537, size):
        assert tiled.root(tree_size) == memory.root(tree_size)
    for index, tree_size in ((0, size), (65_535, size), (size - 1, size), (300, 65_700)):
        assert tiled.inclusion_proof(index, tree_size) == memory.inclusion_proof(index, tree_size)
    for first, second in ((1, size), (256, size), (65_536, size), (1000, 65_537)):
        assert tiled.consistency_proof(first, second) == memory.consistency_proof(first, second)
    assert len(cache.tiles) <= 4


def test_full_tiles_are_immutable_and_partial_ones_short_lived(
    client: TestClient[Litestar],
    db_session: Session,
    clock: ClockUnderTest,
) -> None:
    _fill(db_session, clock, 300)

    full = client.get("/audit/tile/0/000")
    partial = client.get("/audit/tile/0/001.p/44")
    level_one = client.get("/audit/tile/1/000.p/1")

    assert len(full.content) == 256 * 32
    assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert len(partial.content) == 44 * 32
    assert partial.headers["cache-control"] == "public, max-age=5"
    assert level_one.content == _root_of(full.content)
    for beyond in (
        "/audit/tile/0/001",
        "/audit/tile/0/001.p/45",
        "/audit/tile/2/000.p/1",
        "/audit/tile/0/0001",
    ):
        answer = client.get(beyond)
        assert answer.status_code == 404, beyond
        assert answer.headers["content-type"].startswith("application/problem+json")


def _root_of(hashes: bytes) -> bytes:
    tree = MerkleTree()
    tree.extend(hashes[i : i + 32] for i in range(0, len(hashes), 32))
    return tree.root()
