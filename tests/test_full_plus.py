"""full_plus (nbs/07j_full_plus.ipynb) from the console scripts, with the held-out ensemble weight it was measured with
(`--holdout 0.1`): it trains on the 304-image Digits-MLT with a tenth of the images held out, records its change and the
chosen ensemble weight, and stitchup_test scores its checkpoint with the same weight; adaptive thresholds (an option of the full method) travel in checkpoints, so a resumed run
ends exactly as the uninterrupted one; options that would do nothing are refused by name."""
import json, shutil

import pytest
import torch

from stitchup_nb.runs import read_scores

from tests.conftest import BIN, run_cli as run

SMALL = ('--dataset', 'digits-small', '--epochs', '2', '--warmup_iters', '10', '--noise_rate', '0.7', '--quiet')


@pytest.fixture(scope='module')
def plus_run(tmp_path_factory):
    "One epoch of full_plus with `--holdout 0.1` (the t is chosen once, after the last epoch: one shows it): (work_dir, stdout)."
    work = tmp_path_factory.mktemp('plus')/'run'
    out = run(BIN/'stitchup_train', *SMALL, '--epochs', '1', '--method', 'full_plus', '--holdout', '0.1', '--work_dir', work)
    return work, out


def test_full_plus_trains_holds_out_and_records_the_chosen_t(plus_run):
    work, out = plus_run
    cfg = json.loads((work/'config.json').read_text())
    assert (cfg['method'], cfg['stitch_branches'], cfg['holdout'], cfg['correction']) == ('full_plus', 'balanced', .1, 'fixed')
    m = json.loads((work/'metrics.json').read_text())
    assert set(m['final']) == {'ensemble', 'random', 'balanced'} and 0 < m['final']['ensemble']['total'] <= 100
    assert m['t_chosen'] in [k / 10 for k in range(11)] and len(m['holdout_map']) == 11
    assert m['holdout_map'][f"{m['t_chosen']:g}"] == max(m['holdout_map'].values())     # the best held-out t
    assert f"ensemble weight t = {m['t_chosen']:g}, chosen on 30 held-out training images" in out   # 304 images: 30 held out


def test_stitchup_test_scores_full_plus_with_the_same_t(plus_run, tmp_path):
    work, _ = plus_run
    run(BIN/'stitchup_test', work/'epoch_1.pth', '--out', tmp_path/'t.json')
    m = json.loads((work/'metrics.json').read_text())
    table, said = read_scores(tmp_path/'t.json')
    assert table == m['final'] and said['t'] == m['t_chosen'], (said, m['t_chosen'])     # the file says the t it scored with


def test_resumed_adaptive_run_ends_as_the_uninterrupted_one(tmp_path):
    flags = (*SMALL, '--method', 'full', '--correction', 'adaptive')
    run(BIN/'stitchup_train', *flags, '--work_dir', tmp_path/'whole')
    limits = torch.load(tmp_path/'whole'/'epoch_2.pth', weights_only=True)['callbacks']['CoLearning']['limits']
    alpha, beta = limits['random']
    assert alpha.shape == beta.shape == (10,) and bool((beta <= alpha).all()) and bool((alpha < 1).any())
    ck = tmp_path/'epoch_1.pth'; shutil.copy(tmp_path/'whole'/'epoch_1.pth', ck)
    run(BIN/'stitchup_train', *flags, '--work_dir', tmp_path/'resumed', '--resume', ck)
    want = json.loads((tmp_path/'whole'/'metrics.json').read_text())['final']
    assert json.loads((tmp_path/'resumed'/'metrics.json').read_text())['final'] == want
    # without the thresholds in the checkpoint the resumed epoch corrects nothing, and the run ends elsewhere
    state = torch.load(ck, weights_only=True); del state['callbacks']; torch.save(state, tmp_path/'bare.pth')
    run(BIN/'stitchup_train', *flags, '--work_dir', tmp_path/'bare', '--resume', tmp_path/'bare.pth')
    assert json.loads((tmp_path/'bare'/'metrics.json').read_text())['final'] != want


@pytest.mark.parametrize('options, message', [
    (dict(method='bce', correction='adaptive'), '`correction` adaptive has no effect'),
    (dict(method='full', correction='adaptive', random_head_alpha=.8), '`random_head_alpha` has no effect with `correction` adaptive'),
    (dict(method='full', correction='learned'), '`correction` must be fixed or adaptive'),
    (dict(method='full', stitch_branches='class_aware'), '`stitch_branches` must be all, random or balanced'),
    (dict(method='dbfocal_stitchup', stitch_branches='random'), 'this run has no such branch'),
    (dict(method='colearn', stitch_branches='balanced'), 'has no effect without Stitch-Up'),
    (dict(method='bce', holdout=.1), '`holdout` 0.1 has no effect'),
    (dict(method='full_plus', holdout=.1, t=.3), '`t` has no effect with `holdout` 0.1'),
    (dict(method='full', holdout=.5), '`holdout` must be 0'),
])
def test_bad_full_plus_options_are_refused_by_name(options, message):
    from stitchup_nb.train import train_config
    with pytest.raises(ValueError, match=message.replace('(', r'\(')):
        train_config(dataset='digits-small', **options)
