"""JOURNEY_PAUSE, the crash tests' pause points: read as written, and a mistake in it said aloud."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from streams.live import pauses


def test_a_named_point_pauses_that_long_and_others_not_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_PAUSE", "catch-up=0.3")
    started = time.monotonic()
    asyncio.run(pauses.pause("catch-up"))
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    asyncio.run(pauses.pause("elsewhere"))
    assert time.monotonic() - started < 0.1


def test_unset_it_never_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNEY_PAUSE", raising=False)
    started = time.monotonic()
    asyncio.run(pauses.pause("catch-up"))
    assert time.monotonic() - started < 0.1


@pytest.mark.parametrize(("text", "said"), [("catch-up=soon", "is not POINT=SECONDS"), ("catchup=3", "no pause point 'catchup'")])
def test_a_mistake_is_logged_as_an_error(text: str, said: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="journey.worker"):
        pauses._read(text)
    assert said in caplog.text
