"""`stitchup_estimate_noise` as a user runs it: the estimate with the truth beside it on simulated noise, the per-class CSV,
and one line on stderr (exit status 2) for a bad option or file."""
import subprocess
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


@pytest.mark.parametrize('args, said', [
    (['--dataset', 'vocx'], '--dataset must be one of digits'),
    (['--dataset', 'digits-small', '--noise_rate', '1.5'], '--noise_rate must be in [0, 1], got 1.5'),
    (['--dataset', 'digits-small', '--noise_file', 'no/such.pkl'], '--noise_file no/such.pkl: no such file'),
    (['--dataset', 'digits-small', '--noise_rate', '0.3', '--noise_file', 'x.pkl'], 'pass one of them'),
    (['--dataset', 'digits-small', '--folds', '1'], '--folds must be in 2..304'),
])
def test_bad_input_is_one_line_naming_the_flag(args, said):
    assert said in fails(*args)
