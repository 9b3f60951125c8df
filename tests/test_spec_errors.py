"""Every way a workflow spec is refused: a SpecError with a message naming the task at fault,
raised before anything reaches Redis; and submit's idempotency on a client-given id."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from streamproc import (
    Client,
    ClientSettings,
    ConfigError,
    Keyspace,
    Limits,
    SpecError,
    TaskSpec,
    WorkflowConflict,
    WorkflowSpec,
    agent,
)
from streamproc.registry import registered
from streamproc.spec.reading import MAX_SPEC_BYTES

OK_YAML = "tasks:\n  - {id: a, agent: echo}\n"


def spec_of(*tasks: dict[str, Any]) -> WorkflowSpec:
    return WorkflowSpec.from_dict({"tasks": list(tasks)})


def refusal(spec: WorkflowSpec, **validate: Any) -> SpecError:
    with pytest.raises(SpecError) as caught:
        spec.validate(**validate)
    return caught.value


def assert_names_task(error: SpecError, task_id: str) -> None:
    assert error.task == task_id
    assert repr(task_id) in str(error), str(error)


async def keys_under(redis: Redis, keyspace: Keyspace) -> list[bytes]:
    return [key async for key in redis.scan_iter(match=f"{{{keyspace.namespace}:*")]


# -- the dependency graph ----------------------------------------------------------------------


def test_unknown_dependency_names_the_task_and_the_missing_need() -> None:
    error = refusal(
        spec_of({"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", "needs": ["a", "ghost"]})
    )
    assert_names_task(error, "b")
    assert "unknown task 'ghost'" in str(error)


def test_duplicate_id_is_named_in_the_error() -> None:
    error = refusal(
        spec_of(
            {"id": "a", "agent": "echo"},
            {"id": "dup", "agent": "echo"},
            {"id": "dup", "agent": "echo", "needs": ["a"]},
        )
    )
    assert_names_task(error, "dup")
    assert "duplicate" in str(error)


def test_self_dependency_names_the_task() -> None:
    error = refusal(
        spec_of({"id": "a", "agent": "echo"}, {"id": "me", "agent": "echo", "needs": ["me"]})
    )
    assert_names_task(error, "me")
    assert "needs itself" in str(error)


def parse_cycle(message: str) -> list[str]:
    match = re.fullmatch(r"cycle: ([\w.-]+(?: -> [\w.-]+)+)", message)
    assert match, f"not a named cycle: {message!r}"
    path = match.group(1).split(" -> ")
    assert path[0] == path[-1], f"cycle path does not close: {message!r}"
    return path


def is_written_as(path: list[str], cycle: list[str]) -> bool:
    """Whether ``path`` is the closed cycle ``cycle`` (listed without its closing repeat),
    starting anywhere on it."""
    if path[0] not in cycle:
        return False
    start = cycle.index(path[0])
    return path == [*cycle[start:], *cycle[:start], path[0]]


def test_cycle_is_named_in_the_error_as_a_path_in_execution_order() -> None:
    # b needs a, c needs b, a needs c: in execution order a -> b -> c -> a.
    error = refusal(
        spec_of(
            {"id": "a", "agent": "echo", "needs": ["c"]},
            {"id": "b", "agent": "echo", "needs": ["a"]},
            {"id": "c", "agent": "echo", "needs": ["b"]},
        )
    )
    path = parse_cycle(str(error))
    assert is_written_as(path, ["a", "b", "c"]), str(error)
    assert error.task in {"a", "b", "c"}


def test_cycle_path_leaves_out_tasks_that_only_lead_into_it() -> None:
    error = refusal(
        spec_of(
            {"id": "root", "agent": "echo"},
            {"id": "entry", "agent": "echo", "needs": ["root", "loop2"]},
            {"id": "loop1", "agent": "echo", "needs": ["entry"]},
            {"id": "loop2", "agent": "echo", "needs": ["loop1"]},
            {"id": "after", "agent": "echo", "needs": ["loop2"]},
        )
    )
    assert is_written_as(parse_cycle(str(error)), ["entry", "loop1", "loop2"]), str(error)


def test_a_two_task_cycle_is_named() -> None:
    error = refusal(
        spec_of(
            {"id": "x", "agent": "echo", "needs": ["y"]},
            {"id": "y", "agent": "echo", "needs": ["x"]},
        )
    )
    assert is_written_as(parse_cycle(str(error)), ["x", "y"])


DEEP = Limits(max_tasks=10_000)  # past the default: these check recursion, not limits


def test_ten_thousand_deep_chain_validates_without_recursion() -> None:
    ids = [f"t{i}" for i in range(10_000)]
    spec = WorkflowSpec(
        tasks=tuple(
            TaskSpec(id=ids[i], agent="echo", needs=(ids[i - 1],) if i else ())
            for i in range(10_000)
        )
    )
    assert spec.validate(limits=DEEP) == ids


def test_ten_thousand_deep_chain_loads_from_yaml_and_validates() -> None:
    lines = ["tasks:", "  - {id: t0, agent: echo}"]
    lines += [f"  - {{id: t{i}, agent: echo, needs: [t{i - 1}]}}" for i in range(1, 10_000)]
    order = WorkflowSpec.from_yaml("\n".join(lines)).validate(limits=DEEP)
    assert order[0] == "t0" and order[-1] == "t9999" and len(order) == 10_000


def test_ten_thousand_long_cycle_is_named_without_recursion() -> None:
    n = 10_000
    spec = WorkflowSpec(
        tasks=tuple(
            TaskSpec(id=f"t{i}", agent="echo", needs=(f"t{(i - 1) % n}",)) for i in range(n)
        )
    )
    path = parse_cycle(str(refusal(spec, limits=DEEP)))
    assert len(path) == n + 1
    assert is_written_as(path, [f"t{i}" for i in range(n)])


# -- agents and limits ---------------------------------------------------------------------------


def test_unknown_agent_is_refused_when_a_registry_is_given() -> None:
    spec = spec_of({"id": "a", "agent": "echo"}, {"id": "b", "agent": "nobody", "needs": ["a"]})
    assert spec.validate() == ["a", "b"]  # without a registry any valid name goes
    error = refusal(spec, agents={"echo", "sleep"})
    assert_names_task(error, "b")
    assert "unknown agent 'nobody'" in str(error)
    assert "echo, sleep" in str(error)


async def test_client_with_a_registry_refuses_an_unknown_agent_and_writes_nothing(
    redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    spec = spec_of({"id": "lonely", "agent": "nobody"})
    async with Client(redis_url, ClientSettings(keyspace=keyspace), agents={"echo"}) as client:
        with pytest.raises(SpecError) as caught:
            await client.submit(spec)
    assert_names_task(caught.value, "lonely")
    assert "unknown agent 'nobody'" in str(caught.value)
    assert await keys_under(redis, keyspace) == []


def test_input_over_the_limit_names_the_task_and_the_sizes() -> None:
    limits = Limits(max_input_bytes=100)
    at_limit = spec_of({"id": "fits", "agent": "echo", "input": "x" * 98})  # 100 bytes as JSON
    assert at_limit.validate(limits=limits) == ["fits"]
    error = refusal(spec_of({"id": "big", "agent": "echo", "input": "x" * 99}), limits=limits)
    assert_names_task(error, "big")
    assert "101 bytes" in str(error) and "100" in str(error)


def test_default_input_limit_is_256_kib() -> None:
    error = refusal(spec_of({"id": "huge", "agent": "echo", "input": "x" * (256 * 1024)}))
    assert_names_task(error, "huge")
    assert str(256 * 1024) in str(error)


def test_input_that_is_not_json_names_the_task() -> None:
    error = refusal(WorkflowSpec(tasks=(TaskSpec(id="setty", agent="echo", input={1, 2}),)))
    assert_names_task(error, "setty")
    assert "JSON" in str(error)


async def test_nan_and_infinity_are_refused_not_sent_as_null(client: Client) -> None:
    """orjson writes them as null: the task would have received null, silently."""
    yaml_nan = WorkflowSpec.from_yaml("tasks: [{id: a, agent: echo, input: {x: .nan}}]")
    with pytest.raises(SpecError, match=r"^task 'a': input is not JSON-serialisable: NaN and"):
        await client.submit(yaml_nan)
    infinite = {"tasks": [{"id": "b", "agent": "echo", "input": [None, float("inf")]}]}
    with pytest.raises(SpecError, match=r"^task 'b': input is not JSON-serialisable: NaN and"):
        await client.submit(infinite)
    wait = {"tasks": [{"id": "w", "wait_for": "go", "default": {"x": -float("inf")}}]}
    with pytest.raises(SpecError, match=r"^task 'w': 'default' is not JSON-serialisable: NaN"):
        await client.submit(wait)
    assert await client.submit({"tasks": [{"id": "c", "agent": "echo", "input": [None]}]})


def test_too_many_tasks_are_refused() -> None:
    tasks = [{"id": f"t{i}", "agent": "echo"} for i in range(4)]
    assert spec_of(*tasks[:3]).validate(limits=Limits(max_tasks=3)) == ["t0", "t1", "t2"]
    error = refusal(spec_of(*tasks), limits=Limits(max_tasks=3))
    assert "4 tasks" in str(error) and "at most 3" in str(error)


def test_too_many_dependencies_are_refused() -> None:
    tasks = [{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", "needs": ["a", "a", "a"]}]
    error = refusal(spec_of(*tasks), limits=Limits(max_edges=2))
    assert "more than 2 dependencies" in str(error)


def test_empty_workflow_is_refused() -> None:
    assert "at least one task" in str(refusal(WorkflowSpec(tasks=())))
    assert "at least one task" in str(refusal(WorkflowSpec.from_yaml("tasks: []")))


@pytest.mark.parametrize(
    ("document", "what"),
    [
        ("", "the spec is empty"),
        ("hello", "the spec is a string"),
        ("[1, 2]", "the spec is a list"),
        ("name: x", "'tasks' is missing"),
    ],
)
def test_a_document_that_is_not_a_mapping_with_a_task_list_is_refused(
    document: str, what: str
) -> None:
    expected = f"a workflow is a mapping with a 'tasks' list, but {what}"
    with pytest.raises(SpecError, match=f"^{re.escape(expected)}$"):
        WorkflowSpec.from_yaml(document)


@pytest.mark.parametrize(
    ("tasks", "kind"),
    [
        ('"nope"', "a string"),
        ("3", "a number"),
        ('{"a": 1}', "a mapping"),
        ("null", "empty"),
        ("true", "true or false"),
    ],
)
def test_tasks_that_are_not_a_list_are_refused_as_such(tasks: str, kind: str) -> None:
    message = f"'tasks' must be a list of tasks, but it is {kind}"
    expected = f"^{re.escape(message)}$"
    with pytest.raises(SpecError, match=expected):
        WorkflowSpec.from_json(f'{{"tasks": {tasks}}}')
    with pytest.raises(SpecError, match=expected):
        WorkflowSpec.from_yaml(f"tasks: {tasks}")


def test_a_task_that_is_not_a_mapping_is_named_by_position() -> None:
    with pytest.raises(SpecError, match="task #1 must be a mapping"):
        WorkflowSpec.from_yaml("tasks:\n  - {id: a, agent: echo}\n  - just-a-string\n")


# -- ids -----------------------------------------------------------------------------------------

BAD_IDS = [
    "a{b",
    "a}b",
    "a:b",
    "a*",
    "a?",
    "line\nbreak",
    "nul\x00byte",
    "emoji\U0001f600",
    "é",
    "with space",
    "",
    "x" * 129,
]


def test_a_very_long_id_is_quoted_cut_with_its_length() -> None:
    error = refusal(spec_of({"id": "x" * 5000, "agent": "echo"}))
    assert str(error) == (
        f"invalid task id '{'x' * 139}... (5000 characters): use 1-128 characters from "
        "A-Z a-z 0-9 _ . -"
    )


@pytest.mark.parametrize("bad", BAD_IDS, ids=lambda v: repr(v)[:20])
def test_invalid_task_id_is_refused_and_quoted(bad: str) -> None:
    error = refusal(spec_of({"id": "ok", "agent": "echo"}, {"id": bad, "agent": "echo"}))
    assert str(error).startswith(f"invalid task id {bad!r}")
    assert error.task == bad


@pytest.mark.parametrize("bad", BAD_IDS, ids=lambda v: repr(v)[:20])
def test_invalid_agent_name_is_refused(bad: str) -> None:
    error = refusal(spec_of({"id": "t", "agent": bad}))
    assert str(error).startswith(f"invalid agent name {bad!r}")


def test_python_specs_of_the_wrong_types_are_refused_naming_what_is_wrong() -> None:
    """Built in Python, a spec skips the reading that checks a mapping's types."""
    needs_text = WorkflowSpec(
        tasks=(TaskSpec("fetch", "echo"), TaskSpec("report", "echo", needs="fetch"))  # type: ignore[arg-type]
    )
    error = refusal(needs_text)
    assert str(error) == "task 'report': 'needs' must be a list of task ids"
    mappings = WorkflowSpec(tasks=({"id": "a", "agent": "echo"},))  # type: ignore[arg-type]
    assert str(refusal(mappings)).startswith("task #0 is a mapping, not a TaskSpec")
    for name, said in [
        (None, "workflow 'name' must be a string, not NoneType"),
        (5, "workflow 'name' must be a string, not int"),
        ("x" * 201, "workflow 'name' is 201 characters, over the 200 limit"),
        ("evil\nname", "workflow 'name' 'evil\\nname' holds a control character (a newline?)"),
    ]:
        named = WorkflowSpec(tasks=(TaskSpec("a", "echo"),), name=name)  # type: ignore[arg-type]
        assert str(refusal(named)) == said
        with pytest.raises(SpecError, match=r"^workflow 'name' "):
            WorkflowSpec.from_dict({"name": name, "tasks": [{"id": "a", "agent": "echo"}]})
    assert WorkflowSpec(tasks=(TaskSpec("a", "echo"),), name="n" * 200).validate() == ["a"]


