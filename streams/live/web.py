"""The HTTP API (SPEC §5) and the dashboard, on Faust's web server.

It gets what it serves (`Api`), not the app: the cluster protocol, the lead
table, HTTP ingest and the metrics.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp.web
import faust
from faust.web import Request, Response, View

from projections import answers
from projections.attribution import DIMENSIONS
from projections.identity import anon_key
from projections.linking import held_key
from schemas.events import MAX_ID_CHARS
from streams.kafka.definitions import digest_of
from streams.kafka.errors import BrokerError
from streams.live.admin import MAX_BODY_BYTES as MAX_DEFINITIONS_BYTES
from streams.live.admin import Admin
from streams.live.cluster import MAX_PAGE_END, Cluster, Disagreement, NoShadow, Unavailable, watermark_param
from streams.live.ingest import Ingest, bearer_ok, read_bounded

DASHBOARD = Path(__file__).with_name("dashboard")
DASHBOARD_ASSETS = {"dashboard.js": "application/javascript", "dashboard.css": "text/css", "chart.umd.min.js": "application/javascript"}
log = logging.getLogger("journey.web")


class BadRequest(ValueError):
    """A query parameter a reader got wrong."""


@dataclass(frozen=True)
class Api:
    cluster: Cluster
    leads: faust.Table  # for the route to a lead's owner
    lead: Callable[[str], bytes | None]  # a lead as the projection has it, written locally or not yet
    ingest: Ingest
    metrics: Callable[[], tuple[bytes, str]]  # the Prometheus text and its content type
    ingest_answered: Callable[[str, int], None]  # an answer of an ingest route: (route, status), counted
    readiness: Callable[[], str | None]  # None when ready, else what the worker waits for (streams/live/readiness.py)
    read_token: str | None  # None: reads are open
    admin: Admin  # SPEC §11's admin endpoints (403 on a worker without an admin token)


INGEST_ROUTES = ("/api/events", "/api/ingest/segment")


def register(app: faust.App, api: Api) -> None:
    app.web.web_app.middlewares.append(_counted(api.ingest_answered))  # outermost: counts the answer as sent
    app.web.web_app.middlewares.append(_json_errors)
    _dashboard(app)
    _ingest(app, api)
    _reads(app, api)
    _persons(app, api)
    _internal(app, api)
    _definitions(app, api)
    _probes(app, api)


def _reader(api: Api, handler: Any) -> Any:
    """A read view: the read token when one is set; 503 while the cluster cannot answer, 400 for bad input."""

    @functools.wraps(handler)
    async def view(web: View, request: Request, **kwargs: Any) -> Response:
        if (denied := _read_denied(api.read_token, web, request)) is not None:
            return denied
        try:
            return await handler(web, request, **kwargs)
        except Unavailable as exc:
            return _unavailable(web, exc)
        except BadRequest as exc:
            return web.json({"error": str(exc)}, status=400)

    return view


def _share(api: Api, handler: Callable[[Request], dict[str, Any]]) -> Callable[[View, Request], Awaitable[Response]]:
    """An internal view: this worker's share, once its tables are recovered."""
    ready = api.cluster.peers.ready

    async def view(web: View, request: Request) -> Response:
        if not ready.is_set():
            return web.json({"error": "recovering"}, status=503)
        return web.json(handler(request))

    return view


def _dashboard(app: faust.App) -> None:
    @app.page("/")
    async def dashboard(web: View, request: Request) -> Response:
        return web.html((DASHBOARD / "index.html").read_text())

    @app.page("/dashboard/{name}")
    async def dashboard_asset(web: View, request: Request, name: str) -> Response:
        if name not in DASHBOARD_ASSETS:
            return web.json({"error": "no such file"}, status=404)
        return web.bytes((DASHBOARD / name).read_bytes(), content_type=DASHBOARD_ASSETS[name])


