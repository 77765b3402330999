"""The Merkle tree as C2SP tlog-tiles: stored full tiles, computed partial ones, entry bundles.

A tile is 256 consecutive subtree hashes at one level (https://c2sp.org/tlog-tiles): level 0
holds leaf hashes, level l the roots of 256 full tiles of level l - 1. A full tile never changes,
so it is stored once (`audit_tile`) and served with a year-long cache lifetime; a partial tile
(the right edge of the tree) is computed on request from the leaf hashes or the tile roots
below it. Every root and proof is computed from these: a subtree of height 8l + r is 2**r
hashes of one tile at level l, so any hash the server needs costs one tile read, and no
worker holds the tree in memory. Workers keep a bounded cache of full tiles (immutable, so a
cache can never be stale) and nothing that grows with the log.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from cmr_vault.audit.merkle import HASH_SIZE, MerkleHashes, node_hash
from cmr_vault.audit.models import AuditEntry, AuditTile
from cmr_vault.audit.service import leaf_bytes

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE
MAX_LEVEL = 63
ENTRIES = "entries"


class TileNotFound(LookupError):
    """A tile path that is malformed or names a tile this log has not reached."""


@dataclass(frozen=True)
class TileRef:
    """One tile resource: level (or `entries`), index, and width (256 for a full tile)."""

    level: int | str
    n: int
    width: int = TILE_WIDTH

    @property
    def full(self) -> bool:
        """A full tile is immutable; a partial one stands for the right edge of one size."""
        return self.width == TILE_WIDTH

    def path(self) -> str:
        """The path under the log's prefix, e.g. `tile/0/x001/x234/067.p/7`."""
        return f"tile/{self.level}/{encode_index(self.n)}" + (
            "" if self.full else f".p/{self.width}"
        )


def encode_index(n: int) -> str:
    """A tile index as zero-padded three-digit path elements, all but the last led by `x`."""
    if n < 0:
        raise ValueError("a tile index is not negative")
    parts = []
    while True:
        parts.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    return "/".join([*(f"x{p}" for p in reversed(parts[1:])), parts[0]])


def parse_tile_path(path: str) -> TileRef:
    """The tile a path below `tile/` names (`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`)."""
    level_text, _, rest = path.partition("/")
    if level_text == ENTRIES:
        level: int | str = ENTRIES
    elif (
        level_text.isdigit() and str(int(level_text)) == level_text and int(level_text) <= MAX_LEVEL
    ):
        level = int(level_text)
    else:
        raise TileNotFound(f"not a tile level: {level_text!r}")
    index_text, partial, width_text = rest.partition(".p/")
    width = TILE_WIDTH
    if partial:
        if (
            not width_text.isdigit()
            or str(int(width_text)) != width_text
            or not 1 <= int(width_text) < TILE_WIDTH
        ):
            raise TileNotFound("a partial tile's width is 1 to 255, without leading zeroes")
        width = int(width_text)
    elements = index_text.split("/")
    if not all(len(e) == 4 and e[0] == "x" and e[1:].isdigit() for e in elements[:-1]) or not (
        len(elements[-1]) == 3 and elements[-1].isdigit()
    ):
        raise TileNotFound("a tile index is three-digit elements, all but the last led by x")
    n = int("".join(e.lstrip("x") for e in elements))
    if encode_index(n) != index_text:
        raise TileNotFound("a tile index has no extra leading elements")
    return TileRef(level, n, width)