def test_an_agent_registered_without_a_name_or_function_is_refused() -> None:
    def fn(task: object) -> None:
        return None

    with pytest.raises(ConfigError, match="takes the agent's name"):
        agent(fn)  # type: ignore[arg-type]  # a bare @agent
    with pytest.raises(ConfigError, match=r"^agent 'numbered': 5 is not a function"):
        agent("numbered")(5)  # type: ignore[arg-type]
    assert "numbered" not in registered()


async def test_submit_many_of_one_spec_says_to_use_submit(client: Client) -> None:
    with pytest.raises(TypeError, match="submit_many takes a list of specs"):
        await client.submit_many({"tasks": [{"id": "a", "agent": "echo"}]})  # type: ignore[arg-type]


def test_an_agent_named_replay_is_refused_at_registration() -> None:
    """``replay run`` serves ``replay`` with recorded outcomes, so an agent of that name
    would be replaced there, silently."""
    with pytest.raises(ConfigError, match=r"^agent name 'replay' is reserved for replays"):
        agent("replay")(lambda task: None)
    assert "replay" not in registered()


@pytest.mark.parametrize("bad", BAD_IDS[:8], ids=lambda v: repr(v)[:20])
def test_invalid_id_in_needs_is_refused(bad: str) -> None:
    error = refusal(spec_of({"id": "t", "agent": "echo", "needs": [bad]}))
    assert_names_task(error, "t")


