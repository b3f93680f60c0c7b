"""Out-of-core GDA and FAISS indexes chosen and tuned for a recall target, measured in one run.

Writes synthetic stores of N rows x 512-d float16 features through the FeatureStore writer, then,
each in a fresh subprocess so peak RSS is its own:
  - streamed (chunked) GDA fit time and peak RSS per size: time should be linear in rows and
    memory flat, well under the array size; the in-memory fit at the first size and the ratio
    chunked / in-memory (goal <= 1.3);
  - `fs index --factory auto --max-memory M --recall R` per size: the factory chosen, build
    seconds (sample / train / add / tune), index bytes, the tuned search parameter, and on 1,000
    unseen queries (a separate split drawn from the same distribution) recall@10 against exact
    search and queries/s against an exact Flat index in the same process; at 100k rows also a
    float HNSW32 graph tuned to the same recall (what autofaiss would pick when it fits);
  - with ``--parts cluster``: the cluster build (``fs index --cluster local:W``) of ``--cluster-factory``
    per size and per worker count of ``--workers`` (default 1,2): wall-clock seconds per stage, the
    CPU-seconds of this process and its worker processes together, the merged index's bytes in RAM
    and on disk, and recall@10 / queries/s on the unseen queries with its lists memory-mapped.

The synthetic features have the structure of real embeddings: many clusters and a low intrinsic
dimension. 1,000 clusters (the labels), their centres standard Gaussian in a random 64-dimensional
subspace of R^512; each cluster varies along its own 16 random directions of that subspace (a
16-dimensional local manifold, Gaussian with standard deviation 2 along each), plus isotropic
noise of 0.02 in all 512 dimensions. At 100k rows a query's nearest neighbour has cosine
similarity about 0.82 and its 10th about 0.70. (A harder case, clusters
of 100 rows with a full 64-dimensional spread, needs a fifth of the IVF lists for 0.95 at 1M rows:
the speed-up over Flat falls to about 6x.)

Usage: python bench/scale.py [--full] [--sizes 100000,...] [--parts gda,index,cluster] [--max-memory 1G]
       [--real STORE] [--recall 0.95] [--cluster-factory IVF1024,SQ8] [--workers 1,2] [--dir DIR] [--keep]
Defaults are laptop-sized (100k rows: a few minutes on 2 cores); --full runs 100k and 1M rows for
the index and 1M, 2M and 4M rows for GDA. Needs about 2 GB of disk per million rows.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a script, this folder is sys.path[0], and bench/solvers.py would hide the solvers package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

DIM, CLASSES, CHUNK, LATENT, LOCAL, SPREAD = 512, 1000, 65536, 64, 16, 2.0
ENCODER = "bench/synthetic"
N_QUERIES, K = 1000, 10
LAPTOP_SIZES, FULL_INDEX_SIZES, FULL_GDA_SIZES = "100000", "100000,1000000", "1000000,2000000,4000000"


def make_store(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` x 512 float16 features in split ``pool`` and 1,000 more from the same clusters in
    split ``queries``, written chunk by chunk (see the module docstring for the distribution)."""
    from featurestore.store.feature_store import FeatureStore

    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((DIM, LATENT)))[0].T.astype(np.float32)  # (64, 512) orthonormal
    centers = rng.standard_normal((CLASSES, LATENT)).astype(np.float32)
    local = (rng.standard_normal((CLASSES, LOCAL, LATENT)) / np.sqrt(LATENT)).astype(np.float32)
    with FeatureStore(path, mode="a") as store:
        store.ensure_encoder(ENCODER, {"model": "synthetic", "weights": "clusters", "embed_dim": DIM})
        for split, count, offset in (("pool", rows, 0), ("queries", N_QUERIES, rows)):
            assign = np.random.default_rng([seed, 1, offset]).integers(CLASSES, size=count)
            store.add_rows(split, [f"{split}-{i:08d}" for i in range(count)], [""] * count, assign.tolist())
            store.prepare_features(ENCODER, split, DIM, "float16")
            store.begin_appending()
            for start in range(0, count, CHUNK):
                stop = min(start + CHUNK, count)
                chunk_rng = np.random.default_rng([seed, offset + start])
                cluster = assign[start:stop]
                z = SPREAD * chunk_rng.standard_normal((stop - start, LOCAL), dtype=np.float32)
                X = (centers[cluster] + np.einsum("nl,nld->nd", z, local[cluster])) @ basis
                X += np.float32(0.02) * chunk_rng.standard_normal((stop - start, DIM), dtype=np.float32)
                store.write_features(ENCODER, split, np.arange(start, stop), X.astype(np.float16),
                                     np.ones(stop - start, bool), [""] * (stop - start))


