"""The paper profile against P1's official code (../shared/reference/NR_IQA_AGM, MIT), imported as the oracle:
its modules are imported, never copied or edited; what they import but these tests do not need (cv2, wandb) is
stubbed. Skipped without ../shared.

- rows and partitions: P1's ``build_datasets`` on a stand-in ``Data/*.mat`` made from the CLIVE table;
- P1's loop (accumulation across epochs, gradients zeroed at each epoch start, drop_last) on frozen features;
- the SigLIP2 squash against P1's dataset class + the SigLIP processor;
- P1's dtypes in the ``p1`` regime;
- end to end: P1's training loop and its ``evaluate`` on a tiny SiglipModel vs our ``finetune_split`` (regime p1).
"""
from __future__ import annotations

import random
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
P1_DIR = REPO.parent / "shared" / "reference" / "NR_IQA_AGM"
CLIVE = REPO.parent / "shared" / "datasets" / "clive"
pytestmark = [pytest.mark.xdist_group("p1_oracle"),      # one worker imports P1's modules (scripts/test.sh)
              pytest.mark.skipif(not (P1_DIR / "train.py").is_file() or not (CLIVE / "clive.csv").is_file(),
                                 reason="needs ../shared (P1's official code and CLIVE)")]


@pytest.fixture(scope="module")
def p1():
    """P1's modules (train, dataset, models, util), imported with cv2/wandb stubbed; P1's seed.py seeds the global
    RNGs on import, so their states are restored afterwards."""
    import accelerate  # noqa: F401  (before the stubs: it probes whether wandb is installed)
    for name in ("cv2", "wandb"):
        sys.modules.setdefault(name, types.ModuleType(name))
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    sys.path.insert(0, str(P1_DIR))
    try:
        import dataset as p1_dataset
        import models as p1_models
        import train as p1_train
        import util as p1_util
    finally:
        sys.path.remove(str(P1_DIR))
        random.setstate(states[0]), np.random.set_state(states[1]), torch.set_rng_state(states[2])
    return types.SimpleNamespace(train=p1_train, dataset=p1_dataset, models=p1_models, util=p1_util)


def _stand_in_release(root: Path, table: pd.DataFrame, images: dict[str, Path] | None = None) -> Path:
    """ChallengeDB_release as P1 reads it: Data/AllImages_release.mat (an N x 1 cell of names), AllMOS_release and
    AllStdDev_release (1 x N), Images/<name>: the real image where ``images`` gives one, else a 2 x 2 stand-in."""
    from PIL import Image
    from scipy.io import savemat
    (root / "Data").mkdir(parents=True)
    (root / "Images").mkdir()
    names = np.empty((len(table), 1), dtype=object)
    for i, n in enumerate(table["original_name"]):
        names[i, 0] = np.array([n])
    savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": names})
    savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": table["mos_raw"].to_numpy()[None, :]})
    savemat(root / "Data" / "AllStdDev_release.mat", {"AllStdDev_release": np.ones((1, len(table)))})
    for n in table["original_name"]:
        src = (images or {}).get(n)
        im = Image.open(src).convert("RGB") if src else Image.new("RGB", (2, 2))
        im.save(root / "Images" / n, format="BMP" if n.lower().endswith(".bmp") else "JPEG", quality=95)
    return root


def test_p1_build_datasets_gives_the_paper_profile_partitions(p1, tmp_path):
    """Item 3: clive_p1 (P1's 1169 rows, release order) + scheme p1 = P1's own build_datasets, index for index."""
    from nriqa_lib.data.manifest import read_manifest
    from nriqa_lib.data.splits import make_splits
    man = read_manifest(REPO / "data_manifests" / "clive_p1.csv")
    assert len(man) == 1169 and list(man["original_name"][:7]) == [f"t{i}.bmp" for i in range(1, 8)]
    root = _stand_in_release(tmp_path / "ChallengeDB_release", man)
    ours = make_splits(man, "p1")
    for k, seed in enumerate((8, 19, 25)):
        train, test = p1.train.build_datasets("CLIVE", {"CLIVE": str(root)}, seed)
        assert (len(train), len(test)) == (935, 234)
        names = np.asarray(train.dataset.data["image_name"].map(lambda s: Path(s).name))
        assert list(names) == list(man["original_name"])          # P1's rows in P1's order
        got = ours[ours["split"] == k].set_index("image")["part"]
        assert set(man["image"].to_numpy()[train.indices]) == set(got[got == "train"].index)
        assert set(man["image"].to_numpy()[test.indices]) == set(got[got == "test"].index)


