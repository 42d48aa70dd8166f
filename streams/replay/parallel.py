"""Replay on every core: the log is partitioned by lead exactly as Kafka's default partitioner
places records keyed by lead id (`projections.routing`).

Each process reads the whole file, keeps the lines whose lead falls in its
partition and folds them with the same projector as a single-process replay
(`replay_projector`: the C lead table where it is built). A lead lives in one
partition, so lead states, duplicate detection and aggregates are exactly
those of a single fold; aggregates of disjoint leads merge by addition, and
only the watermark is shared (it settles qualification, lead records and the
comparison at the end).
"""

from __future__ import annotations

import gc
import heapq
import multiprocessing
import os
import tempfile
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import msgspec
import orjson

from projections import Aggregates, Changes, Definitions, Projector
from projections.identity import chosen, counts_of
from projections.lead import REVENUE_PAST_LIMIT
from projections.projector import ACCELERATED, _fold, replay_projector
from projections.report import EventCounts, build_comparison, build_report
from projections.routing import fast_partition, kafka_partition
from streams.replay.rejects import Rejects, check_count, merge_parts, writing
from streams.replay.sources import numbered_records, record_chunks, text_chunks

MIN_PARALLEL_BYTES = 4 * 1024 * 1024


def partitions_for(path: Path) -> int:
    """How many processes a replay of this file is worth."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if path.stat().st_size < MIN_PARALLEL_BYTES else max(1, cores)


class _OwnerKeys(msgspec.Struct):
    lead_id: Any = None  # every other field is skipped unparsed
    anonymous_id: Any = None


_OWNER_KEYS = msgspec.json.Decoder(_OwnerKeys).decode


def owner_of(line: bytes) -> Any:
    """A record's owner as JSON reads it (SPEC §2: its lead id, else its anonymous id; None when
    it is no JSON object or has neither as a string); the C decoder skips every other field unparsed."""
    try:
        keys = _OWNER_KEYS(line)
    except (msgspec.DecodeError, RecursionError):
        return None
    return keys.lead_id if keys.lead_id is not None else keys.anonymous_id


def partition_of(line: bytes, partitions: int) -> int:
    """The partition of a record's owner; a record with no string owner (invalid whatever else
    it holds) goes to partition 0. The pure Python routing; `_fold.route` is the C one, which
    routes every record with an owner the same way, and may count an invalid record in another
    partition than 0 (it reads bytes, not JSON): it is counted once either way."""
    owner = owner_of(line)
    return kafka_partition(owner.encode("utf-8", "surrogatepass"), partitions) if type(owner) is str else 0


def replay_parallel(
    path: Path, defs: Definitions, baseline: Definitions | None, leads_out: Path | None, partitions: int, rejects: Path | None = None
) -> dict[str, Any]:
    """The report (or comparison) of a file, one process per partition of its owners. Persons cross
    partitions (an anonymous id's events live in its own partition, its lead's in another), so the
    parent decides, from every process's links, which anonymous ids join which leads, and each one
    that joins a lead of another partition is handed over to that lead's process (SPEC §9).

    `rejects`: each process writes the invalid records of its partition in line order, merged into
    this file by line (streams/replay/rejects.py)."""
    context = multiprocessing.get_context("fork")
    pipes, processes = [], []
    with tempfile.TemporaryDirectory(prefix="journey-replay-") as scratch:
        rejects_parts = [Path(scratch) / f"rejects-{i}.jsonl" for i in range(partitions)] if rejects else [None] * partitions
        for index in range(partitions):
            parent, child = context.Pipe()
            process = context.Process(target=_partition, args=(child, path, index, partitions, defs, baseline, rejects_parts[index]), daemon=True)
            process.start()
            pipes.append(parent)
            processes.append(process)
        try:
            folded = [_receive(pipe) for pipe in pipes]
            if rejects is not None:
                check_count(merge_parts(rejects_parts, rejects), sum(f["counts"].invalid for f in folded))
            _make_persons(pipes, folded, defs, partitions)
            aggregated = [_receive(pipe) for pipe in pipes]
            marks = [f["watermark"] for f in folded if f["watermark"] is not None]
            watermark = max(marks) if marks else None
            parts = [Path(scratch) / f"leads-{i}.jsonl" for i in range(partitions)] if leads_out else [None] * partitions
            for pipe, part in zip(pipes, parts, strict=True):
                pipe.send((watermark, part))
            finished = [_receive(pipe) for pipe in pipes]
            if leads_out is not None:
                _merge_sorted(parts, leads_out)
            return _result(defs, baseline, watermark, folded, aggregated, finished)
        finally:
            for process in processes:
                process.join(timeout=5)
                if process.is_alive():
                    process.kill()


def _make_persons(pipes: list[Connection], folded: list[dict[str, Any]], defs: Definitions, partitions: int) -> None:
    """Which anonymous ids join which leads, over the whole log; the states of those that join a lead
    of another process go there, and every process makes its persons."""
    links = [link for part in folded for link in part["links"]]
    joined_ids, over_limit = chosen(links, defs)

    def partition(owner: str) -> int:  # as the records were routed
        return kafka_partition(owner.encode("utf-8", "surrogatepass"), partitions)

    joined: list[dict[str, list[str]]] = [{} for _ in pipes]
    handing: list[list[str]] = [[] for _ in pipes]  # per process, its anonymous ids that join a lead of another
    arriving: list[list[str]] = [[] for _ in pipes]
    for lead_id, ids in joined_ids.items():
        home = partition(lead_id)
        joined[home][lead_id] = ids
        for anonymous_id in ids:
            if (source := partition(anonymous_id)) != home:
                handing[source].append(anonymous_id)
                arriving[home].append(anonymous_id)
    linked = {anonymous_id for anonymous_id, *_ in links}
    asked = [[anonymous_id for anonymous_id in linked if partition(anonymous_id) == index] for index in range(partitions)]
    for pipe, out, asks in zip(pipes, handing, asked, strict=True):
        pipe.send({"hand_over": out, "owns": asks})
    answers = [_receive(pipe) for pipe in pipes]
    handed = {anonymous_id: data for answer in answers for anonymous_id, data in answer["handed"].items()}
    counts = counts_of(joined_ids, over_limit, sum(part["anonymous_owners"] for part in folded) + sum(answer["unowned"] for answer in answers))
    marks = [part["watermark"] for part in folded if part["watermark"] is not None]
    watermark = max(marks) if marks else None  # the whole log's: days waiting (SPEC §10) are counted at it
    for pipe, own, incoming in zip(pipes, joined, arriving, strict=True):
        pipe.send({"adopt": {a: handed[a] for a in incoming if a in handed}, "joined": own, "counts": counts, "watermark": watermark})


def _result(defs: Definitions, baseline: Definitions | None, watermark: int | None, folded: list[dict], aggregated: list[dict], finished: list[dict]) -> dict[str, Any]:
    counts = EventCounts()
    for part in folded:
        counts.merge(part["counts"])
    identity = aggregated[0]["identity"]

    def report(side: int, side_defs: Definitions) -> dict[str, Any]:
        totals = Aggregates.empty(side_defs)
        for part in aggregated:
            totals.merge(part["aggregates"][side])
        return build_report(side_defs, counts, watermark, totals, identity)

    if baseline is None:
        return report(0, defs)
    changes = Changes()
    for part in finished:
        changes.merge(part["changes"])
    return build_comparison(report(1, baseline), report(0, defs), changes)


def _partition(conn: Connection, path: Path, index: int, partitions: int, defs: Definitions, baseline: Definitions | None, rejects: Path | None) -> None:
    try:
        projector = replay_projector()
        if rejects is None:
            for records in _mine(path, index, partitions):
                projector.feed_all(records)
        else:
            _fold_keeping_rejects(projector, path, index, partitions, rejects)
        gc.freeze()  # the owner states stay to the end: later collections need not walk them again
        conn.send({"counts": projector.counts, "watermark": projector.watermark, "links": projector.links, "anonymous_owners": projector.anonymous_owners()})
        asked = conn.recv()
        handed = {anonymous_id: projector.hand_over(anonymous_id) for anonymous_id in asked["hand_over"]}
        conn.send({"handed": {a: data for a, data in handed.items() if data is not None}, "unowned": sum(1 for a in asked["owns"] if not projector.owns(a))})
        plan = conn.recv()
        for anonymous_id, data in plan["adopt"].items():
            projector.adopt(anonymous_id, data)
        projector.make_persons(defs, plan["joined"], plan["counts"])
        projector.watermark = plan["watermark"]  # the whole log's, not this partition's
        sides = [defs] if baseline is None else [defs, baseline]
        conn.send({"aggregates": [projector.aggregate(d) for d in sides], "identity": plan["counts"]})
        watermark, leads_part = conn.recv()
        projector.watermark = watermark  # the whole log's, not this partition's
        if leads_part is not None:
            with leads_part.open("wb") as out:
                for record in projector.lead_records(defs):
                    out.write(orjson.dumps(record) + b"\n")
        conn.send({"changes": projector.changes(baseline, defs) if baseline is not None else None})
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which reports it
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def _mine(path: Path, index: int, partitions: int, accelerated: bool = ACCELERATED) -> Iterator[list[bytes]]:
    """The records of one partition, in log order, a list per chunk. Every process reads the
    whole file; the C routing looks at each line's bytes and makes objects of its own only."""
    if accelerated:
        assert _fold is not None
        for data in text_chunks(path):
            yield _fold.route(data, partitions, index, owner_of)
        return
    for lines in record_chunks(path):
        yield [line for line in lines if partition_of(line, partitions) == index]


