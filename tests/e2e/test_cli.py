"""The `journey` command as a user runs it (SPEC §5, §6)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from streams.net import free_port
from tests.conftest import golden_json
from tests.e2e.conftest import JOURNEY, run_journey
from tests.helpers import same_instants

pytestmark = pytest.mark.usefixtures("journey")


def one_line_error(result) -> str:
    assert result.returncode != 0
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, result.stderr.decode()
    assert "Traceback" not in lines[0]
    return lines[0]


class TestReplay:
    def test_json_report_of_the_golden_log_equals_the_expected_report(self, golden: Path, expected_report: dict) -> None:
        result = run_journey("replay", "--input", str(golden / "journey-small.jsonl"), "--format", "json")
        assert result.returncode == 0, result.stderr
        assert same_instants(json.loads(result.stdout), expected_report)

    def test_stdin_is_read_with_a_dash(self, golden: Path, expected_report: dict) -> None:
        log = (golden / "journey-small.jsonl").read_bytes()
        result = run_journey("replay", "--input", "-", "--format", "json", stdin=log)
        assert same_instants(json.loads(result.stdout), expected_report)

    def test_leads_out_writes_one_object_per_lead(self, golden: Path, tmp_path: Path, expected_leads: list[dict]) -> None:
        out = tmp_path / "leads.jsonl"
        result = run_journey("replay", "--input", str(golden / "journey-small.jsonl"), "--format", "json", "--leads-out", str(out))
        assert result.returncode == 0
        assert same_instants([json.loads(line) for line in out.read_text().splitlines()], expected_leads)

    def test_baseline_and_definitions_print_the_comparison(self, golden: Path) -> None:
        result = run_journey(
            "replay", "--input", str(golden / "journey-small.jsonl"), "--format", "json",
            "--baseline", str(golden / "default-definitions.yaml"), "--definitions", str(golden / "alt-definitions.yaml"),
        )
        assert same_instants(json.loads(result.stdout), golden_json("expected-compare.json"))

    def test_a_comparison_of_other_identity_options_has_the_persons_of_each_side(self, golden: Path, tmp_path: Path) -> None:
        keep_one = tmp_path / "keep-one.yaml"
        keep_one.write_text((golden / "default-definitions.yaml").read_text().replace("max_anonymous_ids: 100", "max_anonymous_ids: 1"))
        result = run_journey("replay", "--input", str(golden / "journey-identity.jsonl"), "--format", "json", "--baseline", str(golden / "default-definitions.yaml"),
                             "--definitions", str(keep_one))
        assert result.returncode == 0, result.stderr
        comparison = json.loads(result.stdout)
        assert same_instants(comparison["baseline"], golden_json("expected-identity-report.json"))
        candidate = comparison["candidate"]["identity"]
        assert candidate["joined"] < comparison["baseline"]["identity"]["joined"] and candidate["anonymous_ids"] == comparison["baseline"]["identity"]["anonymous_ids"]

    def test_text_format_shows_tables_with_conversion(self, golden: Path) -> None:
        result = run_journey("replay", "--input", str(golden / "journey-small.jsonl"))
        text = result.stdout.decode()
        assert result.returncode == 0
        for expected in ("Pipeline", "explore", "136", "Qualification", "Funnel (AIDA)", "65.5%", "overall conversion 18.8%"):
            assert expected in text

    def test_text_format_shows_time_in_stage_and_the_windowed_funnel(self, golden: Path, expected_report: dict) -> None:
        """SPEC §10 readably: per stage entered, moved on, median and p90 days, waiting; per step within the window, and days to convert."""
        text = run_journey("replay", "--input", str(golden / "journey-small.jsonl")).stdout.decode()

        def section(title: str) -> dict[str, list[str]]:
            lines = text.split(title, 1)[1].split("\n\n", 1)[0].splitlines()[2:]  # after the title and the header
            return {line.split()[0]: line.split()[1:] for line in lines}

        shown = lambda value: "-" if value is None else str(value)  # noqa: E731
        stages = section("Time in stage (whole days)")
        assert set(stages) == set(expected_report["velocity"])
        for stage, row in expected_report["velocity"].items():
            assert stages[stage][:5] == [shown(row[key]) for key in ("entered", "moved_on", "median_days", "p90_days", "waiting")], stage
        steps = section(f"Funnel within {expected_report['funnel_window']['days']} days")
        assert set(steps) == set(expected_report["funnel_window"]["steps"])
        for step, leads in expected_report["funnel_window"]["steps"].items():
            took = expected_report["time_to_convert"].get(step, {"median_days": None, "p90_days": None})
            assert [steps[step][0], *steps[step][2:]] == [str(leads), shown(took["median_days"]), shown(took["p90_days"])], step

    def test_text_format_breaks_the_funnel_down_by_first_touch(self, golden: Path) -> None:
        result = run_journey("replay", "--input", str(golden / "journey-rich.jsonl"))
        text = result.stdout.decode()
        assert result.returncode == 0
        for dimension in ("source", "channel", "campaign"):
            assert f"Attribution by first-touch {dimension}" in text
        referral = next(line for line in text.splitlines() if line.strip().startswith("referral"))
        assert referral.split()[:5] == ["referral", "45", "11", "24.4%", "11"]
        assert "EUR 35,227.50" in referral
        assert any(line.strip().startswith('""') for line in text.splitlines())  # the empty campaign, shown

    def test_text_comparison_lists_the_changes(self, golden: Path) -> None:
        result = run_journey(
            "replay", "--input", str(golden / "journey-small.jsonl"),
            "--baseline", str(golden / "default-definitions.yaml"), "--definitions", str(golden / "alt-definitions.yaml"),
        )
        assert "explore->aware" in result.stdout.decode() and "sal->lead" in result.stdout.decode()

    def test_text_comparison_leads_with_what_changed_then_both_reports(self, golden: Path) -> None:
        baseline, candidate = str(golden / "default-definitions.yaml"), str(golden / "alt-definitions.yaml")
        result = run_journey("replay", "--input", str(golden / "journey-small.jsonl"), "--baseline", baseline, "--definitions", candidate)
        lines = result.stdout.decode().splitlines()
        assert result.returncode == 0 and baseline in lines[1] and candidate in lines[2]
        first = {title: lines.index(title) for title in ("Stage changes (leads)", "Qualification changes (leads)", "Pipeline (leads per stage)")}
        details = next(i for i, line in enumerate(lines) if line.startswith("== Details"))
        assert max(first.values()) < details
        rows = {tuple(line.split()) for line in lines[:details]}
        assert ("mql", "13", "5", "-8") in rows and ("aware", "-", "205", "+205") in rows and ("action", "74", "71", "-3") in rows
        assert "  overall conversion 18.8% -> 18.0%" in lines[:details]
        assert sum(line.startswith("== Details") for line in lines) == 2  # then each report in full

    def test_an_empty_log_gives_a_null_watermark(self, tmp_path: Path) -> None:
        empty = tmp_path / "empty.jsonl"
        empty.write_text("\n\n")
        report = json.loads(run_journey("replay", "--input", str(empty), "--format", "json").stdout)
        assert report["watermark"] is None and report["events"] == {"valid": 0, "invalid": 0, "duplicates": 0}


class TestUserMistakes:
    def test_a_missing_input_file_is_one_line(self) -> None:
        assert "no such file" in one_line_error(run_journey("replay", "--input", "/nonexistent.jsonl"))

    def test_a_bad_flag_is_one_line(self, golden: Path) -> None:
        assert "--bogus" in one_line_error(run_journey("replay", "--input", str(golden / "journey-small.jsonl"), "--bogus"))

    def test_a_missing_required_flag_is_one_line(self) -> None:
        assert "--input" in one_line_error(run_journey("replay"))

    def test_a_bad_definitions_file_names_file_place_and_fix(self, golden: Path, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text((golden / "default-definitions.yaml").read_text().replace("[negotiation]", "[negociation]"))
        line = one_line_error(run_journey("replay", "--input", str(golden / "journey-small.jsonl"), "--definitions", str(bad)))
        assert str(bad) in line and "pipeline.stages[3].events[0]" in line and "use one of" in line

    def test_a_missing_definitions_file_is_one_line(self, golden: Path) -> None:
        assert "cannot read" in one_line_error(run_journey("replay", "--input", str(golden / "journey-small.jsonl"), "--definitions", "/nope.yaml"))

    def test_a_bad_kafka_url_is_one_line(self) -> None:
        assert "kafka://HOST:PORT/TOPIC" in one_line_error(run_journey("replay", "--input", "kafka://nohost"))

    def test_an_unknown_command_is_one_line(self) -> None:
        assert "frobnicate" in one_line_error(run_journey("frobnicate"))

    def test_a_leads_out_in_a_missing_directory_is_one_line(self, golden: Path) -> None:
        line = one_line_error(run_journey("replay", "--input", str(golden / "journey-small.jsonl"), "--leads-out", "/nonexistent/dir/x.jsonl"))
        assert "cannot write" in line


class TestGenerate:
    def test_the_same_seed_and_start_give_the_same_log(self) -> None:
        a = run_journey("generate", "--leads", "50", "--seed", "3", "--start", "2026-08-01")
        b = run_journey("generate", "--leads", "50", "--seed", "3", "--start", "2026-08-01")
        c = run_journey("generate", "--leads", "50", "--seed", "4", "--start", "2026-08-01")
        assert a.returncode == 0 and a.stdout == b.stdout != c.stdout

    def test_a_generated_log_replays_with_duplicates_and_invalid_records(self, tmp_path: Path) -> None:
        log = tmp_path / "log.jsonl"
        log.write_bytes(run_journey("generate", "--leads", "400", "--seed", "1", "--start", "2026-08-01", "--anonymous", "0").stdout)
        report = json.loads(run_journey("replay", "--input", str(log), "--format", "json").stdout)
        assert 300 < report["leads"] <= 400  # a few synthetic leads drop out before their first event
        assert report["events"]["duplicates"] > 0 and report["events"]["invalid"] > 0
        assert all(n > 0 for n in report["pipeline"].values())
        assert all(n > 0 for n in report["qualification"].values())
        assert report["identity"] == {"anonymous_ids": 0, "joined": 0, "over_limit": 0}

    def test_a_share_of_journeys_starts_anonymous_and_joins_its_lead(self, tmp_path: Path) -> None:
        log = tmp_path / "log.jsonl"
        log.write_bytes(run_journey("generate", "--leads", "400", "--seed", "1", "--start", "2026-08-01", "--anonymous", "0.5").stdout)
        identity = json.loads(run_journey("replay", "--input", str(log), "--format", "json").stdout)["identity"]
        assert 150 < identity["anonymous_ids"] < 250 and 0.5 < identity["joined"] / identity["anonymous_ids"] < 0.9  # some never identify

    def test_by_default_the_log_ends_before_today_with_leads_still_fresh(self, tmp_path: Path) -> None:
        today = datetime.now(UTC).date()
        log = tmp_path / "log.jsonl"
        log.write_bytes(run_journey("generate", "--leads", "400", "--seed", "1").stdout)
        report = json.loads(run_journey("replay", "--input", str(log), "--format", "json").stdout)
        watermark = datetime.fromisoformat(report["watermark"]).date()
        if datetime.now(UTC).date() == today:  # not across midnight
            assert today - timedelta(days=2) <= watermark < today
        assert report["qualification"]["mql"] > 0  # read today, not every lead has gone stale

    def test_a_negative_lead_count_is_one_line(self) -> None:
        assert "--leads" in one_line_error(run_journey("generate", "--leads", "-1", "--seed", "1"))


class TestSchemaAndDefinitions:
    def test_schema_is_a_json_schema_that_accepts_a_golden_event(self, golden_log: list[bytes]) -> None:
        schema = json.loads(run_journey("schema").stdout)
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.validate(json.loads(golden_log[0]), schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"event_id": "e", "lead_id": "l", "type": "ad_seen", "occurred_at": "2026-09-01T10:00:00"}, schema)

    def test_definitions_prints_the_default_which_checks_ok(self, tmp_path: Path) -> None:
        path = tmp_path / "defs.yaml"
        path.write_bytes(run_journey("definitions").stdout)
        result = run_journey("definitions", "--check", str(path))
        assert result.returncode == 0 and "6 stages" in result.stdout.decode()

    def test_definitions_digest_prints_the_spec_digest_of_a_file(self, golden: Path) -> None:
        import hashlib

        import yaml

        for name in ("default-definitions.yaml", "alt-definitions.yaml"):
            document = yaml.safe_load((golden / name).read_text())
            expected = hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]
            result = run_journey("definitions", "--digest", str(golden / name))
            assert result.returncode == 0 and result.stdout.decode() == expected + "\n"


class TestProduce:
    def test_an_unreachable_broker_is_one_line(self, golden: Path) -> None:
        line = one_line_error(run_journey("produce", str(golden / "journey-small.jsonl"), "--broker", "kafka://127.0.0.1:1"))
        assert "cannot reach the broker" in line

    def test_a_missing_log_is_one_line(self) -> None:
        assert "no such file" in one_line_error(run_journey("produce", "/nonexistent.jsonl"))

    def test_a_malformed_broker_url_is_one_line(self, golden: Path) -> None:
        assert "kafka://HOST:PORT" in one_line_error(run_journey("produce", str(golden / "journey-small.jsonl"), "--broker", "nonsense"))


class TestWorkerMistakes:
    def test_an_unreachable_broker_is_one_line(self) -> None:
        assert "cannot reach the broker" in one_line_error(run_journey("worker", "--broker", "kafka://127.0.0.1:1", "--web-port", "1"))

    def test_a_bad_definitions_file_is_one_line(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.yaml"
        bad.write_text("pipeline: {}\n")
        line = one_line_error(run_journey("worker", "--definitions", str(bad), "--broker", "kafka://127.0.0.1:1"))
        assert str(bad) in line

    def test_a_data_dir_that_cannot_be_created_is_one_line(self, tmp_path: Path) -> None:
        (tmp_path / "a-file").write_text("")
        data_dir = tmp_path / "a-file" / "worker"
        line = one_line_error(run_journey("worker", "--data-dir", str(data_dir), "--web-port", str(free_port()), "--broker", "kafka://127.0.0.1:1"))
        assert str(data_dir) in line and "--data-dir" in line

    def test_an_empty_token_is_one_line_before_the_broker_is_asked(self, tmp_path: Path) -> None:
        """An empty JOURNEY_ADMIN_TOKEN would be matched by an empty Authorization header: refused at start."""
        done = subprocess.run(
            [str(JOURNEY), "worker", "--data-dir", str(tmp_path / "w"), "--web-port", str(free_port()), "--broker", "kafka://127.0.0.1:1"],
            capture_output=True, timeout=60, env={**os.environ, "JOURNEY_ADMIN_TOKEN": ""},
        )
        assert "JOURNEY_ADMIN_TOKEN is set but empty" in one_line_error(done)


class TestParallelReplay:
    @pytest.mark.parametrize("partitions", ["2", "3"])
    @pytest.mark.parametrize(("log", "report", "persons"), [
        ("journey-small.jsonl", "expected-report.json", "expected-leads.jsonl"),
        ("journey-identity.jsonl", "expected-identity-report.json", "expected-identity-leads.jsonl"),  # persons across processes
    ])
    def test_partitioned_replay_equals_the_golden_files(self, golden: Path, tmp_path: Path, partitions: str, log: str, report: str, persons: str) -> None:
        out = tmp_path / "leads.jsonl"
        result = run_journey("replay", "--input", str(golden / log), "--format", "json", "--partitions", partitions, "--leads-out", str(out))
        assert result.returncode == 0, result.stderr
        assert same_instants(json.loads(result.stdout), golden_json(report))
        assert same_instants([json.loads(line) for line in out.read_text().splitlines()], golden_json(persons))

    def test_partitioned_comparison_equals_the_golden_comparison(self, golden: Path) -> None:
        result = run_journey(
            "replay", "--input", str(golden / "journey-small.jsonl"), "--format", "json", "--partitions", "3",
            "--baseline", str(golden / "default-definitions.yaml"), "--definitions", str(golden / "alt-definitions.yaml"),
        )
        assert same_instants(json.loads(result.stdout), golden_json("expected-compare.json"))

    def test_a_comparison_of_other_identity_options_has_the_persons_of_each_side(self, golden: Path, tmp_path: Path) -> None:
        keep_one = tmp_path / "keep-one.yaml"
        keep_one.write_text((golden / "default-definitions.yaml").read_text().replace("max_anonymous_ids: 100", "max_anonymous_ids: 1"))
        result = run_journey("replay", "--input", str(golden / "journey-identity.jsonl"), "--format", "json", "--baseline", str(golden / "default-definitions.yaml"),
                             "--definitions", str(keep_one))
        assert result.returncode == 0, result.stderr
        comparison = json.loads(result.stdout)
        assert same_instants(comparison["baseline"], golden_json("expected-identity-report.json"))
        candidate = comparison["candidate"]["identity"]
        assert candidate["joined"] < comparison["baseline"]["identity"]["joined"] and candidate["anonymous_ids"] == comparison["baseline"]["identity"]["anonymous_ids"]
