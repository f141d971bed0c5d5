"""full_plus (nbs/07g_full_plus.ipynb) from the console script: it trains on the 304-image Digits-MLT, records its two
changes in config.json, resumes from a checkpoint to exactly the uninterrupted run (the adaptive thresholds travel in
the checkpoint), and its options are refused where they would do nothing."""
import json, shutil

import pytest
import torch

from tests.conftest import BIN, run_cli as run

QUICK = ('--dataset', 'digits-small', '--method', 'full_plus', '--epochs', '3', '--warmup_iters', '10', '--noise_rate', '0.7', '--quiet')


@pytest.fixture(scope='module')
def plus_run(tmp_path_factory):
    work = tmp_path_factory.mktemp('plus')/'run'
    out = run(BIN/'stitchup_train', *QUICK, '--work_dir', work)
    return work, out


def test_full_plus_trains_and_records_its_changes(plus_run):
    work, out = plus_run
    cfg = json.loads((work/'config.json').read_text())
    assert (cfg['method'], cfg['correction'], cfg['stitch_branches'], cfg['branches']) == ('full_plus', 'adaptive', 'balanced', 'both')
    final = json.loads((work/'metrics.json').read_text())['final']
    assert set(final) == {'ensemble', 'random', 'balanced'} and 0 < final['ensemble']['total'] <= 100
    assert 'label correction by the balanced branch' in out           # adaptive thresholds did correct labels
    limits = torch.load(work/'epoch_3.pth', weights_only=True)['callbacks']['CoLearning']['limits']
    alpha, beta = limits['random']
    assert alpha.shape == beta.shape == (10,) and bool((beta <= alpha).all()) and bool((alpha < 1).any())


def test_resumed_full_plus_ends_as_the_uninterrupted_run(plus_run, tmp_path):
    work, _ = plus_run
    ck = tmp_path/'epoch_2.pth'; shutil.copy(work/'epoch_2.pth', ck)
    run(BIN/'stitchup_train', *QUICK, '--work_dir', tmp_path/'resumed', '--resume', ck)
    want = json.loads((work/'metrics.json').read_text())['final']
    assert json.loads((tmp_path/'resumed'/'metrics.json').read_text())['final'] == want
    # without the thresholds in the checkpoint the resumed epoch corrects nothing, and the run ends elsewhere
    state = torch.load(ck, weights_only=True); del state['callbacks']; torch.save(state, tmp_path/'bare.pth')
    run(BIN/'stitchup_train', *QUICK, '--work_dir', tmp_path/'bare', '--resume', tmp_path/'bare.pth')
    assert json.loads((tmp_path/'bare'/'metrics.json').read_text())['final'] != want


@pytest.mark.parametrize('options, message', [
    (dict(method='bce', correction='adaptive'), '--correction adaptive has no effect'),
    (dict(method='full_plus', random_head_alpha=.8), '--random_head_alpha has no effect with --correction adaptive'),
    (dict(method='full', correction='learned'), '--correction must be fixed or adaptive'),
    (dict(method='full', stitch_branches='class_aware'), '--stitch_branches must be all, random or balanced'),
    (dict(method='dbfocal_stitchup', stitch_branches='random'), 'this run has no such branch'),
    (dict(method='colearn', stitch_branches='balanced'), 'has no effect without Stitch-Up'),
])
def test_bad_full_plus_options_are_refused_by_name(options, message):
    from stitchup_nb.cli import train_config
    with pytest.raises(ValueError, match=message.replace('(', r'\(')):
        train_config(dataset='digits-small', **options)
