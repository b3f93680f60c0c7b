"""`fs index`: build (or refresh) a FAISS index over a stored feature array, tuned to a recall target."""
from __future__ import annotations

from typing import Any

import click

from cli.options import encoder_option, one_seed, quiet_option, seeds_option, store_option


@click.command("index")
@store_option
@encoder_option
@click.option("--split", required=True, help="Split whose features to index.")
@click.option("--factory", default="auto", show_default=True,
              help="FAISS factory string (Flat = exact, IVF1024,PQ64x4fs,RFlat, HNSW32, ...) or auto: chosen "
                   "from the row count and --max-memory.")
@click.option("--max-memory", default="4G", show_default=True,
              help="Memory budget of the index for --factory auto (e.g. 2G, 512M).")
@click.option("--recall", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True,
              help="recall@10 target: the search parameter (nprobe/efSearch/k_factor) is tuned to the smallest "
                   "value reaching it against exact search on held-out stored rows.")
@click.option("--max-build", default=None,
              help="Time limit of the whole build (e.g. 10m); past it nothing is written.")
@click.option("--train-size", type=click.IntRange(min=1), default=None,
              help="Rows sampled to train IVF/PQ indexes (default: max(40 x lists, 10000)).")
@seeds_option("Seed of the training and tuning samples (one value).")
@click.option("--cluster", default=None, help="Add the rows on a Dask LocalCluster of N worker processes (local:N); "
                                              "the inverted lists are merged into one file on disk.")
@click.option("--scheduler", default=None, help="Add the rows on an existing Dask cluster: tcp://host:8786 (workers "
                                                "read the store and write beside it: a shared filesystem).")
@click.option("--report", is_flag=True,
              help="Print factory, memory, build time and recall@10 and queries/s of every setting tried; an "
                   "up-to-date index built with the same options is reported without rebuilding.")
@quiet_option
def command(store: str, encoder: str, split: str, factory: str, max_memory: str, recall: float,
            max_build: str | None, train_size: int | None, seeds: list[int], cluster: str | None,
            scheduler: str | None, report: bool, quiet: bool) -> None:
    """Index the (normalized) image features of a split for cosine search; saved beside the store."""
    from featurestore.index.plan import parse_duration, parse_memory
    from featurestore.index.store_index import build_index
    from workflows.inputs.solver_inputs import store_encoder

    seed = one_seed(seeds, "fs index's training and tuning samples")
    encoder = store_encoder(store, encoder)
    options: dict[str, Any] = {"max_memory": parse_memory(max_memory), "recall": recall,
               "max_build": None if max_build is None else parse_duration(max_build),
               "train_size": train_size, "seed": seed}
    index = None
    if report:
        index = _current(store, encoder, split, factory, options)
    if index is None and (cluster or scheduler):
        from featurestore.cluster import dask_client
        from featurestore.index.distributed import build_index_distributed

        with dask_client(cluster, scheduler) as client:
            index = build_index_distributed(store, encoder, split, factory, client=client, quiet=quiet, **options)
    elif index is None:
        index = build_index(store, encoder, split, factory, quiet=quiet, **options)
    for note in index.notes + ([index.meta["note"]] if index.meta.get("note") else []):
        click.echo(f"warning: {note}", err=True)
    if report:
        for line in report_lines(index.meta, index.path):
            click.echo(line)
        return
    click.echo(f"indexed {index.ntotal} rows of {split!r} ({summary(index.meta)}) -> {index.path}")


def _current(store: str, encoder: str, split: str, factory: str, options: dict[str, Any]) -> Any:
    """The saved index when it is up to date and was built with the same options, else None."""
    from featurestore.errors import FeatureStoreError
    from featurestore.index.store_index import load_index

    try:
        index = load_index(store, encoder, split, factory, rebuild_stale=False, quiet=True)
    except FeatureStoreError:
        return None
    request = index.meta.get("request") or {}
    same = (request.get("recall") == options["recall"] and request.get("train_size") == options["train_size"]
            and index.meta.get("seed") == options["seed"]
            and (factory != "auto" or request.get("max_memory") == options["max_memory"]))
    return index if same else None


def _recall_key(meta: dict[str, Any]) -> str | None:
    return next((key for key in meta if key.startswith("recall_at_")), None)


def summary(meta: dict[str, Any]) -> str:
    """``IVF1024,PQ64x4fs,RFlat, nprobe=9, k_factor=4, recall@10 0.957 on 1000 held-out rows, 57.9 MiB``."""
    from featurestore.index.plan import memory_text

    parts = [meta["factory"]]
    parts += [f"{key}={value}" for key, value in (meta.get("search_params") or {}).items()]
    key = _recall_key(meta)
    if meta["factory"] == "Flat":
        parts.append("exact")
    elif key and meta.get(key) is not None:
        parts.append(f"recall@{key.rsplit('_', 1)[1]} {meta[key]:.3f} on {meta.get('tuning_queries')} held-out rows")
    if meta.get("bytes") is not None:
        parts.append(memory_text(meta["bytes"], meta.get("ivfdata_bytes") if meta.get("ivfdata") else 0))
    return ", ".join(parts)


def report_lines(meta: dict[str, Any], path: Any) -> list[str]:
    """The ``fs index --report`` text of a sidecar."""
    from featurestore.index.plan import format_bytes, memory_text

    request = meta.get("request") or {}
    chosen = f" (auto, budget {format_bytes(request['max_memory'])})" if meta.get("name") == "auto" and \
        request.get("max_memory") else ""
    seconds = meta.get("build_seconds") or {}
    lines = [f"index     {path}",
             f"factory   {meta['factory']}{chosen}",
             f"rows      {meta['ntotal']} x {meta['dim']}"
             + (f", trained on {meta['train_rows']}" if meta.get("train_rows") else ""),
             f"memory    {memory_text(meta.get('bytes', 0), meta.get('ivfdata_bytes') if meta.get('ivfdata') else 0)} "
             f"(estimated {format_bytes(meta.get('estimated_bytes', 0))})",
             "build     " + ", ".join(f"{stage} {value:.1f} s" for stage, value in seconds.items())]
    key = _recall_key(meta)
    if meta["factory"] == "Flat" or not key:
        lines.append("search    exact (recall 1)")
        return lines
    params = ", ".join(f"{k}={v}" for k, v in (meta.get("search_params") or {}).items()) or "no parameters"
    verdict = "met" if meta.get("target_met") else "NOT met"
    also = ", also in the training sample" if meta.get("tuning_queries_in_training_sample") else ""
    recall = meta.get(key)
    lower = meta.get("recall_lower_95")
    bound = f", 95% lower bound {lower:.3f}" if lower is not None else ""
    lines.append(f"search    {params}: {key.replace('_at_', '@')} {recall:.3f}{bound} "
                 f"(target {meta.get('recall_target')}, "
                 f"{verdict}) on {meta.get('tuning_queries')} stored rows held out of the index while tuning{also}; "
                 f"{meta.get('qps', 0):.0f} q/s")
    lines.append(f"settings tried (recall@{meta.get('tune_k')} vs exact search, its 95% lower bound, queries/s):")
    for row in sorted(meta.get("tuning") or [], key=lambda r: tuple(r["params"].values())):
        setting = ", ".join(f"{k}={v}" for k, v in row["params"].items()) or "-"
        lines.append(f"  {setting:<28} {row['recall']:.3f}  {row.get('recall_lower', float('nan')):.3f}  "
                     f"{row['qps']:>10.0f} q/s")
    return lines
