"""Lead state to bytes and back: the value a live worker keeps per lead in its table."""

from __future__ import annotations

import struct
from array import array

from projections.lead import LeadState

_NONE = -(2**63)  # stands for "no event of this type" in first_at
_HEAD = struct.Struct("<6qqIIBI")  # first_at x6, last_at, events, content_reads, contacts, seen count
VERSION = 1
_VERSION = struct.Struct("<B")


class CorruptState(ValueError):
    """Stored bytes that are not a lead state of a known version."""


def encode_state(state: LeadState) -> bytes:
    first = [_NONE if at is None else at for at in state.first_at]
    head = _HEAD.pack(*first, state.last_at, state.events, state.content_reads, state.contacts, len(state.seen))
    return _VERSION.pack(VERSION) + head + state.seen.tobytes()


def decode_state(data: bytes) -> LeadState:
    if not data or data[0] != VERSION or len(data) < 1 + _HEAD.size:
        raise CorruptState(f"not a version-{VERSION} lead state ({len(data)} bytes)")
    *first, last_at, events, content_reads, contacts, n_seen = _HEAD.unpack_from(data, 1)
    seen = array("q")
    seen.frombytes(data[1 + _HEAD.size :])
    if len(seen) != n_seen:
        raise CorruptState(f"lead state lists {n_seen} event ids but holds {len(seen)}")
    state = LeadState()
    state.first_at = [None if at == _NONE else at for at in first]
    state.last_at = last_at
    state.events = events
    state.content_reads = content_reads
    state.contacts = contacts
    state.seen = seen
    return state
