import numpy as np
import pytest
import torch

from nriqa_lib.training.trainer import HeadJob, TrainConfig, batch_order, init_head, iqa_loss, train_heads


def _data(N=240, D=32, seed=0):
    g = np.random.default_rng(seed)
    X = g.normal(size=(N, D)).astype(np.float32)
    y = (np.tanh(X[:, :4].sum(1) / 2) + 0.2 * g.normal(size=N)).astype(np.float32)
    return X, (y - y.min()) / (y.max() - y.min())


def _jobs(N, M, vary=False):
    jobs = []
    for s in range(M):
        p = np.random.default_rng(100 + s).permutation(N - (7 * s if vary else 0))
        n_tr = int(0.7 * len(p))
        jobs.append(HeadJob(p[:n_tr], p[n_tr:n_tr + 20], p[n_tr + 20:], seed=s))
    return jobs


def _reference(X, y, job, cfg, stop_epoch):
    """Independent single-head loop: the module head, torch.optim.Adam, the same init and batch order, in float64
    (train_heads' dtype)."""
    h = init_head(cfg, X.shape[1], job.seed, portable=True).double()
    opt = torch.optim.Adam(h.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    Xt, yt = torch.tensor(X, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    for ep, batches in enumerate(batch_order(len(job.train_idx), cfg.epochs, cfg.batch_size, job.seed)):
        for b in batches:
            ix = torch.as_tensor(job.train_idx[b])
            loss = iqa_loss(h(Xt[ix])[None], yt[ix][None], torch.ones(1, len(ix)), cfg.margin_weight,
                            cfg.margin_scale).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if ep == stop_epoch:
            break
    with torch.no_grad():
        return h(Xt).numpy()


@pytest.mark.parametrize("vary", [False, True], ids=["equal-sizes-fused-adam", "unequal-sizes-masked-adam"])
@pytest.mark.parametrize("head", ["B", "B_Gated"])
def test_batched_equals_each_head_alone(vary, head):
    X, y = _data()
    cfg = TrainConfig(head=head, hidden=24, epochs=4, batch_size=32, lr=3e-3, weight_decay=1e-4)
    jobs = _jobs(len(X), 5, vary)
    stacked = train_heads(X, y, jobs, cfg)
    for m in (0, 3):
        alone = train_heads(X, y, [jobs[m]], cfg)
        assert alone.best_epoch[0] == stacked.best_epoch[m]
        a = stacked.predictions.query("job == @m").sort_values(["part", "index"])["pred"].to_numpy()
        b = alone.predictions.sort_values(["part", "index"])["pred"].to_numpy()
        assert np.abs(a - b).max() < 1e-4
        ref = _reference(X, y, jobs[m], cfg, stacked.best_epoch[m])
        with torch.no_grad():
            mine = stacked.heads[m](torch.tensor(X, dtype=torch.float64)).numpy()
        assert np.abs(ref - mine).max() < 1e-4


def p1_margin_loss(y, yp, lambda_=0.25):
    """P1's util.margin_loss(y, yp) loop for loop: the library's transcription, which tests/training/test_p1_oracle.py checks
    bit for bit against P1's own function (fp32 and bf16)."""
    from nriqa_lib.training.finetune import p1_margin
    return p1_margin(y, yp, lambda_)


def test_iqa_loss_equals_p1_body_in_both_orders():
    pred = torch.tensor([0.2, 0.5, 0.1, 0.5], requires_grad=True)
    y = torch.tensor([0.0, 1.0, 0.5, 0.5])                # a tie in the targets, one in the predictions
    w = torch.ones(1, 4)
    for swapped in (False, True):
        mse = torch.nn.functional.mse_loss(pred, y)
        # what P1 meant, margin_loss(gt, pred); what P1 runs, margin_loss(pred, gt)
        want = mse + (p1_margin_loss(pred, y) if swapped else p1_margin_loss(y, pred))
        got = iqa_loss(pred[None], y[None], w, swapped=swapped)[0]
        assert got.item() == pytest.approx(want.item(), abs=1e-7)
        (g_got,) = torch.autograd.grad(got, pred)
        (g_want,) = torch.autograd.grad(want, pred)
        assert torch.allclose(g_got, g_want, atol=1e-7), (swapped, g_got, g_want)
    # padding (w = 0) changes nothing
    pad = iqa_loss(torch.cat([pred, torch.tensor([9.0])])[None], torch.cat([y, torch.tensor([-3.0])])[None],
                   torch.tensor([[1.0, 1, 1, 1, 0]]), swapped=True)
    want = torch.nn.functional.mse_loss(pred, y) + p1_margin_loss(pred, y)
    assert pad.item() == pytest.approx(want.item(), abs=1e-7)


def test_swapped_margin_reaches_the_predictions_through_their_std():
    """P1's swapped term: its gradient is small but not zero (it flows through std_pop(pred) only)."""
    pred = torch.tensor([[0.2, 0.5, 0.1]], requires_grad=True)
    y = torch.tensor([[0.5, 0.0, 0.9]])                   # every pair ordered against the prediction
    w = torch.ones(1, 3)
    (g_sw,) = torch.autograd.grad(iqa_loss(pred, y, w, swapped=True).sum(), pred)
    (g_mse,) = torch.autograd.grad(iqa_loss(pred, y, w, margin_weight=0).sum(), pred)
    extra = g_sw - g_mse
    assert extra.abs().max() > 1e-3
    # d/dpred of 0.25 * std_pop(pred) (all 3 pairs active, weight 2/(n(n-1)) * 3 pairs = 1)
    p = pred.detach()[0]
    want = 0.25 * (p - p.mean()) / (3 * p.std(unbiased=False))
    assert torch.allclose(extra[0], want, atol=1e-6)


def _p1_accumulation_reference(X, y, job, cfg, epochs):
    """P1's loop on one head: micro-batches of 2, loss / 6, backward, torch.optim.Adam step every 6 (float64)."""
    h = init_head(cfg, X.shape[1], job.seed, portable=True).double()
    opt = torch.optim.Adam(h.parameters(), lr=cfg.lr)
    Xt, yt = torch.tensor(X, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    acc = cfg.batch_size // cfg.micro_batch
    for batches in batch_order(len(job.train_idx), epochs, cfg.batch_size, job.seed):
        for b in batches:
            opt.zero_grad()
            for k in range(0, len(b) - cfg.micro_batch + 1, cfg.micro_batch):
                ix = torch.as_tensor(job.train_idx[b[k:k + cfg.micro_batch]])
                pred, gt = h(Xt[ix]), yt[ix]
                loss = torch.nn.functional.mse_loss(pred, gt) + p1_margin_loss(pred, gt)
                (loss / acc).backward()
            opt.step()
    with torch.no_grad():
        return h(Xt).numpy()


def test_faithful_profile_trains_p1_term_on_2x6_micro_batches():
    X, y = _data(N=150, D=16)
    jobs = _jobs(len(X), 2)
    cfg = TrainConfig(head="B_Sig", hidden=16, epochs=2, batch_size=12, lr=1e-3, micro_batch=2,
                      margin_loss_swapped=True, select_on="test")
    res = train_heads(X, y, jobs, cfg)
    for m in range(2):
        ref = _p1_accumulation_reference(X, y, jobs[m], cfg, res.best_epoch[m] + 1)
        with torch.no_grad():
            mine = res.heads[m](torch.tensor(X, dtype=torch.float64)).numpy()
        assert np.abs(ref - mine).max() < 1e-5
    # and it is not plain MSE training
    mse_only = train_heads(X, y, jobs, cfg.model_copy(update={"margin_weight": 0.0}))
    assert not np.allclose(mse_only.predictions["pred"], res.predictions["pred"], atol=1e-6)


def test_hard_selection_picks_its_epoch_with_hard_predictions():
    X, y = _data(N=300, D=16)
    jobs = _jobs(len(X), 3)
    cfg = TrainConfig(head="kway", hidden=16, epochs=8, lr=1e-2, candidates=("relu", "sigmoid", "tanh"), hard=True)
    r = train_heads(X, y, jobs, cfg)
    from scipy.stats import spearmanr
    for m in range(3):
        val = r.predictions.query("job == @m and part == 'val'")
        reported = spearmanr(val["pred"], val["mos"])[0]          # hard predictions of the selected epoch
        h = r.history.query("job == @m")
        assert h["val_srcc"].max() == pytest.approx(reported, abs=1e-6)
        assert h.loc[h["val_srcc"].idxmax(), "epoch"] == r.best_epoch[m]


def test_learns_deterministic_and_selects_on_val():
    X, y = _data(N=400)
    jobs = _jobs(len(X), 3)
    cfg = TrainConfig(head="B", hidden=32, epochs=12, batch_size=32, lr=3e-3)
    r1, r2 = train_heads(X, y, jobs, cfg), train_heads(X, y, jobs, cfg)
    assert r1.predictions["pred"].equals(r2.predictions["pred"])      # bit-identical on CPU
    from nriqa_lib.core.metrics import srcc
    te = r1.predictions.query("part == 'test'")
    assert np.median([srcc(g.pred, g.mos) for _, g in te.groupby("job")]) > 0.6
    h = r1.history
    for m in range(3):
        best = h[h.job == m]["val_srcc"].idxmax()
        assert h.loc[best, "epoch"] == r1.best_epoch[m]
    t = train_heads(X, y, jobs, TrainConfig(head="B", hidden=32, epochs=6, lr=3e-3, select_on="test"))
    assert "test_srcc" in t.history


def test_entropy_penalty_lowers_selection_entropy():
    X, y = _data()
    jobs = _jobs(len(X), 2)
    base = TrainConfig(head="kway", hidden=16, epochs=6, lr=1e-2, candidates=("relu", "sigmoid", "tanh"))
    r0 = train_heads(X, y, jobs, base)
    r1 = train_heads(X, y, jobs, base.model_copy(update={"entropy_weight": 5.0}))
    e0 = np.mean([h.entropy().item() for h in r0.heads])
    e1 = np.mean([h.entropy().item() for h in r1.heads])
    assert e1 < e0


def test_ridge_baseline_matches_closed_form():
    from nriqa_lib.training.trainer import ridge_predictions
    X, y = _data(N=200, D=16)
    jobs = _jobs(len(X), 2)
    pred, alphas = ridge_predictions(X, y, jobs, alphas=[3.0])
    j = jobs[1]
    Xd = X.astype(np.float64)
    mu, sd = Xd[j.train_idx].mean(0), Xd[j.train_idx].std(0) + 1e-8
    Z = (Xd - mu) / sd
    A = Z[j.train_idx]
    w = np.linalg.solve(A.T @ A + 3.0 * np.eye(16), A.T @ (y[j.train_idx] - y[j.train_idx].mean()))
    want = Z[j.test_idx] @ w + y[j.train_idx].mean()
    got = pred.query("job == 1 and part == 'test'").sort_values("index")
    order = np.argsort(j.test_idx)
    assert np.allclose(got["pred"].to_numpy(), want[order], atol=1e-8)
    assert alphas == [3.0, 3.0]
