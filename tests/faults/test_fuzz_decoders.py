"""Row E2 offline: whatever bytes arrive, the entry decoders raise only CodecError and the
spec loader only SpecError (scripts/fuzz/fuzz_decode.py runs the same targets under atheris)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamproc.errors import CodecError, SpecError
from streamproc.spec.model import WorkflowSpec
from streamproc.store import codec

TASK_KEYS = [b"v", b"wf", b"task", b"agent", b"att", b"in", b"deps", b"to"]
DONE_KEYS = [b"v", b"kind", b"wf", b"task", b"att", b"out", b"t0", b"t1", b"by"]
DONE_KEYS += [b"adj", b"why", b"adjin", b"retry_ms", b"give_up_ms"]
VALUES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"1", b"0", b"-1", b"ok", b"adjust", b"wait", b"{}", b"[]", b"null"]),
    st.sampled_from([b"1e400", b"nan", b"\xff\xfe", b'{"a":', b"w-1", b"echo", b"x" * 200]),
)


def fields(keys: list[bytes]) -> st.SearchStrategy[dict[bytes, bytes]]:
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.binary(max_size=8)), VALUES)


@settings(max_examples=300, deadline=None)
@given(fields(TASK_KEYS), st.sampled_from(["echo", "ledger"]))
def test_e2_decode_task_raises_only_codec_error(raw: dict[bytes, bytes], agent: str) -> None:
    try:
        event = codec.decode_task(b"1-0", raw, agent)
    except CodecError as exc:
        assert exc.fields is raw and exc.reason
    else:
        assert event.agent == agent and event.attempt > 0


@settings(max_examples=300, deadline=None)
@given(fields(DONE_KEYS))
def test_e2_decode_completion_raises_only_codec_error(raw: dict[bytes, bytes]) -> None:
    try:
        completion = codec.decode_completion(b"1-0", raw)
    except CodecError as exc:
        assert exc.fields is raw and exc.reason
    else:
        assert completion.kind in (b"ok", b"adjust", b"wait", b"error", b"fatal")


NO_SURROGATES = st.characters(exclude_categories=["Cs"])  # surrogates: their own test
YAML_PIECES = st.sampled_from(
    [
        "tasks:\n",
        "- id: a\n  agent: echo\n",
        "  needs: [a]\n",
        "  needs: b\n",
        "&x [*x]\n",
        "!!python/object/apply:os.system ['true']\n",
        "{",
        "- id: {a: 1}\n",
        "  retries: -1\n",
        "  timeout: nan\n",
        "\t\x00\x85",
        "name: " + "x" * 300 + "\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(NO_SURROGATES, max_size=200), st.lists(YAML_PIECES, max_size=8).map("".join))
)
def test_e6_workflow_yaml_raises_only_spec_error(text: str) -> None:
    try:
        WorkflowSpec.from_yaml(text)
    except SpecError as exc:
        assert str(exc)


def test_e6_workflow_yaml_with_a_lone_surrogate_raises_spec_error() -> None:
    with pytest.raises(SpecError, match="not valid Unicode text"):
        WorkflowSpec.from_yaml("tasks: []\n# \ud800")