def test_p1_loop_on_frozen_features_equals_p1_head_and_loss(p1):
    """Item 4: train_heads with accumulation p1 (41 train images: 20 micro-batches of 2, one image dropped; steps at
    micro-steps 6, 12, 18, then 24 (a window of 4 across the epoch boundary), 30, 36; the rest zeroed) equals P1's
    loop driving P1's MLP3_Gated and margin_loss with the same micro-batch order, after 2 epochs."""
    from nriqa_lib.training.heads import HeadJob, TrainConfig, batch_order, init_head, p1_windows, train_heads
    rng = np.random.default_rng(3)
    d, n_train = 16, 41
    X = rng.normal(size=(n_train + 4, d)).astype(np.float32)
    y = rng.uniform(0.1, 0.9, size=n_train + 4).astype(np.float32)
    job = HeadJob(np.arange(n_train), np.zeros(0, np.int64), np.arange(n_train, n_train + 4), seed=5)
    cfg = TrainConfig(head="B_Gated", epochs=2, lr=1e-3, batch_size=12, micro_batch=2, accumulation="p1",
                      margin_loss_swapped=True, select_on="test", report_last=True)
    windows = p1_windows(n_train, 2, 2, 6, job.seed)
    assert [len(w) for w in windows[0]] == [12, 12, 12] and [len(w) for w in windows[1]] == [8, 12, 12]
    res = train_heads(X, y, [job], cfg)
    ours = res.last_predictions.sort_values("index")["pred"].to_numpy()

    head = init_head(cfg, d, job.seed)
    mlp = p1.models.MLP3_Gated(input_dim=d, hidden=512)
    _copy_head(head, mlp)
    opt = torch.optim.Adam(mlp.parameters(), lr=cfg.lr, weight_decay=0.0)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    global_step = 0
    for (perm,) in batch_order(n_train, 2, n_train, job.seed):          # P1's loader order = ours
        global_step = _p1_epoch(p1, opt, perm, lambda b: mlp(Xt[b]), yt, global_step)
    with torch.no_grad():
        theirs = mlp(Xt).squeeze(1).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


def _p1_epoch(p1, optimizer, order, score_of, target, global_step: int) -> int:
    """One epoch of P1's loop (train.py l.382-421): zero_grad at the epoch start; micro-batches of 2 in ``order``
    (drop_last); each (MSE + P1's margin_loss(score, gt)) / 6, backward; a step every 6 micro-steps of a counter
    that runs on across epochs. Returns the counter."""
    optimizer.zero_grad()
    for i in range(0, len(order) - 1, 2):
        b = torch.as_tensor(order[i:i + 2])
        score = score_of(b).squeeze(1)
        loss = (torch.nn.functional.mse_loss(score, target[b]) + p1.util.margin_loss(score, target[b])) / 6
        loss.backward()
        global_step += 1
        if global_step % 6 == 0:
            optimizer.step()
            optimizer.zero_grad()
    return global_step


def _copy_head(head, mlp) -> None:
    """Our head's weights into P1's (the same initial weights on both sides): B_Gated -> MLP3_Gated, B ->
    mlp_3_layer (Linear-ReLU-Linear-ReLU-Linear)."""
    if hasattr(mlp, "adapter"):
        m = {"adapter.0.weight": "linears.0.weight", "adapter.0.bias": "linears.0.bias",
             "adapter.2.weight": "linears.1.weight", "adapter.2.bias": "linears.1.bias",
             "adapter.4.weight": "out.weight", "adapter.4.bias": "out.bias"}
    else:
        m = {"fc1.weight": "linears.0.weight", "fc1.bias": "linears.0.bias", "fc2.weight": "linears.1.weight",
             "fc2.bias": "linears.1.bias", "fc3.weight": "out.weight", "fc3.bias": "out.bias",
             "act1.g": "acts.0.g", "act1.sig_act.alpha": "acts.0.sig.alpha", "act1.sig_act.beta": "acts.0.sig.beta",
             "act1.lrelu_act.a": "acts.0.prelu.weight", "act2.a": "acts.1.weight"}
    ours = head.state_dict()
    assert set(m) == set(mlp.state_dict())
    mlp.load_state_dict({k: ours[v].clone() for k, v in m.items()})


