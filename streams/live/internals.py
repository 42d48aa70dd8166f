"""Where the worker reaches into Faust's and aiokafka's internals: every such place, in one module.

Written for exactly the versions in `WRITTEN_FOR` (pinned in pyproject.toml). `check()` runs when
this module is imported, before a worker starts, and refuses another install in one line naming
what moved, instead of a worker that misbehaves later. Each internal below says what it replaces
and why:

1. **Whole fetches past Faust's per-message delivery** (`BatchConsumer._drain_messages`, which
   replaces `faust.transport.consumer.Consumer._drain_messages`). Faust's loop hands each record
   to its Conductor on its own: a message object, two tasks raced in `wait_first`, a queue, the
   stream's iterator and an ack, about 75 µs a record (docs/performance.md). Here each fetch of the
   sink's topic goes to `BatchSink.deliver` whole; every other topic (the changelogs Faust recovers
   tables from) still takes Faust's path, record by record. The topic's records are never acked
   to Faust, so Faust never commits their offsets: the sink keeps its progress in the lead table,
   and `perform_seek` (after table recovery) puts each partition where that progress says.
2. **Records as (offset, value) pairs** (`PartitionRecords`, a subclass put where
   `aiokafka.consumer.fetcher` looks up its `PartitionRecords`): aiokafka makes a ConsumerRecord of
   eleven fields per record, in Python, and the worker reads two (24.1 -> 20.7 µs of worker CPU an
   event). Only a consumer whose value deserializer is a `PlainRecords` marker gets pairs, and only
   for the marked topic; every other consumer and topic gets ConsumerRecords as before.
3. **The embedded broker's end offsets** (`correct_faust_end_offsets`, wrapping
   `AIOKafkaConsumerThread._highwaters`): table recovery reads a changelog "to its end", and Tansu
   reports ends wrong for batched records (streams/kafka/tansu.py). Embedded profile only.
4. **The embedded broker's fetch wait** (`shorten_fetch_wait`, wrapping
   `AIOKafkaConsumerThread._create_worker_consumer` to set the consumer's `_fetch_max_wait_ms`):
   Tansu holds every fetch for the full wait; Faust has no setting for it. Embedded profile only.
5. **The lead table's RocksDB** (`rocks_db`, `changelog_offset_key`, `partition_path`: Faust's
   `faust.stores.rocksdb.Store._db_for_partition`, `offset_key` and `partition_path`): a batch is
   written to a partition's database in one WriteBatch with the changelog offset it reaches
   (streams/live/store.py); Faust's table API writes key by key, to the store before the changelog.
   At start, before Faust opens them, the databases the broker no longer backs are found by their
   paths and wiped (streams/live/resync.py). And every partition's database is opened with one
   block cache and one write-buffer budget (`share_rocksdb_memory`, replacing the store's
   `rocksdb_options`, whose `as_options` Faust calls to open each database): Faust's options give
   each partition its own block cache of up to 2 GiB and three 64 MiB memtables.
6. **The producer and the group member** (`kafka_producer`: Faust's `Producer._ensure_producer`;
   `member_id`: the aiokafka coordinator's `member_id`): batches are built with aiokafka's
   `create_batch`/`send_batch`, which Faust does not offer, and a killed worker's membership is
   ended by its successor (streams/kafka/group.py).
7. **Offsets committed beside Faust** (`commit_offsets`: the aiokafka consumer inside Faust's
   consumer thread, `ConsumerThread.call_thread` to run its `commit` on that thread's loop):
   journey.events records are never acked to Faust, so Faust never commits them, and Faust's
   own `Consumer._commit` crashes the app on any commit error. journey commits the offsets its
   store vouches for, for the lag tools (streams/live/commits.py), and handles a failed commit itself.
8. **No second of grace at start** (`PromptTableManager.on_start`, replacing Faust's
   `TableManager.on_start`): Faust sleeps 1 s before it registers tables and subscribes, so that
   tables an app declares while starting are counted in. The worker declares its one table before
   Faust starts, so the second only delayed every start and restart (the group join waits for it).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import faust
import rocksdict
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.structs import OffsetAndMetadata
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksStore
from faust.tables import TableManager
from faust.transport import consumer as faust_consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer
from faust.transport.drivers.aiokafka import Producer as FaustProducer
from faust.types import TP

from streams.errors import JourneyError
from streams.kafka.tansu import FETCH_WAIT_MS, corrected_end_offsets

WRITTEN_FOR = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


class FrameworkMismatch(JourneyError):
    """The installed Faust or aiokafka is not the one the worker's internals were written for."""


