"""Reading JSON lines: every non-blank line once, whatever the line endings and chunking."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.replay import sources

lines = st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")) | st.sampled_from([b"", b"  ", b"\t"]), max_size=30)


class TestJsonLines:
    @settings(max_examples=300, deadline=None)
    @given(lines, st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=30, max_size=30), st.booleans())
    def test_each_non_blank_line_once_without_its_ending(self, body: list[bytes], endings: list[bytes], final: bool) -> None:
        data = b"".join(line + end for line, end in zip(body, endings, strict=False))
        if not final and data:
            data = data[: -len(endings[len(body) - 1])]  # no line ending after the last line
        expected = [line for line in body if line and not line.isspace()]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sources, "CHUNK_BYTES", 7)  # lines cross chunk borders
            assert list(sources.jsonl_records(io.BytesIO(data))) == expected

    @settings(max_examples=300, deadline=None)
    @given(lines, st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=30, max_size=30), st.booleans(), st.integers(1, 9))
    def test_numbered_the_records_are_those_with_their_line_numbers(self, body: list[bytes], endings: list[bytes], final: bool, chunk: int) -> None:
        """replay --rejects names a record by its line: 1-based, every line read counted, blank ones too."""
        data = b"".join(line + end for line, end in zip(body, endings, strict=False))
        if not final and data:
            data = data[: -len(endings[len(body) - 1])]
        expected = [(number, line) for number, line in enumerate(body, 1) if line and not line.isspace()]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sources, "CHUNK_BYTES", chunk)  # lines cross chunk borders; a line longer than a chunk
            numbered = [pair for chunk_ in sources.numbered_chunks(io.BytesIO(data)) for pair in chunk_]
        assert numbered == expected
        assert [line for _, line in numbered] == list(sources.jsonl_records(io.BytesIO(data)))
