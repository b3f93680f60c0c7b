"""Closed-form, training-free solvers on cached CLIP embeddings (NumPy in, logits out).

Every registered solver, the ensembles, the metrics, few-shot sampling, persistence, the
registry and the error types are exported here. Names are imported on first use
(``solvers._base.lazy``), so ``import solvers`` imports neither SciPy, scikit-learn nor faiss.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from solvers._base.lazy import LazyAttributes

if TYPE_CHECKING:  # the same names, for type checkers (tests/test_public_api.py checks both agree)
    from solvers._base.estimator_protocol import NotFittedError
    from solvers._base.fit_warnings import SolverWarning
    from solvers._base.normalize import l2_normalize
    from solvers._base.progress import progress, quiet
    from solvers._base.softmax import log_softmax, softmax
    from solvers._base.solver import Solver
    from solvers.descriptions.description_selection import DescriptionSelection
    from solvers.descriptions.descriptors import DescriptorClassifier
    from solvers.descriptions.fudd import DifferentialDescriptions
    from solvers.descriptions.perception_clip import PerceptionCLIP
    from solvers.ensembles.ensemble import Ensemble
    from solvers.ensembles.fixed_logits import FixedLogits
    from solvers.errors import InputError, InputTypeError, UnavailableMethodError
    from solvers.few_shot.amu import AMU
    from solvers.few_shot.gda import GDA
    from solvers.few_shot.knn import KNN
    from solvers.few_shot.linear_probe import LinearProbe
    from solvers.few_shot.sufficient_statistics import ClassStatistics, class_statistics
    from solvers.few_shot.tip_adapter import TipAdapter
    from solvers.metrics import (
        aupr_in,
        aupr_out,
        auroc,
        balanced_accuracy,
        ece,
        fpr_at_tpr,
        logit_metrics,
        nll,
        ood_metrics,
        topk_accuracy,
    )
    from solvers.model_selection.fewshot import fewshot_split
    from solvers.ood.anomaly import PromptAnomalyDetector
    from solvers.persistence import load_from_store, load_npz, save_npz, save_to_store
    from solvers.registry import NAMES, SOLVERS, describe, solver_class
    from solvers.support_sets.caps_adapter import CapSAdapter
    from solvers.support_sets.real_linear import RealLinear
    from solvers.support_sets.real_prompt import RealPrompt
    from solvers.support_sets.tip_x import TipX
    from solvers.unlabelled.label_free import LabelFree
    from solvers.unlabelled.unsupervised_gda import UnsupervisedGDA
    from solvers.zero_shot.zero_shot import ZeroShot


def _names(module: str, *names: str) -> dict[str, tuple[str, str]]:
    return {name: (module, name) for name in names}


_EXPORTS = LazyAttributes({
    **_names("solvers._base.solver", "Solver"),
    **_names("solvers._base.estimator_protocol", "NotFittedError"),
    **_names("solvers._base.fit_warnings", "SolverWarning"),
    **_names("solvers._base.progress", "progress", "quiet"),
    **_names("solvers._base.normalize", "l2_normalize"),
    **_names("solvers._base.softmax", "softmax", "log_softmax"),
    **_names("solvers.errors", "InputError", "InputTypeError", "UnavailableMethodError"),
    # solvers, by family
    **_names("solvers.zero_shot.zero_shot", "ZeroShot"),
    **_names("solvers.few_shot.gda", "GDA"),
    **_names("solvers.few_shot.linear_probe", "LinearProbe"),
    **_names("solvers.few_shot.tip_adapter", "TipAdapter"),
    **_names("solvers.few_shot.knn", "KNN"),
    **_names("solvers.few_shot.amu", "AMU"),
    **_names("solvers.few_shot.sufficient_statistics", "ClassStatistics", "class_statistics"),
    **_names("solvers.support_sets.tip_x", "TipX"),
    **_names("solvers.support_sets.caps_adapter", "CapSAdapter"),
    **_names("solvers.support_sets.real_prompt", "RealPrompt"),
    **_names("solvers.support_sets.real_linear", "RealLinear"),
    **_names("solvers.descriptions.descriptors", "DescriptorClassifier"),
    **_names("solvers.descriptions.fudd", "DifferentialDescriptions"),
    **_names("solvers.descriptions.description_selection", "DescriptionSelection"),
    **_names("solvers.descriptions.perception_clip", "PerceptionCLIP"),
    **_names("solvers.unlabelled.unsupervised_gda", "UnsupervisedGDA"),
    **_names("solvers.unlabelled.label_free", "LabelFree"),
    **_names("solvers.ensembles.ensemble", "Ensemble"),
    **_names("solvers.ensembles.fixed_logits", "FixedLogits"),
    **_names("solvers.ood.anomaly", "PromptAnomalyDetector"),
    # metrics (solvers.metrics has the rest)
    **_names("solvers.metrics", "logit_metrics", "topk_accuracy", "balanced_accuracy", "ece", "nll", "auroc",
             "fpr_at_tpr", "aupr_in", "aupr_out", "ood_metrics"),
    # sampling, persistence, registry
    **_names("solvers.model_selection.fewshot", "fewshot_split"),
    **_names("solvers.persistence", "save_npz", "load_npz", "save_to_store", "load_from_store"),
    **_names("solvers.registry", "SOLVERS", "NAMES", "solver_class", "describe"),
})
__all__ = sorted(_EXPORTS)
__getattr__ = _EXPORTS.module_getattr(__name__)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
