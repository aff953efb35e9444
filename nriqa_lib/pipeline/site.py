"""``make site``: the static site of the rendered study in ``docs/site`` (the report, the data overview and every
table's notebook, from the registry's notebook stages, plus the findings page). Not a DVC stage: it reads what
``dvc repro`` rendered and is committed so that a clone shows the findings without running anything.

The static site of the rendered study (issue 25 item 2): the findings page, the report and every table's
executed notebook as one navigable set of HTML files that opens without running anything (``make site`` ->
``docs/site/index.html``).

Built with what the study already runs: nbconvert renders each executed notebook (the notebook stage writes its
.html, code cells hidden, figures embedded as PNG); this module adds a navigation bar to each page and writes an
index from ``results/summary.md``, the forest figure and the published-vs-reproduced table (Markdown rendered by
mistune, nbconvert's own renderer). A site generator (Jupyter Book, Quarto) would re-execute or re-render the
notebooks and add a Sphinx or Deno toolchain for nine pages; copying the stage's rendering keeps the site equal,
byte for byte, to what the stage rendered. The output folder is replaced in one rename: never half-written."""
from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import mistune

from ..core.io import remove_stale_temps, temp_prefix
from ..report.summary import SUMMARY_CSV, SUMMARY_MD, SUMMARY_PNG
from ..tables.registry import registry as tables_registry
from .registry import registry

__all__ = ["Page", "build_site", "pages", "main", "SITE", "table_findings"]

_VIEWPORT = '<meta name="viewport" content="width=device-width, initial-scale=1">'
_STYLE = """<style>
.nriqa-nav{position:sticky;top:0;z-index:1000;background:#1f2d3d;padding:8px 16px;font:14px/1.6 sans-serif;
display:flex;flex-wrap:wrap;gap:2px 18px}
.nriqa-nav a{color:#e8eef5;text-decoration:none;white-space:nowrap}
.jp-RenderedImage,.nriqa-fig{overflow-x:auto;max-width:100%}
.jp-RenderedImage img,.nriqa-fig img{max-width:none !important}
.nriqa-nav a.here{color:#ffd166;font-weight:bold}
.nriqa-index{max-width:1100px;margin:24px auto;padding:0 16px;font:15px/1.5 sans-serif;color:#222}
.nriqa-index table{border-collapse:collapse;font-size:13px;margin:8px 0 24px;display:block;overflow-x:auto}
.nriqa-index th,.nriqa-index td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}
.nriqa-index td{font-variant-numeric:tabular-nums}
.nriqa-index td:nth-child(4){white-space:nowrap}
</style>"""


@dataclass(frozen=True)
class Page:
    """One page of the site: ``source`` is the rendered notebook (.html) copied under ``slug``.html."""
    slug: str
    title: str
    desc: str
    source: Path
    folder: str = ""          # the table's results folder (t2): its rows of the findings head the page


def _nav(pages: Sequence[Page], here: str) -> str:
    links = [("index", "Findings")] + [(p.slug, p.title) for p in pages]
    here_attr = ' class="here"'
    return '<nav class="nriqa-nav">' + "".join(
        f'<a href="{s}.html"{here_attr if s == here else ""}>{html.escape(t)}</a>' for s, t in links) + "</nav>"


def _with_nav(page_html: str, nav: str, source: Path, findings: str = "") -> str:
    """The rendered notebook with the site's style in <head>, its navigation bar first in <body>, then
    ``findings`` (HTML: the table's rows of the findings)."""
    head, body = re.search(r"</head>", page_html, re.I), re.search(r"<body[^>]*>", page_html, re.I)
    if head is None or body is None or head.start() > body.start():
        raise ValueError(f"{source}: not a rendered notebook (no </head> before <body>): rerun its stage (dvc repro)")
    viewport = "" if 'name="viewport"' in page_html[:head.start()] else _VIEWPORT
    return _alt_text(page_html[:head.start()] + viewport + _STYLE + page_html[head.start():body.end()] + nav
                     + findings + page_html[body.end():])


_DEFAULT_ALT = re.compile(r'<img alt="No description has been provided for this image"([^>]*?) src="data:image/png;base64,'
                          r'([A-Za-z0-9+/=]+)"')


