"""How a verb runs: the common options resolved to a ``Context``, the async body run, and
expected failures turned into a one-line error and an exit code."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click
from click.core import ParameterSource
from redis.asyncio import Redis
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    InvalidResponse,
    ResponseError,
    TimeoutError,
)

from streamproc.cli import logs
from streamproc.cli.options import COMMON, URL_VARIABLE, attach
from streamproc.config import RedisSettings, redacted
from streamproc.errors import ConfigError, StreamprocError
from streamproc.store.keys import Keyspace
from streamproc.transport import event_loop
from streamproc.transport.epoch import check_shard_count
from streamproc.transport.preflight import refused_credentials

NO_SUCH_DB = "DB index is out of range"  # Redis's reply to SELECT of a database it lacks
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class Context:
    """What the common options resolve to: logging set up, ``--import`` modules imported, the
    Redis settings and the key space.  ``url_given`` says whether the Redis URL came from the
    user (flag or environment) rather than the default: only then is an unreachable one an
    error instead of a reason to start a private Redis."""

    def __init__(self, options: dict[str, Any]) -> None:
        """Take the common options out of ``options``, leaving the verb's own."""
        logs.configure(options.pop("verbose"), options.pop("log_format") == "json")
        import_from_cwd(options.pop("imports"))
        source = click.get_current_context().get_parameter_source("redis_url")
        self.url_given = source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
        if source is ParameterSource.DEFAULT and os.environ.get(URL_VARIABLE) == "":
            # click takes an empty variable as unset: the default is then another Redis
            raise ConfigError(f"{URL_VARIABLE} is set but empty: give a Redis URL or unset it")
        settings = RedisSettings.from_url(
            options.pop("redis_url"),
            insecure=options.pop("insecure_dev"),
            cluster=options.pop("cluster"),
        )
        self.redis = replace(settings, socket_timeout=options.pop("socket_timeout"))
        self.keyspace = Keyspace(options.pop("namespace"), options.pop("shards"))


def verb(fn: Callable[..., Coroutine[Any, Any, int | None]]) -> Callable[..., None]:
    """Make an async body ``fn(ctx, **own_options)`` a verb: attach the common options, run
    it, and turn expected failures into a one-line error and exit code.  Placed right under
    the command decorator, so the common options lead the verb's help."""

    @functools.wraps(fn)
    def wrapper(**options: Any) -> None:
        url = options["redis_url"]
        try:
            ctx = Context(options)
            code = event_loop.run(fn(ctx, **options))
        except AuthenticationError as exc:  # a ConnectionError too, so caught first
            fail(refused_credentials(exc, urlsplit(url).password is not None), 2)
        except (ConnectionError, TimeoutError) as exc:
            fail(f"cannot reach Redis at {redacted(url)}: {exc}{tls_hint(url, exc)}", 2)
        except InvalidResponse as exc:  # something answers there, but not as Redis does
            fail(f"{redacted(url)} does not answer as Redis does ({exc}): is it Redis?", 2)
        except BrokenPipeError:
            reader_gone()
        except (StreamprocError, ResponseError, ModuleNotFoundError) as exc:
            if NO_SUCH_DB in str(exc):  # SELECT refused on connecting: the URL is wrong
                fail(f"cannot use Redis at {redacted(url)}: {exc}", 2)
            # One about the server itself (it evicts keys, it lost our data) exits as an
            # unreachable Redis does.
            fail(str(exc), 2 if "Redis" in str(exc) else 1)
        except OSError as exc:  # a file or socket of this machine, not Redis (redis-py wraps those)
            fail(str(exc), 1)
        except KeyboardInterrupt:
            code = 130
        sys.exit(code or 0)

    return attach(COMMON, wrapper)


def tls_hint(url: str | None, exc: Exception) -> str:
    """Why a rediss:// connect may time out: a server without TLS reads the handshake as
    an unfinished command, and never answers it."""
    if isinstance(exc, TimeoutError) and (url or "").startswith("rediss://"):
        return " (does the server speak TLS? one that does not never answers its handshake)"
    return ""


def import_from_cwd(modules: tuple[str, ...]) -> None:
    """Import the ``--import`` modules with the current directory first on the import path,
    as ``python -m`` has it (a console script has its own directory there instead); only
    for these imports, so a file in the current directory cannot shadow a module imported
    later."""
    if not modules:
        return
    here = os.getcwd()
    sys.path.insert(0, here)
    try:
        for module in modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name is not None and f"{module}.".startswith(f"{exc.name}."):
                    raise  # the module itself: "No module named ...", one line already
                raise ConfigError(f"--import {module}: {_where_it_failed(exc)}") from None
            except Exception as exc:  # the module's own error: said where, in one line
                raise ConfigError(f"--import {module}: {_where_it_failed(exc)}") from None
    finally:
        sys.path.remove(here)


def _where_it_failed(exc: Exception) -> str:
    """The error, and the line of the user's code it came from: the last frame outside
    streamproc and the import machinery (an agent registration it refused, say), else the
    last frame."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({exc.filename}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if not f.filename.startswith((PACKAGE_DIR, "<frozen"))]
    frame = (own or frames)[-1]
    return f"{type(exc).__name__}: {exc} ({frame.filename}, line {frame.lineno})"


def reader_gone() -> NoReturn:
    """Exit quietly: whoever read stdout stopped (``| head -1``), which is how a listing or a
    follower is meant to be cut short.  Stdout goes to devnull first, as Python's docs on
    SIGPIPE advise, so flushing it at exit does not complain again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


@contextmanager
def usage_errors_in_one_line() -> Iterator[None]:
    """Report a click usage error (an unknown verb or option, a bad value, a missing
    argument) as every other error is, in one line and exit 2, instead of click's block of
    usage, hint, blank line and error.  A bare group's help (``streamproc dead``) stays."""
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise
    except click.UsageError as exc:
        see = f" (see {exc.ctx.command_path} --help)" if exc.ctx else ""
        fail(" ".join(exc.format_message().split()) + see, 2)


def fail(message: str, code: int) -> NoReturn:
    """End the verb with ``error: message`` on stderr and exit ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@asynccontextmanager
async def connected(ctx: Context) -> AsyncIterator[Redis]:
    """A Redis connection for one verb body, closed after it; refused when the namespace runs
    another number of shards than the verb was given (it would read some shards only)."""
    redis = ctx.redis.connect()
    try:
        await check_shard_count(redis, ctx.keyspace)
        yield redis
    finally:
        await redis.aclose()
