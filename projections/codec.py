"""Lead state to bytes and back: the value a live worker keeps per lead in its table.

The first byte is the version of the layout. A worker reads every version it
has ever written: each has a reader that turns its bytes into fields, and
`UPCASTERS` upgrade those fields one version at a time to the current one
(like `schemas.decode.UPCASTERS` for events), so a worker upgraded in place
keeps its tables and its changelog. A version newer than this journey knows
is refused, never guessed at.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from typing import Any

from projections.lead import LeadState

VERSION = 1
_NONE = -(2**63)  # stands for "no event of this type" in first_at
_HEAD_V1 = struct.Struct("<6qqIIBI")  # first_at x6, last_at, events, content_reads, contacts, seen count
_VERSION = struct.Struct("<B")

Fields = dict[str, Any]


class CorruptState(ValueError):
    """Stored bytes that are not a lead state of a known version."""


def encode_state(state: LeadState) -> bytes:
    first = [_NONE if at is None else at for at in state.first_at]
    head = _HEAD_V1.pack(*first, state.last_at, state.events, state.content_reads, state.contacts, len(state.seen))
    return _VERSION.pack(VERSION) + head + state.seen.tobytes()


def decode_state(data: bytes) -> LeadState:
    if not data:
        raise CorruptState("an empty lead state")
    version = data[0]
    reader = _READERS.get(version)
    if reader is None:
        newer = " (written by a newer journey: upgrade this worker)" if version > VERSION else ""
        raise CorruptState(f"lead state version {version} is not one this journey reads{newer}")
    fields = reader(data)
    for step in range(version, VERSION):
        fields = UPCASTERS[step](fields)
    return _state(fields)


def _read_v1(data: bytes) -> Fields:
    if len(data) < 1 + _HEAD_V1.size:
        raise CorruptState(f"not a version-1 lead state ({len(data)} bytes)")
    *first, last_at, events, content_reads, contacts, n_seen = _HEAD_V1.unpack_from(data, 1)
    seen = array("q")
    seen.frombytes(data[1 + _HEAD_V1.size :])
    if len(seen) != n_seen:
        raise CorruptState(f"lead state lists {n_seen} event ids but holds {len(seen)}")
    return {
        "first_at": [None if at == _NONE else at for at in first],
        "last_at": last_at,
        "events": events,
        "content_reads": content_reads,
        "contacts": contacts,
        "seen": seen,
    }


def _state(fields: Fields) -> LeadState:
    state = LeadState()
    for name, value in fields.items():
        setattr(state, name, value)
    return state


# The reader of each stored version, and the upcaster from version N to N + 1.
# A new layout adds `N + 1: _read_vN1`, moves VERSION on, and adds `N: upcast_vN_vN1`.
_READERS: dict[int, Callable[[bytes], Fields]] = {1: _read_v1}
UPCASTERS: dict[int, Callable[[Fields], Fields]] = {}
