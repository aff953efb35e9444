"""T4: zero-shot quality (P2's CLIP-IQA and MA-CLIP, the ablation grid, the magnitude cue on every backbone),
from the scores of the zeroshot stage: metrics on whole datasets, bootstrap CIs, paired tests."""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd

from ..backbones.registry import init_of, is_control
from ..core.metrics import LogisticFitWarning, all_metrics, plcc, plcc_along, srcc_along
from ..core.paths import load_zeroshot
from ..analysis.stats import (bootstrap_ci, bootstrap_cells_test, paired_bootstrap, satterthwaite_df,
                              two_level_bootstrap, williams_t)
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
    """T4: every zero-shot score of the zeroshot stage (``scores``; ``notes_df``: the CLIP models not run) on
    whole datasets (SRCC with a 95% bootstrap CI, raw and 5-parameter-logistic PLCC as P2, KRCC, RMSE).

    Tests (Holm within each claim): every MA-CLIP variant vs CLIP-IQA (paired bootstrap of the SRCC difference,
    Williams' t on PLCC); each pretrained backbone's magnitude cue vs a random-init control's, where the control's
    K initialisations (``<control>``, ``<control>_init1``.., features.control_inits) are a resampling unit: SRCC
    minus the mean SRCC of the K inits, two-level bootstrap (inits, then images:
    :func:`~nriqa_lib.analysis.stats.two_level_bootstrap`), and for P2's cue (Q_mag) the same on |SRCC| (its
    absolute companion: the pretrained cues correlate negatively with MOS, the random ones positively)."""
    out = Result(label=weights_label(inputs.pretrained))
    n_boot, seed = inputs.stats.n_boot, inputs.stats.seed
    rows, tests, preds, dists = [], [], {}, {}
    for (d, src, score), g in scores.groupby(["dataset", "source", "score"], sort=False):
        vals, mos = g["value"].to_numpy(), g["mos"].to_numpy()
        rows.append(_zs_row(d, src, score, vals, mos, n_boot, seed))
        preds[(d, src, score)] = (vals, mos)
    res = pd.DataFrame(rows)
    controls = [b for b in inputs.backbones if is_control(b)]
    inits = {c: _inits_of(c, res["source"].unique()) for c in controls}
    for (d, src, score), (vals, mos) in preds.items():
        if src in clip_models and score != "CLIP-IQA":
            refs, claim = [(src, "CLIP-IQA")], f"P2: {score} vs CLIP-IQA"
        else:
            for c in (c for c in controls if src not in inits[c] and all((d, s, score) in preds for s in inits[c])):
                others = np.stack([preds[(d, s, score)][0] for s in inits[c]])
                for absolute in (False, True) if score.startswith("Q_mag") else (False,):
                    i = len(tests)          # the row _cue_test appends (taken before the call appends it)
                    dists[i] = _cue_test(tests, d, src, c, score, vals, others, mos, absolute, n_boot, seed)
            continue
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
    out.table("t4_tests", tests, "T4: MA-CLIP vs CLIP-IQA: paired bootstrap (images) of SRCC differences and "
               "Williams' t on PLCC; magnitude cue vs the random-init control: SRCC minus the mean over the control's "
               "initialisations, two-level bootstrap (inits, then images), t on Satterthwaite df (|SRCC| for the "
               "absolute companion). " + family_note(tests, "one claim across all datasets and backbones", inputs.stats.alpha))
    out.table("t4_notes", notes_df.set_index(["dataset", "model"]), "T4: CLIP models not run")
    pool = pooled_outputs(out, inputs, tests, "claim", ["dataset", "a"], None, "t4", "T4 claims", diff="srcc_diff")
    fig_df = res.assign(mean=res["srcc"], ci_low=res["srcc_ci_low"], ci_high=res["srcc_ci_high"], metric="srcc")
    out.figure("t4_srcc", "bars_with_ci", fig_df, "source", "score", "dataset",
               ci_label="95% CI: percentile bootstrap over images (whole dataset)")
    out.metrics = {f"{r.dataset}/{r.source}/{r.score}": {"srcc": r.srcc, "plcc": r.plcc} for r in res.itertuples()}
    out.frames = {"table": table, "tests": tests, "notes": notes_df, "rows": res, "pooled": pool}
    return out


