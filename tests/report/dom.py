"""Open a report as a reviewer would: in headless Chromium when it is installed, else the file itself; then read
its DOM with the standard library's HTML parser."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
WAYS = ("chromium", "html.parser") if CHROMIUM.is_file() else ("html.parser",)
"""How the tests read reports on this machine (shown in their ids): the DOM Chromium built, and the file itself."""


def rendered_dom(report: Path, profile: Path, way: str) -> str:
    """The DOM Chromium built from the file (``--dump-dom``), or the file's own text (``html.parser``)."""
    if way == "html.parser":
        return report.read_text(encoding="utf-8")
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--dump-dom", report.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0 and "<section" in result.stdout, result.stderr[-2000:]
    return result.stdout


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    section: str | None


@dataclass
class Dom:
    """What the tests look at: sections in order with their text, and every element with its attributes."""

    sections: list[str] = field(default_factory=list)
    text: dict[str, str] = field(default_factory=dict)
    elements: list[Element] = field(default_factory=list)

    def find(self, tag: str, section: str | None = None, css_class: str | None = None) -> list[Element]:
        """Elements of a tag (in a section, with a class)."""
        return [
            e for e in self.elements
            if e.tag == tag and (section is None or e.section == section)
            and (css_class is None or css_class in (e.attrs.get("class") or "").split())
        ]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.dom = Dom()
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section":
            self._current = attributes.get("id")
            self.dom.sections.append(self._current)
            self.dom.text[self._current] = ""
        self.dom.elements.append(Element(tag, attributes, self._current))

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self.dom.text[self._current] += data


def parse(markup: str) -> Dom:
    """The DOM of a report page."""
    reader = _Reader()
    reader.feed(markup)
    reader.close()
    return reader.dom


def open_report(report: Path, profile: Path, ways: tuple[str, ...] = WAYS) -> list[Dom]:
    """A report as each way sees it: the browser's DOM where Chromium is installed, and the file's."""
    return [parse(rendered_dom(report, profile, way)) for way in ways]
