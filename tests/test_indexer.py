"""artdb.indexer: exactness against numpy, updates, ids, persistence, index choice and tuning."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from artdb.indexer import (
    FaissIndex,
    IndexCorruptError,
    IndexMismatchError,
    IndexSpec,
    TorchExactIndex,
    VectorIndex,
    VectorIndexError,
    choose_index,
    estimate_memory,
    exact_knn,
    gpu_count,
    read_sidecar,
    recall_at_k,
    sidecar_path,
    tune_nprobe,
)

DIM = 24


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng, n, dim=DIM, centers=20, spread=0.3):
    """Mixture of Gaussians on the sphere (what embeddings of many artists look like)."""
    c = unit(rng.standard_normal((centers, dim)))
    x = c[rng.integers(0, centers, n)] + spread / np.sqrt(dim) * rng.standard_normal((n, dim))
    return unit(x)


def brute(x, ids, q, k):
    s = unit(q) @ unit(x).T
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, order, axis=1), ids[order]


@pytest.fixture
def data(rng):
    x = rng.standard_normal((500, DIM)).astype(np.float32) * 3  # not normalised on purpose
    ids = rng.choice(10**12, 500, replace=False).astype(np.int64)
    q = rng.standard_normal((40, DIM)).astype(np.float32)
    return x, ids, q


def make(kind, x=None, ids=None):
    if kind == "flat":
        idx = FaissIndex(DIM)
    elif kind == "torch":
        idx = TorchExactIndex(DIM, block_elements=40 * 64)  # several database blocks per query block
    elif kind == "ivf":
        idx = FaissIndex(DIM, "IVF8,Flat")
        idx.train(x)
        idx.set_search_params(nprobe=8)
    elif kind == "ivf_hnsw":
        idx = FaissIndex(DIM, "IVF8_HNSW32,Flat")
        idx.train(x)
        idx.set_search_params(nprobe=8)
    if x is not None:
        idx.add(x, ids)
    return idx


BACKENDS = ["flat", "torch", "ivf", "ivf_hnsw"]


# -- exactness --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", BACKENDS)
def test_search_equals_numpy_brute_force(kind, data):
    x, ids, q = data
    idx = make(kind, x, ids)
    scores, found = idx.search(q, 10)
    want_s, want_i = brute(x, ids, q, 10)
    assert found.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(found, want_i)
    np.testing.assert_allclose(scores, want_s, atol=1e-5)


def test_hnsw_quantizer_places_every_vector_in_its_nearest_list(rng):
    """Assignment at add time is exact whatever the HNSW search settings: a vector put in a list
    that is not its nearest is missed by queries at any nprobe (the 10M bench's recall plateau)."""
    import faiss

    x = clustered(rng, 12000, centers=300, spread=0.6)
    idx = FaissIndex(DIM, "IVF256_HNSW32,Flat")
    idx.train(x)
    idx.set_search_params(nprobe=1, efSearch=1)  # the poorest HNSW search there is
    idx.add(x, np.arange(len(x)))
    ivf = idx.cpu_index
    hq = faiss.downcast_index(ivf.quantizer)
    centroids = faiss.downcast_index(hq.storage).reconstruct_n(0, ivf.nlist)
    nearest = np.argmax(x @ centroids.T, axis=1)
    stored_in = np.empty(len(x), dtype=np.int64)
    for lst in range(ivf.nlist):
        size = ivf.invlists.list_size(lst)
        if size:
            ptr = ivf.invlists.get_ids(lst)
            stored_in[faiss.rev_swig_ptr(ptr, size).copy()] = lst
            ivf.invlists.release_ids(lst, ptr)
    hq.hnsw.efSearch = 1
    _, by_hnsw = hq.search(x, 1)
    assert (by_hnsw[:, 0] != nearest).mean() > 0.01  # HNSW alone would misplace these
    np.testing.assert_array_equal(stored_in, nearest)


def test_sidecar_records_exact_assignment_and_old_indexes_load_as_misplaced(rng, tmp_path):
    """An HNSW-quantized index records in its sidecar that it placed its vectors exactly; one saved
    without that record (built before exact assignment) loads as possibly misplaced, so that artdb
    can rebuild it; an empty one has nothing misplaced."""
    x = clustered(rng, 2000, centers=40)
    ids = np.arange(len(x), dtype=np.int64)
    fresh = FaissIndex(DIM, "IVF16_HNSW32,Flat")
    fresh.train(x)
    fresh.add(x, ids)
    assert fresh.assignment_exact
    fresh.save(tmp_path / "new.faiss")
    assert json.loads((tmp_path / "new.faiss.json").read_text())["params"]["assignment"] == "exact"
    assert FaissIndex.load(tmp_path / "new.faiss").assignment_exact

    old = FaissIndex(DIM, "IVF16_HNSW32,Flat")
    old.train(x)
    raw = old.cpu_index
    raw.add_with_ids(x, ids)  # FAISS's own placement, through the HNSW quantizer (the old way)
    old_style = FaissIndex(DIM, "IVF16_HNSW32,Flat", _index=raw)
    assert not old_style.assignment_exact
    old_style.save(tmp_path / "old.faiss")
    assert "assignment" not in json.loads((tmp_path / "old.faiss.json").read_text())["params"]
    loaded = FaissIndex.load(tmp_path / "old.faiss")
    assert not loaded.assignment_exact
    loaded.remove(ids)  # emptied: whatever is added next is placed exactly
    loaded.add(x[:10], ids[:10])
    assert loaded.assignment_exact
    assert FaissIndex(DIM, "IVF16,Flat").assignment_exact  # a flat quantizer always was exact


def test_flat_batches_take_the_blas_path_and_stay_exact(rng):
    """artdb lowers FAISS's BLAS threshold (queries x dim) so batches of >= 20 queries at d = 128
    run as a matrix product (4-6x faster); the answers must not change."""
    import faiss

    from artdb.indexer.faiss_index import BLAS_FROM_QUERIES

    x = clustered(rng, 3000, dim=128)
    ids = np.arange(3000, dtype=np.int64) * 7
    q = clustered(rng, BLAS_FROM_QUERIES, dim=128)
    assert q.shape[0] * 128 >= faiss.cvar.distance_compute_blas_threshold
    idx = FaissIndex(128)
    idx.add(x, ids)
    scores, found = idx.search(q, 10)
    want_s, want_i = brute(x, ids, q, 10)
    np.testing.assert_array_equal(found, want_i)
    np.testing.assert_allclose(scores, want_s, atol=1e-5)


@pytest.mark.parametrize("kind", ["flat", "torch"])
def test_padding_when_k_exceeds_count(kind, rng):
    x = unit(rng.standard_normal((3, DIM)))
    idx = make(kind, x, np.array([5, 6, 7]))
    scores, ids = idx.search(x[:2], 5)
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()
    assert sorted(ids[0, :3]) == [5, 6, 7]
    empty = make(kind)
    s, i = empty.search(x, 2)
    assert (i == -1).all() and np.isneginf(s).all()


def test_ivf_nprobe_below_nlist_is_approximate_but_flat_scores(rng):
    x = clustered(rng, 2000)
    idx = FaissIndex(DIM, "IVF16,Flat")
    idx.train(x)
    idx.add(x, np.arange(2000))
    idx.set_search_params(nprobe=1)
    s, i = idx.search(x[:50], 10)
    # every returned score is the exact cosine of the returned vector (Flat codes)
    np.testing.assert_allclose(s, np.einsum("qd,qkd->qk", x[:50], x[i]), atol=1e-5)


# -- updates ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", BACKENDS)
def test_add_remove_replace(kind, data):
    x, ids, q = data
    idx = make(kind, x[:400], ids[:400])
    assert idx.ntotal == 400 and idx.dim == DIM and len(idx) == 400
    # new ids added incrementally (IVF: with the already-trained quantizer)
    idx.add(x[400:], ids[400:])
    # deleted ids removed; absent ids ignored
    assert idx.remove(np.concatenate([ids[:50], [123456789012345]])) == 50
    assert idx.remove(ids[:50]) == 0
    assert not idx.contains(ids[:50]).any() and idx.contains(ids[50:]).all()
    # re-ingested ids replaced with new vectors
    new = np.roll(x[100:150], 1, axis=1)
    idx.replace(new, ids[100:150])
    assert idx.ntotal == 450
    np.testing.assert_allclose(idx.reconstruct(ids[100:150]), unit(new), atol=1e-6)
    current_x = np.concatenate([x[50:100], new, x[150:]])
    current_ids = np.concatenate([ids[50:100], ids[100:150], ids[150:]])
    np.testing.assert_array_equal(idx.index_ids(), np.sort(current_ids))
    _, found = idx.search(q, 10)
    np.testing.assert_array_equal(found, brute(current_x, current_ids, q, 10)[1])
    # replace also inserts ids that were absent
    idx.replace(x[:2], ids[:2])
    assert idx.ntotal == 452


@pytest.mark.parametrize("kind", ["flat", "torch", "ivf"])
def test_refuses_bad_input(kind, data):
    x, ids, _ = data
    idx = make(kind, x[:100], ids[:100])
    with pytest.raises(VectorIndexError, match="already in the index.*replace"):
        idx.add(x[:1], ids[:1])
    with pytest.raises(VectorIndexError, match="duplicate"):
        idx.add(x[100:102], [7, 7])
    with pytest.raises(VectorIndexError, match=">= 0"):
        idx.add(x[100:101], [-1])
    with pytest.raises(VectorIndexError, match=r"shape \(n, 24\)"):
        idx.add(x[100:101, :10], [1])
    with pytest.raises(VectorIndexError, match="zero vector"):
        idx.add(np.zeros((1, DIM)), [1])
    with pytest.raises(VectorIndexError, match="NaN"):
        idx.search(np.full((1, DIM), np.nan), 1)
    with pytest.raises(VectorIndexError, match="not in the index"):
        idx.reconstruct([ids[0], 99])
    assert idx.ntotal == 100


@pytest.mark.parametrize("kind", ["flat", "torch", "ivf"])
def test_large_ids(kind, rng):
    x = unit(rng.standard_normal((300, DIM)))
    ids = np.array([2**62 + i for i in range(299)] + [2**63 - 1], dtype=np.int64)
    idx = make(kind, x, ids)
    _, found = idx.search(x[[0, 299]], 1)
    assert found[:, 0].tolist() == [2**62, 2**63 - 1]
    np.testing.assert_allclose(idx.reconstruct([2**63 - 1]), x[[299]], atol=1e-6)
    assert idx.remove([2**62]) == 1 and not idx.contains([2**62])[0]


def test_ids_first_argument_order_is_accepted(rng):
    """core.sampling's protocol calls add(ids, vectors); shapes make the order unambiguous."""
    x = unit(rng.standard_normal((20, DIM)))
    for idx in (FaissIndex(DIM), TorchExactIndex(DIM)):
        idx.add(np.arange(20, dtype=np.int64), x)
        assert idx.search(x[:1], 1)[1][0, 0] == 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "remove", "replace"]),
                          st.sets(st.integers(0, 40), max_size=6)), max_size=12))
