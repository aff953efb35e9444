"""Regenerate notebooks/*.ipynb (the notebooks are the source; this keeps their shape uniform and their bytes
stable). Each holds a parameters cell, one analysis call, its tables, figures and verdict. Run from the repo root."""
import nbformat as nbf
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

OUT = {"t1_backbones": "t1", "t2_activations": "t2", "t3_selection": "t3", "t4_zeroshot": "t4", "t5_resolution": "t5", "t6_regimes": "t6"}
TEST_COLS = '["dataset", "backbone", "a", "b", "diff", "srcc_diff", "ci_low", "ci_high", "p", "p_holm", "m_family", "mde80", "significant"]'


def nb(name, title, intro, body):
    setup = ("from pathlib import Path\nfrom IPython.display import Image, Markdown, display\n"
             "from nriqa_lib.config import load_params\nfrom nriqa_lib.stages import view\n"
             "from nriqa_lib.reporting.display import POOLED_VIEW, folded, show, verdict\n\n"
             f'P = view(load_params(params_file), "{name}")   # only the params this stage declares\nout = Path(out_dir)')
    params = new_code_cell(f'params_file = "params.yaml"\nout_dir = "results/{OUT.get(name, name)}"')
    params.metadata["tags"] = ["parameters"]
    cells = [new_markdown_cell(f"# {title}\n\n{intro}"), params, new_code_cell(setup),
             new_markdown_cell("<details><summary>Parameters of this run</summary>\n\nThe params this stage reads "
                               "(and dvc.yaml declares):\n</details>"), new_code_cell("P")]
    cells += [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in body]
    for i, c in enumerate(cells):       # stable ids: regenerating gives the same bytes
        c["id"] = f"{name[:20]}-{i:02d}"
    nbf.write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                  "language": "python"},
                                                   "language_info": {"name": "python"}}), f"notebooks/{name}.ipynb")


def tests_cells(key, what, summary):
    return [("code", f'display(Markdown(verdict(T["{key}"], P.stats.alpha, "{what}")))'),
            ("code", f'folded(T["{key}"], "{summary}", {TEST_COLS})')]


def pooled_cells(key, fig):
    """The pooled verdict per claim (random effects over cells) and the forest plot of the per-cell differences."""
    return [("md", "**Pooled verdicts**, one claim per row: the cells of one dataset (backbones, heads) share its "
                   "images and splits, so they are combined into one test per dataset first (the Nadeau-Bengio t on "
                   "their mean per-split difference, or the mean of their bootstrap replicates); human-rated datasets "
                   "are then pooled (mean over datasets, one-sample t on k - 1 df; k = 1: the dataset's own test), and the "
                   "synthetic set (an SSIM proxy, not human opinions) keeps rows of its own. p is Holm-adjusted over "
                   "the table's human-rated rows; `mde80` / `splits_80`: the difference detectable with 80% power / "
                   "the splits that would detect the estimate, at the level its test faces."),
            ("code", f'show(T["{key}"][[c for c in POOLED_VIEW if c in T["{key}"]]], "Pooled verdicts (diagnostics '
                     f'in the CSV)") if len(T["{key}"]) else Markdown("No comparison to pool.")'),
            ("code", f'Image(out / "figures" / "{fig}") if (out / "figures" / "{fig}").is_file() else None'),
            ("code", f'Image(out / "figures" / "{fig.replace("forest", "power")}") '
                     f'if (out / "figures" / "{fig.replace("forest", "power")}").is_file() else None')]


nb("data_overview", "Data overview",
   "Per dataset: its size, MOS range (normalised to [0, 1], higher is better), the splits every stage uses, and "
   "sample images from the lowest to the highest MOS. The `synthetic` set's scores are **synthetic (100 x SSIM), "
   "not human opinions**; CLIVE's are human ratings.",
   [("code", "from nriqa_lib.analysis.overview import data_overview\n\nO = data_overview(P, out)\nshow(O[\"summary\"])"),
    ("code", "display(Image(out / \"figures\" / \"mos_histograms.png\"))\nfor d in P.data.datasets:\n"
             "    display(Markdown(f\"**{d}**: lowest to highest MOS\"), Image(out / \"figures\" / f\"samples_{d}.png\"))")])
