"""The planner's plan: 2 to 4 web-search sub-queries, which execution maps over (one search
each, within the topic).

Without a language model the plan is fixed, so a second run searches exactly the same queries
(the cache answers them all).  A model is asked for a JSON array of strings; its reply is taken
only if it is exactly that, and anything else (prose, an object, a code fence, the wrong count,
non-strings) is logged with its reason and the fixed plan runs instead: a planner's bad answer
should cost a log line, not the workflow.
"""

from __future__ import annotations

import logging

import orjson

log = logging.getLogger(__name__)

FIXED_PLAN = (
    "components and their roles",
    "task planning and orchestration",
    "evaluation and validation of results",
)
MIN_STEPS, MAX_STEPS = 2, 4
MAX_CHARS = 200  # a sub-query longer than this is prose, not a search


class MalformedPlan(ValueError):
    """A model's reply that is not a plan; the message says why."""


def plan_prompt(need: str, context: str) -> str:
    return (
        f"{need}. Given:\n{context}\n"
        f"Break the work into {MIN_STEPS} to {MAX_STEPS} web-search sub-queries. Answer with a "
        f"JSON array of {MIN_STEPS} to {MAX_STEPS} short strings and nothing else."
    )


def parse_plan(reply: str) -> list[str]:
    """The sub-queries of a reply that is a JSON array of 2 to 4 non-empty strings of at most
    200 characters (each stripped); :class:`MalformedPlan` otherwise."""
    try:
        plan = orjson.loads(reply)
    except orjson.JSONDecodeError as exc:
        raise MalformedPlan(f"not JSON: {exc}") from None
    if not isinstance(plan, list):
        raise MalformedPlan(f"not a JSON array but {type(plan).__name__}")
    if not MIN_STEPS <= len(plan) <= MAX_STEPS:
        raise MalformedPlan(f"{len(plan)} sub-queries, not {MIN_STEPS} to {MAX_STEPS}")
    for number, step in enumerate(plan, 1):
        if not isinstance(step, str):
            raise MalformedPlan(f"sub-query {number} is not a string")
        if not step.strip():
            raise MalformedPlan(f"sub-query {number} is empty")
        if len(step.strip()) > MAX_CHARS:
            raise MalformedPlan(f"sub-query {number} is over {MAX_CHARS} characters")
    return [step.strip() for step in plan]


def plan_from_reply(reply: str, task_id: str) -> list[str]:
    """The model's plan, or the fixed plan when its reply is not one (logged, with why)."""
    try:
        return parse_plan(reply)
    except MalformedPlan as exc:
        log.warning("%s: the model's plan is unusable (%s): the fixed plan instead", task_id, exc)
        return list(FIXED_PLAN)
