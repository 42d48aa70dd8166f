"""The documentation's examples run as written: every ```sh and ```python block of README.md and
docs/**/*.md, with the real `journey` command, a real embedded broker and a real worker.

The conventions, which the documents follow where a reader can see them:
- The blocks of one document run in order, in one fresh directory, so a block may use a file an
  earlier block of the same document made; nothing else is in that directory.
- A block right after `<!-- not run: REASON -->` is only checked for shell syntax. That is for the
  few that serve until Ctrl-C (`journey broker`, `journey worker`, `make demo`), need what this
  machine lacks (Docker, Kubernetes), or are the suite or the benchmarks themselves.
- The documents use the default addresses: the broker at 127.0.0.1:9092, a worker at
  localhost:6066 started with the ingest token `change-me` (and a reader who exported it). This
  module starts one embedded broker and one worker on free ports, the worker as the README starts
  it (no --data-dir), and points every block at them: JOURNEY_BROKER and JOURNEY_INGEST_TOKEN are
  set, and the ports 9092 and 6066 in a block become theirs.
- A block fails on a non-zero exit (bash -e -o pipefail), a traceback, or an answer that shows the
  documented request itself is wrong: an unknown path or method, a refused token, a content type
  the endpoint does not take.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.net import free_port
from streams.tools.broker import EmbeddedBroker
from tests.e2e.conftest import JOURNEY

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELLS = ("sh", "bash", "shell")
LANGUAGES = (*SHELLS, "python")
NOT_RUN = re.compile(r"^<!-- not run: (?P<reason>\S.*\S) -->$")
MOST_NOT_RUN = 7  # as many as there are today: each one is an example nobody checks, so adding one is a decision
NEEDS_SERVERS = re.compile(r"kafka://|--broker|:6066|:9092|journey (produce|dlq|topics)\b|curl ")
WRONG_REQUEST = re.compile(
    r'"error": ?"(Not Found|Method Not Allowed)"'
    r"|header is required"  # a missing or refused token
    r"|ingest is off"
    r"|content type '[^']*' is not accepted"
)
INGEST_TOKEN = "change-me"
BLOCK_TIMEOUT = 120


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence
    language: str
    code: str
    not_run: str | None  # the reason, when the block is marked not to run

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks_of(document: Path) -> list[Block]:
    lines = document.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = re.fullmatch(r"```(\w*)\s*", lines[i])
        if opening is None:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        language = opening.group(1)
        if language in LANGUAGES:
            before = next((line for line in reversed(lines[:i]) if line.strip()), "")
            marked = NOT_RUN.match(before.strip())
            found.append(Block(document, i + 1, language, "\n".join(lines[i + 1 : end]) + "\n", marked and marked.group("reason")))
        i = end + 1
    return found


BLOCKS = {document: blocks_of(document) for document in DOCUMENTS}


def anchors(document: Path) -> set[str]:
    """The anchors GitHub gives a document's headings."""
    text = re.sub(r"^```.*?^```", "", document.read_text(), flags=re.M | re.S)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in re.findall(r"^#+ (.+)$", text, flags=re.M)}


class Servers:
    """One embedded broker and one worker for the whole module, started when a block first needs them."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.broker: EmbeddedBroker | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.web_port = 0

    def ensure(self) -> Servers:
        if self.worker is None:
            self.broker = EmbeddedBroker(free_port(), log=self.scratch / "broker.log").start()
            self.web_port = free_port()
            log = (self.scratch / "worker.log").open("ab")
            self.worker = subprocess.Popen(
                [str(JOURNEY), "worker", "--broker", self.broker.url, "--web-port", str(self.web_port)],
                cwd=self.scratch, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "JOURNEY_INGEST_TOKEN": INGEST_TOKEN, "JOURNEY_LOG_LEVEL": "warning"},
            )
            self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.worker is not None and self.worker.poll() is None, f"the worker exited: {self.tail()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz", timeout=5) as answer:
                    if b'"ready":true' in answer.read():
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"the worker was not ready within {timeout}s: {self.tail()}")

    def tail(self) -> str:
        return (self.scratch / "worker.log").read_text(errors="replace")[-3000:]

    def point_at(self, code: str) -> str:
        """The block with the documented default ports replaced by this module's."""
        if self.broker is None:
            return code
        code = re.sub(r"\b(127\.0\.0\.1|localhost):9092\b", f"127.0.0.1:{self.broker.port}", code)
        return re.sub(r"\b(127\.0\.0\.1|localhost):6066\b", f"127.0.0.1:{self.web_port}", code)

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", "JOURNEY_INGEST_TOKEN": INGEST_TOKEN}
        for name in ("JOURNEY_DEFINITIONS", "JOURNEY_READ_TOKEN", "JOURNEY_DEBUG"):  # the reader's shell has none of these
            env.pop(name, None)
        if self.broker is not None:
            env["JOURNEY_BROKER"] = self.broker.url
        return env

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker.wait()
        if self.broker is not None:
            self.broker.stop()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    running = Servers(tmp_path_factory.mktemp("docs-servers"))
    yield running
    running.stop()


