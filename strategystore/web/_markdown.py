"""Markdown of untrusted documents, rendered to HTML that cannot run script.

CommonMark with raw HTML off (a ``<script>`` in a body comes out as text) and
links and images restricted to ``http``, ``https`` and ``mailto`` (and links
without a scheme, which stay on this server): a ``javascript:`` or ``data:``
link is left as plain text.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["ALLOWED_SCHEMES", "render", "safe_link"]

#: The only schemes a rendered link or image may use.
ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})

_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
# Browsers drop these anywhere in a URL, so "java\tscript:" is javascript:.
_IGNORED_BY_BROWSERS = re.compile(r"[\x00-\x20\x7f]")


def safe_link(url: str) -> bool:
    """Whether a link to ``url`` may be rendered: an allowed scheme, or none at all."""
    bare = _IGNORED_BY_BROWSERS.sub("", url).lower()
    if bare.startswith("//"):
        # Scheme-relative: the page is served over http, so the link is too.
        return True
    found = _SCHEME.match(bare)
    if found is not None:
        return found.group(1) in ALLOWED_SCHEMES
    # No scheme, unless one hides behind a character the pattern stops at.
    return ":" not in bare.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]


class _Renderer(MarkdownIt):
    """CommonMark without raw HTML, whose links pass ``safe_link``."""

    def __init__(self) -> None:
        super().__init__("commonmark", {"html": False})

    def validateLink(self, url: str) -> bool:
        return safe_link(url)


_MARKDOWN = _Renderer()


def render(text: str) -> Markup:
    """``text`` as HTML, safe to put in a page as it is."""
    return Markup(_MARKDOWN.render(text))
