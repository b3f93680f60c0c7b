"""Which FAISS index to build for a number of rows, a dimension and a memory budget.

The choice follows autofaiss (clip-retrieval's indexer) and FAISS's guidelines:

- exact ``Flat`` while its vectors fit the budget and the row count keeps a brute-force query
  fast (at most :data:`FLAT_MAX_ROWS` rows);
- otherwise an inverted file with about ``4 sqrt(n)`` lists (a power of two), its coarse
  quantiser an HNSW graph once there are :data:`HNSW_COARSE_MIN_LISTS` lists or more, holding
  4-bit product-quantization codes scanned with FAISS's SIMD fast-scan kernels (``PQ<d/4>x4fs``, 64 bytes for 512-d),
  followed by exact re-ranking of the ``k_factor x k`` best candidates with the best copy of the
  vectors that fits the budget: float32 (``RFlat``), float16 (``Refine(SQfp16)``) or 8-bit
  (``Refine(SQ8)``); with no room for any, the PQ codes alone.

autofaiss would pick a float HNSW graph whenever it fits the memory budget; on CPU cores the
IVF fast-scan + re-ranking indexes above reach the same recall at several times the queries per
second and build in a fraction of the time (``bench/scale.py`` prints both), so ``auto`` keeps
HNSW as the coarse quantiser and leaves flat HNSW indexes to an explicit ``--factory HNSW32``.

Where FAISS sees a GPU, ``auto`` keeps to index types FAISS runs on GPUs (fast-scan codes,
HNSW quantisers and re-ranking stages stay on the CPU): ``IVF<n>,SQ8``, else ``IVF<n>,PQ<m>``.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable

from featurestore.errors import FeatureStoreError

FLAT_MAX_ROWS = 50_000
HNSW_COARSE_MIN_LISTS = 4096
DEFAULT_MAX_MEMORY = 4 * 2**30
ID_BYTES = 8  # an IVF list stores a 64-bit id beside each code
HEADROOM = 1.05  # estimates leave out list allocation slack and HNSW upper levels
TRAIN_ROWS_PER_LIST = 40  # FAISS warns under 39 training points per centroid
MIN_TRAIN_ROWS = 10_000

_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20, "MIB": 2**20,
          "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40, "TIB": 2**40}
_SECONDS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600}


def parse_memory(text: str | int | float) -> int:
    """Bytes in ``"2G"``, ``"512M"``, ``"1.5GB"`` or a plain number (binary units: 1G = 2**30)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
        if not match or match.group(2).upper() not in _UNITS:
            raise FeatureStoreError(f"cannot read a memory size from {text!r}; write e.g. 2G, 512M or 1.5GB")
        value, unit = float(match.group(1)), match.group(2).upper()
    size = int(value * _UNITS[unit])
    if size <= 0:
        raise FeatureStoreError(f"a memory budget must be positive, not {text!r}")
    return size


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``"10m"``, ``"90s"``, ``"1.5h"`` or a plain number of seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", str(text).lower())
        if not match or match.group(2) not in _SECONDS:
            raise FeatureStoreError(f"cannot read a duration from {text!r}; write e.g. 10m, 90s or 1h")
        value, unit = float(match.group(1)), match.group(2)
    seconds = value * _SECONDS[unit]
    if seconds <= 0:
        raise FeatureStoreError(f"a time limit must be positive, not {text!r}")
    return seconds


