"""SPEC §9 on a live cluster, in the core: partitions fold their owners' events and pass identity
messages (projections.linking) to each other in any order, any number of times; once every event
and message is applied, the report and every person equal replay's, and the aggregates kept batch
by batch equal those derived from the table again (`rebuild`)."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections import Definitions, Projector, default_definitions, parse_definitions
from projections.answers import lead as lead_answer
from projections.definitions import DEFAULT_YAML
from projections.identity import anonymous_of
from projections.linking import held_of
from projections.live import BatchResult, LiveProjection
from projections.projector import ACCELERATED
from projections.routing import kafka_partition
from projections.stored import progress_partition
from streams.live.partial import Partial, merge
from tests.conftest import GOLDEN

PARTITIONS = 4
KEEP_TWO = parse_definitions(DEFAULT_YAML.replace("max_anonymous_ids: 100", "max_anonymous_ids: 2"), "keep two")


class Table(dict):
    def put(self, key: str, value: bytes) -> None:
        self[key] = value

    def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        return sorted((key, value) for key, value in self.items() if key.startswith(prefix))


class Staged:
    """A batch's view of the table, as the worker's: writes wait here in the order of their last
    write (the changelog's order), reads fall through to the table."""

    def __init__(self, table: Table) -> None:
        self.table, self.writes = table, {}

    def get(self, key: str) -> bytes | None:
        return self.writes[key] if key in self.writes else self.table.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.writes.pop(key, None)
        self.writes[key] = value

    def scan(self, prefix: str) -> list[tuple[str, bytes]]:
        found = dict(self.table.scan(prefix))
        found.update((key, value) for key, value in self.writes.items() if key.startswith(prefix))
        return sorted(found.items())


def owner_of(line: bytes) -> str | None:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    owner = data.get("lead_id") if data.get("lead_id") is not None else data.get("anonymous_id")
    return owner if isinstance(owner, str) else None


class Cluster:
    """Every partition in one projection and one table, messages in per-partition logs."""

    def __init__(self, defs: Definitions, compiled: bool, rng: random.Random, crashes: float = 0.0, shadow: Definitions | None = None) -> None:
        self.live, self.table, self.rng, self.compiled, self.crashes = LiveProjection(defs, compiled=compiled, shadow=shadow), Table(), rng, compiled, crashes
        self.events: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
        self.messages: dict[int, list[tuple[int, Any]]] = {p: [] for p in range(PARTITIONS)}

    def produce(self, line: bytes) -> None:
        owner = owner_of(line)
        partition = 0 if owner is None else kafka_partition(owner.encode("utf-8", "surrogatepass"), PARTITIONS)
        self.events[partition].append((len(self.events[partition]), line))

    def step(self) -> bool:
        """One batch of one partition: some of its events or some of its messages. False when nothing is left."""
        live = self.live
        work = [(p, "events") for p in range(PARTITIONS) if live.next_offset(p) < len(self.events[p])]
        work += [(p, "messages") for p in range(PARTITIONS) if live.next_identity_offset(p) < len(self.messages[p])]
        if not work:
            return False
        partition, kind = self.rng.choice(work)
        result, staged = BatchResult(), Staged(self.table)
        before = live.cluster_watermark
        if kind == "events":
            start = live.next_offset(partition) - self.rng.choice([0, 0, 0, 1, 3])  # sometimes delivered again
            batch = self.events[partition][max(0, start) : start + self.rng.randint(1, 8)]
            live.process(partition, batch, staged, result, staged.scan)
        else:
            start = live.next_identity_offset(partition) - self.rng.choice([0, 0, 0, 1, 2])
            batch = self.messages[partition][max(0, start) : start + self.rng.randint(1, 5)]
            live.link(partition, batch, staged, result, staged.scan)
        live.settle(result, before, staged)
        for target, message in result.messages:  # acknowledged before the batch's changelog is sent
            self.send(target, message)
        writes = list(staged.writes.items())
        if self.rng.random() < self.crashes:  # killed with part of the changelog sent: the worker restarts from it
            self.table.update(writes[: self.rng.randint(0, len(writes))])
            self.restart()
        else:
            self.table.update(writes)
        return True

    def restart(self) -> None:
        watermark = self.live.cluster_watermark
        self.live = LiveProjection(self.live.defs, compiled=self.compiled, shadow=self.live.shadow_defs)
        self.live.rebuild(self.table.items(), set(range(PARTITIONS)))
        self.live.cluster_watermark = watermark  # announced on journey.watermarks: learnt again at once

    def send(self, target: str, message: Any) -> None:
        partition = kafka_partition(target.encode("utf-8", "surrogatepass"), PARTITIONS)
        log = self.messages[partition]
        log.append((len(log), message))
        if self.rng.random() < 0.2:  # a producer that resends after a timeout: the same message again, later
            log.append((len(log), message))

    def report(self) -> dict[str, Any]:
        return merge(self.live.defs, [Partial.of(self.live, self.live.cluster_watermark)])

    def persons(self, watermark: int) -> list[dict[str, Any]]:
        defs, found = self.live.defs, []
        for key, data in self.table.items():
            if progress_partition(key) is not None or held_of(key) is not None:
                continue
            if anonymous_of(key) is None:
                found.append(lead_answer(defs, key, data, watermark))
        return found


def replayed(lines: list[bytes], defs: Definitions) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    projector = Projector()
    projector.feed_all(lines)
    return projector.report(defs), [person for person in projector.lead_records(defs) if person["lead_id"] is not None]


def run(lines: list[bytes], defs: Definitions, compiled: bool, seed: int, crashes: float = 0.0) -> Cluster:
    rng = random.Random(seed)
    cluster = Cluster(defs, compiled, rng, crashes)
    for line in lines:
        cluster.produce(line)
    while cluster.step():
        if rng.random() < 0.05:  # the table read again, as after a restart: the same aggregates
            assert_rebuilds(cluster)
    return cluster


def assert_rebuilds(cluster: Cluster) -> None:
    live = cluster.live
    incremental = merge(live.defs, [Partial.of(live, live.cluster_watermark)])
    again = LiveProjection(live.defs)
    again.rebuild(cluster.table.items(), set(live.partitions))
    again.cluster_watermark = live.cluster_watermark
    assert merge(live.defs, [Partial.of(again, live.cluster_watermark)]) == incremental


def converges(lines: list[bytes], defs: Definitions, compiled: bool, seed: int, crashes: float = 0.0) -> None:
    cluster = run(lines, defs, compiled, seed, crashes)
    report, persons = replayed(lines, defs)
    assert cluster.report() == report
    assert sorted(cluster.persons(cluster.live.cluster_watermark or 0), key=lambda p: p["lead_id"]) == persons
    assert_rebuilds(cluster)


IDENTITY_LOG = [line for line in (GOLDEN / "journey-identity.jsonl").read_bytes().split(b"\n") if line.strip()]
EXAMPLES = [line for line in (GOLDEN / "identity-examples.jsonl").read_bytes().split(b"\n") if line.strip()]
COMPILED = [False, True] if ACCELERATED else [False]


class TestLiveIdentityConverges:
    @pytest.mark.parametrize("compiled", COMPILED)
    @pytest.mark.parametrize("seed", range(3))
    def test_the_golden_identity_log_in_any_order_of_batches_and_messages(self, compiled: bool, seed: int) -> None:
        lines = list(IDENTITY_LOG)
        random.Random(seed).shuffle(lines)
        converges(lines, default_definitions(), compiled, seed)

    @pytest.mark.parametrize("compiled", COMPILED)
    @pytest.mark.parametrize("seed", range(4))
    def test_a_worker_killed_with_part_of_a_batch_s_changelog_written_ends_equal_to_replay(self, compiled: bool, seed: int) -> None:
        # a crash keeps any prefix of a batch's writes, in changelog order (progress last); what the
        # batch sent was acknowledged first, and the batch is applied again from the stored progress
        lines = list(IDENTITY_LOG)
        random.Random(seed).shuffle(lines)
        converges(lines, KEEP_TWO if seed % 2 else default_definitions(), compiled, seed, crashes=0.15)

    @pytest.mark.parametrize("compiled", COMPILED)
    def test_the_examples_and_a_lead_past_its_limit(self, compiled: bool) -> None:
        for seed in range(6):  # each seed another order of batches, messages and crashes (test_any_order_and_crashes draws more)
            converges(EXAMPLES, default_definitions(), compiled, seed)
            converges(IDENTITY_LOG, KEEP_TWO, compiled, seed)

    @pytest.mark.parametrize("compiled", COMPILED)
    def test_a_kept_id_taken_by_an_earlier_link_of_another_lead_makes_room_for_the_next(self, compiled: bool) -> None:
        # keep one: L1 keeps A1 (day 5) over A2 (day 6); L2's link to A1 on day 3 takes A1, and L1 keeps A2
        keep_one = parse_definitions(DEFAULT_YAML.replace("max_anonymous_ids: 100", "max_anonymous_ids: 1"), "keep one")
        lines = [orjson.dumps(e) for e in (
            {"event_id": "a1", "anonymous_id": "A1", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z"},
            {"event_id": "a2", "anonymous_id": "A2", "type": "content_read", "occurred_at": "2026-09-02T10:00:00Z"},
            {"event_id": "k1", "lead_id": "L1", "anonymous_id": "A1", "type": "identified", "occurred_at": "2026-09-05T10:00:00Z"},
            {"event_id": "k2", "lead_id": "L1", "anonymous_id": "A2", "type": "identified", "occurred_at": "2026-09-06T10:00:00Z"},
            {"event_id": "k3", "lead_id": "L2", "anonymous_id": "A1", "type": "identified", "occurred_at": "2026-09-03T10:00:00Z"},
        )]
        promoted = 0
        for seed in range(40):
            rng = random.Random(seed)
            cluster = Cluster(keep_one, compiled, rng)
            for line in lines[:4]:
                cluster.produce(line)
            while cluster.step():
                pass
            promoted += cluster.report()["identity"] == {"anonymous_ids": 2, "joined": 1, "over_limit": 1}  # L1 keeps A1, A2 over
            cluster.produce(lines[4])
            while cluster.step():
                pass
            report, persons = replayed(lines, keep_one)
            assert cluster.report() == report and report["identity"] == {"anonymous_ids": 2, "joined": 2, "over_limit": 0}
            assert sorted(cluster.persons(cluster.live.cluster_watermark or 0), key=lambda p: p["lead_id"]) == persons
            assert_rebuilds(cluster)
        assert promoted == 40  # every run went through L1 keeping A1, then giving it up

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(["L1", "L2", "L3", None]), st.sampled_from(["A1", "A2", "A3", "A4", "guest", None]),
                              st.sampled_from(["ad_seen", "content_read", "contact_made", "purchase", "identified"]), st.integers(0, 5), st.integers(1, 9)),
                    max_size=40),
           st.integers(0, 2**16), st.sampled_from([0, 1, 2, 100]), st.booleans(), st.sampled_from([0.0, 0.2]))
    def test_any_links_in_any_order(self, rows: list[tuple[Any, ...]], seed: int, keep: int, compiled: bool, crashes: float) -> None:
        defs = parse_definitions(DEFAULT_YAML.replace("max_anonymous_ids: 100", f"max_anonymous_ids: {keep}"), "generated")
        lines = []
        for i, (lead, anon, kind, eid, day) in enumerate(rows):
            event = {"event_id": f"e{eid}", "type": kind, "occurred_at": f"2026-09-0{day}T10:00:0{i % 10}Z", "channel": f"c{i % 3}"}
            if lead is not None:
                event["lead_id"] = lead
            if anon is not None:
                event["anonymous_id"] = anon
            lines.append(orjson.dumps(event))
        converges(lines, defs, compiled and ACCELERATED, seed, crashes)

