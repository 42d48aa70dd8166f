"""Stage, step and qualification definitions (SPEC §3), read from YAML and checked."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError

from schemas.events import EVENT_TYPES

DEFAULT_YAML = """\
pipeline:
  stages:                      # in order; a stage is entered by any of its `events` types
    - {name: explore,     events: [ad_seen]}
    - {name: research,    events: [content_read]}
    - {name: contact,     events: [contact_made]}
    - {name: negotiation, events: [negotiation]}
    - {name: purchase,    events: [purchase]}
    - {name: upsell,      events: [upsell]}
funnel:
  steps:
    - {name: attention, events: [ad_seen]}
    - {name: interest,  events: [content_read]}
    - {name: desire,    events: [contact_made, negotiation]}
    - {name: action,    events: [purchase, upsell]}
qualification:
  mql_min_content_reads: 2
  sal_stale_after_days: 14
conversion_window_days: 30     # optional: a funnel conversion counts within this many days of the first step
identity:                      # optional: anonymous ids joining their lead
  max_anonymous_ids: 100
  ignored_ids: ["", "null", "undefined", "0", "anonymous", "guest"]
"""

DAY_MICROS = 86_400_000_000
DEFAULT_WINDOW_DAYS = 30
DEFAULT_MAX_ANONYMOUS_IDS = 100
DEFAULT_IGNORED_IDS = ("", "null", "undefined", "0", "anonymous", "guest")
_KEY_ERRORS = ("extra_forbidden", "invalid_key")  # invalid_key: a YAML key that is not a string
NO_INDEX = -1


class DefinitionsError(ValueError):
    """A definitions file that cannot be used; the message names file, place and fix."""


@dataclass(frozen=True, slots=True)
class Definitions:
    stages: tuple[str, ...]
    steps: tuple[str, ...]
    stage_of_type: tuple[int, ...]  # per event type index: its stage index, or NO_INDEX
    step_of_type: tuple[int, ...]  # per event type index: its funnel step index, or NO_INDEX
    mql_min_content_reads: int
    sal_stale_after_micros: int
    conversion_window_micros: int = DEFAULT_WINDOW_DAYS * DAY_MICROS
    max_anonymous_ids: int = DEFAULT_MAX_ANONYMOUS_IDS
    ignored_ids: frozenset[str] = frozenset(DEFAULT_IGNORED_IDS)
    digest: str = ""  # SPEC §7: names these definitions across a cluster (see `digest_of`)
    canonical: str = ""  # the parsed document as canonical JSON: what the digest is taken over

    @property
    def identity(self) -> tuple[int, tuple[str, ...]]:
        """The identity options (SPEC §9): what the live identity state itself is built under."""
        return self.max_anonymous_ids, tuple(sorted(self.ignored_ids))

    @classmethod
    def from_document(cls, data: Any, origin: str) -> Definitions:
        """Definitions from a parsed document, such as their `canonical` JSON read back."""
        return _build(data, _Lines(None), origin)


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1)
    events: list[str] = Field(min_length=1)


class _Pipeline(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    stages: list[_Group] = Field(min_length=1)


class _Funnel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    steps: list[_Group] = Field(min_length=1)


class _Qualification(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    mql_min_content_reads: StrictInt = Field(ge=1)
    sal_stale_after_days: StrictInt | StrictFloat = Field(ge=0)


class _Identity(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    max_anonymous_ids: StrictInt = Field(DEFAULT_MAX_ANONYMOUS_IDS, ge=0)
    ignored_ids: list[StrictStr] = Field(default_factory=lambda: list(DEFAULT_IGNORED_IDS))


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    pipeline: _Pipeline
    funnel: _Funnel
    qualification: _Qualification
    conversion_window_days: StrictInt = Field(DEFAULT_WINDOW_DAYS, ge=1)
    identity: _Identity = Field(default_factory=_Identity)


def default_definitions() -> Definitions:
    return parse_definitions(DEFAULT_YAML, "<built-in default>")


def load_definitions(path: str | Path) -> Definitions:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionsError(f"{path}: cannot read the definitions file: {_os_reason(exc)}") from None
    return parse_definitions(text, str(path))


def parse_definitions(text: str, origin: str) -> Definitions:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise DefinitionsError(f"{origin}: {where}not valid YAML ({problem}); fix the syntax there") from None
    return _build(data, _Lines(root), origin)


def _build(data: Any, lines: _Lines, origin: str) -> Definitions:
    if not isinstance(data, dict):
        raise DefinitionsError(
            f"{origin}: the file must be a mapping with keys pipeline, funnel and qualification; "
            "see `journey definitions` for the default"
        )
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        raise DefinitionsError(_describe(origin, lines, data, exc.errors(include_url=False))) from None

    stage_of_type = _index_types(origin, lines, "pipeline", "stages", "stage", parsed.pipeline.stages)
    step_of_type = _index_types(origin, lines, "funnel", "steps", "step", parsed.funnel.steps)
    return Definitions(
        stages=tuple(g.name for g in parsed.pipeline.stages),
        steps=tuple(g.name for g in parsed.funnel.steps),
        stage_of_type=stage_of_type,
        step_of_type=step_of_type,
        mql_min_content_reads=parsed.qualification.mql_min_content_reads,
        sal_stale_after_micros=round(parsed.qualification.sal_stale_after_days * DAY_MICROS),
        conversion_window_micros=parsed.conversion_window_days * DAY_MICROS,
        max_anonymous_ids=parsed.identity.max_anonymous_ids,
        ignored_ids=frozenset(parsed.identity.ignored_ids),
        digest=digest_of(data),
        canonical=canonical_json(data),
    )


def canonical_json(document: Any) -> str:
    """SPEC §7: the parsed document as JSON with sorted keys and no whitespace."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"))


