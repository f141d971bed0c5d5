"""Interruptions, non-finite losses and determinism, on real runs.

- A CLI run (Digits-MLT-Noise-0.5, CPU, the QUICK options of tests/conftest.py) is killed with
  SIGKILL mid-epoch once `epoch_1.pth` exists, then resumed with `--resume auto` and killed again
  half-way through writing `epoch_2.pth`, then resumed to the end: the last good checkpoint stays
  loadable, no partial `epoch_N.pth` ever appears, and the final weights and metrics equal those of
  the uninterrupted run (the session's `quick_run`, shared with tests/test_cli.py).
- A learning rate of 1e30 makes the loss NaN: the CLI stops with the epoch, iteration and branch
  named, exits with status 1 and names the last good checkpoint, which stays as it was.
- Two processes with the same seeds (and different hash seeds) compute identical noisy labels,
  samplers, partners, corrections, weights and metrics (`fingerprint`).
"""
import hashlib, json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import BIN, QUICK, run_cli

ROOT = Path(__file__).resolve().parents[1]

# stitchup_train as a script whose torch.save, when the file being written is named $KILL_IN_SAVE*,
# writes half of it, flushes it to disk and kills the process: a crash in the middle of a save.
KILL_IN_SAVE = '''
import io, os, signal, torch
real_save, real_open, names = torch.save, os.open, {}
def os_open(path, *a, **k):                          # atomic_write opens its temporary file with os.open
    fd = real_open(path, *a, **k); names[fd] = str(path); return fd
def save(obj, f, *a, **k):
    path = names.get(f.fileno()) if hasattr(f, 'fileno') else str(f)
    if path and os.path.basename(path).startswith(os.environ['KILL_IN_SAVE']):
        buf = io.BytesIO(); real_save(obj, buf, *a, **k)
        f.write(buf.getvalue()[:buf.tell() // 2]); f.flush(); os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *a, **k)
os.open, torch.save = os_open, save
from stitchup_nb.cli import stitchup_train
stitchup_train()
'''


def start(cmd, work, *extra, env=()):
    return subprocess.Popen([str(c) for c in (*cmd, *QUICK, '--work_dir', work, *extra)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, 'PYTHONUNBUFFERED': '1', **dict(env)})


def wait_until(cond, proc, what, timeout=900):
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f'the run ended (status {proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-2000:]}')
        if time.time() - t0 > timeout:
            proc.kill(); raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.2)


def epochs_logged(work):
    try: return [e['epoch'] for e in json.loads((work/'metrics.json').read_text())['epochs']]
    except (OSError, ValueError): return []


def checkpoint_epoch(path):
    from stitchup_nb.checkpoints import read_checkpoint
    return read_checkpoint(path)['epoch']


@pytest.fixture(scope='module')
def interrupted(tmp_path_factory):
    "One work dir through three processes: killed mid-epoch 2, killed mid-save of epoch_2.pth, resumed to the end."
    work, seen = tmp_path_factory.mktemp('killed'), {}
    a = start([BIN/'stitchup_train'], work, '--resume', 'auto')          # an empty work dir: starts at epoch 0
    wait_until(lambda: epochs_logged(work) == [0], a, 'epoch 1 was saved and logged')
    time.sleep(1)                                   # inside epoch 2 (an epoch of digits-small takes several seconds)
    assert a.poll() is None, 'the run ended before it could be killed'
    a.kill(); out, _ = a.communicate()
    seen['a'] = dict(status=a.returncode, out=out, files=sorted(p.name for p in work.iterdir()),
                     epoch_1=checkpoint_epoch(work/'epoch_1.pth'))

    script = work.parent/'kill_in_save.py'; script.write_text(KILL_IN_SAVE)
    b = start([sys.executable, script], work, '--resume', 'auto', env={'KILL_IN_SAVE': 'epoch_2.pth'})
    out, err = b.communicate(timeout=900)
    seen['b'] = dict(status=b.returncode, out=out, err=err, files=sorted(p.name for p in work.iterdir()),
                     epoch_1=checkpoint_epoch(work/'epoch_1.pth'))

    seen['c'] = dict(out=run_cli(BIN/'stitchup_train', *QUICK, '--work_dir', work, '--resume', 'auto'))
    return work, seen


