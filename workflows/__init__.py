"""The layer above the store and the solvers: reads a feature store (plus the names given on the
command line or in a notebook) and hands the solvers the arrays they take. ``featurestore`` never
imports ``solvers`` and ``solvers`` never imports ``featurestore``; only this package (and ``cli``,
which composes it) knows both.

- ``solver_inputs``: labelled splits (labels mapped through class names), class text weights,
  the store's only encoder, saved models by name.
- ``solver_arrays``: per solver, the store contents it reads (``fs solve --input key=value``:
  a pool split, support shots, caption/descriptor/context banks) turned into constructor arrays.
- ``pool``, ``prompt_banks``: reading retrieval pools and descriptor banks.
- ``streaming``: out-of-core GDA from streamed statistics (in process or on Dask) and chunked
  predictions.
- ``blas_threads``: BLAS thread limits for parallel work (``FS_BLAS_THREADS``).
- ``aux_features``: a split's features from two encoders side by side (AMU, label-free).
- ``incremental``: the sessions file of ``fs solve gda --incremental``.
- ``anomaly``: the split to score, its normal / anomalous ground truth and a normal memory.
- ``solve``: the one solve path of ``fs solve``, ``fs benchmark`` and notebooks: ``load_dataset``
  reads a dataset's arrays once (labels in the model's class order, text weights, views),
  ``run`` fits one shots/seed cell and returns a ``RunRecord``; ``params`` checks ``--param``.
- ``benchmark``: the datasets x methods x shots x seeds sweep over ``solve.run``.

The names below are imported on first use, so ``import workflows`` stays cheap (no h5py).
"""
from __future__ import annotations

from typing import Any

__all__ = ["Dataset", "RunRecord", "load_dataset", "run"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from workflows import solve

        return getattr(solve, name)
    raise AttributeError(f"module 'workflows' has no attribute {name!r}")
