"""Identity on a live cluster (SPEC §9): anonymous ids joining their lead across partitions.

An anonymous id A's events live in A's partition, its lead U's in U's: two workers, usually. They
talk through messages on the identity topic (with as many partitions as journey.events, each
message sent to the partition of its target owner), and each message is safe in any order and
any number of times:

- **Claim** (U's partition -> A's): a link event of U names A. A's partition keeps A's winning link,
  the minimum of every claim; a message that does not lower it changes nothing.
- **Facts** (A's partition -> a lead's): A's winning link and a snapshot of A's facts, sent to the
  winner whenever either changes, and to the former winner when the winner changes (the link then
  names another lead: a withdrawal). A lead keeps, per A it has heard of, the least link heard and
  the join of every snapshot: both only move one way, so a late or repeated message changes
  nothing. A belongs to the lead while that link names it.

The lead's record is the authority on the ids it keeps (`LeadSection`: the `max_anonymous_ids`
least-linked ids that belong to it, each with its link and facts, and their facts merged). Every
other id it has heard of has a `Held` entry of its own; those that belong are over the limit and
count as persons of their own. One message writes held entries first and the lead's record last,
so a changelog cut anywhere in a batch leaves a state that applying the message again mends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from projections.changes import Applied
from projections.definitions import Definitions
from projections.identity import Link, anon_key, anonymous_of, copy_state
from projections.lead import LeadState, LeadView, merge, view
from projections.partition import BatchResult, LeadTable, PartitionState, shadow_view
from projections.stored import Held, Kept, LeadSection, StoredLead, anon_section, joined_facts, lead_section
from schemas.events import MAX_ID_CHARS

HELD_PREFIX = "\x00journey:held:".ljust(MAX_ID_CHARS + 1, "\x00")


def held_key(lead_id: str, anonymous_id: str) -> str:
    """Where a lead's held entry of an anonymous id lives: a lead's entries side by side, by key."""
    return f"{held_prefix(lead_id)}{anonymous_id}"


def held_prefix(lead_id: str) -> str:
    return f"{HELD_PREFIX}{len(lead_id):03d}{lead_id}"


def held_of(key: str) -> tuple[str, str] | None:
    """(lead id, anonymous id) of a held entry's key; None for any other key."""
    if len(key) <= len(HELD_PREFIX) + 3 or not key.startswith(HELD_PREFIX):
        return None
    at = len(HELD_PREFIX)
    size = int(key[at : at + 3])
    return key[at + 3 : at + 3 + size], key[at + 3 + size :]


class Claim(NamedTuple):
    """A link event of `link.lead_id` names `anonymous_id`; `claims` is False when either id is an
    ignored id (it then only makes A known: the report counts every distinct anonymous id)."""

    anonymous_id: str
    link: Link
    kind: int  # the link event's type (index into EVENT_TYPES): a lead change names it as the cause
    claims: bool


class Facts(NamedTuple):
    """A's winning link and a snapshot of its facts, for the lead `target` (the winner, or a former one)."""

    target: str
    anonymous_id: str
    link: Link
    facts: LeadState
    cause: Applied


Scan = Callable[[str], Iterable[tuple[str, bytes]]]  # the table's entries whose keys start with a prefix


def claim_of(lead_id: str, anonymous_id: str, cause: Applied, defs: Definitions) -> Claim:
    claims = lead_id not in defs.ignored_ids and anonymous_id not in defs.ignored_ids
    return Claim(anonymous_id, Link(cause.occurred_at, cause.event_id, lead_id), cause.type, claims)


def snapshot(state: LeadState) -> LeadState:
    """What a Facts message carries of A's state: its facts, not its seen event ids."""
    facts = copy_state(state)
    facts.seen = type(state.seen)("q")
    return facts


def joined(into: LeadState, other: LeadState) -> LeadState:
    """The join of two snapshots of one owner's facts: every field only grows as events are added
    (counts and revenue too: amounts are never negative), so the join is the later snapshot,
    whichever arrived first."""
    result = copy_state(into)
    result.first_at = [b if a is None else a if b is None else min(a, b) for a, b in zip(into.first_at, other.first_at, strict=True)]
    result.last_at = max(into.last_at, other.last_at)
    result.events, result.content_reads = max(into.events, other.events), max(into.content_reads, other.content_reads)
    result.contacts = into.contacts | other.contacts
    if other.touch_at is not None and (into.touch_at is None or (other.touch_at, other.touch_id or "") < (into.touch_at, into.touch_id or "")):
        result.touch_at, result.touch_id, result.touch = other.touch_at, other.touch_id, other.touch
    if other.revenue:
        revenue = dict(into.revenue or {})
        for currency, amount in other.revenue.items():
            revenue[currency] = max(revenue.get(currency, amount), amount)
        result.revenue = revenue
    return result


