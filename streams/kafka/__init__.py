"""Kafka plumbing: topic names and creation, producing, reading a topic to its end, the
dead-letter format, and what the embedded broker (Tansu) needs corrected.

Never Faust (the live worker wraps these for Faust in `streams.live`).

May import: schemas, projections, streams.errors, streams.settings, streams.net, streams.kafka
"""
