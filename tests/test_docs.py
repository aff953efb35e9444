"""The README and docs/ as a reader meets them (issue 40): a README that fits (<= 200 lines) and links that resolve
inside this repository, anchors included."""
import re
from pathlib import Path

import pytest

from conftest import REPO

DOCS = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(md: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    heads = re.findall(r"^#{1,6} (.+)$", md.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_the_readme_fits_200_lines():
    n = len((REPO / "README.md").read_text().splitlines())
    assert n <= 200, f"README.md has {n} lines; move the detail to docs/"


@pytest.mark.parametrize("md", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_every_link_resolves_inside_the_repository(md):
    bad = []
    for target in LINK.findall(md.read_text()):
        if re.match(r"[a-z]+:", target):          # http(s), mailto: outside links are not checked here
            continue
        path, _, anchor = target.partition("#")
        f = (md.parent / path).resolve() if path else md
        if not f.is_relative_to(REPO) or not f.exists():
            bad.append(f"{target} (no such file in the repository)")
        elif anchor and f.suffix == ".md" and anchor not in _anchors(f):
            bad.append(f"{target} (no heading '#{anchor}' in {f.relative_to(REPO)})")
    assert not bad, f"{md.relative_to(REPO)}: {bad}"


def test_the_anchor_rule_matches_githubs():
    """Hand-checked against GitHub's rendering of these headings."""
    f = REPO / "docs" / "paper_profile.md"
    assert {"p1s-faithful-profile", "reproducing-the-paper-on-a-gpu", "sweeps-on-dvcs-queue"} <= _anchors(f)
