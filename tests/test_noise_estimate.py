"""`stitchup_estimate_noise` as a user runs it: the estimate with the truth beside it on simulated noise, the per-class CSV,
and one line on stderr (exit status 2) for a bad option or file."""
import json, subprocess, sys, textwrap
import pandas as pd
import pytest

from tests.conftest import BIN, run_cli as run

SCRIPT = BIN/'stitchup_estimate_noise'


def fails(*args):
    "Run the script expecting a refusal: its stderr (one line), after checking the exit status and that no traceback shows."
    p = subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 2, p.stdout + p.stderr
    assert 'Traceback' not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    return p.stderr


def test_estimate_on_simulated_noise_says_the_truth_and_writes_the_csv(tmp_path):
    out = run(SCRIPT, '--dataset', 'digits-small', '--noise_rate', '0.3', '--noise_kind', 'flip', '--out', tmp_path/'est.csv')
    assert 'noise rate (positives missing)' in out and 'the truth' in out and 'Which method at which noise' in out
    df = pd.read_csv(tmp_path/'est.csv', header=[0, 1], index_col=0)
    assert list(df.index)[-1] == 'all' and len(df) == 11
    est, true = df.loc['all', ('estimate', 'missing_rate')], df.loc['all', ('true', 'missing_rate')]
    assert abs(true - .3) < .01 and abs(est - true) < .1, (est, true)


def test_the_labels_as_given_have_no_truth_to_show():
    out = run(SCRIPT, '--dataset', 'digits-small', '--folds', '3', '--per_class')
    assert 'the truth' not in out and 'missing_rate' in out


BAD = [
    (['--dataset', 'vocx'], '--dataset must be one of digits'),
    (['--dataset', 'digits-small', '--noise_rate', '1.5'], '--noise_rate must be in [0, 1], got 1.5'),
    (['--dataset', 'digits-small', '--noise_file', 'no/such.pkl'], '--noise_file no/such.pkl: no such file'),
    (['--dataset', 'digits-small', '--noise_rate', '0.3', '--noise_file', 'README.md'], '--noise_rate 0.3 has no effect with --noise_file README.md'),
    (['--dataset', 'digits-small', '--noise_rate', '0', '--noise_kind', 'asym', '--noise_neg_rate', '0.1'],
     '--noise_neg_rate 0.1 has no effect with --noise_rate 0: the labels stay clean'),     # as stitchup_train
    (['--dataset', 'digits-small', '--folds', '1'], '--folds must be an integer >= 2, got 1'),
    (['--dataset', 'digits-small', '--folds', '400'], '--folds must be in 2..304'),
    # every option by its flag and its declared rule, and none that the data set would ignore
    (['--dataset', 'digits-small', '--data_seed', '-1'], '--data_seed must be an integer >= 0'),
    (['--dataset', 'digits-small', '--noise_rate', '0.5', '--noise_seed', '99999999999'], '--noise_seed must be an integer >= 0, at most'),
    (['--dataset', 'digits-small', '--noise_rate', '0.5', '--noise_neg_rate', '0.3'], '--noise_neg_rate is used only by --noise_kind asym'),
    (['--dataset', 'digits-small', '--data_root', '/nope'], '--data_root is not used by --dataset digits-small, which reads no files'),
    (['--dataset', 'digits-small', '--out', '/proc/x.csv'], 'does not exist or cannot be written'),
    # --out is checked before the probes run: never a folder, an input, a run's file or (without --overwrite) a file that exists
    (['--dataset', 'digits-small', '--out', 'tests'], '--out tests is a folder: pass a file path in it'),
    (['--dataset', 'digits-small', '--noise_file', 'README.md', '--out', 'README.md'], 'would overwrite an input'),
    (['--dataset', 'digits-small', '--out', 'work/metrics.json'], 'would overwrite an input or a file of the run'),
    (['--dataset', 'digits-small', '--out', 'README.md'], '--out README.md exists: pass --overwrite to replace it'),
]

# the console script's body (`sys.exit(stitchup_estimate_noise())` at the top level of a script, so fastcore parses
# sys.argv and is_cli holds) once per case in one process, one start-up of torch for all; each case's stderr is read
# from file descriptor 2 itself, and the warnings registries are emptied before it, so a warning shows as in a fresh process
DRIVER = textwrap.dedent('''
    import contextlib, io, json, os, sys, tempfile, traceback, warnings
    from stitchup_nb.noise_estimate import stitchup_estimate_noise
    cases, answers, script, out = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], []
    for args in cases:
        for m in list(sys.modules.values()):
            reg = getattr(m, '__warningregistry__', None)
            if isinstance(reg, dict): reg.clear()
        warnings.onceregistry.clear(); getattr(warnings, '_filters_mutated', lambda: None)()
        sys.argv, code = [script, *args], 0
        sys.stderr.flush(); saved = os.dup(2)
        with tempfile.TemporaryFile() as f, contextlib.redirect_stdout(io.StringIO()):
            os.dup2(f.fileno(), 2)
            try: sys.exit(stitchup_estimate_noise())
            except SystemExit as e: code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
            except BaseException: code = 1; traceback.print_exc()
            sys.stderr.flush(); os.dup2(saved, 2); os.close(saved)
            f.seek(0); err = f.read().decode()
        out.append([code, err])
    json.dump(out, open(answers, 'w'))
''')


@pytest.fixture(scope='module')
def refusals(tmp_path_factory):
    "`[(exit status, stderr)]` of each case of BAD, run by DRIVER."
    root = tmp_path_factory.mktemp('refusals')
    (root/'cases.json').write_text(json.dumps([args for args, _ in BAD]))
    (root/'driver.py').write_text(DRIVER)
    p = subprocess.run([sys.executable, root/'driver.py', root/'cases.json', root/'answers.json', SCRIPT], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads((root/'answers.json').read_text())


@pytest.mark.parametrize('k', range(len(BAD)), ids=[said for _, said in BAD])
def test_bad_input_is_one_line_naming_the_flag(refusals, k):
    code, err = refusals[k]
    assert code == 2, err
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1, err
    assert BAD[k][1] in err


def test_the_console_script_itself_refuses_in_one_line():
    "The installed script, as a user runs it, on the case that gets furthest (the data loaded): status 2, one line."
    args, said = BAD[-1]
    assert said in fails(*args)


def test_help_answers_without_torch():
    "`stitchup_estimate_noise --help` imports neither torch nor fastai: the estimate's functions import them when it runs."
    p = subprocess.run([sys.executable, '-X', 'importtime', str(SCRIPT), '--help'], capture_output=True, text=True)
    assert p.returncode == 0 and '--per_class' in p.stdout, p.stderr[-3000:]
    imported = {l.split('|')[-1].strip() for l in p.stderr.splitlines() if l.startswith('import time:')}
    heavy = sorted(m for m in imported if m.split('.')[0] in ('torch', 'fastai', 'torchvision', 'sklearn'))
    assert not heavy, f'--help imported {heavy[:5]}'
