"""The event contract: what a journey event is, and how raw bytes become one.

The bottom layer: it knows nothing of projections, Kafka or the worker.

May import: schemas
"""

from schemas.decode import Event, Rejection, decode, decode_object, owner
from schemas.events import EVENT_TYPES, MAX_RECORD_BYTES, format_time, json_schema, parse_time

__all__ = [
    "EVENT_TYPES",
    "MAX_RECORD_BYTES",
    "Event",
    "Rejection",
    "decode",
    "decode_object",
    "format_time",
    "json_schema",
    "owner",
    "parse_time",
]
