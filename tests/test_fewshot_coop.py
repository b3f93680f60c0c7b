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


# --------------------------------------------------------------------------- the papers' own samplers
def _official_loop(labels: list[int], seed: int, shot_loop: list[int]) -> dict[int, list[int]]:
    """ICLR24's main_few_shots.py / Tip-Adapter's main.py re-derived on Datum-like objects: the
    global ``random`` seeded once, then a dataset built for each shot count of the loop in turn
    (their generate_fewshot_dataset: defaultdict by label, ``sample``, or ``choices`` when a class
    is smaller than the shots: repeat=True)."""
    class Datum:
        def __init__(self, index: int, label: int) -> None:
            self.index, self.label = index, label

    items = [Datum(i, y) for i, y in enumerate(labels) if y != -1]
    state = random.getstate()
    random.seed(seed)
    try:
        draws = {}
        for shots in shot_loop:
            tracker = defaultdict(list)
            for item in items:
                tracker[item.label].append(item)
            out = []
            for _, group in tracker.items():
                out.extend(random.sample(group, shots) if len(group) >= shots else random.choices(group, k=shots))
            draws[shots] = sorted(d.index for d in out)
    finally:
        random.setstate(state)
    return draws


def _shuffled_labels(seed: int) -> np.ndarray:
    gen = np.random.default_rng(200 + seed)
    labels = gen.permutation(np.repeat(np.arange(6), 24))
    labels[gen.choice(labels.size, 7, replace=False)] = -1
    return labels


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_gda_iclr24_draws_shots_1_to_16_from_one_stream(seed):
    labels = _shuffled_labels(seed)
    official = _official_loop(labels.tolist(), seed, [1, 2, 4, 8, 16])
    for shots, expected in official.items():
        assert fewshot_split(labels, shots, seed, sampler="gda-iclr24").tolist() == expected
    # the stream: the 2-shot draw continues after the 1-shot one, so it is not a fresh 2-shot draw
    fresh = _official_loop(labels.tolist(), seed, [2])[2]
    assert fewshot_split(labels, 2, seed, sampler="gda-iclr24").tolist() != fresh
    assert fewshot_split(labels, 2, seed, sampler="coop").tolist() == fresh
    assert fewshot_split(labels, 16, seed, sampler="gda-iclr24").tolist() != \
        fewshot_split(labels, 16, seed, sampler="coop").tolist()


def test_gda_iclr24_hand_worked_stream():
    # Rows 0..3, labels 0,0,1,1, seed 1: one stream gives the 1-shot draw (one sample per label),
    # then the 2-shot draw continues it (both rows of each label, whatever the stream says).
    labels = np.array([0, 0, 1, 1])
    rng = random.Random(1)
    one = [rng.sample([0, 1], 1)[0], rng.sample([2, 3], 1)[0]]
    two = sorted(rng.sample([0, 1], 2) + rng.sample([2, 3], 2))
    assert fewshot_split(labels, 1, 1, sampler="gda-iclr24").tolist() == sorted(one)
    assert fewshot_split(labels, 2, 1, sampler="gda-iclr24").tolist() == two == [0, 1, 2, 3]


def test_gda_iclr24_repeats_rows_of_a_small_class_like_the_official_code():
    labels = np.array([0, 1, 1, 1, 1, 2, 2, 2, 2, 2])
    official = _official_loop(labels.tolist(), 2, [1, 2, 4])
    rows = fewshot_split(labels, 4, 2, sampler="gda-iclr24", allow_fewer=True)
    assert rows.tolist() == official[4] and rows.tolist().count(0) == 4
    with pytest.raises(ValueError, match="fewer than"):
        fewshot_split(labels, 4, 2, sampler="gda-iclr24")


def test_gda_iclr24_refuses_shots_outside_its_loop():
    from solvers.errors import InputError

    with pytest.raises(InputError, match="1, 2, 4, 8, 16"):
        fewshot_split(np.repeat(np.arange(3), 5), 3, 1, sampler="gda-iclr24")


@pytest.mark.parametrize("shots", [1, 4, 16])
def test_tip_adapter_seeds_1_whatever_the_shots(shots):
    from solvers.errors import InputError

    labels = _shuffled_labels(4)
    expected = _official_loop(labels.tolist(), 1, [shots])[shots]
    assert fewshot_split(labels, shots, 1, sampler="tip-adapter").tolist() == expected
    assert expected == fewshot_split(labels, shots, 1, sampler="coop").tolist()  # every class large enough
    with pytest.raises(InputError, match="seeds 1"):
        fewshot_split(labels, shots, 2, sampler="tip-adapter")


def test_tip_adapter_repeats_where_coop_takes_the_class_whole():
    labels = np.array([0, 0, 1, 1, 1, 1, 1])
    tip = fewshot_split(labels, 3, 1, sampler="tip-adapter", allow_fewer=True).tolist()
    assert tip == _official_loop(labels.tolist(), 1, [3])[3] and len(tip) == 6
    assert fewshot_split(labels, 3, 1, sampler="coop", allow_fewer=True)[:2].tolist() == [0, 1]