def _ingest(app: faust.App, api: Api) -> None:
    @app.page("/api/events")
    class Events(View):
        async def post(self, request: Request) -> Response:
            status, body, headers = await api.ingest.handle(request)
            return self.json(body, status=status, headers=headers)

    @app.page("/api/ingest/segment")
    class SegmentCalls(View):
        async def post(self, request: Request) -> Response:
            status, body, headers = await api.ingest.handle_segment(request)
            return self.json(body, status=status, headers=headers)


def _reads(app: faust.App, api: Api) -> None:
    cluster, projection = api.cluster, api.cluster.projection

    async def report(web: View, request: Request) -> Response:
        return web.json(await cluster.report())

    async def stages(web: View, request: Request) -> Response:
        return web.json(await cluster.stages())

    async def stage_leads(web: View, request: Request, stage: str) -> Response:
        if stage not in projection.defs.stages:
            return web.json({"error": "unknown stage", "stage": stage, "stages": list(projection.defs.stages)}, status=404)
        offset, limit = _paging(request)
        return web.json(await cluster.stage_leads(stage, offset, limit))

    async def funnel(web: View, request: Request) -> Response:
        first, last = _day(request.query.get("from")), _day(request.query.get("to"))
        return web.json(funnel_between(projection.defs.steps, await cluster.report(), first, last))

    async def velocity(web: View, request: Request) -> Response:
        """SPEC §10: time in stage, the windowed funnel and time to convert, across all workers."""
        report = await cluster.report()
        return web.json({key: report[key] for key in ("velocity", "funnel_window", "time_to_convert")})

    async def attribution(web: View, request: Request) -> Response:
        by = request.query.get("by", "channel")
        if by not in DIMENSIONS:
            raise BadRequest(f"by={by!r}: attribution is by one of {', '.join(DIMENSIONS)}")
        return web.json(breakdown(projection.defs.steps, await cluster.report(), by))

    app.page("/api/report")(_reader(api, report))
    app.page("/api/stages")(_reader(api, stages))
    app.page("/api/stages/{stage}/leads")(_reader(api, stage_leads))
    app.page("/api/funnel")(_reader(api, funnel))
    app.page("/api/velocity")(_reader(api, velocity))
    app.page("/api/attribution")(_reader(api, attribution))


def _persons(app: faust.App, api: Api) -> None:
    """One person (SPEC §5, §9): by lead id, or by any anonymous id that is part of it. Each answered
    by the worker whose partitions hold the id (Faust routes the request there)."""
    cluster = api.cluster

    async def lead(web: View, request: Request, lead_id: str) -> Response:
        data = api.lead(lead_id) if len(lead_id) <= MAX_ID_CHARS else None
        if data is None:
            return web.json({"error": "unknown lead", "lead_id": lead_id}, status=404)
        return web.json(answers.lead(cluster.defs, lead_id, data, await cluster.watermark() or 0))

    async def anonymous(web: View, request: Request, anonymous_id: str) -> Response:
        data = api.lead(anon_key(anonymous_id)) if len(anonymous_id) <= MAX_ID_CHARS else None
        mark = await cluster.watermark() or 0
        winner, own = (None, None) if data is None else answers.anonymous(cluster.defs, anonymous_id, data, mark)
        person = None if winner is None else await cluster.held_person(winner.lead_id, anonymous_id, lambda: held(winner.lead_id, anonymous_id, mark))
        if person is None and own is None:
            return web.json({"error": "unknown anonymous id", "anonymous_id": anonymous_id}, status=404)
        return web.json(person if person is not None else own)  # not heard of by its lead yet: apart, for now

    async def internal_held(web: View, request: Request, lead_id: str) -> Response:
        person = held(lead_id, request.query.get("anonymous", ""), await cluster.watermark() or 0)
        return web.json(person) if person is not None else web.json({"error": "not held"}, status=404)

    def held(lead_id: str, anonymous_id: str, mark: int) -> dict[str, Any] | None:
        return answers.held(cluster.defs, lead_id, anonymous_id, api.lead(lead_id), api.lead(held_key(lead_id, anonymous_id)), mark)

    app.page("/api/leads/{lead_id}")(app.table_route(table=api.leads, match_info="lead_id")(_reader(api, lead)))
    app.page("/api/anonymous/{anonymous_id}")(app.table_route(table=api.leads, match_info="anonymous_id")(_reader(api, anonymous)))
    app.page("/internal/held/{lead_id}")(_reader(api, internal_held))


