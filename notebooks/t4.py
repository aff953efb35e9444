# %% [markdown]
# # T4: zero-shot quality (P2: CLIP-IQA, MA-CLIP) and the magnitude cue on any backbone
#
# Training-free scores on whole datasets: SRCC with a 95% bootstrap CI over images, raw PLCC and PLCC after P2's
# 5-parameter logistic (`fit` says where that fit failed), KRCC, RMSE. The magnitude cue (P2's shifted Box-Cox
# Q_mag, lambda 0.5) and the raw L2 norm run on every backbone's pooled features; CLIP-IQA, MA-CLIP and the ablation
# grid run for each CLIP model whose weights exist.

# %% tags=["parameters"]
params_file = "params.yaml"
out_dir = "scratch/t4"   # the pipeline (dvc repro) writes results/t4; a run from here writes here
overrides = {}   # this table's knobs over params_file, e.g. {"stats.n_boot": 2000}: any param printed as P below

# %%
from IPython.display import Image, Markdown, display
from nriqa_lib.reporting.display import KEY_TEST_COLUMNS, figure, folded, pooled_section, show, verdict
from nriqa_lib.stages.notebook import open_stage, table_inputs

P, out = open_stage("t4", params_file, out_dir, overrides)   # from the repository root; only the params it declares

# %%
P

# %%
from nriqa_lib.tables.t4 import t4_zeroshot
from nriqa_lib.reporting.export import write_result

T = write_result(out, t4_zeroshot(table_inputs(P), P.t4.clip_models))
show(T["table"], "T4: zero-shot scores on whole datasets")

# %%
display(Markdown(verdict(T["tests"], P.stats.alpha, "zero-shot comparisons")))

# %%
folded(T["tests"], "All tests (paired bootstrap over images; Williams' t on PLCC)", KEY_TEST_COLUMNS)

# %%
show(T["notes"], "CLIP models not run") if len(T["notes"]) else Markdown("Every configured CLIP model ran.")

# %%
figure(out / "figures" / "t4_srcc.png")

# %%
pooled_section(T["pooled"], out / "figures" / "t4_forest.png")
