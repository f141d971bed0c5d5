"Noise simulation: each kind's definition, determinism, realised rates, reports, and the authors' file format."
import pickle, pickletools, warnings
import numpy as np
import pytest
from stitchup_nb.data import read_class_split, shared_dir
from stitchup_nb.files import load_pickle
from stitchup_nb.noise import (NOISE_KINDS, add_noise, compare_noise, condition_prob, empty_rows, group_report,
                               load_noisy, noise_report, noisy_fname, save_noisy)

VOC = shared_dir('voc-mlt')
needs_voc = pytest.mark.skipif(VOC is None, reason='the official VOC-MLT split files are not found (shared_dir: shared/data/voc-mlt, or the voc appendix folder)')
EXTRA = {'asym': {'neg_rate': .1}}


def noisy(labels, rate, kind='flip', seed=0, **kw):
    "add_noise without the empty-row warning (tests that need it ask for it)."
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return add_noise(labels, rate, kind, seed, **{**EXTRA.get(kind, {}), **kw})


@pytest.fixture(scope='module')
def rand_labels():
    "600 images, 12 classes, 1-5 labels each."
    rng = np.random.default_rng(0)
    y = np.zeros((600, 12), np.uint8)
    for i, k in enumerate(rng.integers(1, 6, 600)): y[i, rng.choice(12, k, replace=False)] = 1
    return y


@pytest.fixture(scope='module')
def digits():
    from stitchup_nb.digits import digits_mlt
    return digits_mlt()[0]


# --- each kind's definition ---------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['flip', 'cooc'])
def test_flip_and_cooc_keep_per_image_counts_and_only_move_to_negatives(rand_labels, kind):
    for rate in (.3, .5, 1.):
        out = noisy(rand_labels, rate, kind)
        assert out.dtype == np.uint8 and out.shape == rand_labels.shape
        assert (out.sum(1) == rand_labels.sum(1)).all()
        gained = out.astype(bool) & ~rand_labels.astype(bool)
        lost = ~out.astype(bool) & rand_labels.astype(bool)
        assert (gained.sum(1) == lost.sum(1)).all()        # every missing label has its wrong one


def test_flip_at_rate_one_moves_everything_that_can_move():
    y = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]], np.uint8)
    out = add_noise(y, 1.)
    assert (out[0, :2] == 0).all() and out[0].sum() == 2
    assert out[1, 4] == 1 and (out[1] & y[1]).sum() == 3    # one negative: one label moves, three stay


def test_missing_never_adds_and_extra_never_removes(rand_labels):
    m, e = noisy(rand_labels, .5, 'missing'), noisy(rand_labels, .5, 'extra')
    assert (m <= rand_labels).all() and (e >= rand_labels).all()
    pos = rand_labels.sum()
    assert (rand_labels.sum() - m.sum()) == round(.5 * pos)
    assert e.sum() - pos == round(.5 * pos)                 # no image here is too crowded to spawn


def test_asym_rates_on_positives_and_negatives(rand_labels):
    y = rand_labels.astype(bool)
    out = noisy(rand_labels, .4, 'asym', neg_rate=.1).astype(bool)
    assert abs((y & ~out).sum() / y.sum() - .4) < 1e-3
    assert abs((~y & out).sum() / (~y).sum() - .1) < 1e-3


def test_cooc_targets_only_cooccurring_classes_when_the_matrix_says_so():
    rng = np.random.default_rng(1)
    y = np.zeros((400, 6), np.uint8)
    y[np.arange(400), rng.integers(0, 6, 400)] = 1          # one label per image: targets are free
    w = np.zeros((6, 6)); w[np.arange(6), (np.arange(6) + 1) % 6] = 1   # class c co-occurs only with c+1
    out = add_noise(y, 1., 'cooc', cooc=w)
    src, dst = y.argmax(1), out.argmax(1)
    assert (dst == (src + 1) % 6).all()