def person_state(stored: StoredLead, lead_id: str) -> LeadState:
    """A lead's person state: its own facts with those of the anonymous ids it keeps."""
    together = joined_facts(stored.identity)
    if together is None:
        return stored.state
    person = copy_state(stored.state)
    merge(person, together, together.touch_owner or "")
    return person


def person_view(key: str, data: bytes, defs: Definitions) -> LeadView:
    """The person view of a stored owner: a lead with its kept ids, or an anonymous id alone."""
    stored = StoredLead.decode(data)
    state = stored.state if anonymous_of(key) is not None else person_state(stored, key)
    return view(key, state, defs)


def kept_ids(data: bytes, lead_id: str) -> list[str]:
    """The anonymous ids a stored lead keeps, by code point (SPEC §9's `anonymous_ids`)."""
    return sorted(entry.anonymous_id for entry in lead_section(StoredLead.decode(data).identity, lead_id).kept)


class Linker:
    """What one partition does with identity: its owners' events that concern it, and the messages
    that reach it. Writes what changes through `table`, counts persons in `part`, and leaves the
    messages to send and the leads moved in `result`."""

    def __init__(self, defs: Definitions, partition: int, part: PartitionState, table: LeadTable, scan: Scan, result: BatchResult) -> None:
        self.defs, self.partition, self.part, self.table, self.scan, self.result = defs, partition, part, table, scan, result

    # -- an anonymous id's partition ------------------------------------------------------------

    def anonymous_folded(self, key: str, stored: StoredLead, views: tuple[LeadView | None, LeadView, LeadView | None, LeadView | None], cause: Applied) -> None:
        """A's own events were applied: with a winner, its lead hears of it; without, A is a person here
        (old view None: A is new to the table; a view of no events: A was known by a claim only, and no
        person). `views`: A's before and after, then under the shadow definitions (None without)."""
        old, new, old_shadow, new_shadow = views
        anonymous_id = anonymous_of(key)
        assert anonymous_id is not None
        if old is None:
            self.part.identity.anonymous_ids += 1
        winner = anon_section(stored.identity).winner
        if winner is None:
            counted = old is not None and old.events
            self.part.replace(old if counted else None, new, old_shadow if counted else None, new_shadow)
        else:
            self._send(Facts(winner.lead_id, anonymous_id, winner, snapshot(stored.state), cause))

    def claimed(self, claim: Claim) -> None:
        key = anon_key(claim.anonymous_id)
        data = self.table.get(key)
        stored = StoredLead(self.partition, -1, 0, LeadState()) if data is None else StoredLead.decode(data)
        if data is None:
            self.part.identity.anonymous_ids += 1
        section = anon_section(stored.identity)
        old = section.winner
        won = claim.claims and (old is None or claim.link < old)
        if won:
            if old is None and stored.state.events:  # counted in its lead from now on
                self.part.remove(view(key, stored.state, self.defs), shadow_view(self.part, key, stored.state))
            section.winner = claim.link
            stored.identity = section.encode()
            cause, facts = Applied(claim.link.event_id, claim.kind, claim.link.occurred_at), snapshot(stored.state)
            for target in (claim.link.lead_id, *(() if old is None else (old.lead_id,))):
                self._send(Facts(target, claim.anonymous_id, claim.link, facts, cause))
        if data is None or won:
            self.table.put(key, stored.encode())

    def _send(self, facts: Facts) -> None:
        self.result.messages.append((facts.target, facts))

    # -- a lead's partition ---------------------------------------------------------------------

    def heard(self, facts: Facts) -> None:
        """Facts of an anonymous id reach one of the leads that claimed it."""
        lead_id = facts.target
        data = self.table.get(lead_id)
        # The lead's own link event made it known here before its claim went out; only a partition
        # whose state was lost and is being read again lacks it for a while.
        stored = StoredLead(self.partition, -1, 0, LeadState()) if data is None else StoredLead.decode(data)
        old_state = person_state(stored, lead_id) if data is not None else None
        before = view(lead_id, old_state, self.defs) if old_state is not None else None
        section = lead_section(stored.identity, lead_id)
        _Keeper(self, lead_id, section).hear(facts)
        if data is None and not section.kept:
            return  # nothing of the lead's to keep: its own events make it known
        stored.identity = section.encode()
        self.table.put(lead_id, stored.encode())  # last: the held entries this message wrote come first
        new_state = person_state(stored, lead_id)
        after = view(lead_id, new_state, self.defs)
        if after != before or self.part.shadow is not None:  # the shadow's view may move when this one does not
            self.part.replace(before, after, shadow_view(self.part, lead_id, old_state), shadow_view(self.part, lead_id, new_state))
        if after != before:
            self.result.move(lead_id, before, after, facts.cause)

    def apart(self, anonymous_id: str, old: LeadState | None, new: LeadState | None) -> None:
        """An anonymous id over its lead's limit, counted as a person here: from `old` facts to `new` (None: not counted)."""
        key, part = anon_key(anonymous_id), self.part
        old, new = (None if state is None or not state.events else state for state in (old, new))
        before = None if old is None else view(key, old, self.defs)
        after = None if new is None else view(key, new, self.defs)
        if before is not None and after is None:
            part.remove(before, shadow_view(part, key, old))
        elif after is not None and (after != before or part.shadow is not None):
            part.replace(before, after, shadow_view(part, key, old), shadow_view(part, key, new))


