"""The planner's plan: a model's reply is taken only as a JSON array of 2 to 4 sub-queries;
anything else is refused with its reason and the fixed plan runs instead."""

from __future__ import annotations

import logging

import pytest

from streamproc_agents.plans import FIXED_PLAN, MalformedPlan, parse_plan, plan_from_reply


def test_a_json_array_of_two_to_four_strings_is_the_plan() -> None:
    assert parse_plan('["a b", "c"]') == ["a b", "c"]
    assert parse_plan(' \n["one", " two ", "three", "four"]\n') == ["one", "two", "three", "four"]
    assert parse_plan(f'["{"x" * 200}", "b"]') == ["x" * 200, "b"]


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("First search the components, then the flow.", "not JSON"),
        ('["a", "b"', "not JSON"),
        ('```json\n["a", "b"]\n```', "not JSON"),
        ('{"steps": ["a", "b"]}', "not a JSON array"),
        ('"a"', "not a JSON array"),
        ('["only one"]', "1 sub-queries, not 2 to 4"),
        ("[]", "0 sub-queries, not 2 to 4"),
        ('["a", "b", "c", "d", "e"]', "5 sub-queries, not 2 to 4"),
        ('["a", 2]', "sub-query 2 is not a string"),
        ('["a", {"q": "b"}]', "sub-query 2 is not a string"),
        ('["a", "  "]', "sub-query 2 is empty"),
        (f'["{"x" * 201}", "b"]', "sub-query 1 is over 200 characters"),
    ],
)
def test_anything_else_is_refused_with_its_reason(reply: str, why: str) -> None:
    with pytest.raises(MalformedPlan, match=why):
        parse_plan(reply)


def test_a_malformed_reply_falls_back_to_the_fixed_plan_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert plan_from_reply('["a", "b", "c", "d", "e"]', "t2") == list(FIXED_PLAN)
        assert plan_from_reply("Sure! Search the components.", "t2") == list(FIXED_PLAN)
        assert plan_from_reply('["x", "y"]', "t2") == ["x", "y"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("t2: the model's plan is unusable (5 sub-queries, not 2 to 4)")
    assert "not JSON" in warnings[1] and "the fixed plan instead" in warnings[1]


def test_the_fixed_plan_is_a_valid_plan() -> None:
    assert 2 <= len(FIXED_PLAN) <= 4 and all(q.strip() == q and q for q in FIXED_PLAN)