# -- the check ---------------------------------------------------------------------------------


def _names_in(function: Any) -> set[str]:
    """The attribute and global names a function's code uses (nested code included)."""
    code, found = function.__code__, set()
    stack = [code]
    while stack:
        code = stack.pop()
        found.update(code.co_names)
        stack.extend(const for const in code.co_consts if hasattr(const, "co_names"))
    return found


def _set_in_init(cls: type) -> set[str]:
    """The names the __init__ methods of a class and its bases use: where instance attributes are set."""
    inits = (vars(klass).get("__init__") for klass in cls.__mro__)
    return set().union(*(_names_in(init) for init in inits if hasattr(init, "__code__")))


def _parameters(function: Any) -> tuple[str, ...]:
    code = function.__code__
    return code.co_varnames[: code.co_argcount]


# What BatchConsumer._drain_messages uses of Faust's consumer, as its own _drain_messages does.
_DRAIN_METHODS = ("_wait_next_records", "_to_message", "wait_first", "sleep", "perform_seek", "_new_consumer_thread", "flow_active", "should_stop", "consumer_stopped_errors")
_DRAIN_ATTRIBUTES = ("callback", "_read_offset", "_buffered_partitions", "suspend_flow", "_stopped")

EXPECTED: list[tuple[str, Callable[[], bool]]] = [
    ("aiokafka fetcher.PartitionRecords(tp, records, aborted_transactions, fetch_offset, key_deserializer, value_deserializer, ...)",
     lambda: _parameters(aiokafka_fetcher.PartitionRecords.__init__)[:7]
     == ("self", "tp", "records", "aborted_transactions", "fetch_offset", "key_deserializer", "value_deserializer")),
    ("aiokafka PartitionRecords._consumer_record, read per record", lambda: hasattr(aiokafka_fetcher.PartitionRecords, "_consumer_record")),
    ("aiokafka AIOKafkaConsumer keeps _fetch_max_wait_ms and _value_deserializer",
     lambda: {"_fetch_max_wait_ms", "_value_deserializer"} <= _names_in(AIOKafkaConsumer.__init__)),
    ("aiokafka GroupCoordinator.member_id", lambda: "member_id" in _names_in(GroupCoordinator.__init__)),
    ("faust Consumer._drain_messages(fetcher) and what it uses",
     lambda: _parameters(faust_consumer.Consumer._drain_messages) == ("self", "fetcher")
     and all(hasattr(Consumer, name) for name in _DRAIN_METHODS) and set(_DRAIN_ATTRIBUTES) <= _set_in_init(Consumer)),
    ("faust AIOKafkaConsumerThread._create_worker_consumer(transport) and _highwaters(partitions)",
     lambda: _parameters(AIOKafkaConsumerThread._create_worker_consumer) == ("self", "transport")
     and _parameters(getattr(AIOKafkaConsumerThread._highwaters, "journey_original", AIOKafkaConsumerThread._highwaters)) == ("self", "partitions")),
    ("faust rocksdb Store._db_for_partition(partition), partition_path(partition) and offset_key",
     lambda: _parameters(RocksStore._db_for_partition) == ("self", "partition") and isinstance(RocksStore.offset_key, bytes)
     and _parameters(RocksStore.partition_path) == ("self", "partition")),
    ("faust rocksdb Store.rocksdb_options, opened through RocksDBOptions.open(path) -> as_options()",
     lambda: "rocksdb_options" in _set_in_init(RocksStore) and "rocksdb_options" in _names_in(RocksStore._open_for_partition)
     and "as_options" in _names_in(RocksDBOptions.open) and _parameters(RocksDBOptions.as_options) == ("self",)),
    ("faust aiokafka Producer._ensure_producer()", lambda: _parameters(FaustProducer._ensure_producer) == ("self",)),
    ("faust TableManager.on_start(): sleep(1.0), then _update_channels() and recovery.start()",
     lambda: _names_in(TableManager.on_start) == {"sleep", "should_stop", "_update_channels", "recovery", "start"}
     and 1.0 in TableManager.on_start.__code__.co_consts),
    ("faust Consumer._thread, AIOKafkaConsumerThread._ensure_consumer() and call_thread(fun, ...); aiokafka AIOKafkaConsumer.commit(offsets)",
     lambda: "_thread" in _set_in_init(Consumer) and _parameters(AIOKafkaConsumerThread._ensure_consumer) == ("self",)
     and _parameters(AIOKafkaConsumerThread.call_thread)[:2] == ("self", "fun") and _parameters(AIOKafkaConsumer.commit) == ("self", "offsets")),
]