def test_a_128_character_id_is_the_longest_accepted() -> None:
    longest = "x" * 128
    assert spec_of({"id": longest, "agent": "echo"}).validate() == [longest]


@pytest.mark.parametrize("value", [None, 5, True, ["a"]])
def test_non_string_task_id_is_refused(value: Any) -> None:
    error = refusal(spec_of({"id": value, "agent": "echo"}))
    assert str(error).startswith(f"invalid task id {value!r}")


def test_missing_agent_names_the_task() -> None:
    error = refusal(spec_of({"id": "headless"}))
    assert_names_task(error, "headless")
    assert "'agent'" in str(error)


async def test_invalid_workflow_id_is_refused_at_submit(client: Client) -> None:
    with pytest.raises(SpecError, match="invalid workflow id 'a:b'"):
        await client.submit(spec_of({"id": "a", "agent": "echo"}), "a:b")


# -- field types ---------------------------------------------------------------------------------


@pytest.mark.parametrize("retries", ["3", -1, 1.5, True, None, [1]])
def test_bad_retries_name_the_task(retries: Any) -> None:
    error = refusal(spec_of({"id": "r", "agent": "echo", "retries": retries}))
    assert_names_task(error, "r")
    assert "'retries' must be a whole number from 0 to 1000" in str(error)


