"""The `journey` command (SPEC §6). Every user mistake ends as one line on stderr.

The one module that may import every folder of `streams`; it imports each
command's folder only when that command runs, so `journey replay` never loads
Faust and `journey --help` loads nothing.

May import: schemas, projections, streams
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
from pydantic import ValidationError

from projections import DefinitionsError, default_definitions, load_definitions
from projections.definitions import DEFAULT_YAML, Definitions
from projections.lead import REVENUE_PAST_LIMIT
from schemas import json_schema
from streams.errors import JourneyError

# `journey --help` lists the commands by the folder of streams/ that does the work.
SECTIONS = {
    "Replay (streams/replay)": ["replay", "definitions", "schema"],
    "Live worker (streams/live)": ["worker"],
    "Kafka (streams/kafka)": ["topics", "produce", "dlq"],
    "Development tools (streams/tools)": ["demo", "broker", "generate"],
}
EXIT_USAGE = 2


class UserError(JourneyError):
    """A command asked for something it cannot do (`produce` given a kafka:// URL)."""


class SectionedGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for names in SECTIONS.values() for name in names]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, names in SECTIONS.items():
            rows = [(name, self.commands[name].get_short_help_str(limit=80)) for name in names if name in self.commands]
            with formatter.section(title):
                formatter.write_dl(rows)
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70


@click.group(cls=SectionedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="journey", prog_name="journey")
def cli() -> None:
    """Event-sourced projections of customer-journey events: pipeline stage, AIDA funnel, lead qualification."""
    # Kafka clients log every failed connection attempt; the commands report failures in one line instead.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@cli.command()
@click.option("--input", "input_", required=True, metavar="LOG", help="JSONL file, - for stdin, or kafka://HOST:PORT/TOPIC.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--definitions", type=click.Path(path_type=Path), envvar="JOURNEY_DEFINITIONS", help="Definitions YAML (default: built in, see `journey definitions`).")
@click.option("--baseline", type=click.Path(path_type=Path), help="Compare against these definitions (OLD.yaml).")
@click.option("--leads-out", type=click.Path(path_type=Path), help="Write one JSON object per lead to this file.")
@click.option("--partitions", type=click.IntRange(min=1), help="Processes for a file (default: one per core for files over 4 MiB).")
@click.option(
    "--rejects", type=click.Path(path_type=Path), metavar="FILE",
    help="Write one JSON line per invalid record to this file: its line (or partition and offset), reason kind, reason and first 1 KiB.",
)
def replay(input_: str, fmt: str, definitions: Path | None, baseline: Path | None, leads_out: Path | None, partitions: int | None, rejects: Path | None) -> None:
    """Replay a journey log and print its report (or a comparison of two definitions)."""
    from streams.replay.run import ReplayRequest
    from streams.replay.run import replay as run_replay
    from streams.replay.sources import parse_source
    from streams.replay.text import render_comparison, render_report

    request = ReplayRequest(
        source=parse_source(input_),
        definitions=_definitions(definitions),
        baseline=load_definitions(baseline) if baseline is not None else None,
        leads_out=leads_out,
        partitions=partitions,
        rejects=rejects,
    )
    result = run_replay(request)
    if fmt == "json":
        _print_json(result)
    elif baseline is not None:
        click.echo(render_comparison(result, str(baseline), str(definitions or "the built-in default")), nl=False)
    else:
        click.echo(render_report(result), nl=False)


