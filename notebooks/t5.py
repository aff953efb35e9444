# %% [markdown]
# # T5: input resolution and test-time views (beyond P1)
#
# P1 squashes every image to its backbone's input size, so backbone and resolution are confounded. Here the input
# policy is the factor: the same backbone, splits and heads (`t5.heads`) with each policy of `t5.policies` (squash =
# T1-T4's, centre crop, a larger squash `squash_<N>`, the image at its native size, MA-CLIP's 224-px view grid
# averaged). Cells are test SRCC, mean ± sd over splits; each policy is compared with `features.test_time` on the
# same splits (Holm within one claim), pooled per policy, and its cost is given in forward GFLOPs per image
# (counted, mean over the dataset).

# %% tags=["parameters"]
params_file = "params.yaml"
out_dir = "scratch/t5"   # the pipeline (dvc repro) writes results/t5; a run from here writes here
overrides = {}   # this table's knobs over params_file, e.g. {"stats.alpha": 0.01}: any param printed as P below

# %%
from IPython.display import Image, Markdown, display
from nriqa_lib.reporting.display import KEY_TEST_COLUMNS, folded, pooled_section, show, verdict
from nriqa_lib.stages.notebook import open_stage, table_inputs

P, out = open_stage("t5", params_file, out_dir, overrides)   # from the repository root; only the params it declares

# %%
P

# %%
from nriqa_lib.tables.t5 import t5_resolution
from nriqa_lib.reporting.export import write_result

T = write_result(out, t5_resolution(table_inputs(P), P.t5, P.features.test_time))
show(T["table"], "T5: test SRCC, mean ± sd over splits")

# %%
display(Markdown(verdict(T["tests"], P.stats.alpha, "policy-vs-squash comparisons")))

# %%
folded(T["tests"], "All tests vs the reference policy (SRCC)", KEY_TEST_COLUMNS)

# %%
pooled_section(T["pooled"], out / "figures" / "t5_forest.png")

# %%
show(T["cost"], "Cost per policy (GFLOPs per image, counted)")

# %% [markdown]
# Measured images/s per policy (decode + transform + forward on 32 images, 8 for native and grid, never from the
# feature cache) are in `results/timing/resolution_<dataset>.json` and the stage's log, not here: timings vary from
# run to run, and this notebook renders the same bytes for the same inputs on any machine.
