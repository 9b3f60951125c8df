"""Schemathesis over the HTTP API's OpenAPI document, in a process of its own (see
``test_api_schema.py``): schemathesis patches Hypothesis process-wide once it generates (it
blanks the falsifying examples Hypothesis reports, among other things), and the suite's other
Hypothesis tests must not inherit that.

``python -m tests.schema_probe conform|anonymous`` reads a job as JSON on stdin (``base`` URL,
``token``, the served ``document``, ``known`` path parameters) and prints, as JSON, the
statuses each operation answered.  A failed check ends it with schemathesis's report.

conform: every case is sent with the token and checked: not a 5xx, and status, content type,
headers and body as documented, and a 2xx refused again without the token.  anonymous: every
case is sent with no token and with a made-up one; both answers must be the same, and a 401
must carry a bearer challenge.

Cases: valid data, valid data aimed at what exists (``known``) and, to submit, a spec the
engine runs and the known workflow's again, and invalid data; each kind gets its own budget,
derandomized, so a run is repeatable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import orjson
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = 15  # per operation and kind of case
BUDGET = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,  # each example is a round trip to a server
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]
SPEC = {"tasks": [{"id": "only", "agent": "echo", "input": 1}]}  # the known workflow's too
MADE_UP = "Bearer made-up-token-0123456789"
TIMEOUT = 10  # seconds per request: an event stream that never ended fails, not hangs


def cases(operation: APIOperation, known: dict[str, str]) -> list[st.SearchStrategy[Case]]:
    strategies = [operation.as_strategy()]
    named = {name: value for name, value in known.items() if f"{{{name}}}" in operation.path}
    if named:
        strategies.append(operation.as_strategy(path_parameters=named))
    if operation.body and "id" in known:
        for body in (SPEC, {**SPEC, "id": known["id"]}):
            strategies.append(operation.as_strategy(body=body, media_type="application/json"))
    if list(operation.iter_parameters()):  # an operation without any has nothing to negate
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return strategies


def exercise(
    operation: APIOperation, send: Callable[[Case], int], known: dict[str, str]
) -> list[int]:
    """``send`` each of the operation's cases; the statuses met.  A failure names the
    operation."""
    statuses = set()
    for strategy in cases(operation, known):

        @BUDGET
        @given(case=strategy)
        def run(case: Case) -> None:
            statuses.add(send(case))

        try:
            run()
        except Exception as exc:
            raise AssertionError(f"{operation.label}: {exc}") from exc
    return sorted(statuses)


def conform(base: str, token: str) -> Callable[[Case], int]:
    def send(case: Case) -> int:
        auth = {"Authorization": f"Bearer {token}"}
        response = case.call_and_validate(
            base_url=base, headers=auth, checks=CHECKS, timeout=TIMEOUT
        )
        return response.status_code

    return send


def anonymous(base: str, _: str) -> Callable[[Case], int]:
    def send(case: Case) -> int:
        statuses = set()
        headers = {k: v for k, v in (case.headers or {}).items() if k != "Authorization"}
        for auth in ({}, {"Authorization": MADE_UP}):
            case.headers = {**headers, **auth}
            response = case.call(base_url=base, timeout=TIMEOUT)
            if response.status_code == 401:
                assert response.headers["www-authenticate"][0].startswith("Bearer ")
            statuses.add(response.status_code)
        assert len(statuses) == 1, statuses
        return statuses.pop()

    return send


def main(mode: str, job: dict[str, Any]) -> dict[str, list[int]]:
    send = {"conform": conform, "anonymous": anonymous}[mode](job["base"], job["token"])
    schema = schemathesis.openapi.from_dict(job["document"])
    operations = [result.ok() for result in schema.get_all_operations()]
    return {op.label: exercise(op, send, job["known"]) for op in operations}


if __name__ == "__main__":
    sys.stdout.buffer.write(orjson.dumps(main(sys.argv[1], orjson.loads(sys.stdin.buffer.read()))))
