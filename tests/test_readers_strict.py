"""Readers strict about types and sizes, and one atomic writer.

Every reader of a file the kit did not write (class splits, label and noise pickles, id files, COCO
annotations) refuses what it cannot trust with an error naming the file, the field (or annotation
id) and what was expected: integer class ids only; label arrays of 0/1 numbers whose size is checked
before any array is built (a ~1 MB "reference bomb" pickle never becomes a terabyte MemoryError);
UTF-8 id text (a byte-order mark is dropped); COCO annotations checked field by field.

The writer cases check that a failed write (full disk, no permission, a crash in the writer) leaves
the earlier file byte for byte and no temporary file beside it.
"""
import errno, hashlib, json, os, pickle, stat, time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import stitchup_nb.files as files
from stitchup_nb.data import check_groups, read_class_split
from stitchup_nb.files import atomic_write
from stitchup_nb.appendix import read_appendix, read_class_freq
from stitchup_nb.readers import coco_set, read_ids
from stitchup_nb.metrics import lt_map, lt_metrics
from stitchup_nb.noise import load_noisy, save_noisy
from stitchup_nb.fixtures import freq_dict, make_appendix, py2_pickle, write_jpeg

Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], np.uint8)


def dump(obj, path, protocol=2):
    Path(path).write_bytes(pickle.dumps(obj, protocol=protocol)); return Path(path)


def split(t, head, middle, tail, **kw):
    p = dump({'head': head, 'middle': middle, 'tail': tail}, t/'class_split.pkl')
    return lambda: read_class_split(p, **kw), p


def freq(t, name='class_freq.pkl', **d):
    "A class_freq pickle: valid for Y unless a key is overridden."
    p = t/name; py2_pickle({**freq_dict(Y), **d}, p)
    return lambda: read_class_freq(p), p


def noise_file(t, **d):
    p = t/'class_freq_0.5noise.pkl'
    py2_pickle({'labels': list(Y.astype(np.int64)), 'clean_labels': list(Y.astype(np.int64)),
                'class_freq': Y.sum(0), 'neg_class_freq': len(Y) - Y.sum(0), **d}, p)
    return lambda: load_noisy(p), p


ROW = [0] * 100_000     # one row, referenced 300,000 times: 3·10^10 values (terabytes as int64) from ~1 MB


def bomb(n=300_000): return [ROW] * n


def huge_shape_array():
    "A pickled uint8 array whose header claims 10**13 elements but carries 7 bytes."
    raw = pickle.dumps(np.zeros(7, np.uint8), protocol=2)
    assert raw.count(b'K\x07\x85') == 1
    return raw.replace(b'K\x07\x85', b'\x8a\x06' + (10**13).to_bytes(6, 'little') + b'\x85')


def labels_file(t, raw:bytes):
    p = t/'class_freq.pkl'; p.write_bytes(raw)
    return lambda: read_class_freq(p), p


def training_split(t):
    "An appendix for 3 classes whose training_split.pkl names a fourth."
    a = make_appendix(t/'app', [f'2008_{i:06d}' for i in range(4)], Y)
    p = dump({'head': {0}, 'middle': {1}, 'tail': {2, 3}}, a/'training_split.pkl')
    return lambda: read_appendix(a), p


def ids_file(t, raw:bytes, name='img_id.txt'):
    p = t/name; p.write_bytes(raw)
    return lambda: read_ids(p), p


def coco_dict():
    return {'images': [{'id': 1, 'file_name': 'a.jpg'}, {'id': 2, 'file_name': 'b.jpg'}],
            'categories': [{'id': 1, 'name': 'person'}, {'id': 3, 'name': 'car'}],
            'annotations': [{'id': 10, 'image_id': 1, 'category_id': 1, 'bbox': [0, 0, 5, 5], 'area': 25},
                            {'id': 11, 'image_id': 2, 'category_id': 3, 'bbox': [1, 1, 4, 4], 'area': 16, 'iscrowd': 0},
                            {'id': 12, 'image_id': 2, 'category_id': 1, 'bbox': [2, 2, 3, 3], 'area': 9}]}