def test_updates_keep_ids_consistent(ops):
    rng = np.random.default_rng(0)
    table = unit(rng.standard_normal((41, DIM)))
    indexes = [FaissIndex(DIM), TorchExactIndex(DIM)]
    model: set[int] = set()
    for op, ids in ops:
        arr = np.array(sorted(ids), dtype=np.int64)
        if op == "add":
            arr = np.array([i for i in arr if i not in model], dtype=np.int64)
            model |= set(arr.tolist())
            for idx in indexes:
                idx.add(table[arr].reshape(-1, DIM), arr)
        elif op == "remove":
            for idx in indexes:
                assert idx.remove(arr) == len(model & ids)
            model -= ids
        else:
            model |= ids
            for idx in indexes:
                idx.replace(table[arr].reshape(-1, DIM), arr)
    for idx in indexes:
        assert idx.index_ids().tolist() == sorted(model)
        assert idx.ntotal == len(model)


# -- persistence ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["flat", "torch", "ivf_hnsw"])
def test_persistence_round_trip(kind, data, tmp_path):
    x, ids, q = data
    idx = make(kind, x, ids)
    idx.model, idx.name = "artistnet-v1", "track"
    path = tmp_path / "indexes-données" / "track.faiss"
    assert idx.save(path, catalog_revision="rev-42") == path
    assert sorted(os.listdir(path.parent)) == ["track.faiss", "track.faiss.json"]  # no temp files left
    info = read_sidecar(path)
    assert (info.model, info.name, info.dim, info.count, info.metric) == (
        "artistnet-v1", "track", DIM, 500, "cosine")
    assert info.catalog_revision == "rev-42" and info.checksum.startswith("sha256:")
    assert info.factory == idx.factory and info.backend == idx.backend
    back = VectorIndex.load(path, expect_model="artistnet-v1", expect_dim=DIM, expect_name="track")
    assert type(back) is type(idx)
    assert back.catalog_revision == "rev-42" and back.params == idx.params
    np.testing.assert_array_equal(back.index_ids(), idx.index_ids())
    np.testing.assert_array_equal(back.search(q, 10)[1], idx.search(q, 10)[1])
    # the loaded index keeps working incrementally
    back.remove(ids[:5])
    assert back.ntotal == 495