def test_siglip2_squash_is_p1s_preprocessing(p1, tmp_path):
    """Item 7: siglip2_so400m_p16_512_hf's squash (PIL bicubic to 512, then 0.5/0.5) equals P1's CLIVE_inmemory
    (PIL's default resize) + the SigLIP processor (the release's preprocessor_config: bilinear 512, 1/255, 0.5/0.5;
    slow and fast image processors), on real CLIVE images (BMP -> lossless WebP here, so pixel-identical)."""
    from transformers import SiglipImageProcessor
    from nriqa_lib.backbones import REGISTRY
    from nriqa_lib.backbones.models import transformers_preprocess
    from nriqa_lib.features import build_transform, load_image
    table = pd.read_csv(CLIVE / "clive.csv")
    table = table[table["original_name"].isin(["100.bmp", "1000.JPG", "1024.JPG", "t3.bmp"])].reset_index(drop=True)
    table["mos_raw"] = table["mos"]
    srcs = dict(zip(table["original_name"], (CLIVE / p for p in table["image"])))
    jpgs = [n for n in srcs if n.endswith(".JPG")]
    root = _stand_in_release(tmp_path / "rel", table, {n: s for n, s in srcs.items() if n not in jpgs})
    for n in jpgs:                                   # the released JPEG bytes, not a re-encoding
        (root / "Images" / n).write_bytes(srcs[n].read_bytes())
    ds = p1.dataset.CLIVE_inmemory(path_to_db=str(root))
    kw = dict(do_resize=True, size={"height": 512, "width": 512}, resample=2, do_rescale=True,
              rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processors = [SiglipImageProcessor(**kw)]
    try:
        from transformers import SiglipImageProcessorFast
        processors.append(SiglipImageProcessorFast(**kw))
    except ImportError:
        pass
    pp = transformers_preprocess(REGISTRY["siglip2_so400m_p16_512_hf"], {}, 512)
    assert pp.interpolation == "bicubic"
    tf = build_transform(pp, "squash")
    batch = torch.stack([ds[i]["image"] for i in range(len(ds))])
    ours = torch.stack([tf(load_image(srcs[n])) for n in table["original_name"]])
    for proc in processors:
        theirs = proc(images=batch, return_tensors="pt")["pixel_values"]
        assert theirs.shape == ours.shape
        assert (theirs - ours).abs().max() < 1e-5, type(proc).__name__
    # the checkpoint's own filter (bilinear) is not P1's path: the test can tell them apart
    bil = build_transform(transformers_preprocess(_bilinear_spec(), {}, 512), "squash")
    assert (torch.stack([bil(load_image(srcs[n])) for n in table["original_name"]]) - theirs).abs().max() > 1e-2


def _bilinear_spec():
    from dataclasses import replace
    from nriqa_lib.backbones import REGISTRY
    return replace(REGISTRY["siglip2_so400m_p16_512_hf"], interpolation=None)


def test_p1_regime_has_p1s_dtypes(p1):
    """Item 1: in bf16 the p1 regime gives every tensor P1's dtype: backbone bf16, adapters fp32 (P1's get_peft_model
    upcasts them), head bf16 except its parametric activations (P1 l.294-298)."""
    from peft import LoraConfig, get_peft_model
    from nriqa_lib.training.finetune import FinetuneConfig, _groups, check_bf16
    from nriqa_lib.training.heads import TrainConfig, init_head
    vis_ours, full_p1 = _tiny_siglip()[1], _tiny_siglip()[0]
    head = init_head(TrainConfig(head="B_Gated"), 32, 0)
    feats, groups = _groups(vis_ours, head, FinetuneConfig(mode="p1", precision="bf16"))
    full_p1 = get_peft_model(full_p1.to(torch.bfloat16), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05,
                                                                     target_modules=r".*\.(q_proj|k_proj)$"))
    theirs = {n.split("vision_model.", 1)[1].replace("base_layer.", ""): p.dtype
              for n, p in full_p1.named_parameters() if "vision_model." in n}
    mine = {n.split(".", 1)[1].replace("base_layer.", ""): p.dtype for n, p in feats.named_parameters()}
    assert mine == theirs
    mlp = p1.models.MLP3_Gated(input_dim=32).to(torch.bfloat16)
    for m in mlp.modules():
        if isinstance(m, (p1.models.ParamSigmoid2, p1.models.ParamLeakyReLU2)):
            m.float()
    names = {"fc1.weight": "linears.0.weight", "act1.g": "acts.0.g", "act1.sig_act.alpha": "acts.0.sig.alpha",
             "act1.lrelu_act.a": "acts.0.prelu.weight", "act2.a": "acts.1.weight", "fc3.bias": "out.bias"}
    hd = dict(head.named_parameters())
    assert {k: hd[v].dtype for k, v in names.items()} == {k: dict(mlp.named_parameters())[k].dtype for k in names}
    # one Adam group over everything at train.lr, every weight trainable (P1 l.300-319)
    assert len(groups) == 1 and all(p.requires_grad for p in groups[0]["params"])
    assert len(groups[0]["params"]) == len(list(feats.parameters())) + len(list(head.parameters()))
    check_bf16(torch.device("cpu"))                                      # CPU bf16: allowed


