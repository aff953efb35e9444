"""Published vs reproduced (issue 25 item 9): the data file's values against STUDY_SPEC.md, and the table built from
the tables' CSVs (filled cells, CIs, the inside flag, the reason for every cell a run could not produce)."""
import re

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from nriqa_lib.report.published import PUBLISHED, compare_published, load_published, published_markdown

SPEC = REPO.parent / "shared" / "docs" / "STUDY_SPEC.md"
DATASETS = {"CLIVE": "clive", "KonIQ": "koniq10k", "FLIVE": "flive", "SPAQ": "spaq", "AGIQA-3K": "agiqa3k",
            "AGIQA-1K": "agiqa1k", "KADID": "kadid10k", "CSIQ": "csiq", "TID2013": "tid2013"}


def _pub():
    _, cells = load_published(REPO / PUBLISHED)
    return cells.set_index(["source", "method", "dataset", "metric"])["published"]


@pytest.mark.skipif(not SPEC.is_file(), reason="../shared/docs/STUDY_SPEC.md not beside the checkout")
def test_published_values_are_those_of_study_spec():
    """Every number parsed from STUDY_SPEC.md sections 2 and 3 is in the data file, and nothing else is."""
    text, pub, want = SPEC.read_text(), _pub(), {}
    t5 = text[text.index("Published P1 numbers"):text.index("## 3.")]
    header = re.search(r"^\| head \| (.+) \|$", t5, re.M).group(1).split(" | ")
    for name, head in (("B (ReLU)", "B"), ("B_Sig", "B_Sig"), ("B_Gated", "B_Gated")):
        cells = re.search(rf"^\| {re.escape(name)} \| (.+) \|$", t5, re.M).group(1).split(" | ")
        for ds, cell in zip(header, cells):
            s, p = (float(v) for v in cell.split("/"))
            want[("p1_table5", head, DATASETS[ds], "srcc")], want[("p1_table5", head, DATASETS[ds], "plcc")] = s, p
    m = re.search(r"B_Gated KonIQ->CLIVE (\.\d+); B_Sig CLIVE->KonIQ (\.\d+)", text)
    want[("p1_table5_cross", "B_Gated", "koniq10k->clive", "srcc")] = float(m.group(1))
    want[("p1_table5_cross", "B_Sig", "clive->koniq10k", "srcc")] = float(m.group(2))
    line = re.search(r"CLIP-IQA -> MA-CLIP\): (.+?)\.\n", text, re.S).group(1).replace("\n", " ")
    for ds, a, b in re.findall(r"([A-Za-z0-9-]+) (\.\d+) -> (\.\d+)", line):
        want[("p2", "CLIP-IQA", DATASETS[ds], "srcc")], want[("p2", "MA-CLIP", DATASETS[ds], "srcc")] = float(a), float(b)
    m = re.search(r"pyiqa's own CLIP-IQA on CLIVE: SRCC (\.\d+), PLCC (\.\d+)", text)
    want[("pyiqa", "CLIP-IQA (pyiqa)", "clive", "srcc")], want[("pyiqa", "CLIP-IQA (pyiqa)", "clive", "plcc")] = (
        float(m.group(1)), float(m.group(2)))
    assert len(want) == 42 + 2 + 12 + 2
    assert dict(pub) == want


def _t6_row(ds, head, metric, mean, lo, hi, n=3, backbone="siglip2_so400m_p16_512_hf"):
    return {"dataset": ds, "backbone": backbone, "head": head, "regime": "p1_frozen", "metric": metric, "mean": mean,
            "sd": 0.01, "median": mean, "n": n, "ci_low": lo, "ci_high": hi, "ci_kind": "t"}


