"""Out-of-core GDA and large FAISS indexes, measured in one run.

Writes synthetic stores of 1M, 2M and 4M rows x 512-d float16 features (1,000 Gaussian
classes) through the FeatureStore writer, then, each in a fresh subprocess so peak RSS is its own:
  - streamed (chunked) GDA fit time and peak RSS per size: time should be linear in rows and
    memory flat, well under the array size;
  - in-memory GDA fit time at 1M rows (features loaded first, fit timed alone), and the ratio
    chunked / in-memory (goal <= 1.3);
  - an IVF-PQ index at 1M rows, plain and with exact re-ranking (RFlat): recall@10 and
    queries/s against exact Flat search.

Usage: python bench/scale.py [--sizes 1000000,2000000,4000000] [--dir DIR] [--keep] [--parts gda,index]
Needs about 2 GB of disk per million rows.
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

DIM, CLASSES, CHUNK, LATENT = 512, 1000, 65536, 16
ENCODER = "bench/synthetic"
IVFPQ = "IVF1024,PQ64"
NPROBES = (8, 32)


def make_store(path: Path, rows: int, seed: int = 0) -> None:
    """rows x 512 float16 features of 1,000 Gaussian classes, written chunk by chunk.

    Like real embeddings, the within-class variation has a low intrinsic dimension (16
    latent directions) plus a little isotropic noise, so neighbours are meaningful.
    """
    from featurestore.store import FeatureStore

    rng = np.random.default_rng(seed)
    means = rng.normal(size=(CLASSES, DIM)).astype(np.float32)
    basis = (rng.normal(size=(LATENT, DIM)) * 2.0 * np.sqrt(DIM / LATENT)).astype(np.float32)
    labels = np.arange(rows) % CLASSES
    with FeatureStore(path, mode="a") as store:
        store.add_rows("pool", [f"{i:08d}" for i in range(rows)], [""] * rows, labels)
        store.ensure_encoder(ENCODER, {"model": "synthetic", "weights": "gaussian", "embed_dim": DIM})
        store.prepare_features(ENCODER, "pool", DIM, "float16")
        store.begin_appending()
        for start in range(0, rows, CHUNK):
            stop = min(start + CHUNK, rows)
            chunk_rng = np.random.default_rng([seed, start])
            latent = chunk_rng.standard_normal((stop - start, LATENT), dtype=np.float32)
            noise = 0.2 * chunk_rng.standard_normal((stop - start, DIM), dtype=np.float32)
            X = means[labels[start:stop]] + latent @ basis + noise
            store.write_features(ENCODER, "pool", np.arange(start, stop), X.astype(np.float16),
                                 np.ones(stop - start, bool), [""] * (stop - start))


def child(task: str, path: str) -> None:
    """Run one measurement and print it as JSON with this process's peak RSS."""
    import resource

    from featurestore.store import FeatureStore

    out: dict = {}
    with FeatureStore(path) as store:
        if task == "stream":
            import solvers.gda  # noqa: F401  (imported before timing, as in the in-memory task)
            from workflows.streaming import fit_gda_streaming

            t0 = time.perf_counter()
            fit_gda_streaming(store, ENCODER, "pool", n_classes=CLASSES)  # default chunk rows
            out["seconds"] = time.perf_counter() - t0
        elif task == "memory":
            from solvers.gda import GDA

            X, y = store.features(ENCODER, "pool"), store.labels("pool")
            t0 = time.perf_counter()
            GDA(n_classes=CLASSES).fit(X, y)
            out["seconds"] = time.perf_counter() - t0
        elif task == "index":
            out.update(index_figures(store))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def index_figures(store) -> dict:
    import faiss

    from featurestore.index import build_index, recall_at_k

    n_queries, k = 1000, 10
    rng = np.random.default_rng(7)
    t0 = time.perf_counter()
    ivf = build_index(store, ENCODER, "pool", IVFPQ, train_size=65536, quiet=True)
    build = time.perf_counter() - t0
    refined = build_index(store, ENCODER, "pool", IVFPQ + ",RFlat", train_size=65536, quiet=True)
    faiss.downcast_index(refined.index).k_factor = 4
    flat = build_index(store, ENCODER, "pool", "Flat", quiet=True)
    X = store.read_rows(ENCODER, "pool", 0, 200_000)[0]
    queries = X[rng.choice(len(X), n_queries, replace=False)].astype(np.float32)
    queries += 0.2 * rng.standard_normal(queries.shape, dtype=np.float32)
    faiss.normalize_L2(queries)
    t0 = time.perf_counter()
    _, exact = flat.search(queries, k)
    flat_qps = n_queries / (time.perf_counter() - t0)
    figures = {"ivfpq_build_seconds": build, "flat_qps": flat_qps, "build_recall10": ivf.meta["recall_at_10"]}
    for name, index in (("ivfpq", ivf), ("ivfpq_rflat", refined)):
        for nprobe in NPROBES:
            t0 = time.perf_counter()
            _, approx = index.search(queries, k, nprobe=nprobe)
            figures[f"{name}_nprobe{nprobe}_qps"] = n_queries / (time.perf_counter() - t0)
            figures[f"{name}_nprobe{nprobe}_recall10"] = recall_at_k(approx, exact, k)
    return figures


def measure(task: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", task, str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,2000000,4000000")
    parser.add_argument("--dir", default=None)
    parser.add_argument("--keep", action="store_true", help="Keep the stores for another run.")
    parser.add_argument("--parts", default="gda,index", help="What to measure: gda, index or both.")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    folder = Path(args.dir or tempfile.mkdtemp(prefix="fs-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    stores = {}
    for rows in sizes:
        path = folder / f"pool-{rows}.h5"
        if not path.exists():
            t0 = time.perf_counter()
            make_store(path, rows)
            print(f"wrote {rows:,} rows in {time.perf_counter() - t0:.1f} s ({path.stat().st_size / 2**30:.2f} GiB)")
        stores[rows] = path

    parts = set(args.parts.split(","))
    if "gda" in parts:
        gda_figures(sizes, stores)
    if "index" in parts:
        index_report(sizes[0], stores[sizes[0]])
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


def index_report(base: int, path: Path) -> None:
    idx = measure("index", path)
    print(f"\nFAISS at {base:,} rows x {DIM}-d (1,000 noisy queries, k=10); {IVFPQ} built in "
          f"{idx['ivfpq_build_seconds']:.1f} s")
    print(f"  recall@10 reported by build_index (stored rows as queries, default nprobe=1): {idx['build_recall10']:.3f}")
    print(f"  {'Flat (exact)':<32} {idx['flat_qps']:>9.0f} queries/s   recall@10 1.000   speed-up 1.0x")
    for name, label in (("ivfpq", IVFPQ), ("ivfpq_rflat", IVFPQ + ",RFlat (k_factor 4)")):
        for nprobe in NPROBES:
            qps = idx[f"{name}_nprobe{nprobe}_qps"]
            print(f"  {label + f' nprobe={nprobe}':<32} {qps:>9.0f} queries/s   recall@10 "
                  f"{idx[f'{name}_nprobe{nprobe}_recall10']:.3f}   speed-up {qps / idx['flat_qps']:.1f}x")


if __name__ == "__main__":
    main()
