"""Real servers for the integration tests: an embedded broker per test, `journey worker` processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaAdminClient, KafkaConsumer
from kafka import TopicPartition as SyncTopicPartition

from streams.kafka import tansu, topics
from streams.net import free_port
from streams.tools.broker import EmbeddedBroker

JOURNEY = str(Path(sys.executable).with_name("journey"))
READY_TIMEOUT = 60


class Worker:
    """A `journey worker` process, as an operator would start it."""

    def __init__(self, broker: str, data_dir: Path, log: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.args = [JOURNEY, "worker", "--broker", broker, "--web-port", str(self.port), "--data-dir", str(data_dir), *extra]
        self.env = {**os.environ, "JOURNEY_LOG_LEVEL": "warning", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None and self._port_taken():
                self._move_port()  # another process of the suite took the free port first: another one
                continue
            assert self.process is not None and self.process.poll() is None, f"worker exited: {self.tail()}"
            status, body = self.get("/healthz")
            if status == 200 and body.get("ready"):
                return self
            time.sleep(0.25)
        raise AssertionError(f"worker not ready after {timeout}s: {self.tail()}")

    def _port_taken(self) -> bool:
        return f"web port {self.port} is already in use" in self.tail()

    def _move_port(self) -> None:
        old = str(self.port)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [str(self.port) if arg == old else arg for arg in self.args]
        self.start()

    def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        return self.request("GET", path, token=token)

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": content_type} if content_type else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, {}

    def text(self, path: str) -> str:
        with urllib.request.urlopen(self.url + path, timeout=15) as response:
            return response.read().decode()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def produce(broker: EmbeddedBroker, records: list[bytes]) -> None:
    done = subprocess.run([JOURNEY, "produce", "-", "--broker", broker.url], input=b"\n".join(records) + b"\n", capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()


class Producer(threading.Thread):
    """Publishes the log in chunks while the test kills and starts workers."""

    def __init__(self, broker, records: list[bytes], chunks: int, pause: float) -> None:
        super().__init__(daemon=True)
        self.broker, self.records, self.chunks, self.pause = broker, records, chunks, pause
        self.sent = 0
        self.begun = 0  # records handed to the broker so far, the chunk under way included: the log holds no others
        self.error: BaseException | None = None

    def run(self) -> None:
        size = -(-len(self.records) // self.chunks)
        try:
            for start in range(0, len(self.records), size):
                self.begun = min(len(self.records), start + size)
                produce(self.broker, self.records[start : start + size])
                self.sent = min(len(self.records), start + size)
                time.sleep(self.pause)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def end_offset_sums(broker: EmbeddedBroker, topic: str, partitions: int) -> tuple[int, int]:
    """The sums of a topic's end offsets: as the embedded broker reports them, and corrected (streams/kafka/tansu.py)."""
    bootstrap = broker.url.removeprefix("kafka://")

    async def ends() -> tuple[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            reported = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        finally:
            await consumer.stop()
        return sum(reported.values()), sum((await tansu.corrected_end_offsets(bootstrap, reported)).values())

    return asyncio.run(ends())


def read_topic(bootstrap: str, topic: str, partitions: int) -> list:
    """Every record of a topic, in offset order per partition, read until it is quiet for 1 s."""
    async def read() -> list:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=tansu.FETCH_WAIT_MS)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            found, quiet = [], 0
            while quiet < 4:
                batch = await consumer.getmany(timeout_ms=250)
                quiet = 0 if batch else quiet + 1
                for messages in batch.values():
                    found.extend(messages)
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def end_offsets(bootstrap: str, partitions: int = 8, topic: str = topics.EVENTS) -> dict[int, int]:
    """A topic's end offsets as a tool would see them, corrected for the embedded broker (streams/kafka/tansu.py)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        reported = consumer.end_offsets([SyncTopicPartition(topic, p) for p in range(partitions)])
    finally:
        consumer.close()
    return {tp.partition: end for tp, end in tansu.corrected_end_offsets_blocking(bootstrap, reported).items()}


def committed(bootstrap: str, topic: str = topics.EVENTS) -> dict[int, int]:
    """Group journey's committed offsets on a topic (journey.events), as an outside admin client reads them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if hasattr(admin, "list_consumer_group_offsets"):  # kafka-python 2
            offsets = admin.list_consumer_group_offsets("journey")
        else:  # kafka-python 3 renamed it
            offsets = admin.list_group_offsets({"journey": None})["journey"]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}


