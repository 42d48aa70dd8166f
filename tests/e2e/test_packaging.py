"""`pip install .` (not editable, as the Docker image installs it) ships every sub-package,
the compiled fold and the dashboard, and the installed `journey` replays the golden log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import same_instants

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "schemas", "projections", "streams")  # what the Dockerfile copies


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scratch = tmp_path_factory.mktemp("packaging")
    source = scratch / "source"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy2(ROOT / name, source / name)
    target = scratch / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def run_installed(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The installed copy first on the path; the dependencies come from this venv.
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run([str(target / "bin" / "journey"), *args], capture_output=True, text=True, env=env, cwd=target.parent, timeout=120)


class TestNonEditableInstall:
    def test_every_package_of_the_source_tree_is_installed(self, installed: Path) -> None:
        packages = {p.parent.relative_to(ROOT) for top in ("schemas", "projections", "streams") for p in (ROOT / top).rglob("__init__.py")}
        missing = [str(p) for p in packages if not (installed / p / "__init__.py").exists()]
        assert not missing, f"not shipped: {missing}"

    def test_the_dashboard_and_the_c_fold_are_installed(self, installed: Path) -> None:
        for name in ("index.html", "dashboard.js", "dashboard.css", "chart.umd.min.js", "chart.js-LICENSE.md"):
            assert (installed / "streams" / "live" / "dashboard" / name).is_file()
        assert list((installed / "projections").glob("_fold*.so"))

    def test_the_installed_journey_replays_the_golden_log(self, installed: Path, golden: Path, expected_report: dict) -> None:
        probe = run_installed(installed, "replay", "--input", str(golden / "journey-small.jsonl"), "--format", "json")
        assert probe.returncode == 0, probe.stderr
        assert same_instants(json.loads(probe.stdout), expected_report)
        where = subprocess.run(
            [sys.executable, "-c", "import streams.replay.run, projections._fold; print(streams.replay.run.__file__)"],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(installed)}, cwd=installed.parent,
        )
        assert where.stdout.strip().startswith(str(installed)), "the test ran the source tree, not the installed copy"