def coco(t, edit):
    d = coco_dict(); edit(d)
    p = t/'instances_x.json'; p.write_text(json.dumps(d))
    (t/'img').mkdir(exist_ok=True)
    return lambda: coco_set(p, t/'img'), p


def ann(k, **kw):
    "Edit annotation `k`: a key set to ... is removed."
    def edit(d):
        a = d['annotations'][k]
        for key, v in kw.items():
            if v is ...: a.pop(key)
            else: a[key] = v
    return edit


@dataclass
class Case:
    make: object               # tmp_path -> (call, the file it reads or None)
    exc: type
    parts: tuple = ()          # more text the message must hold, besides the file
    fast: bool = False         # must fail within a few seconds (size checked before allocating)


CASES = {
    # ---- class splits and groups: integer class ids only, bounded by the class count
    'split-float-id':        Case(lambda t: split(t, {0, 1}, {2.0}, {3}), ValueError, ("group 'medium'", '2.0 (float)')),
    'split-group-is-string': Case(lambda t: split(t, '01', {2}, {3}), ValueError, ("group 'head'", "str '01'")),
    'split-string-id':       Case(lambda t: split(t, {'0'}, {1}, {2}), ValueError, ("group 'head'", "'0' (str)")),
    'split-bool-id':         Case(lambda t: split(t, {True}, {0}, {2}), ValueError, ("group 'head'", 'True (bool)')),
    'split-numpy-float-id':  Case(lambda t: split(t, {np.float64(0)}, {1}, {2}), ValueError, ("group 'head'", 'float64')),
    'split-class-10**13':    Case(lambda t: split(t, {0}, {1}, {np.int64(10**13)}), ValueError,
                                  ("group 'tail'", '10000000000000', 'in no group'), fast=True),
    'split-negative-id':     Case(lambda t: split(t, {-1, 0}, {1}, {2}), ValueError, ("group 'head'", '-1')),
    'split-beyond-n':        Case(lambda t: split(t, {0}, {1}, {2, 3}, n_classes=3), ValueError,
                                  ("group 'tail'", '[3]', 'outside 0..2')),
    'split-group-is-dict':   Case(lambda t: split(t, {0: 1}, {1}, {2}), ValueError, ("group 'head'", 'set or list')),
    'training-split-beyond-classes': Case(training_split, ValueError, ("group 'tail'", 'outside 0..2')),
    'lt_map-float-id':       Case(lambda t: (lambda: lt_map(np.random.rand(4, 3), Y, {'head': [0], 'medium': [1.0], 'tail': [2]}), None),
                                  ValueError, ('groups', "group 'medium'", '1.0 (float)')),
    'lt_metrics-string-id':  Case(lambda t: (lambda: lt_metrics({'head': ['0'], 'medium': [1], 'tail': [2]}), None),
                                  ValueError, ("group 'head'", "'0' (str)")),
    'groups-float-array':    Case(lambda t: (lambda: check_groups({'head': np.array([0., 1.]), 'medium': [], 'tail': [2]}, 3), None),
                                  ValueError, ("group 'head'", 'float64')),

    # ---- label arrays: 0/1 numbers, all rows as long, size bounded by the file before any array is built
    'labels-reference-bomb': Case(lambda t: freq(t, gt_labels=bomb(), class_freq=np.zeros(100_000, int)), ValueError,
                                  ('gt_labels', '300000×100000', 'pickle bomb'), fast=True),
    'noisy-reference-bomb':  Case(lambda t: noise_file(t, labels=bomb()), ValueError, ('labels', 'pickle bomb'), fast=True),
    'clean-reference-bomb':  Case(lambda t: noise_file(t, clean_labels=bomb(), labels=np.zeros((4, 100_000), np.uint8)),
                                  ValueError, ('clean_labels', 'pickle bomb'), fast=True),
    'class_freq-bomb':       Case(lambda t: freq(t, class_freq=bomb(3)), ValueError, ('class_freq', 'other than numbers'), fast=True),
    'condition_prob-bomb':   Case(lambda t: freq(t, condition_prob=[[.5] * 100_000] * 300_000), ValueError,
                                  ('condition_prob', 'pickle bomb'), fast=True),
    'array-claims-10**13':   Case(lambda t: labels_file(t, huge_shape_array()), ValueError, ('not a readable pickle',), fast=True),
    'labels-not-0/1':        Case(lambda t: freq(t, gt_labels=list(Y * 2)), ValueError, ('gt_labels', '0/1')),
    'labels-fractional':     Case(lambda t: noise_file(t, labels=Y * .5), ValueError, ('labels', '0/1', '0.5')),
    'labels-strings':        Case(lambda t: freq(t, gt_labels=[list('101'), list('010')]), ValueError, ('gt_labels', 'other than numbers')),
    'labels-object-array':   Case(lambda t: freq(t, gt_labels=Y.astype(object)), ValueError, ('gt_labels', 'object')),
    'labels-huge-int':       Case(lambda t: freq(t, gt_labels=[[10**30, 0, 1]]), ValueError, ('gt_labels', 'object')),
    'labels-none-row':       Case(lambda t: freq(t, gt_labels=[[1, 0, 1], None]), ValueError, ('gt_labels', 'None', 'row')),
    'labels-ragged':         Case(lambda t: noise_file(t, labels=[[1, 0, 1], [1, 0]]), ValueError, ('labels', 'differ in length')),
    'labels-1-d':            Case(lambda t: freq(t, gt_labels=np.array([1, 0, 1])), ValueError, ('gt_labels', '2-D')),

    # ---- id files: UTF-8 text (a BOM is dropped), or a pickled list of strings / integers
    'ids-utf16':             Case(lambda t: ids_file(t, '2008_000001\n'.encode('utf-16')), ValueError, ('UTF-8', 'UTF-16')),
    'ids-latin1':            Case(lambda t: ids_file(t, 'caf\xe9_1\n'.encode('latin-1')), ValueError, ('0xe9', 'UTF-8')),
    'ids-coco-pkl-latin1':   Case(lambda t: ids_file(t, b'391895\n\xff\n', 'img_id.pkl'), ValueError, ('0xff', 'save the file as UTF-8')),
    'ids-not-an-id':         Case(lambda t: ids_file(t, b'2008_000001\n2008_000002 -1\n'), ValueError, ('line 2', "'2008_000002 -1'")),
    'ids-pickled-floats':    Case(lambda t: ids_file(t, pickle.dumps([391895.0], 2), 'img_id.pkl'), ValueError, ('391895.0 (float)',)),
    'ids-pickled-bomb':      Case(lambda t: ids_file(t, pickle.dumps([ROW] * 300_000, 2), 'img_id.pkl'), ValueError, ('(list)',), fast=True),
    'ids-pickled-traversal': Case(lambda t: ids_file(t, pickle.dumps(['../../etc/x'], 2), 'img_id.pkl'), ValueError,
                                  ("'../../etc/x'", 'not an image id')),

    # ---- COCO annotations: every field read is checked; errors name the annotation id
    'coco-bbox-three':       Case(lambda t: coco(t, ann(1, bbox=[1, 2, 3])), ValueError, ('annotation id 11', 'bbox', '[1, 2, 3]')),
    'coco-bbox-null':        Case(lambda t: coco(t, ann(0, bbox=None)), ValueError, ('annotation id 10', 'bbox', 'None')),
    'coco-bbox-strings':     Case(lambda t: coco(t, ann(2, bbox=['1', '2', '3', '4'])), ValueError, ('annotation id 12', 'bbox')),
    'coco-bbox-nan':         Case(lambda t: coco(t, ann(2, bbox=[0, 0, float('nan'), 1])), ValueError, ('annotation id 12', 'bbox')),
    'coco-bbox-bool':        Case(lambda t: coco(t, ann(2, bbox=[0, 0, True, 1])), ValueError, ('annotation id 12', 'bbox')),
    'coco-unknown-category': Case(lambda t: coco(t, ann(1, category_id=12)), ValueError, ('annotation id 11', 'category_id 12')),
    'coco-category-string':  Case(lambda t: coco(t, ann(1, category_id='3')), ValueError, ('annotation id 11', "category_id '3'")),
    'coco-no-image_id':      Case(lambda t: coco(t, ann(2, image_id=...)), ValueError, ('annotation id 12', 'annotations[2]', 'image_id')),
    'coco-unknown-image':    Case(lambda t: coco(t, ann(0, image_id=99)), ValueError, ('annotation id 10', 'image_id 99')),
    'coco-area-string':      Case(lambda t: coco(t, ann(0, area='25')), ValueError, ('annotation id 10', 'area')),
    'coco-iscrowd-2':        Case(lambda t: coco(t, ann(1, iscrowd=2)), ValueError, ('annotation id 11', 'iscrowd')),
    'coco-annotation-float-id': Case(lambda t: coco(t, ann(1, id=1.5)), ValueError, ('annotations[1]', '1.5')),
    'coco-duplicate-image':  Case(lambda t: coco(t, lambda d: d['images'].append({'id': 2, 'file_name': 'c.jpg'})),
                                  ValueError, ('two images', 'id 2')),
    'coco-file-name-escapes': Case(lambda t: coco(t, lambda d: d['images'][0].update(file_name='../../x.jpg')),
                                   ValueError, ('image id 1', 'file_name', '../../x.jpg')),
}


