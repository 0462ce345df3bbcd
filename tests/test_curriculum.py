import pytest
from hypothesis import given, strategies as st

from udasa.curriculum import (STAGES, CurriculumConfig, assign_stages, split_by_rank, split_by_threshold,
                              stage_order, stage_sizes)
from udasa.errors import InputError


def test_stage_sizes_sum_and_balance():
    assert stage_sizes(10, (1 / 3, 1 / 3, 1 / 3)) == [4, 3, 3]
    assert stage_sizes(2, (1 / 3, 1 / 3, 1 / 3)) == [1, 1, 0]
    assert stage_sizes(10, (0.5, 0.3, 0.2)) == [5, 3, 2]


@given(st.lists(st.floats(0, 10, allow_nan=False), min_size=0, max_size=60))
def test_rank_split_orders_by_delta(deltas):
    keys = [f"p{i:03d}" for i in range(len(deltas))]
    labels = split_by_rank(deltas, keys, (1 / 3, 1 / 3, 1 / 3))
    assert sorted(labels) == sorted(sum(([k] * n for k, n in enumerate(stage_sizes(len(deltas), (1/3,) * 3))), []))
    # every conservative pair has a Δu at least as large as every moderate one, and so on
    for a in range(2):
        hi = [d for d, lab in zip(deltas, labels) if lab == a]
        lo = [d for d, lab in zip(deltas, labels) if lab == a + 1]
        if hi and lo:
            assert min(hi) >= max(lo)


def test_threshold_split():
    assert split_by_threshold([0.9, 0.5, 0.1, 0.3], (0.3, 0.6)) == [0, 1, 2, 1]


def test_curricula_labels_and_order():
    deltas = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]
    keys = list("abcdef")
    normal = assign_stages(deltas, keys, CurriculumConfig())
    assert normal == [("conservative", 0)] * 2 + [("moderate", 1)] * 2 + [("exploratory", 2)] * 2
    rev = assign_stages(deltas, keys, CurriculumConfig(curriculum="reverse"))
    assert [lab for lab, _ in rev] == [lab for lab, _ in normal]  # labels stay honest
    assert [i for _, i in rev] == [2, 2, 1, 1, 0, 0]  # exploratory trained first
    assert assign_stages(deltas, keys, CurriculumConfig(curriculum="none")) == [("all", 0)] * 6
    assert stage_order("reverse") == ["exploratory", "moderate", "conservative"]


def test_random_curriculum_keeps_sizes_and_is_seeded():
    deltas = [i / 30 for i in range(30)]
    keys = [str(i) for i in range(30)]
    r0 = assign_stages(deltas, keys, CurriculumConfig(curriculum="random", seed=0))
    r0b = assign_stages(deltas, keys, CurriculumConfig(curriculum="random", seed=0))
    r1 = assign_stages(deltas, keys, CurriculumConfig(curriculum="random", seed=1))
    normal = assign_stages(deltas, keys, CurriculumConfig())
    assert r0 == r0b and r0 != r1 and r0 != normal
    for s in STAGES:
        assert sum(lab == s for lab, _ in r0) == 10
    assert all(i == STAGES.index(lab) for lab, i in r0)


def test_config_validation():
    with pytest.raises(InputError, match="curriculum"):
        CurriculumConfig(curriculum="sideways")
    with pytest.raises(InputError, match="fractions"):
        CurriculumConfig(fractions=(0.5, 0.5, 0.5))
    with pytest.raises(InputError, match="thresholds"):
        CurriculumConfig(split="threshold")
    with pytest.raises(InputError, match="low must be"):
        CurriculumConfig(split="threshold", thresholds=(0.5, 0.1))
