"""The Merkle tree of RFC 9162 §2.1: tree heads, inclusion and consistency proofs.

Leaves are hashed as SHA-256(0x00 || data) and interior nodes as SHA-256(0x01 || left || right),
so a leaf can never pass for a node. Roots and proofs need only the hashes of complete
(power-of-two, aligned) subtrees: `MerkleHashes` derives every root and proof from a source of
those, and each source says where they come from. `MerkleTree` keeps them all in memory (one
contiguous byte array per level, about 64 bytes a leaf): right for a verifier that reads the
whole log once; the server reads them from stored tiles instead (`audit.tiles`).
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Iterable

HASH_SIZE = 32
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """The hash of one leaf's bytes."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n > 1): RFC 9162's k."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleHashes(ABC):
    """Roots and proofs for any size up to `len(self)`, from the hashes of complete subtrees.

    A subclass supplies `__len__` and `_node(level, index)`: the hash of leaves
    [index * 2**level, (index + 1) * 2**level), asked only for subtrees inside the tree.
    """

    @abstractmethod
    def __len__(self) -> int:
        """How many leaves the tree holds."""

    @abstractmethod
    def _node(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree `index` at height `level`."""

    def leaf(self, index: int) -> bytes:
        """The hash of leaf `index` (zero-based)."""
        if not 0 <= index < len(self):
            raise IndexError(f"no leaf {index} in a tree of {len(self)}")
        return self._node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """The tree head of the first `size` leaves (all of them by default)."""
        size = len(self) if size is None else size
        self._check_size(size)
        return self._subtree(0, size) if size else _EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The audit path of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1)."""
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of size {size}")
        return self._path(index, 0, size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The proof that the first `first` leaves are a prefix of the first `second`."""
        self._check_size(second)
        if not 0 <= first <= second:
            raise ValueError("need 0 <= first <= second")
        if first in (0, second):
            return []
        return self._subproof(first, 0, second, complete=True)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= len(self):
            raise ValueError(f"the tree has {len(self)} leaves, not {size}")

    def _subtree(self, start: int, count: int) -> bytes:
        # Every subtree RFC 9162 asks for starts at a multiple of its own power-of-two parts,
        # so a complete one is a single stored node.
        if count & (count - 1) == 0:
            level = count.bit_length() - 1
            return self._node(level, start >> level)
        k = _split(count)
        return node_hash(self._subtree(start, k), self._subtree(start + k, count - k))

    def _path(self, index: int, start: int, count: int) -> list[bytes]:
        if count == 1:
            return []
        k = _split(count)
        if index < k:
            return [*self._path(index, start, k), self._subtree(start + k, count - k)]
        return [*self._path(index - k, start + k, count - k), self._subtree(start, k)]

    def _subproof(self, first: int, start: int, count: int, *, complete: bool) -> list[bytes]:
        if first == count:
            return [] if complete else [self._subtree(start, count)]
        k = _split(count)
        if first <= k:
            return [
                *self._subproof(first, start, k, complete=complete),
                self._subtree(start + k, count - k),
            ]
        return [
            *self._subproof(first - k, start + k, count - k, complete=False),
            self._subtree(start, k),
        ]


class MerkleTree(MerkleHashes):
    """An append-only tree of leaf hashes in memory that answers for any size it has reached."""

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]

    def __len__(self) -> int:
        return len(self._levels[0]) // HASH_SIZE

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash, completing every subtree it closes."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("a leaf hash is 32 bytes")
        levels = self._levels
        levels[0] += leaf
        level, count = 0, len(levels[0]) // HASH_SIZE
        while count % 2 == 0:
            row = levels[level]
            parent = node_hash(bytes(row[-2 * HASH_SIZE : -HASH_SIZE]), bytes(row[-HASH_SIZE:]))
            if len(levels) == level + 1:
                levels.append(bytearray())
            levels[level + 1] += parent
            level += 1
            count = len(levels[level]) // HASH_SIZE

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def _node(self, level: int, index: int) -> bytes:
        return bytes(self._levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE])


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes]) -> bytes | None:
    """The root an audit path leads to, or None when the path has the wrong shape."""
    if not 0 <= index < size:
        return None
    fn, sn, node = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return node if sn == 0 else None


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """Whether `proof` shows leaf `index` is in the tree of `size` leaves with head `root`."""
    computed = root_from_inclusion(leaf, index, size, proof)
    return computed is not None and hmac.compare_digest(computed, root)


def verify_consistency(
    first: int, second: int, proof: list[bytes], first_root: bytes, second_root: bytes
) -> bool:
    """Whether `proof` shows the tree of `first` leaves is a prefix of the one of `second`."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and hmac.compare_digest(first_root, second_root)
    if first == 0:
        return not proof
    if not proof:
        return False
    if first & (first - 1) == 0:
        proof = [first_root, *proof]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for sibling in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(sibling, fr)
            sr = node_hash(sibling, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, sibling)
        fn >>= 1
        sn >>= 1
    return (
        sn == 0
        and hmac.compare_digest(fr, first_root)
        and hmac.compare_digest(sr, second_root)
    )
