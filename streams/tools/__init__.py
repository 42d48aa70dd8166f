"""Development tools: the embedded broker, `journey demo` and the synthetic journey generator.

Nothing in `streams.kafka`, `streams.replay` or `streams.live` may import these:
production code never depends on the development broker.

May import: schemas, projections, streams.errors, streams.settings, streams.net, streams.kafka, streams.tools
"""
