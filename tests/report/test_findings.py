"""The findings' verdicts a reviewer accepts (issue 39): families declared with the claims, Bonferroni within a
family with the simultaneous interval that agrees with the verdict, TOST for a claim of no difference, and the same
numbers on every page that shows them (README, the site's index, report and table pages, summary.csv/json)."""
from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import REPO
from nriqa_lib.analysis.table import FAMILIES, Claims, Table, family_of
from nriqa_lib.report.claims import pooled_claims
from nriqa_lib.report.summary import SUMMARY_CSV, SUMMARY_JSON, SUMMARY_MD, readme_block
from nriqa_lib.tables.registry import registry


def _pooled_csv(path: Path, levels: list[str], rng) -> None:
    """A pooled table as the tables write it: per level one human-rated row (a t or normal test) and one
    synthetic row."""
    rows = []
    for a in levels:
        df = rng.choice([9.0, np.inf, 2.0])
        se = rng.uniform(0.005, 0.03)
        est = rng.normal(0, 0.04)
        p = 2 * (stats.norm.sf(abs(est / se)) if not np.isfinite(df) else stats.t.sf(abs(est / se), df))
        q = stats.norm.ppf(0.975) if not np.isfinite(df) else stats.t.ppf(0.975, df)
        for scope in ("human-rated", "synthetic set (100 x SSIM proxy): synthetic"):
            rows.append(dict(a=a, scope=scope, k=1, cells=3, estimate=est, ci_low=est - q * se, ci_high=est + q * se,
                             p=p, p_holm=min(1, 2 * p), se=se, df=df, i2=np.nan, p_below=False, datasets="clive",
                             test="t"))
    pd.DataFrame(rows).to_csv(path, index=False)


def _study(tmp_path: Path, rng) -> list[Table]:
    levels = ["sig", "gelu", "x", "y", "ctl", "desc"]
    names = {"sig": "P1: sig beats relu", "gelu": "P1: gelu and relu do not differ", "x": "ours: x beats relu",
             "y": "ours: y beats relu", "ctl": "control: ctl beats relu", "desc": "descriptive (of x): x again"}
    (tmp_path / "tz" / "tables").mkdir(parents=True)
    _pooled_csv(tmp_path / "tz" / "tables" / "tz_pooled.csv", levels, rng)
    return [Table(name="tz", folder="tz", desc="", params=(), tag="x", claims=(
        Claims(pooled="tz_pooled", names=names, equivalence={"gelu": 0.02}),))]


@pytest.mark.parametrize("seed", range(40))
def test_family_adjusted_p_interval_and_verdict_agree(tmp_path, seed):
    """For random rows: p_adj is statsmodels' Bonferroni within each family (controls and descriptive rows
    unadjusted); the adjusted interval excludes 0 exactly when p_adj < alpha (a difference) or lies inside the
    margin exactly when the TOST's p_adj < alpha (equivalence); the verdict says so."""
    from statsmodels.stats.multitest import multipletests
    rng = np.random.default_rng(seed)
    tables = _study(tmp_path, rng)
    c = pooled_claims(tmp_path, 0.05, tables)
    hum = c[c["scope"] == "pooled, human-rated"].set_index("claim")
    assert hum["family"].to_dict() == {n: family_of(n) for n in hum.index}
    for fam, g in hum.groupby("family"):
        if fam in FAMILIES:
            assert (g["m"] == len(g)).all()
            np.testing.assert_allclose(g["p_adj"], multipletests(g["p"], method="bonferroni")[1], rtol=1e-12)
        else:
            assert (g["m"] == 1).all() and np.allclose(g["p_adj"], g["p"])
    for claim, r in hum.iterrows():
        sig = r.p_adj < 0.05
        if claim.startswith("descriptive"):
            assert r.verdict == "descriptive (no verdict)"
        elif np.isfinite(r.margin):
            assert ((-r.margin < r.adj_low) and (r.adj_high < r.margin)) == sig
            assert r.verdict == ("equivalent within +-0.02 (significant)" if sig else "equivalence not shown")
        else:
            assert ((r.adj_low > 0) or (r.adj_high < 0)) == sig
            assert r.verdict == ("not significant" if not sig else
                                 "holds (significant)" if r.srcc_diff > 0 else "reversed (significant)")
        assert np.isfinite(r.mde) and r.mde > 0