@cli.command()
@click.option("--leads", type=click.IntRange(min=0), required=True, help="How many leads.")
@click.option("--seed", type=int, required=True, help="The same seed gives the same log.")
@click.option("--days", type=click.IntRange(min=1), default=90, show_default=True, help="Journeys start within this many days.")
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="First day (UTC); journeys then run their full course. Default: DAYS days before today, journeys cut at today 00:00 UTC.",
)
@click.option(
    "--anonymous", type=click.FloatRange(0, 1), default=0.25, show_default=True,
    help="Share of journeys that start anonymous: ads seen under a cookie id, linked to the lead when it identifies (0: none).",
)
def generate(leads: int, seed: int, days: int, start: Any, anonymous: float) -> None:
    """Write a synthetic journey log (JSONL) to stdout.

    By default the log ends before today, as if read today; with --start it is the same log on any day.
    """

    from streams.tools.synthetic import JourneyGenerator

    if start is None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        generator = JourneyGenerator.ending(leads, seed, days, today, anonymous=anonymous)
    else:
        generator = JourneyGenerator(leads, seed, days, start.replace(tzinfo=UTC), anonymous=anonymous)
    out = sys.stdout.buffer
    batch: list[bytes] = []
    for line in generator.records():
        batch.append(line)
        if len(batch) >= 4096:
            out.write(b"\n".join(batch) + b"\n")
            batch.clear()
    if batch:
        out.write(b"\n".join(batch) + b"\n")
    out.flush()


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a journey event."""
    _print_json(json_schema())


@cli.command()
@click.option("--check", "check", type=click.Path(path_type=Path), help="Check a definitions file and say what it defines.")
@click.option("--digest", "digest", type=click.Path(path_type=Path), help="Print the digest that names a definitions file in a cluster (as /healthz shows it).")
@click.option("--cluster", "cluster", is_flag=True, help="Print the current and shadow definitions' digests recorded on the cluster (journey.definitions).")
@click.option("--broker", help="With --cluster: kafka://HOST:PORT (env JOURNEY_BROKER; default kafka://127.0.0.1:9092).")
def definitions(check: Path | None, digest: Path | None, cluster: bool, broker: str | None) -> None:
    """Print the default definitions, check a definitions file, print its digest, or the cluster's."""
    if sum((check is not None, digest is not None, cluster)) > 1:
        raise click.UsageError("give one of --check, --digest and --cluster")
    if broker is not None and not cluster:
        raise click.UsageError("--broker goes with --cluster")
    if cluster:
        _cluster_definitions(broker)
        return
    if digest is not None:
        click.echo(load_definitions(digest).digest)
        return
    if check is None:
        click.echo(DEFAULT_YAML, nl=False)
        return
    defs = load_definitions(check)
    click.echo(
        f"{check}: ok: {len(defs.stages)} stages ({', '.join(defs.stages)}), {len(defs.steps)} funnel steps ({', '.join(defs.steps)}); "
        f"digest {defs.digest}"
    )


def _cluster_definitions(broker: str | None) -> None:
    """SPEC §11: the digests journey.definitions records (the topics created first, as every command that reads one does)."""
    import asyncio

    from streams.kafka.definitions import read
    from streams.kafka.produce import prepare

    settings = _settings({"broker": broker})
    recorded = asyncio.run(read(settings.bootstrap, prepare(settings)))
    click.echo(f"current: {recorded.current.digest if recorded.current else 'none (each worker runs its own definitions file)'}")
    click.echo(f"shadow: {recorded.shadow.digest if recorded.shadow else 'none'}")


@cli.command()
@click.option("--web-port", type=click.IntRange(1, 65535), default=6066, show_default=True)
@click.option("--rate", type=click.FloatRange(min=1), default=200, show_default=True, help="Synthetic events per second.")
@click.option("--leads-per-round", type=click.IntRange(min=1), default=2000, show_default=True)
def demo(web_port: int, rate: float, leads_per_round: int) -> None:
    """Embedded broker + worker + a steady stream of synthetic journeys; Ctrl-C stops all."""
    from streams.tools.demo import run_demo

    run_demo(web_port, rate, leads_per_round)


@cli.command()
@click.option("--broker", help="kafka://HOST:PORT (env JOURNEY_BROKER; default kafka://127.0.0.1:9092).")
@click.option("--definitions", type=click.Path(path_type=Path), help="Definitions YAML (env JOURNEY_DEFINITIONS).")
@click.option("--web-port", type=int, help="HTTP port (env JOURNEY_WEB_PORT; default 6066).")
@click.option("--web-host", help="HTTP host to bind and advertise (env JOURNEY_WEB_HOST; default 127.0.0.1).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Table state (env JOURNEY_DATA_DIR; default ./data/worker-PORT).")
@click.option("--store", type=click.Choice(["rocksdb", "memory"]), help="Table store (env JOURNEY_STORE; default rocksdb).")
def worker(**flags: Any) -> None:
    """The stream processor: one Faust worker.

    For more throughput, start more workers on the same broker with the same
    definitions. Workers on one machine each need their own --web-port and
    --data-dir.
    """
    from streams.live.worker import run_worker

    run_worker(_settings(flags))


