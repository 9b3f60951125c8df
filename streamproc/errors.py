"""The exceptions streamproc raises, rooted at :class:`StreamprocError`."""

from __future__ import annotations

import os
import socket


class StreamprocError(Exception):
    """Root of every error streamproc raises on purpose."""


class SpecError(StreamprocError, ValueError):
    """A workflow spec was refused; ``task`` names the offending task when there is one."""

    def __init__(self, message: str, task: str | None = None) -> None:
        super().__init__(message)
        self.task = task


class NotFound(StreamprocError, LookupError):
    """The workflow or entry asked for does not exist (never made, expired, or removed)."""


class Conflict(StreamprocError):
    """The request clashes with what Redis holds, so asking again unchanged will not help;
    ``reason`` says how when the message alone does not."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class WorkflowConflict(Conflict):
    """A workflow id was submitted again with a different spec."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} already exists with a different spec")
        self.workflow_id = workflow_id


class WorkflowNotFound(NotFound):
    """No workflow has this id (never submitted, or expired by retention)."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} not found")
        self.workflow_id = workflow_id


class TaskNotFound(NotFound):
    """The workflow has no task of this id."""

    def __init__(self, task: str, workflow_id: str) -> None:
        super().__init__(f"unknown task {task!r} in workflow {workflow_id!r}")


class CodecError(StreamprocError, ValueError):
    """A stream entry could not be decoded; ``fields`` keeps the raw entry for dead letters."""

    def __init__(self, reason: str, fields: dict[bytes, bytes]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


class ConfigError(StreamprocError, ValueError):
    """A setting, an agent registration or the Redis server itself is unusable."""


class CannotListen(ConfigError):
    """A server of ours (HTTP API, metrics) could not bind its address: the port is taken by
    another program, or not ours to use."""

    def __init__(self, what: str, host: str, port: int, error: OSError | UnicodeError) -> None:
        if isinstance(error, UnicodeError):  # a name the IDNA codec refuses (``a..b``)
            reason = "no such address: not a valid host name"
        elif isinstance(error, socket.gaierror):  # getaddrinfo's errno, not the OS's
            reason = f"no such address: {str(error.strerror).lower()}"
        else:
            reason = os.strerror(error.errno).lower() if error.errno else str(error)
        shown = f"[{host}]" if ":" in host else host
        super().__init__(f"cannot listen on {shown}:{port} for {what}: {reason}")
        self.host = host
        self.port = port


class RedisReset(StreamprocError):
    """Redis lost the data this process was working on (restarted without persistence,
    flushed, or failed over to an empty replica): carrying on would start afresh in silence."""


class LimitReached(StreamprocError):
    """A tenant is at one of its limits (workflows in flight, bytes stored): nothing was
    created; the same submit may pass after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotDurable(StreamprocError):
    """A durable submit was written but Redis did not confirm its fsync in time."""


class NotReplicated(NotDurable):
    """A submit is on the primary, but fewer replicas than asked acknowledged it in time."""

    def __init__(self, acknowledged: int, wanted: int, timeout: float) -> None:
        super().__init__(
            f"only {acknowledged} of {wanted} replica(s) acknowledged the submission within "
            f"{timeout:g}s: it is on the primary but a failover may lose it; submit again "
            "with the same id to check (that creates it again if it was lost)"
        )
        self.acknowledged = acknowledged
        self.wanted = wanted


class EmitRefused(StreamprocError, ValueError):
    """``Task.emit`` refused a chunk: not JSON, over the size bound, or past the count bound
    of the attempt.  Nothing was written."""


class PermanentError(StreamprocError):
    """Raised by an agent for a failure that no retry can fix: the task is dead-lettered at once."""


class RecordedFailure(PermanentError):
    """A failure reproduced from a past run's record by ``replay``: the task fails for good
    with exactly the recorded error text (no exception name is put in front of it)."""


