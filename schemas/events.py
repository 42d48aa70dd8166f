"""The journey event: the contract of the event log (SPEC §2).

The pydantic models are the contract. `schemas.decode` has a fast path for
the common case; a property test keeps the two in agreement.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr, TypeAdapter, model_validator

EVENT_TYPES: tuple[str, ...] = (
    "ad_seen",
    "content_read",
    "contact_made",
    "negotiation",
    "purchase",
    "upsell",
    "identified",  # a link only (SPEC §9): it needs both lead_id and anonymous_id
)
TYPE_INDEX: dict[str, int] = {name: i for i, name in enumerate(EVENT_TYPES)}
CONTENT_READ, CONTACT_MADE, NEGOTIATION, PURCHASE, UPSELL, IDENTIFIED = (TYPE_INDEX[t] for t in EVENT_TYPES[1:])

MAX_RECORD_BYTES = 64 * 1024
MAX_ID_CHARS = 128
CURRENT_SCHEMA_VERSION = 1

RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # format_time writes UTC times with a Z of its own
# Every output writes times in UTC with a four-digit year, so an event's UTC instant must fall in
# years 0001-9999 (a local 0001-01-01T00:00:00+01:00 is 0000-12-31 in UTC: nothing could write it).
EARLIEST_MICROS = -62135596800000000  # 0001-01-01T00:00:00Z
LATEST_MICROS = 253402300799999999  # 9999-12-31T23:59:59.999999Z
OUT_OF_CALENDAR = "must fall within years 0001-9999 once in UTC, like 2026-09-01T10:00:00Z"


def parse_time(text: str) -> int:
    """An RFC 3339 time with offset, as integer microseconds since the epoch (UTC).

    Raises ValueError for anything else: a time without offset, a number, a
    calendar date that does not exist.
    """
    if RFC3339.fullmatch(text) is None:
        raise ValueError("must be an RFC 3339 time with offset, like 2026-09-01T10:00:00Z")
    micros = (datetime.fromisoformat(text) - _EPOCH) // _MICROSECOND
    if not EARLIEST_MICROS <= micros <= LATEST_MICROS:
        raise ValueError(OUT_OF_CALENDAR)
    return micros


def format_time(micros: int) -> str:
    """RFC 3339 in UTC with microseconds, the form every output uses. (isoformat: half the cost
    of strftime, and it writes years before 1000 with four digits, as RFC 3339 asks.)"""
    return (_NAIVE_EPOCH + micros * _MICROSECOND).isoformat(timespec="microseconds") + "Z"


def _check_time(text: str) -> str:
    parse_time(text)
    return text


def _check_finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


_MICROSECOND = datetime.resolution

Id = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_CHARS)]
EventTime = Annotated[
    StrictStr,
    Field(pattern=RFC3339.pattern, json_schema_extra={"format": "date-time"}),
    AfterValidator(_check_time),
]
MAX_AMOUNT = 10**12  # SPEC §2: 0 <= amount <= 10^12, so hundredths of any sum of a few stay exact integers
Amount = Annotated[float, Field(ge=0, le=MAX_AMOUNT), AfterValidator(_check_finite)]


class _JourneyEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    event_id: Id = Field(description="Unique per owner (the lead_id, else the anonymous_id); a repeat is a duplicate and is ignored.")
    lead_id: Id | None = Field(None, description="The lead; required unless anonymous_id is present. The owner, and the Kafka record key, when present.")
    anonymous_id: Id | None = Field(
        None, description="The id a platform used before it knew the lead (cookie, device): the owner and record key of an event without lead_id."
    )
    occurred_at: EventTime = Field(description="Event time, RFC 3339 with offset (Z or ±hh:mm).")
    source: StrictStr | None = None
    channel: StrictStr | None = None
    campaign: StrictStr | None = None
    method: StrictStr | None = None
    currency: StrictStr | None = None
    inbound: StrictBool | None = Field(None, description="On contact_made: did the lead start the contact?")
    amount: Amount | None = Field(None, description="Meant for purchase and upsell.")
    properties: dict[str, Any] | None = None
    schema_version: Literal[1] = CURRENT_SCHEMA_VERSION

    @model_validator(mode="after")
    def _owned(self) -> _JourneyEvent:
        if self.lead_id is None and self.anonymous_id is None:
            raise ValueError(NO_OWNER)
        return self

    @property
    def owner(self) -> str:
        """The event's owner: its lead_id, else its anonymous_id (SPEC §2)."""
        return self.lead_id if self.lead_id is not None else self.anonymous_id  # type: ignore[return-value]


NO_OWNER = "lead_id: missing (an event needs a lead_id, or an anonymous_id when the lead is not known yet)"
UNLINKED = "anonymous_id: missing (an identified event links a lead_id and an anonymous_id: it needs both)"


class AdSeen(_JourneyEvent):
    type: Literal["ad_seen"]


class ContentRead(_JourneyEvent):
    type: Literal["content_read"]


class ContactMade(_JourneyEvent):
    type: Literal["contact_made"]


class Negotiation(_JourneyEvent):
    type: Literal["negotiation"]


class Purchase(_JourneyEvent):
    type: Literal["purchase"]


class Upsell(_JourneyEvent):
    type: Literal["upsell"]


class Identified(_JourneyEvent):
    """A link only (SPEC §9): the anonymous_id is the lead_id."""

    type: Literal["identified"]

    @model_validator(mode="after")
    def _linked(self) -> Identified:
        if self.lead_id is None:
            raise ValueError("lead_id: missing (an identified event links a lead_id and an anonymous_id: it needs both)")
        if self.anonymous_id is None:
            raise ValueError(UNLINKED)
        return self


JourneyEvent = Annotated[
    AdSeen | ContentRead | ContactMade | Negotiation | Purchase | Upsell | Identified,
    Field(discriminator="type"),
]
JOURNEY_EVENT = TypeAdapter(JourneyEvent)


def json_schema() -> dict[str, Any]:
    schema = JOURNEY_EVENT.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "JourneyEvent"
    schema["description"] = (
        "One customer-journey event per Kafka record on topic journey.events, key = its owner: lead_id, "
        "else anonymous_id (one of them is required; identified needs both). "
        "Unknown fields are ignored; null counts as absent; records over 64 KiB are invalid."
    )
    return schema
