"""`fs serve` latency against `fs search` per query, measured in one run.

Writes a store of N synthetic rows (default 100,000 x the model's embedding size, 10 classes)
under the key of a real open_clip architecture with random weights (ViT-B-32 by default: the
text tower costs what the trained one costs), builds its Flat index, starts `fs serve` on a
free 127.0.0.1 port, then sends, one at a time, 200 text queries and 200 id queries (k=10)
and prints p50 / p95 latency seen by the client and the server's own ``took_ms``. The same
kinds of queries through `fs search` (a new process per query, which loads the model and the
index each time) give the speed-up of a served query.

Usage: python bench/serve.py [--rows 100000] [--queries 200] [--search-runs 5] [--model ViT-B-32]
       [--class-filter] [--dir DIR] [--keep]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a script, this folder is sys.path[0], and bench/solvers.py would hide the solvers package;
# the repository root takes its place (tests.serve_server starts and stops `fs serve`).
REPO = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == REPO / "bench":
    sys.path[0] = str(REPO)

SPLIT, CLASSES, CHUNK, K = "pool", 10, 16384, 10
WORDS = ["dog", "cat", "car", "tree", "beach", "mountain", "bird", "boat", "house", "flower"]


def make_store(path: Path, rows: int, model: str, seed: int = 0) -> str:
    """``rows`` random unit vectors under the encoder key of ``model`` with random weights."""
    from tqdm.auto import tqdm

    from featurestore.encoders import load_encoder
    from featurestore.store.feature_store import FeatureStore

    encoder = load_encoder(model, "random", device="cpu")
    dim = encoder.embed_dim
    rng = np.random.default_rng(seed)
    with FeatureStore(path, mode="a") as store:
        ids = [f"row-{i:07d}" for i in range(rows)]
        store.add_rows(SPLIT, ids, [f"synthetic/{i}.jpg" for i in ids], np.arange(rows) % CLASSES,
                       classes=[f"class{c}" for c in range(CLASSES)], source="bench/serve.py")
        store.ensure_encoder(encoder.key, encoder.info)
        store.prepare_features(encoder.key, SPLIT, dim)
        store.begin_appending()
        for start in tqdm(range(0, rows, CHUNK), desc="write store", unit="chunk"):
            stop = min(start + CHUNK, rows)
            block = rng.standard_normal((stop - start, dim)).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            store.write_features(encoder.key, SPLIT, np.arange(start, stop), block, np.ones(stop - start, bool),
                                 [""] * (stop - start))
    return encoder.key


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def timed_fs_search(store: Path, key: str, args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cli.main", "search", "--store", str(store), "--encoder", key,
                    "--split", SPLIT, "-k", str(K), "--json", "-q", *args], check=True, capture_output=True, cwd=REPO)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200, help="text queries, and as many id queries")
    parser.add_argument("--search-runs", type=int, default=5, help="fs search runs per query kind")
    parser.add_argument("--model", default="ViT-B-32", help="open_clip architecture (random weights)")
    parser.add_argument("--class-filter", action="store_true", help="also time id queries filtered to one class")
    parser.add_argument("--dir", default=None, help="where to write the store (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the store")
    args = parser.parse_args()

    import httpx

    from featurestore.index.store_index import build_index
    from tests.serve_server import running_server

    workdir = Path(args.dir or tempfile.mkdtemp(prefix="bench-serve-"))
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "serve.h5"
    try:
        if store.exists():
            store.unlink()
        t0 = time.perf_counter()
        key = make_store(store, args.rows, args.model)
        build_index(store, key, SPLIT, "Flat")
        print(f"store: {args.rows} rows of {key} written and indexed (Flat) in {time.perf_counter() - t0:.1f} s")

        rng = np.random.default_rng(1)
        texts = [f"a photo of a {WORDS[i % len(WORDS)]} number {i}" for i in range(args.queries)]
        ids = [f"row-{i:07d}" for i in rng.choice(args.rows, size=args.queries, replace=False)]
        results: dict[str, dict[str, list[float]]] = {}
        t0 = time.perf_counter()
        with running_server(store, key, timeout=600, one_thread=False) as url:
            startup = time.perf_counter() - t0
            with httpx.Client(base_url=url, timeout=120) as client:
                for warm in range(3):  # first requests pay for lazy initialisation
                    client.get("/api/search", params={"query": f"warm-up {warm}", "k": K, "split": SPLIT})
                    client.get("/api/search", params={"id": ids[warm], "k": K, "split": SPLIT})
                kinds = [("text", {"query": t}) for t in texts] + [("id", {"id": i}) for i in ids]
                if args.class_filter:
                    kinds += [("id+class", {"id": i, "class": f"class{n % CLASSES}"}) for n, i in enumerate(ids)]
                for kind, query in kinds:
                    start = time.perf_counter()
                    response = client.get("/api/search", params={**query, "k": K, "split": SPLIT})
                    elapsed = (time.perf_counter() - start) * 1000
                    response.raise_for_status()
                    answer = response.json()
                    assert len(answer["hits"]) == K, answer
                    entry = results.setdefault(kind, {"client": [], "server": []})
                    entry["client"].append(elapsed)
                    entry["server"].append(answer["took_ms"])
        print(f"fs serve start-up (model + index load, {args.model}): {startup:.1f} s")

        search = {"text": [timed_fs_search(store, key, ["--query", texts[i]]) for i in range(args.search_runs)],
                  "id": [timed_fs_search(store, key, ["--id", ids[i]]) for i in range(args.search_runs)]}

        print(f"\n{args.queries} queries per kind, k={K}, {args.rows} rows, one client, sequential")
        print(f"{'query':<9} {'p50 ms':>8} {'p95 ms':>8} {'server p50':>11} {'server p95':>11} "
              f"{'fs search s':>12} {'speed-up':>9}")
        for kind, entry in results.items():
            p50, p95 = percentiles(entry["client"])
            s50, s95 = percentiles(entry["server"])
            base = search.get(kind.split("+")[0])
            median = statistics.median(base) if base else float("nan")
            print(f"{kind:<9} {p50:8.1f} {p95:8.1f} {s50:11.1f} {s95:11.1f} {median:12.2f} "
                  f"{median * 1000 / p50:8.0f}x")
        print(f"(fs search: median of {args.search_runs} runs per kind, each a new process; "
              "speed-up = fs search median / served p50)")
        goal = max(percentiles(results["text"]["client"])[1], percentiles(results["id"]["client"])[1])
        print(f"goal p95 < 100 ms: {'met' if goal < 100 else 'NOT met'} (worst p95 {goal:.1f} ms)")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