def digest_of(document: Any) -> str:
    """SPEC §7: the first 12 hex digits of SHA-256 over the parsed YAML document as canonical JSON,
    so key order, whitespace and comments in the file change nothing."""
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()[:12]


def _index_types(origin: str, lines: _Lines, section: str, key: str, noun: str, groups: list[_Group]) -> tuple[int, ...]:
    owner: dict[str, int] = {}
    names: dict[str, int] = {}
    for i, group in enumerate(groups):
        place = (section, key, i)
        if group.name in names:
            raise DefinitionsError(
                f"{origin}: {lines.where((*place, 'name'))}: {noun} name {group.name!r} is used twice "
                f"(also {key}[{names[group.name]}]); give each {noun} its own name"
            )
        names[group.name] = i
        for j, event_type in enumerate(group.events):
            spot = lines.where((*place, "events", j))
            if event_type not in EVENT_TYPES:
                raise DefinitionsError(
                    f"{origin}: {spot}: unknown event type {event_type!r}; use one of {', '.join(EVENT_TYPES)}"
                )
            if event_type in owner:
                other = groups[owner[event_type]].name
                raise DefinitionsError(
                    f"{origin}: {spot}: {event_type!r} is already in {noun} {other!r}; "
                    f"an event type may be in one {noun} only, so remove one of them"
                )
            owner[event_type] = i
    return tuple(owner.get(t, NO_INDEX) for t in EVENT_TYPES)


def _describe(origin: str, lines: _Lines, data: Any, errors: list[dict[str, Any]]) -> str:
    """One refusal in the file's own terms: its path, its line, what the value must be."""
    # A misspelled key also makes the right one missing: name the misspelling.
    error = min(errors, key=lambda e: e["type"] not in _KEY_ERRORS)
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "missing":
        return f"{origin}: {lines.where(_user_path(data, loc[:-1]))}: missing key {loc[-1]!r}; add it (see `journey definitions`)"
    if kind in _KEY_ERRORS:
        key = loc[-1] if kind == "extra_forbidden" else error["input"]
        hint = "use `events` (a bare `on` reads as true in YAML)" if key is True else "remove it or fix its spelling"
        return f"{origin}: {lines.where(_user_path(data, loc[:-1]))}: unknown key {key!r}; {hint}"
    path = _user_path(data, loc)
    same_place = [e for e in errors if _user_path(data, tuple(e["loc"])) == path]
    return f"{origin}: {lines.where(path)}: {_expected(path, same_place)}, got {error.get('input')!r}; fix the value"


# What a value must be, by its key (`[]`: an item of that list). A key missing here is
# described from the validator's own messages.
_EXPECTED = {
    "pipeline": "must be a mapping with the key stages",
    "funnel": "must be a mapping with the key steps",
    "qualification": "must be a mapping of its settings (see `journey definitions`)",
    "stages": "must be a list of one or more stages",
    "steps": "must be a list of one or more steps",
    "stages[]": "must be a stage: a mapping with the keys name and events",
    "steps[]": "must be a step: a mapping with the keys name and events",
    "name": "must be a name of at least one character",
    "events": "must be a list of one or more event types",
    "events[]": f"must be an event type ({', '.join(EVENT_TYPES)})",
    "mql_min_content_reads": "must be a whole number ≥ 1",
    "sal_stale_after_days": "must be a number of days ≥ 0 (fractions allowed)",
    "conversion_window_days": "must be a whole number of days ≥ 1",
    "max_anonymous_ids": "must be a whole number ≥ 0",
    "ignored_ids": "must be a list of ids (strings), such as [\"\", \"null\", \"undefined\"]",
    "ignored_ids[]": "must be an id: a string",
}


def _expected(path: tuple[Any, ...], errors: list[dict[str, Any]]) -> str:
    names = [part for part in path if isinstance(part, str)]
    key = (names[-1] + "[]" if isinstance(path[-1], int) else names[-1]) if names else ""
    if key in _EXPECTED:
        return _EXPECTED[key]
    # One message per member of a union (int | float), each without the model's own name.
    said = ("must be a mapping" if e["type"] in ("model_type", "dict_type") else e["msg"].lower().replace("input should be", "must be") for e in errors)
    return " or ".join(dict.fromkeys(said))


def _user_path(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The validator's location as a path in the file: without the names it adds for the member
    of a union (`sal_stale_after_days.int`), which are no place in the document."""
    path: list[Any] = []
    node = data
    for part in loc:
        in_mapping = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_mapping or in_list):
            continue
        node = node[part]
        path.append(part)
    return tuple(path)


class _Lines:
    """Turns a path inside the YAML document into 'pipeline.stages[2].events (line 7)'."""

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root

    def where(self, loc: tuple[Any, ...]) -> str:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "top level"
        node = self._find(loc)
        return f"{path} (line {node.start_mark.line + 1})" if node is not None else path

    def _find(self, loc: tuple[Any, ...]) -> yaml.Node | None:
        node = self._root
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if _key(k) == part), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
            else:
                return node
            if node is None:
                return None
        return node


def _key(node: yaml.Node) -> Any:
    return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value


def _os_reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
