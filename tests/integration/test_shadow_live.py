"""Shadow definitions on a live cluster (SPEC §11, issue 29): a candidate PUT beside the current
definitions answers as replay's `--baseline` comparison, before and after more events; promoted,
every worker switches without a restart and journey.lead-changes catches up; a worker killed and
started with its old flags keeps the promoted definitions, one killed in the middle of the switch
ends the same; `DELETE current` hands control back to the files. Bad input records nothing."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from projections import default_definitions, load_definitions
from streams.kafka import topics
from tests.helpers import same_instants
from tests.integration.conftest import JOURNEY, produce, read_topic, report_when_counted, report_when_settled, spec_report, wait_for
from tests.integration.test_definitions_rollout import last_change_per_lead, published_under, replayed

pytestmark = pytest.mark.timeout(400)
TOKEN = "s3cret-admin"
ADMIN = {"JOURNEY_ADMIN_TOKEN": TOKEN}
SHADOW = "/api/definitions/shadow"


def put_shadow(worker, text: str, token: str | None = TOKEN) -> tuple[int, dict]:
    return worker.request("PUT", SHADOW, text.encode(), "application/yaml", token=token)


def comparison_when(worker, expected: dict, timeout: float = 120) -> dict:
    """GET /api/definitions/shadow once it equals `expected` (instants compared as instants)."""
    last: list = []

    def equal() -> dict | None:
        status, body = last[:] = worker.get(SHADOW)
        return body if status == 200 and same_instants(body, expected) else None

    try:
        return wait_for(equal, timeout, f"{worker.url}{SHADOW} to equal replay's comparison")
    except AssertionError:
        status, body = last if last else (0, {})
        differs = sorted(k for k in expected if status == 200 and body.get(k) != expected[k])
        raise AssertionError(f"{worker.url}{SHADOW}: last {status}, differs in {differs}: {str(body)[:800]}; log {worker.tail()}") from None


def cluster_definitions(broker) -> list[str]:
    done = subprocess.run([JOURNEY, "definitions", "--cluster", "--broker", broker.url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def healthz_digests(worker) -> tuple[str, str | None]:
    status, body = worker.get("/healthz")
    assert status == 200, body
    return body["definitions"], body["shadow"]


class TestShadowThenPromoteThenBackToFiles:
    def test_the_whole_workflow_on_two_workers(self, broker, start_worker, golden: Path) -> None:
        current, candidate = default_definitions(), load_definitions(golden / "alt-definitions.yaml")
        candidate_yaml = (golden / "alt-definitions.yaml").read_text()
        bootstrap = broker.url.removeprefix("kafka://")
        records = [line for line in (golden / "journey-identity.jsonl").read_bytes().split(b"\n") if line.strip()]  # anonymous journeys too (SPEC §9)
        half = len(records) // 2
        produce(broker, records[:half])
        first, second = start_worker("first", env=ADMIN), start_worker("second", env=ADMIN)
        report_when_settled(first, replayed(records[:half]).report(current))

        # Bad input: a JSON error with the reason, nothing recorded.
        assert put_shadow(first, candidate_yaml, token=None)[0] == 401
        assert put_shadow(first, candidate_yaml, token="wrong")[0] == 401
        status, body = put_shadow(first, "stages: [unclosed\n")
        assert status == 400 and "error" in body, body
        status, body = put_shadow(first, "stages: []\n")
        assert status == 400 and "stages" in body["error"], body
        status, body = first.request("POST", SHADOW + "/promote", token=TOKEN)
        assert status == 409 and "no shadow" in body["error"], body
        assert first.get(SHADOW)[0] == 404
        assert cluster_definitions(broker) == ["current: none (each worker runs its own definitions file)", "shadow: none"]

        # A shadow: replay's comparison over what was produced, on every worker, before and after more events.
        assert put_shadow(second, candidate_yaml) == (200, {"shadow": candidate.digest})
        named = {"current": current.digest, "shadow": candidate.digest}
        for worker in (first, second):
            comparison_when(worker, {**replayed(records[:half]).comparison(current, candidate), "definitions": named})
        assert healthz_digests(first) == (current.digest, candidate.digest)
        produce(broker, records[half:])
        expected = {**replayed(records).comparison(current, candidate), "definitions": named}
        for worker in (first, second):
            comparison_when(worker, expected)
        assert spec_report(first.get("/api/report")[1], current.digest) is not None  # the current numbers stay current
        assert cluster_definitions(broker) == ["current: none (each worker runs its own definitions file)", f"shadow: {candidate.digest}"]

        # Promoted: both workers switch without a restart, the change stream catches up.
        assert first.request("POST", SHADOW + "/promote", token=TOKEN) == (200, {"current": candidate.digest})
        for worker in (first, second):
            report = report_when_settled(worker, replayed(records).report(candidate))
            assert healthz_digests(worker) == (candidate.digest, None)
        assert first.get(SHADOW)[0] == 404
        last = wait_for(lambda: _ends_at(bootstrap, records, candidate), 90, "journey.lead-changes to end under the candidate")
        assert any(change["cause"] == {"definitions": candidate.digest} for change in last.values())
        assert cluster_definitions(broker) == [f"current: {candidate.digest}", "shadow: none"]

        # Killed and started with its old flags (no --definitions): the cluster's current wins.
        first.stop(signal.SIGKILL)
        first = start_worker("first", data_dir=first.data_dir, env=ADMIN)
        assert healthz_digests(first)[0] == candidate.digest
        assert "win over this worker's file" in first.tail()
        report_when_settled(first, replayed(records).report(candidate))

        # Back to the files: the defaults again, report and change stream included.
        assert first.request("DELETE", "/api/definitions/current", token=TOKEN)[0] == 200
        for worker in (first, second):
            report = report_when_settled(worker, replayed(records).report(current))
            assert healthz_digests(worker) == (current.digest, None)
        assert same_instants(report, replayed(records).report(current))
        last = wait_for(lambda: _ends_at(bootstrap, records, current), 90, "journey.lead-changes to end under the defaults")
        assert any(change["cause"] == {"definitions": current.digest} for change in last.values())


def _ends_at(bootstrap: str, records: list[bytes], defs) -> dict | str:
    """The last change per lead once it is replay's under `defs` (the change stream speaks of lead ids
    only, SPEC §9), and every partition's record names `defs`; else (falsy for wait_for) why not yet."""
    expected = {lead["lead_id"]: lead for lead in replayed(records).lead_records(defs) if lead["lead_id"] is not None}
    last = last_change_per_lead(bootstrap)
    if set(last) != set(expected):
        return _NotYet(f"leads without a change {sorted(set(expected) - set(last))[:5]}, changes of no lead {sorted(set(last) - set(expected))[:5]}")
    wrong = [lead for lead in expected if last[lead]["new"] != {"stage": expected[lead]["stage"], "qualification": expected[lead]["qualification"]}]
    if wrong:
        return _NotYet(f"{len(wrong)} of {len(expected)} leads end elsewhere, e.g. {[(w, last[w]['new']) for w in wrong[:3]]}")
    if published_under(bootstrap) != dict.fromkeys(range(8), defs.digest):
        return _NotYet(f"journey.lead-changes.definitions: {published_under(bootstrap)}")
    return last


