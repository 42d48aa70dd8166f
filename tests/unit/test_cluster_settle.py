"""An answer that spans workers is settled at the watermark of exactly what it counted (SPEC §5, §10).

The cluster protocol asks every worker for the watermark, then for its share settled there
(qualification staleness, days waiting in a stage). A worker that folds later events between the
two rounds counts events past that watermark: the answer must then be asked again at the new one,
never given as counts of one moment settled at an older one. One worker owning the only
partition, its projection fed in process, and the protocol's own `Cluster`: no Kafka here.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from projections import default_definitions
from projections.live import BatchResult, LiveProjection
from projections.projector import Projector
from streams.live.cluster import SETTLE_ROUNDS, Cluster, Peers, Unavailable
from tests.helpers import same_instants
from tests.unit.test_catch_up import DictTable

URL = "http://worker-1"
START = datetime(2026, 8, 1, 9, tzinfo=UTC)


def event(n: int, lead: str, kind: str, days: float) -> bytes:
    at = (START + timedelta(days=days)).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"event_id": f"e{n}", "type": kind, "lead_id": lead, "occurred_at": at, "source": "hubspot", "channel": "email"})


# Leads that reach SAL and wait, and a lead whose later events move the watermark by weeks: at the
# later watermark the SALs are stale and the days waiting in each stage are others.
EARLY = [event(0, "a", "ad_seen", 0), event(1, "a", "content_read", 1), event(2, "a", "contact_made", 2),
         event(3, "b", "ad_seen", 1), event(4, "b", "contact_made", 3), event(5, "c", "content_read", 2)]
LATER = [event(10 + n, "d", "ad_seen" if n == 0 else "content_read", 5 + 7 * n) for n in range(8)]


class OneWorker:
    """A worker owning partition 0 of 1: its projection, its table, and its side of the protocol."""

    def __init__(self) -> None:
        self.defs = default_definitions()
        self.live, self.table = LiveProjection(self.defs), DictTable()
        self.live.rebuild(self.table.items(), {0})
        self.offset = 0
        ready = asyncio.Event()
        ready.set()
        peers = Peers(own_url=lambda: URL, urls=lambda: {URL}, http=lambda: None, read_token=None, ready=ready, owner_url=lambda key: URL)  # type: ignore[arg-type, return-value]
        self.cluster = Cluster(self.live, peers, partitions=1)
        self.folded: list[bytes] = []

    def fold(self, lines: list[bytes]) -> None:
        result, before = BatchResult(), self.live.cluster_watermark
        self.live.process(0, [(self.offset + i, line) for i, line in enumerate(lines)], self.table, result)
        self.live.settle(result, before, self.table)
        self.offset += len(lines)
        self.folded += lines

    def replayed(self) -> dict[str, Any]:
        projector = Projector()
        projector.feed_all(self.folded)
        return projector.report(self.defs)


def answer(worker: OneWorker) -> dict[str, Any]:
    report = asyncio.run(worker.cluster.report())
    return {key: value for key, value in report.items() if key != "definitions"}


def folding_after_the_watermark_round(monkeypatch: pytest.MonkeyPatch) -> OneWorker:
    """A worker holding EARLY that folds LATER once, right after it answers the watermark round:
    a batch landing between the two rounds of an answer."""
    worker = OneWorker()
    worker.fold(EARLY)
    share = worker.cluster.watermark_share

    def then_fold() -> dict[str, Any]:
        answered = share()
        if not worker.folded[len(EARLY):]:
            worker.fold(LATER)
        return answered

    monkeypatch.setattr(worker.cluster, "watermark_share", then_fold)
    return worker


class TestSettledAtWhatItCounted:
    def test_events_folded_between_the_watermark_and_the_shares_are_settled_at_their_own_watermark(self, monkeypatch: pytest.MonkeyPatch) -> None:
        worker = folding_after_the_watermark_round(monkeypatch)
        report = answer(worker)
        assert sum(report["events"].values()) == len(EARLY) + len(LATER)
        assert same_instants(report, worker.replayed())

    def test_a_worker_folding_later_events_before_every_share_gets_a_503_not_a_mixed_answer(self, monkeypatch: pytest.MonkeyPatch) -> None:
        worker = OneWorker()
        worker.fold(EARLY)
        share, later = worker.cluster.partial_share, iter(LATER)

        def fold_first(mark: int | None) -> dict[str, Any]:
            worker.fold([next(later)])  # each round, one event later than any before
            return share(mark)

        monkeypatch.setattr(worker.cluster, "partial_share", fold_first)
        with pytest.raises(Unavailable, match=f"{SETTLE_ROUNDS} rounds"):
            asyncio.run(worker.cluster.report())
        monkeypatch.undo()
        assert same_instants(answer(worker), worker.replayed())  # once it stops moving: the answer

    def test_stages_and_a_stage_s_page_are_settled_too(self, monkeypatch: pytest.MonkeyPatch) -> None:
        worker = folding_after_the_watermark_round(monkeypatch)
        stages = asyncio.run(worker.cluster.stages())
        assert same_instants(stages["watermark"], worker.replayed()["watermark"])
        page = asyncio.run(worker.cluster.stage_leads(worker.defs.stages[0], 0, 10))
        assert all(lead["days_in_stage"] >= 0 for lead in page["leads"]), page
        assert page["total"] == next(row["leads"] for row in stages["stages"] if row["stage"] == worker.defs.stages[0])
