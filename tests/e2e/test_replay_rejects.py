"""`journey replay --rejects FILE` (issue 28, item 5): every invalid record, where it is and why, as a user runs it.

Held to a reference written here from the contract alone: each line of the
file read as it is, numbered from 1 with blank lines counted, judged by
`schemas.decode.decode`. The same file comes out of a replay in one process,
in several (`--partitions`), and from stdin; the report counts as invalid
exactly the lines the file holds.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from schemas import Rejection, decode
from tests.e2e.conftest import run_journey

pytestmark = pytest.mark.usefixtures("journey")
GOLDEN_LOGS = ("journey-small.jsonl", "journey-rich.jsonl", "journey-identity.jsonl", "identity-examples.jsonl")


def reference(log: bytes) -> list[dict]:
    expected = []
    for number, line in enumerate(log.split(b"\n"), 1):
        line = line.removesuffix(b"\r")
        if not line.strip():
            continue
        found = decode(line)
        if isinstance(found, Rejection):
            record = line[:1024].decode("utf-8", errors="replace")  # a character split by the cut: see the test of it
            expected.append({"line": number, "kind": found.kind, "reason": found.reason, "record": record, "size": len(line)})
    return expected


def replayed(tmp_path: Path, log: Path | bytes, *flags: str) -> tuple[dict, list[dict]]:
    out = tmp_path / "rejects.jsonl"
    source = ["--input", "-"] if isinstance(log, bytes) else ["--input", str(log)]
    result = run_journey("replay", *source, "--format", "json", "--rejects", str(out), *flags, stdin=log if isinstance(log, bytes) else None)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout), [json.loads(line) for line in out.read_bytes().splitlines()]


class TestRejects:
    @pytest.mark.parametrize("name", GOLDEN_LOGS)
    @pytest.mark.parametrize("how", ["one process", "three processes", "stdin"])
    def test_the_golden_logs_invalid_records_with_their_lines_and_reasons(self, golden: Path, tmp_path: Path, name: str, how: str) -> None:
        log = golden / name
        flags = {"one process": ("--partitions", "1"), "three processes": ("--partitions", "3"), "stdin": ()}[how]
        report, rejects = replayed(tmp_path, log.read_bytes() if how == "stdin" else log, *flags)
        expected = reference(log.read_bytes())
        assert expected, f"{name} holds no invalid record"
        assert rejects == expected
        assert report["events"]["invalid"] == len(rejects)

    @pytest.mark.parametrize("partitions", ["1", "2"])
    def test_lines_are_counted_as_read_and_records_cut_to_1_kib(self, tmp_path: Path, partitions: str) -> None:
        ok = orjson.dumps({"event_id": "e1", "lead_id": "L", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z"})
        lines = [
            ok, b"", b"   ", b"\xff\xfe not UTF-8", ok.replace(b"e1", b"e2") + b"\r", b"{" + b'"x": "' + b"\xc3\xa9" * 2000 + b'"}',
            b"[1, 2]", b"\r", ok.replace(b"ad_seen", b"webinar"), orjson.dumps({"event_id": "big", "padding": "x" * 70_000}), b'{"lead_id": "L"}',
        ]
        log = b"\n".join(lines)  # CR LF on one line, blank lines, no line ending at the end
        (tmp_path / "log.jsonl").write_bytes(log)
        report, rejects = replayed(tmp_path, tmp_path / "log.jsonl", "--partitions", partitions)
        expected = reference(log)
        expected[1]["record"] = '{"x": "' + "é" * 508  # 1023 bytes: the é the cut at 1024 splits is left out, not replaced
        assert rejects == expected
        assert [r["line"] for r in rejects] == [4, 6, 7, 9, 10, 11]
        assert rejects[0]["record"] == "\ufffd\ufffd not UTF-8" and rejects[0]["kind"] == "not_json"
        assert rejects[1]["size"] == len(lines[5]) and rejects[4]["record"] == lines[9][:1024].decode()
        assert rejects[4]["kind"] == "too_large" and rejects[4]["size"] == len(lines[9])
        assert report["events"] == {"valid": 2, "invalid": 6, "duplicates": 0}

    def test_a_log_without_invalid_records_writes_an_empty_file(self, tmp_path: Path) -> None:
        ok = orjson.dumps({"event_id": "e1", "lead_id": "L", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00Z"})
        report, rejects = replayed(tmp_path, ok + b"\n")
        assert rejects == [] and report["events"]["invalid"] == 0

    def test_a_rejects_file_that_cannot_be_written_is_one_clear_line(self, golden: Path, tmp_path: Path) -> None:
        result = run_journey("replay", "--input", str(golden / "journey-small.jsonl"), "--rejects", str(tmp_path / "no-such-dir" / "r.jsonl"))
        assert result.returncode != 0
        lines = result.stderr.decode().splitlines()
        assert len(lines) == 1 and "--rejects" in lines[0] and "cannot write" in lines[0] and "Traceback" not in lines[0]