def test_cooc_falls_back_to_uniform_when_no_cooccurring_class_is_free():
    y = np.array([[1, 1, 0, 0]] * 200, np.uint8)
    w = np.zeros((4, 4)); w[0, 1] = 1                       # 0's only partner, 1, is already held
    out = add_noise(y, 1., 'cooc', cooc=w)
    assert (out.sum(1) == 2).all() and set(map(tuple, out)) == {(0, 0, 1, 1)}
    y2 = np.array([[1, 0, 0, 0]] * 400, np.uint8)
    hits = add_noise(y2, 1., 'cooc', cooc=np.zeros((4, 4))).sum(0)
    assert hits[0] == 0 and hits[1:].min() > 100            # all-zero row: uniform over 1, 2, 3


def test_cooc_default_matrix_is_the_official_condition_prob_definition():
    y = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]])
    np.testing.assert_allclose(condition_prob(y), [[1, .5, 0], [1, 1, 0], [0, 0, 1]])


@needs_voc
def test_condition_prob_matches_official_voc_file():
    d = load_pickle(VOC/'class_freq.pkl')
    np.testing.assert_allclose(condition_prob(np.stack(d['gt_labels'])), d['condition_prob'])


# --- determinism, input untouched, empty rows ---------------------------------------------------------

@pytest.mark.parametrize('kind', NOISE_KINDS)
def test_same_seed_same_output_other_seed_differs_input_untouched(rand_labels, kind):
    before = rand_labels.copy()
    a, b, c = (noisy(rand_labels, .5, kind, seed=s) for s in (4, 4, 5))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(rand_labels, before)


def test_rate_zero_is_the_identity(rand_labels):
    for kind in NOISE_KINDS:
        kw = {'neg_rate': 0.} if kind == 'asym' else {}
        assert np.array_equal(add_noise(rand_labels, 0., kind, **kw), rand_labels)


def test_emptied_images_stay_as_zero_rows_with_a_warning():
    y = np.array([[1, 0], [1, 1], [0, 1]], np.uint8)
    with pytest.warns(UserWarning, match='3 of 3 images have no positive label left'):
        out = add_noise(y, 1., 'missing')
    assert out.shape == y.shape and list(empty_rows(out)) == [0, 1, 2]
    assert list(empty_rows(y)) == []


# --- realised rates -------------------------------------------------------------------------------------

@pytest.mark.parametrize('rate', [.3, .5, .7, .9])
def test_realised_flip_rate_on_digits(digits, rate):
    rep = group_report(digits.labels, add_noise(digits.labels, rate), digits.groups)
    assert abs(rep.loc['all', 'noise_rate'] - rate) <= .02


@needs_voc
@pytest.mark.parametrize('rate', [.3, .5, .7, .9])
def test_realised_flip_rate_on_voc_mlt(rate):
    y = np.stack(load_pickle(VOC/'class_freq.pkl')['gt_labels']).astype(np.uint8)
    groups = read_class_split(VOC/'class_split.pkl')
    for kind in ('flip', 'cooc', 'missing'):
        rep = group_report(y, noisy(y, rate, kind), groups)
        assert abs(rep.loc['all', 'noise_rate'] - rate) <= .02, kind


# --- bad input ------------------------------------------------------------------------------------------

Y = np.array([[1, 0, 1], [0, 1, 0]], np.uint8)