def test_kill_mid_epoch_leaves_the_last_checkpoint_loadable(interrupted):
    work, seen = interrupted
    a = seen['a']
    assert a['status'] == -signal.SIGKILL
    assert 'no epoch_N.pth' in a['out'] and 'training starts at epoch 0' in a['out']    # --resume auto, empty dir
    assert a['epoch_1'] == 1 and 'epoch_2.pth' not in a['files']
    assert not [f for f in a['files'] if f.endswith('.tmp')]                           # killed between saves


def test_kill_mid_save_leaves_no_partial_checkpoint(interrupted):
    work, seen = interrupted
    b = seen['b']
    assert b['status'] == -signal.SIGKILL, b['err'][-2000:]
    assert f'resuming from {work/"epoch_1.pth"} at epoch 1' in b['out']
    assert 'epoch_2.pth' not in b['files'] and b['epoch_1'] == 1        # the last good checkpoint, whole
    half = [f for f in b['files'] if f.startswith('epoch_2.pth') and f.endswith('.tmp')]
    assert len(half) == 1                                                # the kill did land inside the save


def test_resumed_run_ends_exactly_as_the_uninterrupted_one(interrupted, quick_run):
    (work, seen), (ref, _) = interrupted, quick_run
    assert f'resuming from {work/"epoch_1.pth"} at epoch 1' in seen['c']['out']
    got, want = (json.loads((w/'metrics.json').read_text()) for w in (work, ref))
    assert got['final'] == want['final']
    assert [e['epoch'] for e in got['epochs']] == [0, 1]
    for key in ('mAP', 'head_mAP', 'medium_mAP', 'tail_mAP', 'loss_random', 'loss_balanced', 'corrections'):
        assert [e[key] for e in got['epochs']] == [e[key] for e in want['epochs']], key
    a, b = (torch.load(w/'epoch_2.pth', weights_only=True) for w in (work, ref))
    assert a['model'].keys() == b['model'].keys()
    assert all(torch.equal(a['model'][k], b['model'][k]) for k in a['model'])             # bit for bit
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a['opt']['state'], b['opt']['state']) for k in x
               if isinstance(x[k], torch.Tensor))


