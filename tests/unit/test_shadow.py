"""SPEC §11's shadow in the core: a live worker's second set of counts, under candidate definitions,
kept batch by batch (in C and in the Python reference), equals what replay's comparison says of
the same log: the candidate's report, and who moves between stages and qualification levels. In
any order of batches and identity messages, with crashes, with the shadow there from the start or
added halfway, and derived again from the table (a restart) alike."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections import Definitions, Projector, default_definitions, parse_definitions
from projections.live import LiveProjection
from projections.shadow import candidate, changes
from streams.live.partial import Partial, merge
from tests.unit.test_live_identity import COMPILED, IDENTITY_LOG, KEEP_TWO, Cluster
from tests.unit.test_view_reference import definitions

ALT = parse_definitions((__import__("tests.conftest", fromlist=["GOLDEN"]).GOLDEN / "alt-definitions.yaml").read_text(), "alt")


def with_identity_of(current: Definitions, other: Definitions, qualification: dict[str, Any] | None = None, window: int | None = None) -> Definitions:
    """`other`'s stages and funnel with `current`'s identity options (a shadow must keep the group's:
    SPEC §9), and optionally other qualification rules and conversion window."""
    document = json.loads(other.canonical)
    identity = json.loads(current.canonical).get("identity")
    document.pop("identity", None)
    if identity is not None:
        document["identity"] = identity
    if qualification is not None:
        document["qualification"] = qualification
    if window is not None:
        document["conversion_window_days"] = window
    return parse_definitions(json.dumps(document), "shadow")


@st.composite
def shadows(draw: st.DrawFn, current: Definitions) -> Definitions:
    qualification = {"mql_min_content_reads": draw(st.integers(1, 3)), "sal_stale_after_days": draw(st.sampled_from([0.5, 1, 3, 7]))}
    return with_identity_of(current, draw(definitions()), qualification, draw(st.sampled_from([None, 1, 30])))


def replayed(lines: list[bytes], current: Definitions, shadow: Definitions) -> dict[str, Any]:
    projector = Projector()
    projector.feed_all(lines)
    return projector.comparison(current, shadow)


def compared(live: LiveProjection) -> dict[str, Any]:
    """What a worker holding every partition answers for GET /api/definitions/shadow (without the digests)."""
    assert live.shadow_defs is not None
    mark = live.cluster_watermark
    found = changes(live, mark)
    return {
        "baseline": merge(live.defs, [Partial.of(live, mark)]),
        "candidate": merge(live.shadow_defs, [Partial.of(candidate(live), mark)]),
        "stage_changes": dict(sorted(found.stages.items())),
        "qualification_changes": dict(sorted(found.qualifications.items())),
    }


def converges(lines: list[bytes], current: Definitions, shadow: Definitions, compiled: bool, seed: int, crashes: float = 0.0, added_at: float = 0.0) -> None:
    """The cluster folds the log with the shadow there from the start (`added_at` 0) or added after
    that share of the batches (`redefine`, as a worker does when it hears of one)."""
    rng = random.Random(seed)
    cluster = Cluster(current, compiled, rng, crashes, shadow=None if added_at else shadow)
    for line in lines:
        cluster.produce(line)
    steps = 0
    while cluster.step():
        steps += 1
        if added_at and cluster.live.shadow_defs is None and rng.random() < added_at / 10:
            cluster.live.redefine(current, shadow, cluster.table.items())
    if cluster.live.shadow_defs is None:
        cluster.live.redefine(current, shadow, cluster.table.items())
    expected = replayed(lines, current, shadow)
    assert compared(cluster.live) == expected
    again = LiveProjection(current, compiled=compiled, shadow=shadow)  # a restart: derived from the table
    again.rebuild(cluster.table.items(), set(cluster.live.partitions))
    again.cluster_watermark = cluster.live.cluster_watermark
    assert compared(again) == expected


class TestAShadowCountsAsReplayCompares:
    @pytest.mark.parametrize("compiled", COMPILED)
    @pytest.mark.parametrize("seed", range(3))
    def test_the_golden_identity_log_under_the_alternative_definitions(self, compiled: bool, seed: int) -> None:
        lines = list(IDENTITY_LOG)
        random.Random(seed).shuffle(lines)
        shadow = with_identity_of(default_definitions(), ALT)
        converges(lines, default_definitions(), shadow, compiled, seed, crashes=0.1 * (seed % 2), added_at=0.5 * (seed > 0))
        assert replayed(lines, default_definitions(), shadow)["stage_changes"]  # the two definitions do differ here

    @pytest.mark.parametrize("compiled", COMPILED)
    def test_a_lead_past_its_limit_and_stale_leads(self, compiled: bool) -> None:
        shadow = with_identity_of(KEEP_TWO, ALT, {"mql_min_content_reads": 1, "sal_stale_after_days": 0.5})
        for seed in range(4):
            converges(IDENTITY_LOG, KEEP_TWO, shadow, compiled, seed)
        assert replayed(IDENTITY_LOG, KEEP_TWO, shadow)["qualification_changes"]

    def test_the_same_definitions_as_a_shadow_change_nothing(self) -> None:
        found = replayed(IDENTITY_LOG, default_definitions(), default_definitions())
        assert found["stage_changes"] == found["qualification_changes"] == {}
        converges(IDENTITY_LOG, default_definitions(), default_definitions(), COMPILED[-1], 0)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data(), st.integers(0, 2**16), st.booleans(), st.sampled_from([0.0, 0.2]), st.sampled_from([0.0, 0.5]))
    def test_any_definitions_in_any_order(self, data: st.DataObject, seed: int, compiled: bool, crashes: float, added_at: float) -> None:
        current = data.draw(definitions())
        shadow = data.draw(shadows(current))
        lines = random.Random(seed).sample(IDENTITY_LOG, 120)
        converges(lines, current, shadow, compiled and COMPILED[-1], seed, crashes, added_at)


class TestNoShadow:
    def test_a_worker_without_one_says_so(self) -> None:
        with pytest.raises(ValueError, match="no shadow"):
            candidate(LiveProjection(default_definitions()))
