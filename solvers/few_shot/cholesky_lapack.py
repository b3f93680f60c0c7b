"""LAPACK's Cholesky routines (``dpotrf``, ``dpocon``, ``dpotri``, ``dpotrs``) for GDA's precision, called in
the OpenBLAS that NumPy's wheels ship and have loaded already, else from ``scipy.linalg.lapack``.

Importing ``scipy.linalg`` costs a process more than NumPy itself (a few hundred modules, a second
OpenBLAS and its threads) and is otherwise not needed on the path of ``fs solve gda``. NumPy's wheels
link scipy-openblas (ILP64, symbols ``scipy_dpotrf_64_`` ...), the OpenBLAS build SciPy's wheels
link too; where that library is not found (another NumPy build) SciPy's wrappers are used. Both give
the same factor and, to the last bit or within rounding (the two builds differ in version), the same
condition estimate and inverse (``tests/test_solvers_gda.py`` compares them).
The arrays here are Fortran-ordered (n, n) float64, as SciPy's wrappers return them.
"""
from __future__ import annotations

import ctypes
import functools
import glob
import os
from typing import Any

import numpy as np

_INT = ctypes.c_int64  # ILP64 integers
_PTR = ctypes.c_void_p
_STRLEN = ctypes.c_size_t  # gfortran's hidden length of a CHARACTER argument


@functools.lru_cache(maxsize=1)
def numpy_lapack() -> Any | None:
    """NumPy's bundled scipy-openblas64 library with the four routines, or None."""
    root = os.path.dirname(np.__file__)
    patterns = [os.path.join(root, "..", "numpy.libs", "libscipy_openblas64_*"),
                os.path.join(root, ".dylibs", "libscipy_openblas64_*")]
    for path in sorted(p for pattern in patterns for p in glob.glob(pattern)):
        try:
            lib = ctypes.CDLL(os.path.abspath(path))
        except OSError:
            continue
        if all(hasattr(lib, f"scipy_{name}_64_") for name in ("dpotrf", "dpocon", "dpotri", "dpotrs")):
            return lib
    return None


def _square(A: np.ndarray) -> np.ndarray:
    """A Fortran-ordered float64 copy of square ``A`` (what SciPy's wrappers work on)."""
    return np.array(A, dtype=np.float64, order="F", copy=True)


def potrf_upper(A: np.ndarray, overwrite: bool = False) -> tuple[np.ndarray, int]:
    """``scipy.linalg.lapack.dpotrf(A, lower=0, clean=0, overwrite_a=overwrite)``: the upper
    Cholesky factor in the upper triangle of a copy of A (its strict lower triangle left as A's),
    or of A itself with ``overwrite`` when A is a Fortran-ordered float64 array, and LAPACK's ``info``."""
    lib = numpy_lapack()
    if lib is None:
        from scipy.linalg.lapack import dpotrf

        factor, info = dpotrf(A, lower=0, clean=0, overwrite_a=int(overwrite))
        return factor, int(info)
    in_place = overwrite and A.dtype == np.float64 and A.flags.f_contiguous and A.flags.writeable
    factor, n, info = (A if in_place else _square(A)), _INT(A.shape[0]), _INT(0)
    lib.scipy_dpotrf_64_(ctypes.c_char_p(b"U"), ctypes.byref(n), _PTR(factor.ctypes.data), ctypes.byref(n),
                         ctypes.byref(info), _STRLEN(1))
    return factor, int(info.value)


def pocon_upper(factor: np.ndarray, anorm: float) -> tuple[float, int]:
    """``scipy.linalg.lapack.dpocon(factor, anorm, uplo="U")``: the reciprocal 1-norm condition
    number estimate from an upper Cholesky factor, and ``info``."""
    lib = numpy_lapack()
    if lib is None:
        from scipy.linalg.lapack import dpocon

        rcond, info = dpocon(factor, anorm, uplo="U")
        return float(rcond), int(info)
    factor = np.asfortranarray(factor, dtype=np.float64)
    size = factor.shape[0]
    n, anorm_c, rcond, info = _INT(size), ctypes.c_double(anorm), ctypes.c_double(0.0), _INT(0)
    work, iwork = np.empty(3 * max(size, 1)), np.empty(max(size, 1), dtype=np.int64)
    lib.scipy_dpocon_64_(ctypes.c_char_p(b"U"), ctypes.byref(n), _PTR(factor.ctypes.data), ctypes.byref(n),
                         ctypes.byref(anorm_c), ctypes.byref(rcond), _PTR(work.ctypes.data), _PTR(iwork.ctypes.data),
                         ctypes.byref(info), _STRLEN(1))
    return float(rcond.value), int(info.value)


def potri_upper(factor: np.ndarray) -> tuple[np.ndarray, int]:
    """``scipy.linalg.lapack.dpotri(factor, lower=0, overwrite_c=1)``: the inverse of U^T U in the
    upper triangle (computed in ``factor`` itself when it is Fortran-ordered float64), and ``info``."""
    lib = numpy_lapack()
    if lib is None:
        from scipy.linalg.lapack import dpotri

        inverse, info = dpotri(factor, lower=0, overwrite_c=1)
        return inverse, int(info)
    inverse = np.asfortranarray(factor, dtype=np.float64)
    n, info = _INT(inverse.shape[0]), _INT(0)
    lib.scipy_dpotri_64_(ctypes.c_char_p(b"U"), ctypes.byref(n), _PTR(inverse.ctypes.data), ctypes.byref(n),
                         ctypes.byref(info), _STRLEN(1))
    return inverse, int(info.value)


def potrs_upper(factor: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, int]:
    """``scipy.linalg.lapack.dpotrs(factor, B, lower=0)``: X with (U^T U) X = B from an upper
    Cholesky factor U (two triangular solves, 2 n^2 k flops for k right-hand sides), and ``info``.
    ``B`` is (n, k); the solution is a new Fortran-ordered float64 array."""
    lib = numpy_lapack()
    if lib is None:
        from scipy.linalg.lapack import dpotrs

        solution, info = dpotrs(factor, B, lower=0)
        return solution, int(info)
    factor = np.asfortranarray(factor, dtype=np.float64)
    solution = np.array(B, dtype=np.float64, order="F", copy=True)
    n, nrhs, info = _INT(factor.shape[0]), _INT(solution.shape[1]), _INT(0)
    lib.scipy_dpotrs_64_(ctypes.c_char_p(b"U"), ctypes.byref(n), ctypes.byref(nrhs), _PTR(factor.ctypes.data),
                         ctypes.byref(n), _PTR(solution.ctypes.data), ctypes.byref(n), ctypes.byref(info), _STRLEN(1))
    return solution, int(info.value)
