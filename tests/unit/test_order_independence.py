"""SPEC §4: any arrival order, with any duplicates, gives the same projections."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from projections import Projector, default_definitions
from schemas import Event, decode
from streams.tools.synthetic import JourneyGenerator

DEFAULTS = default_definitions()
LOG = list(JourneyGenerator(40, seed=7, days=30).records())
# The attribution vector: ties on time, missing and null touch fields, several currencies, half-way amounts.
RICH = [line for line in (Path(__file__).parents[1] / "golden" / "journey-rich.jsonl").read_bytes().split(b"\n") if line.strip()]


def snapshot(records: list[bytes]) -> tuple[dict, list[dict]]:
    projector = Projector()
    projector.feed_all(records)
    report = projector.report(DEFAULTS)
    report["events"] = {k: v for k, v in report["events"].items() if k != "duplicates"}
    return report, list(projector.lead_records(DEFAULTS))


WHOLE = snapshot(LOG)
RICH_WHOLE = snapshot(RICH)
RICH_VALID = [line for line in RICH if isinstance(decode(line), Event)]


class TestOrderIndependence:
    @settings(max_examples=60, deadline=None)
    @given(st.randoms(use_true_random=False), st.lists(st.integers(0, len(LOG) - 1), max_size=40))
    def test_any_permutation_with_any_duplicates_gives_the_same_projections(self, rng: random.Random, repeats: list[int]) -> None:
        records = LOG + [LOG[i] for i in repeats]
        rng.shuffle(records)
        assert snapshot(records) == WHOLE

    @settings(max_examples=30, deadline=None)
    @given(st.integers(0, 2**32), st.lists(st.integers(0, len(RICH_VALID) - 1), max_size=60))
    def test_first_touch_and_revenue_do_not_depend_on_order_or_redelivery(self, seed: int, repeats: list[int]) -> None:
        records = RICH + [RICH_VALID[i] for i in repeats]  # an invalid record sent again counts again
        random.Random(seed).shuffle(records)
        assert snapshot(records) == RICH_WHOLE

    @settings(max_examples=30, deadline=None)
    @given(st.integers(0, len(LOG)))
    def test_replaying_a_log_in_two_halves_into_one_state_equals_replaying_it_whole(self, cut: int) -> None:
        projector = Projector()
        projector.feed_all(LOG[:cut])
        projector.feed_all(LOG[cut:])
        whole = Projector()
        whole.feed_all(LOG)
        assert projector.report(DEFAULTS) == whole.report(DEFAULTS)
        assert projector.leads == whole.leads

    @settings(max_examples=30, deadline=None)
    @given(st.randoms(use_true_random=False))
    def test_duplicates_are_counted_whatever_the_order(self, rng: random.Random) -> None:
        records = LOG + LOG
        rng.shuffle(records)
        projector = Projector()
        projector.feed_all(records)
        single = Projector()
        single.feed_all(LOG)
        assert projector.counts.valid == single.counts.valid
        assert projector.counts.duplicates == 2 * single.counts.duplicates + single.counts.valid