def test_backends_read_each_others_files(data, tmp_path):
    x, ids, q = data
    t = make("torch", x, ids)
    t.save(tmp_path / "a.faiss")
    f = FaissIndex.load(tmp_path / "a.faiss")
    np.testing.assert_array_equal(f.search(q, 5)[1], t.search(q, 5)[1])
    f.save(tmp_path / "b.faiss")
    assert isinstance(TorchExactIndex.load(tmp_path / "b.faiss"), TorchExactIndex)
    ivf = make("ivf", x, ids)
    ivf.save(tmp_path / "c.faiss")
    with pytest.raises(VectorIndexError, match="only open exact"):
        TorchExactIndex.load(tmp_path / "c.faiss")


@pytest.fixture
def saved(data, tmp_path):
    x, ids, _ = data
    idx = make("flat", x, ids)
    idx.model = "artistnet-v1"
    path = tmp_path / "track.faiss"
    idx.save(path)
    return path


def test_refuses_truncated_file(saved):
    size = saved.stat().st_size
    with open(saved, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(IndexCorruptError, match=f"{size - 100} bytes but the sidecar records {size}"):
        VectorIndex.load(saved)


def test_refuses_corrupted_file(saved):
    raw = bytearray(saved.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    saved.write_bytes(bytes(raw))
    with pytest.raises(IndexCorruptError, match="checksum"):
        VectorIndex.load(saved)


def test_refuses_missing_or_garbled_sidecar(saved):
    side = sidecar_path(saved)
    side.write_text("{not json")
    with pytest.raises(IndexCorruptError, match="unreadable sidecar"):
        VectorIndex.load(saved)
    side.unlink()
    with pytest.raises(IndexCorruptError, match="sidecar track.faiss.json is missing"):
        VectorIndex.load(saved)


def test_refuses_sidecar_count_disagreeing_with_file(saved):
    side = sidecar_path(saved)
    info = json.loads(side.read_text())
    info["count"] = 499
    side.write_text(json.dumps(info))
    with pytest.raises(IndexCorruptError, match="holds 500 vectors.*sidecar says 499"):
        VectorIndex.load(saved)


def test_refuses_model_and_dim_mismatch(saved):
    with pytest.raises(IndexMismatchError,
                       match="model is 'artistnet-v1' but 'artistnet-v2' was expected") as e:
        VectorIndex.load(saved, expect_model="artistnet-v2")
    assert (e.value.found, e.value.expected) == ("artistnet-v1", "artistnet-v2")
    with pytest.raises(IndexMismatchError, match="dimension is 24 but 128 was expected"):
        VectorIndex.load(saved, expect_dim=128)


def test_failed_save_keeps_previous_files(saved, monkeypatch, data):
    x, ids, _ = data
    before = saved.read_bytes(), sidecar_path(saved).read_text()
    idx = make("flat", x[:10], ids[:10])

    def boom(path):
        path.write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(idx, "_write", boom)
    with pytest.raises(OSError, match="disk full"):
        idx.save(saved)
    assert (saved.read_bytes(), sidecar_path(saved).read_text()) == before
    assert sorted(os.listdir(saved.parent)) == ["track.faiss", "track.faiss.json"]
    assert VectorIndex.load(saved).ntotal == 500


# -- index types ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "factory",
    # IDMap over IVF: after remove_ids, searches return the wrong ids (checked on FAISS 1.15)
    ["HNSW32", "IDMap2,HNSW32", "IVF16,PQ8x4fs", "LSH", "IDMap,IVF8,Flat", "IDMap2,IVF8,Flat"],
)
def test_refuses_types_that_cannot_remove(factory):
    with pytest.raises(VectorIndexError, match="cannot remove|unsupported|refused|only supported over Flat"):
        FaissIndex(DIM, factory)


def test_training_required_before_add(rng):
    idx = FaissIndex(DIM, "IVF16,SQ8")
    with pytest.raises(VectorIndexError, match="train"):
        idx.add(unit(rng.standard_normal((1, DIM))), [1])
    with pytest.raises(VectorIndexError, match="at least nlist=16"):
        idx.train(unit(rng.standard_normal((5, DIM))))


GiB = 1 << 30


@pytest.mark.parametrize(
    "n, dim, budget, gpu, factory",
    [
        (0, 256, GiB, False, "IDMap2,Flat"),
        (10_000, 256, GiB, False, "IDMap2,Flat"),
        (199_999, 256, GiB, False, "IDMap2,Flat"),
        (200_000, 256, 64 * GiB, False, "IVF2048,SQ8"),
        (1_000_000, 256, 8 * GiB, False, "IVF4096,SQ8"),
        (500_000, 256, 8 * GiB, True, "IDMap2,Flat"),
        (500_000, 256, 8 * GiB, False, "IVF2048,SQ8"),
        (1_000_000, 256, 100 * 2**20, False, "IVF4096,PQ32"),
        (10_000_000, 256, 8 * GiB, False, "IVF16384_HNSW32,SQ8"),
        (10_000_000, 256, 8 * GiB, True, "IVF16384,SQ8"),
        (50_000_000, 256, 8 * GiB, False, "IVF32768_HNSW32,PQ64"),
        (100_000_000, 128, 16 * GiB, False, "IVF32768_HNSW32,PQ64"),
        (100_000_000, 256, 8 * GiB, True, "IVF32768,PQ16"),
        (1_000_000_000, 256, 512 * GiB, False, "IVF65536_HNSW32,SQ8"),
        (100_000, 256, 20 * 2**20, False, "IVF1024,PQ64"),
    ],
)
def test_choose_index_grid(n, dim, budget, gpu, factory):
    spec = choose_index(n, dim, budget, gpu=gpu)
    assert isinstance(spec, IndexSpec)
    assert spec.factory == factory
    assert spec.estimated_memory <= budget
    if spec.nlist:
        assert spec.train_size >= min(n, 39 * spec.nlist) and spec.train_size <= n
        assert spec.hnsw_quantizer == ("HNSW" in factory)
    else:
        assert spec.exact and spec.estimated_memory == estimate_memory(n, dim, "Flat")


def test_choose_index_refuses_impossible_budget():
    with pytest.raises(VectorIndexError, match="fits in 1000 bytes; the smallest .* needs"):
        choose_index(10_000_000, 256, 1000)


def test_memory_estimate_formula():
    n, d = 1_000_000, 256
    assert estimate_memory(n, d, "Flat") == n * (4 * d + 56)
    assert estimate_memory(n, d, "SQ8", 4096) == n * (d + 56) + 4096 * 4 * d + 2 * 4 * d
    assert estimate_memory(n, d, "PQ32", 16384, hnsw_quantizer=True) == (
        n * (32 + 56) + 16384 * (4 * d + 2 * 32 * 4) + 256 * 4 * d
    )


# -- tuning -----------------------------------------------------------------------------------------
def test_recall_at_k_known_answer():
    true = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 2, 9], [-1, -1, -1]])
    assert recall_at_k(found, true, 3) == pytest.approx(2 / 6)


