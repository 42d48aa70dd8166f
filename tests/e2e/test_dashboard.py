"""The dashboard in a real headless Chromium: what it shows equals /api/report for the golden log (issue 6)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from streams.net import free_port
from streams.tools.broker import EmbeddedBroker
from tests.integration.conftest import Worker, produce, report_when_counted

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (make test installs Debian's where it can)"),
]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class Cells(HTMLParser):
    """Text of every table cell, keyed by (table id, the row's data-* value, cell class); and text by element id.
    Also the attributes of every canvas (by id), board column (by stage) and heat-map cell."""

    def __init__(self) -> None:
        super().__init__()
        self.canvases: dict[str, dict[str, str]] = {}
        self.columns: dict[str, dict[str, str]] = {}
        self.heat: dict[tuple[str, int], float] = {}  # (cohort day, cell index) -> share
        self._cell_index = 0
        self.cells: dict[tuple[str, str, str], str] = {}
        self.by_id: dict[str, str] = {}
        self.text = ""  # all the page's text
        self._table = self._row = self._cell = self._id = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "canvas":
            self.canvases[a["id"]] = a
        elif tag == "div" and "column" in (a.get("class") or "").split():
            self.columns[a["data-stage"]] = a
        if tag == "tr":
            self._cell_index = 0
        elif tag == "td":
            self._cell_index += 1
            if "data-share" in a and self._row is not None:
                self.heat[(self._row, self._cell_index)] = float(a["data-share"])
        if tag == "table":
            self._table = a.get("id")
        elif tag == "tr":
            self._row = next((v for k, v in a.items() if k.startswith("data-")), None)
        elif tag == "td":
            self._cell, self._text = (a.get("class") or "").split(" ")[0], []
        if "id" in a:
            self._id, self._text = a["id"], []

    def handle_data(self, data: str) -> None:
        self._text.append(data)
        self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell:
            self.cells[(self._table or "", self._row, self._cell)] = "".join(self._text).strip()
            self._cell = None
        elif self._id is not None and tag in ("dd", "span", "strong", "h3", "p"):
            self.by_id.setdefault(self._id, "".join(self._text).strip())
            self._id = None


def screenshot(url: str, scratch: Path, out: Path, width: int, height: int) -> None:
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={scratch}", "--virtual-time-budget=10000", "--hide-scrollbars",
         f"--window-size={width},{height}", f"--screenshot={out}", url],
        capture_output=True, timeout=90, check=True,
    )


def rendered(url: str, scratch: Path) -> Cells:
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={scratch}", "--virtual-time-budget=10000", "--dump-dom", url],
        capture_output=True, timeout=90, text=True,
    ).stdout
    assert 'data-loaded="true"' in dom, dom[:2000]
    cells = Cells()
    cells.feed(dom)
    return cells


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture(scope="module")
def golden_worker(tmp_path_factory, golden_log):
    tmp = tmp_path_factory.mktemp("dashboard")
    with EmbeddedBroker(free_port(), log=tmp / "broker.log") as broker:
        produce(broker, golden_log)
        worker = Worker(broker.url, tmp / "w", tmp / "w.log").start()
        try:
            report_when_counted(worker.wait_ready(), len(golden_log))
            yield worker
        finally:
            worker.stop()


@pytest.fixture(scope="module")
def golden_log():
    from tests.conftest import GOLDEN

    return [line for line in (GOLDEN / "journey-small.jsonl").read_bytes().split(b"\n") if line.strip()]


class TestDashboard:
    def test_the_numbers_shown_equal_the_report(self, golden_worker, tmp_path: Path) -> None:
        report = golden_worker.get("/api/report")[1]
        page = rendered(golden_worker.url + "/", tmp_path / "chromium")
        assert number(page.by_id["leads"]) == report["leads"]
        assert number(page.by_id["events-valid"]) == report["events"]["valid"]
        assert number(page.by_id["events-invalid"]) == report["events"]["invalid"]
        for stage, n in report["pipeline"].items():
            assert number(page.cells[("pipeline", stage, "count")]) == n
        for step, n in report["funnel"].items():
            assert number(page.cells[("funnel", step, "count")]) == n
        assert page.cells[("funnel", "interest", "pct")] == f"{100 * report['funnel']['interest'] / report['funnel']['attention']:.1f}%"
        assert page.by_id["funnel-overall"] == f"{100 * report['funnel']['action'] / report['funnel']['attention']:.1f}%"
        for level, n in report["qualification"].items():
            assert number(page.cells[("qualification", level, "count")]) == n
        day = max(report["cohorts_daily"])
        assert number(page.cells[("cohorts", day, "count")]) == report["cohorts_daily"][day]["attention"]

    def test_the_stale_column_equals_the_stages_api(self, golden_worker, tmp_path: Path) -> None:
        stages = golden_worker.get("/api/stages")[1]["stages"]
        page = rendered(golden_worker.url + "/", tmp_path / "chromium")
        for row in stages:
            assert number(page.cells[("pipeline", row["stage"], "stale")]) == row["stale"]

    def test_a_stage_and_a_lead_open_from_a_link(self, golden_worker, tmp_path: Path) -> None:
        leads = golden_worker.get("/api/stages/contact/leads?limit=25")[1]
        first = leads["leads"][0]["lead_id"]
        page = rendered(f"{golden_worker.url}/#stage=contact&lead={first}", tmp_path / "chromium")
        assert page.by_id["stage-name"] == "contact"
        assert page.by_id["lead-id"] == first
        assert re.match(r"1–25 of 76", page.by_id["page"])

    @pytest.mark.parametrize("by", ["channel", "campaign"])
    def test_the_attribution_breakdown_equals_the_report(self, golden_worker, tmp_path: Path, by: str) -> None:
        report = golden_worker.get("/api/report")[1]
        page = rendered(golden_worker.url + ("/" if by == "channel" else f"/#by={by}"), tmp_path / "chromium")
        values = report["attribution"][by]
        assert values, "the golden log has first touches"
        shown = {row for table, row, _ in page.cells if table == "attribution"}
        assert shown == set(values)
        for value, row in values.items():
            assert number(page.cells[("attribution", value, "count")]) == row["leads"]
            assert number(page.cells[("attribution", value, "action")]) == row["funnel"]["action"]
            assert number(page.cells[("attribution", value, "customers")]) == row["customers"]
            assert page.cells[("attribution", value, "pct")] == (f"{100 * row['funnel']['action'] / row['leads']:.1f}%" if row["leads"] else "–")
            for currency, amount in row["revenue"].items():
                assert f"{currency} {amount:,.2f}" in page.cells[("attribution", value, "revenue")]

    def test_a_lead_shows_its_first_touch_and_revenue(self, golden_worker, tmp_path: Path, expected_leads: list[dict]) -> None:
        lead = next(lead for lead in expected_leads if lead["revenue"] and lead["first_touch"])
        page = rendered(f"{golden_worker.url}/#lead={lead['lead_id']}", tmp_path / "chromium")
        touch = lead["first_touch"]
        assert page.by_id["lead-id"] == lead["lead_id"]
        assert f"{touch['source'] or '–'} / {touch['channel'] or '–'} / {touch['campaign'] or '–'}" in page.text
        currency, amount = next(iter(lead["revenue"].items()))
        assert f"{currency} {amount:,.2f}" in page.text

    def test_the_assets_come_from_the_worker_not_a_cdn(self, golden_worker) -> None:
        html = golden_worker.text("/")
        assert "http://" not in html and "https://" not in html
        assert "fetch(" in golden_worker.text("/dashboard/dashboard.js")


class TestCharts:
    """One page load, every chart held to the API (a Chromium start costs seconds)."""

    def test_every_chart_draws_what_the_api_says(self, golden_worker, tmp_path: Path) -> None:
        report = golden_worker.get("/api/report")[1]
        end = dt.date.fromisoformat(report["watermark"][:10])
        days = [(end - dt.timedelta(days=n)).isoformat() for n in range(29, -1, -1)]  # the default range: the last 30 days
        rng = golden_worker.get(f"/api/funnel?from={days[0]}&to={days[-1]}")[1]
        page = rendered(golden_worker.url + "/", tmp_path / "chromium")
        steps = list(report["funnel"])

        funnel = page.canvases["funnel-chart"]  # the AIDA funnel: a bar per step
        assert json.loads(funnel["data-labels"]) == steps
        assert json.loads(funnel["data-values"]) == {"leads": list(report["funnel"].values())}
        assert funnel["data-drawn"] == str(len(steps)) and int(funnel["width"]) > 0

        trend = page.canvases["trend-chart"]  # the daily funnel: every day of the range, ending at its overall conversion
        assert json.loads(trend["data-labels"]) == days
        values = json.loads(trend["data-values"])
        for step in steps:
            assert values[step] == [report["funnel_daily"].get(day, {}).get(step, 0) for day in days]
            assert sum(values[step]) == rng["funnel"][step]
        assert values["conversion so far %"][-1] == round(100 * rng["overall"], 1)
        assert int(trend["data-drawn"]) == len(days) * (len(steps) + 1)

        assert {stage: int(column["data-leads"]) for stage, column in page.columns.items()} == report["pipeline"]  # the board

        checked = 0  # the heat map: each cohort cell shaded by its share of the cohort
        for (day, index), share in page.heat.items():
            cohort = report["cohorts_daily"][day]
            assert share == (round(cohort[steps[index - 2]] / cohort[steps[0]], 4) if cohort[steps[0]] else 0)
            checked += 1
        assert checked == min(30, len(report["cohorts_daily"])) * (len(steps) - 1)

    def test_the_chart_library_is_the_pinned_one_served_by_the_worker(self, golden_worker) -> None:
        from streams.live.web import DASHBOARD

        pinned = json.loads((DASHBOARD / "package.json").read_text())["dependencies"]["chart.js"]
        served = golden_worker.text("/dashboard/chart.umd.min.js")
        assert f"Chart.js v{pinned}" in served[:200]
        assert json.loads((DASHBOARD / "package-lock.json").read_text())["packages"]["node_modules/chart.js"]["version"] == pinned

    @pytest.mark.parametrize("name,width,height", [("desktop", 1400, 1500), ("phone", 390, 2400)])
    def test_screenshots_are_taken_at_desktop_and_phone_width(self, golden_worker, tmp_path: Path, name: str, width: int, height: int) -> None:
        """The README's screenshots come from here (JOURNEY_SCREENSHOTS=DIR keeps them)."""
        import os

        out = Path(os.environ.get("JOURNEY_SCREENSHOTS", tmp_path)) / f"dashboard-{name}.png"
        screenshot(golden_worker.url + "/", tmp_path / "chromium", out, width, height)
        png = out.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == width
