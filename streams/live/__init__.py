"""The live worker: Faust's app and the parts it is wired from.

- `app`: the one wiring point (Settings in, a Faust app out); `worker`: `journey worker`;
- `pipeline`: the hot path, a fetch of journey.events folded, sent and written as one batch;
- `rebalance`, `catchup`: partitions coming and going, the change stream caught up (SPEC §7);
- `watermarks`: this worker's watermark announced, every worker's followed;
- `store`: the lead table's local store, written after its changelog;
- `internals`: every place the worker reaches into Faust's or aiokafka's internals, checked at start;
- `embedded`: the development broker's profile; `gaps`: the guard against skipped offsets;
- `changes`, `partial`: wire formats (lead changes, a worker's share of the report);
- `cluster`, `web`, `ingest`, `metrics`, `dashboard/`: the HTTP face.

What a batch does to the lead table, and which lead changes follow, is decided in the core
(`projections.live`, `projections.changes`); the worker decodes, calls it, writes and publishes.
Only `app` and `worker` see the whole Faust app; every other module gets the few things it uses.

May import: schemas, projections, streams.errors, streams.settings, streams.net, streams.kafka, streams.live
"""
