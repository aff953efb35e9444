"""T4: zero-shot quality (P2's CLIP-IQA and MA-CLIP, the ablation grid, the magnitude cue on every backbone),
from the scores of the zeroshot stage: metrics on whole datasets, bootstrap CIs, paired tests."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from ..backbones.registry import is_control
from ..core.metrics import LogisticFitWarning, all_metrics, plcc, plcc_along, srcc_along
from ..core.paths import load_zeroshot
from ..analysis.stats import bootstrap_ci, paired_bootstrap, williams_t
from ..analysis.compare import family_note, holm_by_family, weights_label
from ..analysis.inputs import TableInputs
from ..analysis.pooled import pooled_outputs
from ..analysis.result import Result
from ..analysis.table import CellRow, Claims, Table

PARAMS = ("data.datasets", "features.backbones", "features.pretrained", "t4.clip_models", "stats")
__all__ = ["PARAMS", "TABLE", "compute", "t4_zeroshot"]


def _zs_row(dataset: str, source: str, score: str, pred: np.ndarray, mos: np.ndarray, n_boot: int, seed: int) -> dict:
    """Metrics of one score on one whole dataset; a failed logistic fit is recorded in ``fit``, not printed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LogisticFitWarning)
        m = all_metrics(pred, mos, fit="logistic5")
    failed = any(issubclass(w.category, LogisticFitWarning) for w in caught)
    ci_s = bootstrap_ci(pred, mos, srcc_along, n_boot=n_boot, seed=seed, vectorized=True)
    ci_p = bootstrap_ci(pred, mos, plcc_along, n_boot=n_boot, seed=seed, vectorized=True)
    return {"dataset": dataset, "source": source, "score": score, **m, "srcc_ci_low": ci_s["ci_low"],
            "srcc_ci_high": ci_s["ci_high"], "plcc_ci_low": ci_p["ci_low"], "plcc_ci_high": ci_p["ci_high"],
            "fit": "raw (logistic-5 fit failed)" if failed else "logistic-5"}


def compute(scores: pd.DataFrame, notes_df: pd.DataFrame, inputs: TableInputs, clip_models: Sequence[str]) -> Result:
    """T4: every zero-shot score of the zeroshot stage (``scores``; ``notes_df``: the CLIP models not run) on whole datasets (SRCC with a 95% bootstrap CI, raw
    and 5-parameter-logistic PLCC as P2, KRCC, RMSE); paired bootstrap of SRCC differences and Williams' t:
    each pretrained backbone's cue vs the random control, and every MA-CLIP variant vs CLIP-IQA (Holm within
    each claim)."""
    out = Result(label=weights_label(inputs.pretrained))
    n_boot, seed = inputs.stats.n_boot, inputs.stats.seed
    rows, tests, preds, dists = [], [], {}, {}
    for (d, src, score), g in scores.groupby(["dataset", "source", "score"], sort=False):
        vals, mos = g["value"].to_numpy(), g["mos"].to_numpy()
        rows.append(_zs_row(d, src, score, vals, mos, n_boot, seed))
        preds[(d, src, score)] = (vals, mos)
    res = pd.DataFrame(rows)
    controls = [b for b in inputs.backbones if is_control(b)]
    for (d, src, score), (vals, mos) in preds.items():
        refs = [(c, score) for c in controls if src not in controls]
        claim = f"magnitude cue ({score}): pretrained vs random-init backbone"      # one claim per score
        if src in clip_models and score != "CLIP-IQA":
            refs, claim = [(src, "CLIP-IQA")], f"P2: {score} vs CLIP-IQA"
        for rsrc, rscore in refs:
            if (d, rsrc, rscore) not in preds:
                continue
            other = preds[(d, rsrc, rscore)][0]
            pb = paired_bootstrap(vals, other, mos, srcc_along, n_boot=n_boot, seed=seed, vectorized=True)
            # both PLCCs with the MOS in one row-wise call: identical scores give r12 == r13 exactly on any CPU
            r12, r13 = (float(r) for r in plcc_along(np.stack([vals, other]), np.stack([mos, mos])))
            r23 = plcc(vals, other)
            w = williams_t(r12, r13, r23, len(mos))
            dists[len(tests)] = pb["dist"]      # same seed and images: the same resamples in every cell of d
            tests.append({"claim": claim, "dataset": d, "a": f"{src}: {score}", "b": f"{rsrc}: {rscore}",
                   "srcc_diff": pb["diff"], "ci_low": pb["ci_low"], "ci_high": pb["ci_high"], "se": pb["se"],
                   "n_splits": 1, "test": "paired bootstrap over images", "p": pb["p"],
                   "p_below": pb["p_below"], "plcc_diff": r12 - r13, "p_williams": w["p"]})
    tests = pd.DataFrame(tests)
    if len(tests):
        tests = holm_by_family(tests, ["claim"], inputs.stats.alpha, p_cols=("p", "p_williams"))
    tests.attrs["boot_dists"] = dists
    table = res.set_index(["dataset", "source", "score"])[["srcc", "srcc_ci_low", "srcc_ci_high", "plcc",
                                     "plcc_logistic5", "krcc", "rmse", "fit"]].round(4)
    out.table("t4_zeroshot", table, "T4: zero-shot scores on whole datasets; SRCC with 95% bootstrap CI, raw PLCC "
                              "and PLCC after the 5-parameter logistic (as P2), KRCC, RMSE (logistic-5)")
    out.table("t4_tests", tests, "T4: paired bootstrap (images) of SRCC differences and Williams' t on PLCC. "
               + family_note(tests, "one claim across all datasets and backbones", inputs.stats.alpha))
    out.table("t4_notes", notes_df.set_index(["dataset", "model"]), "T4: CLIP models not run")
    pool = pooled_outputs(out, inputs, tests, "claim", ["dataset", "a"], None, "t4", "T4 claims", diff="srcc_diff")
    fig_df = res.assign(mean=res["srcc"], ci_low=res["srcc_ci_low"], ci_high=res["srcc_ci_high"], metric="srcc")
    out.figure("t4_srcc", "bars_with_ci", fig_df, "source", "score", "dataset",
               ci_label="95% CI: percentile bootstrap over images (whole dataset)")
    out.metrics = {f"{r.dataset}/{r.source}/{r.score}": {"srcc": r.srcc, "plcc": r.plcc} for r in res.itertuples()}
    out.frames = {"table": table, "tests": tests, "notes": notes_df, "rows": res, "pooled": pool}
    return out


