import pytest

from maskpot.data import split_frames


def test_split_is_deterministic_disjoint_and_complete():
    items = list(range(100))
    train, val, test = split_frames(items, seed=3)
    assert (len(train), len(val), len(test)) == (80, 10, 10)
    assert sorted(train + val + test) == items
    assert split_frames(items, seed=3) == (train, val, test)
    assert split_frames(items, seed=4)[0] != train
    assert train != sorted(train)  # actually shuffled


def test_n_train_takes_prefix_and_keeps_val_test():
    items = list(range(50))
    train, val, test = split_frames(items, fractions=(0.6, 0.2, 0.2), seed=0)
    small, val2, test2 = split_frames(items, n_train=7, fractions=(0.6, 0.2, 0.2), seed=0)
    assert small == train[:7] and val2 == val and test2 == test
    with pytest.raises(ValueError, match="n_train=31"):
        split_frames(items, n_train=31, fractions=(0.6, 0.2, 0.2))


def test_empty_test_fraction_and_bad_fractions():
    train, val, test = split_frames(list(range(7)), fractions=(0.5, 0.5, 0.0))
    assert test == [] and len(train) + len(val) == 7
    with pytest.raises(ValueError, match="fractions"):
        split_frames([1, 2], fractions=(1.0, -0.5, 0.5))
