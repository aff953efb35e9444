import numpy as np
import pytest
import torch

from nriqa_lib.train import HeadJob, TrainConfig, batch_order, init_head, iqa_loss, train_heads


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
    """Independent single-head loop: the module head, torch.optim.Adam, the same init and batch order."""
    h = init_head(cfg, X.shape[1], job.seed)
    opt = torch.optim.Adam(h.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    Xt, yt = torch.tensor(X), torch.tensor(y)
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
            mine = stacked.heads[m](torch.tensor(X)).numpy()
        assert np.abs(ref - mine).max() < 1e-4


def test_iqa_loss_by_hand():
    pred = torch.tensor([[0.2, 0.5, 0.1]])
    y = torch.tensor([[0.0, 1.0, 0.5]])
    w = torch.ones(1, 3)
    mse = ((pred - y) ** 2).mean()
    m = 0.25 * y.std()                                  # unbiased std of the batch
    hinge = []
    for i in range(3):
        for j in range(3):
            if y[0, i] != y[0, j]:
                s = torch.sign(y[0, i] - y[0, j])
                hinge.append(torch.relu(-s * (pred[0, i] - pred[0, j]) + m))
    want = mse + torch.stack(hinge).mean()
    assert iqa_loss(pred, y, w).item() == pytest.approx(want.item(), abs=1e-7)
    # padding (w = 0) does not change the value
    pad = iqa_loss(torch.cat([pred, torch.tensor([[9.0]])], 1), torch.cat([y, torch.tensor([[-3.0]])], 1),
                   torch.tensor([[1.0, 1, 1, 0]]))
    assert pad.item() == pytest.approx(want.item(), abs=1e-7)


def test_swapped_margin_term_gives_no_gradient():
    pred = torch.tensor([[0.2, 0.5, 0.1]], requires_grad=True)
    y = torch.tensor([[0.0, 1.0, 0.5]])
    w = torch.ones(1, 3)
    (g_swapped,) = torch.autograd.grad(iqa_loss(pred, y, w, margin_weight=1, swapped=True).sum(), pred)
    (g_mse,) = torch.autograd.grad(iqa_loss(pred, y, w, margin_weight=0).sum(), pred)
    (g_correct,) = torch.autograd.grad(iqa_loss(pred, y, w, margin_weight=1).sum(), pred)
    assert torch.allclose(g_swapped, g_mse)
    assert not torch.allclose(g_correct, g_mse)


def test_learns_deterministic_and_selects_on_val():
    X, y = _data(N=400)
    jobs = _jobs(len(X), 3)
    cfg = TrainConfig(head="B", hidden=32, epochs=12, batch_size=32, lr=3e-3)
    r1, r2 = train_heads(X, y, jobs, cfg), train_heads(X, y, jobs, cfg)
    assert r1.predictions["pred"].equals(r2.predictions["pred"])      # bit-identical on CPU
    from nriqa_lib.metrics import srcc
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
    import dataclasses
    r0 = train_heads(X, y, jobs, base)
    r1 = train_heads(X, y, jobs, dataclasses.replace(base, entropy_weight=5.0))
    e0 = np.mean([h.entropy().item() for h in r0.heads])
    e1 = np.mean([h.entropy().item() for h in r1.heads])
    assert e1 < e0


def test_ridge_baseline_matches_closed_form():
    from nriqa_lib.train import ridge_predictions
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