def run_block(block: Block, directory: Path, servers: Servers) -> str:
    """Run one block in `directory`; the combined output, or an AssertionError that says why it failed."""
    if NEEDS_SERVERS.search(block.code):
        servers.ensure()
    code = servers.point_at(block.code)
    command = ["bash", "-e", "-o", "pipefail", "-c", code] if block.language in SHELLS else [sys.executable, "-c", code]
    done = subprocess.run(command, cwd=directory, env=servers.env(), capture_output=True, timeout=BLOCK_TIMEOUT)
    output = (done.stdout + done.stderr).decode(errors="replace")
    problem = None
    if done.returncode != 0:
        problem = f"exited with {done.returncode}"
    elif "Traceback (most recent call last)" in output:
        problem = "printed a traceback"
    elif (wrong := WRONG_REQUEST.search(output)) is not None:
        problem = f"was answered {wrong.group(0)!r}: the documented request is wrong"
    if problem is not None:
        raise AssertionError(f"{block.where}: the example {problem}\n--- block ---\n{block.code}--- output (last 3000 characters) ---\n{output[-3000:]}")
    return output


@pytest.mark.timeout(300)
@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_every_example_of_the_document_runs_as_written(document: Path, tmp_path: Path, servers: Servers) -> None:
    for block in BLOCKS[document]:
        if block.not_run is None:
            run_block(block, tmp_path, servers)


class TestTheConventions:
    def test_blocks_not_run_say_why_are_few_and_are_valid_shell(self) -> None:
        skipped = [block for blocks in BLOCKS.values() for block in blocks if block.not_run is not None]
        assert len(skipped) <= MOST_NOT_RUN, [block.where for block in skipped]
        for block in skipped:
            assert block.language in SHELLS, f"{block.where}: only shell blocks may be marked not run"
            checked = subprocess.run(["bash", "-n", "-c", block.code], capture_output=True)
            assert checked.returncode == 0, f"{block.where}: {checked.stderr.decode()}"

    def test_the_readme_and_the_reference_have_examples(self) -> None:
        for name in ("README.md", "docs/reference/event.md", "docs/reference/api.md", "docs/reference/cli.md"):
            assert any(block.not_run is None for block in BLOCKS[ROOT / name]), name

    def test_a_failing_unmarked_block_fails(self, tmp_path: Path, servers: Servers) -> None:
        document = tmp_path / "doc.md"
        document.write_text("Text.\n\n```sh\ntrue\njourney replay --input missing.jsonl\necho never\n```\n")
        (block,) = blocks_of(document)
        with pytest.raises(AssertionError, match="exited with 1"):
            run_block(Block(ROOT / "README.md", block.line, block.language, block.code, None), tmp_path, servers)

    def test_a_traceback_fails_even_with_exit_0(self, tmp_path: Path, servers: Servers) -> None:
        block = Block(ROOT / "README.md", 1, "python", "import traceback\ntry:\n    1 / 0\nexcept ZeroDivisionError:\n    traceback.print_exc()\n", None)
        with pytest.raises(AssertionError, match="traceback"):
            run_block(block, tmp_path, servers)

    def test_every_link_between_documents_resolves(self) -> None:
        broken = []
        for document in DOCUMENTS:
            text = re.sub(r"^```.*?^```", "", document.read_text(), flags=re.M | re.S)
            for target in re.findall(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"", text):
                link = next(part for part in target if part)
                if re.match(r"[a-z]+:", link):
                    continue  # another site
                path, _, anchor = link.partition("#")
                linked = (document.parent / path).resolve() if path else document
                if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
                    broken.append(f"{document.relative_to(ROOT)}: {link}")
        assert not broken

    def test_a_mark_applies_to_the_next_block_only(self, tmp_path: Path) -> None:
        document = tmp_path / "doc.md"
        document.write_text("<!-- not run: serves forever -->\n```sh\njourney broker\n```\n\n```sh\njourney schema\n```\n")
        assert [block.not_run for block in blocks_of(document)] == ["serves forever", None]
