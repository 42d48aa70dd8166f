"""`journey worker`: one Faust worker projecting journey.events (start more for more throughput)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from pathlib import Path

import faust

from streams.errors import JourneyError
from streams.kafka import definitions as cluster_definitions
from streams.kafka.group import end_previous_member
from streams.kafka.produce import prepare
from streams.live import identity_options
from streams.live.app import JourneyApp
from streams.live.embedded import Profile
from streams.net import port_open
from streams.settings import Settings

GC_YOUNG_THRESHOLD = 50_000


class PortInUse(JourneyError):
    """The worker's web port is taken."""


class DataDirError(JourneyError):
    """The worker's data dir cannot be created."""


def _backpressure_is_debug(record: logging.LogRecord) -> bool:
    """Faust warns "producer buffer full" each time its producer makes a sender wait (table
    recovery, a burst of lead changes): ordinary backpressure while a worker catches up, dozens
    of lines a second. It is logged at DEBUG instead (the waits show in journey_batch_processing_seconds)."""
    if record.levelno == logging.WARNING and record.getMessage().startswith("producer buffer full"):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
    return True


def run_worker(settings: Settings) -> None:
    bind = settings.web_bind or settings.web_host
    if port_open("127.0.0.1" if bind == "0.0.0.0" else bind, settings.web_port):
        raise PortInUse(f"web port {settings.web_port} is already in use; choose another with --web-port")
    _make_table_dir(settings.table_dir)
    file_defs = settings.load_definitions()
    ingest_token = settings.ingest_secret()
    settings.read_secret(), settings.admin_secret()  # a token setting that is wrong stops the worker before it touches the broker
    segment_events = settings.load_segment_events()
    embedded = prepare(settings)
    recorded = asyncio.run(cluster_definitions.read(settings.bootstrap, embedded))
    defs, shadow = cluster_definitions.in_effect(file_defs, recorded)  # SPEC §11: `current` wins over the file
    if recorded.current is not None and recorded.current.digest != file_defs.digest:
        print(
            f"journey worker: the cluster's current definitions {defs.digest} (journey.definitions) win over this worker's "
            f"file {file_defs.digest} until DELETE /api/definitions/current",
            file=sys.stderr, flush=True,
        )
    identity_options.check(settings.bootstrap, settings.app_id, defs, embedded)
    asyncio.set_event_loop(asyncio.new_event_loop())
    # A worker holds a lead's aggregates as many long-lived small objects and makes thousands
    # of short-lived ones a batch: at the default threshold (700) the cyclic collector ran
    # often enough to cost a third of the fold (commit ec23837). Reference counting
    # frees almost everything; the collector only has cycles left to find.
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)
    logging.getLogger("aiokafka").setLevel(logging.NOTSET)  # a worker logs its Kafka clients at --log-level
    logging.getLogger("faust.transport.producer").addFilter(_backpressure_is_debug)
    japp = JourneyApp(settings, defs, Profile(embedded, settings.session_timeout), ingest_token, segment_events, file_defs=file_defs, recorded=recorded, shadow=shadow)
    japp.resync(embedded)  # before Faust recovers the tables: state the broker no longer backs is wiped
    profile = "embedded broker profile" if embedded else "Kafka profile"
    print(
        f"journey worker: {settings.broker} ({profile}), http://{settings.web_host}:{settings.web_port}/api/report, "
        f"tables in {settings.table_dir}",
        file=sys.stderr,
        flush=True,
    )
    end_previous_member(settings.bootstrap, settings.table_dir)  # had it been killed, the group would wait for it
    worker = faust.Worker(japp.app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    # Faust's terminal spinner puts the root logger at DEBUG to spin on every record,
    # which makes every Kafka send build a debug log record: about 5% of a busy worker.
    worker.spinner = None
    worker.execute_from_commandline()


def _make_table_dir(path: Path) -> None:
    """Faust creates only the last folder of its data dir: the default ./data/worker-PORT needs ./data."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"data dir {path}: cannot create it ({exc.strerror or exc}); choose another with --data-dir") from None
