from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

JOURNEY = Path(sys.executable).with_name("journey")


def run_journey(*args: str, stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(JOURNEY), *args], input=stdin, capture_output=True, timeout=timeout)


@pytest.fixture(scope="session")
def journey() -> Path:
    assert JOURNEY.exists(), f"the journey command is not installed at {JOURNEY}"
    return JOURNEY