def _alt_text(page_html: str) -> str:
    """nbconvert's default alt text replaced by the figure's own description (the PNG's ``Description``, written
    by ``reporting.plots.save``)."""
    import base64
    from ..reporting.plots import png_text

    def alt(m: re.Match) -> str:
        text = png_text(base64.b64decode(m.group(2))).get("Description") or "figure"
        return f'<img alt="{html.escape(text)}"{m.group(1)} src="data:image/png;base64,{m.group(2)}"'
    return _DEFAULT_ALT.sub(alt, page_html)


def table_findings(summary_md: str, tables: Sequence[str], folder: str) -> str:
    """The rows of the findings table ``summary_md`` (results/summary.md) whose claim comes from the table in
    ``folder``, with the header and the note, as Markdown: the same printed cells as the README and the index
    (``tables``: each findings row's table folder, in order: results/summary.csv's ``table`` column). "" if none."""
    lines = summary_md.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("| claim")), None)
    if start is None:
        return ""
    rows = [ln for ln in lines[start + 2:] if ln.startswith("| ")]
    if len(rows) != len(tables):
        raise ValueError(f"site: results/summary.md has {len(rows)} findings rows, results/summary.csv {len(tables)}: "
                         "rerun the report stage (dvc repro report)")
    mine = [r for r, t in zip(rows, tables) if t == folder]
    if not mine:
        return ""
    note = "\n".join(ln for ln in lines[start + 2 + len(rows):] if ln.strip())
    return "\n".join([lines[start], lines[start + 1], *mine]) + "\n\n" + note + "\n"


def _findings_html(md_text: str) -> str:
    if not md_text:
        return ""
    md = mistune.create_markdown(plugins=["table"])
    return ('<section class="nriqa-index"><h2>This table\'s claims in the findings</h2><p>The same rows as the '
            'findings page (results/summary.md): effect, 95% CI, p, the p adjusted over its family, the interval at '
            'that level, the verdict and the MDE at its level. The notebook below has the per-cell tests.</p>'
            + md(md_text) + "</section>")


def _index(pages: Sequence[Page], summary_md: str, published_md: str | None, figure: str | None) -> str:
    md = mistune.create_markdown(plugins=["table"])
    parts = ["<h1>nriqa: no-reference IQA, P1 and P2 reproduced and tested</h1>",
             "<p>What this run of the study found: every claim's pooled effect with its 95% CI, its p, the p adjusted "
             "over its family, the interval at that level, the verdict and the MDE at its level (from "
             "<code>results/summary.md</code>).</p>", md(summary_md)]
    if figure:
        parts.append(f'<div class="nriqa-fig"><img src="{figure}" alt="forest plot: every claim\'s pooled effect, its '
                     f'95% CI (thin) and its family-adjusted interval (thick), coloured by the verdict"></div>')
    if published_md is not None:
        parts += ["<h2>Published vs reproduced</h2>", md(published_md)]
    parts.append("<h2>Pages</h2><ul>" + "".join(
        f'<li><a href="{p.slug}.html">{html.escape(p.title)}</a>: {html.escape(p.desc)}</li>' for p in pages) + "</ul>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">" + _VIEWPORT + "<title>nriqa: "
            f"findings</title>{_STYLE}</head><body>{_nav(pages, 'index')}<main class=\"nriqa-index\">"
            + "\n".join(parts) + "</main></body></html>\n")


SITE_RECORD = ".nriqa-site"      # the files the last build wrote (the only ones a rebuild may remove)


