"""The real-dataset readers of `stitchup_nb.data` on fixture folders in the real formats (and on the
official VOC-MLT split files where shared_dir finds them)."""
import json, pickle, warnings

import numpy as np
import pytest

from stitchup_nb.data import GROUPS, class_groups, longtail_subset, pareto_targets, shared_dir
from stitchup_nb.appendix import coco_mlt, read_appendix, read_class_freq, voc_mlt
from stitchup_nb.readers import VOC_CLASSES, coco_set, read_ids, voc_set
from stitchup_nb.fixtures import COCO_CATS, flip_noise, freq_dict, make_appendix, py2_pickle


def ann(coco, split): return coco['root']/'annotations'/f'instances_{split}.json'


# ---- ids ---------------------------------------------------------------------------------------
def test_read_ids_text_whatever_the_suffix(tmp_path):
    (tmp_path/'img_id.txt').write_text('2008_000023\n2008_000028\n\n')
    (tmp_path/'img_id.pkl').write_text('391895\n522418\n')
    assert read_ids(tmp_path/'img_id.txt') == ['2008_000023', '2008_000028']
    assert read_ids(tmp_path/'img_id.pkl') == ['391895', '522418']


@pytest.mark.parametrize('obj', [[np.int64(5), np.int64(7)], np.array([5, 7]), ['5', '7'], (5, 7)])
@pytest.mark.parametrize('protocol', [0, 2])
def test_read_ids_real_pickles(tmp_path, obj, protocol):
    (tmp_path/'ids.pkl').write_bytes(pickle.dumps(obj, protocol=protocol))
    assert read_ids(tmp_path/'ids.pkl') == ['5', '7']


def test_read_ids_keeps_leading_zeros(tmp_path):
    (tmp_path/'test.txt').write_text('000001\n000010\n')
    assert read_ids(tmp_path/'test.txt') == ['000001', '000010']


# ---- VOC ---------------------------------------------------------------------------------------
def test_voc_set_labels_from_xml(voc):
    y = voc['VOC2012']
    s = voc_set(voc['root']/'VOC2012')                       # ImageSets/Main/trainval.txt
    assert s.ids == y['ids'] and s.classes == list(VOC_CLASSES) and len(VOC_CLASSES) == 20
    np.testing.assert_array_equal(s.labels, y['labels'])
    assert s.labels.dtype == np.uint8 and not s.in_memory
    assert s.labels[0, VOC_CLASSES.index('bird')] == 1       # only a difficult bird in that image
    assert s.groups == class_groups(y['labels'].sum(0))
    assert s.items[3].name == f'{y["ids"][3]}.jpg'


def test_voc_set_ids_by_set_name_list_or_file(voc, tmp_path):
    y, root = voc['VOC2007'], voc['root']/'VOC2007'
    assert voc_set(root, 'test').ids == y['sets']['test']
    assert voc_set(root, 'train').ids == y['sets']['train']
    assert voc_set(root, y['ids'][1:3]).ids == y['ids'][1:3]
    (tmp_path/'img_id.txt').write_text('\n'.join(y['ids'][:4]))
    s = voc_set(root, tmp_path/'img_id.txt')
    assert s.ids == y['ids'][:4]
    np.testing.assert_array_equal(s.labels, y['labels'][:4])
    assert voc_set(root, str(tmp_path/'img_id.txt')).ids == y['ids'][:4]


def test_voc_set_cached_and_groups(voc):
    groups = {'head': [0], 'medium': [1], 'tail': list(range(2, 20))}
    s = voc_set(voc['root']/'VOC2012', size=16, groups=groups, name='x')
    assert s.in_memory and s.items.shape == (12, 16, 16, 3) and s.items.dtype == np.uint8
    assert s.groups == groups and s.name == 'x'


# ---- COCO --------------------------------------------------------------------------------------
def test_coco_set_labels(coco):
    for split in ('train2017', 'val2017'):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            s = coco_set(ann(coco, split), coco['root']/split)
        assert s.ids == coco[split]['ids']                   # file order
        assert s.classes == list(COCO_CATS.values())          # getCatIds() order, names from the file
        np.testing.assert_array_equal(s.labels, coco[split]['labels'])


def test_coco_annotation_rules(coco):
    s = coco_set(ann(coco, 'train2017'), coco['root']/'train2017')
    r, c = coco['train2017']['crowd_only']
    assert s.labels[r, c] == 1                               # crowd counts, as in the reference
    assert s.labels[0, 79] == 0                              # ignore / area 0 / 0.5-px box never count
    assert coco_set(ann(coco, 'train2017'), coco['root']/'train2017', crowd=False).labels[r, c] == 0


def test_coco_category_order_follows_the_file(coco):
    d = json.loads(ann(coco, 'val2017').read_text())
    d['categories'] = d['categories'][::-1]
    ann(coco, 'val2017').write_text(json.dumps(d))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        s = coco_set(ann(coco, 'val2017'), coco['root']/'val2017')
    assert s.classes == list(COCO_CATS.values())[::-1]
    np.testing.assert_array_equal(s.labels, coco['val2017']['labels'][:, ::-1])


