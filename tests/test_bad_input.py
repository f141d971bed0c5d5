"""Every bad input the kit has been tried on, and what it does: one table, kept passing.

Each row is a `Case`: an id, what was tried, the call (a function of `env`, the row's own scratch
folder and fixtures), and the expected outcome:

- `Raises(exc, *parts)`: an error whose message holds every part (the file or field at fault, and
  the fix); `then` checks what must hold afterwards (an earlier checkpoint intact, no marker file).
- `Warns(match, then)`: the documented behaviour is to go on (skip, clip, exclude, keep): it warns,
  with a count, and `then` checks the result.
- `Works(then)`: handled as documented without a warning (an image mode converted, ...).
- `Elsewhere()`: needs whole training runs (kills, resume); the row names the test that runs them
  (tests/test_reliability.py), and here only checks that the test exists.

`see` names the test that checks the case in detail; here each case is asserted once. The file
runs in seconds.
"""
import errno, os, pickle, shutil, warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from stitchup_nb import checkpoints, cli, labels, noise_cli, train
from stitchup_nb.colearn import check_thresholds, colearner
from stitchup_nb.checkpoints import load_checkpoint
from stitchup_nb.data import LabelledSet, read_class_split
from stitchup_nb.files import atomic_write
from stitchup_nb.appendix import coco_mlt, read_appendix, read_class_freq, voc_mlt
from stitchup_nb.readers import coco_set, read_ids, voc_set
from stitchup_nb.losses import DBFocalLoss, bce_loss
from stitchup_nb.metrics import lt_map
from stitchup_nb.backbones import digits_cnn, resnet_body
from stitchup_nb.models import Branch, TwoBranchNet
from stitchup_nb.noise import add_noise, load_noisy, save_noisy
from stitchup_nb.sampling import ClassAwareSampler, LabelIndex, draw_partners, epoch_rng
from stitchup_nb.loaders import stitch_dls
from stitchup_nb.stitchup import stitchup_loss
from stitchup_nb.fixtures import freq_dict, make_appendix, make_coco, make_voc, py2_pickle, voc_xml


# ---- the outcomes ----------------------------------------------------------------------------------
class Raises:
    def __init__(self, exc, *parts, then=None): self.exc, self.parts, self.then = exc, parts, then

@dataclass
class Warns:
    match: str
    then: Callable = None

@dataclass
class Works:
    then: Callable = None

class Elsewhere:
    "Checked by the test named in `see` (whole runs); the table only makes sure that test exists."

@dataclass
class Case:
    id: str
    tried: str
    call: Callable
    expect: object
    see: str = ''


# ---- each row's scratch world ------------------------------------------------------------------------
class Env:
    "A row's scratch folder and fixtures, made only when the row asks for them."
    def __init__(self, tmp, monkeypatch, capsys): self.tmp, self.monkeypatch, self.capsys = tmp, monkeypatch, capsys
    @cached_property
    def voc(self): return make_voc(self.tmp)
    @property
    def voc12(self): return self.voc['root']/'VOC2012'
    def jpeg(self, k): return self.voc12/'JPEGImages'/f'{self.voc["VOC2012"]["ids"][k]}.jpg'
    def xml(self, k): return self.voc12/'Annotations'/f'{self.voc["VOC2012"]["ids"][k]}.xml'
    @cached_property
    def voc_appendix(self):
        y = self.voc['VOC2012']
        return make_appendix(self.tmp/'appendix'/'VOCdevkit'/'longtail2012', y['ids'][:10], y['labels'][:10],
                             noise_rates=(0.5,))
    @cached_property
    def coco(self): return make_coco(self.tmp)
    @cached_property
    def coco_appendix(self):
        y = self.coco['train2017']
        return make_appendix(self.tmp/'appendix'/'coco'/'longtail2017', y['ids'][1:11], y['labels'][1:11],
                             id_file='img_id.pkl', clean_file=False)
    def coco_json(self, split='val2017'): return self.coco['root']/'annotations'/f'instances_{split}.json'
    def edit_coco(self, fn, split='val2017'):
        import json
        p = self.coco_json(split); d = json.loads(p.read_text()); fn(d); p.write_text(json.dumps(d)); return p
    @cached_property
    def tiny(self):
        "An in-memory set of 48 16-px images, 4 classes, class 3 with no positive; and a test set."
        rng = np.random.default_rng(0)
        y = np.zeros((48, 4), np.uint8); y[np.arange(48), rng.integers(0, 3, 48)] = 1; y[::5, 1] = 1
        imgs = rng.integers(0, 256, (48, 16, 16, 3), dtype=np.uint8)
        groups = {'head': [0], 'medium': [1], 'tail': [2, 3]}
        return (LabelledSet(imgs, y, list('abcd'), groups, name='tiny train'),
                LabelledSet(imgs[:16], y[:16], list('abcd'), groups, name='tiny test'))
    def learner(self, arch='digits_cnn', **kw):
        train, test = self.tiny
        dls = stitch_dls(train, train.labels, test, bs=8, seed=0, device='cpu')
        return colearner(dls, arch, pretrained=False, **kw)
    def checkpoint(self, learn, name='epoch_1.pth', **change):
        "`epoch_1.pth` as `Checkpoint` writes it, with the entries in `change` replaced."
        if learn.opt is None: learn.create_opt()
        ds = learn.dls.train.ds
        state = {'model': learn.model.state_dict(), 'opt': checkpoints._plain_state(learn.opt.state_dict()), 'epoch': 1,
                 'classes': list(ds.classes), 'groups': ds.groups}
        atomic_write(self.tmp/name, lambda f: torch.save({**state, **change}, f))
        return self.tmp/name


def do(*steps):
    "Run the steps in order (they are evaluated as arguments); the last one's value is the result."
    return steps[-1]

def write(path, data):
    Path(path).write_bytes(data) if isinstance(data, bytes) else Path(path).write_text(data)
    return path

def flip_first_row(y):
    y = y.copy(); y[0] ^= 1; return y