def build_site(pages: Sequence[Page], summary_md: Path, out: Path, figure: Path | None = None,
               published_md: Path | None = None, summary_csv: Path | None = None) -> Path:
    """Write ``out``/index.html (the findings) and one ``<slug>.html`` per page with a navigation bar; the same
    inputs give byte-identical files. A missing input stops before ``out`` is touched, naming the file. Nothing
    in ``out`` that this function did not write is replaced or removed (:data:`SITE_RECORD` lists what it wrote).
    ``summary_csv`` (results/summary.csv): each table page is headed by its rows of the findings."""
    for f in [summary_md, *(p.source for p in pages), *([figure] if figure else [])]:
        if not Path(f).is_file():
            raise FileNotFoundError(f"site: {f} not found: run the study first (make repro)")
    if len({p.slug for p in pages} | {"index"}) != len(pages) + 1:
        raise ValueError("site: two pages share a slug (or one is called 'index')")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out.parent, out.name)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out.name), dir=out.parent))
    try:
        summary_text = Path(summary_md).read_text(encoding="utf-8")
        folders = _csv_tables(summary_csv) if summary_csv and Path(summary_csv).is_file() else None
        for p in pages:
            text = Path(p.source).read_text(encoding="utf-8")
            block = _findings_html(table_findings(summary_text, folders, p.folder)) if folders and p.folder else ""
            (tmp / f"{p.slug}.html").write_text(_with_nav(text, _nav(pages, p.slug), p.source, block), encoding="utf-8")
        fig_name = None
        if figure:
            fig_name = Path(figure).name
            shutil.copyfile(figure, tmp / fig_name)
        pub = Path(published_md).read_text(encoding="utf-8") if published_md and Path(published_md).is_file() else None
        (tmp / "index.html").write_text(_index(pages, summary_text, pub, fig_name),
                                        encoding="utf-8")
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        # only what this tool writes is replaced or removed in ``out`` (it may be a folder with other files, e.g.
        # docs/): the files of this build, and those the previous build listed in its record and this one no
        # longer makes; each file replaced atomically, the record last
        out.mkdir(parents=True, exist_ok=True)
        record = out / SITE_RECORD
        made = sorted(f.name for f in tmp.iterdir())
        before = record.read_text(encoding="utf-8").split() if record.is_file() else []
        for name in made:
            os.replace(tmp / name, out / name)
        for name in sorted(set(before) - set(made)):
            if "/" not in name and (out / name).is_file():
                (out / name).unlink()
        (tmp / SITE_RECORD).write_text("\n".join(made) + "\n", encoding="utf-8")
        os.chmod(tmp / SITE_RECORD, 0o644)
        os.replace(tmp / SITE_RECORD, record)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "index.html"


SITE = "docs/site"


def _csv_tables(summary_csv: Path) -> list[str]:
    """The ``table`` column of results/summary.csv (one per findings row, in order)."""
    import csv
    with open(summary_csv, newline="", encoding="utf-8") as fh:
        return [r["table"] for r in csv.DictReader(fh)]


def _title(name: str) -> str:
    head, _, rest = name.partition("_")
    if re.fullmatch(r"t\d+", head):
        return f"{head.upper()} {rest}".strip()
    return name.replace("_", " ").capitalize()


def pages(root: Path = Path(".")) -> list[Page]:
    """One page per notebook stage of the registry, the report first: its single rendered .html under results/."""
    stages = [s for s in registry().values() if s.is_notebook]
    stages.sort(key=lambda s: s.name != "report")
    folders = {t.name: t.folder for t in tables_registry() if t.claims}
    out = []
    for s in stages:
        found = sorted((root / s.out_dir).glob(f"{s.name}__*.html"))
        if len(found) != 1:
            raise FileNotFoundError(f"site: expected one rendered {s.out_dir}/{s.name}__*.html, found {len(found)}: "
                                    "run the study first (make repro)")
        out.append(Page(slug=s.name, title=_title(s.name), desc=s.desc, source=found[0], folder=folders.get(s.name, "")))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="the repository root whose results/ the site shows")
    ap.add_argument("--out", default=SITE)
    a = ap.parse_args(argv)
    root = Path(a.root)
    try:
        index = build_site(pages(root), root / SUMMARY_MD, Path(a.out), figure=root / SUMMARY_PNG,
                           published_md=root / registry()["report"].out_dir / "published_vs_reproduced.md",
                           summary_csv=root / SUMMARY_CSV)
    except (FileNotFoundError, ValueError) as e:      # one line, naming the file (issue 37 T6: an 11-line traceback)
        raise SystemExit(f"nriqa: {e}")
    files = [Path(a.out) / n for n in (Path(a.out) / SITE_RECORD).read_text(encoding="utf-8").split()]
    print(f"{index}: {len(files)} files, {sum(f.stat().st_size for f in files) / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
