"""tools/bench_speed.py --peers: every peer of the method table is timed against BCE on the same backbone and batch; a
bad option is named before anything is timed."""
import pytest
import torch

from stitchup_nb.methods import METHODS
from tests.conftest import load_tool


def test_bench_peers_times_every_peer():
    rows = load_tool('bench_speed').bench_peers('digits_cnn 64px', 'digits_cnn', 64, 32, n_steps=1, device=torch.device('cpu'), rounds=2)
    peers = [n for n, m in METHODS.items() if m.get('peer')]
    assert [r['method'] for r in rows] == ['bce', *peers]          # co-teaching's twin networks included
    assert all(r['steps'] == 2 and r['step_s'] > 0 for r in rows), rows
    bce = rows[0]['step_s']
    assert all(abs(r['ratio_to_bce'] - r['step_s'] / bce) < .02 for r in rows)     # the ratio of the unrounded times


def test_bad_options_are_named_before_anything_is_timed(tmp_path, capsys):
    """An unknown model (named once, after a model's timing), --steps 0 (printed NaN), --rounds 0 (an IndexError), a batch
    of none, an --out in no folder, a folder or an existing file as --out: each refused by `options`, exit status 2."""
    tool = load_tool('bench_speed')
    kept = tmp_path/'rows.json'; kept.write_text('[]')
    cases = [(['--models', 'digits,foo'], "--models: unknown 'foo'; choose from digits, resnet50"),
             (['--steps', '0'], '--steps must be >= 1, got 0'),
             (['--peers', '--rounds', '0'], '--rounds must be >= 1, got 0'),
             (['--cpu_bs', '0'], '--cpu_bs must be >= 1, got 0'),
             (['--out', str(tmp_path/'nodir'/'r.json')], f"its folder {tmp_path/'nodir'} does not exist"),
             (['--out', str(tmp_path)], f'--out {tmp_path} is a folder'),
             (['--out', str(kept)], f'--out {kept} exists')]
    if not torch.cuda.is_available(): cases.append((['--gpu'], '--gpu times on a CUDA device, and this machine has none'))
    for args, said in cases:
        with pytest.raises(SystemExit) as e: tool.options(args)
        err = capsys.readouterr().err
        assert e.value.code == 2 and said in err, (args, err)
    assert kept.read_text() == '[]' and sorted(q.name for q in tmp_path.iterdir()) == ['rows.json']
    a = tool.options(['--models', 'digits, resnet50', '--out', str(tmp_path/'new.json')])
    assert a.model_list == ['digits', 'resnet50'] and (a.steps, a.rounds, a.cpu_bs) == (5, 3, 8)
