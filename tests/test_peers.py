"""The four peer methods (nbs/07g_peers.ipynb) from the console script, as a user runs them: each trains on the
304-image Digits-MLT for 2 epochs, records its hyper-parameters in config.json and scores a finite mAP; a peer's
flag with another method is refused in one line."""
import json, math, re, subprocess

import pytest

from tests.conftest import BIN, run_cli as run

PEER_OPTIONS = {      # method -> (its hyper-parameters at the papers' values, a flag that changes one)
    'asl':        (dict(asl_gamma_neg=4., asl_gamma_pos=0., asl_clip=.05), ('--asl_gamma_neg', '2', 'asl_gamma_neg', 2.)),
    'large_loss': (dict(ll_delta_rel=.2), ('--ll_delta_rel', '5', 'll_delta_rel', 5.)),
    'mixup':      (dict(mixup_alpha=.4), ('--mixup_alpha', '0.2', 'mixup_alpha', .2)),
    'cutmix':     (dict(cutmix_alpha=1.), ('--cutmix_alpha', '0.5', 'cutmix_alpha', .5)),
}
ALL_KEYS = {k for opts, _ in PEER_OPTIONS.values() for k in opts}


def train(method, work, *flags):
    out = run(BIN/'stitchup_train', '--dataset', 'digits-small', '--method', method, '--epochs', '2', '--warmup_iters', '10',
              '--quiet', '--work_dir', work, *flags)
    return json.loads((work/'config.json').read_text()), json.loads((work/'metrics.json').read_text()), out


@pytest.mark.parametrize('method', list(PEER_OPTIONS))
def test_peer_trains_from_the_cli(method, tmp_path):
    opts, _ = PEER_OPTIONS[method]
    cfg, metrics, out = train(method, tmp_path/method)
    assert cfg['method'] == method and cfg['peer'] == method and cfg['branches'] == 'random' and cfg['stitch'] == 'none'
    assert {k: cfg[k] for k in opts} == opts                          # the paper's values, recorded
    assert all(cfg[k] is None for k in ALL_KEYS - set(opts))          # the other peers' options: unused, recorded as such
    assert set(metrics['final']) == {'random'} and len(metrics['epochs']) == 2
    assert all(math.isfinite(e['loss_random']) for e in metrics['epochs'])
    assert 0 < metrics['final']['random']['total'] <= 100
    assert f'method {method}' in out


def test_peer_flags_set_the_config():
    from stitchup_nb.train import train_config
    for method, (_, (flag, value, key, want)) in PEER_OPTIONS.items():
        assert train_config(dataset='digits-small', method=method, **{key: want})[key] == want


def refused(*args):
    proc = subprocess.run([str(BIN/'stitchup_train'), '--dataset', 'digits-small', '--quiet', *map(str, args)],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in proc.stderr, proc.stderr
    return lines[0]


def test_peer_flags_refused_elsewhere(tmp_path):
    work = tmp_path/'never'
    said = refused('--method', 'full', '--asl_gamma_neg', '4', '--work_dir', work)
    assert said.startswith("stitchup_train: --asl_gamma_neg has no effect: it is a hyper-parameter of method 'asl'"), said
    assert not work.exists()                                          # refused before anything is written
    from stitchup_nb.train import train_config
    for opts, said in [(dict(method='mixup', cutmix_alpha=1.), '`cutmix_alpha` has no effect'),
                       (dict(method='bce', ll_delta_rel=.2), "`ll_delta_rel` has no effect: it is a hyper-parameter of method 'large_loss' (Large-loss rejection), not of 'bce'"),
                       (dict(method='asl', loss='dbfocal'), "`loss` dbfocal does not apply to method 'asl'"),
                       (dict(method='cutmix', branches='both'), "`branches` both does not apply to method 'cutmix'"),
                       (dict(method='asl', asl_clip=1.5), '`asl_clip` must be a number in [0, 1)'),
                       (dict(method='mixup', mixup_alpha=0.), '`mixup_alpha` must be a number > 0')]:
        with pytest.raises(ValueError, match=re.escape(said)):
            train_config(dataset='digits-small', **opts)
