"""Settings of the live commands: flags, else JOURNEY_* environment variables, else these defaults."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from projections import Definitions, default_definitions, load_definitions
from schemas.platforms import SegmentEvents, SegmentEventsError, default_segment_events
from streams.errors import JourneyError


class SettingsError(JourneyError):
    """A setting that names something unusable (an unreadable or empty token file)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOURNEY_", extra="ignore")

    broker: str = Field("kafka://127.0.0.1:9092", description="kafka://HOST:PORT[,HOST:PORT...]")
    definitions: Path | None = None
    web_host: str = Field("127.0.0.1", description="Host name peers reach this worker at; auto: this host's name (compose replicas)")
    web_port: int = Field(6066, ge=1, le=65535)
    web_bind: str | None = Field(None, description="Address to listen on; default web_host (containers: 0.0.0.0)")
    data_dir: Path | None = Field(None, description="Table state; default ./data/worker-WEB_PORT")
    partitions: int = Field(8, ge=1, description="Partitions of every keyed topic")
    replication_factor: int = Field(1, ge=1)
    app_id: str = "journey"
    broker_profile: Literal["auto", "kafka", "embedded"] = Field(
        "auto", description="embedded: settings for the Tansu development broker; auto: detect it"
    )
    store: Literal["rocksdb", "memory"] = "rocksdb"
    batch_size: int = Field(8000, ge=1, description="Most records of journey.events fetched and folded as one batch")
    log_level: str = "warning"
    ingest_token: SecretStr | None = Field(None, description="Bearer token for POST /api/events")
    ingest_token_file: Path | None = Field(None, description="A file holding the ingest token")
    read_token: SecretStr | None = Field(None, description="Bearer token for the read endpoints; none: open")
    read_token_file: Path | None = Field(None, description="A file holding the read token")
    admin_token: SecretStr | None = Field(None, description="Bearer token for the admin endpoints (SPEC §11's shadow and promotion); none: they answer 403")
    admin_token_file: Path | None = Field(None, description="A file holding the token of the admin endpoints")
    session_timeout: float | None = Field(
        None, ge=2, le=3600,
        description="Seconds the group waits for a silent worker before it moves its partitions; default 8 on the embedded broker (a join there takes half of it), Faust's 60 on Kafka",
    )
    ingest_timeout: float = Field(10.0, gt=0, le=600, description="Seconds HTTP ingest waits for the broker to acknowledge a request's events before answering 503")
    demo: bool = Field(False, description="Demo mode: ingest is open without a token")
    segment_events: Path | None = Field(None, description="YAML map of Segment event names to journey types; default: deploy/segment-events.yaml")
    standby_replicas: int = Field(0, ge=0, description="Standby copies of each table partition other workers keep, so a moved partition need not be restored from the changelog")
    rocksdb_cache_mb: int = Field(256, ge=1, description="RocksDB block cache shared by all of this worker's partitions (MiB)")
    rocksdb_write_buffer_mb: int = Field(128, ge=1, description="RocksDB write buffers (memtables) shared by all of this worker's partitions (MiB)")

    @field_validator("web_host")
    @classmethod
    def _auto_host(cls, value: str) -> str:
        """auto: this host's name. In compose, a container's hostname (its short id) resolves on the
        project network, so each replica of a scaled service advertises an address its peers reach."""
        return socket.gethostname() if value == "auto" else value

    @field_validator("broker")
    @classmethod
    def _kafka_url(cls, value: str) -> str:
        bootstrap_servers(value)
        return value

    @property
    def bootstrap(self) -> str:
        return bootstrap_servers(self.broker)

    @property
    def table_dir(self) -> Path:
        return self.data_dir or Path("data") / f"worker-{self.web_port}"

    def ingest_secret(self) -> str | None:
        return _secret("ingest", self.ingest_token, self.ingest_token_file)

    def read_secret(self) -> str | None:
        return _secret("read", self.read_token, self.read_token_file)

    def admin_secret(self) -> str | None:
        return _secret("admin", self.admin_token, self.admin_token_file)

    def load_segment_events(self) -> SegmentEvents:
        try:
            return default_segment_events() if self.segment_events is None else SegmentEvents.load(self.segment_events)
        except SegmentEventsError as exc:
            raise SettingsError(f"JOURNEY_SEGMENT_EVENTS: {exc}") from None

    def load_definitions(self) -> Definitions:
        return default_definitions() if self.definitions is None else load_definitions(self.definitions)


def _secret(name: str, token: SecretStr | None, file: Path | None) -> str | None:
    """The token itself if set, else the content of its file (Kubernetes and compose mount secrets as files)."""
    if token is not None:
        value = token.get_secret_value().strip()
        if not value:  # else an empty `Authorization: Bearer` would match it
            raise SettingsError(f"JOURNEY_{name.upper()}_TOKEN is set but empty: give it a token, or unset it")
        return value
    if file is not None:
        try:
            text = file.read_text().strip()
        except OSError as exc:
            raise SettingsError(f"{name} token file {file}: {exc.strerror or exc}") from None
        if not text:
            raise SettingsError(f"{name} token file {file} is empty")
        return text
    return None


def bootstrap_servers(url: str) -> str:
    """'kafka://a:9092,b:9092' (or 'a:9092') to 'a:9092,b:9092'."""
    text = url.removeprefix("kafka://").rstrip("/")
    hosts = [h for h in text.split(",") if h]
    for host in hosts:
        parts = urlsplit(f"//{host}")
        if not parts.hostname or parts.port is None:
            raise ValueError(f"broker {url!r}: expected kafka://HOST:PORT")
    if not hosts:
        raise ValueError(f"broker {url!r}: expected kafka://HOST:PORT")
    return ",".join(hosts)
