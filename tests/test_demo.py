"""``streamproc demo`` as a user sees it: each run reported once, a validation score that
says what it means, and no time "saved" by a cache an earlier demo had already filled."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import uuid
from pathlib import Path

import aiohttp

from streamproc.testing.embedded import free_port
from tests.cli_runner import STREAMPROC, Run, cli_env, run

APPROVER_DELAY = 3.0  # seconds the first approval is held back


async def demo(redis_url: str, namespace: str) -> Run:
    result = await run("demo", "--redis-url", redis_url, "--namespace", namespace)
    assert result.code == 0, result
    return result


async def test_the_demo_reports_each_workflows_end_once(redis_url: str) -> None:
    result = await demo(redis_url, f"demo{uuid.uuid4().hex[:8]}")
    ids = re.findall(r"^== .*: workflow (\w+)$", result.err, re.MULTILINE)
    assert len(ids) == 2
    for workflow_id in ids:
        output = result.out + result.err
        assert len(re.findall(rf"workflow {workflow_id}\b.*completed", output)) == 1, output


async def test_the_demo_says_what_the_validation_score_means(redis_url: str) -> None:
    result = await demo(redis_url, f"demo{uuid.uuid4().hex[:8]}")
    rows = [line for line in result.out.splitlines() if line.split()[:2] == ["t5", "validation"]]
    assert len(rows) == 2
    for row in rows:
        assert "complete: False" not in row
        assert re.search(r"score (\d+)/100 \((complete|incomplete: under 80)\) for t3", row), row


async def test_the_demo_shows_the_mapped_searches_and_a_cache_hit_for_each_the_second_time(
    redis_url: str,
) -> None:
    result = await demo(redis_url, f"demo{uuid.uuid4().hex[:8]}")
    spawned = re.findall(r"^ *[\d.]+s  tasks_spawned  t3 +((?:t3\[\d\] ?)+)$", result.err, re.M)
    assert len(spawned) == 2 and spawned[0] == spawned[1], result.err  # one map per run
    instances = spawned[0].split()
    assert 2 <= len(instances) <= 4
    for instance in instances:  # each instance's progress, in both runs
        for kind in ("task_started", "task_done"):
            assert len(re.findall(rf"{kind} +{re.escape(instance)}$", result.err, re.M)) == 2
    rows = [line.split()[:3] for line in result.out.splitlines() if line.startswith("  t3[")]
    assert rows == [[i, "execution", "done"] for i in instances] * 2  # in both tables
    assert result.out.count(f"  t3 mapped t2 into {' '.join(instances)}\n") == 2
    searches = len(instances) + 1  # one per step of the plan, and validation's
    summary = result.out.splitlines()[-1]
    assert f"with {searches} upstream searches; second run" in summary, summary
    assert f"with {searches} cache hits and 0 upstream searches" in summary, summary


async def test_a_second_demo_in_one_namespace_says_the_cache_was_already_warm(
    redis_url: str,
) -> None:
    namespace = f"demo{uuid.uuid4().hex[:8]}"
    first = await demo(redis_url, namespace)
    assert first.out.splitlines()[-1].endswith("saved")
    again = await demo(redis_url, namespace)
    summary = again.out.splitlines()[-1]
    assert "saved" not in summary
    assert "search cache was already warm" in summary, again.out


async def test_the_demo_with_ui_serves_its_runs_dashboard_until_ctrl_c(redis_url: str) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(STREAMPROC),
        "demo",
        "--ui",
        "--ui-port",
        str(port),
        "--redis-url",
        redis_url,
        "--namespace",
        f"demo{uuid.uuid4().hex[:8]}",
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(60):
            line = ""
            while "dashboard of the second run" not in line:
                line = (await process.stdout.readline()).decode()
                assert line, "the demo ended without serving its dashboard"
        url = re.search(r"http://\S+", line)
        assert url is not None, line
        base, _, route = url.group().partition("/ui/")
        assert base == f"http://127.0.0.1:{port}" and route.startswith("#/workflows/")
        workflow_id = route.removeprefix("#/workflows/")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/ui/") as page:
                assert page.status == 200 and page.content_type == "text/html"
            async with session.get(f"{base}/workflows/{workflow_id}") as shown:
                assert (await shown.json())["status"] == "completed"  # loopback: no token
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_demo_with_ui_refuses_a_taken_port_before_running(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await run("demo", "--ui", "--ui-port", str(port), "--redis-url", redis_url)
    assert result.code == 1, result  # as api's and the daemons' taken ports
    assert result.err == (
        f"error: cannot listen on 127.0.0.1:{port} for the dashboard (--ui-port): "
        "address already in use\n"
    )
    assert "workflow" not in result.out  # no run began


async def test_the_demo_with_approve_waits_for_the_printed_command_before_validation(
    redis_url: str,
) -> None:
    process = await asyncio.create_subprocess_exec(
        str(STREAMPROC),
        "demo",
        "--approve",
        "--redis-url",
        redis_url,
        "--namespace",
        f"demo{uuid.uuid4().hex[:8]}",
        env=cli_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    lines: list[str] = []
    approvals = []
    try:
        async with asyncio.timeout(90):
            while line := (await process.stdout.readline()).decode():
                lines.append(line)
                if line.startswith("approve it with: streamproc signal "):
                    command = line.removeprefix("approve it with: streamproc ").split()
                    if not approvals:  # someone slow to approve: not the cache's time
                        await asyncio.sleep(APPROVER_DELAY)
                    approvals.append(await run(*command))
            assert await process.wait() == 0, "".join(lines)  # both runs completed
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert len(approvals) == 2, lines
    assert all(a.code == 0 and "resumed task approve" in a.out for a in approvals), approvals
    gates = [line.split()[:2] for line in lines if line.startswith("  approve ")]
    assert gates == [["approve", "done"]] * 2, lines  # each run's gate took its approval
    waits = re.search(
        r"\(not counting ([\d.]+)s waiting for approval\): ([\d.]+)s saved$", lines[-1]
    )
    assert waits is not None, lines[-1]
    assert float(waits[1]) >= APPROVER_DELAY > float(waits[2]), lines[-1]


async def test_a_half_set_or_plain_http_model_is_refused_before_any_run(redis_url: str) -> None:
    """As a bad search setting is: one line, exit 1, and no run (each task failed, retried,
    a traceback each time)."""
    for env, error in [
        ({"STREAMPROC_LLM_URL": "https://127.0.0.1:1/v1"}, "set both STREAMPROC_LLM_URL and"),
        (
            {"STREAMPROC_LLM_URL": "http://127.0.0.1:1/v1", "STREAMPROC_LLM_MODEL": "m"},
            "STREAMPROC_LLM_URL must be an https:// URL",
        ),
    ]:
        result = await run("demo", "--redis-url", redis_url, env=env)
        assert result.code == 1, result
        assert result.err.startswith(f"error: {error}") and result.err.count("\n") == 1, result
        assert "workflow" not in result.out  # no run began


async def test_the_summary_compares_nothing_when_a_run_failed(
    redis_url: str, tmp_path: Path
) -> None:
    """Two runs that failed made no search: that is no warm cache, and no time saved."""
    spec = tmp_path / "failing.yaml"
    spec.write_text(
        "tasks:\n  - {id: t3, agent: execution, input: {description: x, topic: y},"
        " timeout: 0.001, retries: 0}\n"
    )
    namespace = f"demo{uuid.uuid4().hex[:8]}"
    result = await run(
        "demo", "--file", str(spec), "--redis-url", redis_url, "--namespace", namespace
    )
    assert result.code == 1, result
    summary = result.out.splitlines()[-1]
    assert summary.endswith("a run did not complete (see its table above), so nothing is compared")
    assert "warm" not in summary and "saved" not in summary
