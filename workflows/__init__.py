"""The layer above the store and the solvers: reads a feature store (plus the names given on the
command line or in a notebook) and hands the solvers the arrays they take. ``featurestore`` never
imports ``solvers`` and ``solvers`` never imports ``featurestore``; only this package (and ``cli``,
which composes it) knows both.

- ``inputs/``: what solvers take, read from a store: labelled splits with labels mapped through
  class names (``solver_inputs``), per-solver store contents given as ``--input key=value``
  (``arrays``), retrieval pools (``pool``), descriptor banks (``prompt_banks``), two encoders'
  features side by side (``aux_features``: AMU, label-free).
- ``solve``: the one solve path of ``fs solve``, ``fs benchmark`` and notebooks: ``load_dataset``
  reads a dataset's arrays once (labels in the model's class order, text weights, views),
  ``run`` fits one shots/seed cell and returns a ``RunRecord``; ``params`` checks ``--param``;
  ``solve_modes`` holds GDA's incremental and out-of-core modes.
- ``evaluate``: saved models (and seed groups) scored on a split with the same metrics (``fs eval``).
- ``benchmark``: the datasets x methods x shots x seeds sweep over ``solve.run``.
- ``streaming``: out-of-core GDA from streamed statistics (in process or on Dask) and chunked
  predictions; ``incremental``: the sessions file of ``fs solve gda --incremental``.
- ``anomaly``: the split to score, its normal / anomalous ground truth and a normal memory.
- ``blas_threads``: BLAS thread limits for parallel work (``FS_BLAS_THREADS``).
- ``reports/``: result files in CLIP_benchmark's shape, the benchmark report, figures.

The names below are imported on first use, so ``import workflows`` stays cheap (no h5py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers; at run time the names are imported on first use
    from workflows.solve import Dataset, RunRecord, load_dataset, run

__all__ = ["Dataset", "RunRecord", "load_dataset", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from workflows import solve

        return getattr(solve, name)
    raise AttributeError(f"module 'workflows' has no attribute {name!r}")
