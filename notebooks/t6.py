# %% [markdown]
# # T6: training regimes (P1): frozen vs P1's two recipes vs LoRA vs full fine-tuning
#
# Each head of `finetune.heads` on the frozen backbone (the heads stage) against the image-level regimes of the
# finetune stage: `p1_frozen`, **P1 as published** (most likely): the training script of P1's first commit, LoRA
# adapters on a frozen bf16 backbone (every shipped checkpoint carries its naming and holds adapters only); `p1`,
# **P1's released train.py**: LoRA adapters + every backbone weight; and ours: `lora` (adapters only: r 4, alpha 8,
# dropout 0.05 on the attention q/k projections; conv LoRA on CNNs) and `full` (backbone lr
# `finetune.lr_backbone`), with the same head, loss, epochs and epoch selection. Cells are test SRCC, mean ± sd over
# the fine-tuned splits; each regime is compared with frozen on the same splits (Holm within one claim: one regime
# over all datasets x backbones x heads). With `train.report_last` the same at the last epoch (what P1's code
# writes); then each regime's test SRCC epoch by epoch, and how much choosing the epoch on the test set flatters.
# Off in the offline default (`finetune.regimes: []`).

# %% tags=["parameters"]
params_file = "params.yaml"
out_dir = "scratch/t6"   # the pipeline (dvc repro) writes results/t6; a run from here writes here
overrides = {}   # this table's knobs over params_file, e.g. {"stats.alpha": 0.01}: any param printed as P below

# %%
from IPython.display import Image, Markdown, display
from nriqa_lib.reporting.display import KEY_TEST_COLUMNS, figure, folded, pooled_section, show, verdict
from nriqa_lib.stages.notebook import open_stage, table_inputs

P, out = open_stage("t6", params_file, out_dir, overrides)   # from the repository root; only the params it declares

# %%
P

# %%
from nriqa_lib.tables.t6 import t6_regimes
from nriqa_lib.reporting.export import write_result

T = write_result(out, t6_regimes(table_inputs(P), P.finetune))
show(T["table"], "T6: test SRCC, mean ± sd over splits")

# %%
display(Markdown(verdict(T["tests"], P.stats.alpha, "regime-vs-frozen comparisons"))) if len(T["tests"]) else None

# %%
folded(T["tests"], "All tests vs frozen (SRCC)", KEY_TEST_COLUMNS) if len(T["tests"]) else None

# %%
pooled_section(T["pooled"], out / "figures" / "t6_forest.png")

# %%
show(T["last_epoch"]["table"], "T6 at the LAST epoch (what P1's code writes)") if "last_epoch" in T else None

# %%
show(T["flattery"], "Best-on-test vs the last epoch, test SRCC (mean over splits)") if "flattery" in T else None

# %%
figure(out / "figures" / "t6_epochs.png") if "epoch_curves" in T else None
