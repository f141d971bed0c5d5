"""The console scripts end to end, as a user runs them: train, test the checkpoint, resume.

Runs on Digits-MLT-Noise-0.5 on the CPU with short schedules (2 epochs), as subprocesses.
"""
import json, subprocess
from pathlib import Path
import pytest

from stitchup_nb.runs import file_stamp, read_scores

from tests.conftest import BIN, QUICK, run_cli as run


@pytest.fixture(scope='module')
def trained(quick_run):
    "The session's uninterrupted QUICK run (tests/conftest.py), shared with tests/test_reliability.py."
    return quick_run


def test_train_writes_config_checkpoints_and_metrics(trained):
    work, out = trained
    assert {p.name for p in work.iterdir()} >= {'config.json', 'epoch_1.pth', 'epoch_2.pth', 'metrics.json'}
    cfg = json.loads((work/'config.json').read_text())
    assert cfg['random_head_alpha'] == 0.7 and cfg['epochs'] == 2 and cfg['arch'] == 'digits_cnn'
    m = json.loads((work/'metrics.json').read_text())
    assert [e['epoch'] for e in m['epochs']] == [0, 1]
    for e in m['epochs']:
        assert {'mAP', 'head_mAP', 'medium_mAP', 'tail_mAP', 'loss_random', 'loss_balanced'} <= set(e)
        assert {r['corrector'] for r in e['corrections']} == {'random', 'balanced'}
    assert set(m['final']) == {'ensemble', 'random', 'balanced'}
    assert 'ensemble' in out and 'tail' in out


def test_checkpoint_loads_weights_only(trained):
    import torch
    state = torch.load(trained[0]/'epoch_2.pth', weights_only=True)
    assert state['epoch'] == 2 and len(state['classes']) == 10 and set(state['groups']) == {'head', 'medium', 'tail'}


def test_stitchup_test_reproduces_the_final_table(trained):
    work, _ = trained
    out = run(BIN/'stitchup_test', work/'epoch_2.pth')
    head, *_, note, ens, wrote = out.strip().splitlines()      # what it scored, the table, what the table is, the file
    assert head.startswith(f"{work/'epoch_2.pth'} (2 epochs trained) on Digits-MLT test, ") and head.endswith('images: mAP (%)'), head
    assert note.startswith('mAP: ') and ens.startswith('ensemble: ') and wrote == f"wrote {work/'test_metrics.json'}", out
    got, said = read_scores(work/'test_metrics.json')                # the table, and what it scores
    assert said == {'checkpoint': str((work/'epoch_2.pth').resolve()), 'epochs': 2, 'config': None,
                    't': json.loads((work/'config.json').read_text())['t'], 'stamp': file_stamp(work/'epoch_2.pth'),
                    'test': {'name': 'Digits-MLT test', 'images': int(head.split(', ')[-1].split()[0])}}, said
    want = json.loads((work/'metrics.json').read_text())['final']
    for mode in want:
        for k in want[mode]: assert got[mode][k] == pytest.approx(want[mode][k], abs=1e-3)


def test_stitchup_test_ensemble_weight(trained):
    work, _ = trained
    out = run(BIN/'stitchup_test', work/'epoch_2.pth', '--t', '1.0', '--out', work/'t1.json')
    got, said = read_scores(work/'t1.json')
    assert said['t'] == 1.0, said
    assert got['ensemble'] == pytest.approx(got['random'], abs=1e-6)      # t = 1: the random branch alone
    assert 'ensemble: the two branches\' logits, 1 × random + 0 × balanced' in out, out    # what the table says it scored


