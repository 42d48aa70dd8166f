from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

JOURNEY = Path(sys.executable).with_name("journey")


def alive(pid: int) -> bool:
    """Whether a process still runs: a zombie has exited and only waits to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def run_journey(*args: str, stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(JOURNEY), *args], input=stdin, capture_output=True, timeout=timeout)


@pytest.fixture(scope="session")
def journey() -> Path:
    assert JOURNEY.exists(), f"the journey command is not installed at {JOURNEY}"
    return JOURNEY
