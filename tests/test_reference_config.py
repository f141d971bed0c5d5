"""`--dataset voc` and `--dataset coco` against the authors' configuration, value by value.

Every fact below is transcribed from the reference implementation (VamosC/CoLearning-meet-StitchUp, commit
195dc80) with the file and line it comes from. The first test compares each with what `stitchup_train`
resolves the option to (`train_config`, which `stitchup_train` calls first); the second builds the run from
fixture datasets in the real formats and reads the same values back from the objects training uses
(optimiser, schedule, losses, model, samplers, augmentation, correction), so a preset value that the build
ignored would fail here too.
"""
import warnings
import numpy as np
import pytest

from stitchup_nb.train import build_learner, train_config
from stitchup_nb.colearn import THRESHOLDS, ref_schedule
from stitchup_nb.losses import DBFocalLoss
from stitchup_nb.sampling import ClassAwareSampler
from stitchup_nb.augment import BatchAug
from stitchup_nb.fixtures import make_appendix, make_coco, make_voc, py2_pickle

VOC, COCO, SAMPLER = 'configs/voc/LT_dual_resnet50.py', 'configs/coco/LT_dual_resnet50.py', 'mllt/datasets/loader/sampler.py'
AUG = 'mllt/datasets/extra_aug.py (PhotoMetricDistortion)'
# option: (VOC value, COCO value, where the reference sets it)
REFERENCE = {
    'lr':           (0.02, 0.2, f'{VOC}:114 optimizer lr=0.02; {COCO}:118 lr=0.2'),
    'momentum':     (0.9, 0.9, f'{VOC}:114; {COCO}:118 momentum=0.9'),
    'wd':           (1e-4, 1e-4, f'{VOC}:114; {COCO}:118 weight_decay=0.0001'),
    'clip':         (35., 35., f'{VOC}:115; {COCO}:119 grad_clip max_norm=35'),
    'epochs':       (8, 8, f'{VOC}:134; {COCO}:139 total_epochs = 8'),
    'lr_steps':     ([5, 7], [5, 7], f'{VOC}:122; {COCO}:126 lr_config step=[5, 7]'),
    'warmup_iters': (100, 100, f'{VOC}:120; {COCO}:124 warmup_iters=100'),
    'warmup_ratio': (1 / 3, 1 / 3, f'{VOC}:121; {COCO}:125 warmup_ratio=1.0 / 3'),
    'bs':           (32, 32, f'{VOC}:87; {COCO}:89 imgs_per_gpu=32'),
    'data_factor':  (8, 8, f'mlltn/train/train.py:87 default 8 (the VOC config sets none); {COCO}:91 data_factor=8'),
    'per_class':    (3, 3, f'{SAMPLER} ClassAwareSampler(num_samples_cls=3)'),
    'reduce':       (4, 4, f'{SAMPLER} ClassAwareSampler(reduce=4)'),
    'arch':         ('resnet50', 'resnet50', f'{VOC}:6-9 pretrained torchvision://resnet50, ResNet depth=50'),
    'pretrained':   (True, True, f'{VOC}:6 pretrained=torchvision://resnet50'),
    'train_stages': (1, 1, 'tools/train.py:102 freeze_layer (mllt/apis/train.py): only head, neck and layer4 train'),
    'neck_dim':     (256, 256, f'{VOC}:17,22 out_channels=256'),
    'random_dropout': (0., 0., f'{VOC}:18 neck dropout=0'),
    'balanced_dropout': (.5, .5, f'{VOC}:23 neck1 dropout=0.5'),
    'db_gamma':     (2., 2., f'{VOC}:32; {COCO}:32 focal gamma=2'),
    'db_balance':   (2., 2., f'{VOC}:32; {COCO}:32 focal balance_param=2.0'),
    'db_kappa':     (.05, .05, f'{VOC}:33; {COCO}:33 logit_reg init_bias=0.05'),
    'db_lambda':    (5., 2., f'{VOC}:33 neg_scale=5; {COCO}:33 neg_scale=2.0'),
    'db_alpha':     (.1, .1, f'{VOC}:34; {COCO}:34 map_param alpha=0.1'),
    'db_beta':      (10., 10., f'{VOC}:34; {COCO}:34 map_param beta=10.0'),
    'db_mu':        (.3, .2, f'{VOC}:34 map_param gamma=0.3; {COCO}:34 gamma=0.2'),
    't':            (.1, .1, f'{VOC}:66; {COCO}:67 test_cfg alpha=0.1'),
    'warmup_epoch': (0, 0, f'{VOC}:53; {COCO}:54 warmup_epoch=0'),
    'size':         (224, 224, f'{VOC}:96 img_scale=(224, 224); {COCO}:87 img_size=224'),
    'flip':         (.5, .5, f'{VOC}:101; {COCO}:105 flip_ratio=0.5'),
    'brightness':   (32 / 255, 32 / 255, f'{VOC}:77; {COCO}:78 brightness_delta=32 (of 255)'),
    'contrast':     ((.5, 1.5), (.5, 1.5), f'{VOC}:78; {COCO}:79 contrast_range=(0.5, 1.5)'),
    'saturation':   ((.5, 1.5), (.5, 1.5), f'{VOC}:79; {COCO}:80 saturation_range=(0.5, 1.5)'),
    'hue':          (18., 18., f'{VOC}:80; {COCO}:81 hue_delta=18'),
    'min_crop':     (.8, .8, f'{VOC}:83; {COCO}:84 min_crop_size=0.8'),
    'p_color':      (.5, .5, f'{AUG}: each distortion applied if random.randint(2)'),
    'channel_swap': (.5, .5, f'{AUG}: channels permuted if random.randint(2)'),
}
# the README's training commands (the configs' own thresholds, lines 54-65, are all off)
PAPER = {'voc': dict(random_head_alpha=.7, balance_head_alpha=.7, random_tail_beta=.1, balance_tail_beta=.1),
         'coco': dict(random_head_alpha=.9, balance_head_alpha=.9)}
