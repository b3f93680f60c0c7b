"""Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017):
one scalar T > 0 fitted on a validation split by minimising the NLL of softmax(logits / T)."""
from __future__ import annotations

from typing import Any

import numpy as np

from solvers._base.checks import check_labels
from solvers._base.softmax import log_softmax
from solvers.errors import InputError


def nll_at_temperature(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true class under softmax(logits / T)."""
    log_p = log_softmax(logits, temperature)
    return float(-np.mean(log_p[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray, log_bounds: tuple[float, float] = (-4.0, 4.0)) -> float:
    """T minimising validation NLL: bounded scalar minimisation over log T in ``log_bounds``
    (natural log, i.e. T in [e^-4, e^4] by default)."""
    from scipy.optimize import minimize_scalar  # SciPy's optimizers load on first use, not with GDA

    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise InputError(f"logits must be 2-D (n_samples, n_classes), got shape {logits.shape}")
    y = check_labels(y, logits.shape[0], logits.shape[1])
    result = minimize_scalar(lambda log_t: nll_at_temperature(logits, y, float(np.exp(log_t))),
                             bounds=log_bounds, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(result.x))


def calibrate(solver: Any, X_val: np.ndarray, y_val: np.ndarray) -> Any:
    """Fit T on the validation split (labels from the solver's ``classes_``) and set
    ``solver.temperature`` (used by ``predict_proba``); returns the solver. Predictions (argmax) do
    not change. Solvers whose probabilities are not
    softmax(logits / T) are refused: a temperature would not reach them."""
    from solvers._base.solver import Solver

    if isinstance(solver, Solver) and type(solver).predict_proba is not Solver.predict_proba:
        raise InputError(f"{type(solver).__name__}'s probabilities are not a softmax of its logits; "
                         "temperature scaling does not apply")
    if isinstance(solver, Solver):  # labels -> indices into classes_; the (n, C) logits
        from solvers._base.checks import check_target, encode_labels

        logits = solver.class_logits(X_val)
        y_val = encode_labels(check_target(y_val, logits.shape[0], name="y_val"), solver.classes_, name="y_val")
    else:
        logits = solver.decision_function(X_val)
    solver.temperature = fit_temperature(logits, y_val)
    message = bound_message(solver.temperature)
    if message is not None:
        from solvers._base.fit_warnings import record_warning

        record_warning(solver, message)
    return solver


def bound_message(temperature: float, log_bounds: tuple[float, float] = (-4.0, 4.0), atol: float = 1e-3) -> str | None:
    """A warning when a fitted T ends on a bound of its search (the optimum may lie beyond it:
    validation predictions all right with growing margins, or mostly wrong), else None."""
    log_t = float(np.log(temperature))
    for bound, side in ((log_bounds[0], "lower"), (log_bounds[1], "upper")):
        if abs(log_t - bound) <= atol:
            why = ("every validation prediction is right, so sharper is always better" if side == "lower"
                   else "the validation predictions are mostly wrong")
            return (f"temperature T = {temperature:.4g} is the {side} bound e^{bound:g} of its search; the NLL "
                    f"optimum may lie beyond it ({why})")
    return None
