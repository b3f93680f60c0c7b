"""fewshot_split(..., sampler="coop") against a hand-worked draw of Dassl's algorithm and against
a re-derivation of Dassl's generate_fewshot_dataset on objects (the official recipe: global
``random.seed``, defaultdict by label, ``random.sample`` per label)."""
from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from solvers.model_selection.fewshot import fewshot_split


def test_hand_worked_case():
    # Rows 0..7 with labels 2,0,2,1,0,2,1,0. Labels in order of first appearance: 2 (rows 0,2,5),
    # 0 (rows 1,4,7), 1 (rows 3,6). random.seed(1) makes getrandbits(2) return 0, 2, 3, 3, 3, 0, ...
    # random.sample(pool, 1) draws j = randbelow(len(pool)) from 2-bit words, rejecting j >= len:
    #   label 2: 0 < 3 -> j = 0 -> row 0;  label 0: 2 < 3 -> j = 2 -> row 7;
    #   label 1: 3, 3, 3 rejected (>= 2), then 0 -> j = 0 -> row 3.
    rng = random.Random(1)
    assert [rng.getrandbits(2) for _ in range(6)] == [0, 2, 3, 3, 3, 0]
    labels = np.array([2, 0, 2, 1, 0, 2, 1, 0])
    assert fewshot_split(labels, 1, 1, sampler="coop").tolist() == [0, 3, 7]


def _dassl(labels: list[int], shots: int, seed: int) -> list[int]:
    """Dassl's generate_fewshot_dataset re-derived on Datum-like objects, seeded as CoOp's
    train.py seeds it (the global random module)."""
    class Datum:
        def __init__(self, index: int, label: int) -> None:
            self.index, self.label = index, label

    items = [Datum(i, y) for i, y in enumerate(labels) if y != -1]
    random.seed(seed)
    tracker = defaultdict(list)
    for item in items:
        tracker[item.label].append(item)
    out = []
    for _, group in tracker.items():
        out.extend(random.sample(group, shots) if len(group) >= shots else group)
    return sorted(d.index for d in out)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("shots", [1, 4, 16])
def test_matches_dassl_on_shuffled_labels(seed, shots):
    gen = np.random.default_rng(100 + seed)
    labels = gen.permutation(np.repeat(np.arange(7), 20))
    labels[gen.choice(labels.size, 5, replace=False)] = -1
    state = random.getstate()
    try:
        expected = _dassl(labels.tolist(), shots, seed)
    finally:
        random.setstate(state)
    assert fewshot_split(labels, shots, seed, sampler="coop").tolist() == expected


def test_coop_leaves_global_random_alone_and_depends_on_row_order():
    labels = np.repeat(np.arange(4), 10)
    state = random.getstate()
    a = fewshot_split(labels, 3, 5, sampler="coop")
    assert random.getstate() == state
    reordered = labels[::-1].copy()  # labels first seen in the order 3, 2, 1, 0
    b = fewshot_split(reordered, 3, 5, sampler="coop")
    assert sorted(labels.size - 1 - b) != sorted(a.tolist())


def test_coop_allow_fewer_takes_all_rows_without_drawing():
    labels = np.array([0, 0, 1, 1, 1, 1])
    assert fewshot_split(labels, 3, 1, sampler="coop", allow_fewer=True)[:2].tolist() == [0, 1]
    with pytest.raises(ValueError, match="fewer than"):
        fewshot_split(labels, 3, 1, sampler="coop")


def test_unknown_sampler_is_refused():
    from solvers.errors import InputError

    with pytest.raises(InputError, match="sampler"):
        fewshot_split(np.array([0, 1]), 1, 1, sampler="dassl")