def _reduce(hashes: list[bytes]) -> bytes:
    """The root of a complete subtree whose 2**k leaves are `hashes`."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def _split_hashes(data: bytes) -> list[bytes]:
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


class TileCache:
    """A bounded, process-wide cache of full tiles: immutable, so never stale.

    Its size is fixed (`max_tiles` × 8 KiB), whatever the size of the log.
    """

    def __init__(self, max_tiles: int = 512) -> None:
        self._tiles: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._max = max_tiles
        self._lock = threading.Lock()
        self.built_size = 0
        """The size up to which every full tile is known to be stored (a hint, never ahead)."""

    def __len__(self) -> int:
        return len(self._tiles)

    def get(self, level: int, n: int) -> bytes | None:
        """A cached full tile, if this process read it lately."""
        with self._lock:
            data = self._tiles.get((level, n))
            if data is not None:
                self._tiles.move_to_end((level, n))
            return data

    def put(self, level: int, n: int, data: bytes) -> None:
        """Remember a full tile, forgetting the least recently used beyond the bound."""
        with self._lock:
            self._tiles[(level, n)] = data
            self._tiles.move_to_end((level, n))
            while len(self._tiles) > self._max:
                self._tiles.popitem(last=False)


def _full_tiles_below(size: int, level: int) -> int:
    """How many full tiles a tree of `size` leaves has at `level`."""
    return size // (TILE_WIDTH ** (level + 1))


def _insert_tiles(session: Session, rows: list[dict[str, object]]) -> None:
    """Insert tiles another worker may be inserting at the same moment: the same bytes, so
    whichever lands first is kept."""
    table = AuditTile.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    statement = postgresql_insert(table) if dialect == "postgresql" else sqlite_insert(table)
    session.connection().execute(statement.on_conflict_do_nothing(), rows)


def build_tiles(session: Session, size: int, cache: TileCache | None = None) -> None:
    """Store every full tile a tree of `size` leaves has that is not stored yet.

    Incremental: tiles are written in order from the leaf hashes stored with the entries, and
    each full tile at level l completes a hash of the level above, so the work per entry is
    constant however large the log grows.
    """
    if cache is not None and size <= cache.built_size:
        return
    stored = dict(
        session.execute(
            select(AuditTile.level, func.max(AuditTile.n) + 1).group_by(AuditTile.level)  # type: ignore[call-overload]
        ).all()
    )
    level = 0
    while _full_tiles_below(size, level) > 0:
        have, want = stored.get(level, 0), _full_tiles_below(size, level)
        for first in range(have, want, 64):
            count = min(64, want - first)
            if level == 0:
                rows = session.execute(
                    select(AuditEntry.leaf_hash)  # type: ignore[call-overload]
                    .where(
                        AuditEntry.seq > first * TILE_WIDTH,  # type: ignore[operator]
                        AuditEntry.seq <= (first + count) * TILE_WIDTH,
                    )
                    .order_by(AuditEntry.seq)
                ).all()
                hashes = [bytes.fromhex(row[0]) for row in rows]
            else:
                hashes = _roots(
                    session, level - 1, first * TILE_WIDTH, (first + count) * TILE_WIDTH
                )
            if len(hashes) != count * TILE_WIDTH:
                raise LookupError(f"the log holds fewer leaves than a tree of {size}")
            _insert_tiles(
                session,
                [
                    {
                        "level": level,
                        "n": first + i,
                        "hashes": b"".join(hashes[i * TILE_WIDTH : (i + 1) * TILE_WIDTH]),
                        "root": _reduce(hashes[i * TILE_WIDTH : (i + 1) * TILE_WIDTH]),
                    }
                    for i in range(count)
                ],
            )
        level += 1
    if cache is not None:
        cache.built_size = max(cache.built_size, size)


def _roots(session: Session, level: int, start: int, end: int) -> list[bytes]:
    """The roots of the full tiles [start, end) at `level`, in order."""
    rows = session.execute(
        select(AuditTile.n, AuditTile.root)  # type: ignore[call-overload]
        .where(
            AuditTile.level == level,
            AuditTile.n >= start,  # type: ignore[operator]
            AuditTile.n < end,
        )
        .order_by(AuditTile.n)
    ).all()
    if [row[0] for row in rows] != list(range(start, end)):
        raise LookupError(f"tiles {start}-{end - 1} of level {level} are not all stored")
    return [bytes(row[1]) for row in rows]


class TiledTree(MerkleHashes):
    """The first `size` leaves of the log, answering roots and proofs from stored tiles.

    Built per use: it remembers the partial tiles it computed only for its own lifetime, and
    full tiles in the shared bounded `TileCache`.
    """

    def __init__(self, session: Session, size: int, cache: TileCache) -> None:
        self._session = session
        self._size = size
        self._cache = cache
        self._partial: dict[tuple[int, int], list[bytes]] = {}

    def __len__(self) -> int:
        return self._size

    def _node(self, level: int, index: int) -> bytes:
        tile_level, height = divmod(level, TILE_HEIGHT)
        span = 1 << height
        first = index * span
        hashes = self.tile_hashes(tile_level, first // TILE_WIDTH, first % TILE_WIDTH + span)
        offset = first % TILE_WIDTH
        return _reduce(hashes[offset : offset + span])

    def tile_hashes(self, level: int, n: int, width: int) -> list[bytes]:
        """At least the first `width` hashes of tile `n` at `level` (all 256 when it is full)."""
        if (n + 1) * TILE_WIDTH ** (level + 1) <= self._size:
            data = self._cache.get(level, n)
            if data is None:
                tile = self._session.get(AuditTile, (level, n))
                if tile is None:
                    raise LookupError(f"tile {level}/{n} is not stored")
                data = bytes(tile.hashes)
                self._cache.put(level, n, data)
            return _split_hashes(data)
        if (n * TILE_WIDTH + width) * TILE_WIDTH**level > self._size:
            raise TileNotFound(f"a tree of {self._size} has no tile {level}/{n} of width {width}")
        known = self._partial.get((level, n), [])
        if len(known) < width:
            start = n * TILE_WIDTH
            if level == 0:
                rows = self._session.execute(
                    select(AuditEntry.leaf_hash)  # type: ignore[call-overload]
                    .where(
                        AuditEntry.seq > start,  # type: ignore[operator]
                        AuditEntry.seq <= start + width,
                    )
                    .order_by(AuditEntry.seq)
                ).all()
                known = [bytes.fromhex(row[0]) for row in rows]
                if len(known) < width:
                    raise LookupError(f"the log holds fewer than {start + width} entries")
            else:
                known = _roots(self._session, level - 1, start, start + width)
            self._partial[(level, n)] = known
        return known


def tile_bytes(tree: TiledTree, tile: TileRef) -> bytes:
    """A hash tile as served: its hashes concatenated."""
    if not isinstance(tile.level, int):
        raise TileNotFound("not a hash tile")
    return b"".join(tree.tile_hashes(tile.level, tile.n, tile.width)[: tile.width])


def entry_bundle(session: Session, size: int, tile: TileRef) -> bytes:
    """An entry bundle: each entry's leaf bytes behind a big-endian uint16 length."""
    start = tile.n * TILE_WIDTH
    if start + tile.width > size:
        raise TileNotFound(f"a tree of {size} has no entry bundle {tile.n} of width {tile.width}")
    rows = session.execute(
        select(AuditEntry.__table__)  # type: ignore[attr-defined]
        .where(
            AuditEntry.__table__.c.seq > start,  # type: ignore[attr-defined]
            AuditEntry.__table__.c.seq <= start + tile.width,
        )  # type: ignore[attr-defined]
        .order_by(AuditEntry.__table__.c.seq)
    ).all()  # type: ignore[attr-defined]
    out = bytearray()
    for row in rows:
        data = leaf_bytes(row)
        if len(data) > 0xFFFF:
            raise ValueError(f"entry {row.seq} is longer than an entry bundle can hold")
        out += len(data).to_bytes(2, "big") + data
    return bytes(out)
