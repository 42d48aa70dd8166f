"""POST /api/events: HTTP ingest for platforms that cannot speak Kafka.

A JSON array or JSON lines, at most 1 MiB and 1000 events a request. Each
valid event is published to journey.events (key = lead id); the answer says,
per event, accepted or rejected with the reason. A 2xx answer means the broker
has acknowledged every accepted event.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from faust.web import Request

from schemas import Rejection, decode

MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 1000
JSON_TYPES = ("application/json",)
LINES_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/json-seq", "text/plain")


class IngestError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": message, **extra}


def bearer_ok(request: Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


Publish = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]  # (key, value) records, acknowledged on return
Answer = tuple[int, dict[str, Any], dict[str, str] | None]  # status, JSON body, extra headers


@dataclass(frozen=True)
class Ingest:
    token: str | None  # None: ingest is off, unless `open_without_token` (demo mode)
    open_without_token: bool
    publish: Publish

    async def handle(self, request: Request) -> Answer:
        try:
            self._authorize(request)
            records = _records(await _body(request), request.content_type)
            results, accepted = _judge(records)
            await self._publish(accepted)
        except IngestError as error:
            headers = {"WWW-Authenticate": 'Bearer realm="journey"'} if error.status == 401 else None
            return error.status, error.body, headers
        return 200, {"accepted": len(accepted), "rejected": len(results) - len(accepted), "results": results}, None

    def _authorize(self, request: Request) -> None:
        if self.token is None:
            if self.open_without_token:
                return
            raise IngestError(403, "ingest is off: start the worker with JOURNEY_INGEST_TOKEN or JOURNEY_INGEST_TOKEN_FILE")
        if not bearer_ok(request, self.token):
            raise IngestError(401, "a valid 'Authorization: Bearer <token>' header is required")

    async def _publish(self, accepted: list[tuple[bytes, bytes]]) -> None:
        try:
            await asyncio.wait_for(self.publish(accepted), timeout=30)
        except Exception as exc:  # noqa: BLE001 - any failure means: not acknowledged, tell the client to retry
            raise IngestError(503, f"the events were not acknowledged by the broker ({type(exc).__name__}); send them again") from None


async def _body(request: Request) -> bytes:
    declared = request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise IngestError(413, f"the body is {declared} bytes; at most {MAX_BODY_BYTES} per request")
    parts, size = [], 0
    while size <= MAX_BODY_BYTES and (part := await request.content.read(64 * 1024)):
        parts.append(part)
        size += len(part)
    body = b"".join(parts)
    if len(body) > MAX_BODY_BYTES:
        raise IngestError(413, f"the body is over {MAX_BODY_BYTES} bytes; send at most {MAX_EVENTS} events per request")
    return body


def _records(body: bytes, content_type: str) -> list[bytes]:
    if content_type in JSON_TYPES:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise IngestError(400, f"the body is not JSON: {exc}") from None
        if not isinstance(parsed, list):
            raise IngestError(400, "a JSON body must be an array of events (or send JSON lines as application/x-ndjson)")
        records = [orjson.dumps(item) for item in parsed]
    elif content_type in LINES_TYPES:
        records = [line.rstrip(b"\r") for line in body.split(b"\n") if line.strip()]
    else:
        raise IngestError(415, f"content type {content_type!r} is not accepted", accepted=[*JSON_TYPES, *LINES_TYPES[:2]])
    if len(records) > MAX_EVENTS:
        raise IngestError(413, f"{len(records)} events in one request; at most {MAX_EVENTS}")
    return records


def _judge(records: list[bytes]) -> tuple[list[dict[str, Any]], list[tuple[bytes, bytes]]]:
    results: list[dict[str, Any]] = []
    accepted: list[tuple[bytes, bytes]] = []
    for index, record in enumerate(records):
        decoded = decode(record)
        if isinstance(decoded, Rejection):
            results.append({"index": index, "status": "rejected", "reason": decoded.reason})
        else:
            results.append({"index": index, "status": "accepted", "event_id": decoded.event_id})
            accepted.append((decoded.lead_id.encode(), record))
    return results, accepted
