"""Exact (Flat) search with FAISS's BLAS threshold as shipped vs as artdb sets it, per batch size.

FAISS >= 1.11 runs brute force as a matrix product only when queries x dim >= its threshold
(128,000: 1,000 queries at d = 128, 134 at d = 953); below it a scalar loop. artdb lowers the
threshold to ``BLAS_FROM_QUERIES x 128`` (indexer/faiss_index.py). This measures both settings in
the same run, at the dims artdb uses (128: the index bench; 953: the default model's vectors), so
the choice can be checked on any machine:

    .venv/bin/python bench/flat_blas.py --out bench/results/flat_blas.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from artdb.indexer.faiss_index import BLAS_FROM_QUERIES, faiss

FAISS_DEFAULT = 128_000  # faiss.cvar.distance_compute_blas_threshold before artdb sets it


def qps(index, q: np.ndarray, k: int, min_seconds: float = 0.5) -> float:
    index.search(q, k)  # warm-up
    calls, t0 = 0, time.perf_counter()
    while True:
        index.search(q, k)
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return calls * len(q) / elapsed


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200_000, help="vectors in the Flat index")
    p.add_argument("--dims", type=int, nargs="+", default=[128, 953])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 3, 5, 10, 20, 50, 100, 500, 1000])
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    artdb_threshold = faiss.cvar.distance_compute_blas_threshold
    rng = np.random.default_rng(0)
    result = {"n": args.n, "k": args.k, "faiss": faiss.__version__, "threads": faiss.omp_get_max_threads(),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average_start": os.getloadavg()},
              "thresholds": {"faiss_default": FAISS_DEFAULT, "artdb": artdb_threshold,
                             "blas_from_queries_at_d128": BLAS_FROM_QUERIES},
              "rows": []}
    for dim in args.dims:
        x = rng.standard_normal((args.n, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        index = faiss.IndexFlatIP(dim)
        index.add(x)
        for nq in args.batches:
            q = np.ascontiguousarray(x[rng.choice(args.n, nq, replace=False)])
            row = {"dim": dim, "queries": nq}
            for name, threshold in (("faiss_default", FAISS_DEFAULT), ("artdb", artdb_threshold)):
                faiss.cvar.distance_compute_blas_threshold = threshold
                row[f"qps_{name}"] = round(qps(index, q, args.k), 1)
                row[f"blas_{name}"] = nq * dim >= threshold
            row["ratio"] = round(row["qps_artdb"] / row["qps_faiss_default"], 2)
            result["rows"].append(row)
            print(row, flush=True)
        faiss.cvar.distance_compute_blas_threshold = artdb_threshold
    result["machine"]["load_average_end"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