def test_p1_regime_trains_in_bf16_on_cpu():
    """Item 1: the bf16 p1 regime runs end to end on CPU (bf16 weights, fp32 adapters and parametric activations,
    bf16 autocast): finite predictions, and the weights it trained are still in P1's dtypes."""
    from nriqa_lib.training.finetune import FinetuneConfig, finetune_split
    from nriqa_lib.training.heads import HeadJob, TrainConfig
    man = pd.read_csv(REPO / "data_manifests" / "clive_p1.csv").iloc[:12]
    bb = _tiny_siglip()[1]
    job = HeadJob(np.arange(8), np.zeros(0, np.int64), np.arange(8, 12), seed=0, tags={"split": 0})
    tcfg = TrainConfig(head="B_Gated", epochs=1, lr=1e-4, batch_size=4, micro_batch=2, accumulation="p1",
                       margin_loss_swapped=True, select_on="test", report_last=True)
    cfg = FinetuneConfig(mode="p1", epochs=1, lr_head=1e-4, micro_batch=2, batch_size=4, precision="bf16",
                         margin_loss_swapped=True)
    res = finetune_split(lambda: _tiny_siglip()[1], bb.preprocess, [CLIVE / p for p in man["image"]],
                         man["mos"].to_numpy(), job, cfg, tcfg, amp="off")     # amp is ignored: p1 is bf16 here
    assert np.isfinite(res.last_predictions["pred"]).all() and res.last_predictions["pred"].nunique() > 1


def test_bf16_is_refused_where_the_device_has_none(monkeypatch):
    from nriqa_lib.training.finetune import check_bf16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(RuntimeError, match="no bf16 support"):
        check_bf16(torch.device("cuda"))


def _tiny_siglip(seed: int = 0):
    """A small transformers SiglipModel whose get_image_features returns the pooled tensor, as the transformers 4.x
    P1 was written for (5.x returns an output object); and our Backbone over its vision tower (same weights)."""
    from transformers import SiglipConfig, SiglipModel
    from nriqa_lib.backbones import BackboneSpec, Preprocess
    from nriqa_lib.backbones.models import Backbone

    class P1Siglip(SiglipModel):
        def get_image_features(self, pixel_values=None, **kw):
            out = super().get_image_features(pixel_values=pixel_values, **kw)
            return out if torch.is_tensor(out) else out.pooler_output

    cfg = SiglipConfig(text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, vocab_size=64, max_position_embeddings=8,
                                        bos_token_id=1, eos_token_id=2, pad_token_id=0),
                       vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                          num_attention_heads=2, image_size=32, patch_size=8))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        full = P1Siglip(cfg)
        vis = P1Siglip(cfg)
    vis.load_state_dict(full.state_dict())
    spec = BackboneSpec("tiny_siglip", "transformers", "tiny", None, "SigLIP2", interpolation="bicubic")
    pp = Preprocess(size=32, mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="bicubic", crop_pct=1.0)
    bb = Backbone(spec, vis.vision_model, pp, 32, "random(tiny)", "pooled", None)
    return full, bb