class _NotYet(str):
    def __bool__(self) -> bool:
        return False


class TestASwitchSurvivesAKill:
    def test_a_worker_killed_in_the_middle_of_a_promotion_ends_where_replay_does(self, broker, start_worker, golden: Path, golden_log: list[bytes]) -> None:
        current, candidate = default_definitions(), load_definitions(golden / "alt-definitions.yaml")
        bootstrap = broker.url.removeprefix("kafka://")
        produce(broker, golden_log)
        env = {**ADMIN, "JOURNEY_LOG_LEVEL": "info", "JOURNEY_PAUSE": "catch-up=60"}  # paused after each partition's catch-up
        worker = start_worker("w", env=env)
        report_when_counted(worker, len(golden_log))
        assert put_shadow(worker, (golden / "alt-definitions.yaml").read_text())[0] == 200
        logged = worker.log.stat().st_size
        assert worker.request("POST", SHADOW + "/promote", token=TOKEN) == (200, {"current": candidate.digest})

        def one_partition_caught_up() -> bool:
            return "journey.lead-changes caught up" in worker.log.read_bytes()[logged:].decode(errors="replace")

        wait_for(one_partition_caught_up, 60, "the first partition's catch-up")
        worker.stop(signal.SIGKILL)
        published = published_under(bootstrap)
        assert sorted(published.values()) == sorted([candidate.digest] + [current.digest] * 7), published

        worker = start_worker("w", data_dir=worker.data_dir, env=ADMIN)  # its old flags: no --definitions
        assert same_instants(report_when_counted(worker, len(golden_log)), replayed(golden_log).report(candidate))
        wait_for(lambda: _ends_at(bootstrap, golden_log, candidate), 90, "journey.lead-changes to end under the candidate")


class TestAWorkerWithoutAnAdminToken:
    def test_refuses_every_admin_request_naming_the_setting_and_still_reads(self, broker, start_worker, golden: Path, golden_log: list[bytes]) -> None:
        produce(broker, golden_log[:50])
        worker = start_worker("w")
        report_when_counted(worker, 50)
        yaml = (golden / "alt-definitions.yaml").read_text()
        for method, path, body in (("PUT", SHADOW, yaml.encode()), ("DELETE", SHADOW, None), ("POST", SHADOW + "/promote", None), ("DELETE", "/api/definitions/current", None)):
            status, answer = worker.request(method, path, body, token=TOKEN)
            assert status == 403 and "JOURNEY_ADMIN_TOKEN" in answer["error"], (method, path, status, answer)
        status, answer = worker.get(SHADOW)
        assert status == 404 and "error" in answer
        assert healthz_digests(worker) == (default_definitions().digest, None)
        assert read_topic(broker.url.removeprefix("kafka://"), topics.DEFINITIONS, 1) == []  # nothing recorded
