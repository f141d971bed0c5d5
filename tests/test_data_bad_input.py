"""Bad input to the data readers: every error names the file (or field) at fault and what was expected."""
import json, pickle, shutil, warnings

import numpy as np
import pytest

from stitchup_nb.appendix import coco_mlt, read_appendix, read_class_freq, voc_mlt
from stitchup_nb.readers import coco_set, read_ids, voc_set
from stitchup_nb.fixtures import freq_dict, make_appendix, make_voc, py2_pickle, voc_xml


def raises(exc, fn, *parts):
    "Call `fn`, expect `exc`, and check that its message holds every one of `parts`."
    with pytest.raises(exc) as e: fn()
    for p in parts: assert str(p) in str(e.value), f'{p!r} not in: {e.value}'
    return str(e.value)


def voc12(voc): return voc['root']/'VOC2012'


# ---- missing folders and files -----------------------------------------------------------------
def test_missing_voc_root_points_to_readme(tmp_path):
    raises(FileNotFoundError, lambda: voc_set(tmp_path/'nowhere'/'VOC2012'), 'nowhere/VOC2012', 'JPEGImages',
           'data/README.md')


@pytest.mark.parametrize('sub', ['JPEGImages', 'Annotations'])
def test_missing_voc_subfolder(voc, sub):
    shutil.rmtree(voc12(voc)/sub)
    raises(FileNotFoundError, lambda: voc_set(voc12(voc)), f'VOC2012/{sub}', 'data/README.md')


def test_missing_image_set(voc):
    raises(FileNotFoundError, lambda: voc_set(voc12(voc), 'test'), 'ImageSets/Main/test.txt', 'data/README.md')


def test_id_without_image(voc):
    id_ = voc['VOC2012']['ids'][3]
    (voc12(voc)/'JPEGImages'/f'{id_}.jpg').unlink()
    raises(FileNotFoundError, lambda: voc_set(voc12(voc)), f'JPEGImages/{id_}.jpg', repr(id_), '1 of 12')


def test_image_under_another_case_or_suffix_is_named(voc, coco):
    "A copy whose images are named otherwise (`.JPG` from another system, `.png` once converted): the files found are named "
    "beside the one looked for (it said only that every id lacked its image)."
    imgs = coco['root']/'train2017'
    for f in list(imgs.iterdir()): f.rename(f.with_name(f.name.upper()))
    if (imgs/f'{coco["train2017"]["ids"][0]:012d}.jpg').is_file(): pytest.skip('a file system that ignores case')
    raises(FileNotFoundError, lambda: coco_set(coco['root']/'annotations'/'instances_train2017.json', imgs),
           '000000000009.jpg', '(12 of 12 ids lack their image; the folder holds 000000000009.JPG, not 000000000009.jpg: rename the images')
    id_ = voc['VOC2012']['ids'][4]; jpg = voc12(voc)/'JPEGImages'/f'{id_}.jpg'
    jpg.rename(jpg.with_suffix('.png'))
    raises(FileNotFoundError, lambda: voc_set(voc12(voc)), f'(1 of 12 ids lack their image; the folder holds {id_}.png, not {id_}.jpg')


def test_id_without_xml(voc, voc_appendix):
    raises(FileNotFoundError, lambda: voc_set(voc12(voc), ['2008_000001', '2099_000001']),
           'Annotations/2099_000001.xml', "'2099_000001'", '1 of 2 ids lack their annotation')
    # a partial VOC2012: every id without its XML is counted, and the id file is named (it stopped at the first, naming no file)
    for id_ in voc['VOC2012']['ids'][2:5]: (voc12(voc)/'Annotations'/f'{id_}.xml').unlink()
    raises(FileNotFoundError, lambda: voc_set(voc12(voc), voc_appendix/'img_id.txt'), f"{voc['VOC2012']['ids'][2]}.xml",
           f"listed in {voc_appendix/'img_id.txt'} (3 of 10 ids lack their annotation: a partial download of VOC2012")
    raises(FileNotFoundError, lambda: voc_mlt(voc['root'], voc_appendix, size=None),      # VOC-MLT's ids: its id file named too
           f"listed in {voc_appendix/'img_id.txt'} (3 of 10 ids lack their annotation")


