"""Local stand-ins for the search APIs and an OpenAI-compatible endpoint, for tests and an
offline demo."""

from streamproc.testing.fakes.fleet import Fakes
from streamproc.testing.fakes.limited import LimitedSerpApi
from streamproc.testing.fakes.llm import FakeLLM
from streamproc.testing.fakes.search import FakeBing, FakeBrave, FakeSerpApi, FakeTavily
from streamproc.testing.fakes.server import Behaviour, FakeServer

__all__ = [
    "Behaviour",
    "FakeBing",
    "FakeBrave",
    "FakeLLM",
    "FakeSerpApi",
    "FakeServer",
    "FakeTavily",
    "Fakes",
    "LimitedSerpApi",
]