def _internal(app: faust.App, api: Api) -> None:
    """What workers ask each other to build an answer that spans the cluster (streams/live/cluster.py)."""
    cluster = api.cluster

    async def stage_leads(web: View, request: Request) -> Response:
        stage, upto = request.query.get("stage", ""), request.query.get("upto", "")
        if not (stage.isdigit() and upto.isdigit()):
            return web.json({"error": "stage and upto must be numbers"}, status=400)
        return web.json(cluster.stage_leads_share(int(stage), int(upto)))

    app.page("/internal/watermark")(_reader(api, _share(api, lambda request: cluster.watermark_share())))
    app.page("/internal/partial")(_reader(api, _share(api, lambda request: cluster.partial_share(watermark_param(request.query)))))
    app.page("/internal/stages")(_reader(api, _share(api, lambda request: cluster.stages_share(watermark_param(request.query)))))
    app.page("/internal/stage-leads")(_reader(api, stage_leads))


def _definitions(app: faust.App, api: Api) -> None:
    """SPEC §11: the shadow compared with the current definitions (a read), and the admin switches."""
    cluster, admin = api.cluster, api.admin

    async def compared(web: View, request: Request) -> Response:
        try:
            return web.json(await cluster.shadow())
        except NoShadow as exc:
            return web.json({"error": str(exc)}, status=404)

    read = _reader(api, compared)
    app.page("/internal/shadow")(_reader(api, _share(api, lambda request: cluster.shadow_share(watermark_param(request.query)))))

    @app.page("/api/definitions/shadow")
    class Shadow(View):
        async def get(self, request: Request) -> Response:
            return await read(self, request)

        async def put(self, request: Request) -> Response:
            return await _admin(self, request, admin, lambda: _bounded_body(request, admin.put_shadow))

        async def delete(self, request: Request) -> Response:
            return await _admin(self, request, admin, admin.drop_shadow)

    @app.page("/api/definitions/shadow/promote")
    class Promote(View):
        async def post(self, request: Request) -> Response:
            return await _admin(self, request, admin, admin.promote)

    @app.page("/api/definitions/current")
    class Current(View):
        async def delete(self, request: Request) -> Response:
            return await _admin(self, request, admin, admin.drop_current)


async def _admin(web: View, request: Request, admin: Admin, act: Callable[[], Awaitable[tuple[int, dict[str, Any]]]]) -> Response:
    """An admin request: the admin token first (401, 403), then the act; 503 when the broker does not take its record."""
    denied = admin.denied(request.headers.get("Authorization"))
    if denied is not None:
        status, body = denied
        return web.json(body, status=status, headers={"WWW-Authenticate": 'Bearer realm="journey admin"'} if status == 401 else None)
    try:
        status, body = await act()
    except BrokerError as exc:
        return web.json({"error": f"nothing recorded, the broker did not take it: {exc}"}, status=503, headers={"Retry-After": "1"})
    return web.json(body, status=status)


async def _bounded_body(request: Request, act: Callable[[bytes], Awaitable[tuple[int, dict[str, Any]]]]) -> tuple[int, dict[str, Any]]:
    """The body, read up to one byte past what the admin takes (it refuses more, with the size)."""
    declared = request.content_length
    if declared is not None and declared > MAX_DEFINITIONS_BYTES:
        return 413, {"error": f"a definitions file of {declared} bytes; at most {MAX_DEFINITIONS_BYTES}"}
    return await act(await read_bounded(request, MAX_DEFINITIONS_BYTES))


