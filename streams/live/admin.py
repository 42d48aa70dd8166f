"""SPEC §11's admin endpoints: a shadow recorded, promoted or dropped, and `current` handed back to
each worker's file, on journey.definitions. Any worker takes them; every worker (this one
included) applies what the topic says (streams/live/redefine.py), and an answer comes once this
worker has (or after `SETTLE_SECONDS`, the record held all the same).

Bad input records nothing: a body that is no definitions file, or whose identity options differ
from the group's, is a 400 with the reason `journey definitions --check` gives; a promotion
without a shadow is a 409.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections import Definitions
from projections.definitions import DefinitionsError, parse_definitions
from streams.kafka import definitions as topic
from streams.kafka.definitions import digest_of as _digest
from streams.live.ingest import bearer_matches
from streams.live.redefine import Redefinitions

SETTLE_SECONDS = 20.0  # under the 30 s most HTTP clients wait
MAX_BODY_BYTES = 1 << 20  # 1 MiB
Answer = tuple[int, dict[str, Any]]


@dataclass
class Admin:
    token: str | None  # JOURNEY_ADMIN_TOKEN; None: the endpoints answer 403
    bootstrap: str
    embedded: bool
    redefinitions: Redefinitions

    def denied(self, authorization: str | None) -> Answer | None:
        """401 without the token or with a wrong one; 403 when this worker has none configured."""
        if self.token is None:
            return 403, {"error": "the admin endpoints are off on this worker: set JOURNEY_ADMIN_TOKEN (or JOURNEY_ADMIN_TOKEN_FILE) to use them"}
        if not bearer_matches(authorization, self.token):
            return 401, {"error": "missing or wrong admin token: send Authorization: Bearer <JOURNEY_ADMIN_TOKEN>"}
        return None

    async def put_shadow(self, body: bytes) -> Answer:
        if len(body) > MAX_BODY_BYTES:
            return 413, {"error": f"a definitions file of {len(body)} bytes; at most {MAX_BODY_BYTES}"}
        try:
            shadow = parse_definitions(body.decode("utf-8"), "the shadow definitions")
        except UnicodeDecodeError:
            return 400, {"error": "the shadow definitions: not UTF-8 text; send the YAML file as it is"}
        except DefinitionsError as exc:
            return 400, {"error": str(exc)}
        current = self.redefinitions.pipeline.projection.defs
        if shadow.identity != current.identity:
            return 400, {"error": (
                f"the shadow definitions: identity options {_identity(shadow)} are not the group's {_identity(current)}; "
                "a shadow keeps them (trying others takes a replay, or a group of its own: docs/upgrading.md)"
            )}
        await topic.record(self.bootstrap, (topic.SHADOW, shadow))
        await self._settled(lambda: _digest(self._projection().shadow_defs) == shadow.digest)
        return 200, {"shadow": shadow.digest}

    async def promote(self) -> Answer:
        recorded = await topic.read(self.bootstrap, self.embedded)
        if recorded.shadow is None:
            return 409, {"error": "there is no shadow to promote; PUT /api/definitions/shadow first"}
        promoted = recorded.shadow
        # `current` first: should the tombstone not follow, the shadow equals current and is dropped again
        await topic.record(self.bootstrap, (topic.CURRENT, promoted), (topic.SHADOW, None))
        await self._settled(lambda: self._projection().defs.digest == promoted.digest)  # switched (the shadow's drop follows)
        return 200, {"current": promoted.digest}

    async def drop_shadow(self) -> Answer:
        await topic.record(self.bootstrap, (topic.SHADOW, None))
        await self._settled(lambda: self._projection().shadow_defs is None)
        return 200, {"shadow": None}

    async def drop_current(self) -> Answer:
        own_defs, running = self.redefinitions.file_defs, self._projection().defs
        if own_defs.identity != running.identity:
            return 409, {"error": (
                f"this worker's own definitions {own_defs.digest} have identity options {_identity(own_defs)}, not the group's "
                f"{_identity(running)}: handing control back to the files would change who the persons are; nothing recorded"
            )}
        await topic.record(self.bootstrap, (topic.CURRENT, None))
        own = own_defs.digest
        await self._settled(lambda: self._projection().defs.digest == own)
        return 200, {"current": None, "definitions": own}

    def _projection(self) -> Any:
        return self.redefinitions.pipeline.projection

    async def _settled(self, check: Any) -> None:
        await self.redefinitions.settled(check, SETTLE_SECONDS)


def _identity(defs: Definitions) -> str:
    keep, ignored = defs.identity
    return f"(max_anonymous_ids {keep}, ignored_ids {sorted(ignored)})"

