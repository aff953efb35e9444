"""The A/A level of the per-dataset test on the default study's CLIVE features (issue 39): how often does the test
the findings use call two identical heads different?

Head B (the reference head, ``t2.reference``) is trained ``--seeds`` times on the cached features of each pretrained
backbone (``dvc repro features`` first) and the 10 published splits, each time with other training seeds (seed set
s: the heads stage's seeds + 7919 (s + 1)), as the heads stage trains it (the ``train`` section of params.yaml, all
seed sets' heads batched in one ``train_heads`` call). Every pair of seed sets is an A/A comparison: no true difference. For each pair, the
per-split SRCC differences of the backbones are averaged and tested as a findings row is (Nadeau-Bengio corrected
t, :func:`nriqa_lib.analysis.stats.split_cells_test`; the same for one backbone alone) and, for contrast, with an
uncorrected paired t. Reports the rejection rate at 5% over disjoint pairs (independent tests) and over all pairs,
the seed noise (sd of a split's SRCC over seeds) beside the split-to-split sd of a real difference, and the
between-split correlation of the differences that the variance model implies vs the one measured. Writes JSON.

Seed averaging (``--average 1,2,4,8``): disjoint groups of A seed sets, each split's SRCC averaged over its group's
seeds (what training A seeds per split would give), then the same A/A rates over pairs of groups; with ``--vs B_Sig``
the compared head is trained on the same seed sets, and each group gives the real comparison (vs - reference, same
seeds per split as the heads stage pairs them): its split-to-split sd, the Nadeau-Bengio MDE at 80% power at
alpha / ``--family`` (the level of its findings row) and how often it is significant there. The per-seed SRCCs are
written too, so another analysis needs no retraining.

    python scripts/aa_level.py [--seeds 16] [--vs B_Sig] [--average 1,2,4,8] [--dataset clive] [--json PATH]
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=16, help="seed sets (A/A pairs: seeds/2 disjoint, seeds*(seeds-1)/2 all)")
    ap.add_argument("--dataset", default="clive")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--batch", type=int, default=4, help="seed sets trained per batched call (memory)")
    ap.add_argument("--vs", default="", help="a head compared with the reference on the same seed sets (power)")
    ap.add_argument("--average", default="1", help="seed sets averaged per split: comma-separated group sizes")
    ap.add_argument("--family", type=int, default=7, help="claims in the compared head's family (alpha / m)")
    ap.add_argument("--json", default="")
    a = ap.parse_args()

    import torch
    from scipy import stats

    from nriqa_lib.analysis.design import designs
    from nriqa_lib.analysis.stats import mde_nadeau_bengio, split_cells_test
    from nriqa_lib.backbones.registry import pretrained
    from nriqa_lib.core.metrics import srcc
    from nriqa_lib.core.params import load_params
    from nriqa_lib.core.paths import (
        features_dir,
        load_split_files,
        load_splits,
        splits_path,
    )
    from nriqa_lib.features.sets import load_feature_set
    from nriqa_lib.stages.datasets import open_dataset
    from nriqa_lib.training.protocol import jobs_from_splits, mos_of
    from nriqa_lib.training.trainer import TrainConfig, train_heads

    p = load_params("params.yaml")
    torch.set_num_threads(p.features.threads)
    splits = load_splits(splits_path(a.dataset))
    design = designs(load_split_files([a.dataset]))[a.dataset]
    manifest = open_dataset(p, a.dataset)
    head = p.t2.reference
    J0 = splits["split"].nunique() if p.train.single_split_seeds <= 1 or splits["split"].nunique() > 1 else \
        p.train.single_split_seeds
    backbones = pretrained(p.features.backbones)
    t0 = time.time()
    heads = [head] + ([a.vs] if a.vs else [])
    srccs = {h: {} for h in heads}              # head -> backbone -> (seed sets, splits) test SRCC
    for bb in backbones:
        fs = load_feature_set(features_dir(a.dataset, bb))
        mos = mos_of(manifest, fs.images)
        # the seed sets' heads batched, --batch seed sets per call (the trainer trains each job's head
        # independently; 32 seed sets in one call held 15 GB)
        for h in heads:
            cfg = TrainConfig.from_params(p.train, h, p.t3, a.dataset)
            rows = []
            for s0 in range(0, a.seeds, a.batch):
                jobs = [j for s in range(s0, min(a.seeds, s0 + a.batch)) for j in jobs_from_splits(
                    fs.images, splits, seed_offset=1000 * p.train.seed + 7919 * (s + 1),
                    single_split_seeds=p.train.single_split_seeds)]
                test = train_heads(fs.features, mos, jobs, cfg).predictions
                test = test[test["part"] == "test"]
                per_job = {j: srcc(g["pred"].to_numpy(), g["mos"].to_numpy())
                           for j, g in test.groupby("job", sort=True)}
                rows.append(np.array([per_job[j] for j in range(len(jobs))]).reshape(-1, J0))
            srccs[h][bb] = np.concatenate(rows)
            print(f"{bb}/{h}: {a.seeds} seed sets x {srccs[h][bb].shape[1]} splits in {time.time() - t0:.0f}s",
                  flush=True)
    S = np.stack([srccs[head][b] for b in backbones])          # (backbones, seeds, splits)
    J = S.shape[2]

    def rates(pairs):
        nb, nb_one, paired = [], [], []
        for i, j in pairs:
            D = S[:, i, :] - S[:, j, :]                     # (backbones, splits)
            nb.append(split_cells_test(D, design.n_train, design.n_test)["p"] < a.alpha)
            nb_one += [split_cells_test(D[k][None], design.n_train, design.n_test)["p"] < a.alpha
                       for k in range(len(backbones))]
            d = D.mean(axis=0)
            paired.append(stats.ttest_1samp(d, 0.0).pvalue < a.alpha)
        return {"pairs": len(pairs), "nadeau_bengio_pooled_cells": float(np.mean(nb)),
                "nadeau_bengio_one_backbone": float(np.mean(nb_one)), "uncorrected_paired_t": float(np.mean(paired))}

    disjoint = [(2 * k, 2 * k + 1) for k in range(a.seeds // 2)]
    every = list(itertools.combinations(range(a.seeds), 2))
    seed_sd = float(np.sqrt(np.mean(S.std(axis=1, ddof=1) ** 2)))       # a split's SRCC over seeds, pooled
    # the variance of a pooled A/A difference over splits, measured, vs what the NB model assumes for J splits
    d_all = np.array([(S[:, i, :] - S[:, j, :]).mean(axis=0) for i, j in every])      # (pairs, splits)
    var_mean_measured = float(np.var(d_all.mean(axis=1), ddof=1))
    var_split = float(np.mean(d_all.var(axis=1, ddof=1)))
    var_mean_nb = var_split * (1 / J + design.n_test / design.n_train)
    averaging = {}
    for A in (int(x) for x in a.average.split(",")):
        G = a.seeds // A
        if G < 2:
            continue

        def grouped(X, G=G, A=A):               # (backbones, G, splits): each split's SRCC averaged over A seeds
            return X[:, :G * A, :].reshape(X.shape[0], G, A, X.shape[2]).mean(axis=2)
        GB = grouped(S)
        pair_rates = {}
        for kind, pairs in (("disjoint", [(2 * k, 2 * k + 1) for k in range(G // 2)]),
                            ("all", list(itertools.combinations(range(G), 2)))):
            rej = [split_cells_test(GB[:, i, :] - GB[:, j, :], design.n_train, design.n_test)["p"] < a.alpha
                   for i, j in pairs]
            pair_rates[kind] = {"pairs": len(pairs), "nadeau_bengio_pooled_cells": float(np.mean(rej))}
        entry = {"groups": G, "aa_level": pair_rates,
                 "seed_sd_of_split_srcc": float(np.sqrt(np.mean(GB.std(axis=1, ddof=1) ** 2)))}
        if a.vs:
            GV = grouped(np.stack([srccs[a.vs][b] for b in backbones]))
            tests = [split_cells_test(GV[:, g, :] - GB[:, g, :], design.n_train, design.n_test) for g in range(G)]
            sds = np.array([t["sd_diff"] for t in tests])
            lvl = a.alpha / a.family
            entry["comparison"] = {
                "what": f"{a.vs} - {head}, backbones' mean per split, each group its own study",
                "estimate_mean": float(np.mean([t["estimate"] for t in tests])),
                "sd_diff_rms": float(np.sqrt(np.mean(sds ** 2))),
                "mde80_at_alpha_over_family": mde_nadeau_bengio(float(np.sqrt(np.mean(sds ** 2))), J,
                                                                design.n_train, design.n_test, lvl),
                "significant_at_alpha_over_family": float(np.mean([t["p"] < lvl for t in tests])),
                "significant_at_alpha": float(np.mean([t["p"] < a.alpha for t in tests])),
                "alpha_over_family": lvl}
        averaging[str(A)] = entry
    out = {
        "what": "A/A test: head B vs head B with other training seeds, on the default study's features and splits",
        "dataset": a.dataset, "backbones": backbones, "head": head, "seed_sets": a.seeds, "splits": J,
        "n_train": design.n_train, "n_test": design.n_test, "alpha": a.alpha,
        "level_disjoint_pairs": rates(disjoint), "level_all_pairs": rates(every),
        "seed_sd_of_split_srcc": round(seed_sd, 5),
        "var_of_pooled_mean_diff": {"measured_over_pairs": var_mean_measured, "nadeau_bengio_model": var_mean_nb,
                                    "ratio_measured_to_model": var_mean_measured / var_mean_nb},
        "seed_averaging": averaging,
        "per_seed_srcc": {h: {b: np.round(v, 6).tolist() for b, v in d.items()} for h, d in srccs.items()},
        "machine": platform.processor() or platform.machine(), "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps(out, indent=1))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