def written_locally(worker: Worker, bootstrap: str, timeout: float = 60) -> None:
    """Wait until the worker has written every event locally: its commits, which follow the local writes, reach the ends."""
    ends = end_offsets(bootstrap)
    wait_for(lambda: committed(bootstrap) == {p: end for p, end in ends.items() if end}, timeout, f"{worker.url} to write {ends} locally")


def wait_for(condition: Callable[[], Any], timeout: float = 60, message: str = "condition", interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}; last: {last!r}")


def spec_report(report: dict[str, Any], digest: str | None = None) -> dict[str, Any]:
    """A live report as SPEC §5 defines it: the live one also names its definitions (SPEC §7)."""
    named = report.get("definitions")
    assert isinstance(named, str) and len(named) == 12 and all(c in "0123456789abcdef" for c in named), report.get("definitions")
    assert digest is None or named == digest
    return {key: value for key, value in report.items() if key != "definitions"}


def report_when_counted(worker: Worker, records: int, timeout: float = 60) -> dict[str, Any]:
    """The report once every produced record is counted (valid, invalid or duplicate), as SPEC §5 has it."""

    last: list[Any] = []

    def counted() -> dict[str, Any] | None:
        status, report = last[:] = worker.get("/api/report")
        return report if status == 200 and sum(report["events"].values()) >= records else None

    try:
        return spec_report(wait_for(counted, timeout, f"{records} records in {worker.url}/api/report"))
    except AssertionError as timeout_error:
        raise AssertionError(f"{timeout_error}; last answer {last}; worker log: {worker.tail()}") from None


def report_when_settled(worker: Worker, expected: dict[str, Any], timeout: float = 90) -> dict[str, Any]:
    """The report once it equals `expected` (instants compared as instants): with anonymous ids (SPEC §9)
    a worker settles after its last event, once the identity messages between partitions are applied."""
    from tests.helpers import same_instants

    last: list[Any] = []

    def settled() -> dict[str, Any] | None:
        status, report = last[:] = worker.get("/api/report")
        return report if status == 200 and same_instants(spec_report(report), expected) else None

    try:
        return spec_report(wait_for(settled, timeout, f"{worker.url}/api/report to equal replay"))
    except AssertionError:
        status, report = last if last else (0, {})
        differs = sorted(key for key in expected if status == 200 and report.get(key) != expected[key])
        raise AssertionError(f"{worker.url}/api/report did not settle at replay's; differs in {differs}; last {status} {report}; log: {worker.tail()}") from None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(free_port(), log=tmp_path / "broker.log") as running:
        yield running


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One broker for a module whose tests only read what its workers project."""
    with EmbeddedBroker(free_port(), log=tmp_path_factory.mktemp("broker") / "broker.log") as running:
        yield running


@pytest.fixture(scope="module")
def start_shared_worker(shared_broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Worker]]:
    """Workers on the shared broker, stopped when the module is done."""
    started: list[Worker] = []
    tmp = tmp_path_factory.mktemp("workers")

    def start(name: str = "w1", env: dict[str, str] | None = None) -> Worker:
        worker = Worker(shared_broker.url, tmp / name, tmp / f"{name}.log", env=env).start()
        started.append(worker)
        return worker.wait_ready()

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL, timeout=10)


@pytest.fixture
def start_worker(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(name: str = "w1", *extra: str, data_dir: Path | None = None, ready: bool = True, env: dict[str, str] | None = None) -> Worker:
        worker = Worker(broker.url, data_dir or tmp_path / name, tmp_path / f"{name}.log", *extra, env=env).start()
        started.append(worker)
        return worker.wait_ready() if ready else worker

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL if worker.process and worker.process.poll() is None else signal.SIGINT, timeout=10)


@pytest.fixture
def workers() -> Iterator[Callable[[Worker], Worker]]:
    """Keeps each worker a test hands it (`workers(Worker(...).start())`); those still running at the end are killed."""
    started: list[Worker] = []

    def keep(worker: Worker) -> Worker:
        started.append(worker)
        return worker

    yield keep
    for worker in started:
        worker.stop(signal.SIGKILL, timeout=10)
