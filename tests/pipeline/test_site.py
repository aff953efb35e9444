"""The static site (make site) and how tables read on it: navigation that resolves, pages equal to what the
notebook stages rendered, byte-identical rebuilds, no half-written folder; text columns left-aligned; p-values
never rounded to 0."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from nriqa_lib.reporting.display import _html
from nriqa_lib.report.claims import round_p
from nriqa_lib.pipeline.site import Page, build_site
from nriqa_lib.pipeline import site as site_stage
from nriqa_lib.pipeline.registry import registry

RENDERED = ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{t}</title></head>"
            "<body class='jp-Notebook'><h1>{t}</h1><img src='data:image/png;base64,AAAA'></body></html>\n")


def _fake(tmp_path: Path, names=("report", "t1_backbones", "t2_activations")):
    pages = []
    for n in names:
        f = tmp_path / "results" / n / f"{n}__tag.html"
        f.parent.mkdir(parents=True)
        f.write_text(RENDERED.format(t=n))
        pages.append(Page(slug=n, title=n.upper(), desc=f"what {n} shows", source=f))
    summary = tmp_path / "summary.md"
    summary.write_text("| claim | effect |\n|:--|--:|\n| P1: sigmoid beats ReLU | +0.036 |\n")
    fig = tmp_path / "forest.png"
    fig.write_bytes(b"\x89PNG fake")
    return pages, summary, fig


def test_every_page_carries_a_navigation_whose_links_all_resolve(tmp_path):
    pages, summary, fig = _fake(tmp_path)
    out = tmp_path / "site"
    build_site(pages, summary, out, figure=fig)
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(["index.html", "forest.png", ".nriqa-site", *(f"{p.slug}.html" for p in pages)])
    for f in out.glob("*.html"):
        text = f.read_text()
        links = re.findall(r'href="([^"]+)"', text)
        assert {"index.html", *(f"{p.slug}.html" for p in pages)} <= set(links), f.name
        assert all((out / link).is_file() for link in links), f.name
        assert text.count('class="here"') == 1
    # the page is the stage's rendering plus the nav bar and its style: nothing of the notebook is lost
    t1 = (out / "t1_backbones.html").read_text()
    assert "<h1>t1_backbones</h1><img src='data:image/png;base64,AAAA'>" in t1
    index = (out / "index.html").read_text()
    assert re.search(r"<td[^>]*>P1: sigmoid beats ReLU</td>", index) and 'src="forest.png"' in index    # Markdown rendered
    assert "what t2_activations shows" in index


def test_a_rebuild_is_byte_identical_and_a_missing_page_leaves_the_old_site(tmp_path):
    pages, summary, fig = _fake(tmp_path)
    out = tmp_path / "site"
    build_site(pages, summary, out, figure=fig)
    first = {f.name: f.read_bytes() for f in out.iterdir()}
    build_site(pages, summary, out, figure=fig)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == first
    pages[1].source.unlink()
    with pytest.raises(FileNotFoundError, match="t1_backbones__tag.html not found"):
        build_site(pages, summary, out, figure=fig)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == first
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".site")) == []    # no temp left
    bad = tmp_path / "bad.html"
    bad.write_text("<p>no head</p>")
    with pytest.raises(ValueError, match="bad.html: not a rendered notebook"):
        build_site([Page("x", "X", "", bad)], summary, out)


def test_a_build_into_a_folder_keeps_every_file_it_did_not_write(tmp_path):
    """Issue 37 L1: ``site --out DIR`` replaced DIR wholesale (a docs/ folder lost engineering.md and measured/).
    Now only the site's own files are written, and a rebuild removes only a file the previous build wrote and this
    one does not (a page dropped from the registry), never another file of the folder."""
    pages, summary, fig = _fake(tmp_path)
    out = tmp_path / "docs"
    (out / "measured").mkdir(parents=True)
    (out / "engineering.md").write_text("ours, not the site's")
    (out / "measured" / "gpu.json").write_text("{}")
    (out / "notes.html").write_text("a page the site never wrote")
    build_site(pages, summary, out, figure=fig)
    build_site(pages[:2], summary, out, figure=fig)             # t2_activations dropped
    assert (out / "engineering.md").read_text() == "ours, not the site's"
    assert (out / "measured" / "gpu.json").read_text() == "{}" and (out / "notes.html").is_file()
    assert not (out / "t2_activations.html").exists() and (out / "t1_backbones.html").is_file()
    assert (out / ".nriqa-site").read_text().split() == sorted(["forest.png", "index.html", "report.html",
                                                                "t1_backbones.html"])


def test_the_site_has_a_page_for_every_notebook_stage_of_the_registry(tmp_path):
    notebook_stages = [s for s in registry().values() if s.is_notebook]
    for s in notebook_stages:
        f = tmp_path / s.out_dir / f"{s.name}__x.html"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(RENDERED.format(t=s.name))
    got = site_stage.pages(tmp_path)
    assert [p.slug for p in got][0] == "report"
    assert sorted(p.slug for p in got) == sorted(s.name for s in notebook_stages)
    assert {p.title for p in got} >= {"T1", "Data overview", "Report"}
    (tmp_path / "results" / "t1" / "t1__y.html").write_text("stale")
    with pytest.raises(FileNotFoundError, match="one rendered results/t1/t1__"):
        site_stage.pages(tmp_path)


def test_text_columns_read_left_aligned_and_numbers_right_aligned():
    df = pd.DataFrame({"claim": ["a", "b"], "p_below": [False, True], "k": [1, 2], "p": [0.01, 0.5],
                       "significant": [True, False]})
    html = _html(df)
    tid = re.search(r'id="(nriqa-[0-9a-f]+)"', html).group(1)
    left = {int(i) for i in re.findall(rf"#{tid} td:nth-child\((\d+)\)", html)}
    shown = re.findall(r"<th>([^<]+)</th>", html)          # p_below is folded into p's text, so it is not shown
    assert shown == ["claim", "k", "p", "significant"]
    assert left == {shown.index("claim") + 1, shown.index("significant") + 1}
    assert _html(df) == html                                # the same bytes on a rerun


@pytest.mark.parametrize("p", [3.21456e-5, 1e-17, 0.0413, 0.99996, 1.0])
def test_a_p_value_keeps_four_significant_digits_and_is_never_rounded_to_zero(p):
    got = round_p(p)
    assert got > 0
    assert abs(got - p) <= 5e-4 * p                       # 4 significant digits
    assert round_p(float("nan")) != round_p(float("nan"))   # NaN (no test) stays NaN


def test_make_site_without_results_says_so_in_one_line(tmp_path, capsys):
    """Issue 37 T6: `make site` before `make repro` (no rendered notebooks) ended in an 11-line traceback; now one
    line naming what is missing and what to run, exit status 1, nothing written."""
    with pytest.raises(SystemExit) as e:
        site_stage.main(["--root", str(tmp_path), "--out", str(tmp_path / "site")])
    msg = str(e.value.code)
    assert msg.startswith("nriqa: site: expected one rendered results/") and msg.endswith("run the study first "
                                                                                            "(make repro)")
    assert "\n" not in msg and not (tmp_path / "site").exists()


def test_pages_fit_a_phone_carry_real_alt_text_and_each_table_page_shows_its_findings(tmp_path):
    """Issue 40: a viewport tag on every page; nbconvert's default alt text replaced by the figure's description
    (the PNG's Description, written by plots.save); issue 39: a table's page is headed by its rows of the
    findings, the same Markdown cells as the index (results/summary.csv's table column picks them)."""
    import base64
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nriqa_lib.reporting import plots
    fig, ax = plt.subplots()
    ax.set(title="T2 forest", xlabel="SRCC difference")
    png = tmp_path / "f.png"
    plots.save(fig, png)
    smallest = plots.min_font_px(fig)        # the tick labels: seaborn's notebook context, in pixels at 110 dpi
    plt.close(fig)
    b64 = base64.b64encode(png.read_bytes()).decode()
    src = tmp_path / "t2.html"
    src.write_text("<html><head><title>t2</title></head><body><img alt=\"No description has been provided for this "
                   f"image\" class=\"\" src=\"data:image/png;base64,{b64}\"></body></html>\n")
    summary = tmp_path / "summary.md"
    summary.write_text("| claim | p | verdict |\n|:--|--:|:--|\n| P1: a | 0.01 | holds (significant) |\n"
                       "| ours: b | 0.5 | not significant |\n\nEffect: the note.\n")
    csv = tmp_path / "summary.csv"
    csv.write_text("claim,table\nP1: a,t2\nours: b,t3\n")
    out = tmp_path / "site"
    build_site([Page(slug="t2_activations", title="T2", desc="", source=src, folder="t2")], summary, out,
               summary_csv=csv)
    page, index = (out / "t2_activations.html").read_text(), (out / "index.html").read_text()
    assert 'name="viewport"' in page and 'name="viewport"' in index
    assert 'alt="T2 forest; x: SRCC difference"' in page and "No description" not in page
    assert ">P1: a</td>" in page and "ours: b" not in page and "Effect: the note." in page
    from PIL import Image
    with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
        assert float(im.info["nriqa-min-font-px"]) == smallest == round(
            min(plt.rcParams["xtick.labelsize"], plt.rcParams["ytick.labelsize"]) * 110 / 72, 2)
