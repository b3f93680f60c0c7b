"""BLAS thread limits reach SciPy's own OpenBLAS too (loaded on ``import scipy.linalg``), in the
process that sets them and in ``fs benchmark --jobs`` workers. Each case runs in a fresh
interpreter, where no BLAS library is loaded yet."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORT = """
import json
import scipy.linalg  # SciPy's BLAS, loaded after the limit when the code under test did not load it
from threadpoolctl import threadpool_info
print(json.dumps(sorted({i["filepath"].rsplit("/", 1)[-1]: i["num_threads"]
                         for i in threadpool_info() if i["user_api"] == "blas"}.items())))
"""


def _blas_threads(setup: str, env: dict[str, str] | None = None) -> list:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "FS_BLAS_THREADS")}
    environment.update(env or {})
    out = subprocess.run([sys.executable, "-c", setup + REPORT], cwd=ROOT, env=environment, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


pytestmark = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every BLAS runs one thread anyway")


def test_without_a_limit_scipy_blas_uses_several_threads():
    # the premise: otherwise the tests below could not fail
    assert any(n > 1 for _, n in _blas_threads(""))


def test_benchmark_worker_limit_covers_blas_loaded_later():
    libraries = _blas_threads("from workflows.benchmark import _limit_worker_blas\n_limit_worker_blas(1)\n")
    assert len(libraries) >= 1 and all(n == 1 for _, n in libraries), libraries


def test_fs_blas_threads_environment_limit_covers_scipy():
    setup = "from workflows.blas_threads import limit_from_environment\nlimit_from_environment()\n"
    libraries = _blas_threads(setup, {"FS_BLAS_THREADS": "1"})
    assert all(n == 1 for _, n in libraries), libraries


def test_limited_blas_context_limits_scipy_inside_it():
    code = """
import json
from threadpoolctl import threadpool_info
from workflows.blas_threads import limited_blas
with limited_blas(1):
    inside = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
print(json.dumps(inside))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    inside = json.loads(out.strip().splitlines()[-1])
    assert len(inside) >= 2 and all(n == 1 for n in inside), inside  # NumPy's and SciPy's OpenBLAS
