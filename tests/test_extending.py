"""A maintainer adds a peer method, a noise kind or a data set in a few files each.

Each test copies the package to a scratch folder, makes the edit a maintainer would make there (in the modules, which
nbdev generates one-to-one from the notebooks: `peers.py` is `nbs/07g_peers.ipynb`, and so on), counts the files that
differ from the checkout's, and runs the extension end to end in a fresh interpreter on the copy:

- a peer (label smoothing): its class in `peers` (`@register_peer`), and in `methods` its `METHODS` entry with its
  hyper-parameter's declaration beside it (`option(..., by='peer')`): 2 files; a 1-epoch digits-small run trains with
  its loss, `--ls_eps` is a flag of `stitchup_train` (listed by `--help`, with the method), and another method refuses it;
- a noise kind (`shift`: a hit positive moves to the next class): one function in `noise` (`@noise_kind`): 1 file;
  `add_noise` draws it and `stitchup_train --noise_kind shift` trains on it;
- a data set (random images): its loader in `sources` (`@register_source`) and its preset in `methods`: 2 files;
  `load_benchmark` reads it, the configuration checks know what it reads, a 1-epoch run trains on it;
- a backbone (a two-block CNN): its builder in the user's own script (`@register_backbone`): no file of the package;
  `train_config(arch=...)` takes it, checks `train_stages` against its stages, and a 1-epoch run trains on it.
- a loss with a hyper-parameter of its own (`LOSSES` and `option(..., by='loss')`), in the user's script: no file of the
  package; the run records the value and the factory gets it, other runs refuse it;
- a method of the user's script (`STITCHUP_SETUP`): `stitchup_train` trains it and `stitchup_test` scores it; without the
  variable the refusal says how.
"""
import filecmp, json, os, shutil, subprocess, sys, textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT/'stitchup_nb'


def _scratch(tmp_path:Path, edits:dict) -> list:
    "Copy the package to `tmp_path`, apply `edits` ({module: [(anchor, text inserted after it)]}); the files that now differ."
    dst = tmp_path/'stitchup_nb'
    shutil.copytree(PKG, dst, ignore=shutil.ignore_patterns('__pycache__'))
    for mod, inserts in edits.items():
        p = dst/mod
        s = p.read_text()
        for anchor, text in inserts:
            assert s.count(anchor) == 1, (mod, anchor)
            s = s.replace(anchor, anchor + text)
        p.write_text(s)
    changed = []
    def walk(c:filecmp.dircmp, rel:str):
        changed.extend(f'{rel}{f}' for f in c.diff_files + c.left_only + c.right_only if f != '__pycache__')
        for name, sub in c.subdirs.items(): walk(sub, f'{rel}{name}/')
    walk(filecmp.dircmp(PKG, dst, ignore=['__pycache__']), 'stitchup_nb/')
    return sorted(changed)


