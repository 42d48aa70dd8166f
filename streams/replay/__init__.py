"""`journey replay`: a log from a file, stdin or a topic, folded by the core on every core,
and the report as JSON or as tables a person reads.

Never Faust and never the live worker: replay is the reference the live
worker is held to, so it shares only the core (`projections`) with it.

May import: schemas, projections, streams.errors, streams.settings, streams.net, streams.kafka, streams.replay
"""
