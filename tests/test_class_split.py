"The official class-split reader, on the shared VOC-MLT file and on bad files."
import pickle
import numpy as np
import pytest
from stitchup_nb.data import read_class_split, class_groups, shared_dir
from stitchup_nb.files import load_pickle

VOC = shared_dir('voc-mlt')
needs_voc = pytest.mark.skipif(VOC is None, reason='the official VOC-MLT split files are not found (shared_dir: shared/data/voc-mlt, or the voc appendix folder)')


@needs_voc
def test_official_voc_split_and_counts_agree():
    split = read_class_split(VOC/'class_split.pkl')
    assert [len(split[g]) for g in ('head', 'medium', 'tail')] == [6, 6, 8]
    assert class_groups(load_pickle(VOC/'class_freq.pkl')['class_freq']) == split
    assert all(isinstance(c, int) for g in split.values() for c in g)


def _dump(tmp_path, obj, name='split.pkl'):
    p = tmp_path/name
    with open(p, 'wb') as f: pickle.dump(obj, f, protocol=2)
    return p


def test_reads_python2_style_sets_of_numpy_ints(tmp_path):
    p = _dump(tmp_path, {'head': {np.int64(2)}, 'middle': {np.int64(0)}, 'tail': {np.int64(1), np.int64(3)}})
    assert read_class_split(p) == {'head': [2], 'medium': [0], 'tail': [1, 3]}


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pkl'): read_class_split(tmp_path/'nope.pkl')


@pytest.mark.parametrize('obj,msg', [
    ([1, 2, 3], 'expected a dict with keys head/middle/tail'),
    ({'head': {0}, 'tail': {1}}, 'expected a dict with keys head/middle/tail'),
    ({'head': {0, 1}, 'middle': {1}, 'tail': {2}}, 'more than one group'),
    ({'head': {0}, 'middle': {1}, 'tail': {3}}, 'in no group'),
])
def test_bad_split_files_say_what_was_expected(tmp_path, obj, msg):
    p = _dump(tmp_path, obj)
    with pytest.raises(ValueError, match=msg) as e: read_class_split(p)
    assert str(p) in str(e.value)


def test_not_a_pickle(tmp_path):
    p = tmp_path/'split.pkl'; p.write_text('hello')
    with pytest.raises(Exception, match='split.pkl'): read_class_split(p)
