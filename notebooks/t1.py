# %% [markdown]
# # T1: backbone comparison (P1)
#
# Every configured backbone with the identical MLP head (`t1.head`), per dataset: each cell is the mean ± sd over
# splits of test SRCC or raw PLCC; higher is better, and the random-init control shows what the architecture alone
# gives. Pairs of backbones are compared on the same splits (Nadeau-Bengio corrected t; Holm within one dataset);
# the verdict below the table says which differences are significant and how large a difference these splits could
# detect.

# %% tags=["parameters"]
params_file = "params.yaml"
out_dir = "scratch/t1"   # the pipeline (dvc repro) writes results/t1; a run from here writes here
overrides = {}   # this table's knobs over params_file, e.g. {"t1.head": "B_Sig"}: any param printed as P below

# %%
from IPython.display import Image, Markdown, display
from nriqa_lib.reporting.display import KEY_TEST_COLUMNS, figure, folded, pooled_section, show, verdict
from nriqa_lib.stages.notebook import open_stage, table_inputs

P, out = open_stage("t1", params_file, out_dir, overrides)   # from the repository root; only the params it declares

# %%
P

# %%
from nriqa_lib.tables.t1 import t1_backbones
from nriqa_lib.reporting.export import write_result

T = write_result(out, t1_backbones(table_inputs(P), P.t1.head))
show(T["table"].stack("backbone"), "T1: test SRCC / raw PLCC, mean ± sd over splits (one row per backbone)")

# %%
display(Markdown(verdict(T["tests"], P.stats.alpha, "backbone pairs")))

# %%
folded(T["tests"], "All pairwise tests (SRCC; diff = a - b)", KEY_TEST_COLUMNS)

# %%
figure(out / "figures" / "t1_srcc.png")

# %%
pooled_section(T["pooled"], out / "figures" / "t1_forest.png")

# %%
show(T["table_last_epoch"].stack("backbone"), "T1 at the LAST epoch (what P1's code writes; train.report_last)") if "table_last_epoch" in T else None