@pytest.mark.parametrize("timeout", ["10", 0, -1.5, True, [1]])
def test_bad_timeout_names_the_task(timeout: Any) -> None:
    error = refusal(spec_of({"id": "slow", "agent": "echo", "timeout": timeout}))
    assert_names_task(error, "slow")
    assert "'timeout' must be seconds in (0, 604800]" in str(error)


def test_good_retries_and_timeouts_are_accepted() -> None:
    spec = spec_of(
        {"id": "a", "agent": "echo", "retries": 0, "timeout": 0.5},
        {"id": "b", "agent": "echo", "retries": 7, "timeout": 3, "needs": ["a"]},
    )
    assert spec.validate() == ["a", "b"]
    assert spec.tasks[1].retries == 7 and spec.tasks[1].timeout == 3


@pytest.mark.parametrize("needs", ["a", 7, {"a": 1}, [1]])
def test_needs_that_is_not_a_list_of_ids_names_the_task(needs: Any) -> None:
    with pytest.raises(SpecError, match="'needs' must be a list of task ids") as caught:
        spec_of(
            {"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", "needs": needs}
        ).validate()
    assert caught.value.task == "b"


def test_unknown_task_keys_are_named() -> None:
    with pytest.raises(SpecError) as caught:
        spec_of({"id": "typo", "agent": "echo", "nedds": ["x"], "retry": 3})
    assert_names_task(caught.value, "typo")
    assert "unknown keys ['nedds', 'retry']" in str(caught.value)