def test_coco_set_ids_from_list_or_text_pkl(coco, tmp_path):
    y = coco['train2017']
    pick = [y['ids'][5], y['ids'][2]]
    (tmp_path/'img_id.pkl').write_text(''.join(f'{i}\n' for i in pick))
    for ids in (pick, [str(i) for i in pick], tmp_path/'img_id.pkl'):
        s = coco_set(ann(coco, 'train2017'), coco['root']/'train2017', ids=ids, size=8)
        assert s.ids == pick and s.items.shape == (2, 8, 8, 3)
        np.testing.assert_array_equal(s.labels, y['labels'][[5, 2]])


# ---- class_freq files --------------------------------------------------------------------------
def test_read_class_freq_clean(tmp_path, voc):
    y = voc['VOC2012']['labels']
    py2_pickle(freq_dict(y), tmp_path/'class_freq.pkl')
    fq = read_class_freq(tmp_path/'class_freq.pkl')
    np.testing.assert_array_equal(fq['labels'], y)
    assert fq['clean_labels'] is fq['labels'] and not fq['noisy']
    np.testing.assert_array_equal(fq['class_freq'], y.sum(0))
    np.testing.assert_array_equal(fq['neg_class_freq'], len(y) - y.sum(0))
    assert fq['condition_prob'].shape == (20, 20)


def test_read_class_freq_noisy(voc_appendix, voc):
    fq = read_class_freq(voc_appendix/'class_freq_0.5noise.pkl')
    y = voc['VOC2012']['labels'][:10]
    assert fq['noisy'] and fq['condition_prob'] is None
    np.testing.assert_array_equal(fq['clean_labels'], y)
    np.testing.assert_array_equal(fq['labels'], flip_noise(y, 0.5, 0))
    np.testing.assert_array_equal(fq['class_freq'], fq['labels'].sum(0))   # counts of the NOISY labels


def test_read_class_freq_noisy_float_array_format(tmp_path):
    clean = np.eye(4, dtype=np.uint8)[[0, 1, 2, 3, 0]]
    noisy = clean.copy(); noisy[0, 0] = 0
    py2_pickle({'labels': noisy.astype(float), 'clean_labels': clean.astype(float),
                'class_freq': noisy.sum(0).astype(float), 'neg_class_freq': (5 - noisy.sum(0)).astype(float)},
               tmp_path/'class_freq_0.3noise.pkl')
    fq = read_class_freq(tmp_path/'class_freq_0.3noise.pkl')
    assert fq['labels'].dtype == np.uint8
    np.testing.assert_array_equal(fq['labels'], noisy)


# ---- appendix ----------------------------------------------------------------------------------
def test_read_appendix_voc_fixture(voc_appendix, voc):
    app = read_appendix(voc_appendix)
    y = voc['VOC2012']
    assert app.ids == y['ids'][:10]
    assert [len(app.groups[g]) for g in GROUPS] == [6, 6, 8]
    np.testing.assert_array_equal(app.labels, y['labels'][:10])
    np.testing.assert_array_equal(app.class_freq, y['labels'][:10].sum(0))
    assert sorted(app.noisy) == [0.5, 0.7] and app.noisy[0.7].shape == (10, 20)
    assert app.training_groups is None


def test_read_appendix_coco_fixture_without_clean_file(coco_appendix, coco):
    app = read_appendix(coco_appendix)
    y = coco['train2017']
    assert app.ids == [str(i) for i in y['ids'][1:11]]
    np.testing.assert_array_equal(app.labels, y['labels'][1:11])   # from the noise file's clean_labels
    assert [len(app.groups[g]) for g in GROUPS] == [24, 24, 32] and list(app.noisy) == [0.5]


def test_read_appendix_training_split(voc_appendix):
    py2_pickle({'head': {0, 1}, 'middle': {2}, 'tail': set(range(3, 20))}, voc_appendix/'training_split.pkl')
    assert read_appendix(voc_appendix).training_groups == {'head': [0, 1], 'medium': [2], 'tail': list(range(3, 20))}


def test_official_voc_mlt_appendix():
    d = shared_dir('voc-mlt')
    if d is None: pytest.skip('the official VOC-MLT split files are not found (shared_dir: shared/data/voc-mlt, or the voc appendix folder)')
    app = read_appendix(d)
    assert len(app.ids) == 1142 and app.ids[0] == '2008_000023'
    assert app.labels.shape == (1142, 20)
    assert [len(app.groups[g]) for g in GROUPS] == [6, 6, 8]
    fq = read_class_freq(d/'class_freq.pkl')
    np.testing.assert_array_equal(app.class_freq, fq['class_freq'])
    assert app.class_freq.max() == 775 and app.class_freq.min() == 4
    assert class_groups(app.class_freq) == app.groups
    assert round(app.labels.sum(1).mean(), 2) == 2.05


