"""HTTP ingest for platforms that cannot speak Kafka: POST /api/events and /api/ingest/segment.

`/api/events` takes journey events (a JSON array, or JSON lines) and
CloudEvents 1.0 in structured JSON mode (`application/cloudevents+json`, one;
`application/cloudevents-batch+json`, an array). `/api/ingest/segment` takes
Segment calls (one, or `{"batch": [...]}`). At most 1 MiB and 1000 events a
request. Each accepted event is published to journey.events (key = lead id) as
the journey event it maps to (`schemas.platforms`); the answer says, per
event, accepted, rejected with the reason, or (Segment calls other than track)
ignored. A 2xx answer means the broker has acknowledged every accepted event.

A broker that has not acknowledged them within `timeout` (JOURNEY_INGEST_TIMEOUT,
10 s by default: well inside the usual 15-30 s of an HTTP client) gets the
request a 503 with the reason and Retry-After, never a hang. Some of its events
may still reach the topic later (the producer keeps trying): at-least-once, so
the sender sends the request again, and an event that arrives twice counts once.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from faust.web import Request

from schemas import Rejection, decode, owner
from schemas.platforms import CLOUDEVENT_FIELDS, IGNORED, UNMAPPED, SegmentEvents, from_cloudevent, from_segment, segment_fields, translate

MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 1000
JSON_TYPES = ("application/json",)
LINES_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json-seq", "text/plain")
CLOUDEVENT_TYPE = "application/cloudevents+json"
CLOUDEVENTS_BATCH_TYPE = "application/cloudevents-batch+json"


class IngestError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": message, **extra}


def bearer_ok(request: Request, token: str) -> bool:
    return bearer_matches(request.headers.get("Authorization"), token)


def bearer_matches(header: str | None, token: str) -> bool:
    """`Authorization: Bearer TOKEN` (the scheme in any case, RFC 7235), compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


Publish = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]  # (key, value) records, acknowledged on return
Answer = tuple[int, dict[str, Any], dict[str, str] | None]  # status, JSON body, extra headers


@dataclass(frozen=True)
class Item:
    """One event of a request: the record to judge (or the verdict already reached), and how its
    journey fields are named in the format it came in."""

    value: bytes | dict[str, Any] | Rejection | str  # str: IGNORED
    fields: Mapping[str, str] | None = None  # journey field -> the sender's name for it
    optional_prefix: str = ""  # where the sender's optional journey fields sit
    name: str | None = None  # a Segment event name, answered with an unmapped event


@dataclass(frozen=True)
class Ingest:
    token: str | None  # None: ingest is off, unless `open_without_token` (demo mode)
    open_without_token: bool
    publish: Publish
    segment_events: SegmentEvents
    timeout: float = 10.0  # seconds to wait for the broker's acknowledgements

    async def handle(self, request: Request) -> Answer:
        """POST /api/events: journey events, or CloudEvents."""
        return await self._handle(request, lambda body: _items(body, request.content_type))

    async def handle_segment(self, request: Request) -> Answer:
        """POST /api/ingest/segment: Segment calls."""
        return await self._handle(request, lambda body: _segment_items(body, request.content_type, self.segment_events), segment=True)

    async def _handle(self, request: Request, parse: Callable[[bytes], list[Item]], segment: bool = False) -> Answer:
        try:
            self._authorize(request)
            items = parse(await _body(request))
            if len(items) > MAX_EVENTS:
                raise IngestError(413, f"{len(items)} events in one request; at most {MAX_EVENTS}")
            results, accepted = _judge(items)
            await self._publish(accepted)
        except IngestError as error:
            headers = {"WWW-Authenticate": 'Bearer realm="journey"'} if error.status == 401 else {"Retry-After": "1"} if error.status == 503 else None
            return error.status, error.body, headers
        counts = {status: sum(1 for r in results if r["status"] == status) for status in ("accepted", "rejected", IGNORED)}
        if not segment:
            counts.pop(IGNORED)
        return 200, {**counts, "results": results}, None

    def _authorize(self, request: Request) -> None:
        if self.token is None:
            if self.open_without_token:
                return
            raise IngestError(403, "ingest is off: start the worker with JOURNEY_INGEST_TOKEN or JOURNEY_INGEST_TOKEN_FILE")
        if not bearer_ok(request, self.token):
            raise IngestError(401, "a valid 'Authorization: Bearer <token>' header is required")

    async def _publish(self, accepted: list[tuple[bytes, bytes]]) -> None:
        """Publish and wait for the acknowledgements, at most `timeout`. The wait is given up, not the
        sending: cancelled, the producer's delivery futures would be cancelled under Faust, whose
        callbacks then log a traceback per record, and the records go out anyway."""
        sending = asyncio.ensure_future(self.publish(accepted))
        sending.add_done_callback(_outcome_seen)
        try:
            await asyncio.wait_for(asyncio.shield(sending), timeout=self.timeout)
        except TimeoutError:
            raise IngestError(503, f"the broker did not acknowledge the events within {self.timeout:g} s; send them again (an event that arrives twice counts once)") from None
        except Exception as exc:  # noqa: BLE001 - any failure means: not acknowledged, tell the client to retry
            raise IngestError(503, f"the events were not acknowledged by the broker ({type(exc).__name__}); send them again") from None