def test_exact_knn_excludes_self(rng):
    x = clustered(rng, 300)
    ids = np.arange(300) + 1000
    _, with_self = exact_knn(x, ids, x[:20], 5)
    _, without = exact_knn(x, ids, x[:20], 5, exclude_ids=ids[:20])
    assert (with_self[:, 0] == ids[:20]).all()
    assert not (without == ids[:20, None]).any()
    np.testing.assert_array_equal(without[:, :4], with_self[:, 1:5])


def test_tune_nprobe_reaches_target(rng):
    x = clustered(rng, 6000, centers=60)
    ids = np.arange(6000, dtype=np.int64) * 11
    idx = FaissIndex.build(x, ids, "IVF64,SQ8", target_recall=0.9, n_tune_queries=300)
    res_nprobe = idx.params["nprobe"]
    assert 1 <= res_nprobe < 64 and idx.recall >= 0.9
    # the recorded figure holds on fresh queries (noisy copies of stored vectors)
    q = unit(x[:300] + 0.05 * rng.standard_normal((300, DIM)))
    _, true = exact_knn(x, ids, q, 10)
    res = tune_nprobe(idx, q, true, k=10, target_recall=0.9)
    assert res.reached and res.recall >= 0.9 and idx.params["nprobe"] == res.nprobe
    # minimal: one fewer probe misses the target
    smaller = [t for t in res.trials if t["nprobe"] == res.nprobe - 1]
    assert res.nprobe == 1 or (smaller and smaller[0]["recall"] < 0.9)