@pytest.mark.parametrize('name', CASES)
def test_reader_refuses(tmp_path, name):
    case = CASES[name]
    call, path = case.make(tmp_path)
    start = time.perf_counter()
    with pytest.raises(case.exc) as e: call()
    msg = str(e.value)
    if path is not None: assert str(path) in msg, f'{path} not named in: {msg}'
    for p in case.parts: assert p in msg, f'{p!r} not in: {msg}'
    if case.fast:
        assert path.stat().st_size < 2_000_000 and time.perf_counter() - start < 10


# ---- what the strict readers still accept ----------------------------------------------------------
def test_bom_is_dropped_from_id_files(tmp_path):
    raw = '\ufeff2008_000001\r\n2008_000002\r\n'.encode('utf-8')
    assert read_ids(ids_file(tmp_path, raw)[1]) == ['2008_000001', '2008_000002']
    assert read_ids(ids_file(tmp_path, '\ufeff391895\n'.encode(), 'img_id.pkl')[1]) == ['391895']


def test_appendix_with_bom_in_id_file(tmp_path):
    ids = [f'2008_{i:06d}' for i in range(4)]
    a = make_appendix(tmp_path/'app', ids, Y)
    (a/'img_id.txt').write_bytes(b'\xef\xbb\xbf' + '\n'.join(ids).encode())
    assert read_appendix(a).ids == ids