class RetryLater(StreamprocError):
    """Raised by an agent that cannot make progress yet (every search provider spent, say): the
    task waits ``delay`` seconds as a delayed retry that uses up none of its retries, and is
    dead-lettered once it has been waiting ``give_up_after`` seconds since its first wait."""

    def __init__(self, delay: float, reason: str, give_up_after: float = 3600.0) -> None:
        super().__init__(f"retry in {delay}s: {reason}")  # checked where it is caught
        self.delay = delay
        self.reason = reason
        self.give_up_after = give_up_after


class BadSignal(StreamprocError, ValueError):
    """A signal refused as sent: an invalid name or id, or a payload that is not JSON."""


class SignalTooLarge(BadSignal):
    """A signal's payload is over the size bound."""


class WaitFor(StreamprocError):
    """Raised (or returned) by an agent that must wait for the signal ``signal`` (sent by
    ``Client.signal``, ``streamproc signal`` or the API): the task holds no worker while it
    waits, and its agent runs again as a new attempt once the signal arrives, the signal's
    payload as ``task.signal``.  Past ``timeout`` seconds (None: no limit) the task fails."""

    def __init__(self, signal: str, timeout: float | None = None) -> None:
        super().__init__(f"waiting for signal {signal!r}")
        self.signal = signal
        self.timeout = timeout


class ProviderError(StreamprocError):
    """An external API (search or LLM) failed; ``reason`` says how and never holds a key."""

    kind = "failed"

    def __init__(self, provider: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason
        self.retry_after = retry_after


class RateLimited(ProviderError):
    """The provider asked us to slow down; ``retry_after`` is its wait in seconds, if it said."""

    kind = "rate limited"


class QuotaSpent(ProviderError):
    """The plan's allowance is used up: use another provider until it renews."""

    kind = "quota spent"


class KeyRejected(ProviderError):
    """The API key was refused (401/403): the provider is disabled for this process."""

    kind = "key rejected"


class Unavailable(ProviderError):
    """A 5xx, a timeout or a connection failure: worth retrying with backoff."""

    kind = "unavailable"


class MalformedReply(ProviderError):
    """The reply was not JSON, or not in the shape the provider documents."""

    kind = "malformed reply"


class AllProvidersFailed(ProviderError):
    """Every configured search provider failed; ``failures`` maps each name to its error.
    ``retry_after`` is the soonest stated wait, set only when every provider stated one."""

    def __init__(self, failures: dict[str, ProviderError]) -> None:
        waits = [e.retry_after for e in failures.values() if e.retry_after is not None]
        soonest = min(waits) if waits and len(waits) == len(failures) else None
        listed = "; ".join(f"{name}: {e.kind}, {e.reason}" for name, e in failures.items())
        super().__init__("search", f"all search providers unavailable ({listed})", soonest)
        self.failures = failures


class TimedOut(Unavailable):
    """The provider did not answer within the timeout: a sign of overload as much as of failure."""

    kind = "timed out"


class CircuitOpen(ProviderError):
    """The provider's shared circuit breaker is open: not asked until ``retry_after`` passes."""

    kind = "circuit open"


class DeadLetterNotFound(NotFound):
    """No entry with that id in the agent's dead letters (already requeued or purged?)."""

    def __init__(self, agent: str, entry_id: str) -> None:
        super().__init__(f"no dead letter {entry_id} for agent {agent!r}")
        self.agent = agent
        self.entry_id = entry_id


class DeadLetterRefused(Conflict):
    """A dead entry that cannot be requeued (not found, malformed, or its workflow moved on)."""

    def __init__(self, entry_id: str, reason: str) -> None:
        super().__init__(f"cannot requeue dead letter {entry_id}: {reason}", reason)
        self.entry_id = entry_id


class FetchError(StreamprocError):
    """A page could not be read (no answer, HTTP error, DNS failure); ``reason`` says why."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url[:200]}: {reason}")
        self.url = url
        self.reason = reason


class FetchRefused(FetchError):
    """The URL leads somewhere agents may not go (another scheme, a private, local or metadata
    address, too many redirects): refused before connecting, so no retry can help."""
