"""Run integrity: meaningless options and calls that would change a run's files are refused, by name.

Every case runs a console script as a user would (one driver process runs them all, each in CLI mode, to keep
CI short) against a finished run (a copy of the session's QUICK run) and fresh folders, and asserts:
the exit status is not 0, the message names the option or the file, and no file of the finished run or of
any input changed (SHA-256 before and after). Kill tests for the save sequence are at the end.
"""
import hashlib, json, os, shutil, signal, subprocess, sys, textwrap
from pathlib import Path

import pytest
import torch

from tests.conftest import BIN, QUICK, run_cli
from stitchup_nb.methods import PRESETS

DRIVER = textwrap.dedent('''
    import contextlib, io, json, os, sys, warnings
    warnings.simplefilter('ignore')
    from stitchup_nb.cli import stitchup_test, stitchup_train
    from stitchup_nb.noise_cli import stitchup_noise
    from stitchup_nb.runs import lock_work_dir
    cases_file, answers_file, held = sys.argv[1:4]
    cases, out, held = json.load(open(cases_file)), [], lock_work_dir(held)   # a folder another run holds
    fun = {'stitchup_train': stitchup_train, 'stitchup_test': stitchup_test, 'stitchup_noise': stitchup_noise}
    for prog, args, cwd in cases:
        os.chdir(cwd); sys.argv = [prog, *args]; err, code = io.StringIO(), 0
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try: fun[prog]()
            except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
            except BaseException as e: code = 99; print(f'{type(e).__name__}: {e}', file=err)
        out.append([code, err.getvalue()])
    json.dump(out, open(answers_file, 'w'))
''')