def test_official_style_files_still_read(tmp_path):
    "Python-2 sets of numpy ints; labels as int64 rows, as one array, as booleans and as 0.0/1.0 floats."
    assert read_class_split(split(tmp_path, {np.int64(2)}, {np.int32(0)}, {1, 3})[1]) == {'head': [2], 'medium': [0], 'tail': [1, 3]}
    for labels in (list(Y.astype(np.int64)), Y, Y.astype(bool), Y.astype(float), Y.tolist()):
        np.testing.assert_array_equal(read_class_freq(freq(tmp_path, gt_labels=labels)[1])['labels'], Y)
    np.testing.assert_array_equal(load_noisy(noise_file(tmp_path)[1])[0], Y)


def test_coco_minimal_file_reads(tmp_path):
    for f in ('a.jpg', 'b.jpg'): write_jpeg(tmp_path/'img'/f)
    s = coco(tmp_path, lambda d: None)[0]()
    np.testing.assert_array_equal(s.labels, [[1, 0], [1, 1]])


# ---- one atomic writer ------------------------------------------------------------------------------
def sha(p): return hashlib.sha256(Path(p).read_bytes()).hexdigest()


class FullDisk:
    "A binary file that takes `room` bytes, then fails as a full disk does."
    def __init__(self, f, room=64): self.f, self.room = f, room
    def write(self, b):
        if len(b) > self.room: self.f.write(bytes(b)[:self.room]); raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b); return self.f.write(b)
    def __getattr__(self, k): return getattr(self.f, k)
    def __enter__(self): return self
    def __exit__(self, *a): self.f.close()


