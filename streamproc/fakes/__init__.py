"""Local stand-ins for the search APIs and an OpenAI-compatible endpoint, for tests and an
offline demo."""

from streamproc.fakes.fleet import Fakes
from streamproc.fakes.limited import LimitedSerpApi
from streamproc.fakes.llm import FakeLLM
from streamproc.fakes.search import FakeBing, FakeBrave, FakeSerpApi, FakeTavily
from streamproc.fakes.server import Behaviour, FakeServer

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