@cli.command()
@click.option("--port", type=click.IntRange(1, 65535), default=9092, show_default=True)
def broker(port: int) -> None:
    """The embedded Kafka-compatible broker (Tansu, memory only), in the foreground. Not for production."""
    from streams.tools.broker import EmbeddedBroker

    def started() -> None:
        click.echo(f"journey broker: listening on kafka://127.0.0.1:{port} (memory only; Ctrl-C or SIGTERM stops it)", err=True)

    EmbeddedBroker(port).serve(started)


@cli.command()
@click.option("--broker", help="kafka://HOST:PORT (env JOURNEY_BROKER; default kafka://127.0.0.1:9092).")
def topics(broker: str | None) -> None:
    """Create every topic journey uses, with its partition count (workers do it too, at start)."""

    from streams.kafka.produce import prepare
    from streams.kafka.topics import TopicPlan

    settings = _settings({"broker": broker})
    embedded = prepare(settings)
    for name, partitions in TopicPlan(settings.app_id, settings.partitions).topics().items():
        click.echo(f"{name}\t{partitions} partitions")
    click.echo(f"journey topics: ready on {settings.broker}{' (embedded broker)' if embedded else ''}", err=True)


@cli.command()
@click.argument("log", metavar="LOG")
@click.option("--broker", help="kafka://HOST:PORT (env JOURNEY_BROKER; default kafka://127.0.0.1:9092).")
def produce(log: str, broker: str | None) -> None:
    """Publish a JSONL log (or - for stdin) to journey.events as-is, key = lead id when readable."""

    from streams.kafka.address import KafkaSource
    from streams.kafka.produce import publish
    from streams.replay.sources import open_records, parse_source

    source = parse_source(log)
    if isinstance(source, KafkaSource):
        raise UserError("produce reads a JSONL file or -, not a kafka:// URL")
    settings = _settings({"broker": broker})
    sent = publish(settings, open_records(source))
    click.echo(f"journey produce: published {sent} records to journey.events", err=True)


@cli.command()
@click.option("--broker", help="kafka://HOST:PORT (env JOURNEY_BROKER; default kafka://127.0.0.1:9092).")
@click.option("--samples", type=click.IntRange(min=0), default=3, show_default=True, help="Samples per reason class.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def dlq(broker: str | None, samples: int, fmt: str) -> None:
    """What is in the dead-letter topic: counts by reason class, with samples."""
    from streams.kafka import topics
    from streams.kafka.address import KafkaSource
    from streams.kafka.deadletters import render, summarize
    from streams.kafka.reader import kafka_messages

    settings = _settings({"broker": broker})
    summary = summarize(kafka_messages(KafkaSource(settings.bootstrap, topics.DLQ)), samples)
    if fmt == "json":
        _print_json(summary)
    else:
        click.echo(render(summary), nl=False)


def _settings(flags: dict[str, Any]) -> Any:
    from streams.settings import Settings

    return Settings(**{key: value for key, value in flags.items() if value is not None})


def _definitions(path: Path | None) -> Definitions:
    return default_definitions() if path is None else load_definitions(path)


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.buffer.flush()


def main(argv: list[str] | None = None) -> int:
    code = _run(lambda: cli.main(args=argv, prog_name="journey", standalone_mode=False))
    sys.exit(code)


def _run(command: Callable[[], Any]) -> int:
    try:
        result = command()
        return result if isinstance(result, int) else 0
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "journey"
        _error(f"{where}: {exc.format_message()} (see {where} --help)")
        return EXIT_USAGE
    except click.ClickException as exc:
        _error(f"journey: {exc.format_message()}")
        return exc.exit_code
    except (JourneyError, DefinitionsError) as exc:
        _error(f"journey: {exc}")
        return 1
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "settings"
        _error(f"journey: {where} (flag or JOURNEY_{where.upper()}): {error['msg']}")
        return 1
    except (KeyboardInterrupt, click.Abort):
        _error("journey: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()  # the reader (head, less) went away: not an error
        return 0
    except Exception as exc:
        if type(exc) is OverflowError and str(exc) == REVENUE_PAST_LIMIT:  # the log's bound, not a bug
            _error(f"journey: {exc} (docs/spec-notes.md, 'Bounds'); nothing was written")
            return 1
        if os.environ.get("JOURNEY_DEBUG"):
            raise
        _error(f"journey: internal error: {type(exc).__name__}: {exc} (set JOURNEY_DEBUG=1 for the traceback)")
        return EXIT_INTERNAL


def _error(message: str) -> None:
    click.echo(" ".join(message.split("\n")), err=True)


def _quiet_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
