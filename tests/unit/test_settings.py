"""Settings the deployment files use (issue 30): JOURNEY_WEB_HOST=auto for compose replicas, the tokens read
from files that Kubernetes and compose mount, and the new worker settings with their defaults."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streams.live.embedded import Profile
from streams.settings import Settings, SettingsError


class TestWebHostAuto:
    def test_auto_is_this_hosts_name(self) -> None:
        assert Settings(web_host="auto").web_host == socket.gethostname()

    def test_auto_from_the_environment_as_compose_sets_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOURNEY_WEB_HOST", "auto")
        monkeypatch.setattr(socket, "gethostname", lambda: "3f2a9c1b7d4e")  # a container's hostname: its short id
        assert Settings().web_host == "3f2a9c1b7d4e"

    def test_any_other_name_is_kept(self) -> None:
        assert Settings(web_host="journey-worker-0.journey-workers").web_host == "journey-worker-0.journey-workers"
        assert Settings().web_host == "127.0.0.1"


class TestTokenFiles:
    @pytest.mark.parametrize(("name", "secret"), [("ingest", "ingest_secret"), ("read", "read_secret"), ("admin", "admin_secret")])
    def test_a_token_is_read_from_its_file_without_the_newline(self, name: str, secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        (tmp_path / name).write_text("s3cret\n")
        monkeypatch.setenv(f"JOURNEY_{name.upper()}_TOKEN_FILE", str(tmp_path / name))
        assert getattr(Settings(), secret)() == "s3cret"

    @pytest.mark.parametrize(("name", "secret"), [("ingest", "ingest_secret"), ("read", "read_secret"), ("admin", "admin_secret")])
    def test_a_missing_or_empty_token_file_is_an_error_that_names_it(self, name: str, secret: str, tmp_path: Path) -> None:
        with pytest.raises(SettingsError, match=f"{name} token file .*missing"):
            getattr(Settings(**{f"{name}_token_file": tmp_path / "missing"}), secret)()
        (tmp_path / "empty").write_text("\n")
        with pytest.raises(SettingsError, match=f"{name} token file .* is empty"):
            getattr(Settings(**{f"{name}_token_file": tmp_path / "empty"}), secret)()

    @pytest.mark.parametrize(("name", "secret"), [("ingest", "ingest_secret"), ("read", "read_secret"), ("admin", "admin_secret")])
    def test_an_empty_token_is_an_error_not_a_token_an_empty_header_matches(self, name: str, secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(f"JOURNEY_{name.upper()}_TOKEN", " ")
        with pytest.raises(SettingsError, match=f"JOURNEY_{name.upper()}_TOKEN is set but empty"):
            getattr(Settings(), secret)()

    def test_the_token_itself_wins_over_its_file_and_neither_means_none(self, tmp_path: Path) -> None:
        (tmp_path / "read").write_text("from-file")
        assert Settings(read_token="direct", read_token_file=tmp_path / "read").read_secret() == "direct"
        assert Settings().read_secret() is None and Settings().ingest_secret() is None and Settings().admin_secret() is None


class TestWorkerSettings:
    def test_defaults(self) -> None:
        settings = Settings()
        assert (settings.standby_replicas, settings.rocksdb_cache_mb, settings.rocksdb_write_buffer_mb) == (0, 256, 128)

    def test_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOURNEY_STANDBY_REPLICAS", "1")
        monkeypatch.setenv("JOURNEY_ROCKSDB_CACHE_MB", "512")
        monkeypatch.setenv("JOURNEY_ROCKSDB_WRITE_BUFFER_MB", "64")
        settings = Settings()
        assert (settings.standby_replicas, settings.rocksdb_cache_mb, settings.rocksdb_write_buffer_mb) == (1, 512, 64)

    @pytest.mark.parametrize("field", ["standby_replicas", "rocksdb_cache_mb", "rocksdb_write_buffer_mb"])
    def test_negative_sizes_are_refused(self, field: str) -> None:
        with pytest.raises(ValueError, match=field):
            Settings(**{field: -1})


class TestIngestTimeout:
    def test_ten_seconds_unless_set(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Well inside an HTTP client's usual 15-30 s, so a stalled broker gets a 503, never a hang."""
        assert Settings().ingest_timeout == 10.0
        monkeypatch.setenv("JOURNEY_INGEST_TIMEOUT", "2.5")
        assert Settings().ingest_timeout == 2.5

    @pytest.mark.parametrize("seconds", [0, -1, 601])
    def test_none_zero_or_absurd_is_refused(self, seconds: float) -> None:
        with pytest.raises(ValueError, match="ingest_timeout"):
            Settings(ingest_timeout=seconds)


class TestSessionTimeout:
    """JOURNEY_SESSION_TIMEOUT: how long the group waits for a silent worker; on the embedded broker a
    join also takes half of it (docs/embedded-broker.md)."""

    def test_the_embedded_profile_uses_8_seconds_and_kafka_faust_s_own_unless_set(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("JOURNEY_SESSION_TIMEOUT", raising=False)  # the suite's own conftest sets it
        assert Settings().session_timeout is None
        assert Profile(embedded=True).faust_settings() == {"broker_session_timeout": 8.0, "broker_heartbeat_interval": 2.0, "broker_rebalance_timeout": 8.0}
        assert Profile(embedded=False).faust_settings() == {}

    def test_a_set_timeout_applies_to_either_broker_with_heartbeats_at_a_quarter_of_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JOURNEY_SESSION_TIMEOUT", "30")
        timeout = Settings().session_timeout
        assert timeout == 30.0
        assert Profile(embedded=False, session_timeout=timeout).faust_settings() == {"broker_session_timeout": 30.0, "broker_heartbeat_interval": 7.5}
        assert Profile(embedded=True, session_timeout=4).faust_settings() == {"broker_session_timeout": 4, "broker_heartbeat_interval": 1.0, "broker_rebalance_timeout": 4}

    @pytest.mark.parametrize("seconds", [0, 1, 3601])
    def test_too_short_to_heartbeat_in_or_absurd_is_refused(self, seconds: float) -> None:
        with pytest.raises(ValueError, match="session_timeout"):
            Settings(session_timeout=seconds)
