"""Every button of the editor's toolbars can be read by a new user: an accessible name (its words, or an
aria-label), and a title tooltip when the face is only a symbol."""

from __future__ import annotations

from html.parser import HTMLParser

from tests.webapp.conftest import Browser

TOOLBARS = ("toolbar", "edit-tools", "pw-canvas-tools")
"""The classes of the editor's toolbars: the top bar, the edit tools inside it, the floating canvas controls."""


class _Buttons(HTMLParser):
    """Collects the buttons (and the Import summary) inside the toolbars: (attributes, text of the face)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth: list[bool] = []  # per open element: does it open a toolbar?
        self.found: list[tuple[dict[str, str | None], str]] = []
        self._open: tuple[dict[str, str | None], list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag in ("button", "summary") and any(self.depth):
            self._open = (dict(attrs), [])
        if tag not in ("input", "br", "img", "link", "meta"):
            self.depth.append(any(name in TOOLBARS for name in classes))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("button", "summary") and self._open is not None:
            attrs, text = self._open
            self.found.append((attrs, "".join(text).strip()))
            self._open = None
        if tag not in ("input", "br", "img", "link", "meta") and self.depth:
            self.depth.pop()

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[1].append(data)


def test_every_toolbar_button_has_a_readable_name_and_icons_have_tooltips(browser: Browser) -> None:
    browser.register("toolbar@example.com")
    wid = browser.create_workflow("Tools")
    parser = _Buttons()
    parser.feed(browser.get(f"/workflows/{wid}").text)
    faces = {text for _, text in parser.found}
    assert {"Run", "Publish", "History", "+", "↶"} <= faces, faces  # the parser reached every toolbar
    for attrs, text in parser.found:
        label = (attrs.get("aria-label") or "").strip()
        has_words = any(ch.isalpha() for ch in text)
        assert has_words or label, f"a button without a readable name: {attrs} {text!r}"
        if not has_words:  # only a symbol on its face: a tooltip says what it does
            assert (attrs.get("title") or "").strip(), f"an icon-only button without a tooltip: {label}"
        if label and has_words:  # a label that replaces the visible words must still contain them
            assert text.split()[-1].lower() in label.lower(), (label, text)