# the mean/std of the configs' img_norm_cfg (VOC line 74, COCO line 75), on the 0-255 scale
NORM = ([123.675, 116.28, 103.53], [58.395, 57.12, 57.375])


@pytest.mark.parametrize('dataset', ['voc', 'coco'])
def test_presets_resolve_to_the_reference(dataset):
    cfg = train_config(dataset=dataset)
    col = 0 if dataset == 'voc' else 1
    wrong = {k: (cfg[k], v[col], v[2]) for k, v in REFERENCE.items()
             if (list(cfg[k]) if isinstance(cfg[k], (list, tuple)) else cfg[k]) != (list(v[col]) if isinstance(v[col], (list, tuple)) else v[col])}
    assert not wrong, f'resolved value, reference value, where: {wrong}'
    assert {k: cfg[k] for k in THRESHOLDS} == {**THRESHOLDS, **PAPER[dataset]}
    assert (cfg['method'], cfg['branches'], cfg['stitch'], cfg['correct']) == ('full', 'both', 'feature', True)


def _voc(tmp_path, training_split=None):
    voc = make_voc(tmp_path, n2012=40)             # one random batch of the reference's 32
    y = voc['VOC2012']
    app = make_appendix(tmp_path/'app', y['ids'], y['labels'], noise_rates=(0.5,))
    if training_split: py2_pickle(training_split, app/'training_split.pkl')
    return dict(data_root=str(voc['root']), appendix=str(app))


def _coco(tmp_path):
    coco = make_coco(tmp_path, n_train=40)
    y = coco['train2017']
    keep = [i for i, l in enumerate(y['labels']) if l.any()]      # images with a label, as COCO-MLT's
    app = make_appendix(tmp_path/'app', [y['ids'][i] for i in keep], y['labels'][keep], id_file='img_id.pkl', clean_file=False)
    return dict(data_root=str(coco['root']), appendix=str(app))


def _build(cfg):
    with warnings.catch_warnings():          # the tiny fixtures leave classes without positives (DB-Focal, sampler warn)
        warnings.simplefilter('ignore')
        return build_learner(cfg)


