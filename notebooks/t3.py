# %% [markdown]
# # T3: learnable activation selection (P1's B_Gated and our K-way)
#
# B_Gated (GatedBlend of ParamSigmoid and PReLU, then PReLU) and our K-way per-channel selection against the best
# fixed activation of T2, picked per dataset/backbone by mean SRCC on val (on test only under the paper profile's
# `select_on: test`), so the test numbers stay untouched by the choice. Cells are test SRCC, mean ± sd over splits;
# below, the share of channels that choose each candidate activation.

# %% tags=["parameters"]
params_file = "params.yaml"
out_dir = "scratch/t3"   # the pipeline (dvc repro) writes results/t3; a run from here writes here
overrides = {}   # this table's knobs over params_file, e.g. {"stats.n_boot": 2000}: any param printed as P below

# %%
from IPython.display import Image, Markdown, display
from nriqa_lib.reporting.display import KEY_TEST_COLUMNS, figure, folded, pooled_section, show, verdict
from nriqa_lib.stages.notebook import open_stage, table_inputs

P, out = open_stage("t3", params_file, out_dir, overrides)   # from the repository root; only the params it declares

# %%
P

# %%
from nriqa_lib.tables.t3 import t3_selection
from nriqa_lib.reporting.export import write_result

T = write_result(out, t3_selection(table_inputs(P), P.t2))
show(T["table"], "T3: test SRCC, mean ± sd over splits; best fixed = best_fixed_head, chosen on val")

# %%
display(Markdown(verdict(T["tests"], P.stats.alpha, "selection-vs-best-fixed comparisons")))

# %%
folded(T["tests"], "All tests vs the best fixed head (SRCC)", KEY_TEST_COLUMNS)

# %%
pooled_section(T["pooled"], out / "figures" / "t3_forest.png")

# %%
folded(T["shares"].reset_index(), "Channel shares per candidate (mean, sd over splits)")

# %%
figure(out / "figures" / "t3_shares.png")
