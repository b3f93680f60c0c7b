"""The few-shot sweep of `fs benchmark` on synthetic stores with the real sizes of the papers'
11 datasets (train / val / test rows and classes from CoOp's table, 1024-d features as CLIP RN50),
timed: total wall time, CPU seconds and seconds per cell for each method (fit, score).

Run: python bench/benchmark.py            the goal's sweep: zero-shot + GDA, 11 datasets x shots
                                          1,2,4,8,16 x seeds 1,2,3 = 176 cells, --jobs 2 (at most
                                          the machine's cores)
     python bench/benchmark.py --full     the four-method sweep: + Tip-Adapter and the linear
                                          probe, 506 cells
     options: --methods a,b (instead of either), --datasets all|small|a,b, --shots, --seeds,
     --jobs N, --imagenet-pool N, --workdir DIR, --csv PATH (every cell's row)
Stores are written once under --workdir and reused. Prints figures; asserts nothing. For the
peak memory, run it under `/usr/bin/time -v` (its "Maximum resident set size").

ImageNet's store holds its full 1,281,167-row training pool (5.2 GB of float32 at 1024-d). The
sweep reads its labels, draws every cell's few-shot rows and held-out validation rows (ImageNet
has no val split: 4 per class, as fs benchmark does for it), and reads only those rows, in one
pass over the HDF5 chunks that hold them. With --jobs 2 each store is read while the previous
one's cells run (ImageNet, the longest read, second, behind the cells of the next largest
store); consecutive small stores (up to 256 MB of arrays) are read together and share one set of
forked workers; at most two such groups' arrays at once. --imagenet-pool N writes a sample of N rows per
class instead (the draws are at most 16 + 4 per class, so the fits and scores are the same
size; only the pool is smaller).

Figures (before / after, machine and load) are in bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a script, this file's folder comes first on sys.path; put the repository root there.
sys.path[0] = str(Path(__file__).resolve().parents[1])

ENCODER = "RN50/synthetic"
GOAL_METHODS = "zero-shot,gda"
FULL_METHODS = "zero-shot,gda,tip-adapter,linear-probe"
SIGNAL, TEXT_NOISE = 0.25, 1.0


def write_store(path: Path, name: str, classes: int, sizes: dict[str, int], dim: int, seed: int) -> None:
    """A store of Gaussian class clusters on the sphere, rows of each split spread evenly over the
    classes: each class mean a random unit direction m_c, a row x = SIGNAL m_y + N(0, I / dim)
    (then L2-normalized), the class text weights m_c + TEXT_NOISE N(0, I / dim).

    These problems are easier than real CLIP features (16-shot accuracies near 1; isotropic noise
    cannot give both the papers' zero-shot and 1-shot accuracies), which matters only for the
    iterative linear probe: its L-BFGS iterations depend on the data, so its times here are a
    lower bound; GDA, Tip-Adapter and zero-shot cost the same on any data of these sizes."""
    from featurestore.store.feature_store import FeatureStore

    rng = np.random.default_rng(seed)
    means = rng.standard_normal((classes, dim)).astype(np.float32)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    names = [f"{name}-class{i}" for i in range(classes)]
    tmp = path.with_suffix(".partial.h5")
    if tmp.exists():
        tmp.unlink()
    with FeatureStore(tmp, mode="a") as store:
        store.ensure_encoder(ENCODER, {"model": "RN50", "weights": "synthetic", "embed_dim": dim})
        for split, n in sizes.items():
            y = np.arange(n) % classes
            ids = [f"{split}/{i:07d}" for i in range(n)]
            store.add_rows(split, ids, ids, y.tolist(), classes=names, source=f"dataset:{name}:synthetic")
            store.prepare_features(ENCODER, split, dim, "float32")
            store.begin_appending()
            for start in range(0, n, 65536):
                rows = np.arange(start, min(n, start + 65536))
                X = SIGNAL * means[y[rows]] + rng.standard_normal((rows.size, dim), dtype=np.float32) / np.sqrt(dim)
                X /= np.linalg.norm(X, axis=1, keepdims=True)
                store.write_features(ENCODER, split, rows, X, np.ones(rows.size, bool), [""] * rows.size)
        text = means + TEXT_NOISE * rng.standard_normal(means.shape).astype(np.float32) / np.sqrt(dim)
        text /= np.linalg.norm(text, axis=1, keepdims=True)
        store.put_text_bank(ENCODER, "train/dataset", text, names, kind="classes", classes=names,
                            templates=["{}"], per_template=text[:, None])
    os.replace(tmp, path)
    Path(f"{tmp}.lock").unlink(missing_ok=True)  # the writer lock file of the partial name


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished child processes (--jobs workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    from featurestore.datasets import DATASETS, FEWSHOT_ELEVEN

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="all", help="all (the 11), small (all but ImageNet) or a comma list")
    parser.add_argument("--methods", default=None, help=f"default {GOAL_METHODS} ({FULL_METHODS} with --full)")
    parser.add_argument("--full", action="store_true", help="the four-method sweep (506 cells)")
    parser.add_argument("--shots", default="1,2,4,8,16")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--imagenet-pool", type=int, default=0,
                        help="ImageNet pool rows per class (default 0: the full 1.28M rows)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--csv", help="also write every cell's row (metrics, chosen hyperparameters) to this CSV")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "fs-bench-benchmark"))
    args = parser.parse_args()

    names = {"all": list(FEWSHOT_ELEVEN), "small": list(FEWSHOT_ELEVEN[1:])}.get(args.datasets)
    names = names or [n.strip() for n in args.datasets.split(",")]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stores = []
    start = time.perf_counter()
    for i, name in enumerate(names):
        info = DATASETS[name]
        sizes = dict(info.sizes)
        if name == "imagenet" and args.imagenet_pool:
            sizes["train"] = args.imagenet_pool * info.n_classes
        path = workdir / f"{name}-{args.dim}d-{sizes['train']}.h5"
        if not path.exists():
            write_store(path, name, info.n_classes, sizes, args.dim, seed=i)
        stores.append(str(path))
    print(f"stores ready in {time.perf_counter() - start:.1f} s under {workdir} "
          f"(ImageNet pool: {'full' if not args.imagenet_pool else f'{args.imagenet_pool}/class sample'})")

    from workflows.benchmark import run

    methods = (args.methods or (FULL_METHODS if args.full else GOAL_METHODS)).split(",")
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    frame = run(stores, ENCODER, methods=methods, shots=[int(s) for s in args.shots.split(",")],
                seeds=[int(s) for s in args.seeds.split(",")], jobs=args.jobs, quiet=True)
    total, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    if args.csv:
        frame.to_csv(args.csv, index=False)
    cells = frame.groupby("method").agg(cells=("top1", "size"), top1=("top1", "mean"), fit=("fit_seconds", "mean"),
                                        score=("score_seconds", "mean"), fit_total=("fit_seconds", "sum"),
                                        score_total=("score_seconds", "sum"))
    print(f"\nsweep: {len(names)} datasets x {methods} x shots {args.shots} x seeds {args.seeds}, "
          f"--jobs {args.jobs}, {os.cpu_count()} cores: {len(frame)} cells in {total:.1f} s "
          f"(loading the stores included); CPU time {cpu:.1f} s (user + system, workers included: "
          "on a shared machine the wall time also counts other processes)")
    own, children = (resource.getrusage(who).ru_maxrss / 1024
                     for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(f"peak RSS: this process {own:.0f} MB, largest worker or reader process {children:.0f} MB "
          "(Linux ru_maxrss; /usr/bin/time -v gives the largest of all)")
    print(f"{'method':<14}{'cells':>6}{'mean top-1':>12}{'fit s/cell':>12}{'score s/cell':>14}{'total s':>10}")
    for method, row in cells.iterrows():
        print(f"{method:<14}{int(row['cells']):>6}{row['top1']:>12.3f}{row['fit']:>12.3f}{row['score']:>14.3f}"
              f"{row['fit_total'] + row['score_total']:>10.1f}")
    per_dataset = frame.groupby(["dataset", "method"])[["fit_seconds", "score_seconds"]].sum().sum(axis=1)
    print("\nseconds per dataset and method (fit + score, all cells):")
    print(per_dataset.unstack("method").round(2).to_string())


if __name__ == "__main__":
    main()
