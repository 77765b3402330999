"""The Merkle tree agrees with RFC 9162 and its proofs hold exactly when they should."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmr_vault.audit.merkle import (
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

# The eight leaves and tree heads used by the certificate-transparency reference tests.
LEAVES = [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _reference_root(leaves: list[bytes]) -> bytes:
    """MTH straight from the RFC's recursive definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    left, right = _reference_root(leaves[:k]), _reference_root(leaves[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def _tree(size: int) -> tuple[MerkleTree, list[bytes]]:
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    tree = MerkleTree()
    tree.extend(leaves)
    return tree, leaves


def test_tree_heads_match_the_published_vectors() -> None:
    tree = MerkleTree()
    for data, expected in zip(LEAVES, ROOTS, strict=True):
        tree.append(leaf_hash(bytes.fromhex(data)))
        assert tree.root().hex() == expected
    assert [tree.root(n).hex() for n in range(1, 9)] == ROOTS


def test_the_empty_tree_has_the_hash_of_nothing() -> None:
    assert MerkleTree().root() == hashlib.sha256(b"").digest()


@given(st.integers(min_value=1, max_value=70))
def test_every_historical_root_matches_the_definition(size: int) -> None:
    tree, leaves = _tree(size)
    for n in range(size + 1):
        assert tree.root(n) == _reference_root(leaves[:n])


@given(st.data())
def test_inclusion_proofs_verify_for_every_leaf(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=70))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    tree, leaves = _tree(size)
    proof = tree.inclusion_proof(index, size)
    assert verify_inclusion(leaves[index], index, size, proof, tree.root(size))


@given(st.data())
def test_consistency_proofs_verify_for_every_pair_of_sizes(data: st.DataObject) -> None:
    second = data.draw(st.integers(min_value=1, max_value=70))
    first = data.draw(st.integers(min_value=1, max_value=second))
    tree, _ = _tree(second)
    proof = tree.consistency_proof(first, second)
    assert verify_consistency(first, second, proof, tree.root(first), tree.root(second))


def test_an_inclusion_proof_fails_for_another_leaf_position_or_root() -> None:
    tree, leaves = _tree(13)
    proof = tree.inclusion_proof(6, 13)
    assert not verify_inclusion(leaves[7], 6, 13, proof, tree.root())
    assert not verify_inclusion(leaves[6], 5, 13, proof, tree.root())
    assert not verify_inclusion(leaves[6], 6, 8, proof, tree.root())
    assert not verify_inclusion(leaves[6], 6, 13, proof, tree.root(12))
    assert not verify_inclusion(leaves[6], 6, 13, proof[:-1], tree.root())


def test_a_consistency_proof_fails_against_a_forked_history() -> None:
    tree, leaves = _tree(20)
    forked = MerkleTree()
    forked.extend([*leaves[:5], leaf_hash(b"rewritten"), *leaves[6:]])
    proof = tree.consistency_proof(8, 20)
    assert verify_consistency(8, 20, proof, tree.root(8), tree.root(20))
    assert not verify_consistency(8, 20, proof, forked.root(8), tree.root(20))
    assert not verify_consistency(8, 20, proof, tree.root(8), forked.root(20))


def test_asking_beyond_the_tree_is_an_error() -> None:
    tree, _ = _tree(4)
    with pytest.raises(ValueError, match="4 leaves"):
        tree.root(5)
    with pytest.raises(ValueError, match="not in a tree"):
        tree.inclusion_proof(4, 4)


def _reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) exactly as RFC 9162 §2.1.3.1 defines it."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*_reference_path(m, leaves[:k]), _reference_root(leaves[k:])]
    return [*_reference_path(m - k, leaves[k:]), _reference_root(leaves[:k])]


def _reference_subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) exactly as RFC 9162 §2.1.4.1 defines it."""
    n = len(leaves)
    if m == n:
        return [] if complete else [_reference_root(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_reference_subproof(m, leaves[:k], complete), _reference_root(leaves[k:])]
    return [*_reference_subproof(m - k, leaves[k:], False), _reference_root(leaves[:k])]


def test_proofs_equal_the_rfc_definitions_for_every_size_up_to_33() -> None:
    tree, leaves = _tree(33)
    for n in range(1, 34):
        for m in range(n):
            assert tree.inclusion_proof(m, n) == _reference_path(m, leaves[:n])
        for m in range(1, n):
            assert tree.consistency_proof(m, n) == _reference_subproof(m, leaves[:n], True)


def test_the_reference_eight_leaf_tree_has_the_published_audit_paths() -> None:
    tree = MerkleTree()
    tree.extend(leaf_hash(bytes.fromhex(data)) for data in LEAVES)
    # Leaf 0 of the 8-leaf reference tree (certificate-transparency test data).
    assert [h.hex() for h in tree.inclusion_proof(0, 8)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]