def sha(folder) -> dict:
    "Every file of `folder`, its lock file included: a call refused after it took the lock leaves it naming its holder."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def world(quick_run, tmp_path_factory):
    "A finished run (a copy of the QUICK run), variants of its files, an appendix-like folder, and the driver's answers."
    root = tmp_path_factory.mktemp('integrity')
    done = root/'done'; shutil.copytree(quick_run[0], done)
    best = root/'best'; shutil.copytree(done, best); shutil.copy(done/'epoch_1.pth', best/'epoch_best.pth')
    state = torch.load(done/'epoch_1.pth', weights_only=True)
    (root/'far').mkdir(); torch.save({**state, 'epoch': 10**9}, root/'far'/'epoch_1.pth')
    # a checkpoint that carries no configuration (as before they did): --config is then the run's configuration
    (root/'bare').mkdir(); torch.save({k: v for k, v in torch.load(done/'epoch_2.pth', weights_only=True).items() if k != 'config'},
                                      root/'bare'/'epoch_2.pth')
    (root/'bad.json').write_text('{"dataset": "digits-sm')
    cfg = json.loads((done/'config.json').read_text())
    other = {**cfg, 'dataset': 'digits', 'digits': PRESETS['digits']['digits']}      # the other digits preset (its sizes too)
    (root/'digits.json').write_text(json.dumps(other))        # the other digits preset's groups
    (root/'digits_old.json').write_text(json.dumps({k: v for k, v in other.items() if k != 'labels_sha'}))
    app = root/'app'; app.mkdir()
    # made beside it: stitchup_noise writes no file into such a folder; both names the same command's file (it makes the
    # same bytes each time it runs), so it runs once
    run_cli(BIN/'stitchup_noise', '--dataset', 'digits-small', '--out', root/'class_freq.pkl')
    shutil.copy(root/'class_freq.pkl', app/'class_freq_0.5noise.pkl'); shutil.move(root/'class_freq.pkl', app/'class_freq.pkl')
    (root/'other.json').write_text('{"ensemble": {}}')
    (root/'yours').mkdir(); (root/'yours'/'config.json').write_text('{"mine": 1}')     # a folder of the user's, with a config.json
    fresh = lambda name: str(root/'fresh'/name)
    D, Q = str(done), [a for a in QUICK if a != '--quiet'] + ['--quiet']
    T = ['stitchup_train', *Q]
    cases = [  # (command, what the message must name, the folder it must not leave a run in)
        # ---- a work dir that holds a run or is held, values out of range, checkpoints and configurations that do not match
        (T + ['--work_dir', D], 'already holds a run', None),
        (T + ['--work_dir', str(root/'held')], 'is in use by another run', None),
        (T + ['--work_dir', D, '--resume', 'auto', '--noise_rate', '0.3'], '--noise_rate 0.5 -> 0.3', None),
        (T + ['--work_dir', fresh('arch'), '--arch', 'resnet5O'], '--arch must be one of', fresh('arch')),
        (T + ['--work_dir', D, '--epochs', '0'], '--epochs must be an integer >= 1', None),
        (T + ['--work_dir', fresh('t'), '--t', '1.5'], '--t must be a number in [0, 1], got 1.5', fresh('t')),
        (T + ['--work_dir', fresh('t'), '--t', '-3'], '--t must be a number in [0, 1]', fresh('t')),
        (T + ['--work_dir', fresh('lr'), '--lr', '-0.05'], '--lr must be a number > 0', fresh('lr')),
        (T + ['--work_dir', fresh('ep'), '--epochs', '-1'], '--epochs must be an integer >= 1', fresh('ep')),
        (T + ['--work_dir', fresh('bs'), '--bs', '50000'], '--bs 50000 is more than the 304 training images', fresh('bs')),
        (T + ['--work_dir', fresh('fp8'), '--precision', 'fp8'], '--precision must be auto, fp32, tf32, bf16, fp16', fresh('fp8')),
        (T + ['--work_dir', fresh('nan'), '--t', 'nan'], '--t must be a number in [0, 1], got nan', fresh('nan')),
        (T + ['--work_dir', fresh('bs0'), '--bs', '0'], '--bs must be an integer >= 2', fresh('bs0')),
        (T + ['--work_dir', fresh('bs1'), '--bs', '1'], '--bs must be an integer >= 2', fresh('bs1')),
        (T + ['--work_dir', fresh('df'), '--data_factor', '0'], '--data_factor must be an integer >= 1', fresh('df')),
        (T + ['--work_dir', fresh('asym'), '--noise_kind', 'asym'], '--noise_kind asym needs --noise_neg_rate', fresh('asym')),
        (T + ['--work_dir', fresh('size'), '--size', '224'], '--size is fixed at 64', fresh('size')),
        (T + ['--work_dir', fresh('app'), '--appendix', str(app)], '--appendix is not used by the digits-small preset', fresh('app')),
        (T + ['--work_dir', fresh('mob'), '--arch', 'mobilenet_v2'], '--arch must be one of', fresh('mob')),
        (['stitchup_noise', '--source', str(app/'class_freq.pkl'), '--out', str(app/'class_freq.pkl')], 'is the source', None),
        (['stitchup_noise', '--source', str(app/'class_freq.pkl')], 'class_freq_0.5noise.pkl is in', None),   # default --out: cwd, the folder
        (['stitchup_test', str(done/'epoch_2.pth'), '--out', str(done/'epoch_2.pth')], 'would overwrite an input', None),
        (T + ['--work_dir', str(best), '--resume', 'auto'], 'nothing to resume', None),
        (['stitchup_test', str(done/'epoch_2.pth'), '--config', str(root/'bad.json')], 'bad.json: damaged run configuration', None),
        (T + ['--work_dir', fresh('far'), '--resume', str(root/'far'/'epoch_1.pth')], 'has trained 1000000000 epochs', fresh('far')),
        (['stitchup_test', str(done/'epoch_2.pth'), '--config', str(root/'digits.json'), '--out', str(root/'x.json')],
         "differs from it in dataset 'digits-small' -> 'digits'", None),   # another configuration than the checkpoint carries
        (['stitchup_test', str(root/'bare'/'epoch_2.pth'), '--config', str(root/'digits.json'), '--out', str(root/'x.json')],
         "are not those the run trained on (digest", None),          # its labels' digest (config.json's labels_sha) first
        (['stitchup_test', str(root/'bare'/'epoch_2.pth'), '--config', str(root/'digits_old.json'), '--out', str(root/'x.json')],
         'class groups differ', None),                              # a configuration from before it: the checkpoint's groups
        # ---- more of the same kind
        (T + ['--work_dir', fresh('m'), '--method', 'fulll'], '--method must be one of', fresh('m')),
        (T + ['--work_dir', fresh('d'), '--dataset', 'imagenet'], '--dataset must be one of', fresh('d')),
        (T + ['--work_dir', fresh('b'), '--branches', 'three'], '--branches must be both, random or balanced', fresh('b')),
        (T + ['--work_dir', fresh('s'), '--stitch', 'pixel'], '--stitch must be feature, input or none', fresh('s')),
        (T + ['--work_dir', fresh('l'), '--loss', 'focal'], '--loss must be one of', fresh('l')),
        (T + ['--work_dir', fresh('nr'), '--noise_rate', '1.5'], '--noise_rate must be a number in [0, 1]', fresh('nr')),
        (T + ['--work_dir', fresh('nr2'), '--noise_rate', '-0.1'], '--noise_rate must be a number in [0, 1]', fresh('nr2')),
        (T + ['--work_dir', fresh('nk'), '--noise_kind', 'gauss'], '--noise_kind must be one of', fresh('nk')),
        (T + ['--work_dir', fresh('nn'), '--noise_neg_rate', '0.1'], '--noise_neg_rate is used only by --noise_kind asym', fresh('nn')),
        (T + ['--work_dir', fresh('we'), '--warmup_epoch', '-1'], '--warmup_epoch must be an integer >= 0', fresh('we')),
        (T + ['--work_dir', fresh('wi'), '--warmup_iters', '-5'], '--warmup_iters must be an integer >= 0', fresh('wi')),
        (T + ['--work_dir', fresh('ts'), '--train_stages', '0'], '--train_stages must be an integer in 1..6', fresh('ts')),
        (T + ['--work_dir', fresh('ts9'), '--train_stages', '9'], '--train_stages must be an integer in 1..6', fresh('ts9')),
        (T + ['--work_dir', fresh('dl'), '--db_lambda', '0'], '--db_lambda must be a number > 0', fresh('dl')),
        (T + ['--work_dir', fresh('dm'), '--db_mu', 'nan'], '--db_mu must be a finite number', fresh('dm')),
        (T + ['--work_dir', fresh('tb1'), '--method', 'bce', '--t', '0.3'], "--t 0.3 has no effect: method 'bce' (branches 'random'", fresh('tb1')),
        (T + ['--work_dir', fresh('db1'), '--method', 'bce', '--db_mu', '0.2'], '--db_mu 0.2 has no effect', fresh('db1')),
        (T + ['--work_dir', fresh('ra'), '--random_head_alpha', '1.5'], '--random_head_alpha 1.5 and --random_head_beta 0.0: need 0 <= beta < alpha <= 1', fresh('ra')),
        (T + ['--work_dir', fresh('tb'), '--balance_tail_alpha', '0.2', '--balance_tail_beta', '0.3'],
         '--balance_tail_alpha 0.2 and --balance_tail_beta 0.3: need 0 <= beta < alpha <= 1', fresh('tb')),
        (T + ['--work_dir', fresh('bc'), '--method', 'bce', '--random_head_alpha', '0.7'], '--random_head_alpha has no effect', fresh('bc')),
        (T + ['--work_dir', fresh('nf'), '--noise_file', str(root/'missing.pkl')], '--noise_file must be an existing', fresh('nf')),
        (T + ['--work_dir', fresh('rs'), '--resume', str(root/'missing.pth')], "--resume must be 'auto' or an existing", fresh('rs')),
        (T + ['--work_dir', fresh('rc'), '--resume', str(done/'config.json')], 'config.json: another kind of file', fresh('rc')),
        (T + ['--work_dir', fresh('sd'), '--seed', '-1'], '--seed must be an integer >= 0', fresh('sd')),
        (T + ['--work_dir', fresh('bsf'), '--bs', '1.5'], 'argument --bs: invalid int value', fresh('bsf')),
        (T + ['--work_dir', fresh('epx'), '--epochs', 'abc'], 'argument --epochs: invalid int value', fresh('epx')),
        (T + ['--work_dir', D, '--resume', 'auto', '--seed', '3'], '--seed 0 -> 3', None),
        (T + ['--work_dir', D, '--resume', 'auto', '--method', 'colearn'], 'made by another run', None),
        (T + ['--work_dir', str(root/'yours'), '--resume', 'auto'], 'config.json is not a run configuration of the kit', None),
        (['stitchup_test', str(done/'epoch_2.pth'), '--t', '2'], '--t must be a number in [0, 1]', None),
        (['stitchup_test', str(root/'missing.pth')], 'missing.pth: no such checkpoint', None),
        (['stitchup_test', str(app)], 'is a folder with no epoch_N.pth checkpoint', None),
        (['stitchup_test', D, '--out', str(done/'config.json')], 'would overwrite an input', None),   # a run's folder: its last
        (['stitchup_test', str(done/'epoch_2.pth'), '--out', str(done/'config.json')], 'would overwrite an input', None),
        (['stitchup_test', str(done/'epoch_2.pth'), '--out', str(root/'other.json')], 'other.json holds other contents (no mAP table the kit reads: another file, or a damaged one), so the table above', None),
        (['stitchup_test', str(done/'epoch_2.pth'), '--out', ''], '--out is empty: pass a file path', None),
        (['stitchup_noise', '--dataset', 'digits-small', '--out', str(root/'other.json')], 'other.json exists: pass --overwrite', None),
        (['stitchup_noise', '--noise_rate', '2', '--out', str(root/'n.pkl')], '--noise_rate must be a number in [0, 1], got 2', None),
        (['stitchup_noise', '--noise_kind', 'asym', '--out', str(root/'n.pkl')], '--noise_kind asym needs --noise_neg_rate', None),
        (['stitchup_noise', '--dataset', 'imagenet', '--out', str(root/'n.pkl')], '--dataset must be one of', None),
        # ---- options that would be ignored, or run for ever
        (T + ['--work_dir', fresh('nfr'), '--noise_file', str(app/'class_freq_0.5noise.pkl')],     # QUICK gives --noise_rate 0.5
         '--noise_rate 0.5 has no effect with --noise_file', fresh('nfr')),
        ([a for a in T if a not in ('--noise_rate', '0.5')] + ['--work_dir', fresh('nfk'), '--noise_file', str(app/'class_freq_0.5noise.pkl'),
          '--noise_kind', 'asym', '--noise_neg_rate', '0.1'], '--noise_kind asym has no effect with --noise_file', fresh('nfk')),
        (T + ['--work_dir', D, '--resume', 'auto', '--overwrite'], '--resume auto continues the run in the work dir, --overwrite deletes it', None),
        # ---- --overwrite deletes the old run only once the new one has passed every check (the data's too); no --out is a run's file
        (T + ['--work_dir', D, '--overwrite', '--bs', '4096'], '--bs 4096 is more than the 304 training images', None),
        ([a for a in T if a not in ('--noise_rate', '0.5')] + ['--work_dir', D, '--overwrite', '--noise_file', str(root/'bad.json')],
         'not a readable pickle', None),
        (['stitchup_noise', '--dataset', 'digits-small', '--out', str(done/'epoch_2.pth')], 'would overwrite an input or a file of the run', None),
        (['stitchup_test', str(best/'epoch_2.pth'), '--out', str(done/'test_metrics.json')], f"is the test_metrics.json of the run in {done}", None),
        (T + ['--work_dir', fresh('wu'), '--warmup_epoch', '2'], '--warmup_epoch 2 is not before the end of training (--epochs 2', fresh('wu')),
        (T + ['--work_dir', fresh('dfb'), '--data_factor', '1000000000000'], '--data_factor must be an integer >= 1, at most 1024', fresh('dfb')),
        (T + ['--work_dir', fresh('epb'), '--epochs', '100000000'], '--epochs must be an integer >= 1, at most 10000', fresh('epb')),
        (['stitchup_noise', '--source', str(app/'class_freq.pkl'), '--dataset', 'digits', '--out', str(root/'n.pkl')],
         '--dataset digits has no effect with --source', None),
        (['stitchup_noise', '--source', str(app/'class_freq.pkl'), '--data_seed', '3', '--out', str(root/'n.pkl')],
         '--data_seed 3 has no effect with --source', None),
        (['stitchup_noise', '--dataset', 'digits-small', '--out', str(app/'class_freq_0.3noise.pkl')], 'a folder of official split files', None),
    ]
    cwd = lambda c: str(app) if c[0] == 'stitchup_noise' and '--out' not in c else str(root)   # the default output lands in cwd
    (root/'cases.json').write_text(json.dumps([[c[0], c[1:], cwd(c)] for c, _, _ in cases]))
    (root/'driver.py').write_text(DRIVER)
    watched = [done, best, root/'far', app, root/'other.json', root/'bad.json']
    before = {str(w): sha(w) if w.is_dir() else hashlib.sha256(w.read_bytes()).hexdigest() for w in watched}
    p = subprocess.run([sys.executable, root/'driver.py', root/'cases.json', root/'answers.json', root/'held'],
                       capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    after = {str(w): sha(w) if w.is_dir() else hashlib.sha256(w.read_bytes()).hexdigest() for w in watched}
    return cases, json.loads((root/'answers.json').read_text()), before, after


def test_there_are_enough_cases(world):
    assert len(world[0]) >= 26 + 25


@pytest.mark.parametrize('k', range(100))
def test_each_case_is_refused_by_name_and_changes_nothing(world, k):
    cases, answers, before, after = world
    if k >= len(cases): pytest.skip('no such case')
    (cmd, said, fresh), (code, err) = cases[k], answers[k]
    assert code == 2, f'{" ".join(cmd)}: exit {code}, expected 2 (a refusal)\n{err[-1500:]}'
    assert said in err, f'{" ".join(cmd)}: the message does not say {said!r}:\n{err[-1500:]}'
    assert 'Traceback' not in err
    if fresh: assert not Path(fresh).exists(), f'{fresh} was left behind: {[p.name for p in Path(fresh).glob("*")]}'   # not even its .lock


def test_no_earlier_file_changed(world):
    _, _, before, after = world
    assert before == after


# ---- kill -9 at each point of the save sequence: metrics.json, then the checkpoint that carries its rows -------
# Both points are in epoch 1's save, so one run serves both: right after metrics.json is written, the run copies its
# folder (what a kill there leaves on disk: the folder's files, byte for byte) to SNAPSHOT, then goes on to the
# checkpoint, damages metrics.json and kills itself. Each folder is then resumed by the console script. The run is the
# QUICK one (2 epochs, epoch 1 its last), so each resume must end as the session's uninterrupted QUICK run: after_metrics
# trains epoch 1 again, after_checkpoint trains nothing and scores.
KILL_AFTER = textwrap.dedent('''
    import os, shutil, signal, sys
    import stitchup_nb.checkpoints as checkpoints, stitchup_nb.cli as cli
    from stitchup_nb.checkpoints import Checkpoint
    snapshot, real_write, real_after = os.environ['SNAPSHOT'], checkpoints.write_json, Checkpoint.after_epoch
    def write_json(obj, path):
        real_write(obj, path)
        if os.path.basename(str(path)) == 'metrics.json' and len(obj['epochs']) == 2:     # after_metrics
            shutil.copytree(os.path.dirname(str(path)), snapshot)
    def after_epoch(self):
        real_after(self)
        if self.epoch == 1:                                                               # after_checkpoint
            (self.work_dir/'metrics.json').write_text('{damaged')      # and the metrics file lost as well
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoints.write_json, Checkpoint.after_epoch = write_json, after_epoch
    cli.stitchup_train()
''')


@pytest.fixture(scope='module')
def killed(tmp_path_factory):
    "The work folder as a kill -9 leaves it at each save point: `{point: folder}`."
    root = tmp_path_factory.mktemp('killed')
    work, script = root/'run', root/'kill.py'
    script.write_text(KILL_AFTER)
    p = subprocess.run([sys.executable, script, *QUICK, '--work_dir', work], capture_output=True, text=True,
                       env={**os.environ, 'SNAPSHOT': str(root/'after_metrics')}, timeout=900)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    return {'after_metrics': root/'after_metrics', 'after_checkpoint': work}


@pytest.mark.parametrize('point', ['after_metrics', 'after_checkpoint'])
def test_a_kill_at_any_save_point_keeps_every_epochs_row(point, killed, quick_run):
    work = killed[point]               # resumed where it lies (the snapshot: in another folder, and work_dir is resumable)
    run_cli(BIN/'stitchup_train', *QUICK, '--work_dir', work, '--resume', 'auto')
    m = json.loads((work/'metrics.json').read_text())
    assert [e['epoch'] for e in m['epochs']] == [0, 1] and 'final' in m
    ref = json.loads((quick_run[0]/'metrics.json').read_text())     # the same run, uninterrupted
    assert [e['mAP'] for e in m['epochs']] == [e['mAP'] for e in ref['epochs']] and m['final'] == ref['final']