def test_unknown_workflow_keys_are_named() -> None:
    expected = r"unknown workflow keys \['taks'\] \(name, tasks, adjust_rounds, timeout\)"
    with pytest.raises(SpecError, match=expected):
        WorkflowSpec.from_dict({"tasks": [{"id": "a", "agent": "echo"}], "taks": []})


def test_duplicate_yaml_keys_are_refused_with_their_line() -> None:
    text = "tasks:\n  - id: a\n    agent: echo\n    agent: sleep\n"
    with pytest.raises(SpecError, match="duplicate key 'agent' at line 4"):
        WorkflowSpec.from_yaml(text)


def test_non_string_workflow_name_is_refused() -> None:
    with pytest.raises(SpecError, match="'name' must be a string"):
        WorkflowSpec.from_yaml("name: 5\n" + OK_YAML)


# -- YAML and JSON -------------------------------------------------------------------------------


def test_yaml_python_tags_are_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payloads = [
        f'tasks: !!python/object/apply:os.system ["touch {marker}"]\n',
        "tasks:\n  - id: a\n    agent: echo\n"
        f'    input: !!python/object/apply:os.system ["touch {marker}"]\n',
        'tasks: !!python/object/apply:os.system ["echo hi"]\n',
        "tasks: !!python/name:os.system\n",
    ]
    for text in payloads:
        with pytest.raises(SpecError, match="invalid YAML"):
            WorkflowSpec.from_yaml(text)
    path = tmp_path / "evil.yaml"
    path.write_text(payloads[0])
    with pytest.raises(SpecError, match="invalid YAML"):
        WorkflowSpec.load(path)
    assert not marker.exists()


def test_yaml_alias_bomb_is_refused() -> None:
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    bomb = "\n".join(levels) + "\ntasks:\n  - {id: a, agent: echo, input: *i}\n"
    assert len(bomb) < 2000  # ten to the ninth 'lol's if expanded
    with pytest.raises(SpecError, match="aliases are not allowed"):
        WorkflowSpec.from_yaml(bomb)


def test_even_a_single_yaml_alias_is_refused() -> None:
    text = "defaults: &d {id: a, agent: echo}\ntasks: [*d]\n"
    with pytest.raises(SpecError, match="aliases are not allowed"):
        WorkflowSpec.from_yaml(text)