nb("t1_backbones", "T1: backbone comparison (P1)",
   "Every configured backbone with the identical MLP head (`t1.head`), per dataset: each cell is the mean ± sd over "
   "splits of test SRCC or raw PLCC; higher is better, and the random-init control shows what the architecture "
   "alone gives. Pairs of backbones are compared on the same splits (Nadeau-Bengio corrected t; Holm within one "
   "dataset); the verdict below the table says which differences are significant and how large a difference "
   "these splits could detect.",
   [("code", "from nriqa_lib.analysis.t1 import t1_backbones\n\nT = t1_backbones(P, out)\nshow(T[\"table\"], \"T1: test SRCC / raw PLCC, mean ± sd over splits\")"),
    *tests_cells("tests", "backbone pairs", "All pairwise tests (SRCC; diff = a - b)"),
    ("code", "Image(out / \"figures\" / \"t1_srcc.png\")"), *pooled_cells("pooled", "t1_forest.png"),
    ("code", "show(T[\"table_last_epoch\"], \"T1 at the LAST epoch (what P1's code writes; train.report_last)\") "
             "if \"table_last_epoch\" in T else None")])
nb("t2_activations", "T2: activation ablation (P1)",
   "The same head with ReLU (B), GELU, Sigmoid, Tanh or LeakyReLU in both hidden layers, P1's B_Sig (Sigmoid then "
   "LeakyReLU) and a ridge baseline: test SRCC, mean ± sd over splits, per dataset and backbone. Each head is "
   "compared with `t2.reference` on the same splits (Holm within one claim: one head over all datasets x "
   "backbones); then the cross-dataset direction, where every source split's head predicts the whole target set "
   "(two-level bootstrap over source splits and target images).",
   [("code", "from nriqa_lib.analysis.t2 import t2_activations\n\nT = t2_activations(P, out)\nshow(T[\"table\"], \"T2: test SRCC, mean ± sd over splits\")"),
    *tests_cells("tests", "head-vs-reference comparisons", "All tests vs the reference (SRCC)"),
    *pooled_cells("pooled", "t2_forest.png"),
    ("md", "## Cross-dataset: train on the first dataset, test on all of the second"),
    ("code", "show(T[\"cross_table\"], \"SRCC on the whole target set, mean ± sd over source splits\") if \"cross_table\" in T else Markdown(\"No `t2.cross` pair with both datasets configured.\")"),
    ("code", "display(Markdown(verdict(T.get(\"cross_tests\"), P.stats.alpha, \"cross-dataset comparisons\")))"),
    ("code", f"folded(T[\"cross_tests\"], \"All cross-dataset tests (paired two-level bootstrap)\", {TEST_COLS}) if \"cross_tests\" in T else None"),
    ("code", "show(T[\"cross_pooled\"][[c for c in POOLED_VIEW if c in T[\"cross_pooled\"]]], \"Cross-dataset, pooled (diagnostics in the CSV)\") if \"cross_pooled\" in T and len(T[\"cross_pooled\"]) else None"),
    ("code", "Image(out / \"figures\" / \"t2_cross_forest.png\") if (out / \"figures\" / \"t2_cross_forest.png\").is_file() else None")])
nb("t3_selection", "T3: learnable activation selection (P1's B_Gated and our K-way)",
   "B_Gated (GatedBlend of ParamSigmoid and PReLU, then PReLU) and our K-way per-channel selection against the best "
   "fixed activation of T2, picked per dataset/backbone by mean SRCC on val (on test only under the paper profile's "
   "`select_on: test`), so the test numbers stay untouched by the choice. Cells are test SRCC, mean ± sd over "
   "splits; below, the share of channels that choose each candidate activation.",
   [("code", "from nriqa_lib.analysis.t3 import t3_selection\n\nT = t3_selection(P, out)\nshow(T[\"table\"], \"T3: test SRCC, mean ± sd over splits; best_fixed chosen on val\")"),
    *tests_cells("tests", "selection-vs-best-fixed comparisons", "All tests vs the best fixed head (SRCC)"),
    *pooled_cells("pooled", "t3_forest.png"),
    ("code", "folded(T[\"shares\"].reset_index(), \"Channel shares per candidate (mean, sd over splits)\")"),
    ("code", "Image(out / \"figures\" / \"t3_shares.png\")")])
nb("t4_zeroshot", "T4: zero-shot quality (P2: CLIP-IQA, MA-CLIP) and the magnitude cue on any backbone",
   "Training-free scores on whole datasets: SRCC with a 95% bootstrap CI over images, raw PLCC and PLCC after P2's "
   "5-parameter logistic (`fit` says where that fit failed), KRCC, RMSE. The magnitude cue (P2's shifted Box-Cox "
   "Q_mag, lambda 0.5) and the raw L2 norm run on every backbone's pooled features; CLIP-IQA, MA-CLIP and the "
   "ablation grid run for each CLIP model whose weights exist.",
   [("code", "from nriqa_lib.analysis.t4 import t4_zeroshot\n\nT = t4_zeroshot(P, out)\nshow(T[\"table\"], \"T4: zero-shot scores on whole datasets\")"),
    *tests_cells("tests", "zero-shot comparisons", "All tests (paired bootstrap over images; Williams' t on PLCC)"),
    ("code", "show(T[\"notes\"], \"CLIP models not run\") if len(T[\"notes\"]) else Markdown(\"Every configured CLIP model ran.\")"),
    ("code", "Image(out / \"figures\" / \"t4_srcc.png\")"), *pooled_cells("pooled", "t4_forest.png")])