def test_unknown_class_in_xml(voc):
    xml = voc12(voc)/'Annotations'/'2008_000002.xml'
    xml.write_text(voc_xml([('dog', False), ('unicorn', False)]))
    raises(ValueError, lambda: voc_set(voc12(voc)), str(xml), 'unicorn', 'in <name>', 'correct the <name> or remove that object')
    # a copy relabelled by hand: capitals and spaces are named with the class each should read (it listed the classes only)
    xml.write_text(voc_xml([('Person', False), ('potted plant', True)]))
    raises(ValueError, lambda: voc_set(voc12(voc)), str(xml), "lower case, no spaces; here {'Person': 'person', 'potted plant': 'pottedplant'}")


def test_broken_xml(voc):
    xml = voc12(voc)/'Annotations'/'2008_000002.xml'
    xml.write_text('<annotation><object>')
    raises(ValueError, lambda: voc_set(voc12(voc)), str(xml), 'not valid XML')


def test_xml_without_objects_gives_zero_row_and_warning(voc):
    (voc12(voc)/'Annotations'/'2008_000002.xml').write_text(voc_xml([]))
    (voc12(voc)/'Annotations'/'2008_000005.xml').write_text(voc_xml([]))
    with pytest.warns(UserWarning, match='2 of 12 images have no objects'):
        s = voc_set(voc12(voc))
    assert s.labels[[1, 4]].sum() == 0 and len(s) == 12
    np.testing.assert_array_equal(np.delete(s.labels, [1, 4], 0), np.delete(voc['VOC2012']['labels'], [1, 4], 0))


def test_missing_coco_files(coco, tmp_path):
    raises(FileNotFoundError, lambda: coco_set(tmp_path/'instances_x.json', coco['root']/'val2017'),
           'instances_x.json', 'data/README.md')
    raises(FileNotFoundError, lambda: coco_set(coco['root']/'annotations'/'instances_val2017.json', tmp_path/'val'),
           str(tmp_path/'val'), 'data/README.md')
    raises(FileNotFoundError, lambda: coco_mlt(tmp_path, tmp_path/'appendix'), 'appendix', 'data/README.md')


# ---- COCO JSON -----------------------------------------------------------------------------------
def edit_json(coco, fn, split='val2017'):
    path = coco['root']/'annotations'/f'instances_{split}.json'
    d = json.loads(path.read_text()); fn(d); path.write_text(json.dumps(d))
    return path


