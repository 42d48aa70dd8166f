"""The ceiling of any Faust agent on this broker: one that only counts the events it is given.

    python -m bench.plain_agent BROKER_URL EVENTS DATA_DIR

bench/live.py runs it on the same topic, broker and embedded-profile settings
as journey's worker, with journey's batch size. It prints its events/s (from
its first batch until it has counted EVENTS) and exits. Whatever journey's
worker does per event, it cannot beat this while Faust delivers the events.
"""

from __future__ import annotations

import os
import sys
import time

import faust

from streams.kafka import topics
from streams.live.embedded import Profile
from streams.live.internals import shorten_fetch_wait
from streams.settings import Settings


def main() -> None:
    url, expected, data_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    settings = Settings(broker=url)
    shorten_fetch_wait()
    app = faust.App(
        f"bench-plain-agent-{os.getpid()}",
        broker=settings.broker,
        store="memory://",
        datadir=data_dir,
        web_enabled=False,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        **Profile(embedded=True).faust_settings(),
    )
    events = app.topic(topics.EVENTS, partitions=settings.partitions, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    @app.agent(events)
    async def count(stream: faust.StreamT) -> None:
        seen = first = 0
        started = 0.0
        async for batch in stream.take_events(settings.batch_size, within=0.05):
            if not started:
                started, first = time.perf_counter(), len(batch)
            seen += len(batch)
            if seen >= expected:
                print(round((seen - first) / (time.perf_counter() - started)), flush=True)
                os._exit(0)

    worker = faust.Worker(app, loglevel="error", quiet=True, redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
