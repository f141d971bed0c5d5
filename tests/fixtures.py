"""Tiny datasets in the real on-disk formats, for tests and notebook demos (no VOC/COCO download needed).

Each `make_*` writes into a folder you give it (pytest's `tmp_path`) and returns what it wrote,
including the labels a correct reader must compute, worked out here independently of the readers:

- `make_voc(root)`: `root/VOCdevkit/VOC2012` and `VOC2007` (JPEGImages, Annotations/*.xml,
  ImageSets/Main/*.txt), with a difficult-only object in one image.
- `make_coco(root)`: `root/coco/{train2017,val2017}` and `annotations/instances_*.json`, with crowd,
  zero-area, tiny-box and `ignore` annotations and an image without annotations in val.
- `make_appendix(folder, ids, labels, ...)`: official-style split files (Python-2 style pickles:
  `__builtin__` sets of numpy ints, `gt_labels` as a list of int64 arrays; `img_id.pkl` as plain text).

`conftest.py` wraps them as pytest fixtures (`voc`, `coco`, `voc_appendix`, `coco_appendix`).
Import them from other tests as `from tests.fixtures import make_voc, ...`.
"""
import json, pickle
from pathlib import Path

import numpy as np
from PIL import Image

VOC_NAMES = ['aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
             'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
             'tvmonitor']

# The real COCO 2017 category ids (1..90 with gaps) and names, in the file's order.
COCO_CATS = dict(zip(
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33,
     34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
     62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90],
    ['person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat', 'traffic light',
     'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
     'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee',
     'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
     'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
     'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
     'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard',
     'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
     'teddy bear', 'hair drier', 'toothbrush']))


def write_jpeg(path, seed=0, size=(40, 32)):
    "A small random-colour JPEG at `path` (parents created)."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path, quality=90)
    return path


def voc_xml(objects, filename='x.jpg', size=(40, 32)):
    "VOC annotation XML text for `objects`, a list of (class name, difficult) pairs."
    objs = ''.join(f'<object><name>{n}</name><pose>Unspecified</pose><truncated>0</truncated>'
                   f'<difficult>{int(d)}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>'
                   f'<ymax>9</ymax></bndbox></object>' for n, d in objects)
    return (f'<annotation><folder>VOC</folder><filename>{filename}</filename><size><width>{size[0]}</width>'
            f'<height>{size[1]}</height><depth>3</depth></size><segmented>0</segmented>{objs}</annotation>')


def _random_objects(rng, n_classes, names=None):
    "1-3 distinct classes, each with 1-2 objects."
    ks = rng.choice(n_classes, rng.integers(1, 4), replace=False)
    return [(names[k] if names else k) for k in ks for _ in range(rng.integers(1, 3))]