def child(task: str, path: str, *options: str) -> None:
    """Run one measurement and print it as JSON with this process's peak RSS."""
    import resource

    from featurestore.store.feature_store import FeatureStore

    out: dict = {}
    with FeatureStore(path) as store:
        if task == "stream":
            import solvers.few_shot.gda  # noqa: F401  (imported before timing, as in the in-memory task)
            from workflows.streaming import fit_gda_streaming

            t0 = time.perf_counter()
            fit_gda_streaming(store, ENCODER, "pool", n_classes=CLASSES)  # default chunk rows
            out["seconds"] = time.perf_counter() - t0
        elif task == "memory":
            from solvers.few_shot.gda import GDA

            X, y = store.features(ENCODER, "pool"), store.labels("pool")
            t0 = time.perf_counter()
            GDA(n_classes=CLASSES).fit(X, y)
            out["seconds"] = time.perf_counter() - t0
        elif task == "index":
            out.update(index_figures(store, *options))
        elif task == "cluster":
            out.update(cluster_figures(store, *options))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def index_figures(store, factory: str, max_memory: str, recall: str, encoder: str = ENCODER, pool: str = "pool",
                  query_split: str = "queries") -> dict:
    """Build + tune ``factory`` as `fs index` does, then time it and an exact Flat index on the unseen queries."""
    import faiss

    from featurestore.index.store_index import build_index, recall_at_k

    queries = np.ascontiguousarray(store.features(encoder, query_split), dtype=np.float32)
    faiss.normalize_L2(queries)
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    index = build_index(store, encoder, pool, factory, max_memory=max_memory, recall=float(recall), quiet=True)
    build = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    flat = faiss.IndexFlatIP(queries.shape[1])
    for _, block in store.iter_features(encoder, pool):
        block = np.ascontiguousarray(block, dtype=np.float32)
        faiss.normalize_L2(block)
        flat.add(block)
    t0 = time.perf_counter()
    _, exact = flat.search(queries, K)
    flat_qps = len(queries) / (time.perf_counter() - t0)
    index.search(queries[:50], K)  # warm up
    t0 = time.perf_counter()
    _, approx = index.search(queries, K)
    qps = len(queries) / (time.perf_counter() - t0)
    meta = index.meta
    return {"factory": meta["factory"], "build_seconds": build, "build_cpu_seconds": cpu,
            "stages": meta["build_seconds"],
            "bytes": meta["bytes"], "params": meta["search_params"], "tuning_recall": meta.get("recall_at_10"),
            "target_met": meta["target_met"], "recall": recall_at_k(approx, exact, K), "qps": qps,
            "flat_qps": flat_qps, "settings_tried": len(meta["tuning"])}


def cluster_figures(store, factory: str, workers: str, recall: str) -> dict:
    """Build ``factory`` on a LocalCluster of ``workers`` processes as `fs index --cluster` does;
    CPU-seconds count this process and its (exited) worker processes."""
    import resource

    import faiss

    from featurestore.cluster import dask_client
    from featurestore.index.distributed import build_index_distributed
    from featurestore.index.store_index import load_index, recall_at_k

    def cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    queries = np.ascontiguousarray(store.features(ENCODER, "queries"), dtype=np.float32)
    faiss.normalize_L2(queries)
    cpu0, t0 = cpu(), time.perf_counter()
    with dask_client(f"local:{workers}") as client:
        started = time.perf_counter()
        built = build_index_distributed(store, ENCODER, "pool", factory, client=client, recall=float(recall),
                                        quiet=True)
    wall, cpu_s = time.perf_counter() - t0, cpu() - cpu0
    meta = built.meta
    index = load_index(store, ENCODER, "pool", factory, rebuild_stale=False)
    flat = faiss.IndexFlatIP(queries.shape[1])
    for _, block in store.iter_features(ENCODER, "pool"):
        block = np.ascontiguousarray(block, dtype=np.float32)
        faiss.normalize_L2(block)
        flat.add(block)
    _, exact = flat.search(queries, K)
    index.search(queries[:50], K)
    t1 = time.perf_counter()
    _, approx = index.search(queries, K)
    return {"factory": meta["factory"], "workers": int(workers), "wall_seconds": wall,
            "cluster_start_seconds": started - t0, "cpu_seconds": cpu_s, "stages": meta["build_seconds"],
            "bytes": meta["bytes"], "ivfdata_bytes": meta["ivfdata_bytes"], "params": meta["search_params"],
            "target_met": meta["target_met"], "recall": recall_at_k(approx, exact, K),
            "qps": len(queries) / (time.perf_counter() - t1)}