def t4_zeroshot(inputs: TableInputs, clip_models: Sequence[str]) -> Result:
    """T4 as its notebook runs it: the zeroshot stage's scores in, :func:`compute` on them; the one function of
    this module that reads files, and none writes (the notebook writes the Result:
    ``reporting.export.write_result``)."""
    scores, notes = load_zeroshot(inputs.datasets)
    return compute(scores, notes, inputs, clip_models)


def cue_claim(score: str) -> str:
    """The claim of a magnitude-cue score: a pretrained backbone's cue vs a random one's. P2's cue, Q_mag, is the
    claim; the raw L2 norm is its ablation without the Box-Cox step, a second reading of one question (its
    per-image SRCC with Q_mag: 0.46-0.49 on CLIVE's pretrained Lite0-2, 0.18 on the random control; their SRCCs
    with MOS differ by 0.02-0.03), so its row is descriptive: shown, not counted as a second claim (issue 39)."""
    kind = "descriptive (the raw norm of Q_mag)" if score.startswith("L2") else "ours"
    return f"{kind}: the magnitude cue ({score}) of a pretrained backbone beats that of a random one"


class _ZeroshotClaims(Claims):
    """T4's claims, named from its test labels ("<source>: <score>" vs CLIP-IQA or vs the random control's cue);
    a CLIP model whose weights are absent is a claim this run could not test."""

    def name(self, key: str) -> str:
        if key.startswith("magnitude cue (") and "): pretrained vs" in key:
            return cue_claim(key[len("magnitude cue ("):key.index("): pretrained vs")])
        if key.startswith("P2: ") and key.endswith(" vs CLIP-IQA"):
            return f"{key[:-len(' vs CLIP-IQA')]} beats CLIP-IQA"
        return key

    def cell_rows(self, tests: pd.DataFrame) -> list[CellRow]:
        out = []
        for r in tests.itertuples():
            score = str(r.a).split(": ", 1)[1]
            name = f"P2: {score} beats CLIP-IQA" if "CLIP-IQA" in str(r.b) else cue_claim(score)
            out.append((name, f"{r.dataset}: {r.a} vs {r.b}", r.srcc_diff, r.p_holm))
        return out

    def untestable(self, read) -> list[tuple[str, str, str]]:
        return [("P2: MA-CLIP beats CLIP-IQA", f"{r.dataset}/{r.model}", "not testable here (CLIP weights absent)")
                for r in read("t4_notes").itertuples()]


TABLE = Table(
    name="t4", folder="t4", desc="T4 (P2): CLIP-IQA, MA-CLIP and the magnitude cue, training-free",
    params=PARAMS, tag="boot-${stats.n_boot}", deps=("results/zeroshot",),
    shown=("t4_zeroshot", "t4_tests", "t4_notes"), pooled_shown=("t4_pooled",), figures=("t4_srcc", "t4_forest"),
    plots=("t4_srcc",), claims=(_ZeroshotClaims(tests="t4_tests", pooled="t4_pooled", level="claim"),))
