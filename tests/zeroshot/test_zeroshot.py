"""MA-CLIP / CLIP-IQA checked against an independent re-implementation written from STUDY_SPEC.md section 3
(plain numpy/torch and open_clip's own modules; no nriqa_lib.zeroshot function is called for the reference)."""
import copy
import json
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nriqa_lib.features import views as zviews
from nriqa_lib.zeroshot import clip as zclip
from nriqa_lib.zeroshot import scores as zscores
from nriqa_lib.backbones.models import create_backbone
from nriqa_lib.backbones.weights import WeightsError

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
PAIRS = [("Good image", "bad image"), ("Sharp image", "blurry image"), ("sharp edges", "blurry edges"),
         ("High resolution image", "low resolution image"), ("Noise-free image", "noisy image")]


def _image(w, h, seed=0):
    g = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
    return Image.fromarray(np.clip(base + 60 * g.normal(size=(h, w, 3)), 0, 255).astype(np.uint8))


def _reference(model, tok, img, lam=0.5, b_sim=1.0, b_mag=0.6, alpha=1.0):
    x = torch.tensor(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    H, W = x.shape[1:]
    views = [x[:, t:t + 224, l:l + 224] for t in range(0, H - 223, 128) for l in range(0, W - 223, 128)]
    views.append(F.interpolate(x[None], size=(224, 224), mode="bilinear", align_corners=False)[0])
    m = copy.deepcopy(model)
    with torch.no_grad():                                  # P2: positional embedding dropped entirely
        pe = m.visual.attnpool.positional_embedding if hasattr(m.visual, "attnpool") else m.visual.positional_embedding
        pe.zero_()
        f = m.encode_image(torch.stack(views)).double().numpy()
        t = F.normalize(m.encode_text(tok([s for p in PAIRS for s in p])).double(), dim=-1).numpy().reshape(5, 2, -1)
    s = float(model.logit_scale.exp())
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    qs = np.zeros(len(f))
    for k in range(5):
        lp, ln = s * fn @ t[k, 0], s * fn @ t[k, 1]
        qs += np.exp(lp) / (np.exp(lp) + np.exp(ln)) / 5
    qm = np.zeros(len(f))
    for v in range(len(f)):
        a = np.abs(f[v])
        xx = a / (np.std(a, ddof=1) + 1e-6)
        qm[v] = np.mean(np.log(1 + xx) if lam == 0 else ((xx + 1) ** lam - 1) / lam)
    d = qs - qm
    e1, e2 = np.exp(b_sim + alpha * d), np.exp(b_mag - alpha * d)
    w = e1 / (e1 + e2)
    return {"n_views": len(views), "q_sim": qs, "q_mag": qm, "w_sim": w, "score": np.mean(w * qs + (1 - w) * qm)}


def _library(model, tok, img, tmp_path, cfg=zscores.MAClipConfig()):
    p = tmp_path / "img.png"
    img.save(p)
    v = zviews.make_views(zclip.image_tensor(p, MEAN, STD))
    with torch.no_grad():
        f = zclip.encode_image(model, v, "drop").numpy()
    text = zclip.text_features(model, tok, PAIRS).numpy()
    return zscores.maclip_views(f, text, float(model.logit_scale.exp()), cfg), len(v)


@pytest.mark.parametrize("size,views", [((500, 500), 10), ((512, 384), 7), ((1024, 768), 36)])
def test_maclip_matches_independent_reimplementation(tiny_clip, size, views, tmp_path):
    model, tok, _ = tiny_clip
    img = _image(*size)
    ref = _reference(model, tok, img)
    got, n = _library(model, tok, img, tmp_path)
    assert n == ref["n_views"] == views
    for k in ("q_sim", "q_mag", "w_sim"):
        assert np.abs(got[k] - ref[k]).max() < 1e-6, k
    assert abs(got["score"] - ref["score"]) < 1e-6


def test_lambda_zero_is_log1p_and_constants_are_parameters(tiny_clip, tmp_path):
    model, tok, _ = tiny_clip
    img = _image(500, 500, 1)
    ref = _reference(model, tok, img, lam=0.0, b_sim=0.3, b_mag=0.9, alpha=2.5)
    got, _ = _library(model, tok, img, tmp_path, zscores.MAClipConfig(lam=0.0, b_sim=0.3, b_mag=0.9, alpha=2.5))
    assert abs(got["score"] - ref["score"]) < 1e-6
    f = np.random.default_rng(0).normal(size=(3, 50))
    a = np.abs(f)
    x = a / (a.std(1, ddof=1, keepdims=True) + 1e-6)
    assert np.allclose(zscores.q_mag(f, 0.0), np.log1p(x).mean(1))


def test_q_mag_invariant_to_rescaling_f():
    f = np.random.default_rng(1).normal(size=(20, 64))
    for c in (0.1, 0.5, 3.0, 1e3):      # exact up to the 1e-6 in the denominator
        assert np.allclose(zscores.q_mag(c * f), zscores.q_mag(f), rtol=1e-4)
    assert not np.allclose(np.linalg.norm(3 * f, axis=1), np.linalg.norm(f, axis=1))   # unlike the L2 norm


def test_view_grid_rule_and_small_images():
    assert len(zviews.view_grid(500, 500)) == 9 and len(zviews.view_grid(768, 1024)) == 35
    assert zviews.view_grid(224, 224) == [(0, 0)]
    assert zviews.view_grid(500, 300)[:3] == [(0, 0), (128, 0), (256, 0)]
    with pytest.raises(ValueError, match=r"image 200x150 is smaller than the 224x224 view"):
        zviews.view_grid(150, 200)


def test_positional_modes(tiny_clip):
    model, _, _ = tiny_clip
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(zclip.encode_image(model, x, "keep"), model.encode_image(x), atol=1e-6)
        assert torch.allclose(zclip.encode_image(model, x, "interpolate"), model.encode_image(x), atol=1e-6)
        big = zclip.encode_image(model, torch.randn(1, 3, 320, 448), "interpolate")
        assert big.shape == (1, model.visual.output_dim) and torch.isfinite(big).all()
    with pytest.raises(ValueError, match="positional embedding is for a 7x7 grid"):
        zclip.encode_image(model, torch.randn(1, 3, 320, 448), "keep")


def test_ablation_grid_from_cached_views(tiny_clip, tmp_path):
    model, tok, _ = tiny_clip
    from conftest import write_manifest
    import pandas as pd
    from nriqa_lib.data.manifest import load_dataset
    (tmp_path / "r").mkdir()
    for i in range(3):
        _image(300 + 40 * i, 260, i).save(tmp_path / "r" / f"{i}.png")
    write_manifest(tmp_path / "m", "toy", pd.DataFrame({"image": [f"{i}.png" for i in range(3)], "mos": [0.1, 0.5, 0.9],
                                                       "group": ["a", "b", "c"]}))
    man = load_dataset("toy", {"toy": str(tmp_path / "r")}, manifest_dir=tmp_path / "m")
    cache = tmp_path / "views"
    v = zclip.clip_view_embeddings(model, man, MEAN, STD, cache=cache, progress=False)
    assert len(v) == 3 and v.image(0).shape[0] == 1 + len(zviews.view_grid(260, 300))
    v2 = zclip.clip_view_embeddings(None, man, MEAN, STD, cache=cache, progress=False)    # cache: no model needed
    assert np.array_equal(v.f, v2.f)
    # every setting that changes the views is in the key: pre_resize and the positional mode are not reused
    big = zclip.clip_view_embeddings(model, man, MEAN, STD, pre_resize=(448, 448), cache=cache, progress=False)
    assert big.image(0).shape[0] == 1 + len(zviews.view_grid(448, 448)) and big.meta["pre_resize"] == [448, 448]
    kept = zclip.clip_view_embeddings(model, man, MEAN, STD, pos="interpolate", cache=cache, progress=False)
    assert kept.meta["pos"] == "interpolate" and not np.allclose(kept.f, v.f)
    assert len(list(cache.glob("*.npz"))) == 3
    # an entry whose stored meta differs from what is asked is recomputed, never used
    entry = next(f for f in cache.glob("*.npz") if json.loads(str(np.load(f)["meta"]))["pos"] == "drop"
                 and json.loads(str(np.load(f)["meta"]))["pre_resize"] is None)
    z = dict(np.load(entry))
    np.savez(entry, f=z["f"] + 1, offsets=z["offsets"], meta=json.dumps({"pos": "keep"}))
    again = zclip.clip_view_embeddings(model, man, MEAN, STD, cache=cache, progress=False)
    assert np.array_equal(again.f, v.f)
    grid = zscores.ablation_grid()
    assert {"MA-CLIP (P2)", "Q_sim only (CLIP-IQA views)", "Q_mag only", "fixed 0.5/0.5", "Q_mag -> L2 norm",
            "fusion on image averages", "lambda=0", "lambda=1", "b_sim-b_mag=0", "alpha=2"} <= set(grid)
    text = zclip.text_features(model, tok).numpy()
    st = zscores.score_table(v, text, float(model.logit_scale.exp()), grid)
    assert len(st) == 3 * len(grid)
    r = zscores.maclip_views(v.image(1), text, float(model.logit_scale.exp()))
    assert st.query("index == 1 and config == 'MA-CLIP (P2)'")["score"].item() == pytest.approx(r["score"])
    mag = st.query("index == 1 and config == 'Q_mag only'")["score"].item()
    assert mag == pytest.approx(zscores.q_mag(v.image(1)).mean())


def test_openai_rn50_absent_offline_fails_fast():
    t = time.time()
    with pytest.raises(WeightsError, match="clip_rn50.*not found offline"):
        create_backbone("clip_rn50")
    assert time.time() - t < 10


def test_magnitude_cue_on_any_features():
    f = np.abs(np.random.default_rng(2).normal(size=(5, 1280)))
    assert np.allclose(zscores.magnitude_scores(f), zscores.q_mag(f, 0.5))
    assert np.allclose(zscores.l2_norm_scores(f), np.sqrt((f ** 2).sum(1)))


def test_clipiqa_drops_the_positional_embedding(tiny_clip, tmp_path):
    """CLIP-IQA baseline = whole image, one pass, positional embedding dropped (pyiqa pos_embedding=False)."""
    model, tok, _ = tiny_clip
    from conftest import write_manifest
    import pandas as pd
    from nriqa_lib.data.manifest import load_dataset
    (tmp_path / "r").mkdir()
    for i in range(3):
        _image(224, 224, 10 + i).save(tmp_path / "r" / f"{i}.png")
    write_manifest(tmp_path / "m", "toy", pd.DataFrame({"image": [f"{i}.png" for i in range(3)], "mos": [0.1, 0.5, 0.9],
                                                       "group": ["a", "b", "c"]}))
    man = load_dataset("toy", {"toy": str(tmp_path / "r")}, manifest_dir=tmp_path / "m")
    got = zclip.clipiqa_scores(model, tok, man, MEAN, STD, progress=False)
    m = copy.deepcopy(model)
    with torch.no_grad():
        pe = m.visual.attnpool.positional_embedding if hasattr(m.visual, "attnpool") else m.visual.positional_embedding
        keep = pe.clone()
        pe.zero_()
        t = F.normalize(m.encode_text(tok([s for p in PAIRS for s in p])).double(), dim=-1).numpy().reshape(5, 2, -1)
        s = float(m.logit_scale.exp())

        def score(i):
            x = torch.tensor(np.asarray(Image.open(tmp_path / "r" / f"{i}.png"), dtype=np.float32) / 255).permute(2, 0, 1)
            x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
            f = m.encode_image(x[None]).double().numpy()[0]
            f = f / np.linalg.norm(f)
            return np.mean([np.exp(s * f @ t[k, 0]) / (np.exp(s * f @ t[k, 0]) + np.exp(s * f @ t[k, 1])) for k in range(5)])

        want = np.array([score(i) for i in range(3)])
        pe.copy_(keep)
        with_pe = np.array([score(i) for i in range(3)])
    assert np.abs(got - want).max() < 1e-6
    assert np.abs(got - with_pe).max() > 1e-6          # the positional embedding matters for this model


def test_views_and_clipiqa_resume_a_killed_run_chunk_by_chunk(tiny_clip, tmp_path, monkeypatch):
    """Issue 22 item 10: a run killed after its first chunk keeps that chunk; the rerun encodes only the missing
    images and gives the uninterrupted run's values to the last bit (views and CLIP-IQA)."""
    model, tok, _ = tiny_clip
    from conftest import write_manifest
    import pandas as pd
    from nriqa_lib.data.manifest import load_dataset
    (tmp_path / "r").mkdir()
    for i in range(5):
        _image(240 + 16 * i, 230, 20 + i).save(tmp_path / "r" / f"{i}.png")
    write_manifest(tmp_path / "m", "toy", pd.DataFrame({"image": [f"{i}.png" for i in range(5)],
                                                       "mos": [0.1, 0.3, 0.5, 0.7, 0.9], "group": list("abcde")}))
    man = load_dataset("toy", {"toy": str(tmp_path / "r")}, manifest_dir=tmp_path / "m")
    whole = zclip.clip_view_embeddings(model, man, MEAN, STD, cache=None, progress=False)
    whole_q = zclip.clipiqa_scores(model, tok, man, MEAN, STD, progress=False)
    cache = tmp_path / "c"
    for fn in (lambda mc: zclip.clip_view_embeddings(model, man, MEAN, STD, cache=cache, progress=False, chunk_size=2,
                                                  max_chunks=mc),
               lambda mc: zclip.clipiqa_scores(model, tok, man, MEAN, STD, progress=False, cache=cache, chunk_size=2,
                                            max_chunks=mc)):
        with pytest.raises(InterruptedError):
            fn(1)
        seen = []
        real = zclip.image_tensor
        monkeypatch.setattr(zclip, "image_tensor", lambda p, *a, **k: (seen.append(p.name), real(p, *a, **k))[1])
        got = fn(None)
        monkeypatch.setattr(zclip, "image_tensor", real)
        assert seen == ["2.png", "3.png", "4.png"]                          # chunk 0 (images 0, 1) was kept
        if isinstance(got, np.ndarray):
            assert np.array_equal(got, whole_q)
        else:
            assert np.array_equal(got.f, whole.f) and np.array_equal(got.offsets, whole.offsets)
    assert len(list(cache.glob("views_*.npz"))) == 1 and not [d for d in cache.glob("views_*") if d.is_dir()]
