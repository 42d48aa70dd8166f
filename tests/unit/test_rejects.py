"""replay --rejects keeps what the fold rejects (streams/replay/rejects.py): the same records, in the same
order, whichever fold takes the log, the C one or the Python reference, and exactly those it counts."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings

from projections import Projector
from projections.projector import ACCELERATED, CompactProjector
from streams.replay.rejects import Rejects
from streams.replay.sources import numbered_chunks
from tests.unit.test_fold_accel import records


def kept(projector: Projector, log: bytes, ordered: bool = True) -> list[dict]:
    out = io.BytesIO()
    rejects = Rejects(out, ordered)
    for numbered in numbered_chunks(io.BytesIO(log)):
        placed = numbered if ordered else [((7, number), line) for number, line in reversed(numbered)]
        projector.feed_all(rejects.track(placed), rejects.decode)
    rejects.finish()
    found = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert rejects.count == len(found) == projector.counts.invalid
    return found


pytestmark = pytest.mark.skipif(not ACCELERATED, reason="needs projections._fold; test_fold_accel fails when it is not built")


def test_both_folds_keep_the_golden_logs_rejects(golden: Path) -> None:
    for name in ("journey-small.jsonl", "journey-rich.jsonl", "journey-identity.jsonl"):
        log = (golden / name).read_bytes()
        assert kept(CompactProjector(), log) == kept(Projector(), log)


@settings(max_examples=300, deadline=None)
@given(records)
def test_any_log(lines: list[bytes]) -> None:
    log = b"\n".join(line.replace(b"\n", b" ") for line in lines)
    compact = kept(CompactProjector(), log)
    assert compact == kept(Projector(), log)
    assert [r["line"] for r in compact] == sorted(r["line"] for r in compact)


def test_records_out_of_order_are_written_sorted_by_place() -> None:
    """Kafka records come partition by partition as fetched: held, and written by (partition, offset)."""
    log = b"not json\n[]\n{}\n"
    found = kept(CompactProjector(), log, ordered=False)
    assert [(r["partition"], r["offset"]) for r in found] == [(7, 1), (7, 2), (7, 3)]
