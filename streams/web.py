"""The HTTP API (SPEC §5): the report from every worker's partitions, one lead from its owner."""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import aiohttp.web
from faust.web import Request, Response, View

from streams.ingest import bearer_ok, ingest
from projections.report import DAY_MICROS
from schemas import format_time
from streams.live import merge_partials, progress_partition

if TYPE_CHECKING:
    from streams.app import JourneyApp

PEER_TIMEOUT = aiohttp.ClientTimeout(total=10)
MAX_PAGE_END = 100_000
DASHBOARD = Path(__file__).with_name("dashboard")
DASHBOARD_ASSETS = {"dashboard.js": "application/javascript", "dashboard.css": "text/css"}
log = logging.getLogger("journey.web")


class Unavailable(Exception):
    """The cluster cannot answer right now (rebalancing, recovering, a peer down)."""


class BadRequest(ValueError):
    """A query parameter a reader got wrong."""


def register(japp: JourneyApp) -> None:
    app = japp.app

    def reader(handler: Any) -> Any:
        """A read view: the read token when one is set; 503 while the cluster cannot answer, 400 for bad input."""

        @functools.wraps(handler)
        async def view(web: View, request: Request, **kwargs: Any) -> Response:
            if (denied := _read_denied(japp, web, request)) is not None:
                return denied
            try:
                return await handler(web, request, **kwargs)
            except Unavailable as exc:
                return _unavailable(web, exc)
            except BadRequest as exc:
                return web.json({"error": str(exc)}, status=400)

        return view
    app.web.web_app.middlewares.append(_json_errors)

    @app.page("/")
    async def dashboard(web: View, request: Request) -> Response:
        return web.html((DASHBOARD / "index.html").read_text())

    @app.page("/dashboard/{name}")
    async def dashboard_asset(web: View, request: Request, name: str) -> Response:
        if name not in DASHBOARD_ASSETS:
            return web.json({"error": "no such file"}, status=404)
        return web.bytes((DASHBOARD / name).read_bytes(), content_type=DASHBOARD_ASSETS[name])

    @app.page("/api/events")
    class Events(View):
        async def post(self, request: Request) -> Response:
            return await ingest(japp, self, request)

    @app.page("/api/report")
    @reader
    async def report(web: View, request: Request) -> Response:
        return web.json(await cluster_report(japp))

    @app.page("/api/leads/{lead_id}")
    @app.table_route(table=japp.leads, match_info="lead_id")
    @reader
    async def lead(web: View, request: Request, lead_id: str) -> Response:
        data = None if progress_partition(lead_id) is not None else japp.leads.get(lead_id.encode())
        if data is None:
            return web.json({"error": "unknown lead", "lead_id": lead_id}, status=404)
        return web.json(japp.projection.lead(lead_id, data, await cluster_watermark(japp) or 0))

    @app.page("/internal/watermark")
    @reader
    async def watermark(web: View, request: Request) -> Response:
        if not japp.ready.is_set():
            return web.json({"error": "recovering"}, status=503)
        return web.json(_watermark_share(japp))

    @app.page("/internal/partial")
    @reader
    async def partial(web: View, request: Request) -> Response:
        if not japp.ready.is_set():
            return web.json({"error": "recovering"}, status=503)
        return web.json(japp.projection.partial(_watermark_param(request)))

    @app.page("/api/stages")
    @reader
    async def stages(web: View, request: Request) -> Response:
        return web.json(await cluster_stages(japp))

    @app.page("/api/stages/{stage}/leads")
    @reader
    async def stage_leads(web: View, request: Request, stage: str) -> Response:
        if stage not in japp.defs.stages:
            return web.json({"error": "unknown stage", "stage": stage, "stages": list(japp.defs.stages)}, status=404)
        offset, limit = _paging(request)
        return web.json(await cluster_stage_leads(japp, stage, offset, limit))

    @app.page("/api/funnel")
    @reader
    async def funnel(web: View, request: Request) -> Response:
        first, last = _day(request.query.get("from")), _day(request.query.get("to"))
        return web.json(funnel_between(japp.defs.steps, await cluster_report(japp), first, last))

    @app.page("/internal/stages")
    @reader
    async def internal_stages(web: View, request: Request) -> Response:
        return web.json(_stages_share(japp, _watermark_param(request)))

    @app.page("/internal/stage-leads")
    @reader
    async def internal_stage_leads(web: View, request: Request) -> Response:
        stage, upto = request.query.get("stage", ""), request.query.get("upto", "")
        if not (stage.isdigit() and upto.isdigit()):
            return web.json({"error": "stage and upto must be numbers"}, status=400)
        return web.json(_stage_leads_share(japp, int(stage), min(int(upto), MAX_PAGE_END)))

    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        return web.json({"status": "ok", "ready": japp.ready.is_set(), "partitions": sorted(japp.projection.partitions)})

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        body, content_type = japp.metrics.render()
        return web.bytes(body, content_type=content_type.replace("; charset=utf-8", ""))