def measure(task: str, path: Path, *options: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", task, str(path), *options], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help=f"Row counts (default {LAPTOP_SIZES}; with --full "
                                                      f"{FULL_INDEX_SIZES} for the index, {FULL_GDA_SIZES} for GDA).")
    parser.add_argument("--full", action="store_true", help="The full sizes (1M rows and more: about 2 GB per 1M).")
    parser.add_argument("--parts", default="gda,index", help="What to measure: gda, index or both.")
    parser.add_argument("--max-memory", default="1G", help="Memory budget of the auto index.")
    parser.add_argument("--recall", default="0.95", help="recall@10 target of the auto index.")
    parser.add_argument("--real", default=None, metavar="STORE",
                        help="Also index a store of real features (e.g. `fs extract` of ../shared/data/cifar10-small "
                             "with the EfficientNet-Lite0 weights): its first encoder, --real-pool indexed, "
                             "--real-queries as the unseen queries; a copy is indexed, the store is not touched.")
    parser.add_argument("--real-pool", default="test")
    parser.add_argument("--real-queries", default="val")
    parser.add_argument("--cluster-factory", default="IVF1024,SQ8", help="Factory of the cluster builds.")
    parser.add_argument("--workers", default="1,2", help="Worker counts of the cluster builds.")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--keep", action="store_true", help="Keep the stores for another run.")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    folder = Path(args.dir or tempfile.mkdtemp(prefix="fs-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    texts = {"index": args.sizes or (FULL_INDEX_SIZES if args.full else LAPTOP_SIZES),
             "gda": args.sizes or (FULL_GDA_SIZES if args.full else LAPTOP_SIZES),
             "cluster": args.sizes or (FULL_INDEX_SIZES if args.full else LAPTOP_SIZES)}
    sizes: dict[str, list[int]] = {part: [int(s) for s in text.split(",")] for part, text in texts.items()
                                   if part in parts}
    stores: dict[int, Path] = {}
    for rows in sorted({r for part in sizes.values() for r in part}):
        path = folder / f"pool-{rows}.h5"
        if not path.exists():
            t0 = time.perf_counter()
            make_store(path, rows)
            print(f"wrote {rows:,} + {N_QUERIES:,} rows in {time.perf_counter() - t0:.1f} s "
                  f"({path.stat().st_size / 2**30:.2f} GiB)", flush=True)
        stores[rows] = path
    if "gda" in sizes:
        gda_figures(sizes["gda"], stores)
    if "index" in sizes:
        index_report(sizes["index"], stores, args.max_memory, args.recall)
    if "cluster" in sizes:
        cluster_report(sizes["cluster"], stores, args.cluster_factory, args.workers, args.recall)
    if args.real:
        real_report(Path(args.real), folder, args.real_pool, args.real_queries, args.max_memory, args.recall)
    if not args.keep and args.dir is None:
        shutil.rmtree(folder)


def gda_figures(sizes: list[int], stores: dict[int, Path]) -> None:
    print(f"\n{'rows':>10} {'streamed fit s':>15} {'s / M rows':>11} {'peak RSS MB':>12} {'array MB':>9}")
    streamed = {}
    for rows in sizes:
        r = measure("stream", stores[rows])
        streamed[rows] = r
        print(f"{rows:>10,} {r['seconds']:>15.2f} {r['seconds'] / rows * 1e6:>11.2f} {r['peak_rss_mb']:>12.0f} "
              f"{rows * DIM * 2 / 2**20:>9.0f}")
    base = sizes[0]
    memory = measure("memory", stores[base])
    print(f"\nin-memory GDA fit at {base:,} rows: {memory['seconds']:.2f} s (peak RSS {memory['peak_rss_mb']:.0f} MB, "
          "features loaded before timing)")
    print(f"ratio streamed / in-memory fit time at {base:,} rows: {streamed[base]['seconds'] / memory['seconds']:.2f}"
          "  (goal <= 1.3; streamed includes reading the store)")


def index_report(sizes: list[int], stores: dict[int, Path], max_memory: str, recall: str) -> None:
    print(f"\nFAISS indexes chosen by --factory auto --max-memory {max_memory} --recall {recall} "
          f"({N_QUERIES:,} unseen queries, recall@{K} against exact search)")
    print(f"{'rows':>10} {'factory':<38} {'build s':>8} {'(sample/train/add/tune)':>24} {'CPU s':>7} {'memory':>10} "
          f"{'tuned':>20} {'recall@10':>9} {'q/s':>8} {'Flat q/s':>9} {'x Flat':>7}")
    for rows in sizes:
        runs = [("auto", measure("index", stores[rows], "auto", max_memory, recall))]
        if rows <= 200_000:
            runs.append(("HNSW32", measure("index", stores[rows], "HNSW32", max_memory, recall)))
        for _, r in runs:
            st = r["stages"]
            stages = "/".join(f"{st.get(s, 0):.0f}" for s in ("sample", "train", "add", "tune"))
            tuned = ",".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
            flag = "" if r["target_met"] else " (target not met)"
            print(f"{rows:>10,} {r['factory']:<38} {r['build_seconds']:>8.1f} {stages:>24} "
                  f"{r['build_cpu_seconds']:>7.0f} "
                  f"{r['bytes'] / 2**20:>7.0f} MiB {tuned:>20} {r['recall']:>9.3f} {r['qps']:>8.0f} "
                  f"{r['flat_qps']:>9.0f} {r['qps'] / r['flat_qps']:>6.1f}x{flag}", flush=True)
        if rows >= 1_000_000:
            r = runs[0][1]
            ok = (r["build_seconds"] < 180 and r["recall"] >= 0.95 and r["qps"] >= 20 * r["flat_qps"]
                  and r["bytes"] <= 2**30)
            print(f"  goal at 1M (build < 3 min, recall@10 >= 0.95 at >= 20x Flat q/s, <= 1 GiB): "
                  f"{'met' if ok else 'NOT met'}")
    print("build s is wall-clock time (sample/train/add/tune stages); CPU s is the build's CPU time over all "
          "threads: on shared cores wall-clock time grows with the load, CPU time does not")


def cluster_report(sizes: list[int], stores: dict[int, Path], factory: str, workers: str, recall: str) -> None:
    import os

    print(f"\ncluster builds of {factory} (fs index --cluster local:W, --recall {recall}); load average before: "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"{'rows':>10} {'W':>2} {'wall s':>7} {'(start/sample/train/add/merge/tune)':>36} {'CPU s':>7} "
          f"{'RAM':>9} {'on disk':>9} {'tuned':>10} {'recall@10':>9} {'q/s':>7}")
    for rows in sizes:
        runs = {}
        for w in workers.split(","):
            r = runs[w] = measure("cluster", stores[rows], factory, w, recall)
            st = r["stages"]
            stages = "/".join(f"{v:.0f}" for v in [r["cluster_start_seconds"]]
                              + [st.get(s, 0) for s in ("sample", "train", "add", "merge", "tune")])
            tuned = ",".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
            print(f"{rows:>10,} {w:>2} {r['wall_seconds']:>7.1f} {stages:>36} {r['cpu_seconds']:>7.0f} "
                  f"{r['bytes'] / 2**20:>5.1f} MiB {r['ivfdata_bytes'] / 2**20:>5.0f} MiB {tuned:>10} "
                  f"{r['recall']:>9.3f} {r['qps']:>7.0f}{'' if r['target_met'] else ' (target not met)'}", flush=True)
        first, *others = list(runs)
        for w in others:
            a, b = runs[first], runs[w]
            print(f"  {w} vs {first} workers: add stage {b['stages']['add'] / a['stages']['add']:.2f}x the time, "
                  f"wall {b['wall_seconds'] / a['wall_seconds']:.2f}x, "
                  f"CPU-seconds {b['cpu_seconds'] / a['cpu_seconds']:.2f}x")
    print(f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


def real_report(path: Path, folder: Path, pool: str, queries: str, max_memory: str, recall: str) -> None:
    """The auto index of a real store's split (exact Flat at this size) and the approximate index
    auto builds for large splits (IVF + 4-bit fast-scan PQ + exact re-ranking), tuned to the
    same recall on the real features: does the tuning meet the target on real structure?"""
    from featurestore.index.plan import ivf_lists, pq_subquantizers
    from featurestore.store.feature_store import FeatureStore

    copy = folder / f"real-{path.name}"
    shutil.copyfile(path, copy)
    with FeatureStore(copy) as store:
        encoder = store.encoders()[0]
        n, dim = len(store.ids(pool)), int(store.encoder_info(encoder)["embed_dim"])
    approximate = f"IVF{ivf_lists(n)},PQ{pq_subquantizers(dim)}x4fs,RFlat"
    print(f"\nreal features: {path.name}, encoder {encoder}, {n:,} rows x {dim}-d of split {pool!r} indexed, "
          f"split {queries!r} as unseen queries")
    print(f"{'factory':<38} {'build s':>8} {'memory':>10} {'tuned':>20} {'tuning recall':>13} {'recall@10':>9} "
          f"{'q/s':>8} {'Flat q/s':>9}")
    for factory in ("auto", approximate):
        r = measure("index", copy, factory, max_memory, recall, encoder, pool, queries)
        tuned = ",".join(f"{k}={v}" for k, v in r["params"].items()) or "-"
        flag = "" if r["target_met"] else " (target not met)"
        print(f"{r['factory']:<38} {r['build_seconds']:>8.1f} {r['bytes'] / 2**20:>7.1f} MiB {tuned:>20} "
              f"{r['tuning_recall'] or 1.0:>13.3f} {r['recall']:>9.3f} {r['qps']:>8.0f} {r['flat_qps']:>9.0f}{flag}",
              flush=True)


if __name__ == "__main__":
    main()
