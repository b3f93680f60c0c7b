"""How many threads BLAS (OpenBLAS, MKL) may use where featurestore runs work in parallel.

A Dask worker that reduces statistics, or any process beside others on the same cores, would
otherwise start one BLAS thread per core each and oversubscribe the machine (bench/RESULTS.md
has the slowdown measured). The knob is the
environment variable ``FS_BLAS_THREADS``: ``fs`` applies it to itself when set, and Dask tasks
run with it (1 when unset). ``threadpoolctl`` does the limiting.

``threadpoolctl`` limits the BLAS libraries loaded when it is called; SciPy ships its own
OpenBLAS, loaded on the first ``import scipy.linalg``, which would then start with one thread
per core (in ``fs benchmark --jobs 2`` workers it did: two workers ran four BLAS threads on two
cores). So every limit here loads SciPy's BLAS first, and
``limit_process_blas`` also sets the libraries' environment variables for any loaded later.
"""
from __future__ import annotations

import os
from contextlib import AbstractContextManager

ENVIRONMENT_VARIABLE = "FS_BLAS_THREADS"
LIBRARY_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def _load_blas_libraries() -> None:
    """Load NumPy's and SciPy's BLAS so that threadpoolctl sees (and limits) both."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401


def configured_limit(default: int | None = None) -> int | None:
    """``FS_BLAS_THREADS`` as a positive integer, else ``default``."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not value:
        return default
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        from solvers.errors import InputError

        raise InputError(f"{ENVIRONMENT_VARIABLE}={value!r}: give a positive number of threads")
    return limit


def limited_blas(limit: int | None = None) -> AbstractContextManager:
    """A context in which BLAS uses at most ``limit`` threads (default: ``FS_BLAS_THREADS``, else 1),
    for work that runs beside other workers on the same cores."""
    from threadpoolctl import threadpool_limits

    _load_blas_libraries()
    return threadpool_limits(limits=limit or configured_limit(1), user_api="blas")


def limit_process_blas(threads: int) -> None:
    """Limit this whole process (e.g. a worker beside others) to ``threads`` BLAS threads: the
    libraries loaded now through threadpoolctl, those loaded later through their environment
    variables."""
    from threadpoolctl import threadpool_limits

    for name in LIBRARY_VARIABLES:
        os.environ[name] = str(threads)
    _load_blas_libraries()
    threadpool_limits(limits=threads, user_api="blas")


def limit_from_environment() -> None:
    """Limit this process's BLAS threads to ``FS_BLAS_THREADS`` when it is set (the ``fs`` entry
    point calls this); without it BLAS keeps its own default."""
    limit = configured_limit()
    if limit is not None:
        limit_process_blas(limit)