def _inits_of(control: str, sources) -> list[str]:
    """A control's initialisations among the score sources: itself (seed 0), then its other seeds' sets by seed
    (:func:`~nriqa_lib.backbones.registry.init_of`)."""
    seeds = {s: hit[1] for s in sources if (hit := init_of(s)) is not None and hit[0] == control}
    return [control, *sorted(seeds, key=seeds.get)]


def _cue_test(tests: list, d: str, src: str, control: str, score: str, vals: np.ndarray, others: np.ndarray,
              mos: np.ndarray, absolute: bool, n_boot: int, seed: int) -> np.ndarray:
    """A pretrained backbone's magnitude cue vs a control's K initialisations (``others``: (K, N)): SRCC minus
    the inits' mean SRCC (|SRCC| with ``absolute``), two-level bootstrap over inits then images (the same seed,
    K and N: the same resamples in every cell of a dataset, so the cells pool), the inits' variance scaled by
    K/(K-1) (resampling K units with replacement shrinks it by (K-1)/K); z = estimate / se referred to t on the
    Welch-Satterthwaite df of the inits' share (:func:`satterthwaite_df`; the same replicates with the inits at
    equal weights give the images' share): :func:`bootstrap_cells_test` on this one cell. Appends the test row;
    returns the replicates. No Williams' t: it compares two correlations, not one with a population of them."""
    K = len(others)
    tl = two_level_bootstrap(np.broadcast_to(vals, others.shape), mos, others, n_boot=n_boot, seed=seed,
                             absolute=absolute, head_inflation=K / (K - 1) if K > 1 else 1.0)
    df = satterthwaite_df(tl["se"] ** 2, tl["se_images"] ** 2, K)
    t = bootstrap_cells_test(tl["dist"][None], [tl["value"]], df=df)
    r_pre = float(plcc_along(vals, mos))
    r_inits = plcc_along(others, np.broadcast_to(mos, others.shape))
    plcc_diff = abs(r_pre) - float(np.mean(np.abs(r_inits))) if absolute else r_pre - float(np.mean(r_inits))
    label = f"|{score}|" if absolute else score
    tests.append({"claim": cue_key(score, absolute), "dataset": d, "a": f"{src}: {label}",
                  "b": f"{control} ({K} init{'s' if K > 1 else ''}): {label}", "srcc_diff": tl["value"],
                  "ci_low": t["ci_low"], "ci_high": t["ci_high"], "se": t["se"], "df": df, "n_splits": 1,
                  "test": f"two-level bootstrap ({K} random inits, then images), t on Satterthwaite df",
                  "p": t["p"], "p_below": False, "plcc_diff": plcc_diff, "p_williams": np.nan})
    return tl["dist"]


def cue_key(score: str, absolute: bool = False) -> str:
    """The test-table claim key of a magnitude-cue score (its findings name: :func:`cue_claim`)."""
    return f"magnitude cue ({score}{', absolute SRCC' if absolute else ''}): pretrained vs random-init backbone"


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
    with MOS differ by 0.02-0.03), so its row is descriptive: shown, not counted as a second claim (issue 39).
    So is Q_mag's absolute companion (``<score>, absolute SRCC``): the same cue read by |SRCC|, either sign."""
    if score.endswith(", absolute SRCC"):
        base = score[:-len(", absolute SRCC")]
        return (f"descriptive (absolute SRCC, either sign): the magnitude cue ({base}) of a pretrained backbone "
                f"orders images more strongly than that of a random one")
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
        return [(self.name(str(r.claim)), f"{r.dataset}: {r.a} vs {r.b}", r.srcc_diff, r.p_holm)
                for r in tests.itertuples()]

    def untestable(self, read) -> list[tuple[str, str, str]]:
        return [("P2: MA-CLIP beats CLIP-IQA", f"{r.dataset}/{r.model}", "not testable here (CLIP weights absent)")
                for r in read("t4_notes").itertuples()]


TABLE = Table(
    name="t4", folder="t4", desc="T4 (P2): CLIP-IQA, MA-CLIP and the magnitude cue, training-free",
    params=PARAMS, tag="boot-${stats.n_boot}", deps=("results/zeroshot",),
    shown=("t4_zeroshot", "t4_tests", "t4_notes"), pooled_shown=("t4_pooled",), figures=("t4_srcc", "t4_forest"),
    plots=("t4_srcc",), claims=(_ZeroshotClaims(tests="t4_tests", pooled="t4_pooled", level="claim"),))
