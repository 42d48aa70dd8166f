"""Identity (SPEC §9): anonymous journeys that become a lead, and the persons they make.

An event's **owner** is its lead id, or its anonymous id when it has none; each owner's
events fold into a state of their own (keyed by the lead id, or by `anon_key(A)`). A
**link** is a valid unique event carrying both ids: it claims that A is U, unless either is
an ignored id. A's **winning link** is its least (occurred_at, event_id, lead_id); A belongs
to that lead, which keeps the `max_anonymous_ids` least of those that belong to it. A
**person** is a lead with the anonymous ids it keeps (their states merged into its own), or
an anonymous id that owns events and joined no lead.

All of it depends only on the set of valid unique events: winners are minimums, the kept
ids the least of a set, and a person's state a merge of minimums, maximums, sums and flags.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from projections.definitions import Definitions
from projections.lead import LeadState, merge
from schemas.events import MAX_ID_CHARS

try:  # projections/_fold.c's `choose`, where it is built: `chosen` in C
    from projections._fold import choose as _choose
except ImportError:  # pragma: no cover - depends on the install
    _choose = None

# Owner keys of anonymous ids: longer than any lead id, so the two never meet in one table.
ANON_PREFIX = "\x00journey:anonymous:".ljust(MAX_ID_CHARS + 1, "\x00")


def anon_key(anonymous_id: str) -> str:
    """The owner key of an anonymous id (lead ids are their own keys)."""
    return ANON_PREFIX + anonymous_id


def anonymous_of(key: str) -> str | None:
    """The anonymous id of an owner key; None for a lead id (or any other key)."""
    return key[len(ANON_PREFIX) :] if len(key) > len(ANON_PREFIX) and key.startswith(ANON_PREFIX) else None


def person_order(key: str) -> tuple[bool, str]:
    """How outputs list persons: leads by lead id, then anonymous persons by anonymous id."""
    anonymous_id = anonymous_of(key)
    return (False, key) if anonymous_id is None else (True, anonymous_id)


class Link(NamedTuple):
    """A link event as it claims an anonymous id: ordered as SPEC §9 orders links."""

    occurred_at: int
    event_id: str
    lead_id: str


LinkRecord = tuple[str, int, str, str, int]  # a link among the applied events: (anonymous id, occurred_at, event_id, lead id, type)


def winners(links: Iterable[LinkRecord], defs: Definitions) -> dict[str, tuple[int, str, str]]:
    """Each claimed anonymous id's winning link, as (occurred_at, event_id, lead id): the links that
    claim (neither id ignored) compared as SPEC §9 orders them. Plain tuples, not `Link`s: a replay
    of a log with many anonymous journeys runs this loop once per link."""
    ignored = defs.ignored_ids
    found: dict[str, tuple[int, str, str]] = {}
    for anonymous_id, at, event_id, lead_id, _ in links:
        if anonymous_id in ignored or lead_id in ignored:
            continue
        link = (at, event_id, lead_id)
        best = found.get(anonymous_id)
        if best is None or link < best:
            found[anonymous_id] = link
    return found


@dataclass
class Kept:
    """Per lead, the anonymous ids that join it (least winning links first), and those that
    belong to it but stay apart."""

    joined: dict[str, list[str]] = field(default_factory=dict)
    over_limit: dict[str, list[str]] = field(default_factory=dict)


def chosen(links: list[LinkRecord], defs: Definitions) -> tuple[dict[str, list[str]], int]:
    """Per lead, the anonymous ids that join it, and how many stay over the limit: `kept(winners(...))`,
    in C where it is built (a replay with many anonymous journeys decides this once per link)."""
    if _choose is not None:
        return _choose(links, set(defs.ignored_ids), defs.max_anonymous_ids)
    found = kept(winners(links, defs), defs)
    return found.joined, sum(len(ids) for ids in found.over_limit.values())


def kept(won: Mapping[str, tuple[int, str, str]], defs: Definitions) -> Kept:
    """Per lead, its `max_anonymous_ids` least-linked anonymous ids, and the others that belong to it."""
    belonging: dict[str, list[tuple[tuple[int, str, str], str]]] = {}
    for anonymous_id, link in won.items():
        entries = belonging.get(link[2])
        if entries is None:
            belonging[link[2]] = [(link, anonymous_id)]
        else:
            entries.append((link, anonymous_id))
    result = Kept()
    limit = defs.max_anonymous_ids
    for lead_id, entries in belonging.items():
        if len(entries) <= limit:  # all of them (in no order: outputs sort them by id)
            result.joined[lead_id] = [anonymous_id for _, anonymous_id in entries]
            continue
        least = heapq.nsmallest(limit, entries)
        picked = {anonymous_id for _, anonymous_id in least}
        result.joined[lead_id] = [anonymous_id for _, anonymous_id in least]
        result.over_limit[lead_id] = [anonymous_id for _, anonymous_id in entries if anonymous_id not in picked]
    return result


class IdentityCounts(NamedTuple):
    """The report's `identity` section."""

    anonymous_ids: int
    joined: int
    over_limit: int

    def as_dict(self) -> dict[str, int]:
        return {"anonymous_ids": self.anonymous_ids, "joined": self.joined, "over_limit": self.over_limit}


