"""Connecting to Dask distributed: a LocalCluster of N worker processes, or an existing scheduler."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from featurestore.errors import FeatureStoreError


def parse_cluster(spec: str) -> int:
    """Worker count of a ``local:N`` cluster spec."""
    kind, _, count = spec.partition(":")
    if kind != "local" or not count.isdigit() or int(count) < 1:
        raise FeatureStoreError(f"--cluster takes local:N with N >= 1 workers, not {spec!r}")
    return int(count)


@contextmanager
def dask_client(cluster: str | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: a LocalCluster of ``local:N`` processes (one thread each, so
    each worker's torch gets ``cores / N`` threads), or the scheduler at ``tcp://host:port``."""
    try:
        import logging

        from distributed import Client, LocalCluster

        for name in ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.core",
                     "distributed.http.proxy", "distributed.worker"):
            logging.getLogger(name).setLevel(logging.WARNING)
    except ImportError:
        raise FeatureStoreError('distributed runs need Dask: pip install -e ".[dist]"') from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, ValueError) as exc:  # ValueError: an address Dask cannot parse (no port, bad scheme)
            raise FeatureStoreError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
        with client:
            yield client
        return
    workers = parse_cluster(cluster or "local:1")
    threads = max(1, (os.cpu_count() or 1) // workers)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}) as local, \
            Client(local) as client:
        yield client
