"""Extraction, FAISS and GDA on a given device, measured in one run (issue 16).

  (a) the limit: the bare image forward of ViT-B-32 (random weights, no hub here) at batch 256
      on pre-made tensors already on the device, fp16 and bf16 under autocast (fp32 on a CPU);
  (b) decoding + preprocessing alone, images/s: PIL in DataLoader workers (the worker count
      `fs extract` picks), and tensor decoding (``decode_jpeg`` on the device + transforms.v2,
      `featurestore.extract.tensor_decoding`) fed by its reading workers;
  (c) `extract` end to end (list, read, decode, preprocess, encode, write the store) on a folder
      of N generated photo-like JPEGs (default 500x375) with each decoding mode, and the ratio
      end-to-end / bare forward (goal >= 0.90 with GPU decoding);
  (d) FAISS over the same rows x 512 float16 synthetic embeddings (bench/scale.py's clustered
      distribution): Flat and IVF-PQ build and search, on the CPU and on the GPU through
      ``faiss.index_cpu_to_all_gpus`` (what featurestore.index.store_index uses), recall@10 of IVF-PQ against
      exact search at the same nprobe on both, and GPU / CPU speed ratios;
  (e) the streamed GDA fit (workflows.streaming.fit_gda_streaming) on those rows in the store.

Every figure is printed as it is measured, then a summary with the ratios; ``--json`` also
writes them to a file.

Usage: python bench/gpu.py [--device cuda] [--images 20000] [--rows 1000000] [--parts a,b,c,d,e]
       [--size 500x375] [--batch-size 256] [--json out.json] [--dir DIR]
On a machine without a GPU it runs the same steps on the CPU with small defaults
(--images 128 --rows 10000 --batch-size 32), to prove the script runs.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

# Run as a script, this folder is sys.path[0], and bench/solvers.py would hide the solvers package.
HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0]).resolve() == HERE:
    sys.path.pop(0)

MODEL = "ViT-B-32"
N_QUERIES, K, IVF_LISTS, PQ_BYTES, NPROBE = 2000, 10, 1024, 32, 16
FIGURES: dict[str, float | str] = {}


def figure(name: str, value: float | str, unit: str = "") -> None:
    FIGURES[name] = value
    shown = f"{value:12.2f}" if isinstance(value, float) else f"{value!s:>12}"
    print(f"  {name:<58} {shown} {unit}", flush=True)


# ---------------------------------------------------------------------------------------- data
def _photo_jpegs(args: tuple[str, int, int, int, int]) -> None:
    """Write JPEGs start..stop-1: smooth random fields with texture, quality 90 (about 40 kB
    at 500x375, like a web photo)."""
    from PIL import Image

    folder, start, stop, width, height = args
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "RGB")
        smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.int16)
        texture = rng.integers(-12, 13, smooth.shape, dtype=np.int16)
        pixels = np.clip(smooth + texture, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(Path(folder) / f"{i:07d}.jpg", quality=90)


def write_jpegs(folder: Path, count: int, width: int, height: int, workers: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    step = max(1, count // (4 * workers) or 1)
    jobs = [(str(folder), s, min(s + step, count), width, height) for s in range(0, count, step)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_photo_jpegs, jobs))


def _load_scale_module():
    spec = importlib.util.spec_from_file_location("bench_scale", HERE / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------ measures
def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_forward(encoder, batch_size: int, seconds: float = 5.0) -> float:
    """Images/s of the image forward at ``batch_size`` on a tensor already on the device."""
    import torch

    from featurestore.extract.pipeline import DeviceForward

    forward = DeviceForward(encoder)
    height, width = encoder.info["preprocess"]["size"]
    images = torch.randn(batch_size, 3, height, width, device=encoder.device).to(encoder.dtype)
    forward(images)  # warm-up (kernels, autotuning)
    sync(encoder.device)
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or done == 0:
        forward(images)  # includes the copy of the embeddings back to the host, as extraction does
        done += batch_size
    sync(encoder.device)
    return done / (time.perf_counter() - t0)


def decode_rate(source, encoder, mode: str, batch_size: int, workers: int) -> float:
    """Images/s of reading + decoding + preprocessing alone (the tensors reach the device for
    tensor decoding; PIL-decoded batches stay on the host)."""
    from featurestore.encoders.preprocessing import Preprocessing
    from featurestore.extract.image_dataset import EncodedImageDataset, ImageRecordDataset, make_loader
    from featurestore.extract.tensor_decoding import TensorDecoder

    records = source.records()
    pin = encoder.device.type == "cuda"
    if mode == "tensor":
        decoder = TensorDecoder(Preprocessing.from_dict(encoder.info["preprocess"]), encoder.device,
                                encoder.preprocess)
        loader = make_loader(EncodedImageDataset(source, records, encoder.preprocess), batch_size, workers, pin)
    else:
        decoder = None
        loader = make_loader(ImageRecordDataset(source, records, encoder.preprocess), batch_size, workers, pin)
    t0 = time.perf_counter()
    for batch in loader:
        if decoder is not None:
            decoder(batch.payloads, batch.ok, batch.errors)
    sync(encoder.device)
    return len(records) / (time.perf_counter() - t0)


def end_to_end(folder: Path, store: Path, encoder, mode: str, batch_size: int | None) -> tuple[float, object]:
    from featurestore.extract.pipeline import extract
    from featurestore.sources import open_source

    if store.exists():
        store.unlink()
    t0 = time.perf_counter()
    report = extract(open_source(folder), store, encoder, batch_size=batch_size, decode=mode, quiet=True)
    seconds = time.perf_counter() - t0
    assert report.failed == 0, report.summary()
    return report.extracted / seconds, report


def faiss_figures(X: np.ndarray, Q: np.ndarray, gpu: bool) -> None:
    import faiss

    d = X.shape[1]
    Xf, Qf = np.ascontiguousarray(X, dtype=np.float32), np.ascontiguousarray(Q, dtype=np.float32)
    faiss.normalize_L2(Xf)
    faiss.normalize_L2(Qf)
    lists = min(IVF_LISTS, max(16, len(Xf) // 64))
    places = ["cpu", "gpu"] if gpu else ["cpu"]
    exact = None
    for place in places:
        # "np": no polysemous training (60x the PQ training time on the CPU; GPU indexes ignore it)
        for factory in ("Flat", f"IVF{lists},PQ{PQ_BYTES}np"):
            index = faiss.index_factory(d, factory, faiss.METRIC_INNER_PRODUCT)
            if place == "gpu":
                index = faiss.index_cpu_to_all_gpus(index)
            t0 = time.perf_counter()
            if not index.is_trained:
                train = Xf[np.random.default_rng(0).choice(len(Xf), min(len(Xf), 64 * lists), replace=False)]
                index.train(train)
            index.add(Xf)
            build = time.perf_counter() - t0
            if factory != "Flat":  # GPU indexes (and their replicas) take GpuParameterSpace
                space = faiss.GpuParameterSpace() if place == "gpu" else faiss.ParameterSpace()
                space.set_index_parameter(index, "nprobe", NPROBE)
            index.search(Qf[:10], K)  # warm-up
            t0 = time.perf_counter()
            _, found = index.search(Qf, K)
            qps = len(Qf) / (time.perf_counter() - t0)
            name = "Flat" if factory == "Flat" else "IVF-PQ"
            figure(f"(d) {name} {place}: build", build, "s")
            figure(f"(d) {name} {place}: search", qps, "queries/s")
            if factory == "Flat" and exact is None:
                exact = found
            if factory != "Flat":
                recall = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, exact)]))
                figure(f"(d) IVF-PQ {place}: recall@{K} (nprobe {NPROBE})", recall)
            del index


# ---------------------------------------------------------------------------------------- main
def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=None, help="JPEGs for (b) and (c) (20000 on CUDA, 128 on CPU)")
    parser.add_argument("--size", default="500x375", help="JPEG width x height")
    parser.add_argument("--rows", type=int, default=None, help="rows for (d) and (e) (1000000 on CUDA, 10000 on CPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="(a)/(b) batch (256 on CUDA, 32 on CPU)")
    parser.add_argument("--parts", default="a,b,c,d,e")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    parser.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed at the end)")
    args = parser.parse_args()

    from featurestore.encoders import load_encoder
    from featurestore.extract.pipeline import default_workers, usable_cores
    from featurestore.sources import open_source

    cuda = args.device.startswith("cuda")
    images = args.images or (20000 if cuda else 128)
    rows = args.rows or (1_000_000 if cuda else 10000)
    batch = args.batch_size or (256 if cuda else 32)
    width, height = (int(v) for v in args.size.lower().split("x"))
    parts = set(args.parts.split(","))
    work = Path(args.dir or tempfile.mkdtemp(prefix="fs-gpu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(args.device) if cuda else f"CPU, {usable_cores()} usable cores"
    FIGURES["device"] = name
    print(f"device: {name}; torch {torch.__version__}; model {MODEL} (random weights); images {images} "
          f"({width}x{height} JPEG); rows {rows}; batch {batch}", flush=True)
    precisions = ["fp16", "bf16"] if cuda else ["fp32"]
    encoders = {p: load_encoder(MODEL, "random", device=args.device, precision=p) for p in precisions}
    main_encoder = encoders[precisions[0]]
    try:
        if parts & {"a", "c"}:
            print("(a) bare forward", flush=True)
            for precision, encoder in encoders.items():
                figure(f"(a) bare forward {precision}, batch {batch}", bare_forward(encoder, batch), "img/s")
        if parts & {"b", "c"}:
            folder = work / "jpegs" / "photos"
            t0 = time.perf_counter()
            write_jpegs(folder, images, width, height, max(1, usable_cores()))
            print(f"wrote {images} JPEGs in {time.perf_counter() - t0:.1f} s", flush=True)
        if "b" in parts:
            print("(b) decode + preprocess alone", flush=True)
            source = open_source(work / "jpegs")
            for mode in ("pil", "tensor"):
                workers = default_workers(mode)
                rate = decode_rate(source, main_encoder, mode, batch, workers)
                where = "CPU workers" if mode == "pil" else f"tensor decoding on {main_encoder.device.type}"
                figure(f"(b) decode {mode} ({where}, {workers} workers)", rate, "img/s")
        if "c" in parts:
            print("(c) extract end to end", flush=True)
            for mode in ("pil", "tensor", "auto"):
                rate, report = end_to_end(work / "jpegs", work / f"extract-{mode}.h5", main_encoder, mode, None)
                figure(f"(c) extract --decode {mode} (ran {report.decode}, batch {report.batch_size}, "
                       f"{report.workers} workers)", rate, "img/s")
        if parts & {"d", "e"}:
            scale = _load_scale_module()
            store = work / "rows.h5"
            t0 = time.perf_counter()
            scale.make_store(store, rows)
            print(f"wrote {rows} x 512 float16 rows in {time.perf_counter() - t0:.1f} s", flush=True)
        if "d" in parts:
            import faiss

            from featurestore.store.feature_store import FeatureStore

            print(f"(d) FAISS ({faiss.get_num_gpus()} GPUs visible to FAISS)", flush=True)
            with FeatureStore(store) as fs:
                X = fs.features(scale.ENCODER, "pool")
                Q = np.concatenate([fs.features(scale.ENCODER, "queries")] * (N_QUERIES // scale.N_QUERIES + 1))
            faiss_figures(X, Q[:N_QUERIES], gpu=cuda and faiss.get_num_gpus() > 0)
            del X
        if "e" in parts:
            from featurestore.store.feature_store import FeatureStore
            from workflows.streaming import fit_gda_streaming

            print("(e) streamed GDA", flush=True)
            with FeatureStore(store) as fs:
                t0 = time.perf_counter()
                fit_gda_streaming(fs, scale.ENCODER, "pool", n_classes=scale.CLASSES)
                figure(f"(e) GDA fit streamed, {rows} rows x 512", time.perf_counter() - t0, "s")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    summary()
    if args.json:
        Path(args.json).write_text(json.dumps(FIGURES, indent=1))


def summary() -> None:
    print("\nratios", flush=True)
    bare = next((v for k, v in FIGURES.items() if k.startswith("(a)")), None)
    for key, value in list(FIGURES.items()):
        if key.startswith("(c)") and bare:
            ratio = value / bare
            FIGURES[f"ratio {key} / bare"] = ratio
            print(f"  {key} / (a) {precision_of(bare)}: {ratio:.3f}  (goal >= 0.90 with GPU decoding)")
    for name in ("Flat", "IVF-PQ"):
        cpu, gpu = FIGURES.get(f"(d) {name} cpu: search"), FIGURES.get(f"(d) {name} gpu: search")
        if cpu and gpu:
            FIGURES[f"ratio {name} search gpu / cpu"] = gpu / cpu
            print(f"  {name} search GPU / CPU: {gpu / cpu:.1f}x" + ("  (goal >= 10x)" if name == "IVF-PQ" else ""))
        cpu_b, gpu_b = FIGURES.get(f"(d) {name} cpu: build"), FIGURES.get(f"(d) {name} gpu: build")
        if cpu_b and gpu_b:
            FIGURES[f"ratio {name} build cpu / gpu"] = cpu_b / gpu_b
            print(f"  {name} build CPU time / GPU time: {cpu_b / gpu_b:.1f}x")


def precision_of(bare: float) -> str:
    return next(k.split()[3].rstrip(",") for k, v in FIGURES.items() if k.startswith("(a)") and v == bare)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
