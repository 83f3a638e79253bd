"""The README is a short front door whose links work; the docs pages read as a product's
manual, not a development log; the LICENSE is the one pyproject.toml declares."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from markdown.extensions.toc import slugify

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
# How a development log reads; a user of the product has no use for any of it.
DEVELOPMENT_LOG = re.compile(
    r"this session|\bissues? #?[0-9]|this branch|this task|for one more release|"
    r"before commit|the coordinator",
    re.IGNORECASE,
)


def _prose(path: Path) -> str:
    """The page without its fenced code blocks (a `#` there is a comment, not a heading)."""
    return re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)


def _github_anchor(heading: str) -> str:
    # GitHub's anchors: the heading lower-cased, punctuation but - and _ dropped, spaces -.
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """The anchors of a page's headings, as the reader of that page makes them: GitHub
    for the README, MkDocs (Python-Markdown's toc) for the site's pages."""
    headings = re.findall(r"^#+ +(.+?) *$", _prose(path), flags=re.M)
    if path == README:
        return {_github_anchor(h) for h in headings}
    return {slugify(h.replace("`", ""), "-") for h in headings}


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_page_has_no_development_log_language(path: Path) -> None:
    found = [m.group(0) for m in DEVELOPMENT_LOG.finditer(path.read_text())]
    assert found == []


def test_docs_development_log_pattern_catches_what_it_is_for() -> None:
    for text in ["Three changes this session", "the issue 10 target", "this branch: +9 MB"]:
        assert DEVELOPMENT_LOG.search(text), text
    assert not DEVELOPMENT_LOG.search("see the known issues of Keras 3 and the branch cut")


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_links_to_files_and_anchors_resolve(path: Path) -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", _prose(path))
    broken = []
    for link in links:
        if re.match(r"[a-z]+:", link):  # http:, https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        missing_anchor = bool(anchor) and file.suffix == ".md" and anchor not in _anchors(file)
        if not file.exists() or missing_anchor:
            broken.append(link)
    assert broken == []


def test_docs_readme_is_a_front_door_linking_into_the_site() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    linked = {Path(t).name for t in re.findall(r"\]\(docs/([^)#]+)", text)}
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"index.md"}
    assert sorted(pages - linked) == [], "add a row for each to the README's Documentation table"


def test_docs_every_page_is_in_the_site_nav() -> None:
    def pages(entries: list[object]) -> set[str]:
        found: set[str] = set()
        for entry in entries:
            for value in entry.values() if isinstance(entry, dict) else [entry]:
                found |= pages(value) if isinstance(value, list) else {str(value)}
        return found

    nav = pages(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"])
    on_disk = {p.name for p in (REPO / "docs").glob("*.md")}
    assert sorted(on_disk - nav) == [], "add each to the nav in mkdocs.yml"
    assert sorted(nav - on_disk) == []


def test_docs_license_is_the_one_pyproject_declares() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MIT"
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "Permission is hereby granted, free of charge" in text
