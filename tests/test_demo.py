"""``streamproc demo`` as a user sees it: each run reported once, a validation score that
says what it means, and no time "saved" by a cache an earlier demo had already filled."""

from __future__ import annotations

import re
import uuid

from tests.cli_runner import Run, run


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
