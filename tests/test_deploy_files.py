"""The deploy files name only what exists: docker-compose.yml, the Dockerfile and deploy/
are read without a container runtime, and every repository path, image path, agent,
``streamproc`` verb and option they name is looked up."""

from __future__ import annotations

import re
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from streamproc.cli.main import main
from streamproc.config import WorkerSettings
from streamproc.registry import registered
from tests.cli_runner import ROOT
from tests.cli_tree import unknown_options

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
KEDA = ROOT / "deploy" / "keda-scaledobject.yaml"


def image_paths() -> dict[str, Path]:
    """What the Dockerfile copies: each path inside the image and the repository's source."""
    text = DOCKERFILE.read_text()
    [workdir] = re.findall(r"^WORKDIR (\S+)$", text, re.MULTILINE)
    copied: dict[str, Path] = {}
    for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
        *sources, target = line.split()
        target = str(Path(workdir, target))  # an absolute target stays as it is
        into_directory = line.split()[-1].endswith("/") or len(sources) > 1
        for source in sources:
            for found in ROOT.glob(source) if "*" in source else [ROOT / source]:
                copied[f"{target}/{found.name}" if into_directory else target] = found
    return copied


def in_image(path: str) -> Path | None:
    """The repository file an image path comes from, or None when nothing copies it."""
    for inside, source in image_paths().items():
        if path == inside or path.startswith(inside + "/"):
            return source / path[len(inside) :].lstrip("/")
    return None


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def streamproc_services() -> dict[str, dict[str, Any]]:
    """The services running the streamproc image (whose entry point is ``streamproc``)."""
    services = compose()["services"]
    return {name: s for name, s in services.items() if s.get("image") == "streamproc:local"}


def header_commands() -> list[list[str]]:
    """The CLI arguments of each ``docker compose run ... SERVICE ARGS`` in the comments."""
    commands = []
    for line in COMPOSE.read_text().splitlines():
        for command in re.findall(r"docker compose run (.+?)(?:\s+\||$)", line):
            words = shlex.split(command)
            while words[0].startswith("-"):
                words = words[2:] if words[0] == "-v" else words[1:]
            assert words[0] in streamproc_services(), line
            commands.append(words[1:])
    return commands


def test_every_dockerfile_copy_source_exists() -> None:
    assert image_paths()
    assert all(source.exists() for source in image_paths().values())


def test_every_image_path_the_compose_header_names_is_in_the_image() -> None:
    named = [w for args in header_commands() for w in args if w.startswith("/app/")]
    assert named
    for path in named:
        source = in_image(path)
        assert source is not None and source.is_file(), f"{path}: not in the image"


def test_every_compose_command_names_a_verb_and_options_it_takes() -> None:
    commands = [args for args in header_commands() if args and args[0] != "show"]
    commands += [s["command"] for s in streamproc_services().values()]
    commands += [
        c.split() for c in re.findall(r"`docker run IMAGE ([^`]+)`", DOCKERFILE.read_text())
    ]
    assert len(commands) >= 5
    for args in commands:
        assert unknown_options(shlex.join(["streamproc", *args])) == []


def test_the_compose_workers_serve_registered_agents_that_the_seed_workflow_needs() -> None:
    [worker] = [s["command"] for s in streamproc_services().values() if s["command"][0] == "worker"]
    assert "--import" not in worker  # the image's entry points register them
    served = set(worker[worker.index("--agent") + 1].split(","))
    assert served <= set(registered())
    seed = yaml.safe_load((ROOT / "streamproc" / "examples" / "agentic.yaml").read_text())
    assert {task["agent"] for task in seed["tasks"]} <= served


def test_the_keda_scaler_watches_a_registered_agent_with_existing_options() -> None:
    text = KEDA.read_text()
    streams = re.findall(r'stream: "\{\w+:\d+\}:tasks:([\w.-]+)"', text)
    assert streams and set(streams) <= set(registered())
    for command in re.findall(r"`(streamproc [^`]+)`", text):
        assert unknown_options(command) == []


def test_compose_gives_each_worker_time_to_hand_its_tasks_back_before_a_kill() -> None:
    """deploy/README.md: above the grace plus --shutdown-timeout (it gave 30 s of their 40)."""
    [timeout] = [p for p in main.commands["worker"].params if p.name == "shutdown_timeout"]
    [grace] = [f.default for f in fields(WorkerSettings) if f.name == "shutdown_grace"]
    needed = float(grace) + float(timeout.default)  # type: ignore[arg-type]
    for name, service in streamproc_services().items():
        given = service.get("stop_grace_period", "10s")
        assert float(given.removesuffix("s")) > needed, (name, given, needed)