def _probes(app: faust.App, api: Api) -> None:
    projection, ready = api.cluster.projection, api.cluster.peers.ready

    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        return web.json({
            "status": "ok", "ready": ready.is_set(), "partitions": sorted(projection.partitions),
            "definitions": projection.defs.digest, "shadow": digest_of(projection.shadow_defs),
        })

    @app.page("/readyz")
    async def readyz(web: View, request: Request) -> Response:
        reason = api.readiness()
        if reason is not None:
            return web.json({"error": f"not ready: {reason}", "reason": reason}, status=503, headers={"Retry-After": "1"})
        return web.json({"status": "ready", "partitions": sorted(projection.partitions), "definitions": projection.defs.digest})

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        body, content_type = api.metrics()
        return web.bytes(body, content_type=content_type.replace("; charset=utf-8", ""))


def funnel_between(steps: tuple[str, ...], report: dict[str, Any], first: str | None, last: str | None) -> dict[str, Any]:
    """The daily funnel summed over [first, last] (UTC days, inclusive), with conversion per step and overall."""
    days = [day for day in report["funnel_daily"] if (first is None or day >= first) and (last is None or day <= last)]
    totals = {step: sum(report["funnel_daily"][day][step] for day in days) for step in steps}
    counts = list(totals.values())
    conversion = {step: (None if i == 0 or not counts[i - 1] else round(counts[i] / counts[i - 1], 4)) for i, step in enumerate(steps)}
    overall = round(counts[-1] / counts[0], 4) if counts and counts[0] else None
    return {"from": first, "to": last, "days": len(days), "funnel": totals, "conversion": conversion, "overall": overall}


def breakdown(steps: tuple[str, ...], report: dict[str, Any], by: str) -> dict[str, Any]:
    """One dimension of the report's attribution, with each value's conversion from the first step to the last."""
    values = report["attribution"][by]
    for row in values.values():
        top, last = row["funnel"][steps[0]] if steps else 0, row["funnel"][steps[-1]] if steps else 0
        row["conversion"] = round(last / top, 4) if top else None
    return {"by": by, "watermark": report["watermark"], "steps": list(steps), "values": values}


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


def _read_denied(token: str | None, web: View, request: Request) -> Response | None:
    if token is None or bearer_ok(request, token):
        return None
    return web.json(
        {"error": "a valid 'Authorization: Bearer <token>' header is required (JOURNEY_READ_TOKEN)"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="journey"'},
    )


def _counted(answered: Callable[[str, int], None]) -> Any:
    """Every answer of an ingest route counted by route and status, refusals by aiohttp (405, 413) and
    crashes (500) included. Other paths are not counted, so the label has two values at most."""

    @aiohttp.web.middleware
    async def count(request: aiohttp.web.Request, handler: Any) -> aiohttp.web.StreamResponse:
        route = request.path  # the ingest routes are static: a path that equals one is that route
        if route not in INGEST_ROUTES:
            return await handler(request)
        try:
            response = await handler(request)
        except aiohttp.web.HTTPException as exc:
            answered(route, exc.status)
            raise
        except Exception:
            answered(route, 500)
            raise
        answered(route, response.status)
        return response

    return count


@aiohttp.web.middleware
async def _json_errors(request: aiohttp.web.Request, handler: Any) -> aiohttp.web.StreamResponse:
    """Every error answer is JSON, including aiohttp's own (no such route, bad method) and crashes."""
    try:
        response = await handler(request)
    except aiohttp.web.HTTPException as exc:
        response = exc
    except Exception:
        log.exception("error answering %s %s", request.method, request.path.split("/api/leads/")[0])
        return aiohttp.web.json_response({"error": "internal error"}, status=500)
    if response.status >= 400 and response.content_type != "application/json":
        allow = {"Allow": response.headers.get("Allow", "")} if response.status == 405 else None
        return aiohttp.web.json_response({"error": response.reason or "error"}, status=response.status, headers=allow)
    return response


def _unavailable(web: View, exc: Unavailable) -> Response:
    if isinstance(exc, Disagreement):
        body = {"error": str(exc), "definitions": exc.workers_by_digest}
    else:
        body = {"error": "unavailable, try again shortly", "detail": str(exc)}
    return web.json(body, status=503, headers={"Retry-After": "1"})
