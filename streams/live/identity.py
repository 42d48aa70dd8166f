"""Identity messages on the identity topic (`{app_id}-identity`): one home for that wire format, both ways.

Claims and Facts (projections.linking) as JSON, keyed by the owner whose partition they go to (the
anonymous id for a claim, the lead for facts), partitioned as journey.events is, so that partition
i of the topic goes to the worker that owns partition i of journey.events:

    {"claim": {"anonymous_id", "link": [occurred_at, event_id, lead_id], "type", "claims"}}
    {"facts": {"target", "anonymous_id", "link": [...], "cause": [event_id, type, occurred_at],
               "state": {"first_at", "last_at", "events", "content_reads", "contacts",
                         "touch": [occurred_at, event_id, source, channel, campaign] | null,
                         "revenue": {currency: hundredths} | null}}}

Times are microseconds since the epoch; type is the index into EVENT_TYPES. A record that is not
one of these (another version, or damage) is `Unreadable`, with the reason.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from projections.changes import Applied
from projections.identity import Link
from projections.lead import LeadState
from projections.linking import Claim, Facts


class Unreadable(NamedTuple):
    reason: str


def encode(message: Claim | Facts) -> bytes:
    if isinstance(message, Claim):
        return orjson.dumps({"claim": {"anonymous_id": message.anonymous_id, "link": list(message.link), "type": message.kind, "claims": message.claims}})
    state = message.facts
    touch = None if state.touch_at is None or state.touch is None else [state.touch_at, state.touch_id, *state.touch]
    return orjson.dumps({
        "facts": {
            "target": message.target, "anonymous_id": message.anonymous_id, "link": list(message.link), "cause": list(message.cause),
            "state": {
                "first_at": state.first_at, "last_at": state.last_at, "events": state.events, "content_reads": state.content_reads,
                "contacts": state.contacts, "touch": touch, "revenue": state.revenue,
            },
        }
    })


def decode(value: bytes) -> Claim | Facts | Unreadable:
    try:
        data = orjson.loads(value)
        if "claim" in data:
            claim = data["claim"]
            return Claim(_str(claim["anonymous_id"]), _link(claim["link"]), int(claim["type"]), bool(claim["claims"]))
        facts = data["facts"]
        cause = facts["cause"]
        return Facts(_str(facts["target"]), _str(facts["anonymous_id"]), _link(facts["link"]), _state(facts["state"]), Applied(_str(cause[0]), int(cause[1]), int(cause[2])))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, IndexError) as exc:
        return Unreadable(f"not an identity message of this journey ({type(exc).__name__}: {exc})")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _link(value: Any) -> Link:
    at, event_id, lead_id = value
    return Link(int(at), _str(event_id), _str(lead_id))


def _state(data: dict[str, Any]) -> LeadState:
    state = LeadState()
    state.first_at = [None if at is None else int(at) for at in data["first_at"]]
    if len(state.first_at) != len(LeadState().first_at):
        raise ValueError("a state of another number of event types")
    state.last_at, state.events, state.content_reads, state.contacts = int(data["last_at"]), int(data["events"]), int(data["content_reads"]), int(data["contacts"])
    touch = data["touch"]
    if touch is not None:
        at, event_id, source, channel, campaign = touch
        state.touch_at, state.touch_id, state.touch = int(at), _str(event_id), (source, channel, campaign)
    revenue = data["revenue"]
    state.revenue = None if not revenue else {_str(currency): int(amount) for currency, amount in revenue.items()}
    return state