@pytest.mark.parametrize("head_name,p1_head", [("B_Gated", "MLP3_Gated"), ("B", "mlp_3_layer")])
def test_end_to_end_p1_training_loop_equals_finetune_p1(p1, tmp_path, head_name, p1_head):
    """Item 8, the proof that the paper profile is P1's code: on a tiny SiglipModel and 20 CLIVE images, P1's
    training loop (its MLP3_Gated, margin_loss, Adam over model + head, zero_grad at each epoch start, a step every
    6 micro-batches of 2 counted across epochs) and P1's own ``evaluate`` vs our finetune_split with regime p1,
    from the same initial weights (backbone, LoRA adapters, head) and data order, 2 epochs, fp32 on CPU: the
    predictions after each epoch agree to 1e-5 and the per-epoch test SRCC is the same number. Items 1, 2, 4, 5:
    for P1's B_Gated (MLP3_Gated) and B (its mlp_3_layer) heads; best-on-test and the last epoch both checked.
    LoRA dropout is 0 here: its masks are random draws whose stream no method promises to share."""
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import DataLoader
    from transformers.feature_extraction_utils import BatchFeature
    from nriqa_lib.features import build_transform, load_image
    from nriqa_lib.training.finetune import FinetuneConfig, add_lora, finetune_split
    from nriqa_lib.training.heads import HeadJob, TrainConfig, batch_order, init_head
    man = pd.read_csv(REPO / "data_manifests" / "clive_p1.csv").iloc[:20]
    paths = [CLIVE / p for p in man["image"]]
    mos = man["mos"].to_numpy(np.float64)
    job = HeadJob(np.arange(14), np.zeros(0, np.int64), np.arange(14, 20), seed=3, tags={"split": 0})
    tcfg = TrainConfig(head=head_name, epochs=2, lr=1e-4, batch_size=12, micro_batch=2, accumulation="p1",
                       margin_loss_swapped=True, select_on="test", report_last=True)
    cfg = FinetuneConfig(mode="p1", epochs=2, lr_head=1e-4, lora_dropout=0.0, margin_loss_swapped=True,
                         micro_batch=2, batch_size=12, precision="fp32")
    full, bb = _tiny_siglip()
    hist_ours, preds_ours = [], []
    res = finetune_split(lambda: _tiny_siglip()[1], bb.preprocess, paths, mos, job, cfg, tcfg, amp="off",
                         progress=hist_ours.append)

    # P1's side: the same initial weights (what finetune_split draws after torch.manual_seed(job.seed))
    torch.manual_seed(job.seed)
    init_bb = add_lora(_tiny_siglip()[1], cfg)
    init = {k.replace("model.", "", 1): v for k, v in init_bb.state_dict().items() if "lora_" in k}
    head = init_head(tcfg, 32, job.seed)
    model = get_peft_model(full, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                            target_modules=r".*\.(q_proj|k_proj)$"))
    sd = model.state_dict()
    for k, v in init.items():
        sd[f"base_model.model.vision_model.{k}"] = v
    model.load_state_dict(sd)
    mlp = getattr(p1.models, p1_head)(input_dim=32, hidden=512)
    _copy_head(head, mlp)
    model.requires_grad_(True)
    mlp.requires_grad_(True)
    tf = build_transform(bb.preprocess, "squash")
    images = torch.stack([tf(load_image(p)) for p in paths])
    scores = torch.as_tensor(mos, dtype=torch.float32)

    def processor(images=None, return_tensors=None):
        return BatchFeature({"pixel_values": images})

    test_items = [{"image": images[i], "score": scores[i]} for i in job.test_idx]
    eval_loader = DataLoader(test_items, batch_size=2, shuffle=False, drop_last=True)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(mlp.parameters()), lr=1e-4, weight_decay=0)
    device = torch.device("cpu")
    global_step, srcc_p1, preds_p1 = 0, [], []
    model.train(), mlp.train()
    for (perm,) in batch_order(len(job.train_idx), 2, len(job.train_idx), job.seed):
        global_step = _p1_epoch(p1, optimizer, job.train_idx[perm], lambda b: mlp(model.get_image_features(
            **processor(images=images[b], return_tensors="pt").to(device))), scores, global_step)
        results, _ = p1.train.evaluate(model, mlp, processor, eval_loader, device)   # P1's own evaluation
        srcc_p1.append(results["SRCC"])
        with torch.no_grad():
            comb = p1.models.SIGLIPWithMLP(base_model=model, mlp_head=mlp, device=device).eval()
            preds_p1.append(comb(images[job.test_idx]).numpy())
            model.train(), mlp.train()
    ours_last = res.last_predictions
    ours_last = ours_last[ours_last["part"] == "test"]["pred"].to_numpy()
    np.testing.assert_allclose(ours_last, preds_p1[-1], atol=1e-5, rtol=0)
    assert [h["test_srcc"] for h in res.history] == pytest.approx(srcc_p1, abs=1e-12)
    best = int(np.argmax(srcc_p1))
    assert res.best_epoch == best
    np.testing.assert_allclose(res.predictions[res.predictions["part"] == "test"]["pred"].to_numpy(),
                               preds_p1[best], atol=1e-5, rtol=0)