def truncate(path):
    b = Path(path).read_bytes(); Path(path).write_bytes(b[:len(b) // 2]); return path

def save_image(path, arr, mode=None):
    Image.fromarray(arr, mode).save(path, format='PNG' if arr.dtype == np.uint16 else 'JPEG'); return path

def no_network(*a, **k):
    import urllib.error
    raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution (no network)')

def nest_first_object(xml):
    "VOC XML text with its first <object> moved inside an <objects> element."
    return xml.replace('<object>', '<objects><object>', 1).replace('</object>', '</object></objects>', 1)

PART = '<part><name>head</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></part>'

def rand(shape, dtype=np.uint8, hi=256): return np.random.default_rng(0).integers(0, hi, shape).astype(dtype)

def shape_is(shape): return lambda r, env: r.items.shape == shape

def no_file(*names): return lambda r, env: not any((env.tmp/n).exists() for n in names)

def disk_full_after_half(obj, f, *a, **k):
    "torch.save that writes half a checkpoint, then finds the disk full."
    f.write(b'\0' * 4096); raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

class RunsCode:
    "Unpickling this would run `touch MARKER` in a shell."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return os.system, (f'touch {self.marker}',)

def crafted(path, obj, marker):
    import pickle
    Path(path).write_bytes(pickle.dumps(obj(RunsCode(marker)), protocol=2)); return path

def interrupted_after_half(obj, f, *a, **k):
    "torch.save interrupted (Ctrl-C) half-way through the file."
    f.write(b'\0' * 4096); raise KeyboardInterrupt

def good_checkpoint_intact(r, env):
    return torch.load(env.tmp/'epoch_1.pth', weights_only=True)['epoch'] == 1 and \
        sorted(p.name for p in env.tmp.iterdir() if p.suffix in ('.pth', '.tmp')) == ['epoch_1.pth']

def read_only_work_dir(env):
    "A work_dir nobody may write to (as root, where chmod does not stop writes, the refusal is simulated)."
    ro = env.tmp/'ro'; ro.mkdir(); ro.chmod(0o555)
    if os.geteuid() == 0:                              # the run's first write is its lock file
        import stitchup_nb.runs as runs
        def refuse(path, *a, **k): raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        env.monkeypatch.setattr(runs, 'open', refuse, raising=False)
    return cli.stitchup_train(work_dir=str(ro), epochs=1)

Y3 = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], np.uint8)
G3 = {'head': [0], 'medium': [1], 'tail': [2]}
DATA_README = 'data/README.md'
BAD = 'test_data_bad_input.py::'