def _run(tmp_path:Path, code:str) -> dict:
    "Run `code` on the scratch copy in a fresh interpreter (the generated caches shared with the checkout); what it prints last, as JSON."
    env = {**os.environ, 'PYTHONPATH': str(tmp_path), 'STITCHUP_CACHE': os.environ.get('STITCHUP_CACHE', str(ROOT/'data'/'cache')),
           'OMP_NUM_THREADS': '1'}
    head = f"import stitchup_nb, json\nassert stitchup_nb.__file__.startswith({str(tmp_path)!r}), stitchup_nb.__file__\n"
    r = subprocess.run([sys.executable, '-c', head + textwrap.dedent(code)], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


PEER = '''

class _SmoothedBCE(nn.Module):
    "BCE against targets smoothed towards 1/2 by `eps`."
    def __init__(self, eps:float=.1): super().__init__(); self.eps = eps
    def forward(self, logits, targets, reduction='mean'):
        return bce_loss(logits, targets * (1 - self.eps) + self.eps / 2, reduction=reduction)

@register_peer('label_smoothing')
class LabelSmoothingPeer(Peer):
    "Label smoothing: BCE against smoothed targets in place of each branch's loss."
    label, paper = 'BCE+label smoothing', 'Szegedy et al., CVPR 2016'
    def loss(self): return _SmoothedBCE(self.cfg['ls_eps'])
'''
PEER_METHOD = '''
    'label_smoothing': dict(label='BCE+label smoothing', branches='random', stitch='none', peer='label_smoothing',
                            fixed=('branches', 'loss', 'stitch')),'''
PEER_OPTION = '''
_peer_option('ls_eps', .1, maybe(number(lambda v: 0 <= v <= .5, 'a number in [0, 0.5]')), 'label smoothing: targets move this '
             'far towards 1/2', 'label_smoothing')'''


def test_a_new_peer_takes_two_files(tmp_path):
    changed = _scratch(tmp_path, {'peers.py': [("cbs(self): return [BranchCutMix(self.cfg['cutmix_alpha'])]", PEER)],
                                  'methods.py': [('METHODS = {', PEER_METHOD),
                                                 ("\"07i_confident, the default)\", 'confident_learning', type=str)", PEER_OPTION)]})
    assert changed == ['stitchup_nb/methods.py', 'stitchup_nb/peers.py'], changed      # 2 files
    got = _run(tmp_path, '''
        import math
        from stitchup_nb.train import run_training, train_config
        from stitchup_nb.methods import method_of
        cfg = train_config(dataset='digits-small', method='label_smoothing', epochs=1, warmup_iters=5, pretrained=False,
                           quiet=True, work_dir=None)
        learn, table = run_training(cfg)
        from stitchup_nb.train import FLAGS
        from fastcore.script import anno_parser
        from stitchup_nb.cli import stitchup_train
        said = ' '.join(anno_parser(stitchup_train.__wrapped__).format_help().split())
        try: train_config(method='bce', ls_eps=.2); refused = ''
        except ValueError as e: refused = str(e)
        print(json.dumps(dict(flag='ls_eps' in FLAGS, refused=refused, help=['--ls_eps' in said, 'label_smoothing (BCE+label smoothing)' in said], loss=type(learn.loss_func.bases[0]).__name__, peer=type(learn.run_record.peer).__name__,
                              eps=learn.run_record.peer.cfg['ls_eps'], method=method_of('BCE+label smoothing'),
                              mAP=float(table.loc['random', 'total']), finite=math.isfinite(learn.recorder.values[-1][0]))))
    ''')
    assert got['loss'] == '_SmoothedBCE' and got['peer'] == 'LabelSmoothingPeer' and got['eps'] == .1, got
    assert got['method'] == 'label_smoothing' and got['finite'] and 0 < got['mAP'] <= 100, got
    assert got['help'] == [True, True], got
    assert got['flag'] and "`ls_eps` has no effect: it is a hyper-parameter of method 'label_smoothing'" in got['refused'], got   # Python's words


NOISE = '''

@noise_kind('shift')
def shift_noise(pos, hit, rng) -> np.ndarray:
    "Each hit positive moves to the next class (c+1 mod C) where that class is a negative of its image; else it stays."
    to = np.roll(hit, 1, axis=1) & ~pos
    return (pos & ~np.roll(to, -1, axis=1)) | to
'''


def test_a_new_noise_kind_takes_one_file(tmp_path):
    changed = _scratch(tmp_path, {'noise.py': [('if cooc is None else cooc, rng)\n    return (pos & ~moved) | target\n', NOISE)]})
    assert changed == ['stitchup_nb/noise.py'], changed                                 # 1 file
    got = _run(tmp_path, '''
        import contextlib, io
        import numpy as np
        from stitchup_nb.noise import NOISE_KINDS, add_noise
        from stitchup_nb.cli import stitchup_train
        y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]], np.uint8)
        n = add_noise(y, 1, 'shift')
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            stitchup_train(dataset='digits-small', noise_kind='shift', noise_rate=.3, epochs=1, warmup_iters=5,
                           pretrained=False, work_dir=None)
        print(json.dumps(dict(kinds=list(NOISE_KINDS), noisy=n.tolist(), said=out.getvalue())))
    ''')
    assert got['kinds'][-1] == 'shift', got['kinds']
    assert got['noisy'] == [[0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 0, 0]], got['noisy']     # image 2: class 1's next is free, class 0's is not
    assert 'shift noise 0.3' in got['said'] and 'mAP (%) on the test set' in got['said'], got['said'][-2000:]


SOURCE = '''

import numpy as np
from stitchup_nb.data import LabelledSet, class_groups

@register_source('random_images', seeded=True, fixed_size=True, preset_keys=('n_classes',))   # it reads preset['n_classes']
def load_random_images(preset:dict, data_root=None, appendix=None, size=None, data_seed:int=0) -> tuple:
    "Random 64-pixel images with random labels of `preset['n_classes']` classes, drawn from `data_seed`: `(train, test, None)`."
    rng, c = np.random.default_rng(data_seed), preset['n_classes']
    def draw(n, name):
        y = (rng.random((n, c)) < .3).astype(np.uint8); y[y.sum(1) == 0, 0] = 1
        return LabelledSet(rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8), y, [f'c{i}' for i in range(c)],
                           class_groups(y.sum(0)), name=name)
    return draw(96, 'random images train'), draw(48, 'random images test'), None
'''
SOURCE_PRESET = '''
    'random-images': dict(_digits, source='random_images', n_classes=6),'''


def test_a_new_data_set_takes_two_files(tmp_path):
    changed = _scratch(tmp_path, {'sources.py': [('return _official(coco_mlt, preset, data_root, appendix, size, on_bad)\n', SOURCE)],
                                  'methods.py': [('\nPRESETS = {', SOURCE_PRESET)]})
    assert changed == ['stitchup_nb/methods.py', 'stitchup_nb/sources.py'], changed     # 2 files
    got = _run(tmp_path, '''
        import math
        from stitchup_nb.methods import PRESETS
        from stitchup_nb.resolve import resolve
        from stitchup_nb.labels import load_benchmark
        from stitchup_nb.train import run_training, train_config
        train, test, app = load_benchmark('random-images', data_seed=1)
        errors = {}
        for k, v in dict(appendix='data/appendix', size=224).items():
            try: resolve('random-images', **{k: v})
            except ValueError as e: errors[k] = str(e)
        PRESETS['nowhere'] = dict(PRESETS['random-images'], source='nowhere')
        try: load_benchmark('nowhere')
        except ValueError as e: errors['source'] = str(e)
        learn, table = run_training(train_config(dataset='random-images', method='bce', epochs=1, warmup_iters=2,
                                                 pretrained=False, quiet=True, work_dir=None))
        print(json.dumps(dict(n=[len(train), len(test)], classes=train.classes, app=app, seed=train_config(dataset='random-images', data_seed=2)['data_seed'],
                              errors=errors, mAP=float(table.loc['random', 'total']))))
    ''')
    assert got['n'] == [96, 48] and got['classes'] == ['c0', 'c1', 'c2', 'c3', 'c4', 'c5'] and got['app'] is None, got
    assert got['seed'] == 2 and 0 < got['mAP'] <= 100, got                                  # drawn from a seed: data_seed kept
    assert 'reads no files' in got['errors']['appendix'] and '`size` is fixed at 64' in got['errors']['size'], got['errors']
    assert "data source 'nowhere' is not registered" in got['errors']['source'], got['errors']


BACKBONE = '''
import torch.nn as nn
from stitchup_nb.backbones import register_backbone

@register_backbone('tiny_cnn', stages=2, train_stages=2, has_weights=False)
def tiny_cnn(pretrained:bool, train_stages:int, seed:int) -> tuple:
    "Two conv blocks, 3 -> 8 -> 16 channels, no pretrained weights: `(body, n_features, frozen_modules)`."
    body = nn.Sequential(nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU()),
                         nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU()))
    return body, 16, list(body)[:2 - train_stages]
'''


def test_a_new_backbone_takes_no_file(tmp_path):
    changed = _scratch(tmp_path, {})
    assert changed == [], changed                                                       # 0 files: the user's script registers it
    got = _run(tmp_path, BACKBONE + textwrap.dedent('''
        import math
        from stitchup_nb.config import BACKBONES
        from stitchup_nb.models import create_model
        from stitchup_nb.train import run_training, train_config
        cfg = train_config(dataset='digits-small', method='bce', arch='tiny_cnn', train_stages=1, epochs=1, warmup_iters=2,
                           pretrained=False, quiet=True, work_dir=None)
        learn, table = run_training(cfg)
        branch = learn.model.branches['random']
        errors = {}
        for k, f in dict(stages=lambda: train_config(dataset='digits-small', arch='tiny_cnn', train_stages=3, pretrained=False),
                         weights=lambda: train_config(dataset='digits-small', arch='tiny_cnn', train_stages=2),
                         unknown=lambda: train_config(arch='resnet5'), model=lambda: create_model('resnet5', 3),
                         taken=lambda: register_backbone('tiny_cnn', stages=2)(lambda pretrained, train_stages, seed: None)).items():
            try: f(); errors[k] = ''
            except ValueError as e: errors[k] = str(e)
        print(json.dumps(dict(arch=cfg['arch'], names=list(BACKBONES), features=branch.neck.fc.in_features,
                              frozen=len(branch.frozen), norm_eval=branch.norm_eval, errors=errors,
                              mAP=float(table.loc['random', 'total']), finite=math.isfinite(learn.recorder.values[-1][0]))))
    '''))
    assert got['arch'] == 'tiny_cnn' and got['names'][-1] == 'tiny_cnn' and 'digits_cnn' in got['names'], got
    assert got['features'] == 16 and got['frozen'] == 1 and got['norm_eval'] is False, got      # train_stages=1: the first block frozen
    assert got['finite'] and 0 < got['mAP'] <= 100, got
    e = got['errors']
    assert '`train_stages` must be an integer in 1..2 for tiny_cnn, got 3' in e['stages'], e
    assert "got 'resnet5'" in e['unknown'] and 'digits_cnn, tiny_cnn, the registered backbones' in e['unknown'], e
    assert '@register_backbone' in e['unknown'], e
    assert "backbone 'resnet5' is not registered" in e['model'] and "@register_backbone('resnet5', stages=...)" in e['model'], e
    assert "backbone 'tiny_cnn' is registered already (by tiny_cnn)" in e['taken'], e
    assert "backbone 'tiny_cnn' has no pretrained weights" in e['weights'] and 'pass `pretrained=False`' in e['weights'], e


def test_a_setup_script_reaches_the_console_scripts(tmp_path):
    "STITCHUP_SETUP names the user's script: stitchup_train and stitchup_test know its method; without it, the refusal says how."
    from tests.conftest import BIN
    (tmp_path/'myvariant.py').write_text(textwrap.dedent('''
        from stitchup_nb.methods import METHODS
        METHODS['full_soft'] = dict(METHODS['full'], label='Full, soft', random_head_alpha=.6, balance_head_alpha=.6)
    '''))
    env = {**os.environ, 'STITCHUP_CACHE': os.environ.get('STITCHUP_CACHE', str(ROOT/'data'/'cache')), 'OMP_NUM_THREADS': '1'}
    run = lambda *a, **e: subprocess.run([str(x) for x in a], cwd=tmp_path, env={**env, **e}, capture_output=True, text=True, timeout=900)
    r = run(BIN/'stitchup_train', '--method', 'full_soft', '--dataset', 'digits-small', '--epochs', '1', '--warmup_iters', '2',
            '--quiet', '--work_dir', 'soft', STITCHUP_SETUP='myvariant.py')
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = json.loads((tmp_path/'soft'/'config.json').read_text())
    assert (cfg['method'], cfg['random_head_alpha'], cfg['balance_head_alpha']) == ('full_soft', .6, .6), cfg
    r = run(BIN/'stitchup_test', 'soft', STITCHUP_SETUP='myvariant.py')
    assert r.returncode == 0 and (tmp_path/'soft'/'test_metrics.json').is_file(), r.stderr[-3000:]
    r = run(BIN/'stitchup_test', 'soft', '--out', 'again.json')          # without the script: refused, saying how
    assert r.returncode != 0 and "got 'full_soft'" in r.stderr and 'STITCHUP_SETUP=script.py' in r.stderr, r.stderr[-2000:]
    for args in (['soft', '--out', 'again.json'], ['--help']):   # a setup entry naming no file: one line, even for --help
        r = run(BIN/'stitchup_test', *args, STITCHUP_SETUP='nothere.py')
        assert r.returncode == 2 and r.stderr.startswith('stitchup_test: STITCHUP_SETUP: nothere.py is not a file') \
            and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
    (tmp_path/'broken.py').write_text('1/0\n')                       # an error inside the script: its traceback, into it
    r = run(BIN/'stitchup_test', '--help', STITCHUP_SETUP='broken.py')
    assert r.returncode == 1 and 'Traceback' in r.stderr and 'broken.py that STITCHUP_SETUP names' in r.stderr, r.stderr[-2000:]


def test_a_methods_lr_steps_are_read_and_checked(tmp_path):
    """A setup script's method that sets lr_steps: stitchup_train reads them (they were replaced by lr_decay_at's steps of the
    epochs, without a word) and refuses them in one line naming the method's entry, out of order or after the end of
    training, before anything is written."""
    from tests.conftest import BIN
    (tmp_path/'steps.py').write_text(textwrap.dedent('''
        from stitchup_nb.methods import METHODS
        METHODS['full_shuffled'] = dict(METHODS['full'], label='Full, shuffled steps', lr_steps=[2, 1])
        METHODS['full_long'] = dict(METHODS['full'], label='Full, steps of a longer run', lr_steps=[1, 3])
    '''))
    env = {**os.environ, 'STITCHUP_CACHE': os.environ.get('STITCHUP_CACHE', str(ROOT/'data'/'cache')), 'OMP_NUM_THREADS': '1',
           'STITCHUP_SETUP': 'steps.py'}
    for method, said in [('full_shuffled', "lr_steps [2, 1] of method 'full_shuffled': the epochs must be increasing, each once "
                                           "(lr × 0.1 at each, so a repeated epoch lowers it twice there); give method "
                                           "'full_shuffled' (stitchup_nb.methods.METHODS) lr_steps [1, 2]"),
                         ('full_long', "lr_steps [1, 3] of method 'full_long': epoch 3 is after the end of training (--epochs 2): "
                                       "a schedule for a longer run; give method 'full_long' (stitchup_nb.methods.METHODS) "
                                       "lr_steps in 0..2, or pass --epochs 3")]:
        r = subprocess.run([str(BIN/'stitchup_train'), '--method', method, '--dataset', 'digits-small', '--epochs', '2',
                            '--quiet', '--work_dir', 'run'], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and r.stderr.strip() == f'stitchup_train: {said}', r.stderr[-2000:]
        assert not (tmp_path/'run').exists()


LOSS = '''
from functools import partial
from stitchup_nb.colearn import LOSSES
from stitchup_nb.config import FRACTION, option
from stitchup_nb.losses import bce_loss

def smoothed_bce(logits, targets, eps=.1, reduction='mean'):
    return bce_loss(logits, targets * (1 - eps) + eps / 2, reduction=reduction)

LOSSES['bce_ls'] = lambda labels, ls_eps=.1, **db: partial(smoothed_bce, eps=ls_eps)
option('ls_eps', .1, FRACTION, 'label smoothing of bce_ls', type=float, by='loss', loss='bce_ls', owner='myloss')
# an option named as a DB-Focal constant (gamma): the loss's own value reaches its factory, over DB-Focal's
LOSSES['bce_g'] = lambda labels, gamma=2., **db: partial(smoothed_bce, eps=gamma / 10)
option('gamma', 2., FRACTION, 'a loss option named as a DB-Focal constant', type=float, by='loss', loss='bce_g', owner='myloss')
'''


def test_a_loss_with_its_own_option_takes_no_file(tmp_path):
    "A loss of the user's script with a hyper-parameter (by='loss'): the run records it and the factory gets it; other runs refuse it."
    from tests.conftest import BIN
    assert _scratch(tmp_path, {}) == []                                                  # 0 files: the user's script registers it
    (tmp_path/'myloss.py').write_text(LOSS)
    got = _run(tmp_path, '''
        import myloss
        from stitchup_nb.train import build_learner, train_config
        cfg = dict(dataset='digits-small', pretrained=False, quiet=True, work_dir=None)
        learn, *_ = build_learner(train_config(method='bce', loss='bce_ls', ls_eps=.3, **cfg))
        g, *_ = build_learner(train_config(method='bce', loss='bce_g', gamma=1., **cfg))
        default = train_config(method='full', loss='bce_ls,dbfocal', **cfg)
        try: train_config(method='full', ls_eps=.3, **cfg); refused = ''
        except ValueError as e: refused = str(e)
        print(json.dumps(dict(g=g.loss_func.bases[0].f.keywords['eps'], eps=learn.loss_func.bases[0].f.keywords['eps'], recorded=learn.run_record.config['ls_eps'],
                              default=default['ls_eps'], unused=train_config(method='full', **cfg)['ls_eps'], refused=refused)))
    ''')
    assert (got['eps'], got['recorded'], got['default'], got['unused'], got['g']) == (.3, .3, .1, None, .1), got
    assert "`ls_eps` 0.3 has no effect: it is a hyper-parameter of the loss 'bce_ls'" in got['refused'], got
    r = subprocess.run([str(BIN/'stitchup_train'), '--help'], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'STITCHUP_SETUP': 'myloss.py'})
    assert r.returncode == 0 and '--ls_eps' in r.stdout and '--loss bce_ls: label smoothing of bce_ls' in ' '.join(r.stdout.split()), r.stdout[-2000:]


def test_a_peer_registered_after_the_tables_are_imported_is_on_the_leaderboard():
    "A notebook imports the tables first and registers its peer after: the grids and the leaderboard still show its rows."
    import pandas as pd
    from stitchup_nb.grids import ORDER, PEER_ROWS, MAIN_ROWS
    from stitchup_nb.leaderboard import LEADERBOARD, leaderboard
    from stitchup_nb.methods import METHODS
    METHODS['_late_ls'] = dict(label='Late LS', branches='random', stitch='none', peer='asl', fixed=('branches', 'loss', 'stitch'))
    MAIN_ROWS['Late row'] = dict(method='bce')
    try:
        row = lambda m, s, v: dict(method=m, kind='flip', rate=.5, seed=s, total=v + s, head=v, medium=v, tail=v, extra='{}')
        res = pd.DataFrame([row('BCE', s, 50.) for s in range(3)])
        peers = pd.DataFrame([row('Late LS', s, 52.) for s in range(3)])
        levels, vs_bce, _ = leaderboard(res, peers)
        assert PEER_ROWS['Late LS'] == {'method': '_late_ls'} and 'Late LS' in LEADERBOARD and 'Late row' in ORDER
        assert list(levels.index) == ['BCE', 'Late LS'] and 'Late LS' in vs_bce.index, (levels, vs_bce)
    finally: del METHODS['_late_ls'], MAIN_ROWS['Late row']
    assert 'Late LS' not in PEER_ROWS and 'Late LS' not in LEADERBOARD


def test_a_row_may_set_a_noise_option_declared_after_the_experiments_are_imported(monkeypatch):
    "A notebook imports the experiments, then declares its noise kind's own option: a row's `opts` may set it (the data it trains on)."
    from stitchup_nb import experiments
    from stitchup_nb.config import OPTIONS, FRACTION, option
    from stitchup_nb.noise import NOISE_KINDS, noise_kind
    option('_late_tilt', None, FRACTION, "a late kind's own option", type=float, by='noise', owner='late')
    noise_kind('_late_kind', takes=('_late_tilt',))(lambda pos, rate, rng, _late_tilt=None: pos)
    class Reached(Exception): pass
    def reached(opts, *a): raise Reached(opts)
    monkeypatch.setattr(experiments, 'benchmark_config', reached)       # past the row's check of its opts: what it trains is not asked here
    try:
        with pytest.raises(Reached) as got:
            experiments.one_run('BCE', {'method': 'bce', '_late_tilt': .2}, '_late_kind', .3, 0, 1)
        assert got.value.args[0] == {'method': 'bce', '_late_tilt': .2}
        with pytest.raises(ValueError, match=r"opts sets 't' 0\.3, which changes what the method does: pass it in extra="):
            experiments.one_run('BCE', {'method': 'bce', 't': .3}, '_late_kind', .3, 0, 1)
    finally: OPTIONS.pop('_late_tilt', None); NOISE_KINDS.pop('_late_kind', None)
