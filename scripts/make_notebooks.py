"""Regenerate notebooks/*.ipynb (the notebooks are the source; this keeps their shape uniform). Run from the repo root."""
import nbformat as nbf, sys
from nbformat.v4 import new_notebook, new_markdown_cell, new_code_cell
SHOW = {"data_overview": "P.data, P.splits", "t1_backbones": "P.t1, P.train, P.stats, P.features.backbones",
        "t2_activations": "P.t2, P.train, P.stats", "t3_selection": "P.t3, P.train, P.stats",
        "t4_zeroshot": "P.t4, P.stats, P.features.backbones", "report": "P.stats"}
def nb(name, title, intro, body_cells):
    cells = [new_markdown_cell(f"# {title}\n\n{intro}")]
    outd = {"t1_backbones": "t1", "t2_activations": "t2", "t3_selection": "t3", "t4_zeroshot": "t4"}.get(name, name)
    c = new_code_cell(f'params_file = "params.yaml"\nout_dir = "results/{outd}"')
    c.metadata["tags"] = ["parameters"]
    cells.append(c)
    cells.append(new_code_cell("from pathlib import Path\nfrom IPython.display import Image, Markdown, display\n"
                               "from nriqa_lib.config import load_params\n\nP = load_params(params_file)\nout = Path(out_dir)"))
    cells.append(new_markdown_cell("The parameters this run used (from `params_file`):"))
    cells.append(new_code_cell(SHOW[name]))
    for kind, src in body_cells:
        cells.append(new_markdown_cell(src) if kind == "md" else new_code_cell(src))
    for i, c in enumerate(cells):       # stable ids: regenerating gives the same bytes
        c["id"] = f"{name[:20]}-{i:02d}"
    n = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                            "language_info": {"name": "python"}})
    nbf.write(n, f"notebooks/{name}.ipynb")

nb("data_overview", "Data overview", "Per dataset: size, MOS distribution (normalised to [0, 1], higher is better), the splits every stage uses, and sample images across the quality range. The `synthetic` set's scores are **synthetic (100 x SSIM), not human opinions**.",
   [("code", "from nriqa_lib.tables import data_overview\n\nO = data_overview(P, out)\nO[\"summary\"]"),
    ("code", "display(Image(out / \"figures\" / \"mos_histograms.png\"))\nfor d in P.data.datasets:\n    display(Markdown(f\"**{d}**: lowest to highest MOS\"), Image(out / \"figures\" / f\"samples_{d}.png\"))")])
nb("t1_backbones", "T1: backbone comparison (P1)", "Every configured backbone with the identical MLP head (`t1.head`), per dataset. Cells are mean ± sd over the splits of test SRCC and raw PLCC (the caption says how the epoch was chosen). Pairwise differences are tested with the Nadeau-Bengio corrected resampled t-test and the Wilcoxon signed-rank test (a dataset with one official split: several training seeds and a two-level bootstrap over seeds and test images), Holm-adjusted within one dataset. Next to each test: the family size, Wilcoxon's smallest attainable p and the difference detectable with 80% power (`mde80`).",
   [("code", "from nriqa_lib.tables import t1_backbones\n\nT = t1_backbones(P, out)\nT[\"table\"]"),
    ("md", "Pairwise tests (SRCC; `diff` = a - b, `d_z` = Cohen's d of the paired differences):"),
    ("code", "T[\"tests\"].round(4)"),
    ("code", "Image(out / \"figures\" / \"t1_srcc.png\")")])
nb("t2_activations", "T2: activation ablation (P1)", "The same head with ReLU, GELU, Sigmoid, Tanh, LeakyReLU in both hidden layers, and P1's B_Sig (Sigmoid then LeakyReLU), per backbone and dataset; each vs `t2.reference` on the same splits (Nadeau-Bengio and Wilcoxon; Holm within one claim: one head vs the reference over all datasets x backbones). Then the cross-dataset direction: train on one dataset, test on all of another, with a two-level bootstrap (source splits, then target images) for intervals and tests.",
   [("code", "from nriqa_lib.tables import t2_activations\n\nT = t2_activations(P, out)\nT[\"table\"]"),
    ("code", "T[\"tests\"].round(4)"),
    ("code", "Image(out / \"figures\" / \"t2_srcc.png\")"),
    ("md", "Cross-dataset (SRCC on the whole target dataset, one value per source split; CIs and tests from the two-level bootstrap over source splits and target images):"),
    ("code", "display(T[\"cross_summary\"].round(4), T[\"cross_tests\"].round(4)) if \"cross_summary\" in T else print(\"no t2.cross pair configured\")")])
nb("t3_selection", "T3: learnable activation selection (P1's B_Gated and our K-way)", "B_Gated (GatedBlend of ParamSigmoid and PReLU, then PReLU) and our K-way per-channel selection against the best fixed activation of T2, picked per dataset/backbone by mean SRCC on val (on test only under the paper profile's `select_on: test`), so the test numbers stay untouched by the choice. Below: the share of channels that choose each candidate.",
   [("code", "from nriqa_lib.tables import t3_selection\n\nT = t3_selection(P, out)\nT[\"table\"]"),
    ("code", "T[\"tests\"].round(4)"),
    ("code", "T[\"shares\"]"),
    ("code", "Image(out / \"figures\" / \"t3_shares.png\")")])
nb("t4_zeroshot", "T4: zero-shot quality (P2: CLIP-IQA, MA-CLIP) and the magnitude cue on any backbone", "Training-free scores on whole datasets: SRCC with a 95% bootstrap CI (images resampled), raw PLCC and PLCC after P2's 5-parameter logistic, KRCC, RMSE. The magnitude cue Q_mag (P2's shifted Box-Cox, lambda 0.5) and the raw L2 norm run on every configured backbone's pooled features; CLIP-IQA, MA-CLIP and the ablation grid run for each CLIP model whose weights exist (`t4.clip_models`). Comparisons: paired bootstrap of the SRCC difference and Williams' t on PLCC, Holm-adjusted within one claim.",
   [("code", "from nriqa_lib.tables import t4_zeroshot\n\nT = t4_zeroshot(P, out)\nT[\"table\"]"),
    ("code", "T[\"tests\"].round(4) if len(T[\"tests\"]) else \"no comparisons\""),
    ("code", "T[\"notes\"]"),
    ("code", "Image(out / \"figures\" / \"t4_srcc.png\")")])
nb("report", "nriqa report", "Gathers the four tables, the key figures, and a generated verdict on each claim of P1 and P2 on the data at hand (significant = Holm-adjusted p below `stats.alpha`).",
   [("code", "from nriqa_lib import report\n\nC = report.claims(\"results\", P.stats.alpha)\nmd = report.gather_tables(\"results\")\nreport.write_report(out, md, C, report.gather_tables(\"results\", \"tex\"))\nC"),
    ("code", "Markdown(md)"),
    ("code", "F = report.key_figures(P, out)\nfor f in [\"results/t1/figures/t1_srcc.png\", \"results/t2/figures/t2_srcc.png\", \"results/t3/figures/t3_shares.png\", \"results/t4/figures/t4_srcc.png\", *F.values()]:\n    display(Image(f))")])
