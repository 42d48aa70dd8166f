"""Small builders shared by the tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson


def same_instants(a: Any, b: Any) -> bool:
    """Equal, comparing RFC 3339 strings as instants (SPEC allows any offset spelling)."""
    return _normal(a) == _normal(b)


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str) and len(value) >= 20 and value[4:5] == "-" and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return value
    return value


def event(lead: str = "L1", eid: str = "e1", kind: str = "ad_seen", at: str = "2026-09-01T10:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"event_id": eid, "lead_id": lead, "type": kind, "occurred_at": at, **extra}


def raw(**fields: Any) -> bytes:
    return orjson.dumps(event(**fields))
