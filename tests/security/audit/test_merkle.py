"""The Merkle tree against the published RFC 6962 test vectors, and its proofs against itself.

Vectors: github.com/transparency-dev/merkle proof/verify_test.go (inclusionProofs,
consistencyProofs, roots, leaves), the same data as certificate-transparency-go's merkle tests
and google/certificate-transparency python/ct/crypto/merkle_test.py. Leaf indices there are
1-based in inclusionProofs; here they are 0-based.
"""

from __future__ import annotations

import random

import pytest

from security.audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    frontier_at,
    inclusion_proof,
    leaf_hash,
    node_hash,
    oracle_from_leaves,
    root,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
H = bytes.fromhex
INCLUSION = [  # (0-based index, size, proof)
    (0, 1, []),
    (0, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (5, 8, [H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 3, [H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")]),
    (1, 5, [H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
]
CONSISTENCY = [  # (size1, size2, proof)
    (1, 1, []),
    (1, 8, [H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")]),
    (6, 8, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
    (2, 5, [H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")]),
    (6, 7, [H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")]),
]
HASHES = [leaf_hash(leaf) for leaf in LEAVES]
ORACLE = oracle_from_leaves(HASHES)


def test_hashes_and_empty_tree() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root([]) == EMPTY_ROOT
    assert HASHES[0] == ROOTS[0]  # a one-leaf tree's root is its leaf hash
    assert node_hash(HASHES[0], HASHES[1]) == ROOTS[1]


@pytest.mark.parametrize("n", range(1, 9))
def test_roots_of_every_prefix(n: int) -> None:
    assert root(HASHES[:n]) == ROOTS[n - 1]
    assert frontier_at(n, ORACLE).root() == ROOTS[n - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_vectors(index: int, size: int, proof: list[bytes]) -> None:
    assert inclusion_proof(index, size, ORACLE) == proof
    verify_inclusion(index, size, HASHES[index], proof, ROOTS[size - 1])


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_consistency_vectors(first: int, second: int, proof: list[bytes]) -> None:
    assert consistency_proof(first, second, ORACLE) == proof
    verify_consistency(first, second, proof, ROOTS[first - 1], ROOTS[second - 1])


def _corrupted(proof: list[bytes], good_root: bytes) -> list[list[bytes]]:
    """The corruptions of transparency-dev/merkle's corrupt*Proof helpers."""
    out = [[*proof, b""], [*proof, good_root], [b"", *proof], [good_root, *proof]]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([proof[i][0] ^ 8]) + proof[i][1:]
        out.append(flipped)
    if proof:
        out.append(proof[:-1])
    if len(proof) > 1:
        out.append([proof[0], b"\xab" * 32, *proof[1:]])
    return out


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION[1:])
def test_corrupted_inclusion_fails(index: int, size: int, proof: list[bytes]) -> None:
    good = ROOTS[size - 1]
    for bad in _corrupted(proof, good):
        with pytest.raises(ProofError):
            verify_inclusion(index, size, HASHES[index], bad, good)
    for i, n in ((index - 1, size), (index + 1, size), (index ^ 2, size), (index, size * 2),
                 (index, size // 2)):
        if 0 <= i < n:
            with pytest.raises(ProofError):
                verify_inclusion(i, n, HASHES[index], proof, good)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, leaf_hash(b"WrongLeaf"), proof, good)
    with pytest.raises(ProofError):
        verify_inclusion(index, size, HASHES[index], proof, EMPTY_ROOT)


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY[1:])
def test_corrupted_consistency_fails(first: int, second: int, proof: list[bytes]) -> None:
    r1, r2 = ROOTS[first - 1], ROOTS[second - 1]
    for bad in [*_corrupted(proof, r1), [*proof, r2], [r2, *proof], [proof[0], *proof], []]:
        with pytest.raises(ProofError):
            verify_consistency(first, second, bad, r1, r2)
    for a, b in ((first - 1, second), (first + 1, second), (first ^ 2, second),
                 (first, second * 2), (first, second // 2)):
        if 0 < a <= b and (a, b) != (first, second):
            with pytest.raises(ProofError):
                verify_consistency(a, b, proof, r1, r2)
    with pytest.raises(ProofError):
        verify_consistency(first, second, proof, r2, r1)


def test_edge_cases_of_consistency() -> None:
    verify_consistency(0, 5, [], EMPTY_ROOT, ROOTS[4])
    verify_consistency(3, 3, [], ROOTS[2], ROOTS[2])
    with pytest.raises(ProofError):
        verify_consistency(3, 3, [], ROOTS[2], ROOTS[3])
    with pytest.raises(ProofError):
        verify_consistency(5, 2, [], ROOTS[4], ROOTS[1])
    with pytest.raises(ProofError):
        verify_consistency(0, 1, [ROOTS[0]], EMPTY_ROOT, ROOTS[0])
    with pytest.raises(ProofError):
        inclusion_proof(3, 3, ORACLE)


def test_every_proof_of_small_trees_verifies() -> None:
    """Generated proofs verify for all sizes up to 70 (power-of-two edges included)."""
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(70)]
    oracle = oracle_from_leaves(hashes)
    roots = [root(hashes[:n]) for n in range(71)]
    for n in range(1, 71):
        for i in range(n):
            verify_inclusion(i, n, hashes[i], inclusion_proof(i, n, oracle), roots[n])
        for m in range(n + 1):
            verify_consistency(m, n, consistency_proof(m, n, oracle), roots[m], roots[n])


def test_frontier_appends_like_the_batch_root_and_reports_completed_nodes() -> None:
    rng = random.Random(9)
    hashes = [rng.randbytes(32) for _ in range(300)]
    oracle = oracle_from_leaves(hashes)
    frontier, fast = Frontier(), Frontier()
    for n, h in enumerate(hashes, start=1):
        fast.add(h)
        for level, index, node in frontier.append(h):
            assert oracle(level, index) == node
        assert frontier.root() == root(hashes[:n]) == fast.root()
        restored = Frontier.from_bytes(frontier.size, frontier.to_bytes())
        assert restored.root() == frontier.root()
    with pytest.raises(ValueError):
        Frontier(3, [hashes[0]])


def test_frontier_extends_by_a_run_of_leaves_like_appends_one_by_one() -> None:
    """`extend` (a stored bundle's leaves at once) keeps the nodes from `min_level` up that
    appending them one by one completes, from any starting size."""
    rng = random.Random(11)
    hashes = [rng.randbytes(32) for _ in range(300)]
    for start, count in ((0, 256), (5, 100), (37, 263), (64, 1)):
        one_by_one = Frontier()
        for h in hashes[:start]:
            one_by_one.append(h)
        at_once = one_by_one.copy()
        nodes = [n for h in hashes[start:start + count] for n in one_by_one.append(h)]
        kept = at_once.extend(b"".join(hashes[start:start + count]), min_level=4)
        assert kept == [n for n in nodes if n[0] >= 4]
        assert at_once.size == one_by_one.size and at_once.root() == one_by_one.root()
