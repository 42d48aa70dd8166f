"""Valid records that are merely unusual: the C fold gives what the Python reference gives, and never raises.

SPEC §2 bounds a record (64 KiB) and its ids (128 characters), and nothing
else: one lead may have any number of events, purchases in any number of
currencies, and source, channel, campaign and currency strings as long as the
record allows. These tests draw such leads and hold both C folds, replay's
(`CompactProjector`) and the live worker's (`LiveProjection(compiled=True)`),
to the Python reference (`Projector`, `LiveProjection(compiled=False)`).

Where the C side, or both, fail on such a record today, the test is marked
xfail(strict=True): it turns into a failure, to be unmarked, the day that is
fixed. (More than 255 currencies for one lead was one, until the stored lead
layout version 3 widened the C fold's count of them.)
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections import Definitions, Projector, default_definitions
from projections.lead import MAX_HUNDREDTHS, REVENUE_PAST_LIMIT, LeadState, merge, record
from projections.live import BatchResult, LiveProjection
from projections.projector import ACCELERATED, CompactProjector
from projections.stored import LEAD_HEAD, StoredLead
from schemas.decode import Rejection, decode
from schemas.events import EVENT_TYPES, MAX_ID_CHARS, MAX_RECORD_BYTES
from tests.unit.test_catch_up import DictTable
from tests.unit.test_live_fold import PARTITION, batches, same
from tests.unit.test_view_reference import definitions

pytestmark = pytest.mark.skipif(not ACCELERATED, reason="needs projections._fold; test_fold_accel fails when it is not built")

HEAVY = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])

# Characters of 1 to 4 UTF-8 bytes, and some JSON escapes: strings whose length in characters,
# UTF-8 bytes and JSON bytes all differ.
ALPHABET = ["a", "Z", "é", "€", "𝄞", "\u2028", '"', "\\", "\x00", " "]
DAYS = [f"2026-09-{day:02d}T{hour:02d}:00:00Z" for day in (1, 2, 3) for hour in (0, 12)] + ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]


def event_id_of(index: int) -> str:
    """128 characters of 1- to 4-byte characters with a long shared prefix: touches that tie on
    time are told apart by their ends."""
    tail = f"-{index}"
    return ("𝄞é" * MAX_ID_CHARS)[: MAX_ID_CHARS - len(tail)] + tail


LEAD = "L" + "€" * (MAX_ID_CHARS - 1)  # a lead id at the limit, of 3-byte characters


@dataclass(frozen=True)
class OneLead:
    """The records of one lead, made from a seed: `events` of them, purchases and upsells in
    `currencies` distinct currencies, duplicates, touches tying on time, amounts up to the limit,
    and with `long_strings` sources, channels, campaigns and currencies of up to thousands of
    characters. Thousands of records are too many for Hypothesis to draw one by one (and to
    print): it draws the sizes and the seed."""

    events: int
    currencies: int
    seed: int
    long_strings: bool = False

    def lines(self) -> list[bytes]:
        rng = random.Random(self.seed)
        strings = [self._text(rng) for _ in range(rng.randint(3, 6))] if self.long_strings else ["google", "", "é"]
        names = [f"C{i}" for i in range(self.currencies)]
        return [orjson.dumps(self._record(rng, index, names, strings)) for index in range(self.events)]

    def _record(self, rng: random.Random, index: int, names: list[str], strings: list[str]) -> dict[str, object]:
        kind = rng.choice(EVENT_TYPES) if index >= len(names) else ("purchase" if index % 2 else "upsell")
        roll = rng.randrange(10)
        eid = event_id_of(rng.randrange(index)) if roll == 0 and index else f"e{index}" if roll == 1 else event_id_of(index)
        record: dict[str, object] = {"event_id": eid, "lead_id": LEAD, "type": kind, "occurred_at": rng.choice(DAYS)}
        if kind in ("purchase", "upsell"):
            record["amount"] = rng.choice([0.005, 2.675, 19.995, 10**12])
            record["currency"] = names[index] if index < len(names) else rng.choice([*names[:3], None])
        if rng.random() < 0.5:
            for field in ("source", "channel", "campaign"):
                record[field] = rng.choice([*strings, None])
        if self.long_strings and "currency" in record and rng.random() < 0.5:
            record["currency"] = rng.choice(strings)
        if kind == "contact_made":
            record["inbound"] = rng.random() < 0.5
        return record

    @staticmethod
    def _text(rng: random.Random) -> str:
        """Up to a third of a record's bytes (four of them fit a record or, now and then, do not), of 1- to 4-byte
        characters and JSON escapes: lengths in characters, UTF-8 bytes and JSON bytes all differ."""
        piece = "".join(rng.choices(ALPHABET, k=rng.randint(1, 6)))
        chars = rng.randint(0, MAX_RECORD_BYTES // 3) // max(1, len(piece.encode()))
        return (piece * chars)[:chars]


def one_lead(events: tuple[int, int], currencies: tuple[int, int], long_strings: bool = False) -> st.SearchStrategy[OneLead]:
    return st.builds(OneLead, st.integers(*events), st.integers(*currencies), st.integers(0, 2**32), st.just(long_strings))


def replays_alike(lines: list[bytes], defs: Definitions) -> dict:
    compact, reference = CompactProjector(), Projector()
    compact.feed_all(lines)
    reference.feed_all(lines)
    assert compact.counts == reference.counts
    assert compact.watermark == reference.watermark
    assert compact.leads == reference.leads
    assert compact.aggregate(defs) == reference.aggregate(defs)
    assert compact.report(defs) == reference.report(defs)
    return reference.report(defs)


class TestManyEventsForOneLead:
    @HEAVY
    @given(st.data(), one_lead(events=(1_000, 3_000), currencies=(0, 20)))
    def test_replay(self, data: st.DataObject, lead: OneLead) -> None:
        lines = lead.lines()
        replays_alike(lines, data.draw(definitions()))

    @HEAVY
    @given(st.data(), one_lead(events=(1_000, 2_500), currencies=(0, 20)))
    def test_live(self, data: st.DataObject, lead: OneLead) -> None:
        lines = lead.lines()
        same(lines, batches(data.draw, len(lines)), default_definitions(), {})

    def test_ten_thousand_events_in_one_batch(self) -> None:
        lines = [orjson.dumps({"event_id": event_id_of(i), "lead_id": LEAD, "type": EVENT_TYPES[i % 6], "occurred_at": DAYS[i % 6]}) for i in range(10_000)]
        replays_alike(lines + lines[:100], default_definitions())
        same(lines + lines[:100], [(0, 5_000), (5_000, 10_100)], default_definitions(), {})


class TestLongStrings:
    @HEAVY
    @given(st.data(), one_lead(events=(1, 40), currencies=(0, 8), long_strings=True))
    def test_replay(self, data: st.DataObject, lead: OneLead) -> None:
        lines = lead.lines()
        replays_alike(lines, data.draw(definitions()))

    @HEAVY
    @given(st.data(), one_lead(events=(1, 40), currencies=(0, 8), long_strings=True))
    def test_live(self, data: st.DataObject, lead: OneLead) -> None:
        lines = lead.lines()
        same(lines, batches(data.draw, len(lines)), default_definitions(), {})

    @pytest.mark.parametrize("size", [MAX_RECORD_BYTES - 1, MAX_RECORD_BYTES, MAX_RECORD_BYTES + 1])
    def test_one_string_fills_the_record(self, size: int) -> None:
        """A source (or currency) as long as a record allows, and one byte more: valid, valid, invalid."""
        for field in ("source", "currency", "campaign"):
            base = {"event_id": event_id_of(0), "lead_id": LEAD, "type": "purchase", "occurred_at": DAYS[0], "amount": 1, field: ""}
            padding = size - len(orjson.dumps(base))
            line = orjson.dumps({**base, field: "𝄞" * (padding // 4) + "a" * (padding % 4)})
            assert len(line) == size
            assert (type(decode(line)) is Rejection) == (size > MAX_RECORD_BYTES)
            replays_alike([line, line], default_definitions())
            same([line, line], [(0, 1), (0, 2)], default_definitions(), {})

    def test_ids_at_the_limit_and_one_past_it(self) -> None:
        ok = {"event_id": event_id_of(7), "lead_id": LEAD, "type": "ad_seen", "occurred_at": DAYS[0], "source": "s"}
        over = [{**ok, "event_id": ok["event_id"] + "x"}, {**ok, "lead_id": LEAD + "x"}]
        lines = [orjson.dumps(record) for record in (ok, *over)]
        assert [type(decode(line)) is Rejection for line in lines] == [False, True, True]
        replays_alike(lines, default_definitions())
        same(lines, [(0, 3)], default_definitions(), {})


class TestManyCurrencies:
    @HEAVY
    @given(st.data(), one_lead(events=(255, 400), currencies=(200, 255)))
    def test_up_to_255_currencies(self, data: st.DataObject, lead: OneLead) -> None:
        lines = lead.lines()
        replays_alike(lines, default_definitions())
        same(lines, batches(data.draw, len(lines)), default_definitions(), {})

    @HEAVY
    @given(one_lead(events=(400, 600), currencies=(256, 400)))
    def test_hundreds_of_currencies_in_replay(self, lead: OneLead) -> None:
        lines = lead.lines()
        replays_alike(lines, default_definitions())

    @HEAVY
    @given(st.data(), one_lead(events=(400, 600), currencies=(256, 400)))
    def test_hundreds_of_currencies_live(self, data: st.DataObject, lead: OneLead) -> None:
        lines = lead.lines()
        same(lines, batches(data.draw, len(lines)), default_definitions(), {})

    def test_a_lead_the_python_fold_stored_with_300_currencies_is_read_by_the_c_fold(self) -> None:
        lines = [orjson.dumps({"event_id": f"e{i}", "lead_id": "L", "type": "purchase", "occurred_at": DAYS[0], "amount": 1, "currency": f"C{i}"}) for i in range(301)]
        table = DictTable()
        reference = LiveProjection(default_definitions(), compiled=False)
        reference.process(PARTITION, list(enumerate(lines[:300])), table, BatchResult())
        assert len(StoredLead.decode(table["L"]).state.revenue or {}) == 300
        assert table["L"][: LEAD_HEAD.size] == LEAD_HEAD.pack(PARTITION, 299, 0)
        same(lines, [(300, 301)], default_definitions(), dict(table))


class TestSums:
    def test_revenue_summed_across_leads_past_int64(self) -> None:
        """92,300 purchases of 10^12 (SPEC's largest amount) with one first touch: 9.23e18 hundredths,
        past int64, summed exactly by the C fold (the reference's Python ints are exact by nature; its
        fold of this many leads is what test_fold_accel holds the C fold to on smaller logs)."""
        lines = [
            orjson.dumps({"event_id": "e", "lead_id": f"L{i}", "type": "purchase", "occurred_at": DAYS[0], "amount": 10**12, "currency": "EUR", "source": "s"})
            for i in range(92_300)
        ]
        projector = CompactProjector()
        projector.feed_all(lines)
        report = projector.report(default_definitions())
        assert report["attribution"]["source"]["s"]["revenue"]["EUR"] == 92_300 * 10**12
        assert report["attribution"]["source"]["s"]["customers"] == 92_300

    @pytest.mark.parametrize("merged", [False, True])
    def test_one_persons_revenue_past_int64_is_refused_by_the_c_fold(self, merged: bool) -> None:
        """92,234 purchases of 10^12 by one person (by one lead, or by its lead and an anonymous id it joins):
        past int64 hundredths, the bound of the stored lead, the C fold refuses in the reference's words."""
        owner = (lambda i: {"lead_id": "L"}) if not merged else (lambda i: {"lead_id": "L"} if i % 2 else {"anonymous_id": "A"})
        lines = [
            orjson.dumps({"event_id": f"e{i}", **owner(i), "type": "purchase", "occurred_at": DAYS[0], "amount": 10**12, "currency": "EUR"})
            for i in range(92_300)
        ]
        if merged:
            lines.append(orjson.dumps({"event_id": "link", "lead_id": "L", "anonymous_id": "A", "type": "identified", "occurred_at": DAYS[1]}))
        projector = CompactProjector()
        with pytest.raises(OverflowError, match=re.escape(REVENUE_PAST_LIMIT)):
            projector.feed_all(lines)
            projector.report(default_definitions())

    def test_the_reference_refuses_the_same_at_the_same_bound(self) -> None:
        """The Python fold at the bound itself (folding 92,234 purchases there takes minutes): one
        hundredth more than int64 holds is refused, by a purchase and by joining an anonymous id."""
        purchase = decode(orjson.dumps({"event_id": "e", "lead_id": "L", "type": "purchase", "occurred_at": DAYS[0], "amount": 0.01, "currency": "EUR"}))
        assert not isinstance(purchase, Rejection)
        full = LeadState()
        full.revenue = {"EUR": MAX_HUNDREDTHS - 1}
        record(full, purchase)  # exactly at the bound: kept
        assert full.revenue == {"EUR": MAX_HUNDREDTHS}
        with pytest.raises(OverflowError, match=re.escape(REVENUE_PAST_LIMIT)):
            record(full, purchase._replace(event_id="f"))
        half, other = LeadState(), LeadState()
        half.revenue, other.revenue = {"EUR": MAX_HUNDREDTHS // 2 + 1}, {"EUR": MAX_HUNDREDTHS // 2 + 1}
        with pytest.raises(OverflowError, match=re.escape(REVENUE_PAST_LIMIT)):
            merge(half, other, "A")
        half.revenue = {"EUR": MAX_HUNDREDTHS // 2}
        merge(half, other, "A")
        assert half.revenue == {"EUR": MAX_HUNDREDTHS}


EDGES = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"]  # local times whose UTC instant is in year 10000 or 0
EDGES_INSIDE = {EDGES[0]: "9999-12-31T23:59:59.999999Z", EDGES[1]: "0001-01-01T00:00:00Z"}


class TestCalendarEdges:
    @pytest.mark.parametrize("at", EDGES)
    def test_replay_rejects_it_in_the_users_words(self, at: str) -> None:
        """RFC 3339 in form, but no output could write its UTC instant (docs/spec-notes.md): invalid, with the reason."""
        line = orjson.dumps({"event_id": "e", "lead_id": "L", "type": "ad_seen", "occurred_at": at})
        rejection = decode(line)
        assert type(rejection) is Rejection and "0001-9999" in rejection.reason
        report = replays_alike([line, orjson.dumps({"event_id": "f", "lead_id": "L", "type": "ad_seen", "occurred_at": EDGES_INSIDE[at]})], default_definitions())
        assert report["events"]["invalid"] == 1 and report["events"]["valid"] == 1

    @pytest.mark.parametrize("at", EDGES_INSIDE.values())
    def test_the_last_instants_inside_the_calendar_replay_and_publish(self, at: str) -> None:
        from streams.live.changes import change_records

        line = orjson.dumps({"event_id": "e", "lead_id": "L", "type": "ad_seen", "occurred_at": at})
        replays_alike([line], default_definitions())
        live, table, result = LiveProjection(default_definitions()), DictTable(), BatchResult()
        live.process(PARTITION, [(0, line)], table, result)
        live.settle(result, None, table)
        assert len(change_records(result.changes)) == 1

    @pytest.mark.parametrize("at", EDGES)
    def test_the_live_worker_counts_it_invalid_and_goes_on(self, at: str) -> None:
        line = orjson.dumps({"event_id": "e", "lead_id": "L", "type": "ad_seen", "occurred_at": at})
        live, table, result = LiveProjection(default_definitions()), DictTable(), BatchResult()
        live.process(PARTITION, [(0, line)], table, result)
        live.settle(result, None, table)
        assert len(result.invalid) == 1 and not result.changes


@pytest.mark.parametrize("compiled", [True, False])
def test_a_partition_of_events_before_1970_rebuilds_at_its_own_watermark(compiled: bool) -> None:
    """occurred_at may be before 1970 (negative instants): a lead's last_at starts below any
    instant, so the watermark a restart derives from the table is the one the fold reached."""
    from projections.live import rebuilt

    lines = [
        orjson.dumps({"event_id": "e1", "lead_id": "L", "type": "ad_seen", "occurred_at": "1960-01-01T00:00:00Z"}),
        orjson.dumps({"event_id": "e2", "lead_id": "L", "type": "content_read", "occurred_at": "1961-01-01T00:00:00Z"}),
    ]
    live, table, result = LiveProjection(default_definitions(), compiled=compiled), DictTable(), BatchResult()
    live.process(PARTITION, list(enumerate(lines)), table, result)
    live.settle(result, None, table)
    assert live.local_watermark() == -283_996_800_000_000  # 1961-01-01 in microseconds
    assert rebuilt(default_definitions(), table.items(), {PARTITION})[PARTITION].watermark == live.local_watermark()
