"""The lead table's local store, written one batch at a time, after its changelog.

The lead table is a Faust table: Faust creates its changelog topic, opens one
RocksDB per partition on assignment, recovers it from the changelog, and
serves `items()` and `get()` to the views. The hot path does not write
through it: a Faust table write goes to the local store at once and to the
changelog later, so a worker killed in between keeps writes the changelog
lacks. Here the order is Kafka Streams' and Quix Streams':

1. a batch folds into `LeadBatch`, a dict of the leads it touched per
   partition, with the partition's progress written last;
2. the app produces one changelog record per entry, in that order, and waits
   for the broker to acknowledge every one;
3. `LeadStore.write` puts the entries and the highest acknowledged changelog
   offset in one RocksDB `WriteBatch`: atomically, the leads, the progress
   that vouches for them, and where table recovery resumes.

So the local store never holds what the changelog lacks, whatever point a
worker is killed at. Restarting after SIGKILL is a restart after a clean stop:
Faust's recovery reads the changelog from the persisted offset (the writes
of a batch killed between acknowledgement and local write), and the events
past the progress are fetched again; per-lead offsets skip what a lead
already holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import faust
import rocksdict
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksStore

from streams.kafka.batches import Sent
from streams.live.internals import changelog_offset_key, rocks_db


class LeadStore:
    """Reads and batch writes on the lead table's local store, bypassing Faust's per-key path.

    Keys and values are raw bytes both in the store and on the changelog (the
    table's serializers are raw), so what is written here is what Faust's
    recovery would have written."""

    def __init__(self, table: faust.Table) -> None:
        self.table = table

    @property
    def _store(self) -> Any:
        return self.table.data

    def get(self, partition: int, lead_id: str) -> bytes | None:
        store = self._store
        if isinstance(store, RocksStore):
            return rocks_db(store, partition).get(lead_id.encode("utf-8", "surrogatepass"))
        return store.data.get(lead_id.encode("utf-8", "surrogatepass"))

    def get_any(self, lead_id: str) -> bytes | None:
        """A lead of any partition this worker holds."""
        return self.table.get(lead_id.encode("utf-8", "surrogatepass"))

    def write(self, partition: int, entries: dict[str, bytes], changelog_offset: int) -> None:
        """Write a batch's entries of one partition, and the changelog offset they reach, atomically."""
        store = self._store
        if isinstance(store, RocksStore):
            batch = rocksdict.WriteBatch(raw_mode=True)
            for key, value in entries.items():
                batch.put(key.encode("utf-8", "surrogatepass"), value)
            batch.put(changelog_offset_key(store), str(changelog_offset).encode())
            rocks_db(store, partition).write(batch)
        elif isinstance(store, MemoryStore):  # nothing survives a restart: no offset to keep
            store.data.update((key.encode("utf-8", "surrogatepass"), value) for key, value in entries.items())
        else:
            raise TypeError(f"unsupported store {type(store).__name__}")

    def items(self) -> Any:
        return self.table.items()

    def items_of(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """The entries of one partition's local store (a memory store gives every partition's: the
        caller keeps the partition's own, as `LiveProjection.rebuild` does)."""
        store = self._store
        if isinstance(store, RocksStore):
            offset_key = changelog_offset_key(store)
            return ((key, value) for key, value in rocks_db(store, partition).items() if key != offset_key)
        return iter(list(store.data.items()))

    def scan(self, partition: int, prefix: str) -> list[tuple[str, bytes]]:
        """The entries of one partition whose keys start with `prefix` (a lead's held anonymous ids), by key."""
        start = prefix.encode("utf-8", "surrogatepass")
        store = self._store
        if isinstance(store, RocksStore):
            found = []
            for key, value in rocks_db(store, partition).items(from_key=start):
                if not key.startswith(start):
                    break
                found.append((key.decode("utf-8", "surrogatepass"), value))
            return found
        return sorted((key.decode("utf-8", "surrogatepass"), value) for key, value in store.data.items() if key.startswith(start))


@dataclass
class Pending:
    """A batch sent to the changelog, waiting for its acknowledgements before it is written locally."""

    entries: dict[int, dict[str, bytes]] = field(default_factory=dict)  # per partition, the store's entries
    changelog: dict[int, Sent] = field(default_factory=dict)  # per partition, its changelog batches
    others: list[Sent] = field(default_factory=list)  # dead letters, lead changes and identity messages
    next_offsets: dict[int, dict[str, int]] = field(default_factory=dict)  # per partition and topic read, one past the progress written


_NOTHING: dict[str, bytes] = {}


class PartitionView:
    """One partition's leads during a batch: reads fall through the pending batches (the newest
    first) to the store, writes wait here."""

    __slots__ = ("_partition", "_pending", "_store", "entries", "get")  # `get`: set per depth in __init__

    def __init__(self, store: LeadStore, partition: int, pending: list[dict[str, bytes]]) -> None:
        self._store = store
        self._partition = partition
        self._pending = pending
        self.entries: dict[str, bytes] = {}
        # the C fold calls `get` once per lead a batch touches: one closure per depth, no loop
        entries, read = self.entries, store.get
        if not pending:
            self.get = lambda lead_id: entries.get(lead_id) or read(partition, lead_id)
        elif len(pending) == 1:
            newer = pending[0]
            self.get = lambda lead_id: entries.get(lead_id) or newer.get(lead_id) or read(partition, lead_id)
        elif len(pending) == 2:
            newer, older = pending[0], pending[1]
            self.get = lambda lead_id: entries.get(lead_id) or newer.get(lead_id) or older.get(lead_id) or read(partition, lead_id)
        else:
            self.get = self._get_any_depth

    def _get_any_depth(self, lead_id: str) -> bytes | None:
        for entries in (self.entries, *self._pending):
            found = entries.get(lead_id)
            if found is not None:
                return found
        return self._store.get(self._partition, lead_id)

    def put(self, lead_id: str, value: bytes) -> None:
        """Held: the changelog gets the entries in the order of their last write (a key written
        again moves to the end), so that what a step writes last, a lead's record after the held
        entries it depends on and the partition's progress after everything, goes out last."""
        entries = self.entries
        entries.pop(lead_id, None)
        entries[lead_id] = value

    def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        """The partition's entries whose keys start with `prefix`, as this batch sees them."""
        found = dict(self._store.scan(self._partition, prefix))
        for entries in (*reversed(self._pending), self.entries):
            found.update((key, value) for key, value in entries.items() if key.startswith(prefix))
        return sorted(found.items())


class LeadBatch:
    """A batch's view of the lead table, per partition (the `LeadTable` the projection writes)."""

    def __init__(self, store: LeadStore, pending: list[dict[int, dict[str, bytes]]] | None = None) -> None:
        """`pending`: the batches not yet written locally, the newest first, each per partition."""
        self.store = store
        self.pending = pending or []
        self.partitions: dict[int, PartitionView] = {}

    def partition(self, partition: int) -> PartitionView:
        view = self.partitions.get(partition)
        if view is None:
            waiting = [batch[partition] for batch in self.pending if partition in batch]
            view = self.partitions[partition] = PartitionView(self.store, partition, waiting)
        return view

    def pending_of(self, partition: int) -> dict[str, bytes]:
        """A partition's entries not yet written locally, as one dict (the newest batch's win)."""
        merged: dict[str, bytes] = {}
        for batch in reversed(self.pending):
            merged.update(batch.get(partition, _NOTHING))
        return merged

    def get(self, lead_id: str) -> bytes | None:
        """A lead of any partition (the watermark's stale leads): this batch's version first,
        then the pending batches', the newest first, then the store's."""
        for entries in [*(view.entries for view in self.partitions.values()), *(e for batch in self.pending for e in batch.values())]:
            found = entries.get(lead_id)
            if found is not None:
                return found
        return self.store.get_any(lead_id)

    def put(self, lead_id: str, value: bytes) -> None:
        raise TypeError("a batch is written per partition: LeadBatch.partition(p).put")

