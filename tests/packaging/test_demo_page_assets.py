"""The demo page is one self-contained file: no build step, no external assets."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from tests.support.deploy_files import REPO

PAGE = REPO / "service" / "static" / "index.html"


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags() -> list[tuple[str, dict[str, str | None]]]:
    collector = _Collector()
    collector.feed(PAGE.read_text())
    return collector.tags


def test_demo_page_has_no_external_assets() -> None:
    for tag, attrs in _tags():
        assert not (tag == "script" and attrs.get("src")), "scripts must be inline"
        assert not (tag == "link" and attrs.get("rel") == "stylesheet"), "styles must be inline"
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"^(https?:)?//", value), f"<{tag} {name}={value}> leaves the page"
    assert "@import" not in PAGE.read_text()


def test_demo_page_has_stable_test_ids() -> None:
    ids = {attrs.get("data-testid") for _, attrs in _tags()}
    assert {"model-select", "file-input", "drop-zone", "prediction-bars", "imagenet-bars"} <= ids
    assert {"error", "results"} <= ids
