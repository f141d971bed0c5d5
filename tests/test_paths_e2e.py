"""Every documented path end to end, as a user runs it, the paper's path included.

One parametrised test per path of the README: VOC-MLT and COCO-MLT on their official noisy labels (fixture datasets in the
real formats, `stitchup_nb.fixtures`), Digits-MLT with clean labels and a `--noise_file` written by `stitchup_noise`,
and a peer method on simulated noise (the full method on simulated noise is run by test_cli, test_reliability and
test_widgets). Each path trains one epoch with the console script, scores the checkpoint with
`stitchup_test` (which must reproduce the training table exactly), resumes with `--resume auto --epochs 2` and the same
options (accepted, one more epoch trained; the noise file's path where it moved to), and opens both browsers (`stitchup_nb.widgets`, `stitchup_nb.corrections`) on the run. The run's files
and its summary must say where its labels came from. Sized to run in minutes on one CPU core (each process one thread).
"""
import json, math, subprocess, warnings

import pytest

from stitchup_nb.noise_cli import stitchup_noise
from stitchup_nb.fixtures import make_appendix, make_coco, make_voc
from stitchup_nb.runs import read_scores
from tests.conftest import BIN

def run_cli(*args):
    "Run a console script to completion (one thread: tests/conftest.py); fail with its output unless it exits with status 0. Returns the process."
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    assert p.returncode == 0, f'{args[0]} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}'
    return p

# VOC/COCO: the smallest run that trains the reference's model family: ResNet-18 from scratch, 32 px, one class-aware
# batch per random batch (data_factor 1)
SMALL_RESNET = ['--arch', 'resnet18', '--no-pretrained', '--size', '32', '--data_factor', '1', '--bs', '16']
DIGITS = ['--dataset', 'digits-small']
BOTH = ['random', 'balanced']


def _voc(tmp):
    voc = make_voc(tmp, n2012=40, n2007=24)            # 40 training images, 6 test images
    y = voc['VOC2012']
    app = make_appendix(tmp/'appendix'/'VOCdevkit'/'longtail2012', y['ids'], y['labels'], noise_rates=(0.5,))
    return ['--dataset', 'voc', '--data_root', voc['root'], '--appendix', app, *SMALL_RESNET], app


def _coco(tmp):
    coco = make_coco(tmp, n_train=40, n_val=8)
    y = coco['train2017']
    keep = [i for i, l in enumerate(y['labels']) if l.any()]      # images with a label, as COCO-MLT's
    app = make_appendix(tmp/'appendix'/'coco'/'longtail2017', [y['ids'][i] for i in keep], y['labels'][keep],
                        id_file='img_id.pkl', clean_file=False, noise_rates=(0.5,))
    return ['--dataset', 'coco', '--data_root', coco['root'], '--appendix', app, *SMALL_RESNET], app


def _noise_file(tmp):
    "A noisy-label file for digits-small, written by stitchup_noise (the function: its console script is run below)."
    stitchup_noise(dataset='digits-small', noise_rate=.3, noise_kind='missing', noise_seed=2, out=str(tmp/'mine'/'class_freq_0.3noise.pkl'))
    return tmp/'mine'/'class_freq_0.3noise.pkl'


# path: (its options, what config.json's noise_source and the summary say, its branches)
PATHS = {
    'voc-official':     (lambda tmp: _voc(tmp)[0], lambda tmp: f"the official noisy labels ({_app(tmp)/'class_freq_0.5noise.pkl'})", BOTH),
    'coco-official':    (lambda tmp: _coco(tmp)[0], lambda tmp: f"the official noisy labels ({_app(tmp)/'class_freq_0.5noise.pkl'})", BOTH),
    'digits-clean':     (lambda tmp: [*DIGITS, '--noise_rate', '0'], lambda tmp: 'clean labels', BOTH),
    'digits-noise-file': (lambda tmp: [*DIGITS, '--noise_file', _noise_file(tmp)],
                          lambda tmp: f"the noisy-label file {tmp/'mine'/'class_freq_0.3noise.pkl'}", BOTH),
    # simulated noise with a peer method (the full method on simulated noise: test_cli, test_reliability, test_widgets)
    'digits-simulated-peer': (lambda tmp: [*DIGITS, '--method', 'large_loss', '--noise_rate', '0.5', '--noise_kind', 'cooc',
                                           '--noise_seed', '1'], lambda tmp: 'simulated', ['random']),
}


def _app(tmp):
    return next(p.parent for p in (tmp/'appendix').rglob('class_split.pkl'))


def _same_table(a:dict, b:dict):
    "Two mAP tables as JSON (row -> column -> value) hold the same numbers (NaN equals NaN: a group without test positives)."
    assert a.keys() == b.keys()
    for r in a:
        assert a[r].keys() == b[r].keys()
        for c in a[r]:
            x, y = a[r][c], b[r][c]
            assert (x is None and y is None) or (isinstance(x, float) and math.isnan(x) and math.isnan(y)) or x == y, (r, c, x, y)


