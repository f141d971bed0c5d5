"""Shared pytest fixtures: tiny VOC / COCO / appendix folders in the real formats (see tests/fixtures.py)."""
import pytest

from tests.fixtures import make_appendix, make_coco, make_voc


@pytest.fixture
def voc(tmp_path):
    "A fresh tiny VOCdevkit (VOC2007 + VOC2012); see `make_voc` for what it returns."
    return make_voc(tmp_path)


@pytest.fixture
def coco(tmp_path):
    "A fresh tiny COCO 2017 layout (train2017, val2017, annotations); see `make_coco`."
    return make_coco(tmp_path)


@pytest.fixture
def voc_appendix(voc, tmp_path):
    "VOC-MLT-style appendix for the first 10 VOC2012 fixture images (clean file + 0.5 and 0.7 noise)."
    y = voc['VOC2012']
    return make_appendix(tmp_path/'appendix'/'VOCdevkit'/'longtail2012', y['ids'][:10], y['labels'][:10],
                         noise_rates=(0.5, 0.7))


@pytest.fixture
def coco_appendix(coco, tmp_path):
    "COCO-MLT-style appendix for 10 train2017 fixture images, id file `img_id.pkl` as plain text, no clean file."
    y = coco['train2017']
    return make_appendix(tmp_path/'appendix'/'coco'/'longtail2017', y['ids'][1:11], y['labels'][1:11],
                         id_file='img_id.pkl', clean_file=False)
