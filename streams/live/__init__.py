"""The live worker: the Faust app and its wiring (`app`), the live projection and what it
stores (`projection`, `state`), lead changes and the cluster's partials (`changes`,
`partial`), the gap guard, the tables, and its HTTP face (`cluster`, `web`, `ingest`,
`metrics`, `dashboard/`).

Only `app` and `worker` see the whole Faust app; every other module gets the few
things it uses.

May import: schemas, projections, streams.errors, streams.settings, streams.net, streams.kafka, streams.live
"""
