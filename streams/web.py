"""The HTTP API (SPEC §5): the report from every worker's partitions, one lead from its owner."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import aiohttp.web
from faust.web import Request, Response, View

from streams.ingest import bearer_ok, ingest
from streams.live import merge_partials

if TYPE_CHECKING:
    from streams.app import JourneyApp

PEER_TIMEOUT = aiohttp.ClientTimeout(total=10)
log = logging.getLogger("journey.web")


class Unavailable(Exception):
    """The cluster cannot answer right now (rebalancing, recovering, a peer down)."""


def register(japp: JourneyApp) -> None:
    app = japp.app
    app.web.web_app.middlewares.append(_json_errors)

    @app.page("/api/events")
    class Events(View):
        async def post(self, request: Request) -> Response:
            return await ingest(japp, self, request)

    @app.page("/api/report")
    async def report(web: View, request: Request) -> Response:
        if (denied := _read_denied(japp, web, request)) is not None:
            return denied
        try:
            return web.json(await cluster_report(japp))
        except Unavailable as exc:
            return _unavailable(web, exc)

    @app.page("/api/leads/{lead_id}")
    @app.table_route(table=japp.leads, match_info="lead_id")
    async def lead(web: View, request: Request, lead_id: str) -> Response:
        if (denied := _read_denied(japp, web, request)) is not None:
            return denied
        data = japp.leads.get(lead_id.encode())
        if data is None:
            return web.json({"error": "unknown lead", "lead_id": lead_id}, status=404)
        try:
            mark = await cluster_watermark(japp)
        except Unavailable as exc:
            return _unavailable(web, exc)
        return web.json(japp.projection.lead(lead_id, data, mark or 0))

    @app.page("/internal/watermark")
    async def watermark(web: View, request: Request) -> Response:
        if (denied := _read_denied(japp, web, request)) is not None:
            return denied
        if not japp.ready.is_set():
            return web.json({"error": "recovering"}, status=503)
        return web.json({"watermark": japp.projection.local_watermark(), "partitions": sorted(japp.projection.partitions)})

    @app.page("/internal/partial")
    async def partial(web: View, request: Request) -> Response:
        if (denied := _read_denied(japp, web, request)) is not None:
            return denied
        if not japp.ready.is_set():
            return web.json({"error": "recovering"}, status=503)
        mark = request.query.get("watermark")
        return web.json(japp.projection.partial(int(mark) if mark and mark.lstrip("-").isdigit() else None))

    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        return web.json({"status": "ok", "ready": japp.ready.is_set(), "partitions": sorted(japp.projection.partitions)})

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        body, content_type = japp.metrics.render()
        return web.bytes(body, content_type=content_type.replace("; charset=utf-8", ""))


async def cluster_watermark(japp: JourneyApp) -> int | None:
    answers = await _ask_all(japp, "/internal/watermark", local=_local_watermark)
    marks = [a["watermark"] for a in answers if a["watermark"] is not None]
    return max(marks) if marks else None


async def cluster_report(japp: JourneyApp) -> dict[str, Any]:
    mark = await cluster_watermark(japp)
    query = "" if mark is None else f"?watermark={mark}"
    partials = await _ask_all(japp, f"/internal/partial{query}", local=lambda j: j.projection.partial(mark))
    owned = [p for part in partials for p in part["partitions"]]
    if sorted(owned) != list(range(japp.settings.partitions)):
        raise Unavailable(f"partitions owned {sorted(owned)} do not cover 0..{japp.settings.partitions - 1} once each")
    return merge_partials(japp.defs, partials)


def _local_watermark(japp: JourneyApp) -> dict[str, Any]:
    return {"watermark": japp.projection.local_watermark(), "partitions": sorted(japp.projection.partitions)}


async def _ask_all(japp: JourneyApp, path: str, local: Any) -> list[dict[str, Any]]:
    if not japp.ready.is_set():
        raise Unavailable("this worker is recovering its tables")
    own = japp.app.conf.canonical_url.human_repr().rstrip("/")
    peers = {str(url).rstrip("/") for url in japp.app.assignor.tables_metadata()} - {own}
    answers = await asyncio.gather(*(_ask(japp, peer + path) for peer in sorted(peers)))
    return [local(japp), *answers]


async def _ask(japp: JourneyApp, url: str) -> dict[str, Any]:
    token = japp.settings.read_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}
    try:
        async with japp.app.http_client.get(url, timeout=PEER_TIMEOUT, headers=headers) as response:
            if response.status != 200:
                raise Unavailable(f"{url} answered {response.status}")
            return await response.json()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise Unavailable(f"{url}: {type(exc).__name__}") from None


def _read_denied(japp: JourneyApp, web: View, request: Request) -> Response | None:
    token = japp.settings.read_token
    if token is None or japp.settings.demo or bearer_ok(request, token.get_secret_value()):
        return None
    return web.json(
        {"error": "a valid 'Authorization: Bearer <token>' header is required (JOURNEY_READ_TOKEN)"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="journey"'},
    )


@aiohttp.web.middleware
async def _json_errors(request: aiohttp.web.Request, handler: Any) -> aiohttp.web.StreamResponse:
    """Every error answer is JSON, including aiohttp's own (no such route, bad method) and crashes."""
    try:
        response = await handler(request)
    except aiohttp.web.HTTPException as exc:
        response = exc
    except Exception:  # noqa: BLE001 - a request must never take the worker down or leak a traceback
        log.exception("error answering %s %s", request.method, request.path.split("/api/leads/")[0])
        return aiohttp.web.json_response({"error": "internal error"}, status=500)
    if response.status >= 400 and response.content_type != "application/json":
        return aiohttp.web.json_response({"error": response.reason or "error"}, status=response.status, headers={"Allow": response.headers.get("Allow", "")} if response.status == 405 else None)
    return response


def _unavailable(web: View, exc: Exception) -> Response:
    return web.json({"error": "unavailable, try again shortly", "detail": str(exc)}, status=503, headers={"Retry-After": "1"})
