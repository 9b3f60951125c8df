"""The prototype's five agents: describe -> plan -> execute (web search) -> evaluate, validate.

Without a language model, description and evaluation give the prototype's fixed text and
planning a fixed plan; with one configured (``STREAMPROC_LLM_URL``, ``STREAMPROC_LLM_MODEL``)
they ask it (the plan as JSON, see agents/plans.py).  The plan is a list of sub-queries that
execution maps over (``map: t2`` in the seed workflow): each instance searches over the provider
chain through the Redis cache and returns structured results (with ``read: true`` in its input,
plus an excerpt of the top result's page; see agents/pages.py); :func:`render` turns them, or
a list of them, into text only where text is needed (scoring, display).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from streamproc import Adjust, Task, agent
from streamproc.outbound.providers import SearchReply

from .pages import excerpt_of
from .plans import FIXED_PLAN, plan_from_reply, plan_prompt
from .toolkit import toolkit

WEAK_CHARS = 50  # the prototype's rule: a result missing or shorter than this is weak
COMPLETE_AT = 80  # the prototype's completeness score that counts as complete
COMPONENTS = "Agent, Task Manager, Workflow Engine, Context Store, Evaluator, Toolset, Logger"
SYSTEM = "You are one step of an agentic workflow. Be concise."


def description_of(task: Task) -> str:
    data = task.input if isinstance(task.input, dict) else {}
    return str(data.get("description", task.id))


async def ask_or(task: Task, default: str, prompt: str) -> str:
    llm = toolkit(task).llm
    if llm is None:
        return default
    return await llm.ask(prompt, system=SYSTEM, emit=task.emit)  # streamed to the output


@agent("description")
async def describe(task: Task) -> str:
    default = f"Components: {COMPONENTS}"
    return await ask_or(
        task, default, f"{description_of(task)}: name the components of such a system."
    )


@agent("planning")
async def plan(task: Task) -> list[str]:
    """The sub-queries to search: the fixed plan, or the model's when one is configured and
    its reply is a valid plan."""
    llm = toolkit(task).llm
    if llm is None:
        return list(FIXED_PLAN)
    context = "\n".join(str(result) for result in task.deps.values())
    prompt = plan_prompt(description_of(task), context)
    return plan_from_reply(await llm.ask(prompt, system=SYSTEM, emit=task.emit), task.id)


@agent("execution")
async def execute(task: Task) -> dict[str, Any]:
    """Search for the task's item (a mapped instance's sub-query) or else its description,
    within the topic, and return what was found."""
    data = task.input if isinstance(task.input, dict) else {}
    topic = str(data.get("topic", "Agentic system"))
    subject = str(data["item"]) if "item" in data else description_of(task)
    query = f"{topic} {subject}"
    if data.get("enhanced"):
        query += " architecture examples"
    kit = toolkit(task)
    reply = await kit.search(query)
    found = {"description": subject, **reply_dict(reply)}
    if data.get("read") and reply.results:
        found["page"] = await excerpt_of(kit, reply.results[0].url)
    return found


@agent("evaluation")
async def evaluate(task: Task) -> Any:
    """The prototype's evaluate-and-adjust: a weak dependency result (for a mapped task, any
    weak instance result) has the task named in ``input.adjust`` run again with the input given
    there (a mapped task then maps again, each instance with that input)."""
    adjust = task.input.get("adjust", {}) if isinstance(task.input, dict) else {}
    for dep, result in sorted(task.deps.items()):
        for part, piece in parts(dep, result):
            text = render(piece)
            if len(text) < WEAK_CHARS and dep in adjust:
                reason = f"result of {part} is {'missing' if not text else 'under 50 characters'}"
                return Adjust(dep, adjust[dep], reason, result=f"Evaluated {dep}: weak ({reason})")
    verdicts = [f"Evaluated {dep}: {summary(render(r))}" for dep, r in sorted(task.deps.items())]
    default = " ".join(verdicts) + " Does it meet the need? Yes, on length."
    prompt = "Does this result meet the need? Answer in two sentences.\n" + "\n".join(verdicts)
    return await ask_or(task, default, prompt)


@agent("validation")
async def validate(task: Task) -> dict[str, Any]:
    """The prototype's completeness score of the checked result, plus supplementary info."""
    data = task.input if isinstance(task.input, dict) else {}
    checked = str(data.get("check", next(iter(sorted(task.deps)), "")))
    topic = str(data.get("topic", "Agentic"))
    text = render(task.deps.get(checked))
    score = completeness(text, topic)
    reply = await toolkit(task).search(str(data.get("query", "workflow completeness validation")))
    supplement = reply.results[0].snippet if reply.results else "no validation info"
    return {
        "checked": checked,
        "score": score,
        "complete": score >= COMPLETE_AT,
        "supplement": supplement,
        "provider": reply.provider,
    }


def completeness(text: str, topic: str) -> int:
    """Over 50 characters +40, mentions the topic +30, unique-word ratio over 0.7 +30."""
    words = text.split()
    score = 40 if len(text) > WEAK_CHARS else 0
    score += 30 if topic.casefold() in text.casefold() else 0
    score += 30 if words and len(set(words)) / len(words) > 0.7 else 0
    return score


def reply_dict(reply: SearchReply) -> dict[str, Any]:
    return {
        "query": reply.query,
        "provider": reply.provider,
        "cached": reply.cached,
        "results": [{"title": r.title, "url": r.url, "snippet": r.snippet} for r in reply.results],
    }


def parts(task_id: str, result: Any) -> Iterator[tuple[str, Any]]:
    """A result by the task that gave it: a mapped task's list as its instances' results
    (``t3[0]``, ...), anything else (an empty list too: nothing was found) as itself."""
    if isinstance(result, list) and result:
        yield from ((f"{task_id}[{i}]", piece) for i, piece in enumerate(result))
    else:
        yield task_id, result


def render(result: Any) -> str:
    """A result as text: search results as numbered lines, a list as its items' texts one
    after the other (a mapped task's searches), anything else as it is."""
    if result is None:
        return ""
    if isinstance(result, list):
        return "\n".join(text for text in map(render, result) if text)
    if isinstance(result, dict) and "results" in result:
        lines = [f"{result.get('description', '')} ({result.get('provider')}):"]
        for i, hit in enumerate(result["results"], 1):
            lines.append(f"{i}. {hit.get('title') or 'untitled'}: {hit.get('snippet') or ''}")
        return "\n".join(lines) if result["results"] else ""
    if isinstance(result, dict):
        return " ".join(f"{k}: {v}" for k, v in result.items())
    return str(result)


def summary(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def outline(result: Any) -> str:
    """A result on one line of a table: a list (a plan, a mapped task's searches) as its
    items' headlines, anything else rendered."""
    if isinstance(result, list):
        return f"{len(result)} items: " + "; ".join(map(headline, result))
    return render(result)


def headline(result: Any) -> str:
    """A search result as what was searched, where, and how much was found."""
    if isinstance(result, dict) and "results" in result:
        hits = len(result["results"])
        return f"{result.get('description', '')} ({result.get('provider')}, {hits} hits)"
    return " ".join(render(result).split())