def test_koniq_512x384_manifest_is_what_p1_reads(p1, tmp_path):
    """Item 6: P1's KonIQ_10K class (dataset.py l.52-84) on a stand-in of its layout (root/koniq10k_512x384/512x384/
    + the scores csv, here the published label table) reads our koniq10k_512x384 rows in the same order, the
    same MOS/100 and image paths (with our root = P1's root/koniq10k_512x384); its build_datasets partitions are
    our p1 splits (8058/2015; P1's evaluation loader drops the odd test set's last image: 2014 + 1 unused)."""
    from nriqa_lib.data.manifest import read_manifest
    from nriqa_lib.data.splits import make_splits
    labels = REPO.parent / "shared" / "labels" / "koniq10k_distributions_sets.csv"
    root = tmp_path / "KonIQ_10K"
    (root / "koniq10k_512x384" / "512x384").mkdir(parents=True)
    (root / "koniq10k_scores_and_distributions").mkdir()
    (root / "koniq10k_scores_and_distributions" / "koniq10k_scores_and_distributions.csv").write_bytes(
        labels.read_bytes())
    ds = p1.dataset.KonIQ_10K(path_to_db=str(root))
    man = read_manifest(REPO / "data_manifests" / "koniq10k_512x384.csv")
    ours = man["image"].map(lambda s: str(root / "koniq10k_512x384" / s))
    theirs = ds.data["image_name"].map(lambda s: str(Path(ds.image_dir) / s))
    assert [str(Path(a)) for a in theirs] == list(ours)
    np.testing.assert_allclose(man["mos"].to_numpy(), ds.data["MOS"].to_numpy() / 100, rtol=0, atol=1e-9)
    sp = make_splits(man, "p1")
    for k, seed in enumerate((8, 19, 25)):
        train, test = p1.train.build_datasets("KonIQ_10K", {"KonIQ_10K": str(root)}, seed)
        got = sp[sp["split"] == k].set_index("image")["part"]
        assert set(man["image"].to_numpy()[train.indices]) == set(got[got == "train"].index)
        assert list(got[got == "unused"].index) == [man["image"][test.indices[-1]]]
        assert (got == "test").sum() == len(test) - 1 == 2014


