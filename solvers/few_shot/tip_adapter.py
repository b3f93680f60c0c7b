"""Training-free Tip-Adapter (Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP for
Few-shot Classification", ECCV 2022; official code github.com/gaopengcuhk/Tip-Adapter)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from solvers._base.checks import check_class_counts, check_features, check_text_weights, check_validation_pair
from solvers._base.fit_warnings import start_warnings, warn_on_grid_edge
from solvers._base.normalize import l2_normalize
from solvers._base.progress import progress
from solvers._base.solver import Solver
from solvers.errors import InputError
from solvers.zero_shot.zero_shot import zero_shot_logits

#: The official per-dataset search scales (beta scale, alpha scale), from the configs/*.yaml of
#: github.com/gaopengcuhk/Tip-Adapter (all with search steps (200, 20)); ``search_scale`` accepts
#: these names.
SEARCH_SCALE_PRESETS: dict[str, tuple[float, float]] = {
    "imagenet": (7.0, 3.0),
    "caltech101": (12.0, 5.0),
    "dtd": (13.0, 13.0),
    "eurosat": (12.0, 10.0),
    "fgvc": (30.0, 30.0),
    "food101": (10.0, 10.0),
    "oxford_flowers": (50.0, 50.0),
    "oxford_pets": (7.0, 3.0),
    "stanford_cars": (20.0, 10.0),
    "sun397": (12.0, 10.0),
    "ucf101": (7.0, 3.0),
}


def resolve_search_scale(search_scale: str | tuple[float, float]) -> tuple[float, float]:
    """(beta scale, alpha scale) from a pair or a preset name of ``SEARCH_SCALE_PRESETS``."""
    if isinstance(search_scale, str):
        if search_scale not in SEARCH_SCALE_PRESETS:
            raise InputError(f"unknown Tip-Adapter search_scale preset {search_scale!r}; "
                             f"presets: {', '.join(SEARCH_SCALE_PRESETS)} (or give a pair (beta scale, alpha scale))")
        return SEARCH_SCALE_PRESETS[search_scale]
    pair = tuple(float(v) for v in search_scale)
    if len(pair) != 2 or min(pair) <= 0.1:
        raise InputError(f"search_scale must be a preset name or two scales > 0.1, got {search_scale!r}")
    return pair


def linear_grid(scale: float, steps: int, start: float = 0.1) -> list[float]:
    """The official search grid: start + i * (scale - start) / steps for i in 0 .. steps-1."""
    return [start + i * (scale - start) / steps for i in range(steps)]


class AlphaScorer:
    """The correct counts of a block of validation rows at every alpha of a grid, for one beta's
    class sums S (rows, C): the same counts as taking, for each alpha, the argmax over classes of
    the logits fl(fl(alpha S_c) + z_c) in S's dtype (the first class on ties; z the zero-shot
    logits, none without text weights), without writing every alpha's logits.

    A row's logits are lines in alpha, up to rounding. For each class the scorer bounds its logit,
    lo_c <= L_c <= hi_c, by S_c (alpha -+ k |alpha|) + z_c -+ (k |z_c| + tiny), computed in S's
    dtype: k = 32 eps (64 units of rounding) covers the two roundings of L_c and those of the
    bound itself, ``tiny`` (the dtype's smallest normal) any underflow. hi_c < lo_y proves the
    label y beats c; lo_c > hi_y proves c beats it. The bounds are linear in alpha up to that
    slack, and the grid's alphas are positive (or a single value), so a class whose hi_c is below
    lo_y at the grid's smallest and at its largest alpha is below it at every alpha of the grid:
    it never competes. Most rows are settled at once by bounding every other class with the row's
    largest other sum and largest other zero-shot bound (rounding is monotone, so that bound is
    above each hi_c); the rest class by class at the two ends; only the classes still near or
    above the label are bounded at each alpha, and a row and alpha that the bounds neither prove
    right nor wrong (logits within rounding of a tie) is scored by the exact logits.
    """

    def __init__(self, zero_shot: np.ndarray | None, y: np.ndarray, alphas: np.ndarray) -> None:
        dtype = alphas.dtype
        a = alphas.astype(np.float64)
        if a.size > 1 and a.min() <= 0:
            raise ValueError(f"a searched alpha grid must be positive, got {a.min()}")
        k, tiny = 32 * float(np.finfo(dtype).eps), np.finfo(dtype).tiny
        self.alphas, self.y, self.rows, self.zero_shot = alphas, y, np.arange(y.size), zero_shot
        self.up, self.down = (a + k * abs(a)).astype(dtype), (a - k * abs(a)).astype(dtype)
        self.ends = sorted({int(np.argmin(a)), int(np.argmax(a))})
        if zero_shot is None:  # L_c = fl(alpha S_c): the bounds' constant terms are +- tiny
            shape = (y.size, 1)
            self.z_up, self.z_down = np.full(shape, tiny, dtype), np.full(shape, -tiny, dtype)
        else:
            spread = np.abs(zero_shot) * dtype.type(k)
            self.z_up, self.z_down = zero_shot + spread, zero_shot - spread
            self.z_up += tiny
            self.z_down -= tiny
        self.up_y, self.down_y = self._z(self.z_up, self.rows, y), self._z(self.z_down, self.rows, y)
        if self.z_up.shape[1] > 1:  # the largest upper bound of another class's zero-shot term
            others = self.z_up.copy()
            others[self.rows, y] = -np.inf
            self.rival_z_up = others.max(axis=1)
        else:
            self.rival_z_up = self.z_up[:, 0]

    @staticmethod
    def _z(z: np.ndarray, rows: np.ndarray, classes: np.ndarray) -> np.ndarray:
        return z[rows, classes] if z.shape[1] > 1 else z[rows, 0]

    def correct_counts(self, sums: np.ndarray) -> np.ndarray:
        """(n_alphas,) counts of rows whose logits' argmax is their label (``sums`` is used as
        scratch and restored)."""
        y, rows = self.y, self.rows
        s_y = sums[rows, y]
        counts = np.full(self.alphas.size, y.size, dtype=np.int64)
        if sums.shape[1] == 1:
            return counts
        settled = np.zeros(y.size, dtype=bool)
        if self.up[self.ends[0]] > 0:  # every other class below the row's largest other sum
            sums[rows, y] = -np.inf
            rival = sums.max(axis=1)
            sums[rows, y] = s_y
            settled[:] = True
            for end in self.ends:
                settled &= rival * self.up[end] + self.rival_z_up < s_y * self.down[end] + self.down_y
        sub = np.flatnonzero(~settled)
        if sub.size == 0:
            return counts
        s_sub, z_up, s_y, up_y, down_y = sums[sub], self.z_up[sub], s_y[sub], self.up_y[sub], self.down_y[sub]
        candidates = np.zeros(s_sub.shape, dtype=bool)
        bound = np.empty_like(s_sub)
        for end in self.ends:  # class by class at the grid's ends
            np.multiply(s_sub, self.up[end], out=bound)
            bound += z_up
            candidates |= bound >= (s_y * self.down[end] + down_y)[:, None]
        candidates[np.arange(sub.size), y[sub]] = False
        r, c = np.nonzero(candidates)  # row-major: pairs grouped by row
        if r.size == 0:
            return counts
        if 4 * r.size > candidates.size:  # many classes near the labels: every alpha's logits cost less
            logits = self.alphas[:, None, None] * s_sub
            logits += self.zero_shot[sub] if self.zero_shot is not None else 0.0
            return counts - sub.size + np.count_nonzero(logits.argmax(axis=2) == y[sub], axis=1)
        s_c, s_r = s_sub[r, c][:, None], s_y[r][:, None]
        reaches = s_c * self.up + self._z(z_up, r, c)[:, None] >= s_r * self.down + down_y[r][:, None]
        beats = s_c * self.down + self._z(self.z_down[sub], r, c)[:, None] > s_r * self.up + up_y[r][:, None]
        starts = np.flatnonzero(np.diff(r, prepend=-1))
        unproven = np.logical_or.reduceat(reaches, starts, axis=0)  # (rows with candidates, alphas)
        counts -= unproven.sum(axis=0)
        lost = np.logical_or.reduceat(beats, starts, axis=0)
        unsure, j = np.nonzero(unproven & ~lost)
        if unsure.size:  # the exact logits, as every alpha's argmax would compute them
            unsure = sub[r[starts[unsure]]]
            logits = self.alphas[j, None] * sums[unsure]
            logits += self.zero_shot[unsure] if self.zero_shot is not None else 0.0
            counts += np.bincount(j[logits.argmax(axis=1) == y[unsure]], minlength=self.alphas.size)
        return counts


class TipAdapter(Solver):
    """Training-free Tip-Adapter (Zhang et al., ECCV 2022).

    Cache keys F = L2-normalized few-shot features (N, D), values L = one-hot labels (N, C);
    affinity A = exp(-beta * (1 - x_n F^T)); logits = logit_scale * x_n T^T + alpha * A L
    (the zero-shot term is dropped without ``text_weights``). With X_val/y_val and
    ``alpha``/``beta`` left at None, beta is searched over linear_grid(search_scale[0],
    search_steps[0]) and alpha over linear_grid(search_scale[1], search_steps[1]) (official
    defaults: scales (7, 3), steps (200, 20); ``search_scale`` may name an official per-dataset
    preset, e.g. "oxford_flowers" = (50, 50), see ``SEARCH_SCALE_PRESETS``); otherwise the
    paper's initial alpha = beta = 1. Without ``text_weights`` alpha only scales the logits and
    is not searched. A searched value on the first or last point of its grid warns and is
    listed in ``fit_warnings_`` (the best value may lie beyond the grid).
    """

    _state_arrays = ("keys_", "labels_")
    batch_size = 2048
    #: validation rows x keys per float32 product in the search, and per block of rows scored together
    PRODUCT_ELEMENTS = 1 << 22
    BETA_ELEMENTS = 1 << 18
    #: affinities (and as many ratios) of the rows stepped through a run of betas while they stay in
    #: the CPU cache (1 MB of float64), and class sums held for the scorer at once
    CACHED_ELEMENTS = 1 << 16
    SUMS_ELEMENTS = 1 << 22
    #: test rows x keys per batch of class_logits (at most ``batch_size`` rows)
    LOGIT_ELEMENTS = 1 << 22
    _state_scalars = ("alpha_", "beta_", "val_accuracy_")

    def __init__(self, text_weights: np.ndarray | None = None, n_classes: int | None = None,
                 classes: list | np.ndarray | None = None, alpha: float | None = None, beta: float | None = None,
                 default_alpha: float = 1.0, default_beta: float = 1.0,
                 search_scale: str | tuple[float, float] = (7.0, 3.0),
                 search_steps: tuple[int, int] = (200, 20), logit_scale: float = 100.0,
                 temperature: float = 1.0) -> None:
        self.text_weights = text_weights
        self.n_classes = n_classes
        self.classes = classes
        self.alpha = alpha
        self.beta = beta
        self.default_alpha = default_alpha
        self.default_beta = default_beta
        self.search_scale = search_scale
        self.search_steps = search_steps
        self.logit_scale = logit_scale
        self.temperature = temperature

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> TipAdapter:
        """Build the cache from (X, y); search alpha/beta on (X_val, y_val) only, if given."""
        T = None if self.text_weights is None else check_text_weights(self.text_weights)
        X = check_features(X, n_features=None if T is None else T.shape[1])
        y = self._fit_labels(y, X.shape[0], None if T is None else T.shape[0])
        check_class_counts(y, self.classes_.size, classes=self.classes_)
        order = np.argsort(y, kind="stable")
        self.keys_ = l2_normalize(X)[order]
        self.labels_ = y[order]
        self.n_features_in_ = int(X.shape[1])
        self.alpha_ = float(self.default_alpha if self.alpha is None else self.alpha)
        self.beta_ = float(self.default_beta if self.beta is None else self.beta)
        self.val_accuracy_: float | None = None
        start_warnings(self)
        val = None
        if self.alpha is None or self.beta is None:
            val = check_validation_pair(X_val, y_val, X.shape[1], self.classes_)
        if val is not None:
            self._search(*val)
        return self

    def _search(self, X_val: np.ndarray, y_val: np.ndarray) -> None:
        """Grid search over beta (outer) and alpha (inner) by validation accuracy: the first best
        (beta, alpha) in grid order.

        The validation rows go in blocks: one float32 product with the keys per ``PRODUCT_ELEMENTS``
        affinities, scored in blocks of ``BETA_ELEMENTS``. A block's affinities follow the beta grid
        by a product: exp(beta_{i+1} (A - 1)) = exp(beta_i (A - 1)) * exp(step (A - 1)) for the
        grid's constant step, in float64 (the ratio is exact to 1e-16, so 200 steps drift by about
        1e-14 relative), which costs one multiplication per affinity and beta where an exp costs
        about ten. The affinities go a few rows at a time (``CACHED_ELEMENTS``, with their ratios in
        the CPU cache) through a run of betas, whose class sums (``SUMS_ELEMENTS`` at most) are then
        scored: a whole block's affinities would go to memory and back at every beta (the
        ImageNet-size search 1.6-1.9x slower at 1-16 shots, bench/tip_adapter_search.py). Each
        beta's class sums, in the features' precision, are scored for every alpha at once by
        ``correct_counts``: the same counts as the argmax of every alpha's logits, from a few passes
        over the (rows, classes) sums instead of one per alpha.
        """
        Xv = l2_normalize(X_val)
        zs = self._zero_shot(Xv)
        scale = resolve_search_scale(self.search_scale)
        betas = [self.beta] if self.beta is not None else linear_grid(scale[0], self.search_steps[0])
        # without the zero-shot term alpha only scales the logits: nothing to search
        fixed_alpha = self.alpha is not None or self.text_weights is None
        alphas = [self.alpha_] if fixed_alpha else linear_grid(scale[1], self.search_steps[1])
        dtype = np.result_type(Xv, zs)
        alpha_values = np.asarray(alphas, dtype)
        keys, class_sums = self._class_sum_layout()
        keys_t = keys.T.astype(Xv.dtype, copy=False)  # a view of the keys when their dtype is the rows'
        step = betas[1] - betas[0] if len(betas) > 1 else 0.0
        correct = np.zeros((len(betas), len(alphas)), dtype=np.int64)
        beta_rows = max(1, self.BETA_ELEMENTS // keys.shape[0])
        product_rows = beta_rows * max(1, self.PRODUCT_ELEMENTS // (beta_rows * keys.shape[0]))
        run = max(1, min(len(betas), self.SUMS_ELEMENTS // (beta_rows * self.classes_.size)))
        sums = np.empty((run, min(beta_rows, Xv.shape[0]), self.classes_.size), dtype)
        for start in progress(range(0, Xv.shape[0], product_rows), "Tip-Adapter search"):
            products = Xv[start:start + product_rows] @ keys_t
            for lo in range(0, products.shape[0], beta_rows):
                block = slice(start + lo, start + lo + beta_rows)
                shifted = products[lo:lo + beta_rows].astype(np.float64)
                shifted -= 1  # A - 1 <= 0
                affinity = np.exp(betas[0] * shifted)
                ratio = np.exp(step * shifted)
                rows = affinity.shape[0]
                scorer = AlphaScorer(zs[block] if isinstance(zs, np.ndarray) else None, y_val[block], alpha_values)
                for first in range(0, len(betas), run):
                    run_betas = range(first, min(first + run, len(betas)))
                    self._step_betas(affinity, ratio, run_betas, class_sums, sums)
                    for slab, i in zip(sums, run_betas):
                        correct[i] += scorer.correct_counts(slab[:rows])
        bi, bj = np.unravel_index(np.argmax(correct), correct.shape)  # the first best in grid order
        self.val_accuracy_ = float(correct[bi, bj] / Xv.shape[0])
        self.alpha_, self.beta_ = float(alphas[bj]), float(betas[bi])
        hint = "widen search_scale or name a preset"
        warn_on_grid_edge(self, "beta", betas, self.beta_, hint)
        warn_on_grid_edge(self, "alpha", alphas, self.alpha_, hint)

    def _step_betas(self, affinity: np.ndarray, ratio: np.ndarray, betas: range,
                    class_sums: Callable[[np.ndarray], np.ndarray], sums: np.ndarray) -> None:
        """Step a block's affinities (rows, keys) through the grid's betas ``betas`` (indices, in
        order; beta 0 is the affinities as they are), ``CACHED_ELEMENTS`` at a time so that they
        and their ratios stay in the CPU cache, each beta's class sums into the next slab of
        ``sums`` (its first rows)."""
        cached_rows = max(1, self.CACHED_ELEMENTS // affinity.shape[1])
        for sub in range(0, affinity.shape[0], cached_rows):
            part, part_ratio = affinity[sub:sub + cached_rows], ratio[sub:sub + cached_rows]
            for slab, i in zip(sums, betas):
                if i:
                    part *= part_ratio
                slab[sub:sub + part.shape[0]] = class_sums(part)

    def _class_sum_layout(self) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """The keys in the order A L is summed, and A -> A L (the per-class sums of an (n, N)
        affinity block; exact, without the (N, C) one-hot matmul). With the same number of keys K
        in every class the keys go shot by shot (key k of every class, then key k + 1), so the sums
        add K contiguous (n, C) slices; otherwise per-class sums of the label-sorted keys
        (``np.add.reduceat``; every class has a key)."""
        n_classes = self.classes_.size
        counts = np.bincount(self.labels_, minlength=n_classes)
        if counts.min() == counts.max():
            K = int(counts[0])
            keys = self.keys_.reshape(n_classes, K, -1).transpose(1, 0, 2).reshape(n_classes * K, -1)
            if K == 1:
                return keys, lambda A: A
            return keys, lambda A: A.reshape(A.shape[0], K, n_classes).sum(axis=1)
        starts = np.searchsorted(self.labels_, np.arange(n_classes))  # first key row of each class
        return self.keys_, lambda A: np.add.reduceat(A, starts, axis=1)

    def _zero_shot(self, Xn: np.ndarray) -> np.ndarray | float:
        if self.text_weights is None:
            return 0.0
        return zero_shot_logits(Xn, self.text_weights, self.logit_scale)

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """Tip-Adapter logits (n, C), in row batches of at most ``LOGIT_ELEMENTS`` affinities, so
        the (n, N) affinity never lives whole; each batch's product, exp and class sums (A L as the
        search sums it, ``_class_sum_layout``) reuse one buffer."""
        self._check_fitted()
        Xn = l2_normalize(check_features(X, n_features=self.n_features_in_, estimator=self))
        keys, class_sums = self._class_sum_layout()
        keys_t = keys.T.astype(Xn.dtype, copy=False)
        zero_shot = self._zero_shot(Xn)
        out = zero_shot if isinstance(zero_shot, np.ndarray) else np.zeros((Xn.shape[0], self.classes_.size), Xn.dtype)
        rows = max(1, min(self.batch_size, self.LOGIT_ELEMENTS // keys.shape[0]))
        buffer = np.empty((min(rows, Xn.shape[0]), keys.shape[0]), dtype=Xn.dtype)
        for lo in range(0, Xn.shape[0], rows):
            batch = Xn[lo:lo + rows]
            affinity = np.matmul(batch, keys_t, out=buffer[:batch.shape[0]])
            affinity -= 1
            affinity *= self.beta_
            np.exp(affinity, out=affinity)  # exp(-beta (1 - x F^T))
            out[lo:lo + rows] += self.alpha_ * class_sums(affinity)
        return out