def test_cells_come_from_the_tables_with_their_ci_and_the_rest_say_why(tmp_path):
    t6 = tmp_path / "t6" / "tables"
    t4 = tmp_path / "t4" / "tables"
    t6.mkdir(parents=True)
    t4.mkdir(parents=True)
    pd.DataFrame([_t6_row("clive", "B_Gated", "srcc", 0.88, 0.86, 0.90),
                  _t6_row("clive", "B_Gated", "plcc", 0.95, 0.93, 0.97),
                  _t6_row("clive", "B_Sig", "srcc", 0.97, 0.90, 1.20),            # an interval beyond 1
                  _t6_row("clive", "B", "srcc", 0.87, 0.87, 0.87, n=1),
                  _t6_row("clive", "B_Gated", "srcc", 0.10, 0.0, 0.2, backbone="clip_vit_b16_hf")]
                 ).to_csv(t6 / "t6_summary_last_epoch.csv", index=False)
    pd.DataFrame([{"dataset": "clive", "source": "clip_rn50", "score": "CLIP-IQA", "srcc": 0.70, "srcc_ci_low": 0.66,
                   "srcc_ci_high": 0.74},
                  {"dataset": "clive", "source": "clip_rn50", "score": "MA-CLIP (P2)", "srcc": 0.80,
                   "srcc_ci_low": 0.78, "srcc_ci_high": 0.83}]).to_csv(t4 / "t4_zeroshot.csv", index=False)
    df = compare_published(tmp_path, REPO / PUBLISHED).set_index(["method", "dataset", "metric"])
    assert len(df) == 58
    r = df.loc[("B_Gated", "clive", "srcc")]
    assert (r.study, r.ci_low, r.ci_high, r.inside) == (0.88, 0.86, 0.90, "yes")     # .887 inside
    assert "siglip2_so400m_p16_512_hf" in r.study_cell
    assert df.loc[("B_Gated", "clive", "plcc")].inside == "no"                      # .912 below [.93, .97]
    assert df.loc[("B_Sig", "clive", "srcc")].ci_high == 1.0                        # clipped to the metric's range
    one = df.loc[("B", "clive", "srcc")]
    assert one.study == 0.87 and np.isnan(one.ci_low) and one.inside == "" and "one split" in one.study_cell
    assert df.loc[("CLIP-IQA", "clive", "srcc")].inside == "yes"                    # .7019 in [.66, .74]
    assert df.loc[("MA-CLIP", "clive", "srcc")].inside == "no"                      # .7428 below .78
    assert "koniq10k images" in df.loc[("B_Gated", "koniq10k", "srcc")].note
    assert "FLIVE is not in the study" in df.loc[("B", "flive", "plcc")].note
    assert "csiq images" in df.loc[("MA-CLIP", "csiq", "srcc")].note
    assert "frozen features" in df.loc[("B_Sig", "clive->koniq10k", "srcc")].note
    assert "3 prompt pairs" in df.loc[("CLIP-IQA (pyiqa)", "clive", "plcc")].note
    assert df.loc[df["note"] != "", "study"].isna().all()
    md = published_markdown(df.reset_index())
    assert md.count("\n") == 62 and "| [0.860, 0.900] | yes |" in md
    assert md.startswith("This run fills 6 of the 58 published numbers. Each row it does not fill says what")


def test_a_run_without_the_weights_says_what_each_cell_needs(tmp_path):
    df = compare_published(tmp_path, REPO / PUBLISHED)         # the offline default: no T6 or T4 CLIP rows
    assert df["study"].isna().all() and (df["inside"] == "").all()
    p1 = df[(df["work"] == "P1") & (df["dataset"] != "flive") & ~df["dataset"].str.contains("->")]
    assert p1["note"].str.startswith("needs SigLIP2 so400m-patch16-512 weights").all()
    assert p1["note"].str.contains("P1's fine-tuning .* GPU-h", regex=True).all()        # the command and its cost
    other = p1[p1["dataset"] != "clive"]
    assert len(other) and all(f"the {d} images (data.roots.{d}" in n for d, n in zip(other["dataset"], other["note"]))
    assert not p1[p1["dataset"] == "clive"]["note"].str.contains("images").any()     # CLIVE's ship with the study
    p2 = df[df["work"] == "P2"]
    assert p2["note"].str.startswith("needs OpenAI CLIP RN50 weights (a local file in features.weights.clip_rn50").all()
    md = published_markdown(df)
    assert md.startswith("This run fills 0 of the 58 published numbers. That is expected offline")
    assert "Cheapest to fill: P2's 2 CLIVE cell(s), with CLIP RN50 weights on a CPU" in md


def test_a_cell_naming_an_unknown_source_is_refused_with_its_number(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("sources: {a: {work: P1}}\ncells:\n  - {source: a, method: B, dataset: clive, srcc: 0.5}\n"
                 "  - {source: b, method: B, dataset: clive, srcc: 0.5}\n")
    with pytest.raises(ValueError, match=r"cell 2 names source 'b'"):
        load_published(f)


def test_the_report_reruns_when_the_data_file_or_a_module_its_notebook_imports_changes():
    from nriqa_lib.pipeline.registry import stage
    from nriqa_lib.pipeline.declare import stage_files
    assert "references/published.yaml" in stage("report").deps
    assert "nriqa_lib/report/published.py" in stage_files("report")
    assert "nriqa_lib/reporting/display.py" in stage_files("t1")      # every notebook imports it
