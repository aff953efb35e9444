# %% [markdown]
# # Data overview
#
# Per dataset: its size, MOS range (normalised to [0, 1], higher is better), the splits every stage uses, and sample
# images from the lowest to the highest MOS. The `synthetic` set's scores are **synthetic (100 x SSIM), not human
# opinions**; CLIVE's are human ratings.

# %% tags=["parameters"]
params_file = "params.yaml"
out_dir = "scratch/data_overview"   # the pipeline (dvc repro) writes results/data_overview; a run from here writes here
overrides = {}   # this table's knobs over params_file, e.g. {"data.limit": 40}: any param printed as P below

# %%
from IPython.display import Image, Markdown, display
from nriqa_lib.reporting.display import figure, folded, pooled_section, show, verdict
from nriqa_lib.stages.notebook import open_stage

P, out = open_stage("data_overview", params_file, out_dir, overrides)   # from the repository root; only the params it declares

# %%
P

# %%
from nriqa_lib.tables.overview import data_overview
from nriqa_lib.reporting.export import write_result
from nriqa_lib.stages.datasets import open_dataset

O = write_result(out, data_overview({d: open_dataset(P, d) for d in P.data.datasets}, P.splits.schemes))
show(O["summary"])

# %%
figure(out / "figures" / "mos_histograms.png", "MOS histograms")
for d in P.data.datasets:
    figure(out / "figures" / f"samples_{d}.png", f"{d}: lowest to highest MOS")
