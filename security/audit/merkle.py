"""The audit log's Merkle tree: RFC 6962 §2.1 / RFC 9162 §2.1, pure functions over hashes.

Leaf hash H(0x00 ‖ entry), node hash H(0x01 ‖ left ‖ right), SHA-256. The tree over n leaves
splits at k, the largest power of two smaller than n (RFC 9162 §2.1.1). Proofs are generated
from an oracle giving the hash of any *perfect* subtree (level, index) — the storage keeps those
(leaves at level 0, inner nodes as they complete) — so no proof ever reads the whole log.
Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from hashlib import sha256

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"  # RFC 9162 §2.1.1: domain separation of leaves ...
NODE_PREFIX = b"\x01"  # ... and interior nodes (second-preimage resistance)
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = SHA-256()

# (level, index) -> hash of the perfect subtree over leaves [index·2^level, (index+1)·2^level)
PerfectHash = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof does not verify, or its parameters are out of range."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """k, the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_perfect(lo: int, n: int) -> bool:
    return n & (n - 1) == 0 and lo % n == 0


def range_hash(lo: int, hi: int, perfect: PerfectHash) -> bytes:
    """MTH(D[lo:hi]) for a range of the tree's decomposition (lo aligned to its left split)."""
    n = hi - lo
    if n <= 0:
        raise ProofError(f"empty range [{lo}, {hi})")
    if _is_perfect(lo, n):
        return perfect(n.bit_length() - 1, lo // n)
    k = split_point(n)
    return node_hash(range_hash(lo, lo + k, perfect), range_hash(lo + k, hi, perfect))


def oracle_from_leaves(leaf_hashes: Sequence[bytes]) -> PerfectHash:
    """A PerfectHash over leaf hashes held in memory (tests, offline tools), memoised."""
    memo: dict[tuple[int, int], bytes] = {}

    def perfect(level: int, index: int) -> bytes:
        if level == 0:
            return leaf_hashes[index]
        key = (level, index)
        if key not in memo:
            memo[key] = node_hash(perfect(level - 1, 2 * index), perfect(level - 1, 2 * index + 1))
        return memo[key]

    return perfect


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of the given leaf hashes."""
    frontier = Frontier()
    for h in leaf_hashes:
        frontier.append(h)
    return frontier.root()


# -- inclusion (RFC 9162 §2.1.3) ---------------------------------------------------------------


def inclusion_proof(index: int, size: int, perfect: PerfectHash) -> list[bytes]:
    """PATH(m, D[n]) of §2.1.3.1, leaf-side first."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} outside a tree of size {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    # Walk down from the root; siblings are collected top-down, then reversed.
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            proof.append(range_hash(lo + k, hi, perfect))
            hi = lo + k
        else:
            proof.append(range_hash(lo, lo + k, perfect))
            lo = lo + k
    proof.reverse()
    return proof


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` implies for `leaf` at `index` (§2.1.3.2 steps 1-5)."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     expected_root: bytes) -> None:
    if root_from_inclusion(index, size, leaf, proof) != expected_root:
        raise ProofError(f"inclusion proof of index {index} does not lead to the root")


# -- consistency (RFC 9162 §2.1.4) -------------------------------------------------------------


def consistency_proof(first: int, second: int, perfect: PerfectHash) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of §2.1.4.1; empty when m is 0 or n."""
    if not 0 <= first <= second:
        raise ProofError(f"no consistency proof from size {first} to {second}")
    if first in (0, second):
        return []
    proof: list[bytes] = []
    lo, hi, m, whole = 0, second, first, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                proof.append(range_hash(lo, hi, perfect))
            break
        k = split_point(n)
        if m <= k:
            proof.append(range_hash(lo + k, hi, perfect))
            hi = lo + k
        else:
            proof.append(range_hash(lo, lo + k, perfect))
            lo, m, whole = lo + k, m - k, False
    proof.reverse()
    return proof


def verify_consistency(first: int, second: int, proof: Sequence[bytes], first_root: bytes,
                       second_root: bytes) -> None:
    """§2.1.4.2; raises ProofError unless the tree of size `second` extends that of `first`."""
    if not 0 <= first <= second:
        raise ProofError(f"size {second} is smaller than {first}: the log went backwards")
    if first == second:
        if proof:
            raise ProofError("equal sizes need an empty consistency proof")
        if first_root != second_root:
            raise ProofError(f"two different roots for the same size {first}")
        return
    if first == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    path = list(proof)
    if first & (first - 1) == 0:  # step 1: an exact power of 2 is its own subtree
        path.insert(0, first_root)
    if not path:
        raise ProofError("empty consistency proof")
    fn, sn = first - 1, second - 1  # step 2
    while fn & 1:  # step 3
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]  # step 4
    for c in path[1:]:  # step 5
        if sn == 0:
            raise ProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # step 6
        raise ProofError("consistency proof too short")
    if fr != first_root:
        raise ProofError(f"consistency proof does not reproduce the root of size {first}")
    if sr != second_root:
        raise ProofError(f"consistency proof does not reproduce the root of size {second}")


# -- incremental form --------------------------------------------------------------------------


@dataclass
class Frontier:
    """The compact range [0, size): one perfect subtree hash per set bit of size, largest first.

    Appending a leaf merges equal-sized subtrees like a binary counter; each merge completes one
    perfect inner node, which `append` returns so storage can keep it for proofs.
    """

    size: int = 0
    hashes: list[bytes] | None = None

    def __post_init__(self) -> None:
        if self.hashes is None:
            self.hashes = []
        if len(self.hashes) != self.size.bit_count():
            raise ValueError(f"a frontier of size {self.size} holds {self.size.bit_count()} "
                             f"hashes, not {len(self.hashes)}")

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; the perfect nodes completed, as (level, index, hash), level ≥ 1."""
        return self.extend(leaf)

    def extend(self, leaves: bytes, min_level: int = 1) -> list[tuple[int, int, bytes]]:
        """Add leaf hashes, HASH_SIZE bytes each, in order; the perfect nodes completed from
        `min_level` up (a stored bundle's append: its hot loop, so inlined)."""
        hashes = self.hashes
        assert hashes is not None
        completed: list[tuple[int, int, bytes]] = []
        size = self.size
        for at in range(0, len(leaves), HASH_SIZE):
            h, level, index = leaves[at:at + HASH_SIZE], 0, size
            while (size >> level) & 1:
                h = sha256(NODE_PREFIX + hashes.pop() + h).digest()
                level += 1
                index >>= 1
                if level >= min_level:
                    completed.append((level, index, h))
            hashes.append(h)
            size += 1
        self.size = size
        return completed

    def add(self, leaf: bytes) -> None:
        """`append` without reporting completed nodes (the verifier's hot loop)."""
        hashes = self.hashes
        assert hashes is not None
        h, size = leaf, self.size
        while size & 1:
            h = sha256(NODE_PREFIX + hashes.pop() + h).digest()
            size >>= 1
        hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        assert self.hashes is not None
        if not self.hashes:
            return EMPTY_ROOT
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = node_hash(left, h)
        return h

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.hashes or []))

    def to_bytes(self) -> bytes:
        return b"".join(self.hashes or [])

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> Frontier:
        return cls(size, [blob[i:i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)])


def frontier_at(size: int, perfect: PerfectHash) -> Frontier:
    """The compact range [0, size) read from stored perfect subtrees."""
    hashes: list[bytes] = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            hashes.append(perfect(level, start >> level))
            start += 1 << level
    return Frontier(size, hashes)