# ---- presets -----------------------------------------------------------------------------------
def test_voc_mlt_preset(voc, voc_appendix):
    train, test = voc_mlt(voc['root'], voc_appendix, size=16)
    y = voc['VOC2012']
    assert train.ids == y['ids'][:10] and train.items.shape == (10, 16, 16, 3)
    np.testing.assert_array_equal(train.labels, y['labels'][:10])
    assert test.ids == voc['VOC2007']['sets']['test'] and test.in_memory
    assert train.groups == test.groups == read_appendix(voc_appendix).groups
    assert train.name == 'VOC-MLT train' and test.name == 'VOC-MLT test'
    _, lazy_test = voc_mlt(voc['root'], voc_appendix, size=16, cache_test=False)
    assert not lazy_test.in_memory


def test_coco_mlt_preset(coco, coco_appendix):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')                     # the val fixture has an image without objects
        train, test = coco_mlt(coco['root'], coco_appendix, size=None)
    assert train.ids == coco['train2017']['ids'][1:11] and test.ids == coco['val2017']['ids']
    np.testing.assert_array_equal(train.labels, coco['train2017']['labels'][1:11])
    assert len(train.classes) == 80 and not train.in_memory


def _drop_last(d):
    gone = d['categories'].pop()['id']; d['annotations'] = [a for a in d['annotations'] if a['category_id'] != gone]

@pytest.mark.parametrize('edit, first', [
    (_drop_last, "category id 90 is missing here but 'toothbrush'"),
    (lambda d: d['categories'][0].update(name='human'), "category id 1 is 'human' here but 'person'"),
    (lambda d: (d['categories'][0].update(name='bicycle'), d['categories'][1].update(name='person')),
     "category id 1 is 'bicycle' here but 'person'"),                  # two ids' names swapped
    (lambda d: d['categories'].append({'id': 91, 'name': 'extra'}), "category id 91 is 'extra' here but missing")])
def test_coco_mlt_test_columns_follow_the_training_categories(coco, coco_appendix, edit, first):
    val = ann(coco, 'val2017'); d = json.loads(orig := val.read_text())
    d['categories'].reverse(); val.write_text(json.dumps(d))          # another order: the same test labels
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        _, test = coco_mlt(coco['root'], coco_appendix, size=None)
    np.testing.assert_array_equal(test.labels, coco['val2017']['labels'])
    assert test.classes == list(COCO_CATS.values())
    d = json.loads(orig); edit(d); val.write_text(json.dumps(d))
    with pytest.raises(ValueError) as e: coco_mlt(coco['root'], coco_appendix, size=None)
    train = ann(coco, 'train2017')
    assert str(e.value).startswith(f'{val}: {first} in {train}') and f'expected the same categories (ids and names) as {train}' in str(e.value)


def test_preset_catches_appendix_that_disagrees_with_annotations(voc, tmp_path):
    y = voc['VOC2012']
    tampered = y['labels'][:10].copy(); tampered[4, 14] ^= 1
    app = make_appendix(tmp_path/'tampered', y['ids'][:10], tampered)
    with pytest.raises(ValueError) as e: voc_mlt(voc['root'], app, size=None)
    msg = str(e.value)
    assert str(app) in msg and '1 of 10 images' in msg and y['ids'][4] in msg and 'person' in msg


def test_coco_preset_catches_tampered_appendix(coco, tmp_path):
    y = coco['train2017']
    tampered = y['labels'][1:11].copy(); tampered[0, 3] ^= 1
    app = make_appendix(tmp_path/'t', y['ids'][1:11], tampered, id_file='img_id.pkl')
    with pytest.raises(ValueError, match='disagree with the annotations'): coco_mlt(coco['root'], app, size=None)


# ---- long-tailed subsets -----------------------------------------------------------------------
@pytest.fixture
def pool():
    return (np.random.default_rng(0).random((10000, 8)) < 0.12).astype(np.uint8)


def test_longtail_subset_follows_the_pareto_curve(pool):
    idx = longtail_subset(pool, 400, 5, order=range(8), seed=1)
    got, want = pool[idx].sum(0).astype(int), pareto_targets(8, 400, 5)
    assert (np.abs(got - want) <= np.maximum(0.1 * want, 2)).all()
    assert (np.diff(got) <= 0).all()                         # sizes fall along the given order


def test_longtail_subset_seeds(pool):
    a = longtail_subset(pool, 300, 4, seed=3)
    np.testing.assert_array_equal(a, longtail_subset(pool, 300, 4, seed=3))
    assert not np.array_equal(a, longtail_subset(pool, 300, 4, seed=4))


def test_longtail_subset_on_official_pool():
    d = shared_dir('voc-mlt')
    if d is None: pytest.skip('the official VOC-MLT split files are not found (shared_dir: shared/data/voc-mlt, or the voc appendix folder)')
    y = read_class_freq(d/'class_freq.pkl')['labels']
    order = np.argsort(-y.sum(0), kind='stable')
    got = y[longtail_subset(y, 300, 3, order=order, seed=0)].sum(0)[order]
    want = pareto_targets(20, 300, 3)
    assert got[0] >= 0.8 * want[0] and (got[-5:] <= want[-5:] + 2).all()