def test_nan_loss_stops_the_cli_and_keeps_the_last_checkpoint(quick_run, tmp_path):
    shutil.copy(quick_run[0]/'epoch_1.pth', tmp_path)
    good = (tmp_path/'epoch_1.pth').read_bytes()
    proc = subprocess.run([str(a) for a in (BIN/'stitchup_train', *QUICK, '--work_dir', tmp_path, '--resume', 'auto',
                                            '--lr', '1e30')], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr[-2000:]
    msg = proc.stderr
    assert 'non-finite loss in branch' in msg and 'at epoch 1, iteration' in msg, msg[-2000:]
    assert f'last good checkpoint: {tmp_path/"epoch_1.pth"}' in msg and '--resume auto' in msg
    assert 'Traceback' not in msg                                        # a message, not a stack trace
    assert (tmp_path/'epoch_1.pth').read_bytes() == good and not (tmp_path/'epoch_2.pth').exists()


# ---- determinism ---------------------------------------------------------------------------------
def _sha(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays: h.update(np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a).tobytes())
    return h.hexdigest()[:16]


def fingerprint() -> dict:
    "Hashes of everything a seeded run computes, on a small long-tailed set: noise, samplers, partners, training."
    import warnings
    from stitchup_nb.data import LabelledSet, class_groups
    from stitchup_nb.noise import NOISE_KINDS, add_noise
    from stitchup_nb.loaders import stitch_dls
    from stitchup_nb.colearn import colearner
    from stitchup_nb.metrics import lt_map
    warnings.simplefilter('ignore')
    rng = np.random.default_rng(0)
    y = (rng.random((96, 5)) < [.6, .35, .15, .08, .04]).astype(np.uint8); y[y.sum(1) == 0, 0] = 1
    imgs = rng.integers(0, 256, (96, 16, 16, 3), dtype=np.uint8)
    groups = class_groups(y.sum(0), head=30, tail=10)
    train = LabelledSet(imgs[:64], y[:64], list('abcde'), groups, name='train')
    test = LabelledSet(imgs[64:], y[64:], list('abcde'), groups, name='test')
    out = {f'noise_{k}': _sha(add_noise(train.labels, .5, k, seed=0, **({'neg_rate': .1} if k == 'asym' else {})))
           for k in NOISE_KINDS}
    out['noise_seed1'] = _sha(add_noise(train.labels, .5, seed=1))
    noisy = add_noise(train.labels, .5, seed=0)
    dls = stitch_dls(train, noisy, test, bs=8, seed=0, device='cpu')
    for s, sampler in zip(dls.samplers, dls.train.samplers): out[f'sampler_{s}'] = _sha(sampler.draw(0), sampler.draw(1))
    for epoch in (0, 1):
        dls.train.set_epoch(epoch)
        out[f'batches_and_partners_{epoch}'] = _sha(*(i for b in dls.train.get_idxs() for i in b))
    th = {f'{p}_{g}_{k}': v for p in ('random', 'balance') for g in ('head', 'medium', 'tail')
          for k, v in (('alpha', .55), ('beta', .45))}
    learn = colearner(dls, pretrained=False, thresholds=th, seed=0)
    learn.fit_reference(2, warmup_iters=4)
    log = learn.co_learning.correction_table()
    out['corrections'] = _sha(log[['on', 'off', 'fixed', 'broke']].to_numpy())
    out['n_corrections'] = int(log[['on', 'off']].to_numpy().sum())
    out['weights'] = _sha(*learn.model.state_dict().values())
    out['recorder'] = [[float(v) for v in row] for row in learn.recorder.values]    # before get_preds resets it
    p, t = learn.get_preds()
    out['final_map'] = lt_map(p, t, groups)
    return out


def test_same_seed_same_run_in_two_processes():
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')])}
    code = 'import json; from tests.test_reliability import fingerprint; print("FP" + json.dumps(fingerprint()))'
    procs = [subprocess.Popen([sys.executable, '-c', code], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**env, 'PYTHONHASHSEED': str(h)}) for h in (1, 2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(next(l for l in out.splitlines() if l.startswith('FP'))[2:]))
    a, b = results
    assert a == b, {k: (a[k], b[k]) for k in a if a[k] != b.get(k)}
    assert a['noise_seed1'] != a['noise_flip']          # the fingerprint does see a change of seed
    assert a['n_corrections'] > 0                       # corrections happened, and happened identically
    assert a['batches_and_partners_0'] != a['batches_and_partners_1']


def test_nan_look_every_k_steps_names_the_first_bad_iteration():
    "On a GPU the NaN look is a host sync, so it runs every 20 steps; looked at every 3 steps, the error still names the first bad one."
    import re
    from stitchup_nb.colearn import CoLearning, colearner
    from stitchup_nb.digits import digits_mlt
    from stitchup_nb.loaders import stitch_dls
    train, test = digits_mlt(n_max=200, n_min=2, n_test=300)
    seen = {}
    for every in (1, 3):
        learn = colearner(stitch_dls(train, train.labels, test, bs=8, seed=0, device='cpu'), pretrained=False, seed=0)
        learn.remove_cbs([c for c in learn.cbs if type(c).__name__ == 'ProgressCallback'])
        next(c for c in learn.cbs if isinstance(c, CoLearning)).check_every = every
        with pytest.raises(FloatingPointError) as e: learn.fit_reference(1, 1e30, warmup_iters=1)
        seen[every] = (int(re.search(r'iteration (\d+)', str(e.value)).group(1)), learn.iter)
    (first, stopped_1), (named, stopped_3) = seen[1], seen[3]
    assert first == stopped_1                     # looking every step stops at the first bad step
    assert named == first and first <= stopped_3 < first + 3


def test_ctrl_c_says_where_the_run_stands_and_how_to_continue_it(quick_run, tmp_path):
    """Ctrl-C (SIGINT) in the middle of a resumed epoch: exit status 130 and one line naming the last checkpoint and the
    command that continues the run, no traceback; the checkpoint is untouched and no later one is written."""
    shutil.copy(quick_run[0]/'epoch_1.pth', tmp_path)
    good, log = (tmp_path/'epoch_1.pth').read_bytes(), tmp_path.parent/f'{tmp_path.name}.out'
    with open(log, 'w') as out:
        proc = subprocess.Popen([str(a) for a in (BIN/'stitchup_train', *QUICK, '--work_dir', tmp_path, '--resume', 'auto')],
                                stdout=out, stderr=subprocess.PIPE, text=True, env={**os.environ, 'PYTHONUNBUFFERED': '1'})
        wait_until(lambda: 'resuming from' in log.read_text(), proc, 'the run resumed')
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert f'stitchup_train: interrupted; last checkpoint: {tmp_path/"epoch_1.pth"}; continue with: stitchup_train ' in err, err
    assert err.rstrip().endswith(f'--work_dir {tmp_path} --resume auto') and 'Traceback' not in err, err
    assert (tmp_path/'epoch_1.pth').read_bytes() == good and not (tmp_path/'epoch_2.pth').exists()


# a console script run as its entry point does, with one function of its work replaced by Ctrl-C (KeyboardInterrupt)
CTRL_C_IN = '''
import importlib, sys
module, name, script = sys.argv[1:4]
def ctrl_c(*a, **k): raise KeyboardInterrupt
setattr(importlib.import_module(module), name, ctrl_c)
sys.argv = [script, *sys.argv[4:]]
{script} = getattr(importlib.import_module({where!r}), script)
{script}()
'''

# script: (where it is defined, the module and function Ctrl-C stops, its arguments (run: the quick run's copy, out: a new file))
CTRL_C = {
    'stitchup_test': ('stitchup_nb.cli', 'stitchup_nb.cli', 'evaluate', lambda run, out: [run/'epoch_2.pth', '--out', out]),
    'stitchup_noise': ('stitchup_nb.noise_cli', 'stitchup_nb.noise', 'add_noise', lambda run, out: ['--dataset', 'digits-small', '--out', out]),
    'stitchup_estimate_noise': ('stitchup_nb.noise_estimate', 'stitchup_nb.noise_estimate', 'estimate_training_noise',
                                lambda run, out: ['--dataset', 'digits-small', '--out', out]),
    # an --overwrite run stopped while it builds its data: the earlier run it would replace is untouched
    'stitchup_train': ('stitchup_nb.cli', 'stitchup_nb.train', 'build_learner',
                       lambda run, out: [*QUICK, '--seed', '1', '--work_dir', run, '--overwrite']),
}


@pytest.mark.parametrize('script', list(CTRL_C))
def test_ctrl_c_in_each_console_script_is_one_line_and_writes_nothing(script, quick_run, tmp_path):
    where, module, name, args = CTRL_C[script]
    run, out = tmp_path/'run', tmp_path/'out.json'
    shutil.copytree(quick_run[0], run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != '.lock'}
    driver = tmp_path/'driver.py'; driver.write_text(CTRL_C_IN.format(script=script, where=where))
    proc = subprocess.run([sys.executable, driver, module, name, script, *map(str, args(run, out))], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 130 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    said = (f'stitchup_train: interrupted; this run wrote nothing: {run} still holds the run --overwrite would replace, '
            'untouched; run the same command again to replace it') if script == 'stitchup_train' else \
           f'{script}: interrupted; nothing was written'
    assert proc.stderr.strip().splitlines()[-1] == said, proc.stderr[-2000:]
    assert not out.exists() and {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != '.lock'} == before


def test_ctrl_c_before_a_run_wrote_anything_says_so(tmp_path):
    "Ctrl-C while a fresh run builds its data (or pretrains the Digits CNN): nothing was written, so no --resume auto to offer."
    work, driver = tmp_path/'fresh', tmp_path/'driver.py'
    driver.write_text(CTRL_C_IN.format(script='stitchup_train', where='stitchup_nb.cli'))
    proc = subprocess.run([sys.executable, driver, 'stitchup_nb.train', 'build_learner', 'stitchup_train', *QUICK, '--work_dir',
                           str(work)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 130 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == (f'stitchup_train: interrupted; nothing was written ({work} holds no run); '
                                                    'run the same command again'), proc.stderr[-2000:]
    assert not work.exists() or not any(work.iterdir())
