"""Cosine k-nearest-neighbour classification over a FAISS index, with similarity-weighted votes
as in the weighted kNN evaluation of Wu et al., "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination", CVPR 2018 (also used by DINO, Caron et al., ICCV 2021)."""
from __future__ import annotations

import warnings

import numpy as np

from solvers._base.checks import check_features
from solvers._base.fit_warnings import SolverWarning, record_warning, start_warnings
from solvers._base.normalize import l2_normalize
from solvers._base.solver import Solver
from solvers.errors import InputError

WEIGHTINGS = ("exp", "cosine", "uniform")
#: Smallest vote share kept before the log (a class without votes gets log(1e-12) = -27.6).
SHARE_FLOOR = 1e-12


class KNN(Solver):
    """Cosine kNN (Wu et al., CVPR 2018): the k training rows with the largest cosine similarity
    s_j vote for their class with weight exp(s_j / tau) (``weighting="exp"``, tau = 0.07 as in
    Wu et al.), max(s_j, 0) (``"cosine"``: a neighbour with a negative similarity votes 0; each
    neighbour's weight is clipped, not a class's total) or 1 (``"uniform"``).

    The solvers' one contract holds: ``class_logits`` returns (n, C) logits and ``predict_proba``
    is softmax(logits / temperature). The logits are log vote shares, log(max(p_c, 1e-12)) with
    p_c = v_c / sum_c' v_c', so softmax of them at temperature 1 is kNN's own vote-share
    probability (classes without a vote get ~1e-12). A query without a positive vote (with
    ``"cosine"``: every neighbour's similarity <= 0) gets uniform shares, so ``predict`` gives it
    ``classes_[0]``: no fallback is sound, so a ``SolverWarning`` says how many queries, and the
    message is added once to ``fit_warnings_`` (which ``fs solve --json`` reports).
    The raw per-class vote sums are ``votes``. The index is ``faiss.index_factory(D,
    index_factory, METRIC_INNER_PRODUCT)`` over normalized rows ("Flat" = exact search), moved
    to GPU when faiss sees one. Uniform votes with k >= the number of training rows are every
    row's class counts, the same for every query (the class prior): fit warns.
    """

    _state_arrays = ("train_features_", "train_labels_")
    _state_scalars = ()

    def __init__(self, k: int = 16, weighting: str = "exp", tau: float = 0.07,
                 n_classes: int | None = None, text_weights: np.ndarray | None = None,
                 classes: list | np.ndarray | None = None, index_factory: str = "Flat",
                 temperature: float = 1.0) -> None:
        self.k = k
        self.weighting = weighting
        self.tau = tau
        self.n_classes = n_classes
        self.text_weights = text_weights
        self.classes = classes
        self.index_factory = index_factory
        self.temperature = temperature

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> KNN:
        """Index the normalized training rows; X_val/y_val are accepted and unused. Warns
        (``fit_warnings_``) when k exceeds the training rows, and that uniform votes are then
        the same for every query."""
        if self.weighting not in WEIGHTINGS:
            raise InputError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if int(self.k) < 1:
            raise InputError(f"k must be >= 1, got {self.k}")
        T = None if self.text_weights is None else np.asarray(self.text_weights)
        X = check_features(X, n_features=None if T is None else T.shape[1])
        self.train_labels_ = self._fit_labels(y, X.shape[0], None if T is None else T.shape[0])
        self.train_features_ = l2_normalize(X).astype(np.float32)
        self.n_features_in_ = int(X.shape[1])
        self._restore()
        start_warnings(self)
        n = X.shape[0]
        if self.weighting == "uniform" and int(self.k) >= n:
            record_warning(self, f"uniform votes with k = {self.k} >= the {n} training rows: every query gets the "
                                 "same votes (the training class counts), so every prediction is the most frequent "
                                 "class; use a smaller k or weighting='exp'")
        elif int(self.k) > n:
            record_warning(self, f"k = {self.k} exceeds the {n} training rows; every row votes (k = {n})")
        return self

    def _restore(self) -> None:
        import faiss

        index = faiss.index_factory(self.n_features_in_, self.index_factory, faiss.METRIC_INNER_PRODUCT)
        if faiss.get_num_gpus() > 0:
            index = faiss.index_cpu_to_all_gpus(index)
        if not index.is_trained:
            index.train(self.train_features_)
        index.add(self.train_features_)
        self.index_ = index

    def __getstate__(self) -> dict:
        """Pickle without the FAISS index (a GPU index cannot be pickled, and the rows are in
        ``train_features_`` already): it is rebuilt on unpickling, as after ``from_state``."""
        state = self.__dict__.copy()
        state.pop("index_", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "train_features_" in state:
            self._restore()

    def kneighbors(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, row indices) of the k nearest training rows, best first."""
        self._check_fitted()
        Xn = l2_normalize(check_features(X, n_features=self.n_features_in_, estimator=self))
        k = min(int(self.k), self.train_features_.shape[0])
        sims, idx = self.index_.search(np.ascontiguousarray(Xn, dtype=np.float32), k)
        return sims, idx

    def votes(self, X: np.ndarray) -> np.ndarray:
        """Per-class sums of the neighbours' vote weights (n, C), all >= 0: with ``"cosine"`` a
        neighbour with a negative similarity votes 0."""
        sims, idx = self.kneighbors(X)
        valid = idx >= 0
        if self.weighting == "exp":
            weights = np.exp(sims.astype(np.float64) / self.tau)
        elif self.weighting == "cosine":
            weights = np.maximum(sims.astype(np.float64), 0.0)
        else:
            weights = np.ones(sims.shape)
        weights[~valid] = 0
        votes = np.zeros((idx.shape[0], self.classes_.size))
        rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
        np.add.at(votes, (rows, self.train_labels_[np.where(valid, idx, 0)].ravel()), weights.ravel())
        return votes

    def vote_shares(self, X: np.ndarray) -> np.ndarray:
        """Votes divided by their row sum (n, C); a row without a positive vote is uniform, and a
        ``SolverWarning`` (also a line in ``fit_warnings_``) counts such rows."""
        votes = self.votes(X)
        total = votes.sum(axis=1, keepdims=True)
        out = np.full_like(votes, 1.0 / votes.shape[1])
        np.divide(votes, total, out=out, where=total > 0)
        without = int(np.count_nonzero(total <= 0))
        if without:
            self._warn_without_votes(without, votes.shape[0])
        return out

    def _warn_without_votes(self, without: int, n: int) -> None:
        if self.weighting == "cosine":
            reason, hint = "every neighbour's cosine similarity is <= 0", "use weighting='exp' or a larger k"
        else:
            reason, hint = "every neighbour's weight exp(s / tau) underflows to 0", "use a larger tau"
        message = (f"{without} of {n} queries got no positive vote ({reason}): their vote shares are uniform and "
                   f"predict gives them the first class, {self.classes_[0]}; {hint}")
        if message in getattr(self, "fit_warnings_", []):
            warnings.warn(f"{type(self).__name__}: {message}", SolverWarning, stacklevel=3)
        else:
            record_warning(self, message)

    def class_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits (n, C): log vote shares clipped at log(1e-12), so softmax(logits) = vote shares."""
        return np.log(np.maximum(self.vote_shares(X), SHARE_FLOOR))