NO_IDENTITY = IdentityCounts(0, 0, 0)


@dataclass
class Persons:
    """The persons of a set of owners: person key (a lead id, or `anon_key(A)`) -> state, with the
    anonymous ids each lead keeps (sorted by code point) and the report's counts."""

    states: dict[str, LeadState]
    anonymous_ids: dict[str, list[str]]  # lead id -> the ids that joined it, by code point; absent: none
    counts: IdentityCounts = NO_IDENTITY


def persons(owners: Mapping[str, LeadState], links: Iterable[LinkRecord], defs: Definitions) -> Persons:
    """SPEC §9's persons, from every owner's state and every link among the valid unique events. The states of persons that joined
    anonymous ids are new objects; the owners' states are left as they are."""
    links = list(links)
    anonymous = {anonymous_of(key) for key in owners} - {None}
    if not anonymous and not links:
        return Persons(dict(owners), {})
    joined, over_limit = chosen(links, defs)
    distinct = anonymous | {link[0] for link in links}
    return Persons(made(owners, joined), sorted_ids(joined), counts_of(joined, over_limit, len(distinct)))


def made(owners: Mapping[str, LeadState], joined: Mapping[str, list[str]]) -> dict[str, LeadState]:
    """Person states: each lead with the states of the anonymous ids that joined it (`joined`, by
    lead id), then each anonymous id that joined none of these leads."""
    states: dict[str, LeadState] = {}
    absorbed: set[str] = set()
    for key, state in owners.items():
        if anonymous_of(key) is not None:
            continue
        ids = joined.get(key)
        if ids:
            state = joined_state(state, ((anonymous_id, owners.get(anon_key(anonymous_id))) for anonymous_id in ids))
            absorbed.update(ids)
        states[key] = state
    for key, state in owners.items():
        anonymous_id = anonymous_of(key)
        if anonymous_id is not None and anonymous_id not in absorbed:
            states[key] = state
    return states


def counts_of(joined: Mapping[str, list[str]], over_limit: int, distinct: int) -> IdentityCounts:
    """The report's identity counts, from the ids that joined, those over the limit and the number of distinct anonymous ids."""
    return IdentityCounts(distinct, sum(len(ids) for ids in joined.values()), over_limit)


def sorted_ids(joined: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Each lead's joined anonymous ids by code point, as outputs list them."""
    return {lead_id: sorted(ids) for lead_id, ids in joined.items()}


def joined_state(own: LeadState, anonymous: Iterable[tuple[str, LeadState | None]]) -> LeadState:
    """A lead's person state: its own facts with those of the anonymous ids that joined it. Merged
    in the order of their ids, so that a first-touch tie goes to the least of them."""
    person = copy_state(own)
    for anonymous_id, state in sorted(anonymous, key=lambda pair: pair[0]):
        if state is not None:
            merge(person, state, anonymous_id)
    return person


def copy_state(state: LeadState) -> LeadState:
    copy = LeadState()
    copy.first_at = list(state.first_at)
    copy.last_at, copy.events, copy.content_reads, copy.contacts = state.last_at, state.events, state.content_reads, state.contacts
    copy.seen = state.seen
    copy.touch_at, copy.touch_id, copy.touch, copy.touch_owner = state.touch_at, state.touch_id, state.touch, state.touch_owner
    copy.revenue = None if state.revenue is None else dict(state.revenue)
    return copy