def _outcome_seen(sending: asyncio.Future[None]) -> None:
    """A send given up on may still fail later: its exception is taken here, not logged as never retrieved."""
    if not sending.cancelled():
        sending.exception()


async def _body(request: Request) -> bytes:
    declared = request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise IngestError(413, f"the body is {declared} bytes; at most {MAX_BODY_BYTES} per request")
    body = await read_bounded(request, MAX_BODY_BYTES)
    if len(body) > MAX_BODY_BYTES:
        raise IngestError(413, f"the body is over {MAX_BODY_BYTES} bytes; send at most {MAX_EVENTS} events per request")
    return body


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, read until its end or past `limit` bytes (the caller refuses a longer one): one
    read may return only part of a body, so it is read until the stream ends."""
    parts, size = [], 0
    while size <= limit and (part := await request.content.read(64 * 1024)):
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestError(400, f"the body is not JSON: {exc}") from None


def _items(body: bytes, content_type: str) -> list[Item]:
    if content_type in JSON_TYPES:
        parsed = _json(body)
        if not isinstance(parsed, list):
            raise IngestError(400, "a JSON body must be an array of events (or send JSON lines as application/x-ndjson)")
        return [Item(orjson.dumps(item)) for item in parsed]
    if content_type in LINES_TYPES:
        return [Item(line.rstrip(b"\r")) for line in body.split(b"\n") if line.strip()]
    if content_type == CLOUDEVENT_TYPE:
        return [_cloudevent(_json(body))]
    if content_type == CLOUDEVENTS_BATCH_TYPE:
        parsed = _json(body)
        if not isinstance(parsed, list):
            raise IngestError(400, f"a {CLOUDEVENTS_BATCH_TYPE} body must be an array of CloudEvents (send one as {CLOUDEVENT_TYPE})")
        return [_cloudevent(item) for item in parsed]
    accepted = [*JSON_TYPES, *LINES_TYPES[:2], CLOUDEVENT_TYPE, CLOUDEVENTS_BATCH_TYPE]
    raise IngestError(415, f"content type {content_type!r} is not accepted", accepted=accepted)


def _cloudevent(item: Any) -> Item:
    return Item(from_cloudevent(item), CLOUDEVENT_FIELDS, "data.")


def _segment_items(body: bytes, content_type: str, events: SegmentEvents) -> list[Item]:
    if content_type not in JSON_TYPES:
        raise IngestError(415, f"content type {content_type!r} is not accepted: send Segment calls as JSON", accepted=list(JSON_TYPES))
    parsed = _json(body)
    if isinstance(parsed, dict) and "batch" in parsed:
        calls = parsed["batch"]
        if not isinstance(calls, list):
            raise IngestError(400, '"batch" must be an array of Segment calls')
    elif isinstance(parsed, dict):
        calls = [parsed]
    else:
        raise IngestError(400, 'send one Segment call (an object) or {"batch": [calls]}')
    items = []
    for call in calls:
        name = call.get("event") if isinstance(call, dict) else None
        items.append(Item(from_segment(call, events), segment_fields(call), "", name if isinstance(name, str) else None))
    return items


def _judge(items: list[Item]) -> tuple[list[dict[str, Any]], list[tuple[bytes, bytes]]]:
    results: list[dict[str, Any]] = []
    accepted: list[tuple[bytes, bytes]] = []
    for index, item in enumerate(items):
        value = item.value
        if isinstance(value, str):  # IGNORED
            results.append({"index": index, "status": IGNORED})
            continue
        if isinstance(value, Rejection):
            reason = value.reason
        else:
            record = value if isinstance(value, bytes) else orjson.dumps(value)
            decoded = decode(record)
            if not isinstance(decoded, Rejection):
                results.append({"index": index, "status": "accepted", "event_id": decoded.event_id})
                accepted.append((owner(decoded).encode(), record))
                continue
            reason = decoded.reason if item.fields is None else translate(decoded.reason, item.fields, item.optional_prefix)
        result = {"index": index, "status": "rejected", "reason": reason}
        if reason == UNMAPPED and item.name is not None:
            result["event"] = item.name
        results.append(result)
    return results, accepted
