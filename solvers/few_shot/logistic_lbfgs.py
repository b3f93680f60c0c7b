"""L2-regularised multinomial logistic regression with scikit-learn's objective and stopping rule,
fitted by L-BFGS whose line searches move along the logits, in float64 where it decides the result.

Why not scikit-learn's ``LogisticRegression`` itself: solvers/ does not import scikit-learn (its
import alone takes about a second: bench/RESULTS.md), and scikit-learn fits float32 rows in
float32, where a tight tolerance cannot be met (line searches stall, or the decrease drowns in
rounding); the linear probe needs converged fits (its C search scores every visited C by one).

Why not SciPy's L-BFGS-B: its line search asks for the value *and the gradient* at every trial
step, and the gradient costs a product with the rows (n x D x K). Along a line the logits are
affine, Z(t) = Z_0 + t dZ, so a trial needs only the softmax of Z(t): the value, the slope
phi'(t) = <P(t) - Y, dZ> / n + ridge terms and the curvature phi''(t) cost O(n K), no product. An
iteration here takes two products, dZ = X~ D^T for the direction D and the gradient at the step
accepted, whatever the number of trials. The first iteration of a fit (no L-BFGS pairs yet) starts
its line search at the 1-D Newton step -phi'(0) / phi''(0) instead of a unit-length step, which a
warm start from a nearby fit would overshoot by orders of magnitude.

Preconditioning (a change of variables, not of the problem): with x~ = [x, 1] and the weights
Theta = [W, b] (K rows), the L-BFGS initial inverse Hessian is gamma S^-1 on each row, where
S = c X~^T X~ / n + ridge E (E: the identity without the intercept's entry; c: a fraction of the
softmax's mean curvature at the start), an approximation of one class's block of the Hessian:
the same iterations as plain L-BFGS on Theta L (L L^T = S). CLIP-like features are anisotropic and
share a large mean (which the intercept mirrors), so L-BFGS in the original variables is
ill-conditioned; preconditioned, the same objective has the same optimum, reached in fewer
iterations (bench/RESULTS.md). The stop: the gradient in the original variables has max |g| <= tol
(tested in float64), or the relative decrease of the objective falls below 64 eps (scikit-learn's
L-BFGS rule).

Precision: rows, logits, softmax, values and sums are float64. On enough rows the two products of
an iteration are float32 (``FLOAT32_MARGIN``): dZ's rounding is relative to the step, not to the
logits, which are chained in float64 (Z_{k+1} = Z_k + t dZ_k) and recomputed by a float64 product
every ``REFRESH`` iterations; the gradient's float32 rounding stays well below ``tol``; a fit stops
only where a float64 evaluation (logits and gradient) meets ``tol``, and a float32 phase that stalls
goes on with float64 products.

Where the ridge dominates (small C) a fit runs SciPy's L-BFGS-B on the original variables with
float64 products instead, scikit-learn's own path (``_scikit_learn_path``): there the tolerance's
slack in the intercepts can decide a validation prediction, and that path resolves it as
scikit-learn does.

A search that scores fits by their validation predictions can let them settle (``Settle``): a
fit stops once those predictions have held for a few iterations and its gradient is within a
factor of tol, with float32 products throughout; only the value chosen is then fitted to tol.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The preconditioner's c is this fraction of the softmax's mean curvature at the start (the
#: fits' path leads to sharper probabilities, lower curvature; the fraction measured best in
#: bench/RESULTS.md's probe section).
CURVATURE_SCALE = 0.1
#: The softmax's mean curvature at the start is kept at least this fraction of its value at zero
#: weights (a start whose probabilities are all near 0 or 1 would otherwise leave the intercept's
#: direction unscaled). Both constants change iterations only, never the optimum. Where the ridge
#: outweighs c trace(X^T X / n) (small C: a near-isotropic problem) the fit runs unpreconditioned in
#: float64, as scikit-learn's: there the optimum's logits are tiny and the stopping rule's slack in
#: the intercepts (tol / curvature) would decide predictions, as it does not on that path.
MIN_CURVATURE = 1e-3
#: The products are taken in float32 (logits, values and sums in float64) when the float32 rounding
#: the gradient's product adds, estimated as eps32 rms(x_d) / sqrt(n), is at least this many times
#: below ``tol``.
FLOAT32_MARGIN = 4.0
#: With float32 products the chained logits are recomputed by a float64 product every REFRESH-th
#: iteration (it bounds their drift).
REFRESH = 16
#: L-BFGS pairs kept (SciPy's default ``maxcor``).
MEMORY = 10
#: A line search's trials at most (scikit-learn's ``maxls``), and its conditions: sufficient
#: decrease phi(t) - phi(0) <= ARMIJO t phi'(0) and |phi'(t)| <= WOLFE |phi'(0)| (strong Wolfe). A
#: trial costs a softmax, not a product, so the search is nearly exact (WOLFE 0.1 rather than
#: SciPy's 0.9): fewer iterations, each with its two products (bench/RESULTS.md).
MAX_LINE_STEPS = 50
ARMIJO, WOLFE = 1e-4, 0.1
#: A line search trial's softmax goes over blocks of rows of about this many logits (256 KB of
#: float64 per array: the block's four arrays stay in the CPU cache).
TRIAL_BLOCK = 32768
#: scikit-learn's L-BFGS relative decrease stop: (f_k - f_k+1) / max(|f_k|, |f_k+1|, 1) <= FTOL.
FTOL = 64 * float(np.finfo(np.float64).eps)
#: A settled fit (``Settle``'s defaults) stops once its predicted classes have not changed over
#: this many iterations in a row and its max |gradient| is at most SETTLE_TOL x tol (without that
#: gate, iterates far from the optimum whose predictions paused settled on scores a row or two off).
SETTLE_PATIENCE = 3
SETTLE_TOL = 100.0
#: A settled fit whose gradient from float32 products meets tol stops there, without the float64
#: products that would confirm it (it is a score; the value chosen is fitted on without Settle).
SETTLED_AT_TOL = "SETTLED: max |gradient| <= tol with float32 products"


@dataclass
class LogisticFit:
    """Weights ``coef`` (K, D) and ``intercept`` (K,) in float64, K = n_classes (1 for two
    classes: scikit-learn's binary model, the logit of class 1 against class 0)."""

    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int
    converged: bool
    message: str
    settled: bool = False


@dataclass(frozen=True)
class Settle:
    """A fit's early stop for a search that scores it by its predictions on ``rows`` (m, D), e.g.
    validation rows: the fit ends (``settled``) at the first iterate whose predicted class of every
    row is that of the ``patience`` iterates before it and whose max |gradient| is at most
    ``gradient_gate`` x tol, before its gradient meets tol, or at the first whose gradient from
    float32 products meets tol (``SETTLED_AT_TOL``, unconfirmed by float64 products). Such a fit
    takes float32 products throughout (its start and stop too; where the ridge dominates, L-BFGS
    on the original variables rather than SciPy's float64 path) and, where their error stays
    ``FLOAT32_MARGIN`` times below that gradient bound and the ridge does not dominate, float32
    exponentials in its softmax; it is a score, not a model: fit the value chosen on without
    ``settle`` (from the settled fit: a few iterations) for the model."""

    rows: np.ndarray
    patience: int = SETTLE_PATIENCE
    gradient_gate: float = SETTLE_TOL


#: The empty array of a _Point's part not formed (a kept fit's logits, a gradient not yet taken).
_NONE = np.empty(0)


@dataclass
class _Point:
    """An iterate: weights theta (K, D + 1), its logits Z (n, K) in float64 and their rows'
    log-partitions (n,), the probabilities P, the objective's value and gradient (K, D + 1).
    ``exact``: Z and the gradient come from float64 products (a stop is decided only there)."""

    theta: np.ndarray
    Z: np.ndarray
    lse: np.ndarray
    P: np.ndarray
    value: float
    grad: np.ndarray
    exact: bool


class LogisticProblem:
    """One training set (rows ``X``, classes ``y`` in 0 .. n_classes-1) fitted at any C: the rows
    in float64 (and float32) and their Gram matrix (for the preconditioner) are computed once and
    shared by every fit, as the linear probe's C search needs.

    With fewer rows than dimensions (n < D) the fits run in the rows' span: X = X_r V^T (V an
    orthonormal basis of the rows, D x n), W = W_r V^T. The optimum's W lies in that span (a
    component outside it adds to the penalty and not to the fit), so the problem in W_r (n
    columns instead of D) has the same optimum; a start is projected onto the span, and the stop
    tests the gradient in the original D columns."""

    def __init__(self, X: np.ndarray, y: np.ndarray, n_classes: int) -> None:
        X64 = np.ascontiguousarray(X, dtype=np.float64)
        self.y = np.asarray(y)
        self.n_outputs = 1 if n_classes == 2 else n_classes
        self.n_features = X64.shape[1]
        self._basis: np.ndarray | None = None
        # a settled fit's float32 exponentials err by up to eps32 relative in each probability: in
        # the gradient's entry d by up to eps32 mean_i |x_id| (errors alike in every row)
        self._exp32_error = float(np.finfo(np.float32).eps) * float(np.abs(X64).mean(axis=0).max())
        if X64.shape[0] < X64.shape[1]:
            self._basis, R = np.linalg.qr(X64.T)  # X^T = V R: X = R^T V^T
            X64 = np.ascontiguousarray(R.T)
        self.X = X64
        n, D = X64.shape
        self._rows = np.arange(n)
        self._target = self.y.astype(np.float64)  # the binary model's 0/1 targets
        # float32 products where their rounding in the gradient (about eps32 rms(x_d) / sqrt(n) per
        # entry for residuals in [-1, 1], the largest column rms) stays FLOAT32_MARGIN times below tol
        rms = float(np.sqrt(np.square(X64).mean(axis=0).max()))
        self._float32_error = float(np.finfo(np.float32).eps) * rms / np.sqrt(n)
        self._rows32: np.ndarray | None = None
        # id(coef) of a fit returned -> (coef, its data loss and gradient, whether they are float64
        # ones): a later fit started from it takes them instead of a gradient product (a settled
        # fit's, from float32 products, only a later settled fit)
        self._kept: dict[int, tuple[np.ndarray, tuple[float, np.ndarray], bool]] = {}
        # (n, K) buffers free for reuse, float64 and float32: arrays this large come from fresh
        # pages, whose first writes cost about as much as a softmax pass; the problem's fits share them
        self._spare: list[np.ndarray] = []
        self._spare32: np.ndarray | None = None
        self._watched: tuple[np.ndarray, np.ndarray] | None = None  # a Settle's rows, and in these columns
        gram = np.empty((D + 1, D + 1))
        gram[:D, :D] = X64.T @ X64
        gram[:D, D] = gram[D, :D] = X64.sum(axis=0)
        gram[D, D] = n
        self._gram = gram / n  # X~^T X~ / n, X~ = [X, 1]

    def fit(self, C: float, start: tuple[np.ndarray, np.ndarray] | list[tuple[np.ndarray, np.ndarray]] | None = None,
            tol: float = 1e-6, max_iter: int = 1000, settle: Settle | None = None) -> LogisticFit:
        """Fit C * sum_i CE(W x_i + b, y_i) + |W|^2 / 2 (b unpenalised) from ``start`` (zeros if
        None; of a list of starts, the one of lowest objective) by preconditioned L-BFGS (module
        docstring), stopping when the original variables' float64 gradient has max |g| <= tol, the
        relative decrease falls below 64 eps, or after ``max_iter`` iterations (line searches of at
        most 50 trials, as scikit-learn's lbfgs). ``converged`` is False when the fit ended for
        another reason than a tolerance. ``settle``: also stop once the predictions on its rows
        have settled (``Settle``; then ``settled`` is True), with float32 products throughout."""
        K, V = self.n_outputs, self._basis
        n, D = self.X.shape
        ridge = 1.0 / (C * n)
        float32 = settle is not None or FLOAT32_MARGIN * self._float32_error <= tol
        watch = None if settle is None else \
            _Watch(self._watched_rows(settle.rows), settle.patience, settle.gradient_gate * tol)
        if float32 and self._rows32 is None:
            self._rows32 = self.X.astype(np.float32)
        starts: list[tuple[np.ndarray, tuple[float, np.ndarray] | None, bool]] = []
        given = [(np.zeros((K, self.n_features)), np.zeros(K))] if start is None else \
            [start] if isinstance(start, tuple) else start
        for W, b in given:
            kept = self._kept.get(id(W))
            if kept is not None and (kept[0] is not W or not (kept[2] or watch is not None)):
                kept = None
            W = np.asarray(W, np.float64).reshape(K, self.n_features)
            theta = np.hstack([W if V is None else W @ V, np.asarray(b, np.float64).reshape(K, 1)])
            starts.append((theta, None, True) if kept is None else (theta, kept[1], kept[2]))
        # a settled fit's exponentials are float32 ones where their error stays FLOAT32_MARGIN times
        # below its gradient gate
        exp32 = watch is not None and FLOAT32_MARGIN * self._exp32_error <= watch.gate
        point = self._start(starts, ridge, tol, watch is not None, exp32)  # float64 unless settling
        shift = float(point.theta[:, D].mean())
        if self._meets(point.grad, tol):
            if watch is not None and not point.exact:
                return self._finish(point, ridge, shift, 0, False, SETTLED_AT_TOL, settled=True)
            point = self._refreshed(point, ridge)
            if self._meets(point.grad, tol):
                return self._finish(point, ridge, shift, 0, True, "CONVERGENCE: the start meets tol")
        if watch is not None:
            watch.settled(point.theta, False)  # the start, iterate 0
        at_zero = 0.25 if K == 1 else (1 - 1 / K) / K  # the mean curvature at zero weights
        c = CURVATURE_SCALE * max(float(np.mean(point.P * (1 - point.P))), MIN_CURVATURE * at_zero)
        try:
            if c * np.trace(self._gram[:D, :D]) < ridge:  # the ridge dominates: scikit-learn's own path
                if watch is not None:  # a settled fit: L-BFGS on the original variables, float32 products
                    # and float64 exponentials (its decreases are tiny: float32 ones fail line searches)
                    if exp32:
                        self._float64_softmax(point, ridge)
                    return self._iterate(point, ridge, None, float32, tol, int(max_iter), shift, watch)
                return self._scikit_learn_path(point, ridge, tol, int(max_iter), shift)
            S = c * self._gram
            S[np.arange(D), np.arange(D)] += ridge
            inverse = np.linalg.inv(S)
            inverse = (inverse + inverse.T) / 2
            if float32:  # the preconditioner shapes directions only: float32 products, as the rows'
                inverse = inverse.astype(np.float32)
            return self._iterate(point, ridge, inverse, float32, tol, int(max_iter), shift, watch, exp32)
        finally:
            del self._spare[5:]  # a fit holds at most a point, a trial and a line's logits

    def _scikit_learn_path(self, point: _Point, ridge: float, tol: float, max_iter: int, shift: float) -> LogisticFit:
        """SciPy's L-BFGS-B on the original variables with float64 products, as scikit-learn's lbfgs
        runs it (``maxls`` 50, its relative decrease rule), stopped when max |g| <= tol: where the
        ridge dominates (small C) the optimum's logits are tiny and the tolerance's slack in the
        intercepts can decide a validation row; this path resolves it as scikit-learn does. Its fits
        take a few well-conditioned iterations."""
        from scipy.optimize import minimize

        K, D = point.theta.shape[0], point.theta.shape[1] - 1
        first = np.concatenate([point.theta[:, :D].ravel(), point.theta[:, D]])
        last = {"point": point}

        def value_and_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
            if not np.array_equal(w, first):
                self._release(last["point"])
                last["point"] = self._exact(np.hstack([w[:K * D].reshape(K, D), w[K * D:].reshape(K, 1)]), ridge)
            grad = last["point"].grad
            return last["point"].value, np.concatenate([grad[:, :D].ravel(), grad[:, D]])

        def stop_on_tol(intermediate_result: object) -> None:
            if self._meets(last["point"].grad, tol):
                raise StopIteration

        result = minimize(value_and_gradient, first, jac=True, method="L-BFGS-B", callback=stop_on_tol,
                          options={"maxls": MAX_LINE_STEPS, "gtol": 0.0, "ftol": FTOL, "maxiter": max_iter})
        theta = np.hstack([result.x[:K * D].reshape(K, D), result.x[K * D:].reshape(K, 1)])
        end = last["point"]
        if not np.array_equal(end.theta, theta):
            self._release(end)
            end = self._exact(theta, ridge)
        if result.status == 99:  # the callback's StopIteration
            return self._finish(end, ridge, shift, int(result.nit), True, "CONVERGENCE: max |gradient| <= tol")
        return self._finish(end, ridge, shift, int(result.nit), bool(result.status == 0), str(result.message))

    # -- the objective's pieces -------------------------------------------------------------------

    def _buffer(self) -> np.ndarray:
        """An (n, K) float64 buffer: a spare one, else a new one."""
        return self._spare.pop() if self._spare else np.empty((self.X.shape[0], self.n_outputs))

    def _buffer32(self) -> np.ndarray:
        """The (n, K) float32 scratch buffer of the float32 products (one at a time)."""
        if self._spare32 is None:
            self._spare32 = np.empty((self.X.shape[0], self.n_outputs), np.float32)
        return self._spare32

    def _logits(self, theta: np.ndarray, float32: bool) -> np.ndarray:
        """X~ Theta^T (n, K) in float64, from a float64 or a float32 product."""
        if float32:
            assert self._rows32 is not None
            product = np.matmul(self._rows32, theta[:, :-1].T.astype(np.float32), out=self._buffer32())
            return np.add(product, theta[:, -1], out=self._buffer())  # in float64: one pass
        Z = np.matmul(self.X, theta[:, :-1].T, out=self._buffer())
        Z += theta[:, -1]
        return Z

    @staticmethod
    def _softmax(Z: np.ndarray, out: np.ndarray, scratch32: np.ndarray | None = None) -> np.ndarray:
        """The probabilities of logits Z into ``out`` (the sigmoid for the binary model, one column);
        returns the rows' log-partitions (log sum_c e^z_c, or log(1 + e^z)). ``scratch32``, a float32
        array of Z's shape: the exponentials are float32 ones of the float64 differences z - max z
        (a settled fit's: each entry to float32's relative rounding, as its products; NumPy's float64
        exp is not vectorised on AVX2 and costs about 4x float32's), summed in float64."""
        if Z.shape[1] == 1:
            lse = np.logaddexp(0.0, Z[:, 0])
            np.exp(Z[:, 0] - lse, out=out[:, 0])
            return lse
        top = Z.max(axis=1)
        if scratch32 is None:
            np.subtract(Z, top[:, None], out=out)
            np.exp(out, out=out)
        else:
            np.subtract(Z, top[:, None], out=scratch32, casting="same_kind")
            np.exp(scratch32, out=scratch32)
            out[...] = scratch32
        total = out.sum(axis=1)
        out /= total[:, None]
        return top + np.log(total)

    def _picked(self, Z: np.ndarray) -> np.ndarray:
        """Each row's logit of its class (t z for the binary model)."""
        if self.n_outputs == 1:
            return self._target * Z[:, 0]
        return Z[self._rows, self.y]

    def _value(self, theta: np.ndarray, Z: np.ndarray, lse: np.ndarray, ridge: float) -> float:
        W = theta[:, :-1]
        return float((lse.sum() - self._picked(Z).sum()) / Z.shape[0]) + 0.5 * ridge * float(np.vdot(W, W))

    def _gradient(self, theta: np.ndarray, P: np.ndarray, ridge: float, float32: bool) -> np.ndarray:
        """[R^T X / n + ridge W, sum R / n] with the residuals R = P - Y, formed in P and undone
        after (an entry of P keeps its value to 1e-16 absolute, which only the preconditioner's
        curvature and the first step's Newton estimate read)."""
        n, D = self.X.shape
        true = (self._rows, self.y if self.n_outputs > 1 else 0)
        P[true] -= 1.0 if self.n_outputs > 1 else self._target
        grad = np.empty_like(theta)
        if float32:
            assert self._rows32 is not None
            residual32 = self._buffer32()
            residual32[...] = P
            grad[:, :D] = residual32.T @ self._rows32
        else:
            grad[:, :D] = P.T @ self.X
        grad[:, D] = P.sum(axis=0)
        P[true] += 1.0 if self.n_outputs > 1 else self._target
        grad /= n
        grad[:, :D] += ridge * theta[:, :D]
        return grad

    def _probabilities(self, theta: np.ndarray, float32: bool,
                       exp32: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The logits at theta (``_logits``), their rows' log-partitions and probabilities
        (``exp32``: from float32 exponentials, ``_softmax``)."""
        Z, P = self._logits(theta, float32), self._buffer()
        return Z, self._softmax(Z, P, self._buffer32() if exp32 else None), P

    def _float64_softmax(self, point: _Point, ridge: float) -> None:
        """Redo ``point``'s softmax (and so its value) with float64 exponentials, from its logits."""
        point.lse = self._softmax(point.Z, point.P)
        point.value = self._value(point.theta, point.Z, point.lse, ridge)

    def _exact(self, theta: np.ndarray, ridge: float) -> _Point:
        """The iterate at theta with float64 logits and a float64 gradient."""
        Z, lse, P = self._probabilities(theta, False)
        return _Point(theta, Z, lse, P, self._value(theta, Z, lse, ridge), self._gradient(theta, P, ridge, False), True)

    def _start(self, starts: list[tuple[np.ndarray, tuple[float, np.ndarray] | None, bool]], ridge: float,
               tol: float, float32: bool, exp32: bool = False) -> _Point:
        """The start of lowest objective, evaluated in float64 (``float32``: a settled fit's, from
        float32 products; ``exp32``: and float32 exponentials):
        a kept fit's value and gradient come from its data terms (its logits are formed only when
        it does not meet tol here); another start's value from a product of its logits, which the
        one chosen keeps, and its gradient only when it is chosen."""
        candidates = []
        for theta, data, exact in starts:
            if data is not None:
                candidates.append(_Point(theta, _NONE, _NONE, _NONE, *self._from_data(theta, data, ridge), exact))
                continue
            Z, lse, P = self._probabilities(theta, float32, exp32)
            candidates.append(_Point(theta, Z, lse, P, self._value(theta, Z, lse, ridge), _NONE, not float32))
        point = min(candidates, key=lambda candidate: candidate.value)
        for other in candidates:
            if other is not point:
                self._release(other)
        if point.Z.size:
            point.grad = self._gradient(point.theta, point.P, ridge, float32)
        elif not self._meets(point.grad, tol):  # a kept fit's start that goes on: its logits
            point.Z, point.lse, point.P = self._probabilities(point.theta, float32, exp32)
            point.exact = not float32
        return point

    @staticmethod
    def _from_data(theta: np.ndarray, data: tuple[float, np.ndarray], ridge: float) -> tuple[float, np.ndarray]:
        """The value and gradient at theta from a kept fit's data loss and gradient, and this ridge."""
        W = theta[:, :-1]
        return data[0] + 0.5 * ridge * float(np.vdot(W, W)), data[1] + ridge * np.hstack([W, np.zeros((len(W), 1))])

    def _release(self, point: _Point) -> None:
        if point.Z.size:  # not a kept fit's start without its logits
            self._spare.extend([point.Z, point.P])

    # -- L-BFGS -----------------------------------------------------------------------------------

    def _iterate(self, point: _Point, ridge: float, inverse: np.ndarray | None, float32: bool, tol: float,
                 max_iter: int, shift: float, watch: _Watch | None, exp32: bool = False) -> LogisticFit:
        """L-BFGS from ``point`` with the initial inverse Hessian gamma ``inverse`` (None: identity);
        ``watch``: stop once its predictions have settled. ``exp32``: the line searches take float32
        exponentials until one finds no step (their rounding, 1e-7 of a row's log-partition, can
        hide the last decreases), then float64 ones."""
        pairs: list[tuple[np.ndarray, np.ndarray, float]] = []  # (s, y, 1 / s.y), oldest first
        gamma = 1.0
        n_iter = since_refresh = 0
        while True:
            if n_iter >= max_iter:
                return self._finish(point, ridge, shift, n_iter, False, "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT")
            step = self._line_search(point, self._direction(point.grad, pairs, inverse, gamma), ridge, float32,
                                     newton=not pairs, exp32=exp32)
            if step is None and pairs:  # not a descent direction, or no acceptable step: without the pairs
                pairs.clear()
                step = self._line_search(point, self._direction(point.grad, pairs, inverse, gamma), ridge, float32,
                                         newton=True, exp32=exp32)
            if step is None and exp32:  # on with float64 exponentials, the point's softmax too
                exp32 = False
                self._float64_softmax(point, ridge)
                continue
            if step is None:
                if float32 or not point.exact:  # the chained logits' rounding: on from float64 ones
                    float32 = False
                    point = self._refreshed(point, ridge)
                    pairs.clear()
                    continue
                return self._finish(point, ridge, shift, n_iter, False,
                                    "ABNORMAL: the line search found no step meeting the Wolfe conditions")
            change, new = step
            n_iter += 1
            since_refresh += 1
            new.grad = self._gradient(new.theta, new.P, ridge, float32)
            meets = self._meets(new.grad, tol)
            if since_refresh >= REFRESH or (meets and watch is None):  # float64 logits and gradient
                new = self._refreshed(new, ridge)
                since_refresh = 0
            s, yv = new.theta - point.theta, new.grad - point.grad
            sy = float(np.vdot(s, yv))
            if sy > np.finfo(np.float64).eps * float(np.vdot(yv, yv)):
                pairs.append((s, yv, 1.0 / sy))
                del pairs[:-MEMORY]
                gamma = self._gamma(pairs[-1], inverse)
            self._release(point)
            point = new
            if point.exact and self._meets(point.grad, tol):
                return self._finish(point, ridge, shift, n_iter, True, "CONVERGENCE: max |gradient| <= tol")
            if watch is not None and meets and not point.exact:  # a score: float32 products' gradient suffices
                return self._finish(point, ridge, shift, n_iter, False, SETTLED_AT_TOL, settled=True)
            if watch is not None and watch.settled(point.theta, self._meets(point.grad, watch.gate)):
                return self._finish(point, ridge, shift, n_iter, False, watch.message, settled=True)
            if -change <= FTOL * max(abs(point.value), abs(point.value - change), 1.0):
                point = self._refreshed(point, ridge)
                if self._meets(point.grad, tol):
                    return self._finish(point, ridge, shift, n_iter, True, "CONVERGENCE: max |gradient| <= tol")
                if float32:  # below what float32 products resolve: on with float64 ones
                    float32 = False
                    continue
                return self._finish(point, ridge, shift, n_iter, True,
                                    "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH")

    @staticmethod
    def _gamma(pair: tuple[np.ndarray, np.ndarray, float], inverse: np.ndarray | None) -> float:
        """The initial inverse Hessian's scale s.y / y S^-1 y from the newest pair."""
        yv = pair[1]
        return 1.0 / pair[2] / float(np.vdot(yv, _preconditioned(yv, inverse)))

    def _refreshed(self, point: _Point, ridge: float) -> _Point:
        """``point`` re-evaluated with float64 products (its value and gradient from them)."""
        if point.exact:
            return point
        self._release(point)
        return self._exact(point.theta, ridge)

    @staticmethod
    def _direction(grad: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray, float]],
                   inverse: np.ndarray | None, gamma: float) -> np.ndarray:
        """-H grad by L-BFGS's two-loop recursion, H_0 = gamma ``inverse`` on each row of Theta
        (gamma 1 without pairs: the first step's length comes from the line search's Newton step)."""
        q = grad.copy()
        alphas = []
        for s, yv, rho in reversed(pairs):
            a = rho * float(np.vdot(s, q))
            q -= a * yv
            alphas.append(a)
        r = _preconditioned(q, inverse)
        if pairs:
            r *= gamma
        for (s, yv, rho), a in zip(pairs, reversed(alphas)):
            r += (a - rho * float(np.vdot(yv, r))) * s
        return -r

    def _line_search(self, point: _Point, direction: np.ndarray, ridge: float, float32: bool,
                     newton: bool, exp32: bool = False) -> tuple[float, _Point] | None:
        """A step t along ``direction`` meeting the strong Wolfe conditions, from trials on the logits
        Z + t dZ (dZ = X~ direction^T: this line's one product): phi(t) - phi(0), phi'(t) from the
        softmax alone. Returns (phi(t) - phi(0), the new point with its logits, log-partitions and
        probabilities; its gradient is the caller's), or None when ``direction`` is not a descent
        direction or no trial is acceptable. ``newton``: the first trial is the 1-D Newton step
        -phi'(0) / phi''(0), else 1. A trial that ends on the descending side (phi'(t) <= 0) with
        no increase is a decrease on a convex line, accepted under the curvature condition even
        where the decrease is below Armijo's rounding. ``exp32``: the trials' softmax takes float32
        exponentials (a settled fit's, ``_softmax``)."""
        n = point.Z.shape[0]
        W, dW = point.theta[:, :-1], direction[:, :-1]
        slope0 = float(np.vdot(point.grad, direction))
        if not slope0 < 0:
            return None
        dZ = self._logits(direction, float32)
        picked = float(self._picked(dZ).sum()) / n
        wd, dd = float(np.vdot(W, dW)), float(np.vdot(dW, dW))
        t = 1.0
        if newton:
            curvature = self._line_curvature(point.P, dZ, ridge * dd)
            t = -slope0 / curvature if curvature > 0 else 1.0
        lo, slope_lo = 0.0, slope0
        hi, slope_hi = np.inf, np.nan
        same_side, last_moved_hi = 0, False  # trials in a row that moved the same end of the bracket
        Z, P = self._buffer(), self._buffer()
        for _ in range(MAX_LINE_STEPS):
            lse, spread = self._trial(point.Z, dZ, t, Z, P, exp32)
            change = float((lse - point.lse).sum() / n) - t * picked + ridge * (t * wd + 0.5 * t * t * dd)
            slope = spread / n - picked + ridge * (wd + t * dd)
            sufficient = change <= ARMIJO * t * slope0 or (slope <= 0 and change <= 0)
            if sufficient and abs(slope) <= WOLFE * abs(slope0):
                self._spare.append(dZ)
                return change, _Point(point.theta + t * direction, Z, lse, P, point.value + change, _NONE,
                                      False)
            moved_hi = not sufficient or slope > 0
            same_side = same_side + 1 if moved_hi == last_moved_hi else 1
            last_moved_hi = moved_hi
            if moved_hi:
                hi, slope_hi = t, slope
            else:
                lo, slope_lo = t, slope
            if np.isinf(hi):  # still descending steeply: the secant root of phi', at least twice as far
                grow = slope_lo - slope0
                t = max(2 * lo, min(10 * lo, lo - slope_lo * lo / grow)) if grow > 0 else 10 * lo
            else:
                # the secant root of phi' in the bracket; where phi' is far from linear (the root moves
                # one end only, twice in a row), halve the bracket instead
                width = hi - lo
                root = lo - slope_lo * width / (slope_hi - slope_lo) if slope_hi > slope_lo else lo + width / 2
                t = lo + width / 2 if same_side >= 2 else min(max(root, lo + 1e-3 * width), hi - 1e-3 * width)
            if not lo < t < hi:
                break
        self._spare.extend([Z, P, dZ])
        return None

    @staticmethod
    def _line_curvature(P: np.ndarray, dZ: np.ndarray, penalty: float) -> float:
        """phi''(0) along a line with logits' direction dZ from probabilities P: the mean over rows
        of sum_c p dz^2 - (sum_c p dz)^2 (p (1 - p) dz^2 for one output), plus the penalty's
        ridge |dW|^2."""
        weighted = P * dZ
        spread = weighted.sum(axis=1)
        return (float(np.vdot(weighted, dZ)) - float(np.dot(spread, spread))) / len(P) + penalty

    @classmethod
    def _trial(cls, Z0: np.ndarray, dZ: np.ndarray, t: float, Z: np.ndarray, P: np.ndarray,
               exp32: bool = False) -> tuple[np.ndarray, float]:
        """Z = Z0 + t dZ and its probabilities P, in blocks of rows that stay in the CPU cache (each
        pass over the whole (n, K) arrays would go to memory): the rows' log-partitions and
        sum P * dZ (``exp32``: from float32 exponentials, ``_softmax``)."""
        n, K = Z.shape
        rows = max(1, TRIAL_BLOCK // K)
        scratch32 = np.empty((min(rows, n), K), np.float32) if exp32 else None
        lse = np.empty(n)
        spread = 0.0
        for lo in range(0, n, rows):
            block = slice(lo, lo + rows)
            np.multiply(dZ[block], t, out=Z[block])
            Z[block] += Z0[block]
            lse[block] = cls._softmax(Z[block], P[block], None if scratch32 is None else scratch32[:P[block].shape[0]])
            spread += float(np.vdot(P[block], dZ[block]))
        return lse, spread

    def _finish(self, point: _Point, ridge: float, shift: float, n_iter: int, converged: bool,
                message: str, settled: bool = False) -> LogisticFit:
        """The fit at ``point``; its data terms are kept (for a later fit started there: recentring
        the intercepts changes neither the loss nor the gradient), marked whether they are float64
        ones (a settled fit's are not: only later settled fits take them)."""
        fit = self._result(self._recentre(point.theta.copy(), shift), n_iter, converged, message, settled)
        if point.grad.size:
            W = point.theta[:, :-1]
            data_grad = point.grad - ridge * np.hstack([W, np.zeros((W.shape[0], 1))])
            data = point.value - 0.5 * ridge * float(np.vdot(W, W)), data_grad
            self._kept[id(fit.coef)] = fit.coef, data, point.exact
        self._release(point)  # its logits' buffers serve the next fit (no fresh pages)
        return fit

    def _meets(self, grad: np.ndarray, tol: float) -> bool:
        """Whether the gradient in the original variables, [G_r V^T, g_b] on the span, has max |g|
        <= tol. A row of G_r V^T has the 2-norm of G_r's row (V orthonormal), so its largest entry
        lies between that norm / sqrt(D) and the norm: the product is formed only in between."""
        if self._basis is None:
            return bool(np.abs(grad).max() <= tol)
        if np.abs(grad[:, -1]).max() > tol:
            return False
        norm = float(np.sqrt(np.square(grad[:, :-1]).sum(axis=1).max()))
        if norm <= tol or norm / np.sqrt(self.n_features) > tol:
            return norm <= tol
        return bool(np.abs(grad[:, :-1] @ self._basis.T).max() <= tol)

    @staticmethod
    def _recentre(theta: np.ndarray, shift: float) -> np.ndarray:
        """With K >= 3 outputs, adding a constant to every intercept leaves the objective unchanged;
        L-BFGS in the original variables keeps their mean at the start's (its gradient sums to zero
        over the classes), the preconditioned steps do not: restore it, the start's optimum."""
        if theta.shape[0] > 1:
            theta[:, -1] += shift - theta[:, -1].mean()
        return theta

    def _result(self, theta: np.ndarray, n_iter: int, converged: bool, message: str, settled: bool) -> LogisticFit:
        W = theta[:, :-1] if self._basis is None else theta[:, :-1] @ self._basis.T
        return LogisticFit(np.array(W), theta[:, -1].copy(), n_iter, converged, message, settled)

    def _watched_rows(self, rows: np.ndarray) -> np.ndarray:
        """A ``Settle``'s rows in this problem's columns (on the rows' span: rows V), float32; the
        last ones are kept for the next fit with the same rows."""
        kept = self._watched
        if kept is None or kept[0] is not rows:
            projected = rows if self._basis is None else np.asarray(rows, np.float64) @ self._basis
            kept = self._watched = rows, np.ascontiguousarray(projected, dtype=np.float32)
        return kept[1]


class _Watch:
    """A fit's iterates and, where asked, their predicted classes on a ``Settle``'s rows (float32
    logits); ``gate``: the max |gradient| at which an iterate's gradient is small. The
    predictions are formed only for an iterate whose gradient is small and for the ``patience``
    iterates before it (a product with the rows each: with many validation rows, e.g. 20,200
    against 1,616 training rows, a product every iteration would cost more than the fit's own
    two)."""

    def __init__(self, rows32: np.ndarray, patience: int, gate: float) -> None:
        self.rows, self.patience, self.gate = rows32, patience, gate
        self.recent: list[list] = []  # [theta, its predictions or None], the last patience + 1 iterates
        self.message = f"SETTLED: the predictions unchanged over {patience} iterations"

    def settled(self, theta: np.ndarray, small: bool) -> bool:
        """Record the next iterate; whether its gradient is ``small`` and its predictions equal
        those of the ``patience`` iterates before it."""
        self.recent.append([theta, None])
        del self.recent[:-(self.patience + 1)]
        if not small or len(self.recent) <= self.patience:
            return False
        for entry in reversed(self.recent):
            if entry[1] is None:
                entry[1] = self._predicted(entry[0])
            if entry is not self.recent[-1] and not np.array_equal(entry[1], self.recent[-1][1]):
                return False
        return True

    def _predicted(self, theta: np.ndarray) -> np.ndarray:
        Z = self.rows @ theta[:, :-1].T.astype(np.float32)
        Z += theta[:, -1].astype(np.float32)
        return Z.argmax(axis=1) if Z.shape[1] > 1 else Z[:, 0] > 0


def _preconditioned(v: np.ndarray, inverse: np.ndarray | None) -> np.ndarray:
    """v S^-1 (rows of v), in float64, from a product in ``inverse``'s dtype; v itself for None."""
    if inverse is None:
        return v
    if inverse.dtype == np.float32:
        return (v.astype(np.float32) @ inverse).astype(np.float64)
    return v @ inverse


def fit_logistic(X: np.ndarray, y: np.ndarray, n_classes: int, C: float,
                 start: tuple[np.ndarray, np.ndarray] | None = None, tol: float = 1e-6,
                 max_iter: int = 1000) -> LogisticFit:
    """One fit of ``LogisticProblem(X, y, n_classes)`` at C (see ``LogisticProblem.fit``)."""
    return LogisticProblem(X, y, n_classes).fit(C, start, tol=tol, max_iter=max_iter)
