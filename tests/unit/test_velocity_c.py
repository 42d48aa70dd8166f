"""SPEC §10's velocity counts in C (`_fold.velocity_move`, `velocity_convert`) held to the Python
reference (`Velocity.move_reference`, `convert_reference`): any persons, added and taken back in
any order, with instants across the whole calendar, ties, gaps and windows of any size."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.projector import ACCELERATED
from projections.report import Velocity
from schemas.events import EARLIEST_MICROS, LATEST_MICROS

pytestmark = pytest.mark.skipif(not ACCELERATED, reason="needs projections._fold; test_fold_accel fails when it is not built")

STAGES, STEPS = 6, 4
DAY = 86_400_000_000
instants = st.one_of(
    st.integers(EARLIEST_MICROS, LATEST_MICROS),
    st.integers(-3 * DAY, 3 * DAY),  # around 1970, where floor division of negative days matters
    st.sampled_from([EARLIEST_MICROS, LATEST_MICROS, 0, DAY - 1, DAY]),
)
entered = st.tuples(*[st.one_of(st.none(), instants)] * STAGES)
reach = st.integers(0, STEPS).flatmap(lambda n: st.lists(instants, min_size=n, max_size=n).map(lambda xs: tuple(sorted(xs))))
windows = st.one_of(st.integers(0, 400 * DAY), st.sampled_from([0, 1, 14 * DAY, LATEST_MICROS - EARLIEST_MICROS, 2**62 - 1]))


def pair(window: int) -> tuple[Velocity, Velocity]:
    return Velocity.empty(STAGES, STEPS, window), Velocity.empty(STAGES, STEPS, window)


@settings(max_examples=300, deadline=None)
@given(people=st.lists(st.tuples(entered, reach), max_size=25), window=windows, order=st.randoms(use_true_random=False))
def test_the_c_counts_equal_the_reference_added_and_taken_back(people, window, order) -> None:
    c, py = pair(window)
    for person_entered, person_reach in people:
        c.move(person_entered, 1)
        c.convert(person_reach, 1)
        py.move_reference(person_entered, 1)
        py.convert_reference(person_reach, 1)
    assert c == py
    gone = list(people)
    order.shuffle(gone)
    for person_entered, person_reach in gone[: len(gone) // 2]:  # persons that move on: taken back, in another order
        c.move(person_entered, -1)
        c.convert(person_reach, -1)
        py.move_reference(person_entered, -1)
        py.convert_reference(person_reach, -1)
    assert c == py
    for person_entered, person_reach in gone[len(gone) // 2 :]:
        c.move(person_entered, -1)
        c.convert(person_reach, -1)
    assert c == Velocity.empty(STAGES, STEPS, window)  # every count taken back: nothing left, no zero-count days