def read_val(coco, path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return coco_set(path, coco['root']/'val2017', **kw)


def test_coco_json_missing_list(coco):
    path = edit_json(coco, lambda d: d.pop('annotations'))
    raises(ValueError, lambda: read_val(coco, path), str(path), "'annotations'")


def test_coco_json_missing_field(coco):
    path = edit_json(coco, lambda d: d['annotations'][2].pop('bbox'))
    raises(ValueError, lambda: read_val(coco, path), str(path), 'annotations[2]', 'bbox')
    path = edit_json(coco, lambda d: d['images'][0].pop('file_name'))
    raises(ValueError, lambda: read_val(coco, path), 'images[0]', 'file_name')


def test_coco_unknown_category(coco):
    path = edit_json(coco, lambda d: d['annotations'][0].update(category_id=12))
    raises(ValueError, lambda: read_val(coco, path), str(path), 'category_id 12')


def test_coco_not_json(coco):
    path = coco['root']/'annotations'/'instances_val2017.json'
    path.write_text('{"images": [')
    raises(ValueError, lambda: read_val(coco, path), str(path), 'not a JSON file')
    path.write_text('{"images": ' + '[' * 100_000 + ']' * 100_000 + '}')       # it stopped with a RecursionError, naming no file
    raises(ValueError, lambda: read_val(coco, path), str(path), 'nested thousands deep')


def test_coco_id_not_in_file_and_missing_image(coco):
    path = coco['root']/'annotations'/'instances_val2017.json'
    raises(ValueError, lambda: read_val(coco, path, ids=[139, 424242]), str(path), '424242', '1 of 2')
    raises(ValueError, lambda: read_val(coco, path, ids=['2008_000023']), "'2008_000023'", 'integers')
    (coco['root']/'val2017'/'000000000146.jpg').unlink()
    raises(FileNotFoundError, lambda: read_val(coco, path), 'val2017/000000000146.jpg', 'id 146')


# ---- unreadable images ---------------------------------------------------------------------------
def truncate(path):
    data = path.read_bytes(); path.write_bytes(data[:len(data) // 2])


def test_truncated_image_error_names_file(voc):
    bad = voc12(voc)/'JPEGImages'/'2008_000004.jpg'
    truncate(bad)
    raises(OSError, lambda: voc_set(voc12(voc), size=16), str(bad))



def test_an_official_splits_unreadable_image_is_not_told_to_move_out(voc, voc_appendix):
    "A run's VOC-MLT with a broken training image names it, and the fix an official split allows: it lists every image, so "
    "the usual 'move it out of the set' would only have traded this error for the appendix's (its rows are one per image)."
    from stitchup_nb.labels import load_benchmark
    bad = voc12(voc)/'JPEGImages'/f"{voc['VOC2012']['ids'][3]}.jpg"
    truncate(bad)
    said = raises(OSError, lambda: load_benchmark('voc', voc['root'], voc_appendix, 16), f'{bad}: cannot decode image',
                  f'the official split (`appendix` {voc_appendix}) lists every image of the set', 'pass `on_bad` skip to train without it')
    assert 'move it out' not in said, said


@pytest.mark.parametrize('bench', ['voc', 'coco'])
def test_an_unreadable_test_image_is_not_blamed_on_the_appendix(bench, voc, voc_appendix, coco, coco_appendix):
    "A broken VOC2007 test (COCO val2017) image is no image of the appendix's split: its fix names the data root's test set "
    "(it said the official split, --appendix, lists it)."
    from stitchup_nb.labels import load_benchmark
    fx, app = (voc, voc_appendix) if bench == 'voc' else (coco, coco_appendix)
    bad = (fx['root']/'VOC2007'/'JPEGImages'/f"{fx['VOC2007']['sets']['test'][0]}.jpg" if bench == 'voc' else
           fx['root']/'val2017'/f"{fx['val2017']['ids'][0]:012d}.jpg")
    bad.write_bytes(b'not an image')
    said = raises(OSError, lambda: load_benchmark(bench, fx['root'], app, 16), f'{bad}: cannot decode image',
                  f"it is a test image, and the benchmark's test set (`data_root` {fx['root']}) is scored on every image", "`on_bad` skip drops training images only")
    assert 'official split' not in said and str(app) not in said, said

@pytest.mark.parametrize('size', [16, None])
def test_skip_bad_images_drops_rows_with_a_warning(voc, size):
    truncate(voc12(voc)/'JPEGImages'/'2008_000004.jpg')
    (voc12(voc)/'JPEGImages'/'2008_000007.jpg').write_bytes(b'not an image')
    with pytest.warns(UserWarning, match='skipped 2 of 12 unreadable images'):
        s = voc_set(voc12(voc), size=size, on_bad='skip')
    keep = [i for i in range(12) if i not in (3, 6)]
    assert s.ids == [voc['VOC2012']['ids'][i] for i in keep] and len(s.items) == 10
    np.testing.assert_array_equal(s.labels, voc['VOC2012']['labels'][keep])


def test_official_noisy_labels_follow_the_images_a_skip_kept(voc, voc_appendix, coco, coco_appendix):
    "A VOC-MLT / COCO-MLT training set read with on_bad='skip' trains each image on its own row of the official noisy labels; "
    "the file's rows were returned as they are, one more than the images: the loaders refused them, naming no file, and a "
    "caller taking them by position gave every image after the dropped one its neighbour's row."
    from stitchup_nb.labels import training_labels
    app = read_appendix(voc_appendix)
    truncate(voc12(voc)/'JPEGImages'/f'{app.ids[3]}.jpg')
    with pytest.warns(UserWarning, match='skipped 1 of 10'): train, _ = voc_mlt(voc['root'], voc_appendix, size=16, on_bad='skip', cache=False)
    np.testing.assert_array_equal(training_labels(train, noise_rate=.5, app=app), np.delete(app.noisy[.5], 3, 0))
    # COCO: ids written zero-padded, as the image files are named, and read as integers
    ids = (coco_appendix/'img_id.pkl').read_text().split()
    (coco_appendix/'img_id.pkl').write_text(''.join(f'{int(i):012d}\n' for i in ids))
    capp = read_appendix(coco_appendix)
    (coco['root']/'train2017'/f'{int(ids[0]):012d}.jpg').write_bytes(b'')
    with pytest.warns(UserWarning, match='skipped 1 of 10'): ctrain, _ = coco_mlt(coco['root'], coco_appendix, size=16, on_bad='skip', cache=False)
    np.testing.assert_array_equal(training_labels(ctrain, noise_rate=.5, app=capp), capp.noisy[.5][1:])
    raises(ValueError, lambda: training_labels(ctrain, noise_rate=.5, app=app), str(voc_appendix), 'do not list', 'not that of this training set')


def test_a_real_copys_odd_images_and_paths_still_read(tmp_path):
    "What a researcher's VOC copy may hold and the readers accept: a path with spaces and accents, JPEGImages a link to "
    "another disk, greyscale, CMYK and 16-bit images, a palette PNG with transparency saved as .jpg. Same labels; every image decoded."
    from PIL import Image
    root = tmp_path/'my data sets'/'VOC ünë'
    fx = make_voc(root, n2012=10, n2007=4)
    y, voc12_ = fx['VOC2012'], fx['root']/'VOC2012'
    elsewhere = tmp_path/'other disk'/'JPEGImages'
    shutil.move(voc12_/'JPEGImages', elsewhere); (voc12_/'JPEGImages').symlink_to(elsewhere, target_is_directory=True)
    f = lambda i: elsewhere/f"{y['ids'][i]}.jpg"
    rgb = [Image.open(f(i)).convert('RGB') for i in range(4)]
    rgb[0].convert('L').save(f(0), format='JPEG')
    rgb[1].convert('CMYK').save(f(1), format='JPEG')
    rgb[2].convert('P').save(f(2), format='PNG', transparency=0)                                  # a PNG named .jpg
    Image.fromarray(np.asarray(rgb[3])[..., 0].astype(np.uint16) * 257).save(f(3), format='PNG')   # 16-bit greyscale
    app = make_appendix(tmp_path/'app ü', y['ids'], y['labels'])
    train, test = voc_mlt(fx['root'], app, size=16, cache=tmp_path/'cache ü')
    np.testing.assert_array_equal(train.labels, y['labels'])
    assert train.items.shape == (10, 16, 16, 3) and len(test) == 1
    assert all(train.items[i].std() > 0 for i in range(4))        # each odd image decoded to its picture, none blank


def test_bad_on_bad_value(voc):
    raises(ValueError, lambda: voc_set(voc12(voc), size=8, on_bad='ignore'), "'ignore'")


# ---- id files ------------------------------------------------------------------------------------
def test_read_ids_bad_files(tmp_path):
    raises(FileNotFoundError, lambda: read_ids(tmp_path/'img_id.txt'), 'img_id.txt')
    (tmp_path/'empty.txt').write_text('\n')
    raises(ValueError, lambda: read_ids(tmp_path/'empty.txt'), 'empty.txt', 'no image ids')
    (tmp_path/'dup.txt').write_text('a\nb\na\n')
    raises(ValueError, lambda: read_ids(tmp_path/'dup.txt'), 'dup.txt', "['a']")
    (tmp_path/'dict.pkl').write_bytes(pickle.dumps({'ids': [1]}, protocol=2))
    raises(ValueError, lambda: read_ids(tmp_path/'dict.pkl'), 'dict.pkl', 'dict')
    (tmp_path/'cols.txt').write_text('2008_000008 -1\n2008_000015  1\n')
    raises(Exception, lambda: read_ids(tmp_path/'cols.txt'), 'cols.txt')


# ---- class_freq and appendix files ---------------------------------------------------------------
def test_class_freq_counts_disagree(tmp_path):
    y = np.eye(3, dtype=np.uint8)[[0, 0, 1, 2]]
    py2_pickle({**freq_dict(y), 'class_freq': np.array([2, 1, 5])}, tmp_path/'class_freq.pkl')
    raises(ValueError, lambda: read_class_freq(tmp_path/'class_freq.pkl'), 'class_freq.pkl', 'class_freq',
           '[2, 1, 5]', '[2, 1, 1]')
    py2_pickle({**freq_dict(y), 'neg_class_freq': np.array([2, 3, 0])}, tmp_path/'neg.pkl')
    raises(ValueError, lambda: read_class_freq(tmp_path/'neg.pkl'), 'neg.pkl', 'neg_class_freq', '[2, 3, 0]')


def test_class_freq_bad_content(tmp_path):
    py2_pickle({'class_freq': np.ones(3)}, tmp_path/'a.pkl')
    raises(ValueError, lambda: read_class_freq(tmp_path/'a.pkl'), 'a.pkl', 'gt_labels', "['class_freq']")
    py2_pickle({'gt_labels': [np.array([0, 1]), np.array([1])], 'class_freq': np.ones(2)}, tmp_path/'b.pkl')
    raises(ValueError, lambda: read_class_freq(tmp_path/'b.pkl'), 'b.pkl', 'gt_labels')
    py2_pickle({'gt_labels': [np.array([0, 2])], 'class_freq': np.array([0, 2])}, tmp_path/'c.pkl')
    raises(ValueError, lambda: read_class_freq(tmp_path/'c.pkl'), 'c.pkl', '0/1')
    y = np.eye(3, dtype=np.uint8)
    py2_pickle({'labels': list(y), 'clean_labels': list(y[:2]), 'class_freq': y.sum(0)}, tmp_path/'d.pkl')
    raises(ValueError, lambda: read_class_freq(tmp_path/'d.pkl'), 'd.pkl', '(2, 3)', '(3, 3)')


def test_appendix_rows_disagree_with_ids(voc_appendix):
    (voc_appendix/'img_id.txt').write_text('\n'.join(read_ids(voc_appendix/'img_id.txt')[:8]))
    raises(ValueError, lambda: read_appendix(voc_appendix), 'class_freq', '(10, 20)', '(8, 20)', 'img_id.txt')


def test_appendix_classes_disagree_with_split(voc_appendix):
    py2_pickle({'head': {0}, 'middle': {1}, 'tail': set(range(2, 25))}, voc_appendix/'class_split.pkl')
    raises(ValueError, lambda: read_appendix(voc_appendix), '(10, 20)', '(10, 25)', 'class_split.pkl')


def test_appendix_clean_labels_disagree_between_files(voc_appendix, voc):
    y = voc['VOC2012']['labels'][:10].copy(); y[0] ^= 1
    make_appendix(voc_appendix.parent/'other', voc['VOC2012']['ids'][:10], y, noise_rates=(0.9,))
    shutil.copy(voc_appendix.parent/'other'/'class_freq_0.9noise.pkl', voc_appendix)
    raises(ValueError, lambda: read_appendix(voc_appendix), 'class_freq_0.9noise.pkl', 'class_freq.pkl',
           '1 of 10 images')


def test_appendix_missing_files(voc_appendix, tmp_path):
    raises(FileNotFoundError, lambda: read_appendix(tmp_path/'none'), 'none', 'data/README.md')
    (voc_appendix/'class_split.pkl').unlink()
    raises(FileNotFoundError, lambda: read_appendix(voc_appendix), 'class_split.pkl', 'data/README.md')
    (voc_appendix/'img_id.txt').unlink()
    raises(FileNotFoundError, lambda: read_appendix(voc_appendix), 'img_id.txt', 'img_id.pkl')


def test_preset_appendix_with_other_shape(voc, voc_appendix):
    "An appendix for 20 classes is fine for VOC; one naming the wrong ids fails on the annotations."
    (voc_appendix/'img_id.txt').write_text('\n'.join(voc['VOC2012']['ids'][2:12]))
    raises(ValueError, lambda: voc_mlt(voc['root'], voc_appendix, size=None), str(voc_appendix), 'disagree')


def test_appendix_of_the_other_benchmark_is_refused_naming_both_counts(voc, coco, voc_appendix, coco_appendix):
    "The COCO-MLT appendix given for VOC (and the VOC-MLT one for COCO, or a COCO file with a category more) is refused naming "
    "class_split.pkl and both class counts; it failed on a VOC XML named by a COCO id (blaming the data root), or on the groups, naming no file."
    from stitchup_nb.labels import load_benchmark
    split = lambda app: app/'class_split.pkl'
    raises(ValueError, lambda: load_benchmark('voc', voc['root'], coco_appendix, 16), split(coco_appendix), 'names 80 classes, but VOC has 20',
           'data/appendix/VOCdevkit/longtail2012')
    train_json = coco['root']/'annotations'/'instances_train2017.json'
    raises(ValueError, lambda: coco_mlt(coco['root'], voc_appendix, size=None), split(voc_appendix),
           f'names 20 classes, but {train_json} (categories) has 80')
    d = json.loads(train_json.read_text()); d['categories'].append({'id': 91, 'name': 'banana split'})
    train_json.write_text(json.dumps(d))
    raises(ValueError, lambda: coco_mlt(coco['root'], coco_appendix, size=None), split(coco_appendix), '(categories) has 81', '80 categories')
