"""How the project installs: agents/ as ``streamproc_agents`` (a top-level ``agents`` belongs
to other distributions), the test agents off the production entry points, and every
streamproc package in the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

from streamproc.registry import ENTRY_POINT_GROUP

ROOT = Path(__file__).parents[1]


def test_every_streamproc_folder_is_a_listed_package_of_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(path.relative_to(ROOT).parts)
        for path in [ROOT / "streamproc", *(ROOT / "streamproc").rglob("*")]
        if path.is_dir() and "__pycache__" not in path.parts
    }
    assert set(setuptools["packages"]) == folders | {"streamproc_agents"}
    assert setuptools["package-dir"] == {"streamproc_agents": "agents"}


def test_the_agents_import_as_streamproc_agents_and_never_as_agents(tmp_path: Path) -> None:
    """Run from an empty folder: Python puts the working directory first on ``sys.path``,
    and from the repository's root its agents/ folder would import as ``agents``."""
    code = (
        "import streamproc_agents.agentic\n"
        "try:\n"
        "    import agents\n"
        "except ModuleNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "No module named 'agents'\n"), done.stderr


def test_the_production_entry_points_name_the_prototypes_agents_only() -> None:
    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert names == {
        "description": "streamproc_agents.agentic:describe",
        "planning": "streamproc_agents.agentic:plan",
        "execution": "streamproc_agents.agentic:execute",
        "evaluation": "streamproc_agents.agentic:evaluate",
        "validation": "streamproc_agents.agentic:validate",
    }


def test_the_package_data_ships_every_dashboard_file() -> None:
    """``streamproc api`` serves the dashboard from the installed package: each of its files
    must match a package-data pattern, or a wheel install would serve a page without it."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["streamproc"]
    package = ROOT / "streamproc"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    files = {path for path in (package / "http" / "ui").iterdir() if path.is_file()}
    assert files and files <= shipped, sorted(str(p) for p in files - shipped)
