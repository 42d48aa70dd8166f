"""The cluster protocol: an answer that spans workers asks every worker for its share.

Each worker answers for the partitions it owns (`*_share`, over HTTP to its
peers and directly to itself). An answer is given only when the shares cover
every partition exactly once; otherwise the cluster is rebalancing or
recovering, and the caller hears `Unavailable`.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from projections import Definitions
from projections.definitions import DAY_MICROS
from projections.identity import anonymous_of
from projections.live import LiveProjection
from projections.report import Changes, build_comparison
from projections.shadow import candidate
from projections.shadow import changes as shadow_changes
from schemas import format_time
from streams.kafka.definitions import digest_of
from streams.live.partial import Partial, merge

PEER_TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_PAGE_END = 100_000
SETTLE_ROUNDS = 5  # rounds of shares an answer may take while workers fold events past its watermark


class Unavailable(Exception):
    """The cluster cannot answer right now (rebalancing, recovering, a peer down)."""


class NoShadow(Exception):
    """SPEC §11: the cluster counts no shadow definitions (a 404)."""


class Disagreement(Unavailable):
    """The workers run different definitions or shadows (a rollout or a switch under way, SPEC §7,
    §11): any answer would mix them. Keyed by the definitions' digest, with " shadow DIGEST" after
    it when a worker counts one."""

    def __init__(self, workers_by_digest: dict[str, list[str]]) -> None:
        self.workers_by_digest = workers_by_digest
        runs = "; ".join(f"{digest} on {', '.join(workers)}" for digest, workers in sorted(workers_by_digest.items()))
        super().__init__(f"the workers run different definitions ({runs}); the numbers come back once they all run the same")


@dataclass(frozen=True)
class Peers:
    """What the protocol needs of the worker's group: who the others are and how to reach them."""

    own_url: Callable[[], str]
    urls: Callable[[], set[str]]  # every worker of the group, this one included
    http: Callable[[], aiohttp.ClientSession]
    read_token: str | None  # passed on to peers when reads are protected
    ready: asyncio.Event  # set once this worker's tables are recovered and its projection rebuilt
    owner_url: Callable[[str], str]  # the worker whose partitions hold an owner (a lead id or an anonymous id)