def make_voc(root, n2012:int=12, n2007:int=8, seed:int=0) -> dict:
    """Write `root/VOCdevkit/{VOC2012,VOC2007}`; return {year: {'ids', 'labels' (N×20), 'sets'}} and 'root'.

    VOC2012 ids look like `2008_000001` (ImageSets train/trainval); VOC2007 ids like `000001`
    (ImageSets train/trainval/test, the last quarter being test). In VOC2012 image 0 also holds a
    `difficult` bird that is its only bird: the reference counts difficult objects, so label 1."""
    rng, out = np.random.default_rng(seed), {'root': Path(root)/'VOCdevkit'}
    for year, n in (('2012', n2012), ('2007', n2007)):
        base = out['root']/f'VOC{year}'
        ids = [f'2008_{i+1:06d}' if year == '2012' else f'{i+1:06d}' for i in range(n)]
        labels = np.zeros((n, 20), np.uint8)
        for i, id_ in enumerate(ids):
            objs = [(VOC_NAMES[k], bool(rng.random() < .2)) for k in _random_objects(rng, 20)]
            if year == '2012' and i == 0: objs = [(n_, d) for n_, d in objs if n_ != 'bird'] + [('bird', True)]
            for n_, _ in objs: labels[i, VOC_NAMES.index(n_)] = 1
            write_jpeg(base/'JPEGImages'/f'{id_}.jpg', seed=i)
            (base/'Annotations').mkdir(parents=True, exist_ok=True)
            (base/'Annotations'/f'{id_}.xml').write_text(voc_xml(objs, f'{id_}.jpg'))
        n_test = n // 4 if year == '2007' else 0
        sets = {'trainval': ids[:n - n_test], 'train': ids[:(n - n_test) // 2]}
        if n_test: sets['test'] = ids[n - n_test:]
        (base/'ImageSets'/'Main').mkdir(parents=True, exist_ok=True)
        for s, s_ids in sets.items(): (base/'ImageSets'/'Main'/f'{s}.txt').write_text('\n'.join(s_ids) + '\n')
        out[f'VOC{year}'] = {'ids': ids, 'labels': labels, 'sets': sets}
    return out


def make_coco(root, n_train:int=12, n_val:int=6, seed:int=0) -> dict:
    """Write `root/coco/{train2017,val2017,annotations/instances_*.json}`; return {split: {'ids', 'labels' (N×80), 'crowd_only'}} and 'root'.

    Besides ordinary annotations every split has, on its first image, annotations a reader must NOT
    count (`ignore: 1`, area 0, a 0.5-pixel-wide box) for a class absent otherwise, and on its second
    image a crowd-only class (counted, as the reference does; `crowd_only` = (row, column)). The
    last val image has no annotations at all (its label row is zero)."""
    rng, cat_ids = np.random.default_rng(seed), list(COCO_CATS)
    out, ann_id = {'root': Path(root)/'coco'}, 1
    for split, n, first_id in (('train2017', n_train, 9), ('val2017', n_val, 139)):
        ids = [first_id + 7 * i for i in range(n)]
        labels, anns, images = np.zeros((n, 80), np.uint8), [], []
        for i, img_id in enumerate(ids):
            fname = f'{img_id:012d}.jpg'
            write_jpeg(out['root']/split/fname, seed=img_id)
            images.append({'id': img_id, 'file_name': fname, 'width': 40, 'height': 32})
            ks = [] if (split == 'val2017' and i == n - 1) else _random_objects(rng, 79)
            extra = []
            if i == 0:   # class 79 is never drawn above: only these uncountable annotations mention it
                extra = [dict(ignore=1), dict(area=0.0), dict(bbox=[1, 1, 0.5, 8])]
            if i == 1: extra = [dict(iscrowd=1)]
            for k in ks:
                anns.append(dict(id=ann_id, image_id=img_id, category_id=cat_ids[k], bbox=[1., 2., 8., 6.],
                                 area=48., iscrowd=0, segmentation=[[1, 2, 9, 2, 9, 8]])); ann_id += 1
                labels[i, k] = 1
            for e in extra:
                a = dict(id=ann_id, image_id=img_id, category_id=cat_ids[79], bbox=[1., 2., 8., 6.], area=48.,
                         iscrowd=0, segmentation=[[1, 2, 9, 2, 9, 8]]); a.update(e); anns.append(a); ann_id += 1
            if i == 1: labels[i, 79] = 1
        (out['root']/'annotations').mkdir(parents=True, exist_ok=True)
        cats = [{'id': c, 'name': nm, 'supercategory': 'thing'} for c, nm in COCO_CATS.items()]
        (out['root']/'annotations'/f'instances_{split}.json').write_text(json.dumps(
            {'info': {'description': 'fixture'}, 'images': images, 'annotations': anns, 'categories': cats}))
        out[split] = {'ids': ids, 'labels': labels, 'crowd_only': (1, 79)}
    return out


def py2_pickle(obj, path):
    "Pickle `obj` the way the official (Python 2) files are: protocol 2, `__builtin__` and `numpy.core` names."
    Path(path).write_bytes(pickle.dumps(obj, protocol=2).replace(b'cnumpy._core.', b'cnumpy.core.'))


def freq_dict(labels) -> dict:
    "class_freq.pkl content for N×C `labels`: gt_labels as a list of int64 rows, counts, condition_prob."
    labels = np.asarray(labels, np.int64)
    pos = labels.sum(0)
    with np.errstate(invalid='ignore', divide='ignore'):
        cond = (labels.T @ labels) / pos[:, None]
    return {'gt_labels': list(labels), 'class_freq': pos, 'neg_class_freq': len(labels) - pos, 'condition_prob': cond}


def flip_noise(labels, rate:float, seed:int=0) -> np.ndarray:
    "A crude stand-in for the authors' noise: drop each positive with prob `rate`, add a few false positives."
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    noisy[(labels == 1) & (rng.random(labels.shape) < rate)] = 0
    noisy[(labels == 0) & (rng.random(labels.shape) < rate / 20)] = 1
    return noisy.astype(np.uint8)


def make_appendix(folder, ids, labels, noise_rates=(0.5,), id_file:str='img_id.txt', clean_file:bool=True,
                  seed:int=0) -> Path:
    """Write official-style split files for training `ids` with clean N×C `labels` into `folder`.

    class_split.pkl: the 30% most frequent classes head, the next 30% middle, the rest tail (sets of
    numpy ints); class_freq.pkl (unless `clean_file` is False, as in the authors' own release);
    the id file (plain text one id per line, also when named img_id.pkl); and for each rate a
    class_freq_{rate}noise.pkl with `labels` (noisy), `clean_labels` and counts of the noisy labels."""
    folder = Path(folder); folder.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, np.uint8)
    c = labels.shape[1]
    rank = np.argsort(-labels.sum(0), kind='stable')
    n_head = n_med = round(0.3 * c)
    py2_pickle({'head': set(rank[:n_head]), 'middle': set(rank[n_head:n_head + n_med]),
                'tail': set(rank[n_head + n_med:])}, folder/'class_split.pkl')
    if clean_file: py2_pickle(freq_dict(labels), folder/'class_freq.pkl')
    (folder/id_file).write_text(''.join(f'{i}\n' for i in ids))
    for j, rate in enumerate(noise_rates):
        noisy = flip_noise(labels, rate, seed + j)
        d = freq_dict(noisy)
        py2_pickle({'labels': d['gt_labels'], 'clean_labels': list(labels.astype(np.int64)),
                    'class_freq': d['class_freq'], 'neg_class_freq': d['neg_class_freq']},
                   folder/f'class_freq_{rate}noise.pkl')
    return folder
