"""`journey broker` as a supervisor runs it: whatever stops it stops Tansu too."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from streams.net import free_port, port_open
from tests.e2e.conftest import JOURNEY, alive

pytestmark = pytest.mark.usefixtures("journey")


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stopped_broker_stops_tansu_and_frees_its_port(sig: signal.Signals) -> None:
    port = free_port()
    broker = subprocess.Popen([str(JOURNEY), "broker", "--port", str(port)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", port):
            assert broker.poll() is None and time.monotonic() < deadline, "the broker did not start"
            time.sleep(0.05)
        (tansu,) = children(broker.pid)
        broker.send_signal(sig)
        assert broker.wait(timeout=15) == 0
        deadline = time.monotonic() + 5
        while alive(tansu) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(tansu), "Tansu outlived `journey broker`"
        assert not port_open("127.0.0.1", port)
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.wait()
