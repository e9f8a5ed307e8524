"""Benchmark the vector index: build time, memory, QPS and recall@10 against exact search.

Data: ``--n`` clustered unit vectors (a mixture of Gaussians on the sphere, one component per
"artist"), queries drawn fresh from the same mixture (never stored). Compared in the same run:

* exact search: FAISS ``IDMap2,Flat`` (artdb's exact path; also the ground truth),
  ``TorchExactIndex`` on CPU and sklearn ``NearestNeighbors(algorithm="brute")``;
* artdb's approximate index: ``choose_index`` under ``--budget-gb``, trained on a sample, ``nprobe``
  tuned to ``--target-recall`` on stored vectors, then measured on the held-out queries, plus an
  nprobe sweep;
* hnswlib (if installed) at equal recall: the smallest ``ef`` whose recall@10 reaches ours.

Usage: ``python bench/index.py --n 1000000 [--out bench/results/index.json]``. JSON on stdout and
in ``--out``. The machine may be shared: record that with ``--note``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from artdb.indexer import FaissIndex, TorchExactIndex, choose_index, recall_at_k


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def unit_rows(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def mixture(rng, n, dim, centers, spread, genres=0, genre_spread=1.0, chunk=200_000):
    """Unit vectors around ``centers`` unit "artist" centres; with ``genres`` > 0 the artist centres
    themselves gather around genre centres (noise ``genre_spread``), so clusters overlap like real
    embeddings instead of being almost orthogonal."""
    if genres:
        g = unit_rows(rng.standard_normal((genres, dim)))
        c = unit_rows(g[rng.integers(0, genres, centers)]
                      + genre_spread / np.sqrt(dim) * rng.standard_normal((centers, dim)))
    else:
        c = unit_rows(rng.standard_normal((centers, dim)))
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        x = (c[rng.integers(0, centers, m)]
             + (spread / np.sqrt(dim)) * rng.standard_normal((m, dim), dtype=np.float32))
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def timed_search(index_search, q, k, repeat=1):
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = index_search(q, k)
        best = min(best, time.perf_counter() - t0)
    return res, q.shape[0] / best


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--centers", type=int, default=0, help="mixture components (default n/500)")
    p.add_argument("--spread", type=float, default=1.0, help="within-cluster (track) noise scale")
    p.add_argument("--genres", type=int, default=0, help="second level: genre centres (default centers/50)")
    p.add_argument("--genre-spread", type=float, default=1.0, help="artist-centre noise around a genre")
    p.add_argument("--nq", type=int, default=1000, help="held-out evaluation queries")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--target-recall", type=float, default=0.95)
    p.add_argument("--budget-gb", type=float, default=8.0)
    p.add_argument("--factory", default=None, help="override choose_index")
    p.add_argument("--sklearn-queries", type=int, default=200)
    p.add_argument("--no-sklearn", action="store_true")
    p.add_argument("--no-hnswlib", action="store_true")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--hnsw-m", type=int, default=16)
    p.add_argument("--hnsw-efc", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--note", default="")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    import faiss

    rng = np.random.default_rng(args.seed)
    centers = args.centers or max(10, args.n // 500)
    t0 = time.perf_counter()
    genres = args.genres or max(2, centers // 50)
    x = mixture(rng, args.n + args.nq, args.dim, centers, args.spread, genres, args.genre_spread)
    x, q = x[: args.n], x[args.n :]
    ids = np.arange(args.n, dtype=np.int64) * 7 + 2**40  # sparse catalog-like ids
    k = args.k
    result: dict = {
        "n": args.n, "dim": args.dim, "centers": centers, "spread": args.spread,
        "genres": genres, "genre_spread": args.genre_spread, "nq": args.nq, "k": k,
        "target_recall": args.target_recall,
        "machine": {"cpus": os.cpu_count(), "faiss_threads": faiss.omp_get_max_threads(),
                    "platform": platform.platform(), "faiss": faiss.__version__},
        "note": args.note, "data_seconds": round(time.perf_counter() - t0, 2),
    }

    # -- exact: FAISS Flat (ground truth) -------------------------------------------------------------
    r0 = rss_bytes()
    t0 = time.perf_counter()
    exact = FaissIndex(args.dim)
    exact.add(x, ids)
    build = time.perf_counter() - t0
    (_, true_ids), qps = timed_search(exact.search, q, k)
    result["exact_faiss_flat"] = {"build_s": round(build, 2), "qps": round(qps, 1), "recall": 1.0,
                                  "rss_delta_bytes": rss_bytes() - r0}
    exact_qps = qps
    del exact

    if not args.no_torch:
        t = TorchExactIndex(args.dim)
        t.add(x, ids)
        (_, tids), tqps = timed_search(t.search, q, k)
        result["exact_torch_cpu"] = {"qps": round(tqps, 1), "recall": recall_at_k(tids, true_ids, k)}
        del t

    if not args.no_sklearn:
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=k, algorithm="brute", metric="cosine", n_jobs=-1).fit(x)
        qs = q[: args.sklearn_queries]
        t0 = time.perf_counter()
        _, rows = nn.kneighbors(qs)
        sq = qs.shape[0] / (time.perf_counter() - t0)
        result["exact_sklearn_brute"] = {"qps": round(sq, 1), "queries": int(qs.shape[0]),
                                         "recall": recall_at_k(ids[rows], true_ids[: qs.shape[0]], k)}
        del nn

    # -- artdb approximate --------------------------------------------------------------------------
    spec = choose_index(args.n, args.dim, int(args.budget_gb * 2**30))
    r0 = rss_bytes()
    t0 = time.perf_counter()
    idx = FaissIndex.build(x, ids, args.factory or spec, target_recall=args.target_recall, k=k,
                           seed=args.seed)
    build = time.perf_counter() - t0
    rss = rss_bytes() - r0
    (_, found), qps = timed_search(idx.search, q, k, repeat=2)
    rec = recall_at_k(found, true_ids, k)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "track.faiss"
        t0 = time.perf_counter()
        idx.save(path)
        save_s = time.perf_counter() - t0
        file_bytes = path.stat().st_size
        t0 = time.perf_counter()
        FaissIndex.load(path)
        load_s = time.perf_counter() - t0
    sweep = []
    tuned = dict(idx.params)
    for nprobe in sorted({1, 2, 4, 8, 16, 32, 64, tuned.get("nprobe", 1)}):
        if nprobe > idx.nlist:
            continue
        idx.set_search_params(nprobe=nprobe, efSearch=max(2 * nprobe, 32))
        (_, f), s = timed_search(idx.search, q, k, repeat=2)
        sweep.append({"nprobe": nprobe, "recall": recall_at_k(f, true_ids, k), "qps": round(s, 1)})
    result["artdb_ivf"] = {
        "factory": idx.factory, "spec": spec.to_dict(), "params": tuned,
        "tuned_recall_on_stored": idx.recall, "recall": rec, "qps": round(qps, 1),
        "speedup_vs_exact": round(qps / exact_qps, 1), "build_s": round(build, 2),
        "estimated_memory_bytes": spec.estimated_memory, "rss_delta_bytes": rss,
        "file_bytes": file_bytes, "save_s": round(save_s, 2), "load_s": round(load_s, 2),
        "sweep": sweep,
    }
    del idx

    # -- hnswlib at equal recall ----------------------------------------------------------------------
    if not args.no_hnswlib:
        try:
            import hnswlib
        except ImportError:
            result["hnswlib"] = {"skipped": "pip install hnswlib"}
        else:
            r0 = rss_bytes()
            t0 = time.perf_counter()
            h = hnswlib.Index(space="ip", dim=args.dim)
            h.init_index(max_elements=args.n, M=args.hnsw_m, ef_construction=args.hnsw_efc)
            h.add_items(x, ids, num_threads=os.cpu_count())
            build = time.perf_counter() - t0
            rss = rss_bytes() - r0
            curve = []
            for ef in (10, 16, 24, 32, 48, 64, 96, 128, 192, 256):
                h.set_ef(ef)
                t0 = time.perf_counter()
                labels, _ = h.knn_query(q, k=k, num_threads=os.cpu_count())
                s = q.shape[0] / (time.perf_counter() - t0)
                curve.append({"ef": ef, "recall": recall_at_k(labels.astype(np.int64), true_ids, k),
                              "qps": round(s, 1)})
                if curve[-1]["recall"] >= rec:
                    break
            at = next((c for c in curve if c["recall"] >= rec), None)  # None: never reached ours
            result["hnswlib"] = {"M": args.hnsw_m, "ef_construction": args.hnsw_efc,
                                 "build_s": round(build, 2), "rss_delta_bytes": rss, "curve": curve,
                                 "at_equal_recall": at,
                                 "best": max(curve, key=lambda c: c["recall"]),
                                 "note": "graph index: cannot remove vectors (artdb does not use it)"}
            del h

    result["target_met"] = bool(
        result["artdb_ivf"]["recall"] >= args.target_recall and result["artdb_ivf"]["speedup_vs_exact"] >= 20
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