@pytest.mark.parametrize('path', list(PATHS))
def test_path_trains_scores_resumes_and_browses(path, tmp_path):
    options, source, branches = PATHS[path]
    base = [*options(tmp_path), '--warmup_iters', '5', '--quiet']
    said = source(tmp_path)
    work = tmp_path/'run'

    # 1. train: the run's files and its summary say where its labels came from
    out = run_cli(BIN/'stitchup_train', *base, '--epochs', '1', '--work_dir', work).stdout
    assert '\r' not in out and '█' not in out, out[:500]          # --quiet, into a pipe: no progress bar (the decoding's either)
    assert '[0, ' not in out                   # --quiet: no per-epoch rows either (fastai's bare logger prints them as lists)
    cfg = json.loads((work/'config.json').read_text())
    assert cfg['noise_source'] == said
    summary = next(l for l in out.splitlines() if ' training images, ' in l)
    assert (said if said != 'simulated' else f"{cfg['noise_kind']} noise {cfg['noise_rate']}") in summary, summary
    if said != 'simulated': assert cfg['noise_kind'] is None and cfg['noise_seed'] is None   # not recorded as if used
    final = json.loads((work/'metrics.json').read_text())['final']

    # 2. score the last checkpoint: the same table, number for number
    run_cli(BIN/'stitchup_test', work/'epoch_1.pth')
    _same_table(read_scores(work/'test_metrics.json')[0], final)

    # 3. resume with the same options, one epoch more: accepted, and it trains epoch 2 only (digits-noise-file: the noise
    #    file moved meanwhile, and the run resumes from where it is now, its labels checked, its files saying so)
    if path == 'digits-noise-file':
        f = tmp_path/'mine'/'class_freq_0.3noise.pkl'; new = tmp_path/'moved.pkl'; f.rename(new)
        base, said = [a if a != f else new for a in base], said.replace(str(f), str(new))
    out = run_cli(BIN/'stitchup_train', *base, '--epochs', '2', '--work_dir', work, '--resume', 'auto').stdout
    assert f"resuming from {work/'epoch_1.pth'} at epoch 1" in out
    assert (work/'epoch_2.pth').is_file()
    # the scores of epoch_1.pth stay, and the summary says they are no longer the run's last checkpoint's
    assert f"{work/'test_metrics.json'} holds the scores of epoch_1.pth, not of epoch_2.pth" in out, out[-800:]
    rows = json.loads((work/'metrics.json').read_text())['epochs']
    assert [r['epoch'] for r in rows] == [0, 1] and [r.get('resumed', False) for r in rows] == [False, True]   # said in the file
    cfg = json.loads((work/'config.json').read_text())
    assert cfg['noise_source'] == said and (path != 'digits-noise-file' or cfg['noise_file'] == str(new))

    # 4. both browsers open the run (on a one-branch method the correction browser says that correction is off)
    from stitchup_nb.widgets import StitchBrowser
    from stitchup_nb.corrections import CorrectionBrowser
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')             # tiny fixtures: classes without positives (DB-Focal, sampler)
        sb = StitchBrowser.from_run(work)
        assert len(sb.candidates()) > 0
        cb = CorrectionBrowser.from_checkpoint(work/'epoch_2.pth')
        assert cb.branches == branches and len(cb.ds) == len(sb.ds)
        if branches == ['random']: assert 'correction is off' in cb.note

    # 5. the data moved since training: the browsers are told where it is now, as stitchup_test is
    if path == 'voc-official':
        moved = tmp_path/'moved'; moved.mkdir()
        for d in ('VOCdevkit', 'appendix'): (tmp_path/d).rename(moved/d)
        with pytest.raises(FileNotFoundError, match="its configuration's data_root"): CorrectionBrowser.from_checkpoint(work)
        app = moved/'appendix'/'VOCdevkit'/'longtail2012'
        with pytest.raises(FileNotFoundError, match="its configuration's appendix.*pass where it is now \\(`appendix`\\)"):   # the run's own
            CorrectionBrowser.from_checkpoint(work, data_root=moved/'VOCdevkit')                             # path, not the caller's
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            cb = CorrectionBrowser.from_checkpoint(work, data_root=moved/'VOCdevkit', appendix=app)
            assert len(cb.ds) == len(sb.ds) and len(StitchBrowser.from_run(work, data_root=moved/'VOCdevkit', appendix=app).ds) == len(sb.ds)


def test_noise_script_on_an_official_appendix(tmp_path):
    "stitchup_noise reads an appendix's clean labels, and will not write its file into that folder (a run would take it as official)."
    _, app = _voc(tmp_path)
    out = run_cli(BIN/'stitchup_noise', '--source', app, '--noise_rate', '0.3', '--out', tmp_path/'noisy'/'class_freq_0.3noise.pkl')
    assert 'flip noise at 0.3 on 40 images' in out.stdout
    with pytest.raises(FileExistsError, match='a folder of official split files'):
        stitchup_noise(source=str(app), noise_rate=.3, out=str(app/'class_freq_0.3noise.pkl'))
    assert not (app/'class_freq_0.3noise.pkl').exists()
