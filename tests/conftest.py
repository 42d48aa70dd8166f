from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import built

GOLDEN = Path(__file__).parent / "golden"

# Every worker the suite starts (they inherit this environment) joins its group in 2 s instead of
# the embedded profile's 4 (the broker holds a join for half the session timeout), and the group
# gives up on a killed one after 4 s instead of 8: about a minute of a full run. Stricter, too: a
# worker whose event loop stalls for 4 s loses its partitions, and tests that count rebalances fail.
os.environ.setdefault("JOURNEY_SESSION_TIMEOUT", "4")


@pytest.fixture(scope="session")
def golden() -> Path:
    return GOLDEN


@pytest.fixture(scope="session")
def golden_log() -> list[bytes]:
    return [line for line in (GOLDEN / "journey-small.jsonl").read_bytes().split(b"\n") if line.strip()]


@pytest.fixture(scope="session")
def expected_report() -> dict:
    return built(json.loads((GOLDEN / "expected-report.json").read_text()))


@pytest.fixture(scope="session")
def expected_leads() -> list[dict]:
    return built([json.loads(line) for line in (GOLDEN / "expected-leads.jsonl").read_text().splitlines() if line])


def golden_json(name: str) -> object:
    """A golden expected file (JSON, or JSON lines), without what is not built yet (tests.helpers.built)."""
    text = (GOLDEN / name).read_text()
    if name.endswith(".jsonl"):
        return built([json.loads(line) for line in text.splitlines() if line])
    return built(json.loads(text))