class _Keeper:
    """The ids one lead keeps, kept equal to "the least `max_anonymous_ids` links among the anonymous
    ids that belong to it" as a Facts message about one of them arrives."""

    def __init__(self, linker: Linker, lead_id: str, section: LeadSection) -> None:
        self.linker, self.lead_id, self.section = linker, lead_id, section
        self.limit = linker.defs.max_anonymous_ids
        self.tally = linker.part.identity

    def hear(self, facts: Facts) -> None:
        anonymous_id, kept = facts.anonymous_id, self.section.kept
        place = next((i for i, entry in enumerate(kept) if entry.anonymous_id == anonymous_id), None)
        if place is not None:
            entry = kept[place]
            link, merged = min(entry.link, facts.link), joined(entry.facts, facts.facts)
            if link.lead_id == self.lead_id:
                kept[place] = Kept(link, anonymous_id, merged)
            else:  # a withdrawal: an earlier link names another lead
                del kept[place]
                self.tally.joined -= 1
                self._hold(Held(link, merged, self.linker.partition), anonymous_id)
                self._promote()
            self._recount()
            return
        old = self._held(anonymous_id)
        entry = Held(facts.link, snapshot(facts.facts), self.linker.partition) if old is None else Held(min(old.link, facts.link), joined(old.facts, facts.facts), old.partition)
        was_over = old is not None and old.link.lead_id == self.lead_id
        if entry.link.lead_id == self.lead_id and self._joins(entry.link):
            self._keep(Kept(entry.link, anonymous_id, entry.facts), old if was_over else None)
            return
        self._hold(entry, anonymous_id)
        before = old.facts if was_over and old is not None else None
        if entry.link.lead_id == self.lead_id:  # it belongs, and stays over the limit
            if before is None:
                self.tally.over_limit += 1
            self.linker.apart(anonymous_id, before, entry.facts)
        elif before is not None:  # withdrawn while over the limit
            self.tally.over_limit -= 1
            self.linker.apart(anonymous_id, before, None)

    def _joins(self, link: Link) -> bool:
        kept = self.section.kept
        return len(kept) < self.limit or (bool(kept) and link < kept[-1].link)

    def _keep(self, entry: Kept, was_over: Held | None) -> None:
        """An id that belongs joins, evicting the last kept one when the lead keeps as many as it may."""
        kept = self.section.kept
        if len(kept) >= self.limit:
            evicted = kept.pop()
            self.tally.joined -= 1
            self.tally.over_limit += 1
            self._hold(Held(evicted.link, evicted.facts, self.linker.partition), evicted.anonymous_id)
            self.linker.apart(evicted.anonymous_id, None, evicted.facts)
        kept.append(entry)
        kept.sort(key=lambda item: item.link)
        self.tally.joined += 1
        if was_over is not None:
            self.tally.over_limit -= 1
            self.linker.apart(entry.anonymous_id, was_over.facts, None)
        self._recount()

    def _promote(self) -> None:
        """A kept id left: the best id over the limit takes its place."""
        if len(self.section.kept) >= self.limit:
            return
        prefix = held_prefix(self.lead_id)
        kept = {entry.anonymous_id for entry in self.section.kept}
        over = [
            (entry.link, key[len(prefix) :], entry)
            for key, data in self.linker.scan(prefix)
            if key[len(prefix) :] not in kept and (entry := Held.decode(data)).link.lead_id == self.lead_id
        ]
        if not over:
            return
        link, anonymous_id, entry = min(over, key=lambda item: (item[0], item[1]))
        self.section.kept.append(Kept(link, anonymous_id, entry.facts))
        self.section.kept.sort(key=lambda item: item.link)
        self.tally.joined += 1
        self.tally.over_limit -= 1
        self.linker.apart(anonymous_id, entry.facts, None)

    def _recount(self) -> None:
        """The kept ids' facts merged again (at most `max_anonymous_ids` merges): a minimum does not un-merge."""
        person = LeadState()
        for entry in sorted(self.section.kept, key=lambda item: item.anonymous_id):
            merge(person, entry.facts, entry.anonymous_id)
        self.section.joined = person

    def _held(self, anonymous_id: str) -> Held | None:
        data = self.linker.table.get(held_key(self.lead_id, anonymous_id))
        return None if data is None else Held.decode(data)

    def _hold(self, entry: Held, anonymous_id: str) -> None:
        self.linker.table.put(held_key(self.lead_id, anonymous_id), entry.encode())
