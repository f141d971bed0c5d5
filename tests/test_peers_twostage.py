"""The peer methods `coteaching` (07h_coteaching) and `confident_learning` (07i_confident) end to end through the
console script, as a user runs them: Digits-MLT-Noise-0.5 (304 images), 2 epochs, on the CPU; and the refusal of
a flag that belongs to another method."""
import json, math, re, subprocess

import pytest

from stitchup_nb.runs import read_scores

from tests.conftest import BIN, run_cli


def _train(work, method, *extra):
    out = run_cli(BIN/'stitchup_train', '--dataset', 'digits-small', '--method', method, '--epochs', '2', '--quiet',
                  '--work_dir', work, *extra)
    return out, json.loads((work/'config.json').read_text()), json.loads((work/'metrics.json').read_text())


def _finite(row): return all(math.isfinite(v) for v in row.values())


def test_coteaching_runs_and_records_its_hyper_parameters(tmp_path):
    out, cfg, m = _train(tmp_path/'ct', 'coteaching')
    assert (cfg['peer'], cfg['ct_tau'], cfg['ct_tk'], cfg['t']) == ('coteaching', .1, 2., .5)
    assert (cfg['branches'], cfg['loss'], cfg['stitch'], cfg['correct']) == ('random', 'bce', 'none', False)
    assert set(m['final']) == {'ensemble', 'net1', 'net2'} and all(map(_finite, m['final'].values()))
    assert [e['kept'] for e in m['epochs']] == pytest.approx([1., .95])     # R(T) = 1 - 0.1 min(T/2, 1)
    assert all(math.isfinite(e['loss_net1']) and math.isfinite(e['loss_net2']) for e in m['epochs'])
    assert 'co-teaching:' in out and 'label correction' not in out
    weighting = [l for l in out.splitlines() if 'net1' in l and 'net2' in l and 'ensemble' in l]
    assert weighting == ["ensemble: the two branches' logits, 0.5 × net1 + 0.5 × net2"], out     # said once, under the table


def test_confident_learning_runs_fast_and_reports_its_changes(tmp_path):
    out, cfg, m = _train(tmp_path/'cl', 'confident_learning', '--cl_folds', '2', '--cl_epochs', '1')
    assert (cfg['peer'], cfg['cl_folds'], cfg['cl_epochs']) == ('confident_learning', 2, 1)
    assert (cfg['branches'], cfg['loss'], cfg['stitch']) == ('random', 'bce', 'none')
    assert set(m['final']) == {'random'} and _finite(m['final']['random'])
    line = next(l for l in out.splitlines() if l.startswith('confident learning: 2 fold models of 1 epochs'))
    # the default action prunes (the paper's); simulated noise: the clean labels are known, so it says how many were wrong
    assert 'label entries out of the loss' in line and 'positives' in line and 'of them were wrong' in line, line
    test = run_cli(BIN/'stitchup_test', tmp_path/'cl'/'epoch_2.pth')              # scores without cleaning the labels again
    assert 'fold' not in test
    got = read_scores(tmp_path/'cl'/'test_metrics.json')[0]['random']
    assert got == pytest.approx(m['final']['random'], abs=1e-3)


def test_confident_learning_flips_when_asked(tmp_path):
    "--cl_action flip: the flagged entries are switched, and against the clean labels it counts the fixes and the breaks."
    out, cfg, m = _train(tmp_path/'clf', 'confident_learning', '--cl_folds', '2', '--cl_epochs', '1', '--cl_action', 'flip')
    assert cfg['cl_action'] == 'flip' and _finite(m['final']['random'])
    line = next(l for l in out.splitlines() if l.startswith('confident learning: 2 fold models of 1 epochs'))
    assert 'label entries' in line and 'fixed' in line and 'broken' in line, line


def test_another_methods_flag_is_refused_in_one_line(tmp_path):
    p = subprocess.run([str(BIN/'stitchup_train'), '--dataset', 'digits-small', '--method', 'full', '--ct_tau', '0.2',
                        '--work_dir', str(tmp_path/'no')], capture_output=True, text=True)
    assert p.returncode == 2 and not (tmp_path/'no').exists()
    assert p.stderr.strip().splitlines() == [
        "stitchup_train: --ct_tau has no effect: it is a hyper-parameter of method 'coteaching' (Co-teaching), not of 'full'"]


@pytest.mark.parametrize('options, said', [
    (dict(method='coteaching', cl_folds=3), "`cl_folds` has no effect: it is a hyper-parameter of method 'confident_learning'"),
    (dict(method='confident_learning', ct_tk=4.), "`ct_tk` has no effect: it is a hyper-parameter of method 'coteaching'"),
    (dict(method='bce', cl_epochs=2), '`cl_epochs` has no effect'),
    (dict(method='coteaching', stitch='feature'), "`stitch` feature does not apply to method 'coteaching'"),
    (dict(method='confident_learning', branches='both'), "`branches` both does not apply to method 'confident_learning'"),
    (dict(method='coteaching', ct_tau=1.), '`ct_tau` must be a number in [0, 1), got 1.0'),
    (dict(method='coteaching', ct_tk=0.), '`ct_tk` must be a number > 0'),
    (dict(method='confident_learning', cl_folds=1), '`cl_folds` must be an integer >= 2'),
])
def test_peer_options_are_checked_before_anything_runs(options, said):
    from stitchup_nb.train import train_config
    with pytest.raises(ValueError, match=re.escape(said)):
        train_config(dataset='digits-small', **options)