@pytest.mark.parametrize('dataset', ['voc', 'coco'])
def test_the_built_run_uses_the_reference_values(dataset, tmp_path):
    where = _voc(tmp_path) if dataset == 'voc' else _coco(tmp_path)
    cfg = train_config(dataset=dataset, pretrained=False, work_dir=None, quiet=True, **where)
    learn, train, _ = _build(cfg)
    col = 0 if dataset == 'voc' else 1
    ref = {k: v[col] for k, v in REFERENCE.items()}
    learn.create_opt()
    h = learn.opt.hypers[0]
    assert (h['lr'], h['mom'], h['wd']) == (ref['lr'], ref['momentum'], ref['wd'])
    assert learn.gradient_clip.max_norm == ref['clip']
    sched = ref_schedule(cfg['lr'], cfg['epochs'], 1000, cfg['warmup_iters'], cfg['warmup_ratio'], cfg['lr_steps'])
    assert np.isclose(sched(0), ref['lr'] / 3) and np.isclose(sched(4.9 / 8), ref['lr'])
    assert np.isclose(sched(5.1 / 8), ref['lr'] / 10) and np.isclose(sched(7.1 / 8), ref['lr'] / 100)
    bce, db = learn.loss_func.bases
    assert bce.f.__name__ == 'bce_loss' and isinstance(db, DBFocalLoss)
    assert (db.lam, db.mu, db.alpha, db.beta, db.kappa, db.gamma, db.balance) == tuple(
        ref[k] for k in ('db_lambda', 'db_mu', 'db_alpha', 'db_beta', 'db_kappa', 'db_gamma', 'db_balance'))
    net = learn.model
    assert net.t == ref['t'] and [b.neck.drop.p for b in net.branches.values()] == [ref['random_dropout'], ref['balanced_dropout']]
    assert all(b.neck.fc.out_features == ref['neck_dim'] for b in net.branches.values())
    trained = {n.split('.')[3] if n.split('.')[2] == 'body' else n.split('.')[2] for n, p in net.named_parameters() if p.requires_grad}
    assert trained == {'7', 'neck', 'head'}            # body[7] is layer4 in resnet_body's Sequential
    dl = learn.dls.train
    assert dl.bss == [ref['bs'], ref['bs'] * ref['data_factor']]
    cas = dl.samplers[1]
    assert isinstance(cas, ClassAwareSampler) and cas.per_class == ref['per_class']
    assert cas.n_draws == int(cas.index.n_img.max() * train.labels.shape[1] / ref['reduce'])
    aug = next(t for t in dl.after_batch.fs if isinstance(t, BatchAug))
    for k in ('flip', 'min_crop', 'brightness', 'contrast', 'saturation', 'hue', 'p_color', 'channel_swap'):
        assert getattr(aug, k) == ref[k], k
    norm = dl.after_batch.fs[-1]
    assert np.allclose(norm.mean.flatten() * 255, NORM[0]) and np.allclose(norm.std.flatten() * 255, NORM[1])
    th = learn.co_learning.th
    assert {k: th[k] for k in THRESHOLDS} == {**THRESHOLDS, **PAPER[dataset]}
    assert learn.co_learning.warmup_epoch == ref['warmup_epoch']


def test_thresholds_use_training_split_when_the_appendix_has_it(tmp_path):
    split = {'head': {0, 1, 2, 3, 4, 5, 6}, 'middle': {7, 8, 9, 10, 11, 12}, 'tail': {13, 14, 15, 16, 17, 18, 19}}
    where = _voc(tmp_path, split)
    learn, train, _ = _build(train_config(dataset='voc', pretrained=False, work_dir=None, quiet=True, **where))
    cb = learn.co_learning
    assert cb.groups == {'head': sorted(split['head']), 'medium': sorted(split['middle']), 'tail': sorted(split['tail'])}
    assert cb.groups != train.groups                   # the test-set groups stay class_split.pkl's
    assert learn.run_record.config['threshold_groups'].endswith('training_split.pkl')
    without = _voc(tmp_path/'b')
    learn, train, _ = _build(train_config(dataset='voc', pretrained=False, work_dir=None, quiet=True, **without))
    assert learn.co_learning.groups == train.groups and 'no training_split.pkl' in learn.run_record.config['threshold_groups']
