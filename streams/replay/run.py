"""`journey replay`: fold a log into projections and report, as SPEC §5 describes."""

from __future__ import annotations

import gc
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from projections import Definitions, Projector
from projections.projector import replay_projector
from streams.kafka.address import KafkaSource
from streams.replay.parallel import partitions_for, replay_parallel
from streams.replay.rejects import Rejects, check_count, writing
from streams.replay.sources import InputError, Source, numbered_records, open_records


@dataclass(frozen=True)
class ReplayRequest:
    source: Source
    definitions: Definitions
    baseline: Definitions | None = None
    leads_out: Path | None = None
    partitions: int | None = None  # processes for a file; None: one per core for a large file
    rejects: Path | None = None  # one JSON line per invalid record (streams/replay/rejects.py)


def _parallel(request: ReplayRequest, partitions: int) -> dict[str, Any]:
    assert isinstance(request.source, Path)
    if request.leads_out is not None:
        _check_writable(request.leads_out)
    return replay_parallel(request.source, request.definitions, request.baseline, request.leads_out, partitions, request.rejects)


def _check_writable(path: Path, flag: str = "--leads-out") -> None:
    try:
        path.open("ab").close()
    except OSError as exc:
        raise InputError(f"{flag} {path}: cannot write: {exc.strerror or exc}") from None


def replay(request: ReplayRequest) -> dict[str, Any]:
    """The report (or, with a baseline, the comparison) of the whole log."""
    if request.rejects is not None:
        _check_writable(request.rejects, "--rejects")
    if request.baseline is not None and request.baseline.identity != request.definitions.identity:
        return _other_persons(request)
    if isinstance(request.source, Path) and request.partitions != 1:
        partitions = request.partitions or partitions_for(request.source)
        if partitions > 1:
            return _parallel(request, partitions)
    projector = replay_projector()
    if request.rejects is None:
        projector.feed_all(_records(request.source))
    else:
        _feed_keeping_rejects(projector, request.source, request.rejects)
    gc.freeze()  # the lead states stay to the end: later collections need not walk them again
    if request.leads_out is not None:
        write_leads(request.leads_out, projector, request.definitions)
    if request.baseline is not None:
        return projector.comparison(request.baseline, request.definitions)
    return projector.report(request.definitions)


def _other_persons(request: ReplayRequest) -> dict[str, Any]:
    """A comparison of definitions whose identity options differ: each side has persons of its own
    (SPEC §9), made from one fold by the reference projector, in one process."""
    projector = Projector()
    if request.rejects is None:
        projector.feed_all(_records(request.source))
    else:
        _feed_keeping_rejects(projector, request.source, request.rejects)
    if request.leads_out is not None:
        write_leads(request.leads_out, projector, request.definitions)
    assert request.baseline is not None
    return projector.comparison(request.baseline, request.definitions)


def write_leads(path: Path, projector: Projector, defs: Definitions) -> None:
    try:
        with path.open("wb") as out:
            for record in projector.lead_records(defs):
                out.write(orjson.dumps(record) + b"\n")
    except OSError as exc:
        raise InputError(f"--leads-out {path}: cannot write: {exc.strerror or exc}") from None


def _feed_keeping_rejects(projector: Projector, source: Source, path: Path) -> None:
    """The fold of the whole log, each invalid record written to `path` (streams/replay/rejects.py)."""
    with writing(path) as out:
        rejects = Rejects(out, ordered=not isinstance(source, KafkaSource))
        for placed in _placed(source):
            projector.feed_all(rejects.track(placed), rejects.decode)
        rejects.finish()
    check_count(rejects.count, projector.counts.invalid)


def _placed(source: Source) -> Iterable[Iterable[tuple[Any, bytes]]]:
    """The records in chunks, each with its place: its line number, or (partition, offset) in Kafka."""
    if isinstance(source, KafkaSource):
        from streams.kafka.reader import kafka_messages

        return [(((m.partition, m.offset), m.value or b"") for m in kafka_messages(source))]  # one chunk: the whole topic, as read
    return numbered_records(source)


def _records(source: Source) -> Iterable[bytes]:
    if isinstance(source, KafkaSource):
        from streams.kafka.reader import kafka_records  # a Kafka client costs a file replay 0.16 s to import

        return kafka_records(source)
    return open_records(source)
