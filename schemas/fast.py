"""A C-speed decoder for the common, valid event (msgspec).

It mirrors the pydantic models in `schemas.events`, which stay the contract:
anything this decoder does not accept is handed to the models, which accept
it or say why not, and a property test checks that this decoder never accepts
what the models would refuse. Two checks are left to `schemas.decode`: the
occurred_at format and the schema_version value.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

import msgspec

from schemas.events import EVENT_TYPES, MAX_AMOUNT, MAX_ID_CHARS

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
_Amount = Annotated[float, msgspec.Meta(ge=0, le=MAX_AMOUNT)]  # msgspec refuses 1e400 itself


class FastEvent(msgspec.Struct, tag_field="type", frozen=True, gc=False):
    # gc=False: a decoded event cannot be part of a reference cycle (it holds only
    # what JSON gives), and leaving it untracked makes decoding a quarter faster.
    event_id: _Id
    occurred_at: str
    lead_id: _Id | None = None  # one of lead_id and anonymous_id is needed: schemas.decode checks
    anonymous_id: _Id | None = None
    source: str | None = None
    channel: str | None = None
    campaign: str | None = None
    method: str | None = None
    currency: str | None = None
    inbound: bool | None = None
    amount: _Amount | None = None
    properties: dict[str, Any] | None = None
    schema_version: int | None = None

    index = -1  # the position of the event type in EVENT_TYPES (a class attribute, not a field)


def _event_class(index: int, name: str) -> type[FastEvent]:
    cls = msgspec.defstruct(f"Fast_{name}", [], bases=(FastEvent,), tag=name, frozen=True, gc=False)
    cls.index = index
    return cls


FAST_EVENTS = tuple(_event_class(i, name) for i, name in enumerate(EVENT_TYPES))
# A union of classes made at import: only typing.Union takes them as a tuple.
FAST_DECODER = msgspec.json.Decoder(Union[FAST_EVENTS])  # noqa: UP007  # type: ignore[valid-type]
FAST_ERRORS = (msgspec.MsgspecError, RecursionError)  # what FAST_DECODER raises for what it does not accept; RecursionError: deep nesting
