"""What an agent keeps of a web page: a short excerpt of its visible text.

Pages are read through the toolkit, so the outbound rules hold (streamproc/outbound/guarded.py).  A
page that is refused or does not answer is not the task's failure: the excerpt's place says
why instead, and the agent goes on with its search results.
"""

from __future__ import annotations

from html.parser import HTMLParser

from streamproc.errors import FetchError
from streamproc.outbound.guarded import Page

from .toolkit import Toolkit

EXCERPT_CHARS = 500
HIDDEN_TAGS = frozenset({"script", "style", "noscript", "template"})


async def excerpt_of(kit: Toolkit, url: str) -> dict[str, str]:
    """``{"url", "excerpt"}`` of the page at ``url``, or ``{"url", "error"}`` saying why not."""
    try:
        page = await kit.fetch(url)
    except FetchError as exc:
        return {"url": url, "error": exc.reason}
    return {"url": page.url, "excerpt": excerpt(page)}


def excerpt(page: Page, limit: int = EXCERPT_CHARS) -> str:
    """The page's text, whitespace collapsed, cut to ``limit`` characters."""
    text = page.text()
    if "html" in page.content_type:
        parser = _VisibleText()
        parser.feed(text)
        parser.close()
        text = " ".join(parser.parts)
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class _VisibleText(HTMLParser):
    """Text outside script, style and the like, character references resolved."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in HIDDEN_TAGS:
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in HIDDEN_TAGS and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)
