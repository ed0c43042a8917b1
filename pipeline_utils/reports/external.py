"""Keep a report self-contained: references that a browser would load or follow elsewhere are switched off.

Notebook outputs may hold HTML of their own (an image from a web server, a link, a script from a CDN); the rendered
page keeps each such URL as a ``data-blocked-*`` attribute, so nothing is fetched and the value is still there to
read. Only ``data:`` URIs and in-page ``#anchors`` stay live. Scripts and ``<meta>`` tags (a refresh to elsewhere)
are left out: the report is read, not run.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

URL_ATTRIBUTES = frozenset(
    {"href", "xlink:href", "src", "srcset", "poster", "action", "formaction", "background", "cite", "longdesc",
     "data", "manifest", "ping", "lowsrc", "dynsrc", "archive", "codebase", "usemap", "icon"}
)
DROPPED_ELEMENTS = frozenset({"script", "meta"})
_CSS_URL = re.compile(r"(url\(\s*['\"]?\s*)(?!data:|#)|@import", re.IGNORECASE)


def is_local(value: str) -> bool:
    """True for what loads nothing from elsewhere: an in-page anchor or a ``data:`` URI."""
    value = value.strip().lower()
    return value.startswith("#") or value.startswith("data:")


def _blocked_css(text: str) -> str:
    return _CSS_URL.sub("blocked-", text)


class _Rewriter(HTMLParser):
    """Copies HTML verbatim, except start tags with an outside reference, which are written again without it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []
        self._in_style = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        self._in_script = tag == "script"
        if tag not in DROPPED_ELEMENTS:
            self.out.append(self._tag(tag, attrs, closed=False))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in DROPPED_ELEMENTS:
            self.out.append(self._tag(tag, attrs, closed=True))

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]], *, closed: bool) -> str:
        rewritten, changed = [], False
        for name, value in attrs:
            if value is not None and name in URL_ATTRIBUTES and not is_local(value):
                name, changed = f"data-blocked-{name.replace(':', '-')}", True
            elif value is not None and name == "style" and _blocked_css(value) != value:
                value, changed = _blocked_css(value), True
            rewritten.append((name, value))
        if not changed:
            return self.get_starttag_text() or ""
        shown = "".join(f" {n}" if v is None else f' {n}="{html.escape(v)}"' for n, v in rewritten)
        return f"<{tag}{shown}{' /' if closed else ''}>"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False if tag == "style" else self._in_style
        self._in_script = False if tag == "script" else self._in_script
        if tag not in DROPPED_ELEMENTS:
            self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.out.append(_blocked_css(data) if self._in_style else data)

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        self.out.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.out.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.out.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.out.append(f"<![{data}]>")


def without_external_references(markup: str) -> str:
    """``markup`` with every reference to a resource or page outside it switched off (kept as data-blocked-*)."""
    rewriter = _Rewriter()
    rewriter.feed(markup)
    rewriter.close()
    return "".join(rewriter.out)