def test_build_chooses_flat_for_small_collections(rng):
    x = clustered(rng, 500)
    idx = FaissIndex.build(x, np.arange(500))
    assert idx.factory == "IDMap2,Flat" and idx.recall == 1.0


def test_tune_reports_unreachable_target(rng):
    x = clustered(rng, 3000)
    idx = FaissIndex.build(x, np.arange(3000), "IVF8,PQ4", target_recall=0.999, n_tune_queries=100)
    assert idx.params["nprobe"] == 8 and idx.recall < 0.999


# -- groups -----------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_gpu_results_equal_cpu(data):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    x, ids, q = data
    cpu = TorchExactIndex(DIM)
    cpu.add(x, ids)
    cuda = TorchExactIndex(DIM, device="cuda")
    cuda.add(x, ids)
    np.testing.assert_array_equal(cuda.search(q, 10)[1], cpu.search(q, 10)[1])
    if gpu_count() == 0:
        pytest.skip("the FAISS GPU build is not installed (faiss-cpu)")
    for factory in ("IDMap2,Flat", "IVF8,Flat"):
        g = FaissIndex(DIM, factory, use_gpu=True)
        c = FaissIndex(DIM, factory, use_gpu=False)
        for idx in (g, c):
            idx.train(x)
            idx.set_search_params(nprobe=8)
            idx.add(x, ids)
        np.testing.assert_array_equal(g.search(q, 10)[1], c.search(q, 10)[1])