@pytest.mark.parametrize('call,err,msg', [
    (lambda: add_noise(Y, 1.2), ValueError, r'rate must be in \[0, 1\], got 1.2'),
    (lambda: add_noise(Y, -0.1), ValueError, r'rate must be in \[0, 1\]'),
    (lambda: add_noise(Y, None), TypeError, 'rate must be a number'),
    (lambda: add_noise(Y, .5, 'noisy'), ValueError, "unknown noise kind 'noisy'; the valid kinds are flip, missing, extra, asym, cooc"),
    (lambda: add_noise(Y, .5, 'asym'), ValueError, "kind='asym' needs neg_rate"),
    (lambda: add_noise(Y, .5, 'asym', neg_rate=1.5), ValueError, r'neg_rate must be in \[0, 1\]'),
    (lambda: add_noise(Y, .5, 'missing', neg_rate=.1), ValueError, "neg_rate is used only by kind='asym'"),
    (lambda: add_noise(Y, .5, 'flip', cooc=np.ones((3, 3))), ValueError, "used only by kind='cooc'"),
    (lambda: add_noise(Y, .5, 'cooc', cooc=-np.ones((3, 3))), ValueError, 'cooc must be a 3×3 matrix of finite weights'),
    (lambda: add_noise(Y * 3, .5), ValueError, 'labels must be 0/1'),
    (lambda: add_noise(Y.ravel(), .5), ValueError, 'must be a 2-D N×C array'),
    (lambda: noise_report(Y, Y[:1], {'head': [0], 'medium': [1], 'tail': [2]}), ValueError, 'differ'),
    (lambda: noise_report(Y, Y, {'head': [0], 'medium': [1]}), ValueError, 'expected the keys'),
    (lambda: noise_report(Y, Y, {'head': [0], 'medium': [1], 'tail': [2]}, classes=['a']), ValueError, '1 class names for 3 classes'),
    (lambda: noisy_fname(2), ValueError, r'rate must be in \[0, 1\]'),
])
def test_bad_input_says_what_is_wrong(call, err, msg):
    with pytest.raises(err, match=msg): call()


# --- reports --------------------------------------------------------------------------------------------

def test_report_numbers_on_a_hand_computed_example():
    clean = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 0], [0, 1, 0]])
    noisy_ = np.array([[1, 1, 0], [0, 0, 0], [1, 1, 0], [1, 1, 0]])
    rep = noise_report(clean, noisy_, {'head': [0], 'medium': [1], 'tail': [2]}, classes=['cat', 'dog', 'owl'])
    cat = rep.loc[('head', 'cat')]
    assert cat[['clean', 'noisy', 'missing', 'extra']].tolist() == [3, 3, 1, 1]
    np.testing.assert_allclose(cat[['noise_rate', 'neg_noise_rate', 'precision', 'recall']].tolist(), [1/3, 1, 2/3, 2/3])
    owl = rep.loc[('tail', 'owl')]
    assert owl['recall'] == 0 and np.isnan(owl['precision'])
    tot = rep.loc[('all', 'all')]
    assert tot[['clean', 'noisy', 'missing', 'extra']].tolist() == [7, 6, 2, 1]
    np.testing.assert_allclose(tot[['noise_rate', 'neg_noise_rate', 'precision', 'recall']].tolist(), [2/7, 1/5, 5/6, 5/7])
    assert list(group_report(clean, noisy_, {'head': [0], 'medium': [1], 'tail': [2]}).index) == ['head', 'medium', 'tail', 'all']


def test_group_rows_sum_their_classes(digits):
    rep = noise_report(digits.labels, noisy(digits.labels, .5), digits.groups)
    for g, idx in digits.groups.items():
        cls = rep.loc[g].drop('all')
        assert len(cls) == len(idx)
        for col in ('clean', 'noisy', 'missing', 'extra'): assert cls[col].sum() == rep.loc[(g, 'all'), col]


def test_compare_noise_puts_kinds_side_by_side(digits):
    kinds = {k: noisy(digits.labels, .5, k) for k in ('missing', 'extra')}
    cmp = compare_noise(digits.labels, kinds, digits.groups)
    assert list(cmp.columns.get_level_values(0).unique()) == ['missing', 'extra']
    assert (cmp[('missing', 'precision')] == 1).all() and (cmp[('extra', 'recall')] == 1).all()


# --- the authors' file format ---------------------------------------------------------------------------