def test_spec_over_one_mib_is_refused_before_parsing(tmp_path: Path) -> None:
    # Unparsable and dangerous after the limit: the size message proves parsing never began.
    padding = "#" * MAX_SPEC_BYTES
    evil = 'tasks: !!python/object/apply:os.system ["echo hi"]\n' + padding
    with pytest.raises(SpecError, match=f"larger than {MAX_SPEC_BYTES} bytes"):
        WorkflowSpec.from_yaml(evil)
    with pytest.raises(SpecError, match=f"larger than {MAX_SPEC_BYTES} bytes"):
        WorkflowSpec.from_yaml(evil.encode())
    with pytest.raises(SpecError, match=f"larger than {MAX_SPEC_BYTES} bytes"):
        WorkflowSpec.from_json("{" + " " * MAX_SPEC_BYTES)
    for name in ("big.yaml", "big.json"):
        path = tmp_path / name
        path.write_text(evil)
        with pytest.raises(SpecError, match=f"larger than {MAX_SPEC_BYTES} bytes"):
            WorkflowSpec.load(path)


def test_spec_of_exactly_one_mib_is_accepted(tmp_path: Path) -> None:
    text = OK_YAML + "#" * (MAX_SPEC_BYTES - len(OK_YAML))
    assert len(text.encode()) == MAX_SPEC_BYTES
    assert WorkflowSpec.from_yaml(text).validate() == ["a"]
    path = tmp_path / "exact.yaml"
    path.write_text(text)
    assert WorkflowSpec.load(path).validate() == ["a"]


def test_spec_over_one_mib_of_utf8_given_as_text_is_refused() -> None:
    text = OK_YAML + "# " + "é" * 700_000 + "\n"
    assert len(text.encode()) > MAX_SPEC_BYTES
    with pytest.raises(SpecError, match="larger than"):
        WorkflowSpec.from_yaml(text)


def test_deeply_nested_yaml_is_refused_with_a_spec_error() -> None:
    text = "tasks:\n  - {id: a, agent: echo, input: " + "[" * 500 + "]" * 500 + "}\n"
    with pytest.raises(SpecError):
        WorkflowSpec.from_yaml(text)


def test_deeply_nested_json_is_refused_with_a_spec_error() -> None:
    for depth in (500, 1000, 5000):  # 1000: orjson takes it, the strict checks recurse
        text = '{"tasks": [{"id": "a", "agent": "echo", "input": ' + "[" * depth + "]" * depth
        with pytest.raises(SpecError):
            WorkflowSpec.from_json(text + "}]}").validate()


@pytest.mark.parametrize("text", ['{"tasks": [', "{tasks: []}", "", '{"tasks": [] ', "nan"])
def test_invalid_json_is_refused(text: str) -> None:
    with pytest.raises(SpecError, match="invalid JSON"):
        WorkflowSpec.from_json(text)


def test_invalid_yaml_is_refused() -> None:
    with pytest.raises(SpecError, match="invalid YAML"):
        WorkflowSpec.from_yaml("tasks:\n\t- {id: a")