def test_every_declared_claim_names_its_family():
    """A claim's family is the first word of its name: every name a table can give (its levels' names, its
    default; a table that names its claims in code, T1 and T4, is checked on the committed findings below) starts
    with one of them."""
    from nriqa_lib.tables import t1, t4
    for t in registry():
        for c in t.claims:
            names = [*c.names.values()] + ([c.default.format(key="k")] if type(c) is Claims else [])
            for name in names:
                family_of(name)
    for name in (t1.CONTROL_CLAIM, t4.cue_claim("Q_mag (lambda 0.5)"), t4.cue_claim("L2 norm")):
        family_of(name)
    with pytest.raises(ValueError, match="must start with one of"):
        family_of("GELU beats ReLU")


# ---- the same numbers on every page (the committed study) -------------------------------------------------------

class _Rows(HTMLParser):
    """Every <tr> of an HTML page as its cells' text."""
    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(tuple(self._row))
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _html_rows(path: Path) -> set[tuple[str, ...]]:
    p = _Rows()
    p.feed(path.read_text(encoding="utf-8"))
    return set(p.rows)


def _md_rows(md: str) -> list[tuple[str, ...]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    return [tuple(html.unescape(c).strip() for c in ln.strip().strip("|").split(" | ")) for ln in lines]


def _num(s: str) -> float:
    return float(re.match(r"[<=\s]*([-+]?[0-9.]+(?:e[-+]?\d+)?)", s).group(1))


def test_every_page_shows_the_same_findings():
    """Issue 39's done-when: for every claim, the same estimate, intervals, p-values and verdict in README's
    Findings, the site's index, the report page, its table's page and results/summary.csv/json; the printed
    numbers are summary.csv's to their printed digits, with the same sign; the adjusted interval excludes 0 (lies
    inside the margin, for an equivalence claim) exactly when the verdict is significant."""
    md = (REPO / SUMMARY_MD).read_text()
    assert readme_block((REPO / "README.md").read_text()) == md, "README's Findings are not results/summary.md"
    rows = _md_rows(md)
    head, body = rows[0], rows[1:]
    csv = pd.read_csv(REPO / SUMMARY_CSV)
    js = json.loads((REPO / SUMMARY_JSON).read_text())
    assert len(body) == len(csv) == len(js) > 0
    site = REPO / "docs" / "site"
    index, report = _html_rows(site / "index.html"), _html_rows(site / "report.html")
    pages = {t.folder: _html_rows(site / f"{t.name}.html") for t in registry() if t.claims}
    col = {c: i for i, c in enumerate(head)}
    for cells, r in zip(body, csv.itertuples()):
        assert cells in index and cells in report and cells in pages[r.table], f"{r.claim}: a page differs"
        assert cells[col["claim"]] == r.claim.split(" [")[0] and cells[col["verdict"]] == r.verdict
        assert js[r.claim]["verdict"] == r.verdict and js[r.claim]["estimate"] == pytest.approx(r.estimate)
        est = _num(cells[col["effect (SRCC difference)"]])
        assert est == pytest.approx(r.estimate, abs=5.1e-4) and np.sign(est) in (np.sign(r.estimate), 0)
        lo, hi = map(_num, cells[col["95% CI"]].strip("[]").split(", "))
        alo, ahi = map(_num, cells[col["adjusted CI"]].split("]")[0].strip("[").split(", "))
        assert (lo, hi, alo, ahi) == pytest.approx((r.ci_low, r.ci_high, r.adj_low, r.adj_high), abs=5.1e-4)
        assert _num(cells[col["p"]]) == pytest.approx(r.p, rel=5e-3)
        if r.family in FAMILIES:
            assert _num(cells[col["adjusted p"]]) == pytest.approx(r.p_adj, rel=5e-3)
        if r.family == "descriptive":
            continue
        sig = r.p_adj < 0.05
        if np.isfinite(r.margin):
            assert (-r.margin < r.adj_low and r.adj_high < r.margin) == sig == r.verdict.startswith("equivalent")
        else:
            assert (r.adj_low > 0 or r.adj_high < 0) == sig == r.verdict.endswith("(significant)")
