"""A synthetic OOD benchmark with a known answer: ID rows are C Gaussian classes, OOD rows are
Gaussians shifted away from them. Three members see the data differently, as in COOkeD
(Liberatori et al., 2025): a "closed-world classifier" trained on its own noisy view of the
images (imported logits), zero-shot from noisy class "text" embeddings, and a linear probe.
Prints AUROC / FPR@95 of each member and of the ensembles (COOkeD mean-softmax; weights and
temperatures searched on validation only).

Run: python bench/ood.py   (prints figures measured in this run; asserts nothing)
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path[0] = str(Path(__file__).resolve().parents[1])

C, D, N_TRAIN, N_VAL, N_TEST, N_OOD = 20, 64, 20, 20, 50, 1000


def make_data(seed: int = 0):
    """ID classes around C centres; OOD rows around centres shifted by a random offset."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((C, D))
    ood_centres = centres[rng.integers(0, C, 10)] + 1.2 * rng.standard_normal((10, D))
    view = np.linalg.qr(rng.standard_normal((D, D)))[0]

    def draw(n_per_class):
        y = np.repeat(np.arange(C), n_per_class)
        return centres[y] + 1.6 * rng.standard_normal((y.size, D)), y

    splits = {name: draw(n) for name, n in (("train", N_TRAIN), ("val", N_VAL), ("test", N_TEST))}
    X_ood = ood_centres[rng.integers(0, 10, N_OOD)] + 1.6 * rng.standard_normal((N_OOD, D))
    text = centres + 0.8 * rng.standard_normal((C, D))

    def other_view(X):  # the closed-world classifier's own features: rotated, with its own noise
        return X @ view + 0.3 * rng.standard_normal(X.shape)

    return splits, X_ood, text, other_view


def main() -> None:
    from solvers.ensembles.cooked import cooked_probabilities
    from solvers.ensembles.ensemble import Ensemble
    from solvers.few_shot.linear_probe import LinearProbe
    from solvers.metrics.ood import auroc, fpr_at_tpr
    from solvers.ood.scores import msp, neg_entropy, neg_entropy_of_probabilities
    from solvers.zero_shot.zero_shot import ZeroShot

    splits, X_ood, text, other_view = make_data()
    (X_tr, y_tr), (X_val, y_val), (X_te, y_te) = splits["train"], splits["val"], splits["test"]
    V_tr, V_val, V_te, V_ood = (other_view(X) for X in (X_tr, X_val, X_te, X_ood))
    classifier = LinearProbe().fit(V_tr, y_tr, X_val=V_val, y_val=y_val)
    zeroshot = ZeroShot(text_weights=text, logit_scale=10.0).fit()
    probe = LinearProbe().fit(X_tr, y_tr, X_val=X_val, y_val=y_val)
    logits = {
        "classifier": [classifier.class_logits(V) for V in (V_val, V_te, V_ood)],
        "zero-shot": [zeroshot.class_logits(X) for X in (X_val, X_te, X_ood)],
        "linear probe": [probe.class_logits(X) for X in (X_val, X_te, X_ood)],
    }
    rows = []
    for name, (_, z_te, z_ood) in logits.items():
        for score_name, score in (("msp", msp), ("entropy", neg_entropy)):
            rows.append((name, score_name, np.mean(z_te.argmax(1) == y_te), score(z_te), score(z_ood)))
    members = list(logits.values())
    p_te = cooked_probabilities([m[1] for m in members])
    p_ood = cooked_probabilities([m[2] for m in members])
    rows.append(("COOkeD", "msp", np.mean(p_te.argmax(1) == y_te), p_te.max(1), p_ood.max(1)))
    rows.append(("COOkeD", "entropy", np.mean(p_te.argmax(1) == y_te),
                 neg_entropy_of_probabilities(p_te), neg_entropy_of_probabilities(p_ood)))
    searched = Ensemble(temperatures="fit").fit_logits([m[0] for m in members], y_val)
    z_te, z_ood = searched.combine_logits([m[1] for m in members]), searched.combine_logits([m[2] for m in members])
    label = "ensemble w=" + "/".join(f"{w:.1f}" for w in searched.weights_)
    rows.append((label, "entropy", np.mean(z_te.argmax(1) == y_te), neg_entropy(z_te), neg_entropy(z_ood)))
    width = max(len(r[0]) for r in rows) + 2
    print(f"ID: {C} classes x {N_TEST} test rows, OOD: {N_OOD} rows from shifted Gaussians, D={D}")
    print(f"{'member':<{width}}{'score':<9}{'acc':>7}{'AUROC':>8}{'FPR@95':>8}")
    for name, score_name, acc, s_id, s_ood in rows:
        print(f"{name:<{width}}{score_name:<9}{100 * acc:>7.2f}{100 * auroc(s_id, s_ood):>8.2f}"
              f"{100 * fpr_at_tpr(s_id, s_ood):>8.2f}")


if __name__ == "__main__":
    main()
