"""`journey demo` as a newcomer runs it: it serves growing numbers and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from streams.net import free_port
from tests.e2e.conftest import JOURNEY, alive

pytestmark = pytest.mark.timeout(180)


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def valid_events(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/report", timeout=5) as response:
            return json.loads(response.read())["events"]["valid"]
    except OSError:
        return -1


class TestDemo:
    def test_demo_serves_a_growing_report_and_ctrl_c_stops_every_process(self, tmp_path: Path) -> None:
        port = free_port()
        log = (tmp_path / "demo.log").open("wb")
        demo = subprocess.Popen([str(JOURNEY), "demo", "--web-port", str(port), "--rate", "300"], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while valid_events(port) <= 0:
                assert demo.poll() is None, (tmp_path / "demo.log").read_text()
                assert time.monotonic() < deadline, "the demo never reported events"
                time.sleep(0.5)
            first = valid_events(port)
            time.sleep(3)
            assert valid_events(port) > first
            output = (tmp_path / "demo.log").read_text()
            assert f"http://127.0.0.1:{port}/" in output
            family = descendants(demo.pid)
            assert len(family) >= 2  # the broker and the worker
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(timeout=60)
        time.sleep(1)
        assert [pid for pid in family if alive(pid)] == []
        assert "stopped" in (tmp_path / "demo.log").read_text()


class TestDemoJourneys:
    def test_the_demo_sends_nothing_dated_after_now(self) -> None:
        import itertools
        from datetime import UTC, datetime

        from schemas import Event, decode
        from streams.tools.demo import synthetic_stream

        before = datetime.now(UTC).timestamp() * 1e6
        events = [e for e in map(decode, itertools.islice(synthetic_stream(300), 3000)) if isinstance(e, Event)]
        assert events and max(e.occurred_at for e in events) <= datetime.now(UTC).timestamp() * 1e6
        assert min(e.occurred_at for e in events) < before - 20 * 86_400e6  # journeys still start weeks ago
