"""``make site``: the static site of the rendered study in ``docs/site`` (the report, the data overview and every
table's notebook, from the registry's notebook stages, plus the findings page). Not a DVC stage: it reads what
``dvc repro`` rendered and is committed so that a clone shows the findings without running anything."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..reporting.site import SITE_RECORD, Page, build_site
from ..reporting.summary import SUMMARY_MD, SUMMARY_PNG
from .registry import registry

__all__ = ["pages", "main", "SITE"]

SITE = "docs/site"


def _title(name: str) -> str:
    head, _, rest = name.partition("_")
    return f"{head.upper()} {rest}" if re.fullmatch(r"t\d+", head) else name.replace("_", " ").capitalize()


def pages(root: Path = Path(".")) -> list[Page]:
    """One page per notebook stage of the registry, the report first: its single rendered .html under results/."""
    stages = [s for s in registry().values() if s.is_notebook]
    stages.sort(key=lambda s: s.name != "report")
    out = []
    for s in stages:
        found = sorted((root / s.out_dir).glob(f"{s.name}__*.html"))
        if len(found) != 1:
            raise FileNotFoundError(f"site: expected one rendered {s.out_dir}/{s.name}__*.html, found {len(found)}: "
                                    "run the study first (make repro)")
        out.append(Page(slug=s.name, title=_title(s.name), desc=s.desc, source=found[0]))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="the repository root whose results/ the site shows")
    ap.add_argument("--out", default=SITE)
    a = ap.parse_args(argv)
    root = Path(a.root)
    try:
        index = build_site(pages(root), root / SUMMARY_MD, Path(a.out), figure=root / SUMMARY_PNG,
                           published_md=root / registry()["report"].out_dir / "published_vs_reproduced.md")
    except (FileNotFoundError, ValueError) as e:      # one line, naming the file (issue 37 T6: an 11-line traceback)
        raise SystemExit(f"nriqa: {e}")
    files = [Path(a.out) / n for n in (Path(a.out) / SITE_RECORD).read_text(encoding="utf-8").split()]
    print(f"{index}: {len(files)} files, {sum(f.stat().st_size for f in files) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