def test_stitchup_test_refuses_a_noise_file_for_a_run_that_trained_on_none(trained):
    "--noise_file says where a run's own noise file is now: a run of simulated noise is refused, naming its labels."
    work, _ = trained
    p = subprocess.run([str(BIN/'stitchup_test'), str(work), '--noise_file', str(work/'n.pkl'), '--out', str(work/'nf.json')],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr[-2000:]
    assert f"--noise_file {work/'n.pkl'}: {work/'epoch_2.pth'} was not trained on a noisy-label file (its labels: flip noise 0.5); " \
           "--noise_file says where the file a run trained on is now: drop it" in p.stderr, p.stderr
    assert not (work/'nf.json').exists()


@pytest.fixture(scope='module')
def resumed(trained, tmp_path_factory):
    """A copy of the session's 2-epoch QUICK run (made with --quiet, which a resume may change) resumed for a third epoch
    as a user does it on a terminal: `--resume PATH` of its last checkpoint, no --work_dir, --lr changed, started in a
    folder of its own. One training for the two tests that read it (the folder it went on in; what the terminal showed):
    (the folder it was started in, the run's folder, what the terminal showed)."""
    import shutil
    cwd = tmp_path_factory.mktemp('resumed'); work = cwd/'mine'; shutil.copytree(trained[0], work)
    rc, out = _run_on_a_terminal(BIN/'stitchup_train', *QUICK_TTY, '--epochs', '3', '--resume', work/'epoch_2.pth',
                                 '--lr', '0.03', cwd=cwd)
    assert rc == 0, out[-3000:]
    return cwd, work, out


def test_resume_from_a_checkpoint_goes_on_in_its_own_folder(resumed):
    "--resume PATH without --work_dir continues that run where it is, not in work_dirs/run (the flag's default)."
    cwd, work, out = resumed
    assert f"resuming from {work/'epoch_2.pth'} at epoch 2" in out, out[-3000:]
    assert (work/'epoch_3.pth').is_file() and len(json.loads((work/'metrics.json').read_text())['epochs']) == 3
    assert not (cwd/'work_dirs').exists()


def test_resume_into_the_default_work_dir_named_goes_there(trained, tmp_path):
    "--work_dir work_dirs/run, named, is where a --resume PATH goes on, though it is the flag's default: named, not absent."
    import shutil
    work = tmp_path/'mine'; shutil.copytree(trained[0], work)
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    p = subprocess.run([str(BIN/'stitchup_train'), *QUICK, '--epochs', '3', '--resume', str(work/'epoch_2.pth'),
                        '--work_dir', 'work_dirs/run'],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"resuming from {work/'epoch_2.pth'} (into work_dirs/run) at epoch 2" in p.stdout, p.stdout
    assert json.loads((tmp_path/'work_dirs'/'run'/'config.json').read_text())['work_dir'] == 'work_dirs/run'
    assert (tmp_path/'work_dirs'/'run'/'epoch_3.pth').is_file()
    assert {p.name: p.read_bytes() for p in work.iterdir()} == before          # the checkpoint's run untouched


# resuming (from epoch_1.pth, and after kills mid-epoch and mid-save) is tests/test_reliability.py's: bit for bit


def test_noise_script_writes_the_authors_format(tmp_path):
    out = run(BIN/'stitchup_noise', '--dataset', 'digits', '--noise_rate', '0.3', '--noise_kind', 'cooc', '--out', tmp_path/'n.pkl')
    from stitchup_nb.noise import load_noisy
    noisy, clean = load_noisy(tmp_path/'n.pkl')
    assert noisy.shape == clean.shape and (noisy != clean).any()
    assert 'head' in out and 'tail' in out


def test_what_one_cpu_process_cannot_do_is_said_once_and_recorded_as_done(tmp_path):
    """fastai's mixed precision is CUDA's: on a CPU it would switch autocast off and train in fp32 while config.json said
    bf16. The run says so once, in the flag's words, and records the fp32 it computed in. `--sync_bn` in one process
    (no launcher) has nothing to synchronise: said once too."""
    p = subprocess.run([BIN/'stitchup_train', '--dataset', 'digits-small', '--epochs', '1', '--branches', 'random', '--stitch',
                        'none', '--precision', 'bf16', '--sync_bn', '--quiet', '--work_dir', tmp_path/'w'], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stderr.count('--precision bf16 needs a CUDA device') == 1 and 'Disabling autocast' not in p.stderr, p.stderr
    assert p.stderr.count('--sync_bn has no effect in one process') == 1, p.stderr
    assert json.loads((tmp_path/'w'/'config.json').read_text())['precision'] == 'fp32'


def test_the_demo_trains_the_method_with_correction(tmp_path):
    """`make demo`'s command, shortened (digits-small, 3 epochs: at 2, one label changes, measured; at 3, 110), with its
    output going to a pipe as into a log file: it trains the full method, its correctors change labels, and it prints
    plain lines and a complete summary."""
    import re
    from pathlib import Path
    demo = next(l for l in (Path(__file__).parents[1]/'Makefile').read_text().splitlines() if 'stitchup_train' in l)
    args = demo.split('stitchup_train', 1)[1].split()
    args[args.index('--work_dir') + 1] = str(tmp_path/'demo')
    out = run(BIN/'stitchup_train', *args, '--dataset', 'digits-small', '--epochs', '3', '--warmup_iters', '10')
    cfg = json.loads((tmp_path/'demo'/'config.json').read_text())
    assert cfg['method'] == 'full' and cfg['correct'] and cfg['random_head_alpha'] < 1
    changed = [int(n) for n in re.findall(r'(\d+) labels switched on, (\d+) off', out) for n in n]
    assert sum(changed) > 0, out
    lines = out.splitlines()
    assert max(map(len, lines)) <= 200 and '\r' not in out            # no progress-bar redraws in a log
    assert [l.split(':')[0] for l in lines if l.startswith('epoch ')] == [f'epoch {k}/3' for k in range(1, 4)]
    assert 'mAP (%) on the test set:' in out and 'method full' in out and 'flip noise 0.5' in out
    for f in ('config.json', 'epoch_3.pth', 'metrics.json'): assert f in out, f
    assert 'test_metrics.json' not in out                       # stitchup_test has not written one
    assert 'Warning' not in out                                     # the torch.jit FutureWarning is silenced


def test_every_flag_has_help_text():
    from fastcore.script import anno_parser
    from stitchup_nb.cli import stitchup_test, stitchup_train
    from stitchup_nb.noise_cli import stitchup_noise
    for f in (stitchup_train, stitchup_test, stitchup_noise):
        p = anno_parser(f.__wrapped__)
        bare = [a.option_strings or a.dest for a in p._actions if a.dest != 'help' and not (a.help or '').strip()]
        assert not bare, f'{f.__name__}: no help text for {bare}'
    helps = {a.dest: a.help for a in anno_parser(stitchup_train.__wrapped__)._actions}
    assert 'off' in helps['correct'] and 'paper' in helps['random_head_alpha'] and 'cooc' in helps['noise_kind']


def test_the_script_and_the_pipeline_read_the_same_declarations():
    """`stitchup_train`'s flags (names, order, defaults, types, help) are the declared options' (`stitchup_nb.config`), and
    the pipeline's `FLAGS` and `train_config` defaults are the same: the two cannot drift."""
    import inspect
    from stitchup_nb.cli import stitchup_train
    from stitchup_nb.config import OPTIONS, flag_defaults
    from stitchup_nb.train import FLAGS
    params = inspect.signature(stitchup_train.__wrapped__).parameters
    assert list(params) == list(flag_defaults()) == list(FLAGS) == [k for k, o in OPTIONS.items() if o.flag]
    drift = {k: (p.default, flag_defaults()[k]) for k, p in params.items()
             if p.default != flag_defaults()[k] or type(p.default) is not type(flag_defaults()[k])}
    assert not drift, f'stitchup_train default vs the declarations: {drift}'
    bad = {k: p.annotation._declared for k, p in params.items()    # what the flag was made from, before argparse reads it
           if not p.annotation._declared[0].endswith(OPTIONS[k].help) or p.annotation._declared[1] is not OPTIONS[k].type}
    assert not bad, f'help or type not from the declaration: {bad}'


def test_the_names_the_scripts_bind_are_the_ones_declared():
    "`cli._STACK` (imported on first use) binds exactly the names its `TYPE_CHECKING` block declares for readers and linters."
    import ast
    import stitchup_nb.cli as cli
    tree = ast.parse(Path(cli.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, 'id', None) == 'TYPE_CHECKING')
    declared = {(n.module, a.name) for n in block.body for a in n.names}
    assert declared == {(m, k) for m, names in cli._STACK.items() for k in names.split()}
    cli._stack()
    assert all(hasattr(cli, k) for _, k in declared)


def test_help_answers_without_the_training_stack():
    "`stitchup_train --help` imports neither torch nor fastai, lists every method and says what the --no- flags do."
    import sys
    from stitchup_nb.methods import METHODS
    p = subprocess.run([sys.executable, '-X', 'importtime', str(BIN/'stitchup_train'), '--help'], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    imported = {l.split('|')[-1].strip() for l in p.stderr.splitlines() if l.startswith('import time:')}
    heavy = sorted(m for m in imported if m.split('.')[0] in ('torch', 'fastai', 'numpy', 'pandas'))
    assert not heavy, f'--help imported {heavy[:5]}'
    said = ' '.join(p.stdout.split())                     # argparse wraps lines between words
    missing = [m for m in METHODS if f' {m},' not in said and f' {m} ' not in said]
    assert not missing, f'--method help lacks {missing}: {said[:3000]}'
    for flag in ('--no-correct', '--no-pretrained'):
        line = said.split(flag, 2)[2].split(' --')[0]         # the flag's help, after its mention in the usage line
        assert 'without this flag' in line and '(default: True)' not in line, line
    assert 'VOCdevkit folder itself' in said and 'VOC2012/' in said
    for flag, value in (('--arch', 'digits_cnn for digits, digits-small; resnet50 for voc, coco'), ('--size', '64 for digits'),
                        ('--bs', '32')):     # a default the preset gives is said with its value (it said only "the preset's")
        line = said.split(f'{flag} ', 2)[2].split(' --')[0]
        assert f"(default: the preset's{': ' if ' ' in value else ', '}{value}" in line, line


def test_a_help_that_names_its_default_says_it_once():
    "`stitchup_noise --help`: --noise_kind's declared help says '(default flip)'; fastcore's '(default: flip)' repeated it."
    p = subprocess.run([str(BIN/'stitchup_noise'), '--help'], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    line = ' '.join(p.stdout.split()).split('--noise_kind ', 2)[2].split(' --')[0]
    assert line.count('default') == 1 and '(default flip)' in line, line


def test_the_on_off_flags_help_says_no_default_false():
    """Each console script's flags that are off unless given (`--overwrite`, `--deterministic`, `--per_class`, ...) end with
    what they turn on, not fastcore's '(default: False)', which says nothing beside such a flag (`switch_flag`)."""
    from fastcore.script import anno_parser
    from stitchup_nb.cli import stitchup_test, stitchup_train
    from stitchup_nb.noise_cli import stitchup_noise
    from stitchup_nb.noise_estimate import stitchup_estimate_noise
    switches = {}
    for f in (stitchup_train, stitchup_test, stitchup_noise, stitchup_estimate_noise):
        p = anno_parser(f.__wrapped__)
        said = [l for l in ' '.join(p.format_help().split()).split(' --') if '(default: False)' in l or '(default: True)' in l]
        assert not said, f'{f.__name__}: {said}'
        switches[f.__name__] = {a.dest: a.help for a in p._actions if a.const is True and a.dest not in ('help', 'pdb')}
    assert switches['stitchup_train']['overwrite'].startswith('replace the run already in work_dir'), switches
    assert switches['stitchup_test'] == {'overwrite': 'replace an --out file that holds other numbers'}
    assert switches['stitchup_noise'] == {'overwrite': 'replace an existing --out file (never the source itself)'}
    assert switches['stitchup_estimate_noise'] == {'per_class': 'print the estimate of each class too',
                                                   'overwrite': 'replace an existing --out file'}


def _run_on_a_terminal(*args, cwd=None):
    "Run a console script with a pseudo-terminal as its stdout and stderr (as a user's shell), in `cwd`; its exit status and output."
    import os, pty, select, subprocess
    main, sub = pty.openpty()
    p = subprocess.Popen([str(a) for a in args], stdout=sub, stderr=sub, stdin=subprocess.DEVNULL, cwd=cwd)
    os.close(sub)
    out = b''
    while True:
        try: ready = select.select([main], [], [], 1)[0]
        except OSError: break
        if ready:
            try: chunk = os.read(main, 65536)
            except OSError: break                 # the child closed the terminal
            if not chunk: break
            out += chunk
        elif p.poll() is not None: break
    p.wait(); os.close(main)
    return p.returncode, out.decode(errors='replace')


def test_resume_on_a_terminal_numbers_epochs_as_the_checkpoints(resumed):
    """On a terminal, a resumed run's bars read `Epoch 3/3`; the options the resume sets anew are said and recorded in
    the first resumed row of metrics.json; no fastai table (empty rows for skipped epochs, epochs from 0,
    six decimals) is printed, and the summary's correction counts say they cover the epochs trained before the resume.
    The run resumed is the module's `resumed`: the session's QUICK run, --epochs 3, --lr 0.03."""
    import re
    _, work, out = resumed
    said = next(l for l in out.splitlines() if l.startswith('resuming from'))
    assert said.startswith(f"resuming from {work/'epoch_2.pth'} at epoch 2, --epochs 2 -> 3, ") and '--lr 0.02 -> 0.03' in said, said
    assert ', lr_steps ' in said and '--lr_steps' not in said, said     # an option with no flag is named without one
    rows = json.loads((work/'metrics.json').read_text())['epochs']          # what the resume set anew, on record
    assert not any('resumed_with' in r for r in rows[:2]) and rows[2]['resumed_with']['epochs'] == [2, 3] \
        and rows[2]['resumed_with']['lr'] == [0.02, 0.03], rows
    assert set(re.findall(r'Epoch \d+/\d+', out)) == {'Epoch 3/3'}, set(re.findall(r'Epoch \d+/\d+', out))
    lines = [l.strip() for l in out.replace('\r', '\n').split('\n') if l.strip()]
    assert 'valid_loss' not in out and not any(re.fullmatch(r'\d+ .*', l) for l in lines), out[-3000:]   # no fastai table
    assert [l.split(':')[0] for l in lines if re.match(r'epoch \d+/\d+: ', l)] == ['epoch 3/3']
    assert 'corrected per batch draw: by ' in out
    assert 'label correction, counted per batch draw, epochs 1-3:' in out, out[-3000:]
    assert 'epochs 1-2 trained before this run resumed' in out and 'counted per image instead: ' in out


QUICK_TTY = ['--dataset', 'digits-small', '--noise_rate', '0.5', '--warmup_iters', '10']


def test_stitchup_test_refuses_a_checkpoint_written_again_while_scored(trained, tmp_path, monkeypatch):
    "A run that writes the checkpoint again while it is scored (a --overwrite run into its folder): nothing is written."
    import os, shutil
    from stitchup_nb import cli
    work = tmp_path/'run'; shutil.copytree(trained[0], work)
    (work/'test_metrics.json').unlink(missing_ok=True)
    cli._stack()
    real = cli.evaluate
    def rewritten_meanwhile(learn, groups):
        os.utime(work/'epoch_2.pth', ns=(10**9, 10**9))        # another run writes epoch_2.pth while this one scores it
        return real(learn, groups)
    monkeypatch.setattr(cli, 'evaluate', rewritten_meanwhile)
    with pytest.raises(FileExistsError, match=r'epoch_2.pth was written again while it was scored \(a run writing .*\), so the table above'):
        cli.stitchup_test(str(work))
    assert not (work/'test_metrics.json').exists()


@pytest.mark.parametrize('script,args,said', [
    ('stitchup_train', ['--method', 'confident_learnig'], "got 'confident_learnig' (did you mean 'confident_learning'?)"),
    ('stitchup_train', ['--precision', 'bf61'], "got 'bf61' (did you mean 'bf16'?)"),
    ('stitchup_noise', ['--dataset', 'digts'], "got 'digts' (did you mean 'digits'?)")])
def test_a_misspelt_name_is_answered_with_the_one_it_meant(script, args, said, tmp_path):
    "A value that is one of a list (a method, a preset, a precision) misspelt is refused naming the nearest, as a misspelt flag is."
    p = subprocess.run([str(BIN/script), *args, '--work_dir' if script == 'stitchup_train' else '--out', str(tmp_path/'x')],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and said in p.stderr, p.stderr[-2000:]
    assert not (tmp_path/'x').exists()


def test_console_scripts_take_either_spelling_and_name_a_misspelt_flag():
    "--noise-rate is --noise_rate, --no_pretrained is --no-pretrained; a misspelt flag gets the one it meant, not argparse's usage."
    p = subprocess.run([str(BIN/'stitchup_train'), '--methd', 'full'], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip() == \
        'stitchup_train: unknown flag --methd (did you mean --method?); stitchup_train --help lists them', p.stderr
    p = subprocess.run([str(BIN/'stitchup_train'), '--dataset', 'digits-small', '--noise-rate', '2', '--no_pretrained'],
                       capture_output=True, text=True)      # spelt with dashes, taken: the value is then refused by its rule
    assert p.returncode == 2 and p.stderr.startswith('stitchup_train: --noise_rate must be'), p.stderr
    p = subprocess.run([str(BIN/'stitchup_test'), 'x', '--ovewrite'], capture_output=True, text=True)
    assert p.returncode == 2 and 'unknown flag --ovewrite (did you mean --overwrite?)' in p.stderr, p.stderr


ARGUMENT_ERRORS = [     # what argparse refuses, in one line: its words and where the flags are listed, not its usage
    ('stitchup_train', ['--epochs', 'two'], "argument --epochs: invalid int value: 'two'"),
    ('stitchup_train', ['--noise=0.3'], 'ambiguous option: --noise=0.3 could match --noise_file, --noise_rate, '),
    ('stitchup_test', [], 'the following arguments are required: checkpoint'),
    ('stitchup_test', ['run', '--t', 'half'], "argument --t: invalid float value: 'half'"),
    ('stitchup_noise', ['--noise_rate', 'x'], "argument --noise_rate: invalid float value: 'x'"),
    ('stitchup_noise', ['--noise_'], 'ambiguous option: --noise_ could match --noise_rate, '),
    ('stitchup_estimate_noise', ['--folds', '2.5'], "argument --folds: invalid int value: '2.5'"),
    ('stitchup_estimate_noise', ['--dataset'], 'argument --dataset: expected one argument'),
]


def test_every_console_script_says_an_argument_error_in_one_line():
    "A value of the wrong type, an ambiguous abbreviation, a missing argument: one line on stderr and exit status 2."
    procs = [(prog, said, subprocess.Popen([str(BIN/prog), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for prog, args, said in ARGUMENT_ERRORS]
    for prog, said, p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 2 and not out and len(err.splitlines()) == 1, (prog, said, err)
        assert err.startswith(f'{prog}: {said}') and err.endswith(f'; {prog} --help lists the flags\n'), err


def _reader_stops(*args, cwd=None):
    "Run a console script whose stdout's reader has stopped before it prints (`| head` that exited): (status, stderr)."
    p = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    p.stdout.close()                # no reader: the script's first write to stdout finds a broken pipe
    err = p.stderr.read(); p.wait(timeout=600)
    return p.returncode, err


def test_a_reader_that_stops_early_loses_nothing(trained, tmp_path):
    "`stitchup_test RUN | head -1`: the scores are written, and the script ends quietly with status 141 (128 + SIGPIPE)."
    import shutil
    work = tmp_path/'run'; shutil.copytree(trained[0], work)
    (work/'test_metrics.json').unlink(missing_ok=True)
    assert _reader_stops(BIN/'stitchup_test', work) == (141, '')
    assert read_scores(work/'test_metrics.json')[1]['epochs'] == 2
    code, err = _reader_stops(BIN/'stitchup_noise', '--dataset', 'digits-small', '--out', tmp_path/'n.pkl')
    assert (code, err) == (141, '') and (tmp_path/'n.pkl').is_file()


def test_a_preset_that_is_no_dict_leaves_the_help_and_is_refused_by_name(tmp_path):
    "A setup script's preset that is no dict of options: --help printed (it raised AttributeError), naming it; a run refuses it."
    import os
    (tmp_path/'slip.py').write_text("from stitchup_nb.methods import PRESETS\nPRESETS['mine'] = 'digits'\n")
    env = {**os.environ, 'STITCHUP_SETUP': str(tmp_path/'slip.py')}
    p = subprocess.run([str(BIN/'stitchup_train'), '--help'], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    said = ' '.join(p.stdout.split())
    assert "coco (MS-COCO 2017, your copy: --data_root); refused, no dict of options: PRESETS['mine'])" in said, said[:3000]
    assert "(default: the preset's: 64 for digits" in said
    p = subprocess.run([str(BIN/'stitchup_train'), '--dataset', 'mine', '--work_dir', str(tmp_path/'run')],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode != 0 and "PRESETS['mine'] is a str, not a dict of options" in p.stderr, p.stderr[-3000:]
    assert not (tmp_path/'run').exists()


def test_a_misspelt_preset_key_leaves_the_help_and_is_refused_by_name(tmp_path):
    "A setup script's preset with `epoch` for `epochs`: --help still prints, listing it; a run refuses it (it trained 8 epochs, recording `epoch`)."
    import os
    (tmp_path/'typo.py').write_text("from stitchup_nb.methods import PRESETS\nPRESETS['mine'] = dict(PRESETS['digits-small'], epoch=3)\n")
    env = {**os.environ, 'STITCHUP_SETUP': str(tmp_path/'typo.py')}
    p = subprocess.run([str(BIN/'stitchup_train'), '--help'], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and "a setup script's: mine" in ' '.join(p.stdout.split()), (p.stdout[:3000], p.stderr[-3000:])
    p = subprocess.run([str(BIN/'stitchup_train'), '--dataset', 'mine', '--work_dir', str(tmp_path/'run')],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode != 0 and "PRESETS['mine'] sets 'epoch', which is neither an option (did you mean 'epochs'?)" in p.stderr, p.stderr[-3000:]
    assert not (tmp_path/'run').exists()


def test_help_says_where_the_decoded_images_are_kept_and_how_to_free_the_room():
    "The voc and coco presets keep about 1 GB of decoded images a set; --help said neither where nor how to free it."
    p = subprocess.run([str(BIN/'stitchup_train'), '--help'], capture_output=True, text=True, timeout=120)
    said = ' '.join(p.stdout.split())
    assert p.returncode == 0 and 'keep their images decoded in decoded/ of $STITCHUP_CACHE' in said, said[:1500]
    assert '~/.cache/stitchup_nb), about 1 GB a set at 224 px: delete that folder to free the room' in said, said[:1500]