# ---- the table ---------------------------------------------------------------------------------------
CASES = [
    # -- dataset folders
    Case('voc-root-missing', 'a VOC year folder that does not exist', lambda e: voc_set(e.tmp/'nowhere'/'VOC2012'),
         Raises(FileNotFoundError, 'nowhere/VOC2012', 'JPEGImages', DATA_README), BAD + 'test_missing_voc_root_points_to_readme'),
    Case('voc-root-mislaid', 'VOCdevkit given where VOCdevkit/VOC2012 belongs', lambda e: voc_set(e.voc['root']),
         Raises(FileNotFoundError, 'VOCdevkit/JPEGImages', 'VOCdevkit/VOC2012', DATA_README)),
    Case('voc-mlt-root-mislaid', 'voc_mlt root one level too high (no VOCdevkit/ in it)',
         lambda e: voc_mlt(e.voc['root'].parent, e.voc_appendix, size=None),
         Raises(FileNotFoundError, 'VOC2012', DATA_README)),
    Case('voc-subfolder-missing', 'VOC2012 without Annotations/',
         lambda e: do(shutil.rmtree(e.voc12/'Annotations'), voc_set(e.voc12)),
         Raises(FileNotFoundError, 'VOC2012/Annotations', DATA_README), BAD + 'test_missing_voc_subfolder'),
    Case('voc-image-set-missing', "an ImageSets/Main name that is not there ('test' in VOC2012)",
         lambda e: voc_set(e.voc12, 'test'), Raises(FileNotFoundError, 'ImageSets/Main/test.txt', DATA_README),
         BAD + 'test_missing_image_set'),
    Case('coco-annotations-missing', 'coco_mlt root without annotations/instances_train2017.json',
         lambda e: coco_mlt(e.coco['root'].parent, e.coco_appendix, size=None),
         Raises(FileNotFoundError, 'instances_train2017.json', DATA_README), BAD + 'test_missing_coco_files'),
    Case('coco-image-folder-missing', 'a COCO image folder that does not exist',
         lambda e: coco_set(e.coco_json(), e.tmp/'val'), Raises(FileNotFoundError, 'val', DATA_README),
         BAD + 'test_missing_coco_files'),
    Case('appendix-folder-missing', 'an appendix folder that does not exist', lambda e: read_appendix(e.tmp/'none'),
         Raises(FileNotFoundError, 'none', DATA_README), BAD + 'test_appendix_missing_files'),
    Case('appendix-split-missing', 'an appendix folder without class_split.pkl',
         lambda e: do((e.voc_appendix/'class_split.pkl').unlink(), read_appendix(e.voc_appendix)),
         Raises(FileNotFoundError, 'class_split.pkl', DATA_README), BAD + 'test_appendix_missing_files'),
    Case('appendix-ids-missing', 'an appendix folder without img_id.txt/img_id.pkl',
         lambda e: do((e.voc_appendix/'img_id.txt').unlink(), read_appendix(e.voc_appendix)),
         Raises(FileNotFoundError, 'img_id.txt', 'img_id.pkl'), BAD + 'test_appendix_missing_files'),

    # -- ids without image or annotation
    Case('id-without-image', 'an id in the image set whose JPEG is gone',
         lambda e: do(e.jpeg(3).unlink(), voc_set(e.voc12)), Raises(FileNotFoundError, '2008_000004.jpg', "'2008_000004'", '1 of 12'),
         BAD + 'test_id_without_image'),
    Case('id-without-annotation', 'an id with no Annotations/ID.xml', lambda e: voc_set(e.voc12, ['2008_000001', '2099_000001']),
         Raises(FileNotFoundError, 'Annotations/2099_000001.xml', "'2099_000001'"), BAD + 'test_id_without_xml'),
    Case('coco-id-not-in-json', 'a COCO id the annotation file does not have', lambda e: coco_set(e.coco_json(), e.coco['root']/'val2017', ids=[139, 424242]),
         Raises(ValueError, 'instances_val2017.json', '424242', '1 of 2'), BAD + 'test_coco_id_not_in_file_and_missing_image'),
    Case('coco-voc-ids', "VOC ids given to the COCO reader (another split's id file)",
         lambda e: coco_set(e.coco_json(), e.coco['root']/'val2017', ids=['2008_000023']),
         Raises(ValueError, "'2008_000023'", 'integers', 'another split'), BAD + 'test_coco_id_not_in_file_and_missing_image'),
    Case('id-file-empty', 'an id file with no ids', lambda e: read_ids(write(e.tmp/'img_id.txt', '\n')),
         Raises(ValueError, 'img_id.txt', 'no image ids'), BAD + 'test_read_ids_bad_files'),
    Case('id-file-duplicates', 'an id file listing an id twice', lambda e: read_ids(write(e.tmp/'img_id.txt', 'a\nb\na\n')),
         Raises(ValueError, 'img_id.txt', 'more than once', "['a']"), BAD + 'test_read_ids_bad_files'),

    # -- images
    Case('image-corrupt', 'a JPEG replaced by bytes that are no image', lambda e: do(write(e.jpeg(6), b'not an image'), voc_set(e.voc12, size=16)),
         Raises(OSError, '2008_000007.jpg', 'cannot decode', 're-download', "on_bad='skip'")),
    Case('image-corrupt-skipped', "the same with on_bad='skip'", lambda e: do(write(e.jpeg(6), b'not an image'), voc_set(e.voc12, size=16, on_bad='skip')),
         Warns('skipped 1 of 12 unreadable images', lambda r, e: len(r) == 11 and '2008_000007' not in r.ids),
         BAD + 'test_skip_bad_images_drops_rows_with_a_warning'),
    Case('image-truncated', 'a JPEG cut in half', lambda e: do(truncate(e.jpeg(3)), voc_set(e.voc12, size=16)),
         Raises(OSError, '2008_000004.jpg', 'cannot decode'), BAD + 'test_truncated_image_error_names_file'),
    Case('image-truncated-lazy', "a JPEG cut in half, lazy set (size=None), on_bad='skip': checked before training",
         lambda e: do(truncate(e.jpeg(3)), voc_set(e.voc12, on_bad='skip')),
         Warns('skipped 1 of 12', lambda r, e: len(r) == 11), BAD + 'test_skip_bad_images_drops_rows_with_a_warning'),
    Case('image-empty-file', 'a 0-byte JPEG', lambda e: do(write(e.jpeg(2), b''), voc_set(e.voc12, size=16)),
         Raises(OSError, '2008_000003.jpg', 'cannot decode')),
    Case('image-grayscale', 'a greyscale (L) JPEG', lambda e: do(save_image(e.jpeg(1), rand((20, 30))), voc_set(e.voc12, size=16)),
         Works(shape_is((12, 16, 16, 3)))),
    Case('image-cmyk', 'a CMYK JPEG', lambda e: do(save_image(e.jpeg(1), rand((20, 30, 4)), 'CMYK'), voc_set(e.voc12, size=16)),
         Works(shape_is((12, 16, 16, 3)))),
    Case('image-16-bit', 'a 16-bit greyscale PNG (named .jpg)',
         lambda e: do(save_image(e.jpeg(1), rand((20, 30), np.uint16, 65535)), voc_set(e.voc12, size=16)),
         Works(lambda r, e: r.items.shape == (12, 16, 16, 3) and r.items[1].max() > 200)),
    Case('image-tiny', 'a 1×1 image', lambda e: do(save_image(e.jpeg(1), rand((1, 1, 3))), voc_set(e.voc12, size=16)),
         Works(shape_is((12, 16, 16, 3)))),
    Case('image-decompression-bomb', 'an image over PIL\'s pixel limit (a decompression bomb)',
         lambda e: do(e.monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100), voc_set(e.voc12, size=16)),
         Raises(OSError, '2008_000001.jpg', 'cannot decode', "on_bad='skip'")),
    Case('on-bad-unknown', "on_bad='ignore'", lambda e: voc_set(e.voc12, size=8, on_bad='ignore'),
         Raises(ValueError, "'ignore'"), BAD + 'test_bad_on_bad_value'),

    # -- VOC XML
    Case('xml-unknown-class', "an XML object named 'unicorn'",
         lambda e: do(write(e.xml(1), voc_xml([('dog', False), ('unicorn', False)])), voc_set(e.voc12)),
         Raises(ValueError, '2008_000002.xml', 'unicorn', 'VOC classes are'), BAD + 'test_unknown_class_in_xml'),
    Case('xml-broken', 'an XML file cut short', lambda e: do(write(e.xml(1), '<annotation><object>'), voc_set(e.voc12)),
         Raises(ValueError, '2008_000002.xml', 'not valid XML'), BAD + 'test_broken_xml'),
    Case('xml-no-objects', 'an XML file without objects', lambda e: do(write(e.xml(1), voc_xml([])), voc_set(e.voc12)),
         Warns('1 of 12 images have no objects', lambda r, e: r.labels[1].sum() == 0 and len(r) == 12),
         BAD + 'test_xml_without_objects_gives_zero_row_and_warning'),
    Case('xml-namespaced-root', 'an XML whose root is <annotation xmlns="http://x"> (its objects are namespaced too)',
         lambda e: do(write(e.xml(1), voc_xml([('dog', False)]).replace('<annotation>', '<annotation xmlns="http://x">')), voc_set(e.voc12)),
         Raises(ValueError, '2008_000002.xml', 'root element is <{http://x}annotation>', 'expected <annotation>', 'remove its xmlns')),
    Case('xml-other-root', 'an XML whose root is <annotations>', lambda e: do(write(e.xml(1), '<annotations/>'), voc_set(e.voc12)),
         Raises(ValueError, '2008_000002.xml', 'root element is <annotations>', 'expected <annotation>', 'the VOC annotation of that image')),
    Case('xml-nested-object', 'an <object> inside <objects> (not a child of <annotation>)',
         lambda e: do(write(e.xml(1), nest_first_object(voc_xml([('dog', False), ('cat', False)]))), voc_set(e.voc12)),
         Raises(ValueError, '2008_000002.xml', 'an <object> lies inside <objects>', 'children of <annotation>')),
    Case('xml-object-without-name', 'an <object> without <name>',
         lambda e: do(write(e.xml(1), voc_xml([('dog', False), ('cat', False)]).replace('<name>cat</name>', '')), voc_set(e.voc12)),
         Raises(ValueError, '2008_000002.xml', 'object 2 of 2 has no <name>', 'give every <object> a <name>')),
    Case('xml-object-empty-name', 'an <object> whose <name> is blank', lambda e: do(write(e.xml(1), voc_xml([(' ', False)])), voc_set(e.voc12)),
         Raises(ValueError, '2008_000002.xml', 'object 1 of 1 has no <name>')),
    Case('xml-person-parts', "a person with VOC's layout <part>s (head, hand): real files, read as before",
         lambda e: do(write(e.xml(1), voc_xml([('person', False)]).replace('</bndbox></object>', f'</bndbox>{PART}</object>')), voc_set(e.voc12)),
         Works(lambda r, e: r.labels[1].tolist() == [int(c == 'person') for c in r.classes])),

    # -- COCO JSON
    Case('coco-json-no-annotations', "a COCO file without the 'annotations' list",
         lambda e: coco_set(e.edit_coco(lambda d: d.pop('annotations')), e.coco['root']/'val2017'),
         Raises(ValueError, 'instances_val2017.json', "'annotations'"), BAD + 'test_coco_json_missing_list'),
    Case('coco-json-missing-field', "an annotation without 'bbox'",
         lambda e: coco_set(e.edit_coco(lambda d: d['annotations'][2].pop('bbox')), e.coco['root']/'val2017'),
         Raises(ValueError, 'instances_val2017.json', 'annotations[2]', 'bbox'), BAD + 'test_coco_json_missing_field'),
    Case('coco-json-image-no-file-name', "an image entry without 'file_name'",
         lambda e: coco_set(e.edit_coco(lambda d: d['images'][0].pop('file_name')), e.coco['root']/'val2017'),
         Raises(ValueError, 'images[0]', 'file_name'), BAD + 'test_coco_json_missing_field'),
    Case('coco-json-unknown-category', 'an annotation whose category_id no category has',
         lambda e: coco_set(e.edit_coco(lambda d: d['annotations'][0].update(category_id=12)), e.coco['root']/'val2017'),
         Raises(ValueError, 'instances_val2017.json', 'category_id 12'), BAD + 'test_coco_unknown_category'),
    Case('coco-json-broken', 'a COCO file that is not JSON',
         lambda e: coco_set(write(e.coco_json(), '{"images": ['), e.coco['root']/'val2017'),
         Raises(ValueError, 'instances_val2017.json', 'not a JSON file'), BAD + 'test_coco_not_json'),
    Case('coco-json-file-name-shared', 'two images with one file_name (the same pixels, two label rows)',
         lambda e: coco_set(e.edit_coco(lambda d: d['images'][1].update(file_name='./' + d['images'][0]['file_name'])), e.coco['root']/'val2017'),
         Raises(ValueError, 'instances_val2017.json', 'image ids [', 'share the file_name', 'keep one entry per file')),
    Case('coco-json-category-name-shared', "two categories named 'person'",
         lambda e: coco_set(e.edit_coco(lambda d: d['categories'][1].update(name='person')), e.coco['root']/'val2017'),
         Raises(ValueError, 'instances_val2017.json', "category ids [1, 2] share the name 'person'", 'give each its own name')),
    Case('coco-json-category-name-empty', 'a category with an empty name',
         lambda e: coco_set(e.edit_coco(lambda d: d['categories'][0].update(name='')), e.coco['root']/'val2017'),
         Raises(ValueError, 'instances_val2017.json', 'category id 1 has an empty name', 'class name')),
    Case('coco-json-annotation-id-shared', 'two annotations with one id (labels are built per image: the same labels)',
         lambda e: coco_set(e.edit_coco(lambda d: d['annotations'][1].update(id=d['annotations'][0]['id']), 'train2017'),
                            e.coco['root']/'train2017'),
         Works(lambda r, e: (r.labels == e.coco['train2017']['labels']).all())),

    # -- appendix files that disagree
    Case('appendix-n-disagrees', 'img_id.txt lists 8 ids, the label files hold 10 rows',
         lambda e: do(write(e.voc_appendix/'img_id.txt', '\n'.join(read_ids(e.voc_appendix/'img_id.txt')[:8])), read_appendix(e.voc_appendix)),
         Raises(ValueError, 'class_freq', '(10, 20)', '(8, 20)', 'img_id.txt'), BAD + 'test_appendix_rows_disagree_with_ids'),
    Case('appendix-c-disagrees', 'class_split.pkl names 25 classes, the label files hold 20',
         lambda e: do(py2_pickle({'head': {0}, 'middle': {1}, 'tail': set(range(2, 25))}, e.voc_appendix/'class_split.pkl'),
                    read_appendix(e.voc_appendix)),
         Raises(ValueError, '(10, 20)', '(10, 25)', 'class_split.pkl'), BAD + 'test_appendix_classes_disagree_with_split'),
    Case('appendix-ids-disagree', "the appendix's ids name other images than its labels describe",
         lambda e: do(write(e.voc_appendix/'img_id.txt', '\n'.join(e.voc['VOC2012']['ids'][2:12])), voc_mlt(e.voc['root'], e.voc_appendix, size=None)),
         Raises(ValueError, 'longtail2012', 'disagree', DATA_README), BAD + 'test_preset_appendix_with_other_shape'),
    Case('appendix-clean-labels-differ', 'a noise file whose clean_labels differ from class_freq.pkl',
         lambda e: do(make_appendix(e.tmp/'other', e.voc['VOC2012']['ids'][:10], flip_first_row(e.voc['VOC2012']['labels'][:10]), noise_rates=(0.9,)),
                    shutil.copy(e.tmp/'other'/'class_freq_0.9noise.pkl', e.voc_appendix), read_appendix(e.voc_appendix)),
         Raises(ValueError, 'class_freq_0.9noise.pkl', 'class_freq.pkl', '1 of 10 images'), BAD + 'test_appendix_clean_labels_disagree_between_files'),
    Case('class-freq-counts-disagree', 'class_freq.pkl whose stored counts differ from its labels',
         lambda e: read_class_freq(py2_pickle({**freq_dict(Y3), 'class_freq': np.array([2, 1, 5])}, e.tmp/'class_freq.pkl') or e.tmp/'class_freq.pkl'),
         Raises(ValueError, 'class_freq.pkl', '[2, 1, 5]', '[2, 2, 2]'), BAD + 'test_class_freq_counts_disagree'),

    # -- noisy-label files
    Case('noise-file-other-set', 'a noisy-label file made for another set (its clean labels differ)',
         lambda e: labels.training_labels(e.tiny[0], save_noisy(e.tmp/'n.pkl', e.tiny[0].labels, 1 - e.tiny[0].labels)),
         Raises(ValueError, 'n.pkl', 'do not match the training set', 'another dataset, id list, class order or Digits-MLT instance, --data_seed?')),
    Case('noise-file-other-shape', 'a noisy-label file with other N and C',
         lambda e: labels.training_labels(e.tiny[0], save_noisy(e.tmp/'n.pkl', Y3, Y3)),
         Raises(ValueError, 'n.pkl', '(4, 3)', '(48, 4)')),
    Case('noise-file-is-clean', 'a clean class_freq.pkl given as the noisy-label file',
         lambda e: load_noisy(py2_pickle(freq_dict(Y3), e.tmp/'class_freq.pkl') or e.tmp/'class_freq.pkl'),
         Raises(ValueError, 'class_freq.pkl', 'not a noisy-label file'), 'test_noise.py::test_bad_files_are_refused_naming_the_file'),

    # -- labels not 0/1, rates and thresholds
    Case('labels-not-binary', 'training labels holding a 2', lambda e: stitch_dls(e.tiny[0], e.tiny[0].labels * 2, e.tiny[1]),
         Raises(ValueError, 'training labels', 'must be 0/1', '[2]')),
    Case('labels-not-binary-set', 'a LabelledSet with labels 0/1/-1', lambda e: LabelledSet(np.zeros((2, 4, 4, 3), np.uint8), [[1, -1, 0], [0, 1, 0]], list('abc'), G3, name='mine'),
         Raises(ValueError, 'mine labels', 'must be 0/1', '[-1]')),
    Case('labels-wrong-width', 'training labels with one class too few', lambda e: stitch_dls(e.tiny[0], e.tiny[0].labels[:, :3], e.tiny[1]),
         Raises(ValueError, 'training labels', '3 classes, expected 4')),
    Case('noise-rate-above-1', 'noise rate 1.2', lambda e: add_noise(Y3, 1.2), Raises(ValueError, 'rate must be in [0, 1], got 1.2'),
         'test_noise.py::test_bad_input_says_what_is_wrong'),
    Case('noise-rate-cli', 'stitchup_train --noise_rate -0.1 (simulated noise)', lambda e: labels.training_labels(e.tiny[0], noise_rate=-0.1),
         Raises(ValueError, 'rate must be in [0, 1], got -0.1')),
    Case('threshold-above-1', 'random_head_alpha 1.5', lambda e: check_thresholds(random_head_alpha=1.5),
         Raises(ValueError, 'random_head', 'need 0 <= beta < alpha <= 1', 'alpha=1.5')),
    Case('threshold-negative', 'balance_tail_beta -0.1', lambda e: check_thresholds(balance_tail_beta=-.1),
         Raises(ValueError, 'balance_tail', 'beta=-0.1')),
    Case('alpha-equals-beta', 'random_tail_alpha = random_tail_beta = 0.3', lambda e: check_thresholds(random_tail_alpha=.3, random_tail_beta=.3),
         Raises(ValueError, 'random_tail', 'need 0 <= beta < alpha', 'alpha=0.3, beta=0.3', 'switch correction off')),
    Case('alpha-below-beta', 'balance_head_alpha 0.2 < balance_head_beta 0.4', lambda e: check_thresholds(balance_head_alpha=.2, balance_head_beta=.4),
         Raises(ValueError, 'balance_head', 'alpha=0.2, beta=0.4')),
    Case('threshold-unknown', 'a misspelt threshold (random_head_alfa)', lambda e: check_thresholds(random_head_alfa=.7),
         Raises(ValueError, "unknown thresholds ['random_head_alfa']", 'valid names')),

    # -- a class with no training positive (class 3 of the tiny set)
    Case('class-no-positive-sampler', 'class-aware sampling with a class nobody has',
         lambda e: ClassAwareSampler(e.tiny[0].labels, seed=0).draw(0),
         Warns(r'1 classes have no training positive \(\[3\]\) and are never drawn', lambda r, e: e.tiny[0].labels[r].sum(0)[3] == 0)),
    Case('no-class-has-positive', 'class-aware sampling on all-zero labels', lambda e: ClassAwareSampler(np.zeros((4, 3), np.uint8)),
         Raises(ValueError, 'no class has a positive label')),
    Case('class-no-positive-dbfocal', 'DB-Focal weights with a class nobody has',
         lambda e: DBFocalLoss.from_labels(e.tiny[0].labels)(torch.zeros(48, 4), torch.as_tensor(e.tiny[0].labels).float()),
         Warns(r'DB-Focal: 1 of 4 classes have no training positive \(classes \[3\]\)', lambda r, e: bool(torch.isfinite(r))),
         'test_losses.py::test_edge_counts_warn_name_the_classes_and_stay_finite'),
    Case('class-no-positive-partners', 'Stitch-Up partners when a class has no image',
         lambda e: (lambda a: (a, draw_partners(LabelIndex(e.tiny[0].labels), a, epoch_rng(0, 0, 2))))(np.arange(48)),
         Works(lambda r, e: all((e.tiny[0].labels[a] & e.tiny[0].labels[b]).any() for a, b in zip(*r)))),

    # -- an image left with no positive label after noise
    Case('noise-empties-images', "'missing' noise at rate 1 (every image loses all its labels)", lambda e: add_noise(Y3, 1., kind='missing'),
         Warns('4 of 4 images have no positive label left; they stay as all-zero rows', lambda r, e: r.shape == Y3.shape and r.sum() == 0),
         'test_noise.py::test_emptied_images_stay_as_zero_rows_with_a_warning'),
    Case('empty-image-partner', 'the Stitch-Up partner of an image without positives',
         lambda e: draw_partners(LabelIndex(np.array([[1, 0], [0, 0], [1, 1]], np.uint8)), np.array([1, 1, 1]), np.random.default_rng(0)),
         Works(lambda r, e: (r == 1).all())),
    Case('empty-image-losses', 'BCE, DB-Focal and the stitched loss on a batch of images without positives',
         lambda e: [stitchup_loss(torch.randn(6, 4), torch.zeros(4, 4), lambda z, y: f(z, y, reduction='none'))
                    for f in (bce_loss, DBFocalLoss.from_labels(np.eye(4, dtype=np.uint8)[[0, 1, 2, 3, 0]]))],
         Works(lambda r, e: all(torch.isfinite(l) for l in r)), 'test_losses.py::test_image_without_positive_gets_alpha_plus_one'),

    # -- classes with no test positive
    Case('test-class-no-positive', 'a test set where class 2 (tail) never occurs',
         lambda e: lt_map(np.random.default_rng(0).random((4, 3)), np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 1, 0]]), G3),
         Warns(r'1 of 3 classes', lambda r, e: np.isnan(r['tail']) and not np.isnan(r['total'])),
         'test_metrics.py::test_classes_without_positives_are_excluded_with_one_warning'),

    # -- checkpoints
    Case('checkpoint-other-classes', 'a checkpoint trained on another class list',
         lambda e: load_checkpoint(e.learner(), e.checkpoint(e.learner(), classes=list('wxyz'))),
         Raises(ValueError, 'epoch_1.pth', "['w', 'x', 'y', 'z']", 'another class list')),
    Case('checkpoint-other-backbone', 'a checkpoint of another backbone (a Digits CNN of width 8)',
         lambda e: load_checkpoint(e.learner(), e.checkpoint(e.learner(model=TwoBranchNet(
             {n: Branch(digits_cnn(8)[0], 64, 4) for n in ('random', 'balanced')})))),
         Raises(ValueError, 'epoch_1.pth', 'does not fit this model', 'another backbone')),
    Case('checkpoint-other-branches', 'a one-branch (baseline) checkpoint loaded into the two-branch model',
         lambda e: load_checkpoint(e.learner(), e.checkpoint(e.learner(), model={
             k: v for k, v in e.learner().model.state_dict().items() if 'balanced' not in k})),
         Raises(ValueError, 'epoch_1.pth', 'does not fit this model', 'branch set')),
    Case('checkpoint-truncated', 'a checkpoint cut in half', lambda e: load_checkpoint(e.learner(), truncate(e.checkpoint(e.learner()))),
         Raises(ValueError, 'epoch_1.pth', 'not a readable checkpoint', 'earlier epoch_N.pth')),
    Case('checkpoint-not-ours', 'a bare state_dict given as a checkpoint',
         lambda e: load_checkpoint(e.learner(), (torch.save(e.learner().model.state_dict(), e.tmp/'w.pth'), e.tmp/'w.pth')[1]),
         Raises(ValueError, 'w.pth', 'not a stitchup_train checkpoint')),
    Case('checkpoint-missing', 'a checkpoint path that does not exist', lambda e: load_checkpoint(e.learner(), e.tmp/'epoch_9.pth'),
         Raises(FileNotFoundError, 'epoch_9.pth', 'no such checkpoint')),

    # -- work_dir and disk
    Case('work-dir-empty-resume', '--resume auto in an empty work_dir', lambda e: train._resume_checkpoint(e.tmp, 'auto'),
         Works(lambda r, e: r is None and 'training starts at epoch 0' in e.capsys.readouterr().out)),
    Case('work-dir-read-only', 'a work_dir that cannot be written', read_only_work_dir,
         Raises(OSError, 'cannot write to work_dir', 'ro', 'pass `work_dir` a folder you can write to')),
    Case('work-dir-under-a-file', 'a work_dir below a regular file', lambda e: cli.stitchup_train(work_dir=str(write(e.tmp/'f', '')/'run')),
         Raises(OSError, 'cannot write to work_dir', 'f/run', 'f is a file, not a folder')),
    Case('work-dir-a-file', 'a work_dir that is a regular file', lambda e: cli.stitchup_train(work_dir=str(write(e.tmp/'g', '')), epochs=1),
         Raises(OSError, 'cannot write to work_dir', 'g is a file, not a folder')),
    Case('disk-full-new-checkpoint', 'the disk fills up while epoch_2.pth is written',
         lambda e: do(e.checkpoint(e.learner()), e.monkeypatch.setattr(torch, 'save', disk_full_after_half),
                    atomic_write(e.tmp/'epoch_2.pth', lambda f: torch.save({'epoch': 2}, f))),
         Raises(OSError, 'No space left on device', 'epoch_2.pth', 'no file was written', then=good_checkpoint_intact)),
    Case('disk-full-overwrite', 'the disk fills up while epoch_1.pth is rewritten',
         lambda e: do(e.checkpoint(e.learner()), e.monkeypatch.setattr(torch, 'save', disk_full_after_half),
                    atomic_write(e.tmp/'epoch_1.pth', lambda f: torch.save({'epoch': 5}, f))),
         Raises(OSError, 'No space left on device', 'epoch_1.pth', 'is intact', then=good_checkpoint_intact)),

    # -- interruptions
    Case('interrupted-save', 'Ctrl-C half-way through rewriting epoch_1.pth',
         lambda e: do(e.checkpoint(e.learner()), e.monkeypatch.setattr(torch, 'save', interrupted_after_half),
                      atomic_write(e.tmp/'epoch_1.pth', lambda f: torch.save({'epoch': 5}, f))),
         Raises(KeyboardInterrupt, then=good_checkpoint_intact)),
    Case('killed-mid-epoch', 'stitchup_train killed (SIGKILL) in epoch 2, then --resume auto', None, Elsewhere(),
         'test_reliability.py::test_kill_mid_epoch_leaves_the_last_checkpoint_loadable'),
    Case('killed-mid-save', 'stitchup_train killed (SIGKILL) half-way through writing epoch_2.pth', None, Elsewhere(),
         'test_reliability.py::test_kill_mid_save_leaves_no_partial_checkpoint'),
    Case('resumed-after-kills', 'the run above resumed to the end: same final weights and metrics', None, Elsewhere(),
         'test_reliability.py::test_resumed_run_ends_exactly_as_the_uninterrupted_one'),

    # -- untrusted files (every reader and payload: tests/test_untrusted.py)
    Case('crafted-split-pickle', 'a class_split.pkl whose pickle calls os.system',
         lambda e: read_class_split(crafted(e.tmp/'class_split.pkl', lambda evil: {'head': evil}, e.tmp/'pwned')),
         Raises(pickle.UnpicklingError, 'class_split.pkl', 'refused to load posix.system', 'crafted to run code',
                then=no_file('pwned')), 'test_untrusted.py::test_crafted_pickle_is_refused_without_running'),
    Case('crafted-noise-file', 'a class_freq_0.5noise.pkl whose pickle calls os.system',
         lambda e: labels.training_labels(e.tiny[0], crafted(e.tmp/'class_freq_0.5noise.pkl', lambda evil: {'labels': evil}, e.tmp/'pwned')),
         Raises(pickle.UnpicklingError, 'class_freq_0.5noise.pkl', 'refused', then=no_file('pwned')),
         'test_untrusted.py::test_crafted_pickle_is_refused_without_running'),
    Case('crafted-checkpoint', 'an epoch_1.pth whose pickle calls os.system',
         lambda e: load_checkpoint(e.learner(), do(torch.save({'model': RunsCode(e.tmp/'pwned'), 'epoch': 1}, e.tmp/'epoch_1.pth'),
                                                   e.tmp/'epoch_1.pth')),
         Raises(pickle.UnpicklingError, 'epoch_1.pth: refused', 'crafted to run code', then=no_file('pwned')),
         'test_untrusted.py::test_crafted_checkpoint_is_refused_without_running'),

    # -- options that a run would ignore, or that would run for ever: refused before anything is read or written
    Case('noise-file-and-rate', '--noise_file with an explicit --noise_rate (even the default 0.5)',
         lambda e: train.train_config(noise_file=str(save_noisy(e.tmp/'n.pkl', Y3, Y3)), noise_rate=.5, work_dir=None),
         Raises(ValueError, '`noise_rate` 0.5 has no effect with `noise_file`', 'n.pkl', 'drop one of the two')),
    Case('noise-file-and-asym', '--noise_file with --noise_kind asym --noise_neg_rate 0.1',
         lambda e: train.train_config(noise_file=str(save_noisy(e.tmp/'n.pkl', Y3, Y3)), noise_kind='asym', noise_neg_rate=.1, work_dir=None),
         Raises(ValueError, '`noise_kind` asym has no effect with `noise_file`', 'n.pkl')),
    Case('official-and-noise-kind', '--noise_kind cooc on VOC, where rate 0.5 has the official noisy labels',
         lambda e: train.train_config(dataset='voc', appendix=str(e.voc_appendix), noise_kind='cooc', work_dir=None),
         Raises(ValueError, '`noise_kind` cooc has no effect with `noise_rate` 0.5 on voc', 'the official noisy labels',
                'class_freq_0.5noise.pkl', 'stitchup_noise', '`noise_file`')),
    Case('resume-and-overwrite', '--resume auto --overwrite', lambda e: train.train_config(resume='auto', overwrite=True, work_dir=str(e.tmp)),
         Raises(ValueError, '`resume` auto', '`overwrite=True`', 'pass one of them')),
    Case('warmup-past-epochs', '--warmup_epoch 3 --epochs 3 for the full method (correction would never run)',
         lambda e: train.train_config(warmup_epoch=3, epochs=3, work_dir=None),
         Raises(ValueError, '`warmup_epoch` 3', '`epochs` 3', 'label correction would never run')),
    Case('lr-steps-unsorted', 'lr_steps=[5, 3] (the schedule [3, 5] out of order: was taken)',
         lambda e: train.train_config(lr_steps=[5, 3], work_dir=None),
         Raises(ValueError, 'lr_steps [5, 3]: the epochs must be increasing, each once', 'pass lr_steps [3, 5]')),
    Case('lr-steps-repeated', 'lr_steps=[3, 3] (lr × 0.01 at epoch 3: was taken)', lambda e: train.train_config(lr_steps=[3, 3], work_dir=None),
         Raises(ValueError, 'lr_steps [3, 3]: the epochs must be increasing, each once', 'lowers it twice', 'pass lr_steps [3]')),
    Case('lr-steps-past-epochs', 'lr_steps=[5, 7] with epochs=4', lambda e: train.train_config(lr_steps=[5, 7], epochs=4, work_dir=None),
         Raises(ValueError, 'lr_steps [5, 7]: epoch 7 is after the end of training (`epochs` 4)', 'pass lr_steps in 0..4, or pass `epochs` 7')),
    Case('lr-decay-repeated', 'lr_decay_at=(.5, .5) with epochs=4 (lr_steps [2, 2], lr × 0.01 at epoch 2: was taken)',
         lambda e: train.train_config(lr_decay_at=(.5, .5), epochs=4, work_dir=None),
         Raises(ValueError, 'lr_decay_at [0.5, 0.5]: the fractions must be increasing, each once', 'pass lr_decay_at [0.5]')),
    Case('lr-steps-preset-short', "epochs=1: the preset's steps [1, 1], at the end (never refused)",
         lambda e: train.train_config(epochs=1, work_dir=None), Works(lambda r, e: r['lr_steps'] == [1, 1])),
    Case('data-factor-huge', '--data_factor 1000000000000 (used to hang)', lambda e: train.train_config(data_factor=10**12, work_dir=None),
         Raises(ValueError, '`data_factor` must be an integer >= 1, at most 1024, got 1000000000000')),
    *[Case(f'{k}-huge', f'--{k} {v}', lambda e, k=k, v=v: train.train_config(**{k: v}, work_dir=None, dataset='voc' if k == 'size' else 'digits'),
           Raises(ValueError, (f'`{k}`' if k in train.FLAGS else k) + ' must be', f'got {v}'))   # a flag as its keyword; a preset value without a flag bare (digits refuse any --size before)
      for k, v in [('bs', 10**7), ('epochs', 10**6), ('size', 10**5), ('neck_dim', 10**8), ('per_class', 10**9), ('reduce', 1e-9),
                   ('seed', 2**40), ('warmup_iters', 10**12)]],
    Case('noise-source-and-dataset', 'stitchup_noise --source FILE --dataset voc (the dataset was ignored)',
         lambda e: noise_cli.stitchup_noise(source=str(save_noisy(e.tmp/'n.pkl', Y3, Y3)), dataset='voc', out=str(e.tmp/'o.pkl')),
         Raises(ValueError, '--dataset voc has no effect with --source', 'n.pkl', then=no_file('o.pkl'))),
    Case('noise-source-and-data-seed', 'stitchup_noise --source FILE --data_seed 3 (the seed was ignored)',
         lambda e: noise_cli.stitchup_noise(source=str(save_noisy(e.tmp/'n.pkl', Y3, Y3)), data_seed=3, out=str(e.tmp/'o.pkl')),
         Raises(ValueError, '--data_seed 3 has no effect with --source', then=no_file('o.pkl'))),
    Case('noise-data-seed-voc', 'stitchup_noise --dataset voc --data_seed 3 (VOC has no seed)',
         lambda e: noise_cli.stitchup_noise(dataset='voc', appendix=str(e.voc_appendix), data_seed=3, out=str(e.tmp/'o.pkl')),
         Raises(ValueError, '--data_seed 3 is not used by --dataset voc', then=no_file('o.pkl'))),
    Case('noise-appendix-missing', 'stitchup_noise --dataset voc with an --appendix folder that is not there',
         lambda e: noise_cli.stitchup_noise(dataset='voc', appendix=str(e.tmp/'nowhere'), out=str(e.tmp/'o.pkl')),
         Raises(FileNotFoundError, 'nowhere: appendix folder not found', 'Expected the official split files', 'data/README.md',
                '(--appendix ', then=no_file('o.pkl'))),
    Case('noise-out-official-name', 'stitchup_noise --out <appendix>/class_freq_0.3noise.pkl (a later run would read it as official)',
         lambda e: noise_cli.stitchup_noise(dataset='digits-small', out=str(e.voc_appendix/'class_freq_0.3noise.pkl')),
         Raises(FileExistsError, 'class_freq_0.3noise.pkl', 'a folder of official split files', 'as its official noisy labels',
                '--noise_file', then=lambda r, e: not (e.voc_appendix/'class_freq_0.3noise.pkl').exists())),
    Case('noise-out-in-appendix', 'stitchup_noise --source <appendix> --out <appendix>/sub/mine.pkl',
         lambda e: noise_cli.stitchup_noise(source=str(e.voc_appendix), out=str(e.voc_appendix/'sub'/'mine.pkl')),
         Raises(FileExistsError, 'mine.pkl', 'a folder of official split files', then=lambda r, e: not (e.voc_appendix/'sub').exists())),
    Case('resnet-weights-offline', 'a ResNet with ImageNet weights, offline (the download fails)',
         lambda e: do(e.monkeypatch.setattr(torch.hub, '_hub_dir', str(e.tmp/'hub')),
                      e.monkeypatch.setattr(torch.hub, 'download_url_to_file', no_network), resnet_body('resnet18')),
         Raises(OSError, 'the ImageNet weights of resnet18', 'could not be downloaded', 'no network',
                'hub/checkpoints/resnet18-f37072fd.pth, where torchvision looks for it', '--no-pretrained')),

    # -- training
    Case('nan-loss', 'an absurd learning rate (1e30): the loss turns NaN', lambda e: e.learner().fit_reference(1, 1e30, warmup_iters=1),
         Raises(FloatingPointError, 'non-finite loss in branch', 'at epoch 0, iteration', 'last good checkpoint is kept'),
         'test_reliability.py::test_nan_loss_stops_the_cli_and_keeps_the_last_checkpoint'),
]


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch, capsys):
    env, ex = Env(tmp_path, monkeypatch, capsys), case.expect
    if isinstance(ex, Elsewhere):
        module, name = case.see.split('::')
        assert name in (Path(__file__).parent/module).read_text(), f'{case.id}: {case.see} is missing'
    elif isinstance(ex, Raises):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')                    # e.g. 'images have no objects' on the way
            with pytest.raises(ex.exc) as e: case.call(env)
        for p in ex.parts: assert str(p) in str(e.value), f'{case.id}: {p!r} not in the message: {e.value}'
        if ex.then: assert ex.then(e.value, env), f'{case.id}: the check after the error failed'
    elif isinstance(ex, Warns):
        with pytest.warns(UserWarning, match=ex.match): r = case.call(env)
        if ex.then: assert ex.then(r, env), f'{case.id}: wrong result'
    else:
        with warnings.catch_warnings():
            warnings.simplefilter('error', UserWarning)         # documented handling, not a skip: no warning
            r = case.call(env)
        if ex.then: assert ex.then(r, env), f'{case.id}: wrong result'


def test_every_case_is_named_once():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert all(c.tried and (c.call or isinstance(c.expect, Elsewhere)) for c in CASES)
