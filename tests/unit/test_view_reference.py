"""`view` runs once per lead in every replay, so it is written for speed (one pass over
the event types). Here it must agree with SPEC §4 read literally, for any definitions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from projections import parse_definitions
from projections.definitions import NO_INDEX, Definitions
from projections.lead import LeadState, view
from schemas.events import EVENT_TYPES


def literal_stage(first_at: list[int | None], group_of_type: tuple[int, ...]) -> tuple[int, int | None]:
    """The latest group any of the lead's events is in; entered at its earliest event of that group."""
    groups = [group_of_type[kind] for kind, at in enumerate(first_at) if at is not None and group_of_type[kind] != NO_INDEX]
    if not groups:
        return NO_INDEX, None
    latest = max(groups)
    return latest, min(at for kind, at in enumerate(first_at) if at is not None and group_of_type[kind] == latest)


def literal_reach(first_at: list[int | None], step_of_type: tuple[int, ...], furthest: int) -> tuple[int, ...]:
    """Step k is reached at the earliest event of step k or of any later step."""
    return tuple(
        min(at for kind, at in enumerate(first_at) if at is not None and step_of_type[kind] >= k) for k in range(furthest + 1)
    )


@st.composite
def definitions(draw: st.DrawFn) -> Definitions:
    def groups(prefix: str) -> str:
        types = draw(st.lists(st.sampled_from(EVENT_TYPES), min_size=1, unique=True))
        where = draw(st.lists(st.integers(0, len(types) - 1), min_size=len(types), max_size=len(types)))
        named = [[t for t, w in zip(types, where, strict=True) if w == g] for g in range(len(types))]
        return "\n".join(f"    - name: {prefix}{i}\n      events: [{', '.join(g)}]" for i, g in enumerate(n for n in named if n))

    text = f"pipeline:\n  stages:\n{groups('s')}\nfunnel:\n  steps:\n{groups('f')}\nqualification:\n  mql_min_content_reads: 2\n  sal_stale_after_days: 3\n"
    keep = draw(st.sampled_from([0, 1, 2, 100]))
    ignored = draw(st.sampled_from(['["", "null", "undefined", "0", "anonymous", "guest"]', "[]", '["A1", "L2"]']))
    text += f"identity:\n  max_anonymous_ids: {keep}\n  ignored_ids: {ignored}\n"
    return parse_definitions(text, "generated")


states = st.lists(st.none() | st.integers(0, 10**12), min_size=len(EVENT_TYPES), max_size=len(EVENT_TYPES))


class TestViewAgreesWithTheSpec:
    @settings(max_examples=400, deadline=None)
    @given(definitions(), states)
    def test_stage_entry_funnel_step_and_reach_times(self, defs: Definitions, first_at: list[int | None]) -> None:
        state = LeadState()
        state.first_at = first_at
        lead = view("L", state, defs)
        assert (lead.stage, lead.stage_entered_at) == literal_stage(first_at, defs.stage_of_type)
        furthest, _ = literal_stage(first_at, defs.step_of_type)
        assert lead.funnel_step == furthest
        assert lead.reach_at == literal_reach(first_at, defs.step_of_type, furthest)