def _tiny_hf_release(family: str, folder: Path):
    """A tiny random transformers release of ``family`` saved as P1 would download it (save_pretrained: config.json,
    model.safetensors, preprocessor_config.json with the real release's processor settings)."""
    import transformers as tr
    from nriqa_lib.backbones import REGISTRY
    from nriqa_lib.backbones.models import _HF
    torch.manual_seed(0)
    if family == "clip_vit_b16_hf":
        cfg = tr.CLIPConfig(vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                               num_attention_heads=2, patch_size=32, image_size=224,
                                               hidden_act="quick_gelu"),
                            text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                             num_attention_heads=2, vocab_size=49408), projection_dim=16)
        model = tr.CLIPModel(cfg)
    elif family == "dinov2_vitb14_hf":
        model = tr.Dinov2Model(tr.Dinov2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                               num_attention_heads=2, patch_size=14, image_size=518))
    elif family == "dinov3_vitb16_hf":
        model = tr.DINOv3ViTModel(tr.DINOv3ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                     num_attention_heads=2, patch_size=16, image_size=224,
                                                     num_register_tokens=4))
    else:
        model = tr.ResNetModel(tr.ResNetConfig(depths=[1, 1], hidden_sizes=[16, 32], embedding_size=8,
                                               layer_type="bottleneck"))
    model.eval().save_pretrained(folder)
    pcfg = _HF[REGISTRY[family].arch][3]
    getattr(tr, pcfg["image_processor_type"]).from_dict(pcfg).save_pretrained(folder)
    return model


@pytest.mark.parametrize("family", ["clip_vit_b16_hf", "dinov2_vitb14_hf", "dinov3_vitb16_hf", "resnet152_hf"])
def test_transformers_backbones_are_p1s_extraction_path(p1, tmp_path, family):
    """Issue 22 item 3: for every family transformers has, our backbone (the release folder loaded as P1 loads it)
    and its transform give the features of P1's path on real CLIVE images: P1's CLIVE_inmemory (PIL squash to 512),
    ``AutoImageProcessor.from_pretrained`` on the folder called on P1's batch, and P1's ``SIGLIPWithMLP`` pooling
    (get_image_features; else last_hidden_state.mean(1); ResNet pooler_output), with an identity head."""
    import transformers as tr
    from nriqa_lib.backbones import create_backbone
    from nriqa_lib.features import build_transform, load_image
    table = pd.read_csv(CLIVE / "clive.csv")
    table = table[table["original_name"].isin(["100.bmp", "1000.JPG", "1024.JPG"])].reset_index(drop=True)
    table["mos_raw"] = table["mos"]
    srcs = dict(zip(table["original_name"], (CLIVE / p for p in table["image"])))
    jpgs = [n for n in srcs if n.endswith(".JPG")]
    root = _stand_in_release(tmp_path / "rel", table, {n: s for n, s in srcs.items() if n not in jpgs})
    for n in jpgs:
        (root / "Images" / n).write_bytes(srcs[n].read_bytes())
    folder = tmp_path / family
    _tiny_hf_release(family, folder)
    ds = p1.dataset.CLIVE_inmemory(path_to_db=str(root))
    batch = torch.stack([ds[i]["image"] for i in range(len(ds))])
    inputs = tr.AutoImageProcessor.from_pretrained(folder)(images=batch, return_tensors="pt")
    base = tr.AutoModel.from_pretrained(folder).eval()
    if family == "clip_vit_b16_hf":      # transformers 5 returns an output object where P1 (4.x) got the tensor
        class _CLIP(type(base)):
            def get_image_features(self, pixel_values=None, **kw):
                return super().get_image_features(pixel_values=pixel_values, **kw).pooler_output
        base = _CLIP.from_pretrained(folder).eval()
    comb = p1.models.SIGLIPWithMLP(base_model=base, mlp_head=torch.nn.Identity(), device="cpu",
                                   resnet=family == "resnet152_hf").eval()
    with torch.no_grad(), pytest.warns() if family != "clip_vit_b16_hf" else _nullcontext():
        theirs = comb(inputs if family == "resnet152_hf" else inputs["pixel_values"])
    bb = create_backbone(family, weights=str(folder))
    tf = build_transform(bb.preprocess, "squash")
    x = torch.stack([tf(load_image(srcs[n])) for n in table["original_name"]])
    assert (x - inputs["pixel_values"]).abs().max() < 1e-5
    with torch.no_grad():
        ours = bb(x)
    assert ours.shape == theirs.shape and (ours - theirs).abs().max() < 1e-5, (ours - theirs).abs().max()


def _nullcontext():
    import contextlib
    return contextlib.nullcontext()
