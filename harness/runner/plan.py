"""Units of work: fixed chunks of items, assigned to shards by a deterministic rule.

Items are cut into chunks of `batch_size` consecutive indices; chunk k belongs to shard
k mod num_shards. Each (chunk, radius, method, dds) is one unit, stored under one key that names
the chunk's item range (so a run with another `limit` never reuses a chunk of other items) and the
radius exactly (repr of the float), with its random seeds derived from (seed, chunk, radius) alone,
so results do not depend on which shard or which attempt computed them.
"""

from __future__ import annotations

import hashlib


def chunk_ranges(n_items: int, batch_size: int) -> list[range]:
    return [range(s, min(s + batch_size, n_items)) for s in range(0, n_items, batch_size)]


def shard_chunks(n_items: int, batch_size: int, shard: int = 0, num_shards: int = 1) -> list[tuple[int, range]]:
    """(chunk index, item range) pairs of this shard."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} of {num_shards} is invalid: need 0 <= shard < num_shards")
    return [(k, r) for k, r in enumerate(chunk_ranges(n_items, batch_size)) if k % num_shards == shard]


def unit_key(chunk: int, items: range, radius_255: float, method: str, dds: str) -> str:
    return f"c{chunk:06d}|i{items.start}-{items.stop}|r{float(radius_255)!r}|{method}|{dds}"


def key_order(key: str) -> tuple:
    """Sort key of a unit key: chunk, item range, radius (numerically), method, DDS variant."""
    chunk, items, radius, method, dds = key.split("|")
    start, stop = items[1:].split("-")
    return int(chunk[1:]), int(start), int(stop), float(radius[1:]), method, dds


def unit_seed(seed: int, chunk: int, radius_255: float) -> int:
    """A 63-bit seed that depends only on the run seed, the chunk and the radius."""
    digest = hashlib.sha256(f"{seed}|{chunk}|{float(radius_255):.6f}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