nb("t5_resolution", "T5: input resolution and test-time views (beyond P1)",
   "P1 squashes every image to its backbone's input size, so backbone and resolution are confounded. Here the "
   "input policy is the factor: the same backbone, splits and heads (`t5.heads`) with each policy of "
   "`t5.policies` (squash = T1-T4's, centre crop, a larger squash `squash_<N>`, the image at its native size, "
   "MA-CLIP's 224-px view grid averaged). Cells are test SRCC, mean ± sd over splits; each policy is compared "
   "with `features.test_time` on the same splits (Holm within one claim), pooled per policy, and its cost is "
   "given in forward GFLOPs per image (counted, mean over the dataset).",
   [("code", "from nriqa_lib.analysis.t5 import t5_resolution\n\nT = t5_resolution(P, out)\nshow(T[\"table\"], \"T5: test SRCC, mean ± sd over splits\")"),
    *tests_cells("tests", "policy-vs-squash comparisons", "All tests vs the reference policy (SRCC)"),
    *pooled_cells("pooled", "t5_forest.png"),
    ("code", "show(T[\"cost\"], \"Cost per policy (GFLOPs per image, counted)\")"),
    ("md", "Measured images/s per policy (decode + transform + forward on 32 images, 8 for native and grid, never from the feature cache) "
           "are in `results/timing/resolution_<dataset>.json` and the stage's log, not here: timings vary from run "
           "to run, and this notebook renders the same bytes for the same inputs on any machine.")])
nb("t6_regimes", "T6: training regimes (P1): frozen vs P1's regime vs LoRA vs full fine-tuning",
   "Each head of `finetune.heads` on the frozen backbone (the heads stage) against the image-level regimes of the "
   "finetune stage: `p1`, P1's regime (LoRA adapters + the full backbone, one Adam at `train.lr`, P1's bf16 "
   "dtypes: what produced P1's published numbers), and ours: `lora` (adapters only: r 4, alpha 8, dropout 0.05 on "
   "the attention q/k projections; conv LoRA on CNNs) and `full` (backbone lr `finetune.lr_backbone`), with the "
   "same head, loss, epochs and epoch selection. Cells are test SRCC, mean ± sd over the fine-tuned splits; each "
   "regime is compared with frozen on the same splits (Holm within one claim: one regime over all datasets x "
   "backbones x heads). With `train.report_last` the same at the last epoch (what P1's code writes). Off in the "
   "offline default (`finetune.regimes: []`).",
   [("code", "from nriqa_lib.analysis.t6 import t6_regimes\n\nT = t6_regimes(P, out)\nshow(T[\"table\"], \"T6: test SRCC, mean ± sd over splits\")"),
    ("code", "display(Markdown(verdict(T[\"tests\"], P.stats.alpha, \"regime-vs-frozen comparisons\"))) if len(T[\"tests\"]) else None"),
    ("code", f"folded(T[\"tests\"], \"All tests vs frozen (SRCC)\", {TEST_COLS}) if len(T[\"tests\"]) else None"),
    *pooled_cells("pooled", "t6_forest.png"),
    ("code", "show(T[\"last_epoch\"][\"table\"], \"T6 at the LAST epoch (what P1's code writes)\") "
             "if \"last_epoch\" in T else None")])
nb("report", "nriqa report",
   "Every claim of P1 and P2 tested on the data at hand: one row per dataset/backbone cell (its table's Holm p, "
   "`p_holm`, decides its verdict), then each claim's pooled row on human-rated data, whose verdict uses `p_study`, "
   "Holm over every pooled human-rated row of the study (one family: the verdicts below), and the synthetic set's "
   "rows, labelled as a proxy. Significant = the adjusted p below `stats.alpha`. Then the six tables and the key "
   "figures.",
   [("code", "from nriqa_lib.reporting import report\n\nC = report.claims(\"results\", P.stats.alpha)\nmd = report.gather_tables(\"results\")\n"
             "banner = \"\" if P.features.pretrained else report.RANDOM_WEIGHTS\n"
             "report.write_report(out, md, C, report.gather_tables(\"results\", \"tex\"), banner)\n"
             "display(Markdown(f\"**{banner}**\")) if banner else None\nshow(C, \"Claims on the data at hand\")"),
    ("code", "display(Markdown(report.summary(C)))"),
    ("code", "for f in report.FIGURES:\n    if Path(\"results\", f).is_file():\n        display(Image(Path(\"results\", f)))"),
    ("code", "Markdown(md)")])