def check() -> None:
    """Refuse, in one line, an install whose internals differ from the ones this module reaches into."""
    installed = {package: importlib.metadata.version(package) for package in WRITTEN_FOR}
    moved = [what for what, present in EXPECTED if not _holds(present)]
    if moved or installed != WRITTEN_FOR:
        wanted = ", ".join(f"{p}=={v}" for p, v in WRITTEN_FOR.items())
        have = ", ".join(f"{p} {v}" for p, v in installed.items())
        what = f"; changed: {'; '.join(moved)}" if moved else ""
        raise FrameworkMismatch(f"the worker is written for {wanted} and this install has {have}{what}; install journey's pinned versions (pip install -e .)")


def _holds(present: Callable[[], bool]) -> bool:
    try:
        return bool(present())
    except (AttributeError, TypeError):
        return False


# -- 1 and 2: whole fetches, as (offset, value) pairs ----------------------------------------------


class BatchSink(Protocol):
    topics: frozenset[str]  # the topics it takes whole; every other topic takes Faust's path

    async def deliver(self, fetched: Mapping[TP, list[tuple[int, bytes]]]) -> None:
        """Apply one fetch of its topics' records: (offset, value) tuples per partition, a missing value as b""."""

    async def idle(self) -> None:
        """A fetch brought none of its topics' records."""

    def positions(self, assigned: set[TP]) -> dict[TP, int]:
        """Where each assigned partition of its topics continues: one past its progress."""


class PlainRecords:
    """A consumer's value deserializer that marks its fetcher's records of `topics` to come as
    (offset, value) tuples (`PartitionRecords`); values of other topics pass unchanged."""

    def __init__(self, topics: frozenset[str]) -> None:
        self.topics = topics

    def __call__(self, value: bytes | None) -> bytes | None:
        return value


def _plain(tp: Any, record: Any) -> tuple[int, bytes]:
    return record.offset, record.value or b""


