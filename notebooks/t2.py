# %% [markdown]
# # T2: activation ablation (P1)
#
# The same head with ReLU (B), GELU, Sigmoid, Tanh or LeakyReLU in both hidden layers, P1's B_Sig (Sigmoid then
# LeakyReLU) and a ridge baseline: test SRCC, mean ± sd over splits, per dataset and backbone. Each head is compared
# with `t2.reference` on the same splits (Holm within one claim: one head over all datasets x backbones); then the
# cross-dataset direction, where every source split's head predicts the whole target set (two-level bootstrap over
# source splits and target images).

# %% tags=["parameters"]
params_file = "params.yaml"
out_dir = "scratch/t2"   # the pipeline (dvc repro) writes results/t2; a run from here writes here
overrides = {}   # this table's knobs over params_file, e.g. {"stats.alpha": 0.01}: any param printed as P below

# %%
from IPython.display import Image, Markdown, display
from nriqa_lib.reporting.display import KEY_TEST_COLUMNS, folded, pooled_section, show, verdict
from nriqa_lib.stages.notebook import open_stage, table_inputs

P, out = open_stage("t2", params_file, out_dir, overrides)   # from the repository root; only the params it declares

# %%
P

# %%
from nriqa_lib.tables.t2 import t2_activations
from nriqa_lib.reporting.export import write_result

T = write_result(out, t2_activations(table_inputs(P), P.t2))
show(T["table"], "T2: test SRCC, mean ± sd over splits")

# %%
display(Markdown(verdict(T["tests"], P.stats.alpha, "head-vs-reference comparisons")))

# %%
folded(T["tests"], "All tests vs the reference (SRCC)", KEY_TEST_COLUMNS)

# %%
pooled_section(T["pooled"], out / "figures" / "t2_forest.png")

# %% [markdown]
# ## Cross-dataset: train on the first dataset, test on all of the second

# %%
show(T["cross_table"], "SRCC on the whole target set, mean ± sd over source splits") if "cross_table" in T else Markdown("No `t2.cross` pair with both datasets configured.")

# %%
display(Markdown(verdict(T.get("cross_tests"), P.stats.alpha, "cross-dataset comparisons")))

# %%
folded(T["cross_tests"], "All cross-dataset tests (paired two-level bootstrap)", KEY_TEST_COLUMNS) if "cross_tests" in T else None

# %%
pooled_section(T.get("cross_pooled"), out / "figures" / "t2_cross_forest.png", "Cross-dataset, pooled (diagnostics in the CSV)", explain=False)