def test_save_load_round_trip_keys_dtypes_and_protocol(tmp_path, digits):
    n = noisy(digits.labels, .5)
    p = save_noisy(tmp_path/'sub'/noisy_fname(.5), n, digits.labels)
    assert p.name == 'class_freq_0.5noise.pkl'
    got_noisy, got_clean = load_noisy(p)
    assert np.array_equal(got_noisy, n) and np.array_equal(got_clean, digits.labels) and got_noisy.dtype == np.uint8
    d = load_pickle(p)
    assert sorted(d) == ['class_freq', 'clean_labels', 'labels', 'neg_class_freq']
    assert d['class_freq'].dtype == np.int64 and d['neg_class_freq'].dtype == np.int64
    assert np.array_equal(d['class_freq'], n.sum(0)) and np.array_equal(d['neg_class_freq'], len(n) - n.sum(0))
    raw = p.read_bytes()
    assert raw[:2] == b'\x80\x02'                          # protocol 2
    globals_ = {arg for op, arg, _ in pickletools.genops(raw) if op.name == 'GLOBAL'}
    assert globals_ <= {'numpy ndarray', 'numpy dtype', '_codecs encode'}   # no numpy._core: numpy 1 / Python 2 read it


def test_reads_python2_style_file_with_list_rows(tmp_path):
    clean = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], np.int64)
    noisy_ = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0]], np.int64)
    d = {'labels': list(noisy_), 'clean_labels': list(clean), 'class_freq': noisy_.sum(0),
         'neg_class_freq': 3 - noisy_.sum(0), 'condition_prob': np.eye(3)}
    with open(tmp_path/'class_freq_0.3noise.pkl', 'wb') as f: pickle.dump(d, f, protocol=2)
    n, c = load_noisy(tmp_path/'class_freq_0.3noise.pkl')
    assert np.array_equal(n, noisy_) and np.array_equal(c, clean) and n.dtype == np.uint8


def _dump(tmp_path, obj):
    p = tmp_path/'class_freq_0.5noise.pkl'
    with open(p, 'wb') as f: pickle.dump(obj, f, protocol=2)
    return p

L = np.array([[1, 0], [1, 1], [0, 1]], np.int64)

CF = np.array([2, 2])

@pytest.mark.parametrize('obj,msg', [
    ([1, 2], 'expected gt_labels .clean file. or labels . clean_labels'),
    ({'labels': L}, r"and class_freq; found \['labels'\]"),
    ({'labels': L, 'class_freq': CF}, 'not a noisy-label file'),
    ({'labels': L, 'clean_labels': L[:2], 'class_freq': CF}, r'clean_labels have shape \(2, 2\), labels \(3, 2\)'),
    ({'labels': L * 2, 'clean_labels': L, 'class_freq': CF}, 'labels must be 0/1'),
    ({'labels': [np.ones(2), np.ones(3)], 'clean_labels': L, 'class_freq': CF}, 'labels rows differ in length'),
    ({'labels': L, 'clean_labels': L, 'class_freq': np.array([2, 9])}, r'stored class_freq \[2, 9\] differs from \[2, 2\]'),
    ({'labels': L, 'clean_labels': L, 'class_freq': CF, 'neg_class_freq': np.array([5, 1])}, r'stored neg_class_freq \[5, 1\] differs from \[1, 1\]'),
    ({'labels': L, 'clean_labels': L, 'class_freq': np.array([2, 2, 0])}, r'stored class_freq \[2, 2, 0\] differs'),
])
def test_bad_files_are_refused_naming_the_file(tmp_path, obj, msg):
    p = _dump(tmp_path, obj)
    with pytest.raises(ValueError, match=msg) as e: load_noisy(p)
    assert str(p) in str(e.value)


def test_save_refuses_mismatched_labels(tmp_path):
    with pytest.raises(ValueError, match='differ'): save_noisy(tmp_path/'x.pkl', L, L[:2])
    with pytest.raises(ValueError, match='must be 0/1'): save_noisy(tmp_path/'x.pkl', L * 2, L)