def _fold_keeping_rejects(projector: Projector, path: Path, index: int, partitions: int, rejects: Path) -> None:
    """The partition's records with their line numbers, each invalid one written to `rejects`.
    Routed by `partition_of`'s rule (the C routing keeps no line numbers), with the C murmur2."""
    with writing(rejects) as out:
        kept_rejects = Rejects(out)
        for numbered in numbered_records(path):
            mine = [(number, line) for number, line in numbered if _partition_fast(line, partitions) == index]
            projector.feed_all(kept_rejects.track(mine), kept_rejects.decode)


def _partition_fast(line: bytes, partitions: int) -> int:
    owner = owner_of(line)
    return fast_partition(owner.encode("utf-8", "surrogatepass"), partitions) if type(owner) is str else 0


def _receive(pipe: Connection) -> dict[str, Any]:
    try:
        message = pipe.recv()
    except EOFError:
        raise RuntimeError("a replay process ended without an answer") from None
    if "error" in message:
        if message["error"].endswith(REVENUE_PAST_LIMIT):
            raise OverflowError(REVENUE_PAST_LIMIT)  # the log's, not the process's: said as one process would
        raise RuntimeError(f"a replay process failed: {message['error']}")
    return message


def _person_order(person: dict[str, Any]) -> tuple[bool, str]:
    """Leads by lead id, then anonymous persons by anonymous id: the order of every process's lines."""
    return (False, person["lead_id"]) if person["lead_id"] is not None else (True, person["anonymous_ids"][0])


def _merge_sorted(parts: list[Path | None], out_path: Path) -> None:
    files = [part.open("rb") for part in parts if part is not None]
    try:
        keyed = [((_person_order(orjson.loads(line)), line) for line in f) for f in files]
        with out_path.open("wb") as out:
            for _, line in heapq.merge(*keyed):
                out.write(line)
    finally:
        for f in files:
            f.close()