class PartitionRecords(aiokafka_fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's records of one fetched partition, as (offset, value) for a PlainRecords topic."""

    def __init__(self, tp: Any, records: Any, aborted: Any, fetch_offset: int, key_deserializer: Any, value_deserializer: Any, *rest: Any) -> None:
        if isinstance(value_deserializer, PlainRecords):
            if tp.topic in value_deserializer.topics:
                self._consumer_record = _plain  # read by aiokafka's _unpack_records, a record at a time
            value_deserializer = None
        super().__init__(tp, records, aborted, fetch_offset, key_deserializer, value_deserializer, *rest)


def plain_records() -> None:
    """Let aiokafka's fetchers make PartitionRecords of the subclass above: unchanged wherever
    a consumer's value deserializer is not a PlainRecords (aiokafka has no hook for it)."""
    aiokafka_fetcher.PartitionRecords = PartitionRecords


class BatchConsumerThread(AIOKafkaConsumerThread):  # type: ignore[misc]
    """Faust's consumer thread, whose aiokafka consumer fetches the sink's topic as plain records."""

    consumer: BatchConsumer

    def _create_worker_consumer(self, transport: Any) -> Any:
        plain_records()
        consumer = super()._create_worker_consumer(transport)
        consumer._value_deserializer = PlainRecords(self.consumer.sink.topics)  # read when it starts, by its Fetcher
        return consumer


class BatchConsumer(Consumer):
    """Faust's aiokafka consumer, delivering the sink's topics a fetch at a time (1 above)."""

    sink: BatchSink  # set by the app, in the subclass it hands Faust

    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in the worker
        sink, callback, to_message, read_offset = self.sink, self.callback, self._to_message, self._read_offset
        mine = sink.topics
        buffered = self._buffered_partitions
        consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if not records or self.should_stop or not self.flow_active:
                    await sink.idle()
                    continue
                batch: dict[TP, list[tuple[int, bytes]]] = {}
                for tp, messages in records.items():
                    if active is not None and tp not in active and tp not in buffered:
                        continue
                    if tp.topic in mine:
                        batch[tp] = messages
                        continue
                    for record in messages:  # Faust's own path: table recovery reads changelogs here
                        last = read_offset.get(tp)
                        if last is not None and record.offset < last:
                            continue
                        await self.wait_first(callback(to_message(tp, record)), self.suspend_flow.wait())
                        read_offset[tp] = record.offset
                await (sink.deliver(batch) if batch else sink.idle())
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise

    async def perform_seek(self) -> None:
        """After table recovery: Faust seeks to committed offsets, then the sink's topics go to
        where their progress stands (Faust never commits them)."""
        await super().perform_seek()
        for tp, offset in self.sink.positions(self.assignment()).items():
            await self.seek(tp, offset)


# -- 3 and 4: the embedded broker ------------------------------------------------------------------


def correct_faust_end_offsets(bootstrap: str) -> None:
    """Make Faust's consumer answer `highwaters()` (table recovery's "read the changelog to
    here") with corrected end offsets. Without it a restarted worker stops recovering at the
    last batch's first record, or refuses a RocksDB table whose persisted offset lies beyond."""
    current = AIOKafkaConsumerThread._highwaters
    original = getattr(current, "journey_original", current)

    async def corrected_highwaters(self: Any, partitions: Any) -> Mapping[Any, int]:
        reported = await original(self, partitions)
        if self.consumer.in_transaction:
            return reported  # last stable offsets come from fetches: already right
        return await corrected_end_offsets(bootstrap, reported)

    corrected_highwaters.journey_original = original  # type: ignore[attr-defined]  # marks the patch: applied once
    AIOKafkaConsumerThread._highwaters = corrected_highwaters  # type: ignore[method-assign]


def shorten_fetch_wait() -> None:
    """Tansu holds every fetch for the full fetch_max_wait_ms, however much data it has
    (measured: median 450 ms of latency at Faust's fixed 1500 ms, 3 ms at 100 ms)."""
    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "journey_embedded", False):
        return

    def create_with_short_wait(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_WAIT_MS  # read when the consumer starts
        return consumer

    create_with_short_wait.journey_embedded = True  # type: ignore[attr-defined]  # marks the patch: applied once
    AIOKafkaConsumerThread._create_worker_consumer = create_with_short_wait  # type: ignore[method-assign]


# -- 5 and 6: the store, the producer, the group member --------------------------------------------


def rocks_db(store: RocksStore, partition: int) -> Any:
    """The rocksdict database of one partition of a Faust RocksDB store."""
    return store._db_for_partition(partition)


def changelog_offset_key(store: RocksStore) -> bytes:
    """The key under which Faust keeps, in each partition's database, the changelog offset it holds."""
    return store.offset_key


def partition_path(table: faust.Table) -> Callable[[int], Path] | None:
    """Where a RocksDB-backed table keeps one partition's database; None for another store."""
    store = table.data
    return store.partition_path if isinstance(store, RocksStore) else None


class SharedRocksOptions(RocksDBOptions):  # type: ignore[misc]
    """Faust's RocksDB options (rocksdict), with one LRU block cache and one write-buffer budget
    (a WriteBufferManager) shared by every database opened with them. Index and filter blocks are
    kept in the cache too, so they count against it instead of growing with the files."""

    def __init__(self, cache_bytes: int, write_buffer_bytes: int) -> None:
        super().__init__(use_rocksdict=True)
        self.cache = rocksdict.Cache(cache_bytes)
        self.write_buffers = rocksdict.WriteBufferManager(write_buffer_bytes, False)
        self.write_buffer_size = min(self.write_buffer_size, max(write_buffer_bytes // 4, 1 << 20))  # a memtable

    def as_options(self) -> Any:
        options = super().as_options()  # Faust's, with a block cache of its own: replaced below
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(self.cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(self.write_buffers)
        return options


def share_rocksdb_memory(table: faust.Table, cache_bytes: int, write_buffer_bytes: int) -> SharedRocksOptions | None:
    """Open every partition's database of a RocksDB-backed table (standby copies included) with
    one block cache and one write-buffer budget; None for another store."""
    store = table.data
    if not isinstance(store, RocksStore) or not store.use_rocksdict:
        return None
    store.rocksdb_options = shared = SharedRocksOptions(cache_bytes, write_buffer_bytes)
    return shared


def kafka_producer(app: faust.App) -> Any:
    """The aiokafka producer inside Faust's producer."""
    return app.producer._ensure_producer()


async def commit_offsets(app: faust.App, offsets: Mapping[tuple[str, int], int]) -> None:
    """Commit `offsets` ((topic, partition) -> next offset) for the app's group, on the consumer's own thread."""
    thread = app.consumer._thread
    consumer = thread._ensure_consumer()
    await thread.call_thread(consumer.commit, {TopicPartition(topic, p): OffsetAndMetadata(offset, "") for (topic, p), offset in offsets.items()})


class PromptTableManager(TableManager):  # type: ignore[misc]
    """Faust's table manager without the second it waits, at start, for tables declared late."""

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


def member_id(app: faust.App) -> str | None:
    """This worker's member id in its consumer group; None while it has none."""
    try:
        return app.consumer._thread._ensure_consumer()._coordinator.member_id
    except AttributeError:  # not joined yet
        return None


check()
