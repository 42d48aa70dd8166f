"""The image builds from a clean clone and checks its own C fold (issue 30).

No Docker engine runs here, so the Dockerfile's own steps are replayed on a clean
`git archive HEAD` export: the Dockerfile is parsed (`dockerfile`, Docker's own Go
parser), the build context is what `.dockerignore` lets through (docker-py's matcher),
each stage gets a directory standing for its filesystem and a fresh venv standing for its
Python, COPY copies, and RUN's `pip` and `python` commands run from the stage's WORKDIR,
with the image's absolute paths mapped into the stage's directory. The system steps
(apt-get, useradd, ...) are skipped; any other command fails the test, so a new kind of
step cannot pass unseen.

The Dockerfile before issue 30 (tests/deploy/before-issue-30/) replayed the
same way fails its check in the export, as it failed in a clean Docker build: its
`python -c "import projections._fold"` ran in /app, where the copied source tree hides
the installed package that holds the compiled module.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile
import pytest
from docker.utils.build import exclude_paths

ROOT = Path(__file__).resolve().parents[2]
BEFORE = Path(__file__).with_name("before-issue-30")  # the Dockerfile and .dockerignore as they were
SYSTEM_STEPS = {"apt-get", "groupadd", "useradd", "mkdir", "chown", "chmod", "rm"}  # the base image's business, not Python's
HOST_ENV = {"PIP_NO_CACHE_DIR"}  # the replay uses this machine's warm pip cache; a Docker build has none to use

pytestmark = pytest.mark.timeout(900)


class StepFailed(AssertionError):
    pass


@dataclass
class Stage:
    name: str | None
    root: Path
    venv: Path
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)

    def path(self, image_path: str, mounts: dict[str, Path] | None = None) -> Path:
        """Where an absolute path of this stage's filesystem is in the replay."""
        for target, source in (mounts or {}).items():
            if image_path == target or image_path.startswith(target.rstrip("/") + "/"):
                return source / os.path.relpath(image_path, target)
        return self.root / image_path.lstrip("/")


def context_files(context: Path) -> set[str]:
    """The files of the build context that .dockerignore lets through, as Docker's own client computes them."""
    ignore = context / ".dockerignore"
    patterns = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")] if ignore.exists() else []
    return {p for p in exclude_paths(str(context), patterns) if (context / p).is_file()}


def clean_export(into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=60)
    return into


def new_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    return where


def copy(stage: Stage, sources: list[Path], files: set[str] | None, base: Path, dest: str) -> None:
    """COPY: a directory's contents go into dest; files into dest (a directory when it ends with / or there are several)."""
    target = stage.path(dest if dest.startswith("/") else f"{stage.workdir.rstrip('/')}/{dest}")
    into_dir = dest.endswith("/") or len(sources) > 1
    for source in sources:
        wanted = (lambda rel: True) if files is None else (lambda rel: rel in files)
        if source.is_dir():
            for file in sorted(source.rglob("*")):
                rel = file.relative_to(base).as_posix()
                if file.is_file() and wanted(rel):
                    out = target / file.relative_to(source)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, out)
        else:
            if not source.exists() or not wanted(source.relative_to(base).as_posix()):
                raise StepFailed(f"COPY {source.relative_to(base)}: not in the build context")
            out = target / source.name if into_dir else target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, out)


