"""Bounded RocksDB memory (issue 30): every partition's database of a worker shares one block cache of
JOURNEY_ROCKSDB_CACHE_MB and one write-buffer budget of JOURNEY_ROCKSDB_WRITE_BUFFER_MB, as RocksDB itself
reports when it opens them (each database's LOG prints its block cache and write buffer manager)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streams.kafka import topics
from tests.integration.conftest import Worker, produce, report_when_counted, written_locally

pytestmark = pytest.mark.timeout(240)
MIB = 1 << 20


def opened_with(db: Path) -> dict[str, str]:
    """What RocksDB's info LOG says a database was last opened with."""
    text = (db / "LOG").read_text(errors="replace")
    return {
        "block_cache": re.findall(r"^\s*block_cache: (0x[0-9a-f]+)", text, re.M)[-1],
        "capacity": re.findall(r"^\s*capacity : (\d+)", text, re.M)[-1],
        "write_buffer_manager": re.findall(r"Options\.write_buffer_manager: (0x[0-9a-f]+)", text)[-1],
    }


def gauge(metrics: str, name: str) -> float:
    return float(re.search(rf"^{name} (\S+)$", metrics, re.M).group(1))


def test_every_partition_shares_one_block_cache_and_one_write_buffer_budget_of_the_set_sizes(broker, tmp_path, workers, golden_log) -> None:
    env = {"JOURNEY_ROCKSDB_CACHE_MB": "48", "JOURNEY_ROCKSDB_WRITE_BUFFER_MB": "24"}
    produce(broker, golden_log)
    worker = workers(Worker(broker.url, tmp_path / "w1", tmp_path / "w1.log", env=env).start()).wait_ready()
    report_when_counted(worker, len(golden_log))
    written_locally(worker, broker.url.removeprefix("kafka://"))

    databases = sorted((tmp_path / "w1").rglob(f"{topics.LEADS_TABLE}-*.db"))
    assert len(databases) == 8
    options = [opened_with(db) for db in databases]
    assert len({o["block_cache"] for o in options}) == 1, options  # one cache object for all
    assert {o["capacity"] for o in options} == {str(48 * MIB)}, options
    assert len({o["write_buffer_manager"] for o in options}) == 1, options  # one write-buffer budget

    metrics = worker.text("/metrics")
    assert gauge(metrics, "journey_rocksdb_block_cache_capacity_bytes") == 48 * MIB
    assert gauge(metrics, "journey_rocksdb_write_buffer_limit_bytes") == 24 * MIB
    assert 0 < gauge(metrics, "journey_rocksdb_write_buffer_usage_bytes") <= 24 * MIB  # the leads are in its memtables
