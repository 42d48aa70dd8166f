"""The adapters around the core: Kafka, replay, the live worker and its HTTP face, development tools.

One folder per job; each says in its docstring what it may import, and
tests/unit/test_layout.py holds every module to it (no cycles, not even under
TYPE_CHECKING):

- `streams.kafka`: Kafka plumbing (topics, producing, reading a topic, dead letters, Tansu's quirks).
- `streams.replay`: `journey replay` (sources, the parallel fold, the text report).
- `streams.live`: the worker (Faust app, projection, tables, cluster protocol, HTTP, ingest, metrics).
- `streams.tools`: development tools (embedded broker, demo, synthetic journeys).
- `streams.cli`: the `journey` command, the only module that may import all of them.

The modules at this level (`errors`, `settings`, `net`) are shared by every folder.

May import: schemas, projections, streams.errors, streams.settings, streams.net
"""
