"""Where the command line meets the machine: a reader that goes away, a port already taken,
Ctrl-C or kill -9 with a private Redis, a mistyped Redis URL, ``--import`` from the current
directory, mistakes in the command line (each one line on stderr, exit 2), and exit codes
that tell an error from an answer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamproc import Client, Keyspace
from streamproc.cli.verb import tls_hint
from streamproc.testing.embedded import free_port
from tests.cli_runner import (
    ECHO_AGENTS,
    STREAMPROC,
    TEST_AGENTS,
    TIMEOUT,
    assert_one_line_error,
    at,
    cli_env,
    run,
    run_sync,
)
from tests.conftest import Engine, eventually

UNREACHABLE = "redis://127.0.0.1:1/0"
PRIVATE = r"started a private redis-server at redis://127\.0\.0\.1:(\d+)/0 \(data in (\S+),"


# -- a reader that goes away ---------------------------------------------------------------------


def with_closed_stdout(*args: str) -> tuple[int, str]:
    """Run the CLI writing to a pipe whose reader is already gone (``| head -1`` once head
    has its line): the exit code and stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [str(STREAMPROC), *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


def test_status_piped_into_a_reader_that_stops_exits_quietly(
    redis_url: str, keyspace: Keyspace
) -> None:
    code, err = with_closed_stdout("status", *at(redis_url, keyspace))
    assert (code, err) == (0, "")


async def test_events_piped_into_a_reader_that_stops_exits_quietly(
    client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
    code, err = with_closed_stdout("events", "--from", "0", *at(redis_url, keyspace))
    assert (code, err) == (0, "")


# -- a port already taken ------------------------------------------------------------------------


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize(
    "args",
    [
        ["api", "--port"],
        ["worker", "--agent", "echo", *ECHO_AGENTS, "--metrics-port"],
        ["up", *ECHO_AGENTS, "--metrics-port"],
    ],
    ids=["api", "worker", "up"],
)
async def test_a_busy_port_is_named_in_one_line_and_nothing_claims_to_serve(
    args: list[str], busy_port: int, redis_url: str, keyspace: Keyspace
) -> None:
    result = await run(*args, str(busy_port), *at(redis_url, keyspace))
    assert_one_line_error(result, f"error: cannot listen on 127.0.0.1:{busy_port}")
    assert result.code == 1, result
    assert "serving" not in result.err and "Redis" not in result.err


async def test_a_metrics_address_that_is_none_is_named_in_one_line(
    redis_url: str, keyspace: Keyspace
) -> None:
    """It said 'unknown error -2' (getaddrinfo's errno, read as the OS's)."""
    port = str(free_port())
    args = ["worker", "--agent", "echo", *ECHO_AGENTS, "--metrics-port", port]
    result = await run(*args, "--metrics-addr", "999.1.1.1", *at(redis_url, keyspace))
    assert_one_line_error(
        result, f"error: cannot listen on 999.1.1.1:{port} for metrics: no such address: "
    )
    assert "unknown error" not in result.err and result.code == 1
    result = await run(*args, "--metrics-addr", "bogus..addr", *at(redis_url, keyspace))
    assert_one_line_error(
        result, f"error: cannot listen on bogus..addr:{port} for metrics: no such address: not a"
    )
    assert result.code == 1, result
    result = await run(*args[:-2], "--metrics-addr", "::1", *at(redis_url, keyspace))
    assert_one_line_error(
        result, "error: --metrics-addr: give --metrics-port too (without it, nothing is served)"
    )
    assert result.code == 2, result


# -- the private Redis ---------------------------------------------------------------------------


def start_up(*args: str, default_url: str | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """``streamproc up`` leading its own process group, as a terminal's foreground job does;
    ``default_url`` replaces the default Redis URL the way a click ``default_map`` does, so
    no URL counts as given and nothing at the usual address is involved.  Its stderr goes
    to the returned file."""
    log = Path(tempfile.mkstemp(prefix="up-", suffix=".log")[1])
    command = [str(STREAMPROC)]
    if default_url is not None:
        main = "from streamproc.cli.main import main; main(default_map={'up': {'redis_url': %r}})"
        command = [sys.executable, "-c", main % default_url]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "up", "--import", TEST_AGENTS, "--log-format", "text", *args],
            env=cli_env(),
            stderr=stderr,
            start_new_session=True,
        )
    return process, log


async def logged(process: subprocess.Popen[bytes], log: Path, pattern: str) -> re.Match[str] | None:
    """For ``eventually``: ``pattern`` in the log of ``process``, which must still run."""
    text = await asyncio.to_thread(log.read_text)
    assert process.poll() is None, text
    return re.search(pattern, text)


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


async def test_ctrl_c_stops_up_and_its_private_redis_promptly_and_cleanly() -> None:
    process, log = start_up("-v", default_url=f"redis://127.0.0.1:{free_port()}/0")
    try:
        private = await eventually(lambda: logged(process, log, PRIVATE), timeout=TIMEOUT)
        await eventually(lambda: logged(process, log, r"worker \S+ serving"), timeout=TIMEOUT)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = await asyncio.to_thread(process.wait, 15)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    text = await asyncio.to_thread(log.read_text)
    assert code == 0, text
    assert "retrying" not in text
    assert not answers(int(private.group(1)))
    assert not await asyncio.to_thread(Path(private.group(2)).exists)


@pytest.mark.skipif(sys.platform != "linux", reason="only Linux stops a child when its owner dies")
async def test_a_killed_up_takes_its_private_redis_with_it() -> None:
    process, log = start_up(default_url=f"redis://127.0.0.1:{free_port()}/0")
    private = None
    try:
        private = await eventually(lambda: logged(process, log, PRIVATE), timeout=TIMEOUT)
        port = int(private.group(1))
        assert answers(port)
        process.kill()  # SIGKILL to the owner alone: no graceful stop, no signal to its group
        await asyncio.to_thread(process.wait, TIMEOUT)
        await eventually(lambda: asyncio.to_thread(lambda: not answers(port)), timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if private is not None:  # what may be left: a server that outlived its owner, its data
            shut_down(int(private.group(1)))
            shutil.rmtree(private.group(2), ignore_errors=True)


def shut_down(port: int) -> None:
    """``SHUTDOWN NOSAVE`` to a redis-server on ``port``, if one answers there."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as sock:
        sock.sendall(b"SHUTDOWN NOSAVE\r\n")
        sock.recv(64)


def test_an_unreachable_redis_url_given_to_up_is_an_error_not_a_private_redis() -> None:
    process, log = start_up("--redis-url", UNREACHABLE)
    try:
        code = process.wait(TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    err = log.read_text()
    assert code == 2, err
    [line] = err.splitlines()
    assert line.startswith(f"error: cannot reach Redis at {UNREACHABLE}: "), err


# -- mistakes in the command line --------------------------------------------------------------

NOT_A_STREAM_ID = "is not a stream id (<ms>-<seq>, e.g. 1700000000000-0)"
USAGE_ERRORS = [  # the command line, the help it points to, what the error says
    ("submit nosuch.yaml", "submit", "File 'nosuch.yaml' does not exist."),
    ("submit flow.yaml --wiat", "submit", "No such option '--wiat'."),
    ("lsit", "", "No such command 'lsit'."),
    ("list --limit abc", "list", "'abc' is not a valid integer."),
    ("status --shards 0", "status", "0 is not in the range 1<=x<=1024."),
    ("status --shards 1025", "status", "1025 is not in the range 1<=x<=1024."),
    ("--log-format xml", "", "No such option '--log-format'."),
    ("status --log-format xml", "status", "'xml' is not one of 'json', 'text'."),
    ("api --tokens-file nosuch.tokens", "api", "'nosuch.tokens' does not exist."),
    ("dead show --agent x", "dead show", "Missing argument 'ENTRY_ID'."),
    ("dead show notanid --agent x", "dead show", f"'notanid' {NOT_A_STREAM_ID}"),
    ("dead purge --agent x --before 1-x", "dead purge", f"'--before': '1-x' {NOT_A_STREAM_ID}"),
    ("events --from garbage", "events", f"'--from': 'garbage' {NOT_A_STREAM_ID}"),
    ("replay stream --start garbage", "replay stream", f"'--start': 'garbage' {NOT_A_STREAM_ID}"),
    ("replay stream --end 1-2-3", "replay stream", f"'--end': '1-2-3' {NOT_A_STREAM_ID}"),
    ("list --socket-timeout nan", "list", "'nan' is not a finite number of seconds"),
    ("worker --agent ''", "worker", "'--agent': '' is not an agent name"),
    ("worker --agent echo,'a b'", "worker", "'--agent': 'a b' is not an agent name"),
    ("dead list --agent ''", "dead list", "'--agent': '' is not an agent name"),
    ("resolver --stream-retention inf", "resolver", "'inf' is not a finite number of seconds"),
]


@pytest.mark.parametrize(("line", "verb", "said"), USAGE_ERRORS, ids=[e[0] for e in USAGE_ERRORS])
def test_a_usage_error_is_one_line_that_names_the_help_to_read(
    line: str, verb: str, said: str
) -> None:
    result = run_sync(*shlex.split(line))
    assert_one_line_error(result, "error: ")
    assert said in result.err, result.err
    help_of = " ".join(["streamproc", *verb.split()])
    assert result.err.endswith(f" (see {help_of} --help)\n"), result.err
    assert result.code == 2 and result.out == "", result


async def test_an_output_position_from_the_api_follows_a_workflow_and_needs_one(
    engine: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    """The API's event ids of output events end in :out; events --from takes one to
    resume a workflow's events, and refuses it in one line without --workflow."""
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo", "input": 1}]})
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    resumed = await run(
        "events", "--workflow", workflow_id, "--from", "0-0:out", *at(redis_url, keyspace)
    )
    assert resumed.code == 0, resumed
    assert "completed" in resumed.out, resumed
    alone = await run("events", "--from", "0-0:out", *at(redis_url, keyspace))
    assert_one_line_error(alone, "error: --from: '0-0:out' is the position of a workflow's output")
    assert alone.code == 2, alone


def test_a_group_given_no_verb_still_prints_its_help() -> None:
    result = run_sync("dead")
    assert result.code == 2, result
    assert result.err.startswith("Usage: streamproc dead [OPTIONS] COMMAND [ARGS]..."), result


def test_a_payload_file_that_cannot_be_read_is_named_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nosuch.json"
    result = run_sync("signal", "wf", "go", "--data", f"@{missing}", "--redis-url", UNREACHABLE)
    assert_one_line_error(
        result, f"error: --data: cannot read {missing}: No such file or directory"
    )
    assert result.code == 2, result
    nameless = run_sync("signal", "wf", "go", "--data", "@", "--redis-url", UNREACHABLE)
    assert_one_line_error(nameless, "error: --data @: give the file's name after the @")


def test_a_database_the_server_lacks_is_named_with_the_url_redacted(redis_url: str) -> None:
    url = redis_url.replace("redis://", "redis://default:s3cret@").removesuffix("/0") + "/99"
    result = run_sync("status", "--redis-url", url)
    shown = url.replace(":s3cret@", ":***@")
    assert_one_line_error(result, f"error: cannot use Redis at {shown}: DB index is out of range")
    assert result.code == 2, result


def test_scaling_options_without_autoscale_or_contradicting_are_refused() -> None:
    ignored = run_sync(
        "worker", "--agent", "echo", "--min-consumers", "5", "--redis-url", UNREACHABLE
    )
    assert_one_line_error(ignored, "error: --min-consumers: for --autoscale only")
    upside_down = run_sync(
        "worker", "--agent", "echo", "--autoscale", "--min-consumers", "5",
        "--max-consumers", "1", "--redis-url", UNREACHABLE,
    )  # fmt: skip
    assert_one_line_error(upside_down, "error: --max-consumers (1) is under --min-consumers (5)")
    assert ignored.code == upside_down.code == 2


# -- --import --------------------------------------------------------------------------------------


def run_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run from ``folder``, where ``--import`` looks first."""
    return subprocess.run(
        [str(STREAMPROC), *args],
        capture_output=True,
        text=True,
        cwd=folder,
        env=cli_env(),
        timeout=TIMEOUT,
        check=False,
    )


def test_import_finds_a_module_in_the_current_directory(
    tmp_path: Path, redis_url: str, keyspace: Keyspace
) -> None:
    (tmp_path / "myagents.py").write_text(
        "from streamproc import agent\n\n\n@agent('from_cwd')\nasync def here(task):\n"
        "    return 1\n"
    )
    done = run_in(tmp_path, "status", "--import", "myagents", *at(redis_url, keyspace))
    assert done.returncode == 0, done.stderr
    assert "from_cwd" in [line.split()[0] for line in done.stdout.splitlines()[1:]]


@pytest.mark.parametrize(
    ("code", "said"),
    [
        ("import os\n\nraise RuntimeError('no API key')\n", "RuntimeError: no API key"),
        ("def broken(:\n", "SyntaxError: invalid syntax"),
        (
            "import os\nimport no_such_dependency\n",
            "ModuleNotFoundError: No module named 'no_such_dependency'",
        ),
        (
            "from streamproc import agent\n\n@agent('replay')\nasync def mine(task):\n"
            "    return 1\n",
            "ConfigError: agent name 'replay' is reserved for replays: choose another",
        ),
    ],
    ids=["raises", "syntax-error", "missing-dependency", "reserved-agent-name"],
)
def test_a_module_that_fails_to_import_is_one_line_naming_where(
    tmp_path: Path, code: str, said: str
) -> None:
    (tmp_path / "myagents.py").write_text(code)
    done = run_in(tmp_path, "status", "--import", "myagents", "--redis-url", UNREACHABLE)
    line = f"error: --import myagents: {said} ({tmp_path / 'myagents.py'}, line "
    assert done.returncode == 1 and done.stderr.startswith(line), done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


async def test_a_server_that_is_not_redis_is_named_in_one_line() -> None:
    """Something listens at the URL, but answers as an HTTP server does."""

    async def answer_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_http, "127.0.0.1", 0)
    url = f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    async with server:
        result = await run("list", "--redis-url", url)
    assert_one_line_error(result, f"error: {url} does not answer as Redis does (Protocol error")
    assert result.code == 2, result


# -- exit codes ----------------------------------------------------------------------------------


async def test_replay_diff_of_an_unknown_id_exits_2_unlike_runs_that_differ(
    client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    known = await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
    result = await run("replay", "diff", known, "no-such-run", *at(redis_url, keyspace))
    assert_one_line_error(result, "error: workflow 'no-such-run' not found")
    assert result.code == 2, result


def test_a_rediss_connect_that_times_out_asks_whether_the_server_speaks_tls() -> None:
    """A server without TLS reads the handshake as an unfinished command and never answers:
    the timeout alone does not say so."""
    timeout = RedisTimeoutError("Timeout connecting to server")
    assert "does the server speak TLS?" in tls_hint("rediss://h:6379/0", timeout)
    assert tls_hint("redis://h:6379/0", timeout) == ""
    assert tls_hint("rediss://h:6379/0", RedisConnectionError("refused")) == ""