def full_disk(mp):
    "Every file `atomic_write` opens fills up after 64 bytes."
    mp.setattr(files, 'open', lambda *a, **k: FullDisk(open(*a, **k)), raising=False)


def no_permission_to_replace(mp):
    def refuse(src, dst): raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    mp.setattr(os, 'replace', refuse)


def no_permission_to_create(mp):
    real = os.open
    def refuse(p, flags, *a):
        if str(p).endswith('.tmp'): raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real(p, flags, *a)
    mp.setattr(os, 'open', refuse)


def fsync_fails(mp):
    def fail(fd): raise OSError(errno.EIO, os.strerror(errno.EIO))
    mp.setattr(os, 'fsync', fail)


def save(p): return save_noisy(p, Y[:, ::-1], Y)
def write_raises(p): return atomic_write(p, lambda f: (f.write(b'half'), 1 / 0))
def interrupted(p):
    def write(f): f.write(b'half'); raise KeyboardInterrupt
    return atomic_write(p, write)


WRITES = {   # name -> (how the write fails, the write, the exception, message parts (besides the file))
    'save_noisy-disk-full':      (full_disk, save, OSError, ('No space left on device', 'earlier file of that name is intact', 'free some disk space')),
    'save_noisy-no-permission':  (no_permission_to_replace, save, PermissionError, ('Permission denied', 'intact', 'permissions')),
    'save_noisy-cannot-create':  (no_permission_to_create, save, PermissionError, ('Permission denied', 'intact')),
    'save_noisy-fsync-fails':    (fsync_fails, save, OSError, ('Input/output error', 'intact', 'fix the cause')),
    'atomic_write-writer-error': (None, write_raises, ZeroDivisionError, ()),
    'atomic_write-interrupted':  (None, interrupted, KeyboardInterrupt, ()),
}


@pytest.mark.parametrize('name', WRITES)
@pytest.mark.parametrize('earlier', [True, False], ids=['earlier-file', 'no-earlier-file'])
def test_failed_write_keeps_the_earlier_file(tmp_path, monkeypatch, name, earlier):
    breaks, write, exc, parts = WRITES[name]
    p = tmp_path/'out'/'class_freq_0.5noise.pkl'
    if earlier: save_noisy(p, Y, Y)
    before = sha(p) if earlier else None
    listing = sorted(os.listdir(p.parent)) if earlier else []
    with monkeypatch.context() as mp:
        if breaks: breaks(mp)
        with pytest.raises(exc) as e: write(p)
    if exc is not ZeroDivisionError and exc is not KeyboardInterrupt:
        assert type(e.value) is exc and e.value.errno is not None
        assert str(p) in str(e.value)
        for part in (parts if earlier else tuple(x for x in parts if 'intact' not in x) + ('no file was written',)):
            assert part in str(e.value), f'{part!r} not in: {e.value}'
    if earlier:
        assert sha(p) == before
        np.testing.assert_array_equal(load_noisy(p)[0], Y)
    else: assert not p.exists()
    assert sorted(os.listdir(p.parent)) == listing, 'a temporary file was left behind'


def test_atomic_write_replaces_and_keeps_the_mode(tmp_path):
    p = tmp_path/'f.bin'
    atomic_write(p, lambda f: f.write(b'one')); p.chmod(0o640)
    assert atomic_write(p, lambda f: f.write(b'two')) == p
    assert p.read_bytes() == b'two' and stat.S_IMODE(p.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ['f.bin']


def test_save_noisy_round_trip_through_atomic_write(tmp_path):
    p = save_noisy(tmp_path/'a'/'b'/'class_freq_0.3noise.pkl', Y[::-1], Y)
    noisy, clean = load_noisy(p)
    np.testing.assert_array_equal(noisy, Y[::-1]); np.testing.assert_array_equal(clean, Y)
    assert os.listdir(p.parent) == [p.name]
