"""Synthetic customer journeys: realistic enough to exercise every rule, deterministic per seed.

Leads start at random times, skip stages, drop out, read content a few times,
are contacted or reach out themselves. The log also carries what real
platforms send: events reported late and out of order, other UTC offsets,
resent duplicates, unknown fields and a few invalid records.

With `anonymous`, that share of journeys starts anonymous (SPEC §9): the ads are
seen under a cookie id, an `identified` event links it to the lead when the visitor
first reads or gets in touch, and later events carry the lead id (now and then both).
A few cookies are shared by two leads, and a few events carry an ignored id.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import orjson

HOUR = 3600.0
DEFAULT_START = datetime(2026, 8, 1, tzinfo=UTC)
SOURCES = ("hubspot", "marketo", "site")
CHANNELS = ("social", "search", "display", "email", "webinar", "referral")
CONTACT_METHODS = ("mailing", "phone", "email", "form", "chat")
OFFSETS = (timedelta(hours=1), timedelta(hours=2), timedelta(hours=-5), timedelta(hours=9))

BAD_RECORDS: tuple[bytes, ...] = (
    b'{"event_id": "bad-1", "lead_id": "L-bad", "type": "webinar_joined", "occurred_at": "2026-09-01T10:00:00Z"}',
    b'{"event_id": "bad-2", "lead_id": "L-bad", "type": "ad_seen", "occurred_at": 1788000000}',
    b'{"event_id": "bad-3", "lead_id": "L-bad", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00"}',
    b'{"event_id": "bad-4", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z"}',
    b'{"event_id": "bad-5", "lead_id": "L-bad", "type": "contact_made", "inbound": "yes", "occurred_at": "2026-09-01T10:00:00Z"}',
    b'{"event_id": "bad-6", "lead_id": "L-bad", "type": "purchase", "amount": -5, "occurred_at": "2026-09-01T10:00:00Z"}',
    b"not json at all",
    b"[1, 2, 3]",
    b'{"event_id": "x", "type": "ad_seen", ',
)


class JourneyGenerator:
    """Events of `leads` leads whose journeys start within `days` days of `start`; with `until`, the
    journeys are cut there (what has not happened yet is not sent: the demo's journeys end now)."""

    def __init__(
        self, leads: int, seed: int, days: int = 90, start: datetime = DEFAULT_START, prefix: str = "L", until: datetime | None = None,
        anonymous: float = 0.0,
    ) -> None:
        self.leads = leads
        self.days = days
        self.start = start
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.until = None if until is None else (until - start).total_seconds()
        self.anonymous = anonymous
        self.identity_rng = random.Random(seed * 7919 + 1)  # apart: a log without anonymous journeys is as it always was
        self._last_cookie: str | None = None

    @classmethod
    def ending(cls, leads: int, seed: int, days: int, end: datetime, anonymous: float = 0.0) -> JourneyGenerator:
        """Journeys that start within the `days` days before `end` and are cut there, as if read
        at `end`: the watermark falls just before it, so recent leads are still fresh (MQL, not
        stale SAL). A journey runs on for months after it starts (upsells), so a log that merely
        starts `days` before today would reach far past it."""
        return cls(leads, seed, days, end - timedelta(days=days), until=end, anonymous=anonymous)

    def records(self) -> Iterator[bytes]:
        """The whole log in the order it reaches Kafka, as JSONL lines without newlines.

        Leads are started in time order and their records held in a heap until
        no later lead can precede them, so memory follows the open journeys.
        """
        window = self.days * 24 * HOUR
        starts = sorted((self.rng.uniform(0, window), lead) for lead in range(self.leads))
        pending: list[tuple[float, int, bytes]] = []
        order = itertools.count()
        for start, lead in starts:
            while pending and pending[0][0] <= start:
                yield heapq.heappop(pending)[2]
            for arrives, line in self.lead_records(lead, start):
                heapq.heappush(pending, (arrives, next(order), line))
        while pending:
            yield heapq.heappop(pending)[2]

    def lead_records(self, lead: int, start: float) -> Iterator[tuple[float, bytes]]:
        """One lead's records with the time they reach the log (seconds after `self.start`)."""
        rng = self.rng
        lead_id = f"{self.prefix}-{lead:06d}"
        events: Iterable[tuple[dict[str, object], float]]
        if self.anonymous and self.identity_rng.random() < self.anonymous:
            steps = list(self._journey(start))
            made = [self._event(lead_id, seq, kind, at, extra) for seq, (kind, at, extra) in enumerate(steps)]
            events = self._anonymous_first(lead_id, made, [at for _, at, _ in steps])
        else:  # made as the loop goes, drawing from rng in the order this generator always has
            events = ((self._event(lead_id, seq, kind, at, extra), at) for seq, (kind, at, extra) in enumerate(self._journey(start)))
        for event, at in events:
            if self.until is not None and at > self.until:
                return
            line = orjson.dumps(event)
            arrives = at + (rng.uniform(1, 120) * HOUR if rng.random() < 0.05 else 0.0)  # reported late
            yield arrives, line
            if rng.random() < 0.02:  # resent by the platform
                yield arrives + rng.uniform(0, 48) * HOUR, line
            if rng.random() < 0.01:
                yield arrives, rng.choice(BAD_RECORDS)

    def _anonymous_first(self, lead_id: str, events: list[dict[str, object]], times: list[float]) -> list[tuple[dict[str, object], float]]:
        """A journey whose ads were seen anonymously: under a cookie until the visitor first reads or gets
        in touch, with an `identified` event linking the cookie to the lead just before that."""
        rng = self.identity_rng
        cookie = self._last_cookie if self._last_cookie is not None and rng.random() < 0.02 else f"a-{lead_id}-{rng.getrandbits(24):06x}"  # a shared device
        self._last_cookie = cookie
        result: list[tuple[dict[str, object], float]] = []
        known = False
        for event, at in zip(events, times, strict=True):
            if not known and event["type"] != "ad_seen":
                link = {"event_id": f"{lead_id}-id-{rng.getrandbits(32):08x}", "type": "identified", "lead_id": lead_id, "anonymous_id": cookie,
                        "occurred_at": self._time(max(0.0, at - 60))}
                result.append((link, max(0.0, at - 60)))
                known = True
            if known:
                if rng.random() < 0.1:
                    event["anonymous_id"] = cookie  # the platform still sends the cookie: a link as well
                result.append((event, at))
                continue
            anonymous = {key: value for key, value in event.items() if key != "lead_id"}
            anonymous["anonymous_id"] = cookie if rng.random() > 0.01 else "undefined"  # an ignored id now and then
            result.append((anonymous, at))
        return result

    def _journey(self, t: float) -> Iterator[tuple[str, float, dict[str, object]]]:
        rng = self.rng
        if rng.random() < 0.9:
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                yield "ad_seen", t, {}
                t += rng.expovariate(1 / (30 * HOUR))
        if rng.random() < 0.1:  # wants to buy at once
            yield "purchase", t, self._money()
            return
        if rng.random() < 0.35:
            return
        for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
            yield "content_read", t, {}
            t += rng.expovariate(1 / (40 * HOUR))
        if rng.random() < 0.4:
            return
        for _ in range(rng.choice((1, 1, 2))):
            yield "contact_made", t, {"inbound": rng.random() < 0.5, "method": rng.choice(CONTACT_METHODS)}
            t += rng.expovariate(1 / (72 * HOUR))
        if rng.random() < 0.45:
            return
        yield "negotiation", t, {}
        t += rng.expovariate(1 / (96 * HOUR))
        if rng.random() < 0.4:
            return
        yield "purchase", t, self._money()
        while rng.random() < 0.4:
            t += rng.expovariate(1 / (240 * HOUR))
            yield "upsell", t, self._money()

    def _event(self, lead_id: str, seq: int, kind: str, at: float, extra: dict[str, object]) -> dict[str, object]:
        rng = self.rng
        event: dict[str, object] = {
            "event_id": f"{lead_id}-{seq}-{rng.getrandbits(32):08x}",
            "type": kind,
            "lead_id": lead_id,
            "occurred_at": self._time(at),
            "source": rng.choice(SOURCES),
            "channel": rng.choice(CHANNELS),
            "campaign": f"c{rng.randint(1, 12)}",
        }
        event.update(extra)
        roll = rng.random()
        if roll < 0.1:
            event["properties"] = {"utm_source": rng.choice(CHANNELS), "score": rng.randint(0, 100)}
        elif roll < 0.13:
            event["future_field"] = {"nested": [1, 2, 3]}  # consumers must ignore unknown fields
        return event

    def _time(self, at: float) -> str:
        moment = self.start + timedelta(seconds=at)
        roll = self.rng.random()
        if roll < 0.2:
            local = moment.astimezone(timezone(self.rng.choice(OFFSETS)))
            return local.replace(microsecond=0).isoformat()
        if roll < 0.4:
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def _money(self) -> dict[str, object]:
        return {"amount": round(self.rng.uniform(100, 5000), 2), "currency": "EUR"}
