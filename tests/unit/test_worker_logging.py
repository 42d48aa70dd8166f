"""A worker's log stays readable under load: Faust's backpressure notice is DEBUG, not WARNING."""

from __future__ import annotations

import logging

from streams.live.worker import _backpressure_is_debug


def record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("faust.transport.producer", level, __file__, 1, message, None, None)


class TestBackpressureNotice:
    def test_it_is_dropped_unless_debug_is_on(self) -> None:
        logger = logging.getLogger("faust.transport.producer")
        before = logger.level
        try:
            logger.setLevel(logging.WARNING)
            notice = record(logging.WARNING, "producer buffer full size 175")
            assert _backpressure_is_debug(notice) is False
            logger.setLevel(logging.DEBUG)
            notice = record(logging.WARNING, "producer buffer full size 175")
            assert _backpressure_is_debug(notice) is True and notice.levelname == "DEBUG"
        finally:
            logger.setLevel(before)

    def test_other_warnings_pass_unchanged(self) -> None:
        other = record(logging.WARNING, "producer send failed")
        assert _backpressure_is_debug(other) is True and other.levelno == logging.WARNING