def run(stage: Stage, command: str, mounts: dict[str, Path]) -> list[str]:
    """RUN, one `&&`-joined piece at a time; returns the pieces it ran."""
    ran = []
    cwd = stage.path(stage.workdir)
    for piece in command.split("&&"):
        words = shlex.split(piece)
        if not words:
            continue
        program = words[0]
        if program in SYSTEM_STEPS:
            continue
        if program == "cd":
            cwd = stage.path(words[1]) if words[1].startswith("/") else cwd / words[1]
            continue
        if program not in ("pip", "python"):
            raise StepFailed(f"the replay does not know how to run {piece.strip()!r}; teach it, or keep RUN to pip and python")
        mapped = [str(stage.venv / "bin" / program)]
        for word in words[1:]:
            option, eq, value = word.partition("=")
            if word.startswith("/"):
                word = str(stage.path(word, mounts))
            elif eq and option.startswith("--") and value.startswith("/"):
                word = f"{option}={stage.path(value, mounts)}"
            mapped.append(word)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        env.update({k: v for k, v in stage.env.items() if k not in HOST_ENV})
        env["PATH"] = f"{stage.venv / 'bin'}:{env.get('PATH', '')}"
        done = subprocess.run(mapped, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise StepFailed(f"RUN {piece.strip()!r} in {stage.workdir} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        ran.append(piece.strip())
    return ran


def replay(dockerfile_text: str, context: Path, scratch: Path, venvs: dict[str, Path] | None = None) -> list[str]:
    """Replay the Dockerfile's build; returns the Python steps it ran. `venvs` reuses a venv per stage index."""
    files = context_files(context)
    stages: list[Stage] = []
    ran: list[str] = []
    for command in dockerfile.parse_string(dockerfile_text):
        if command.cmd == "FROM":
            index = len(stages)
            name = command.value[2] if len(command.value) == 3 and command.value[1].upper() == "AS" else None
            venv = (venvs or {}).get(str(index)) or new_venv(scratch / f"venv-{index}")
            stages.append(Stage(name, scratch / f"stage-{index}", venv))
            stages[-1].root.mkdir(parents=True)
            continue
        stage = stages[-1]
        if command.cmd == "WORKDIR":
            stage.workdir = command.value[0] if command.value[0].startswith("/") else f"{stage.workdir.rstrip('/')}/{command.value[0]}"
            stage.path(stage.workdir).mkdir(parents=True, exist_ok=True)
        elif command.cmd == "ENV":
            stage.env.update(zip(command.value[::2], command.value[1::2], strict=True))
        elif command.cmd == "COPY":
            flags = dict(flag.removeprefix("--").split("=", 1) for flag in command.flags)
            *sources, dest = command.value
            if "from" in flags:
                other = next(s for i, s in enumerate(stages) if flags["from"] in (s.name, str(i)))
                copy(stage, [other.path(s) for s in sources], None, other.root, dest)
            else:
                copy(stage, [context / s for s in sources], files, context, dest)
        elif command.cmd == "RUN":
            mounts = {}
            for flag in command.flags:
                if flag.startswith("--mount="):
                    spec = dict(part.split("=", 1) for part in flag.removeprefix("--mount=").split(","))
                    assert spec.get("type") == "bind", f"the replay knows bind mounts only: {flag}"
                    other = next(s for i, s in enumerate(stages) if spec["from"] in (s.name, str(i)))
                    mounts[spec["target"]] = other.path(spec.get("source", "/"))
            ran += run(stage, command.value[0], mounts)
        elif command.cmd == "ADD":
            raise StepFailed("ADD: use COPY (the replay, and a reader, know what COPY does)")
    return ran


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clean_export(tmp_path_factory.mktemp("image") / "export")


@pytest.fixture(scope="module")
def built(export: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """The Dockerfile at HEAD replayed on the export: (the Python steps it ran, the scratch directory)."""
    scratch = tmp_path_factory.mktemp("replay")
    ran = replay((export / "Dockerfile").read_text(), export, scratch)
    return ran, scratch


class TestTheImageBuildsFromACleanClone:
    def test_the_dockerfile_builds_and_its_own_check_imports_the_compiled_fold(self, built: tuple[list[str], Path]) -> None:
        ran, _ = built
        assert 'python -c "import projections._fold"' in ran, ran  # the check ran, and passed (a failure raises)

    def test_the_check_imported_the_installed_package_not_a_source_tree(self, built: tuple[list[str], Path], export: Path) -> None:
        _, scratch = built
        final = sorted(scratch.glob("venv-*"))[-1]
        workdir = next(c.value[0] for c in reversed(dockerfile.parse_string((export / "Dockerfile").read_text())) if c.cmd == "WORKDIR")
        where = subprocess.run(
            [str(final / "bin" / "python"), "-c", "import projections._fold as f; print(f.__file__)"],
            cwd=sorted(scratch.glob("stage-*"))[-1] / workdir.lstrip("/"), capture_output=True, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        assert where.returncode == 0, where.stderr
        assert Path(where.stdout.strip()).is_relative_to(final) and where.stdout.strip().endswith(".so"), where.stdout

    def test_the_dockerfile_before_issue_30_fails_its_check_in_a_clean_export(self, built: tuple[list[str], Path], export: Path, tmp_path: Path) -> None:
        """The replay can fail: the old Dockerfile (source tree in WORKDIR /app, check run there) does, as a clean
        Docker build did. The new build's venv is reused (dependencies installed; `pip install .` rebuilds journey)."""
        _, scratch = built
        context = tmp_path / "context"
        shutil.copytree(export, context)
        (context / ".dockerignore").write_text((BEFORE / ".dockerignore").read_text())
        with pytest.raises(StepFailed, match=r"(?s)import projections\._fold.*No module named 'projections\._fold'"):
            replay((BEFORE / "Dockerfile").read_text(), context, tmp_path / "old", venvs={"0": sorted(scratch.glob("venv-*"))[-1]})

    def test_the_replay_refuses_a_step_it_does_not_know(self, tmp_path: Path, export: Path) -> None:
        with pytest.raises(StepFailed, match="does not know how to run 'curl"):
            replay("FROM python:3.11-slim\nRUN curl -sSf https://example.com/install.sh\n", export, tmp_path, venvs={"0": Path(sys.prefix)})


class TestTheBuildContext:
    ARTIFACTS = (
        "projections/_fold.cpython-311-x86_64-linux-gnu.so",
        "build/lib.linux-x86_64-cpython-311/projections/_fold.cpython-311-x86_64-linux-gnu.so",
        ".venv/bin/python",
        "data/worker-6066/leads/CURRENT",
        "bench/data/events.jsonl",
        "bench/results/run.json",
        "streams/__pycache__/cli.cpython-311.pyc",
        "journey.egg-info/PKG-INFO",
        ".git/HEAD",
    )

    def planted(self, export: Path, into: Path, dockerignore: str | None = None) -> Path:
        shutil.copytree(export, into)
        for artifact in self.ARTIFACTS:
            (into / artifact).parent.mkdir(parents=True, exist_ok=True)
            (into / artifact).write_text("built on the host")
        if dockerignore is not None:
            (into / ".dockerignore").write_text(dockerignore)
        return into

    def test_no_host_built_artifact_reaches_the_context_and_every_copied_source_does(self, export: Path, tmp_path: Path) -> None:
        context = self.planted(export, tmp_path / "context")
        files = context_files(context)
        assert not files & set(self.ARTIFACTS), files & set(self.ARTIFACTS)
        for needed in ("pyproject.toml", "setup.py", "README.md", "projections/_fold.c", "schemas/segment-events.yaml", "streams/live/dashboard/index.html"):
            assert needed in files
        tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "schemas", "projections", "streams"], capture_output=True, text=True, check=True).stdout.split()
        assert set(tracked) <= files, set(tracked) - files

    def test_the_dockerignore_before_issue_30_let_a_host_built_fold_through(self, export: Path, tmp_path: Path) -> None:
        context = self.planted(export, tmp_path / "context", (BEFORE / ".dockerignore").read_text())
        assert "projections/_fold.cpython-311-x86_64-linux-gnu.so" in context_files(context)
