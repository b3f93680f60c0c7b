"""COOkeD (Liberatori et al., "COOkeD: Ensemble-based OOD detection in the era of zero-shot
CLIP", ICCVW 2025; official code github.com/glhr/COOkeD): the plain mean of the softmax
probabilities of a closed-world classifier, zero-shot CLIP (logit scale 100) and a linear probe
on CLIP features; the OOD score is the (negated) entropy of that mean, the class its argmax."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from solvers._base.softmax import softmax
from solvers._base.solver import Solver
from solvers.ensembles.ensemble import Ensemble
from solvers.errors import InputError
from solvers.ood.scores import neg_entropy_of_probabilities


def cooked_probabilities(member_logits: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over members of softmax(z_m) (temperature 1; CLIP's logits already scaled by 100)."""
    if not member_logits:
        raise InputError("COOkeD needs at least one member")
    return np.mean([softmax(z) for z in member_logits], axis=0)


def cooked_score(member_logits: Sequence[np.ndarray]) -> np.ndarray:
    """COOkeD OOD score, higher = more in-distribution: -H(mean_m softmax(z_m))."""
    return neg_entropy_of_probabilities(cooked_probabilities(member_logits))


def cooked_scores(member_logits: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """COOkeD's OOD scores of each row: ``msp`` (max of the mean probabilities) and ``entropy``
    (the negated entropy of the mean, COOkeD's score)."""
    p = cooked_probabilities(member_logits)
    return {"msp": p.max(axis=1), "entropy": neg_entropy_of_probabilities(p)}


def cooked_ensemble(classifier: Solver, zeroshot: Solver, probe: Solver) -> Ensemble:
    """The COOkeD ensemble as a fitted Solver: equal weights, probability averaging, T = 1."""
    members = [classifier, zeroshot, probe]
    ensemble = Ensemble(members=members, combine="proba", weights=[1.0, 1.0, 1.0], temperatures=[1.0, 1.0, 1.0])
    n_classes = {len(m.classes_) for m in members}
    if len(n_classes) != 1:
        raise InputError(f"COOkeD members disagree on the number of classes: {sorted(n_classes)}")
    ensemble.n_features_in_ = int(getattr(zeroshot, "n_features_in_", 0))
    return ensemble.fit_logits([np.zeros((1, n_classes.pop()))] * 3)
