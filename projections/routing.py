"""Which partition a lead belongs to: exactly as Kafka's default partitioner places a keyed record.

`murmur2` is the Java client's `Utils.murmur2`, and a record keyed by a lead id
goes to `(murmur2(key) & 0x7fffffff) % partitions`. aiokafka's and the Java
client's default partitioners do the same, so a replay split into N partitions
gives each process the leads that partition N of `journey.events` would hold.
The C fold's `route` and `partition` compute the same function (tests/unit/test_fold_accel.py, TestRouting).
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 as Kafka's Java client computes it, as an unsigned 32-bit integer."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record with this key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


try:  # the same function in C (projections/_fold.c), where it is built
    from projections._fold import partition as _c_partition
except ImportError:  # pragma: no cover - depends on the install
    _c_partition = None

# kafka_partition at C speed where the accelerator is built: what the live worker partitions its
# lead changes with (tests/unit/test_fold_accel.py holds the two to the same answer).
fast_partition = kafka_partition if _c_partition is None else _c_partition
