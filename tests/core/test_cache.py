"""nriqa_lib.core.cache: the one cache of features, MA-CLIP views, CLIP-IQA scores, pixels and fine-tuning checkpoints."""
import hashlib
import json

import numpy as np
import pytest

from nriqa_lib.core import cache


def test_keys_are_the_sha256_prefix_of_the_identity_so_existing_entries_keep_their_names():
    ident = {"b": 2, "a": [1, "x"]}
    by_hand = hashlib.sha256('{"a": [1, "x"], "b": 2}'.encode()).hexdigest()[:20]
    assert cache.key_of(ident) == by_hand == cache.key_of({"a": [1, "x"], "b": 2})      # key order does not matter
    text = json.dumps({"kind": "clipiqa", "n": 3})                   # a string identity is hashed as it is
    assert cache.key_of(text) == hashlib.sha256(text.encode()).hexdigest()[:20]
    assert cache.key_of({"a": 1}) != cache.key_of({"a": 2})


def test_an_entry_made_for_other_content_is_never_read(tmp_path):
    f = tmp_path / "e.npz"
    meta = json.dumps({"dataset": "clive", "n": 2}, sort_keys=True)
    assert cache.load_npz(f, meta) is None                          # absent
    cache.save_npz(f, meta, x=np.arange(3.0))
    assert not list(tmp_path.glob(".*")) and not list(tmp_path.glob("*.tmp*"))   # no temporary file left
    np.testing.assert_array_equal(cache.load_npz(f, meta)["x"], np.arange(3.0))
    assert "meta" not in cache.load_npz(f, meta)
    assert cache.load_npz(f, json.dumps({"n": 2, "dataset": "clive"})) is not None   # the same meta, other key order
    assert cache.load_npz(f, json.dumps({"dataset": "clive", "n": 3})) is None


def test_chunked_resumes_with_the_missing_chunks_only(tmp_path):
    calls = []

    def compute(lo, hi):
        calls.append((lo, hi))
        return {"v": np.arange(lo, hi, dtype=np.float64)}

    meta = json.dumps({"k": 1})
    with pytest.raises(InterruptedError):
        cache.chunked(tmp_path / "c", meta, 10, 4, compute, progress=False, max_chunks=1)
    assert calls == [(0, 4)]
    parts = cache.chunked(tmp_path / "c", meta, 10, 4, compute, progress=False)
    assert calls == [(0, 4), (4, 8), (8, 10)]                      # chunk 0 read back, not recomputed
    np.testing.assert_array_equal(np.concatenate([p["v"] for p in parts]), np.arange(10.0))
    cache.chunked(tmp_path / "c", json.dumps({"k": 2}), 10, 4, compute, progress=False)
    assert len(calls) == 6                                          # another meta: every chunk recomputed
    assert cache.chunked(None, meta, 3, 2, compute, progress=False)[1]["v"].tolist() == [2.0]   # nothing saved


def test_the_lock_sits_beside_the_entry_and_excludes_a_second_holder(tmp_path):
    lk = cache.lock(tmp_path / "entry")
    assert lk.lock_file == str(tmp_path / "entry") + ".lock"
    with lk:
        with pytest.raises(Exception):                              # filelock.Timeout
            cache.lock(tmp_path / "entry").acquire(timeout=0.05)


def test_every_cache_user_goes_through_it():
    """Features, MA-CLIP views / CLIP-IQA, pixels and fine-tuning checkpoints take their keys from key_of."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[2] / "nriqa_lib"
    for rel in ("extraction/cache.py", "zeroshot/clip.py", "training/pixels.py", "training/regimes.py"):
        src = (root / rel).read_text()
        assert "key_of(" in src and "hashlib" not in src, rel