def test_a_yaml_spec_that_is_not_utf8_says_so_and_where() -> None:
    with pytest.raises(SpecError) as caught:
        WorkflowSpec.from_yaml(b"tasks: [{id: a, agent: \xa5}]\n")
    assert str(caught.value) == "invalid YAML: not utf-8 text: byte 0xa5 at offset 23"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tasks:\n  - id: a\n    input: {x: 1\n",
            "line 4, column 1: expected ',' or '}', but got '<stream end>' "
            "(while parsing a flow mapping that starts at line 3, column 12)",
        ),
        ("tasks: a: b\n", "line 1, column 9: mapping values are not allowed here"),
        (  # no mark of its own: PyYAML's message, joined onto one line
            "tasks: \x07\n",
            "unacceptable character #x0007: special characters are not allowed "
            'in "<unicode string>", position 7',
        ),
    ],
)
def test_invalid_yaml_is_one_line_that_says_where(text: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        WorkflowSpec.from_yaml(text)
    assert str(caught.value) == f"invalid YAML: {message}"


@pytest.mark.parametrize("number", [2**63, 2**64, -(2**63) - 1, 10**30])
def test_a_json_spec_with_an_integer_past_64_bits_is_refused_naming_its_field(
    number: int,
) -> None:
    text = f'{{"tasks": [{{"id": "a", "agent": "echo", "input": {{"n": [{number}]}}}}]}}'
    with pytest.raises(SpecError) as caught:
        WorkflowSpec.from_json(text)
    assert str(caught.value) == f"the integer in 'n' is past 64 bits (at most {2**63 - 1})"


def test_a_json_spec_keeps_the_largest_64_bit_integers_exactly() -> None:
    text = f'{{"tasks": [{{"id": "a", "agent": "echo", "input": [{2**63 - 1}, {-(2**63)}]}}]}}'
    assert WorkflowSpec.from_json(text).tasks[0].input == [2**63 - 1, -(2**63)]


def test_a_json_spec_file_with_a_duplicate_key_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text('{"tasks": [{"id": "a", "agent": "echo", "agent": "x"}]}')
    with pytest.raises(SpecError) as caught:
        WorkflowSpec.load(path)
    assert str(caught.value) == "duplicate key 'agent' in the JSON spec"


def test_json_file_is_read_as_json(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text('{"tasks": [{"id": "a", "agent": "echo"}], "name": "j"}')
    spec = WorkflowSpec.load(path)
    assert spec.name == "j" and spec.validate() == ["a"]
    path.write_text("tasks:\n  - {id: a, agent: echo}\n")  # YAML is not JSON
    with pytest.raises(SpecError, match="invalid JSON"):
        WorkflowSpec.load(path)


# -- submit --------------------------------------------------------------------------------------

INVALID_SPECS: list[Any] = [
    {"tasks": []},
    {"tasks": [{"id": "a", "agent": "echo", "needs": ["a"]}]},
    {"tasks": [{"id": "a", "agent": "echo", "needs": ["ghost"]}]},
    {"tasks": [{"id": "a", "agent": "nobody"}]},
    {"tasks": [{"id": "a", "agent": "echo"}, {"id": "a", "agent": "echo"}]},
    {"tasks": [{"id": "a:b", "agent": "echo"}]},
    {"tasks": [{"id": "a", "agent": "echo", "input": "x" * (300 * 1024)}]},
    {
        "tasks": [
            {"id": "a", "agent": "echo", "needs": ["b"]},
            {"id": "b", "agent": "echo", "needs": ["a"]},
        ]
    },
]


async def test_submitting_an_invalid_spec_writes_nothing_to_redis(
    client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    for spec in INVALID_SPECS:
        with pytest.raises(SpecError):
            await client.submit(spec)
        with pytest.raises(SpecError):
            await client.submit(spec, "given-id")
    with pytest.raises(SpecError):
        await client.submit_many(
            [INVALID_SPECS[1], ({"tasks": [{"id": "a", "agent": "echo"}]}, "ok")]
        )
    assert await keys_under(redis, keyspace) == []
    # The same scan does see what a valid submit writes.
    await client.submit({"tasks": [{"id": "a", "agent": "echo"}]}, "valid")
    assert keyspace.past("valid").encode() in await keys_under(redis, keyspace)


async def submitted_events(redis: Redis, keyspace: Keyspace, workflow_id: str) -> list[bytes]:
    events = await redis.xrange(keyspace.events(keyspace.shard_of(workflow_id)))
    return [f[b"kind"] for _, f in events if f[b"wf"] == workflow_id.encode()]


async def test_submit_is_idempotent_on_a_client_given_id(
    client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = spec_of(
        {"id": "a", "agent": "echo", "input": 1}, {"id": "b", "agent": "echo", "needs": ["a"]}
    )
    assert await client.submit(spec, "once") == "once"
    # An equal spec built another way (a dict) is the same spec.
    assert await client.submit(spec_of(*[t.__dict__ for t in spec.tasks]), "once") == "once"
    assert await client.submit_many([(spec, "once")]) == ["once"]
    kinds = await submitted_events(redis, keyspace, "once")
    assert kinds.count(b"submitted") == 1
    workflows = [k for k in await keys_under(redis, keyspace) if b":wf:" in k]
    assert workflows == [keyspace.workflow("once").encode()]


async def test_submit_many_over_shards_and_calls_keeps_order_and_idempotency(
    redis_url: str, redis: Redis
) -> None:
    """A batch is sent as one sp_submit call per shard and per SUBMIT_CHUNK workflows: ids
    come back in the caller's order, an id repeated in the batch or already there is created
    once, and each workflow lands on its own shard."""
    keyspace = Keyspace(namespace="many", shards=3)
    one, two = spec_of({"id": "a", "agent": "echo"}), spec_of({"id": "b", "agent": "sleep"})
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        await client.submit(one, "there-before")
        batch: list[Any] = [(one if i % 2 else two, f"w{i}") for i in range(400)]
        batch[10:10] = [(one, "there-before"), (one, "w3"), (one, "w3")]
        ids = await client.submit_many(batch)
        assert ids == [workflow_id for _, workflow_id in batch]
        for workflow_id in {*ids}:
            assert (await client.get(workflow_id)).id == workflow_id
            shard = keyspace.shard_of(workflow_id)
            kinds = [
                f[b"kind"]
                for _, f in await redis.xrange(keyspace.events(shard))
                if f[b"wf"] == workflow_id.encode()
            ]
            assert kinds.count(b"submitted") == 1, workflow_id
        assert {keyspace.shard_of(i) for i in ids} == {0, 1, 2}
        with pytest.raises(WorkflowConflict) as caught:
            await client.submit_many([(two, "w0"), (two, "w999"), (one, "w0")])
        assert caught.value.workflow_id == "w0"
        assert [t.agent for t in (await client.get("w0")).tasks] == ["sleep"]


async def test_same_id_with_a_different_spec_is_a_conflict(
    client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    first = spec_of({"id": "a", "agent": "echo", "input": 1})
    await client.submit(first, "taken")
    variants = [
        spec_of({"id": "a", "agent": "echo", "input": 2}),
        spec_of({"id": "a", "agent": "sleep", "input": 1}),
        spec_of({"id": "a", "agent": "echo", "input": 1, "retries": 5}),
        spec_of({"id": "a", "agent": "echo", "input": 1, "timeout": 9}),
        WorkflowSpec.from_dict(
            {"name": "renamed", "tasks": [{"id": "a", "agent": "echo", "input": 1}]}
        ),
    ]
    for other in variants:
        with pytest.raises(WorkflowConflict) as caught:
            await client.submit(other, "taken")
        assert caught.value.workflow_id == "taken"
        assert "'taken'" in str(caught.value)
    with pytest.raises(WorkflowConflict):
        await client.submit_many([(variants[0], "taken")])
    state = await client.get("taken")
    assert [(t.id, t.agent) for t in state.tasks] == [("a", "echo")]
    assert (await submitted_events(redis, keyspace, "taken")).count(b"submitted") == 1


async def test_retries_too_large_to_encode_are_a_spec_error(client: Client) -> None:
    with pytest.raises(SpecError):
        await client.submit(spec_of({"id": "a", "agent": "echo", "retries": 2**64}))


# -- what one task receives ----------------------------------------------------------------

BIG_INPUTS = Limits(max_input_bytes=16 << 20)  # past the default: these check the entry bound


def test_an_input_alone_over_the_entry_bound_is_refused_naming_the_task() -> None:
    error = refusal(
        spec_of({"id": "vast", "agent": "echo", "input": "x" * (9 << 20)}), limits=BIG_INPUTS
    )
    assert_names_task(error, "vast")
    assert "8 MiB bound" in str(error)


def test_a_fan_in_whose_inputs_with_its_needs_inputs_pass_the_entry_bound_is_refused() -> None:
    roots = [{"id": r, "agent": "echo", "input": "x" * (3 << 20)} for r in ("a", "b", "c")]
    fits = spec_of(*roots[:2], {"id": "sink", "agent": "echo", "needs": ["a", "b"]})
    assert fits.validate(limits=BIG_INPUTS)[-1] == "sink"
    error = refusal(
        spec_of(*roots, {"id": "sink", "agent": "echo", "needs": ["a", "b", "c"]}),
        limits=BIG_INPUTS,
    )
    assert_names_task(error, "sink")
    assert "9.0 MiB" in str(error) and "8 MiB bound" in str(error), str(error)