async def cluster_watermark(japp: JourneyApp) -> int | None:
    answers = await _ask_all(japp, "/internal/watermark", local=_watermark_share)
    marks = [a["watermark"] for a in answers if a["watermark"] is not None]
    return max(marks) if marks else None


async def cluster_report(japp: JourneyApp) -> dict[str, Any]:
    mark = await cluster_watermark(japp)
    partials = await _ask_all(japp, f"/internal/partial{_at(mark)}", local=lambda j: j.projection.partial(mark))
    _check_coverage(japp, partials)
    return merge_partials(japp.defs, partials)


async def cluster_stages(japp: JourneyApp) -> dict[str, Any]:
    return await _stages_at(japp, await cluster_watermark(japp))


async def _stages_at(japp: JourneyApp, mark: int | None) -> dict[str, Any]:
    answers = await _ask_all(japp, f"/internal/stages{_at(mark)}", local=lambda j: _stages_share(j, mark))
    _check_coverage(japp, answers)
    days = japp.defs.sal_stale_after_micros / DAY_MICROS
    rows = [{"stage": name, "leads": 0, "stale": 0} for name in japp.defs.stages]
    for answer in answers:
        for row, counts in zip(rows, answer["stages"]):
            row["leads"] += counts["leads"]
            row["stale"] += counts["stale"]
    return {"watermark": None if mark is None else format_time(mark), "stale_after_days": days, "stages": rows}


async def cluster_stage_leads(japp: JourneyApp, stage: str, offset: int, limit: int) -> dict[str, Any]:
    index = japp.defs.stages.index(stage)
    mark = await cluster_watermark(japp)
    answers = await _ask_all(japp, f"/internal/stage-leads?stage={index}&upto={offset + limit}", local=lambda j: _stage_leads_share(j, index, offset + limit))
    _check_coverage(japp, answers)
    merged = list(heapq.merge(*([tuple(item) for item in a["leads"]] for a in answers)))[offset : offset + limit]
    total = (await _stages_at(japp, mark))["stages"][index]["leads"]  # the same watermark, not asked twice
    leads = [
        {"lead_id": lead_id, "stage_entered_at": format_time(entered), "days_in_stage": None if mark is None else round((mark - entered) / DAY_MICROS, 1)}
        for entered, lead_id in merged
    ]
    return {"stage": stage, "total": total, "offset": offset, "limit": limit, "leads": leads}


def funnel_between(steps: tuple[str, ...], report: dict[str, Any], first: str | None, last: str | None) -> dict[str, Any]:
    """The daily funnel summed over [first, last] (UTC days, inclusive), with conversion per step and overall."""
    days = [day for day in report["funnel_daily"] if (first is None or day >= first) and (last is None or day <= last)]
    totals = {step: sum(report["funnel_daily"][day][step] for day in days) for step in steps}
    counts = list(totals.values())
    conversion = {step: (None if i == 0 or not counts[i - 1] else round(counts[i] / counts[i - 1], 4)) for i, step in enumerate(steps)}
    overall = round(counts[-1] / counts[0], 4) if counts and counts[0] else None
    return {"from": first, "to": last, "days": len(days), "funnel": totals, "conversion": conversion, "overall": overall}


def _check_coverage(japp: JourneyApp, answers: list[dict[str, Any]]) -> None:
    owned = [p for answer in answers for p in answer["partitions"]]
    if sorted(owned) != list(range(japp.settings.partitions)):
        raise Unavailable(f"partitions owned {sorted(owned)} do not cover 0..{japp.settings.partitions - 1} once each")


def _paging(request: Request) -> tuple[int, int]:
    offset, limit = request.query.get("offset", "0"), request.query.get("limit", "50")
    if not (offset.isdigit() and limit.isdigit()) or not 1 <= int(limit) <= 500 or int(offset) + int(limit) > MAX_PAGE_END:
        raise BadRequest(f"offset and limit must be whole numbers, limit 1 to 500, offset + limit at most {MAX_PAGE_END}")
    return int(offset), int(limit)


def _day(text: str | None) -> str | None:
    if text is None or text == "":
        return None
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise BadRequest(f"{text!r} is not a day (YYYY-MM-DD)") from None


# What each worker answers for its own partitions: over HTTP to its peers, and directly to itself.


def _watermark_share(japp: JourneyApp) -> dict[str, Any]:
    return {"watermark": japp.projection.local_watermark(), "partitions": sorted(japp.projection.partitions)}


def _stages_share(japp: JourneyApp, watermark: int | None) -> dict[str, Any]:
    return {"partitions": sorted(japp.projection.partitions), "stages": japp.projection.stage_counts(watermark)}


def _stage_leads_share(japp: JourneyApp, stage: int, upto: int) -> dict[str, Any]:
    return {"partitions": sorted(japp.projection.partitions), "leads": japp.projection.stage_leads(stage, upto)}


def _at(mark: int | None) -> str:
    """The query that passes the cluster's watermark to a peer (read back by _watermark_param)."""
    return "" if mark is None else f"?watermark={mark}"


def _watermark_param(request: Request) -> int | None:
    mark = request.query.get("watermark", "")
    return int(mark) if mark.lstrip("-").isdigit() else None


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