class Cluster:
    def __init__(self, projection: LiveProjection, peers: Peers, partitions: int) -> None:
        self.projection = projection
        self.peers = peers
        self.partitions = partitions

    @property
    def defs(self) -> Definitions:
        """The definitions this worker counts under now (they change at a switch, SPEC §11)."""
        return self.projection.defs

    # -- answers that span the cluster ------------------------------------------------------

    async def watermark(self) -> int | None:
        answers = await self._ask_all("/internal/watermark", self.watermark_share)
        marks = [a["watermark"] for a in answers if a["watermark"] is not None]
        return max(marks) if marks else None

    async def report(self) -> dict[str, Any]:
        _, answers = await self._settled("/internal/partial", self.partial_share)
        defs = self._agreed(answers)
        return {**merge(defs, [Partial.decode(defs, a) for a in answers]), "definitions": defs.digest}

    async def shadow(self) -> dict[str, Any]:
        """SPEC §11: replay's comparison of the current definitions (baseline) and the shadow
        (candidate) over every worker's persons, at one watermark. NoShadow when there is none."""
        _, answers = await self._settled("/internal/shadow", self.shadow_share)
        defs, shadow = self._agreed(answers), self.projection.shadow_defs
        if shadow is None or any(a["shadow"] != shadow.digest for a in answers):
            raise NoShadow("there are no shadow definitions: PUT /api/definitions/shadow records one")
        changes = Changes()
        for answer in answers:
            changes.stages.update(answer["stage_changes"])
            changes.qualifications.update(answer["qualification_changes"])
        baseline = merge(defs, [Partial.decode(defs, a["baseline"]) for a in answers])
        candidate = merge(shadow, [Partial.decode(shadow, a["candidate"]) for a in answers])
        return {**build_comparison(baseline, candidate, changes), "definitions": {"current": defs.digest, "shadow": shadow.digest}}

    async def stages(self) -> dict[str, Any]:
        mark, answers = await self._settled("/internal/stages", self.stages_share)
        return self._stage_rows(mark, answers)

    def _stage_rows(self, mark: int | None, answers: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [{"stage": name, "leads": 0, "stale": 0} for name in self.defs.stages]
        for answer in answers:
            for row, counts in zip(rows, answer["stages"], strict=True):
                row["leads"] += counts["leads"]
                row["stale"] += counts["stale"]
        days = self.defs.sal_stale_after_micros / DAY_MICROS
        return {"watermark": None if mark is None else format_time(mark), "stale_after_days": days, "stages": rows}

    async def stage_leads(self, stage: str, offset: int, limit: int) -> dict[str, Any]:
        index = self.defs.stages.index(stage)
        upto = offset + limit
        mark, answers = await self._settled(f"/internal/stage-leads?stage={index}&upto={upto}", lambda mark: self.stage_leads_share(index, upto))
        merged = list(heapq.merge(*([tuple(item) for item in a["leads"]] for a in answers)))[offset:upto]
        counted = all("in_stage" in a for a in answers)  # a peer of an older release does not say: a round of stages does
        total = sum(a["in_stage"] for a in answers) if counted else (await self.stages())["stages"][index]["leads"]
        leads = [
            {**_person(key), "stage_entered_at": format_time(entered), "days_in_stage": None if mark is None else round((mark - entered) / DAY_MICROS, 1)}
            for entered, key in merged
        ]
        return {"stage": stage, "total": total, "offset": offset, "limit": limit, "leads": leads}

    async def held_person(self, lead_id: str, anonymous_id: str, local: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
        """The person an anonymous id is part of, as the worker of its winning lead's partition knows
        it (`local` when that is this worker); None when that lead has not heard of it yet."""
        owner = self.peers.owner_url(lead_id).rstrip("/")
        if owner == self.peers.own_url().rstrip("/"):
            return local()
        query = urlencode({"anonymous": anonymous_id})
        try:
            return await self._ask(f"{owner}/internal/held/{quote(lead_id, safe='')}?{query}")
        except Unavailable as exc:
            if str(exc).endswith(" answered 404"):
                return None
            raise

    # -- this worker's shares ---------------------------------------------------------------

    # Every share names the definitions it was computed with, and the worker: see _agree.

    def watermark_share(self) -> dict[str, Any]:
        return self._share({"watermark": self.projection.local_watermark(), "partitions": sorted(self.projection.partitions)})

    def partial_share(self, mark: int | None) -> dict[str, Any]:
        return self._share(Partial.of(self.projection, mark).encode())

    def shadow_share(self, mark: int | None) -> dict[str, Any]:
        projection = self.projection
        if projection.shadow_defs is None:
            return self._share({"partitions": sorted(projection.partitions)})
        changes = shadow_changes(projection, mark)
        return self._share({
            "partitions": sorted(projection.partitions),
            "baseline": Partial.of(projection, mark).encode(),
            "candidate": Partial.of(candidate(projection), mark).encode(),
            "stage_changes": dict(changes.stages), "qualification_changes": dict(changes.qualifications),
        })

    def stages_share(self, mark: int | None) -> dict[str, Any]:
        return self._share({"partitions": sorted(self.projection.partitions), "stages": self.projection.stage_counts(mark)})

    def stage_leads_share(self, stage: int, upto: int) -> dict[str, Any]:
        projection = self.projection
        leads = projection.stage_leads(stage, min(upto, MAX_PAGE_END))
        return self._share({"partitions": sorted(projection.partitions), "leads": leads, "in_stage": projection.stage_counts(None)[stage]["leads"]})

    def _share(self, body: dict[str, Any]) -> dict[str, Any]:
        """A share names its definitions, shadow and worker (see `_agree`), and the latest event time
        among what it counted (see `_settled`)."""
        projection = self.projection
        return {
            **body, "definitions": self.defs.digest, "shadow": digest_of(projection.shadow_defs), "worker": self.peers.own_url().rstrip("/"),
            "local_watermark": projection.local_watermark(),
        }

    def _agreed(self, answers: list[dict[str, Any]]) -> Definitions:
        """The definitions every share was computed with (`_agree` checked they are one), when this
        worker still runs them: a switch between its share and now is a 503, not a mixed answer."""
        defs = self.defs
        if answers[0]["definitions"] != defs.digest:
            raise Unavailable(f"this worker switched definitions while answering ({answers[0]['definitions']} -> {defs.digest})")
        return defs

    # -- asking -----------------------------------------------------------------------------

    async def _settled(self, path: str, share: Callable[[int | None], dict[str, Any]]) -> tuple[int | None, list[dict[str, Any]]]:
        """Every worker's share, covering every partition, settled at the cluster's watermark: the
        latest event time among everything the shares counted (SPEC §5: an answer is the report of
        exactly what it counted, its staleness and days waiting at that watermark). The watermark
        is asked first; a worker that folds later events before its share is made moves it on,
        and the shares are asked again at the new one."""
        mark = await self.watermark()
        for _ in range(SETTLE_ROUNDS):
            query = "" if mark is None else f"{'&' if '?' in path else '?'}watermark={mark}"
            answers = await self._ask_all(path + query, lambda: share(mark))  # noqa: B023 - called before the loop goes on
            self._check_coverage(answers)
            marks = [answer.get("local_watermark", mark) for answer in answers]  # a peer of an older release says nothing: as asked
            latest = max((m for m in marks if m is not None), default=None)
            if latest == mark:
                return mark, answers
            mark = latest
        raise Unavailable(f"the workers folded later events in each of {SETTLE_ROUNDS} rounds of shares; ask again")

    def _check_coverage(self, answers: list[dict[str, Any]]) -> None:
        owned = sorted(p for answer in answers for p in answer["partitions"])
        if owned != list(range(self.partitions)):
            raise Unavailable(f"partitions owned {owned} do not cover 0..{self.partitions - 1} once each")

    async def _ask_all(self, path: str, local: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
        if not self.peers.ready.is_set():
            raise Unavailable("this worker is recovering its tables")
        own = self.peers.own_url().rstrip("/")
        others = {url.rstrip("/") for url in self.peers.urls()} - {own}
        answers = [local(), *await asyncio.gather(*(self._ask(peer + path) for peer in sorted(others)))]
        _agree(answers)
        return answers

    async def _ask(self, url: str) -> dict[str, Any]:
        token = self.peers.read_token
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        session = self.peers.http()
        try:
            async with session.get(url, timeout=PEER_TIMEOUT, headers=headers) as response:
                if response.status != 200:
                    raise Unavailable(f"{url} answered {response.status}")
                return await response.json()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unavailable(f"{url}: {type(exc).__name__}") from None
        except RuntimeError:
            if session.closed:  # this worker is stopping: Faust closed its HTTP client first
                raise Unavailable("this worker is stopping") from None
            raise


def _person(key: str) -> dict[str, str | None]:
    """A person on the board: a lead by its id; an anonymous person (SPEC §9) by its anonymous id, lead_id null."""
    anonymous_id = anonymous_of(key)
    return {"lead_id": key} if anonymous_id is None else {"lead_id": None, "anonymous_id": anonymous_id}


def _agree(answers: list[dict[str, Any]]) -> None:
    """Shares computed with different definitions or shadows are never combined (SPEC §7, §11: never a mixed answer)."""
    workers_by_digest: dict[str, list[str]] = {}
    for answer in answers:
        runs = str(answer.get("definitions", "unknown")) + (f" shadow {answer['shadow']}" if answer.get("shadow") else "")
        workers_by_digest.setdefault(runs, []).append(str(answer.get("worker", "?")))
    if len(workers_by_digest) > 1:
        raise Disagreement({digest: sorted(workers) for digest, workers in workers_by_digest.items()})


def watermark_param(query: Any) -> int | None:
    mark = query.get("watermark", "")
    return int(mark) if mark.lstrip("-").isdigit() else None