def format_bytes(size: float) -> str:
    """``1288490188`` -> ``"1.20 GiB"``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.2f} {unit}"
    return f"{int(size)} B"


def memory_text(resident: int | None, on_disk: int | None) -> str:
    """An index's memory in words: ``"57.90 MiB in RAM"``, or for an index whose inverted lists
    stay on disk ``"1.20 MiB in RAM + 61.00 MiB of inverted lists on disk (memory-mapped)"``."""
    text = f"{format_bytes(resident or 0)} in RAM"
    if on_disk:
        text += f" + {format_bytes(on_disk)} of inverted lists on disk (memory-mapped)"
    return text


def ivf_lists(n: int) -> int:
    """Inverted lists for ``n`` rows: the power of two nearest ``4 sqrt(n)``, at most ``n / 40``
    (so each list gets its 40 training points) and at least 1."""
    nlist = 1 << max(0, round(math.log2(max(4 * math.sqrt(max(n, 1)), 1))))
    while nlist > 1 and nlist * TRAIN_ROWS_PER_LIST > n:
        nlist //= 2
    return nlist


def pq_subquantizers(dim: int) -> int:
    """Sub-quantizers of the 4-bit PQ codes: about ``dim / 4`` (one code bit per dimension), even
    (fast-scan packs two codes per byte) and dividing ``dim``."""
    target = max(2, dim // 4)
    for m in sorted(range(2, dim + 1, 2), key=lambda m: (abs(m - target), -m)):
        if dim % m == 0:
            return m
    raise FeatureStoreError(f"no product quantizer fits dimension {dim} (it needs an even divisor)")


REFINES = (("RFlat", 4.0), ("Refine(SQfp16)", 2.0), ("Refine(SQ8)", 1.0))


def estimate_memory(factory: str, n: int, dim: int) -> int:
    """Approximate bytes of an index (as saved and as loaded) built from ``factory``.

    Counts the stored vectors or codes, the 8-byte ids of IVF lists, the IVF centroids, HNSW
    links (``2 M`` 4-byte neighbours per vector on level 0) and, for every approximate index, the
    8-byte store position of each row (the id map it is saved with); a leading transform
    (``OPQ<m>[_<d>]``, ``PCA<d>``, ``RR<d>``, ``L2norm``) adds its matrix and sets the dimension
    the codes after it have. Other parts are estimated as float vectors.
    """
    parts = [p.strip() for p in factory.split(",")]
    total = 0.0
    per_row = 0.0 if factory.strip() == "Flat" else ID_BYTES
    while parts and (transform := re.fullmatch(r"(OPQ|PCAW?R?|RR)(\d+)(?:_(\d+))?|L2norm", parts[0])):
        if transform.group(0) != "L2norm":  # a d_in x d_out float32 matrix; rows then have d_out dimensions
            out = int(transform.group(3) or (dim if transform.group(1) == "OPQ" else transform.group(2)))
            total += dim * out * 4
            dim = out
        parts = parts[1:]
    ivf = re.fullmatch(r"IVF(\d+)(?:_HNSW(\d+))?", parts[0])
    if ivf:
        nlist = int(ivf.group(1))
        total += nlist * dim * 4
        if ivf.group(2):
            total += nlist * int(ivf.group(2)) * 2 * 4
        per_row += ID_BYTES
        parts = parts[1:]
    for part in parts:
        if part == "Flat":
            per_row += 4 * dim
        elif match := re.fullmatch(r"PQ(\d+)(?:x(\d+))?(fs)?", part):
            per_row += int(match.group(1)) * int(match.group(2) or 8) / 8
        elif match := re.fullmatch(r"HNSW(\d+)(?:_(\w+))?", part):
            per_row += 2 * int(match.group(1)) * 4 + (dim if match.group(2) == "SQ8" else 4 * dim)
        elif part == "SQ8":
            per_row += dim
        elif part in ("SQfp16", "SQbf16"):
            per_row += 2 * dim
        elif part == "RFlat":
            per_row += 4 * dim
        elif match := re.fullmatch(r"Refine\((\w+)\)", part):
            per_row += {"SQ8": dim, "SQfp16": 2 * dim, "Flat": 4 * dim}.get(match.group(1), 4 * dim)
        else:
            per_row += 4 * dim
    return int(total + per_row * n)


def choose_factory(n: int, dim: int, max_memory: int | str | None = None, gpu: bool = False,
                   on_disk: bool = False) -> str:
    """The factory ``auto`` builds for ``n`` rows of dimension ``dim`` within ``max_memory`` bytes
    (default :data:`DEFAULT_MAX_MEMORY`), its estimate (:func:`estimate_memory`) plus 5% within
    the budget; see the module docstring for the rules. With ``gpu`` (FAISS sees a GPU) the
    choice keeps to what FAISS runs on GPUs: a flat coarse quantiser (GPUs assign by brute force)
    and 8-bit codes without a re-ranking stage, ``IVF<n>,SQ8`` when it fits, else
    ``IVF<n>,PQ<d/8>`` (or fewer bytes). With ``on_disk`` (a cluster build, whose inverted lists
    FAISS merges on disk only when they are plain arrays) the choice is the same 8-bit codes
    without a re-ranking stage, with an HNSW coarse quantiser from :data:`HNSW_COARSE_MIN_LISTS`
    lists, and never ``Flat``.

    Raises FeatureStoreError when not even the smallest PQ index fits the budget.
    """
    budget = DEFAULT_MAX_MEMORY if max_memory is None else parse_memory(max_memory)

    def fits(factory: str) -> bool:
        return estimate_memory(factory, n, dim) * HEADROOM <= budget

    if n <= FLAT_MAX_ROWS and fits("Flat") and not on_disk:
        return "Flat"
    nlist = ivf_lists(n)
    coarse = f"IVF{nlist}_HNSW32" if nlist >= HNSW_COARSE_MIN_LISTS else f"IVF{nlist}"
    if gpu or on_disk:
        return _gpu_factory(n, dim, coarse if on_disk else f"IVF{nlist}", budget, fits)
    m = pq_subquantizers(dim)
    codes = f"{coarse},PQ{m}x4fs"
    for refine, _ in REFINES:
        if fits(f"{codes},{refine}"):
            return f"{codes},{refine}"
    while m >= 2:
        codes = f"{coarse},PQ{m}x4fs"
        if fits(codes):
            return codes
        m //= 2
        while m >= 2 and (dim % m or m % 2):
            m -= 1
    smallest = estimate_memory(f"{coarse},PQ2x4fs", n, dim)
    raise FeatureStoreError(
        f"no index of {n} rows x {dim}-d fits in {format_bytes(budget)}: the smallest ({coarse},PQ2x4fs) "
        f"needs about {format_bytes(smallest)}; raise --max-memory"
    )


def _gpu_factory(n: int, dim: int, coarse: str, budget: int, fits: Callable[[str], bool]) -> str:
    if fits(f"{coarse},SQ8"):
        return f"{coarse},SQ8"
    for m in sorted((m for m in GPU_PQ_BYTES if m <= dim and dim % m == 0 and m <= max(1, dim // 8)), reverse=True):
        if fits(f"{coarse},PQ{m}"):
            return f"{coarse},PQ{m}"
    raise FeatureStoreError(f"no GPU or on-disk index of {n} rows x {dim}-d fits in {format_bytes(budget)}; "
                            "raise --max-memory")


GPU_PQ_BYTES = (1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96)  # code sizes FAISS GPU IVF-PQ supports


def train_rows(nlist: int, n: int, train_size: int | None = None) -> int:
    """Rows sampled to train an index with ``nlist`` IVF lists (0 for none): ``40 nlist``, at least
    10,000, at most ``n`` (or ``train_size`` when given)."""
    count = max(TRAIN_ROWS_PER_LIST * nlist, MIN_TRAIN_ROWS) if train_size is None else int(train_size)
    return min(count, n)
