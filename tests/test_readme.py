"""Every code block of the README and of docs/*.md does what it shows.

A fence's language says how its block is checked:

- ``python``: run as a program in a subprocess, with ``STREAMPROC_REDIS_URL`` set to the
  test's redis-server.  The examples read that variable and fall back to
  ``redis://localhost:6379/0``, so a user's copy runs against their local Redis as written.
- ``sh``: each command either runs a script of the repository (which must exist and be
  executable) or is a ``streamproc`` command whose verb and options must exist.
- ``yaml``, ``json``: a workflow spec, loaded by ``WorkflowSpec``.
- ``tokens``: an API token file, parsed by the API's token parser.
- ``text``: not run (output samples, diagrams, the key layout, the CLI synopsis).  The
  synopsis is still checked: each of its ``streamproc`` lines, with the lines indented
  under it, names a verb that exists and only options that verb takes.  So is every inline
  ``streamproc VERB --option`` span of the prose.

A fence with any other language, or none, fails the test: each new block is given one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamproc import WorkflowSpec
from streamproc.http.tokens import parse_tokens
from tests.cli_runner import ROOT, cli_env
from tests.cli_tree import unknown_options

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"`(streamproc [^`]+)`")
LANGUAGES = {"python", "sh", "yaml", "json", "tokens", "text"}


def blocks(language: str) -> list[tuple[str, str]]:
    """(where, code) of every block in ``language``; ``where`` names the file and line."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text()
        for match in FENCE.finditer(text):
            if match[1].strip() == language:
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{document.name}:{line}", match[2]))
    return found


def ids(found: list[tuple[str, str]]) -> list[str]:
    return [where for where, _ in found]


def test_every_code_block_says_how_it_is_checked() -> None:
    for document in DOCUMENTS:
        for match in FENCE.finditer(document.read_text()):
            assert match[1].strip() in LANGUAGES, f"{document.name}: fence {match[1]!r}"


@pytest.mark.parametrize("code", [c for _, c in blocks("python")], ids=ids(blocks("python")))
def test_python_blocks_run_as_written(code: str, redis_url: str, tmp_path: Path) -> None:
    env = {**cli_env(), "STREAMPROC_REDIS_URL": redis_url}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,  # nothing of the repository's checkout is needed
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "an example shows what it did"


@pytest.mark.parametrize("code", [c for _, c in blocks("sh")], ids=ids(blocks("sh")))
def test_shell_blocks_name_existing_scripts_verbs_and_options(code: str) -> None:
    for line in code.splitlines():
        command = line.split("#", 1)[0].strip()
        if not command:
            continue
        if command.startswith("streamproc "):
            assert unknown_options(command) == []
        else:
            script = ROOT / command.split()[0]
            assert script.is_file() and os.access(script, os.X_OK), command


def synopsis_commands(code: str) -> list[str]:
    """Each ``streamproc`` line of a text block joined with the lines indented under it."""
    commands: list[str] = []
    for line in code.splitlines():
        if line.startswith("streamproc "):
            commands.append(line)
        elif commands and line.startswith(" "):
            commands[-1] += " " + line.strip()
    return commands


def documented_commands() -> list[str]:
    commands = [c for _, code in blocks("text") for c in synopsis_commands(code)]
    for document in DOCUMENTS:
        commands += INLINE.findall(document.read_text())
    return commands


def test_every_documented_streamproc_command_names_a_verb_and_options_it_takes() -> None:
    commands = documented_commands()
    assert any(c.startswith("streamproc dead requeue") for c in commands)  # the synopsis
    unknown = [problem for command in commands for problem in unknown_options(command)]
    assert unknown == []


SPECS = blocks("yaml") + blocks("json")


@pytest.mark.parametrize("code", [c for _, c in SPECS], ids=ids(SPECS))
def test_yaml_and_json_blocks_are_valid_workflow_specs(code: str) -> None:
    WorkflowSpec.from_yaml(code).validate()  # JSON is YAML too


@pytest.mark.parametrize("code", [c for _, c in blocks("tokens")], ids=ids(blocks("tokens")))
def test_token_blocks_parse_as_a_tokens_file(code: str) -> None:
    assert parse_tokens(code, "\n", "tokens")
