"Digits-MLT generator: determinism, disjoint glyph pools, groups, labels per image, shapes and dtypes."
import numpy as np
import pytest
from stitchup_nb.digits import digits_mlt, digit_pool_indices, draw_label_sets, digit_pairs


@pytest.fixture(scope='module')
def bench(): return digits_mlt(seed=0)


def test_glyph_pools_are_disjoint_and_cover_every_class():
    idx = digit_pool_indices(seed=3)
    sets = {k: set(v.tolist()) for k, v in idx.items()}
    assert not sets['pretrain'] & sets['train'] and not sets['train'] & sets['test'] and not sets['pretrain'] & sets['test']
    assert sum(map(len, sets.values())) == 1797
    from sklearn.datasets import load_digits
    y = load_digits().target
    for v in idx.values(): assert set(y[v]) == set(range(10))


def test_shapes_dtypes_and_sizes(bench):
    train, test = bench
    assert train.items.dtype == np.uint8 and train.items.shape[1:] == (64, 64, 3)
    assert train.labels.dtype == np.uint8 and train.labels.shape == (len(train), 10)
    assert 1000 <= len(train) <= 1500 and 900 <= len(test) <= 1100
    assert set(np.unique(train.labels)) == {0, 1}


def test_long_tail_groups_and_balanced_test(bench):
    train, test = bench
    sizes = {g: len(v) for g, v in train.groups.items()}
    assert sizes == {'head': 3, 'medium': 3, 'tail': 4}
    assert train.counts.max() / train.counts.min() > 50
    assert test.counts.min() >= 100 and test.counts.max() / test.counts.min() < 2
    assert test.groups == train.groups


def test_labels_per_image(bench):
    train, test = bench
    for s in (train, test):
        per = s.labels.sum(1)
        assert per.min() >= 1 and per.max() <= 4
    assert 1.2 < train.labels.sum(1).mean() < 2.2


def test_same_seed_same_arrays_other_seed_differs():
    a, _ = digits_mlt.__wrapped__(seed=5, n_test=200)
    b, _ = digits_mlt.__wrapped__(seed=5, n_test=200)
    c, _ = digits_mlt.__wrapped__(seed=6, n_test=200)
    assert np.array_equal(a.items, b.items) and np.array_equal(a.labels, b.labels)
    assert a.labels.shape != c.labels.shape or not np.array_equal(a.items, c.items)


def test_pairs_cooccur_more_than_chance():
    lab = draw_label_sets(4000, seed=2).astype(int)
    co, pairs = lab.T @ lab, digit_pairs(2)
    for c in range(10):
        others = [co[c, o] for o in range(10) if o not in (c, pairs[c])]
        assert co[c, pairs[c]] > 2 * max(others)


def test_cached_sets_are_read_only(bench):
    train, _ = bench
    with pytest.raises(ValueError): train.items[0, 0, 0, 0] = 1
