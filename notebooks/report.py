# %% [markdown]
# # nriqa report
#
# Every claim of P1 and P2 tested on the data at hand: one row per dataset/backbone cell (its table's Holm p,
# `p_holm`, decides its verdict), then each claim's pooled row on human-rated data (the findings): its own test's
# `p`, `p_adj` adjusted over its family (P1's replications, P2's, ours; positive controls outside any family), the
# interval at that adjusted level and the MDE at it; and the synthetic set's rows, labelled as a proxy.
# Significant = the adjusted p below `stats.alpha`. Then the six tables and the key figures.

# %% tags=["parameters"]
params_file = "params.yaml"
out_dir = "scratch/report"   # the pipeline (dvc repro) writes results/report; a run from here writes here
overrides = {}   # this table's knobs over params_file, e.g. {"stats.alpha": 0.01}: any param printed as P below

# %%
from pathlib import Path
from IPython.display import Image, Markdown, display
from nriqa_lib.reporting.display import figure, figures_section, folded, pooled_section, show, tables_section, verdict
from nriqa_lib.stages.notebook import open_stage

P, out = open_stage("report", params_file, out_dir, overrides)   # from the repository root; only the params it declares

# %%
P

# %%
from nriqa_lib.report import claims as report, summary

from nriqa_lib.stages.notebook import writes_pipeline_outputs

root = Path(".") if writes_pipeline_outputs("report", out) else out      # results/summary.* are the pipeline's
F = summary.findings("results", P.stats.alpha)
summary.write_summary(F, root, "" if P.features.pretrained else report.RANDOM_WEIGHTS, P.stats.alpha)
display(Markdown("## Findings\n\nEvery claim pooled over the human-rated datasets (its effect is the SRCC "
                 "difference in the claimed direction; verdicts use the p adjusted over the claim's family):\n\n"
                 + (root / summary.SUMMARY_MD).read_text()))
figure(root / summary.SUMMARY_PNG, "Every claim's pooled effect")

# %%
C = report.claims("results", P.stats.alpha)
md = report.gather_tables("results")
banner = "" if P.features.pretrained else report.RANDOM_WEIGHTS
report.write_report(out, md, C, report.gather_tables("results", "tex"), banner)
display(Markdown(f"**{banner}**")) if banner else None
show(C, "Claims on the data at hand")

# %%
display(Markdown(report.summary(C)))

# %%
from nriqa_lib.report import published

PV = published.compare_published("results")
published.write_published(PV, out)
display(Markdown("## Published vs reproduced\n\nP1's Table 5 and P2's SRCCs (`references/published.yaml`, with their "
                 "sources) beside this run's number for the same cell, its 95% CI and whether the published value "
                 "lies inside it; a cell this run could not produce says why.\n\n"
                 + published.published_markdown(PV)))

# %%
display(Markdown("## Figures\n\nEvery table's figures, then the figures stage's (predictions vs MOS, t-SNE of a "
                 "head's hidden layer, Grad-CAM), each with its heading and caption."))
figures_section("results", report.figures())

# %% [markdown]
# ## Tables
#
# Every table of the study (its CSV, Markdown and LaTeX under `results/<tN>/tables/`; all of them in `report.md`
# and `tables.tex`). The tests and pooled rows are folded: click a caption to open them.

# %%
tables_section("results", report.tables_in_order())
